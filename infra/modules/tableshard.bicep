// One further Table Storage account for Gatehouse's tenants (TABLES_SHARDS, docs/scaling.md "Storage shards"):
// the Table service only, reached only with Entra identities (shared keys off), and the one role the app needs
// on it. The primary account (storage.bicep) keeps the host's own storage, the queues and the rows that belong
// to no tenant; a shard holds nothing but the rows of the tenants placed on it.

@description('Storage account name: 3-24 lowercase letters and digits, globally unique.')
param name string

param location string
param tags object = {}

@description('Replication, as the primary account\'s.')
@allowed([
  'Standard_LRS'
  'Standard_ZRS'
  'Standard_GRS'
  'Standard_GZRS'
  'Standard_RAGRS'
  'Standard_RAGZRS'
])
param skuName string = 'Standard_GZRS'

@description('Principal ID of the app\'s user-assigned identity: gets Storage Table Data Contributor here.')
param appPrincipalId string

// Built-in role definition ID (the same in every tenant), as in rbac.bicep.
var storageTableDataContributor = '0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3'

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

// Gatehouse creates its tables on first use (shared_code/storage/tables.py), as on the primary account.
resource tableService 'Microsoft.Storage/storageAccounts/tableServices@2023-05-01' = {
  parent: account
  name: 'default'
  properties: {}
}

// The tenants' rows: read, written, and tables created on first use (which this role allows).
resource appTableData 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(account.id, appPrincipalId, storageTableDataContributor)
  scope: account
  properties: {
    principalId: appPrincipalId
    principalType: 'ServicePrincipal'
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', storageTableDataContributor)
  }
}

output id string = account.id
output name string = account.name
output tableEndpoint string = account.properties.primaryEndpoints.table
