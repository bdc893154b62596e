// One storage account, reached only with Entra identities (shared keys off):
// - Table service: Gatehouse's state, one partition per tenant (see docs/scaling.md);
// - Blob service: the Functions host's own storage (timer leases, keys) and the Flex Consumption
//   deployment container that azd uploads the package to;
// - Queue service: webhook deliveries (queue `webhook-deliveries`, and `webhook-deliveries-poison` where the
//   Functions host moves a message after host.json's maxDequeueCount failed tries) and the background jobs'
//   fan-out (queue `gatehouse-jobs` and `gatehouse-jobs-poison`; see docs/scaling.md).

@description('Storage account name: 3-24 lowercase letters and digits, globally unique.')
param name string

param location string
param tags object = {}

@description('Replication. GZRS keeps state through the loss of a zone (synchronously) and of the region (asynchronous copy to the paired region).')
@allowed([
  'Standard_LRS'
  'Standard_ZRS'
  'Standard_GRS'
  'Standard_GZRS'
  'Standard_RAGRS'
  'Standard_RAGZRS'
])
param skuName string = 'Standard_GZRS'

@description('Blob container that Flex Consumption deploys the app package from.')
param deploymentContainerName string

@description('Queues the app reads and writes: webhook deliveries, the background jobs, and their poison queues.')
param queueNames array = [
  'webhook-deliveries'
  'webhook-deliveries-poison'
  'gatehouse-jobs'
  'gatehouse-jobs-poison'
]

resource account 'Microsoft.Storage/storageAccounts@2023-05-01' = {
  name: name
  location: location
  tags: tags
  //checkov:skip=CKV_AZURE_35: Flex Consumption without VNet integration reaches storage over its public endpoint; shared keys are off, so only our identity's Entra tokens get in.
  //checkov:skip=CKV_AZURE_59: same reason as CKV_AZURE_35: public network access is needed by a function app without VNet integration; access is Entra-only.
  kind: 'StorageV2'
  sku: {
    name: skuName
  }
  properties: {
    accessTier: 'Hot'
    allowBlobPublicAccess: false
    allowCrossTenantReplication: false
    allowSharedKeyAccess: false
    defaultToOAuthAuthentication: true
    minimumTlsVersion: 'TLS1_2'
    supportsHttpsTrafficOnly: true
    publicNetworkAccess: 'Enabled'
    networkAcls: {
      defaultAction: 'Allow'
      bypass: 'AzureServices'
    }
    encryption: {
      keySource: 'Microsoft.Storage'
      requireInfrastructureEncryption: true
      services: {
        blob: {
          enabled: true
          keyType: 'Account'
        }
        file: {
          enabled: true
          keyType: 'Account'
        }
        table: {
          enabled: true
          keyType: 'Account'
        }
        queue: {
          enabled: true
          keyType: 'Account'
        }
      }
    }
  }
}

resource blobService 'Microsoft.Storage/storageAccounts/blobServices@2023-05-01' = {
  parent: account
  name: 'default'
  properties: {
    deleteRetentionPolicy: {
      enabled: true
      days: 7
    }
    containerDeleteRetentionPolicy: {
      enabled: true
      days: 7
    }
  }
}

resource deploymentContainer 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' = {
  parent: blobService
  name: deploymentContainerName
  properties: {
    publicAccess: 'None'
  }
}

// Gatehouse creates its tables on first use (shared_code/storage/tables.py); the service itself is declared
// so that the Table endpoint is an explicit part of this deployment.
resource tableService 'Microsoft.Storage/storageAccounts/tableServices@2023-05-01' = {
  parent: account
  name: 'default'
  properties: {}
}

// Declared rather than left to the host: the poison queue exists (and can be watched) before a first failure, and
// the producer never meets a missing queue on a fresh deployment.
resource queueService 'Microsoft.Storage/storageAccounts/queueServices@2023-05-01' = {
  parent: account
  name: 'default'
  properties: {}
}

resource queues 'Microsoft.Storage/storageAccounts/queueServices/queues@2023-05-01' = [for queueName in queueNames: {
  parent: queueService
  name: queueName
  properties: {
    metadata: {}
  }
}]

output id string = account.id
output name string = account.name
output blobEndpoint string = account.properties.primaryEndpoints.blob
output tableEndpoint string = account.properties.primaryEndpoints.table
output queueEndpoint string = account.properties.primaryEndpoints.queue
output deploymentContainerUrl string = '${account.properties.primaryEndpoints.blob}${deploymentContainer.name}'
