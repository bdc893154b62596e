// Gatehouse on Azure: `azd up` provisions this (subscription scope: it creates the resource group), then
// deploys the app. Layout follows the Azure-Samples Functions quickstarts; one module per concern in modules/.
targetScope = 'subscription'

@minLength(1)
@maxLength(64)
@description('azd environment name; names the resource group and seeds every resource name.')
param environmentName string

@minLength(1)
@description('Region of every resource. It must offer Flex Consumption (az functionapp list-flexconsumption-locations).')
@metadata({
  azd: {
    type: 'location'
  }
})
param location string

@description('Object ID of whoever runs azd (AZURE_PRINCIPAL_ID): gets Key Vault Secrets Officer. Empty grants nothing.')
param principalId string = ''

@allowed([
  'User'
  'ServicePrincipal'
  'Group'
])
@description('Kind of principalId: User for `azd auth login`, ServicePrincipal for a CI identity.')
param principalType string = 'User'

@secure()
@description('The operator key (PLATFORM_ADMIN_KEY). azd reads it back from Key Vault on every provision, so it stays stable.')
param platformAdminKey string

@secure()
@description('The key that signs browser sessions and SP-initiated request state (SESSION_SIGNING_KEY). Kept like platformAdminKey.')
param sessionSigningKey string

@secure()
@description('Fresh random characters appended to a newly generated platformAdminKey (see var platformAdminKeyValue).')
param platformAdminKeyExtension string = ''

@secure()
@description('Fresh random characters appended to a newly generated sessionSigningKey.')
param sessionSigningKeyExtension string = ''

@description('Custom domain (host name only, e.g. sso.example.com) that PUBLIC_BASE_URL uses. Empty: the app\'s default host name. Bind the domain and its certificate to the app separately.')
param customDomain string = ''

@description('NCRONTAB (six fields, UTC) of the timer that audits employees\' email domains for every tenant.')
param domainAuditSchedule string = '0 0 3 * * *'

@description('NCRONTAB (six fields, UTC) of the timer that refetches every tenant\'s IdP metadata (certificate rollovers) and purges expired sign-in rows.')
param idpMetadataRefreshSchedule string = '0 30 2 * * *'

@description('NCRONTAB (six fields, UTC) of the timer that re-enqueues webhook deliveries a lost queue message left behind.')
param webhookSweepSchedule string = '0 * * * * *'

@description('The product\'s roles, comma-separated, that tenant admins map Entra groups to (`admin` is Gatehouse\'s admin right).')
param productRoles string = 'admin,member'

@description('Where Microsoft Entra ID tokens\' signing keys are fetched ({ENTRA_LOGIN_URL}/{tenant}/discovery/v2.0/keys). Another cloud\'s login host only (e.g. https://login.microsoftonline.us).')
param entraLoginUrl string = 'https://login.microsoftonline.com'

@description('iOS bundle ID of the product\'s mobile app (MOBILE_IOS_BUNDLE_ID).')
param mobileIosBundleId string = 'com.example.gatehouse'

@description('Android package name of the product\'s mobile app (MOBILE_ANDROID_PACKAGE_NAME).')
param mobileAndroidPackageName string = 'com.example.gatehouse'

@description('Base64 SHA-1 signature hash of the Android app\'s signing certificate (MOBILE_ANDROID_SIGNATURE_HASH).')
param mobileAndroidSignatureHash string = ''

@description('Memory of each Flex Consumption instance, in MB.')
@allowed([
  512
  2048
  4096
])
param instanceMemoryMB int = 2048

@description('Most instances the app scales out to (see docs/scaling.md before raising it).')
@minValue(1)
@maxValue(1000)
param maximumInstanceCount int = 100

@description('HTTP requests each instance works on at once (functionAppConfig.scaleAndConcurrency.triggers.http.perInstanceConcurrency). 4 is measured by bench/concurrency.py: see docs/scaling.md before changing it.')
@minValue(1)
@maxValue(1000)
param httpPerInstanceConcurrency int = 4

@description('HTTP instances kept warm to avoid cold starts; 0 scales to zero.')
@minValue(0)
param alwaysReadyHttpInstances int = 0

@description('Storage replication for state and host storage.')
param storageSkuName string = 'Standard_GZRS'

@description('Further Table Storage accounts for tenants (TABLES_SHARDS; docs/scaling.md, "Storage shards"). Only ever raise it: a tenant stays on the account it was placed on, so lowering it strands tenants.')
@minValue(0)
@maxValue(99)
param tableShardCount int = 0

var resourceToken = toLower(uniqueString(subscription().id, environmentName, location))
var tags = {
  'azd-env-name': environmentName
}
var names = {
  resourceGroup: 'rg-${environmentName}'
  identity: 'id-gatehouse-${resourceToken}'
  storage: 'st${resourceToken}'
  tableShardPrefix: 'st${resourceToken}t'
  logAnalytics: 'log-${resourceToken}'
  applicationInsights: 'appi-${resourceToken}'
  keyVault: 'kv-${resourceToken}'
  plan: 'plan-${resourceToken}'
  functionApp: 'func-gatehouse-${resourceToken}'
  deploymentContainer: 'app-package'
}

// azd's secretOrRandomPassword returns the key stored in the vault or, on the first provision, a fresh
// password of 15 letters and digits (about 83 bits). A key shorter than 30 characters is such a fresh one
// and gets another fresh 15 appended; a stored key (30 or more) passes through, so keys stay stable.
var minimumStoredKeyLength = 30
var platformAdminKeyValue = length(platformAdminKey) < minimumStoredKeyLength ? '${platformAdminKey}${platformAdminKeyExtension}' : platformAdminKey
var sessionSigningKeyValue = length(sessionSigningKey) < minimumStoredKeyLength ? '${sessionSigningKey}${sessionSigningKeyExtension}' : sessionSigningKey

resource rg 'Microsoft.Resources/resourceGroups@2024-03-01' = {
  name: names.resourceGroup
  location: location
  tags: tags
}

module identity 'modules/identity.bicep' = {
  name: 'identity'
  scope: rg
  params: {
    name: names.identity
    location: location
    tags: tags
  }
}

module storage 'modules/storage.bicep' = {
  name: 'storage'
  scope: rg
  params: {
    name: names.storage
    location: location
    tags: tags
    skuName: storageSkuName
    deploymentContainerName: names.deploymentContainer
  }
}

// The shards: account i is TABLES_SHARDS[i - 1]; each grants the app's identity the table role it needs.
module tableShards 'modules/tableshard.bicep' = [for i in range(1, tableShardCount): {
  name: 'tableshard${i}'
  scope: rg
  params: {
    name: '${names.tableShardPrefix}${i}'
    location: location
    tags: tags
    skuName: storageSkuName
    appPrincipalId: identity.outputs.principalId
  }
}]

module monitoring 'modules/monitoring.bicep' = {
  name: 'monitoring'
  scope: rg
  params: {
    logAnalyticsName: names.logAnalytics
    applicationInsightsName: names.applicationInsights
    location: location
    tags: tags
  }
}

module keyVault 'modules/keyvault.bicep' = {
  name: 'keyvault'
  scope: rg
  params: {
    name: names.keyVault
    location: location
    tags: tags
    platformAdminKey: platformAdminKeyValue
    sessionSigningKey: sessionSigningKeyValue
  }
}

module rbac 'modules/rbac.bicep' = {
  name: 'rbac'
  scope: rg
  params: {
    appPrincipalId: identity.outputs.principalId
    deployerPrincipalId: principalId
    deployerPrincipalType: principalType
    storageAccountName: storage.outputs.name
    applicationInsightsName: monitoring.outputs.applicationInsightsName
    keyVaultName: keyVault.outputs.name
  }
}

module functionApp 'modules/functionapp.bicep' = {
  name: 'functionapp'
  scope: rg
  // The identity must hold its storage roles before the app first pulls its package.
  dependsOn: [
    rbac
    tableShards
  ]
  params: {
    planName: names.plan
    name: names.functionApp
    location: location
    tags: union(tags, {
      'azd-service-name': 'api'
    })
    identityId: identity.outputs.id
    deploymentContainerUrl: storage.outputs.deploymentContainerUrl
    instanceMemoryMB: instanceMemoryMB
    maximumInstanceCount: maximumInstanceCount
    httpPerInstanceConcurrency: httpPerInstanceConcurrency
    alwaysReadyHttpInstances: alwaysReadyHttpInstances
  }
}

var publicBaseUrl = empty(customDomain) ? 'https://${functionApp.outputs.defaultHostName}' : 'https://${customDomain}'

// TABLES_SHARDS: a JSON array of the shards' table endpoints, in account order ('[]' without shards).
var tableShardEndpoints = [for i in range(0, tableShardCount): tableShards[i].outputs.tableEndpoint]

// Every app setting, in one place. tests/test_settings_consistency.py reads the names between
// `var appSettings = {` and the closing brace, and checks them against shared_code/platform/settings.py.
var appSettings = {
  // Host: its own storage through the identity (no connection string), telemetry with Entra auth.
  AzureWebJobsStorage__accountName: storage.outputs.name
  AzureWebJobsStorage__credential: 'managedidentity'
  AzureWebJobsStorage__clientId: identity.outputs.clientId
  APPLICATIONINSIGHTS_CONNECTION_STRING: monitoring.outputs.connectionString
  APPLICATIONINSIGHTS_AUTHENTICATION_STRING: 'ClientId=${identity.outputs.clientId};Authorization=AAD'
  // DefaultAzureCredential picks the user-assigned identity by this client ID.
  AZURE_CLIENT_ID: identity.outputs.clientId
  // Gatehouse (shared_code/platform/settings.py). No connection string on Azure: the endpoint plus the identity.
  TABLES_CONNECTION_STRING: ''
  TABLES_ENDPOINT: storage.outputs.tableEndpoint
  TABLES_SHARDS: string(tableShardEndpoints)
  PLATFORM_ADMIN_KEY: '@Microsoft.KeyVault(SecretUri=${keyVault.outputs.platformAdminKeySecretUri})'
  SESSION_SIGNING_KEY: '@Microsoft.KeyVault(SecretUri=${keyVault.outputs.sessionSigningKeySecretUri})'
  PUBLIC_BASE_URL: publicBaseUrl
  DOMAIN_AUDIT_SCHEDULE: empty(domainAuditSchedule) ? '0 0 3 * * *' : domainAuditSchedule
  IDP_METADATA_REFRESH_SCHEDULE: empty(idpMetadataRefreshSchedule) ? '0 30 2 * * *' : idpMetadataRefreshSchedule
  // Never true in Azure: it would let the metadata check fetch http:// and private addresses.
  ALLOW_PRIVATE_METADATA_URLS: 'false'
  // Empty: domain verification asks the platform's resolver.
  DNS_NAMESERVERS: ''
  // Entra's public cloud; the mobile token exchange fetches ID-token signing keys here.
  ENTRA_LOGIN_URL: 'https://login.microsoftonline.com'
  MOBILE_IOS_BUNDLE_ID: mobileIosBundleId
  MOBILE_ANDROID_PACKAGE_NAME: mobileAndroidPackageName
  MOBILE_ANDROID_SIGNATURE_HASH: mobileAndroidSignatureHash
  // OpenID Provider: RSA keys (JSON array of PEM, the first signs) read once per instance from Key Vault; the
  // secret is created by tools/postprovision.py, never by this template (docs/deploy.md, "Signing keys").
  OIDC_SIGNING_KEYS: '@Microsoft.KeyVault(SecretUri=${keyVault.outputs.oidcSigningKeysSecretUri})'
  ENTRA_LOGIN_URL: empty(entraLoginUrl) ? 'https://login.microsoftonline.com' : entraLoginUrl
  // Webhook deliveries: the queue trigger's connection `GATEHOUSE_QUEUES`, identity-based (no connection string):
  // the queue endpoint and the user-assigned identity, which holds Storage Queue Data Contributor (rbac.bicep).
  GATEHOUSE_QUEUES__queueServiceUri: storage.outputs.queueEndpoint
  GATEHOUSE_QUEUES__credential: 'managedidentity'
  GATEHOUSE_QUEUES__clientId: identity.outputs.clientId
  WEBHOOK_SWEEP_SCHEDULE: empty(webhookSweepSchedule) ? '0 * * * * *' : webhookSweepSchedule
  PRODUCT_ROLES: empty(productRoles) ? 'admin,member' : productRoles
  // Back-channel logout tokens not yet accepted by a product get another attempt (backoff 1 … 60 min, a day).
  OIDC_BACKCHANNEL_RETRY_SCHEDULE: '0 * * * * *'
}

module settings 'modules/appsettings.bicep' = {
  name: 'appsettings'
  scope: rg
  params: {
    functionAppName: functionApp.outputs.name
    appSettings: appSettings
  }
}

// azd saves these in .azure/<env>/.env; AZURE_KEY_VAULT_NAME is how the next provision finds the keys.
output AZURE_LOCATION string = location
output AZURE_TENANT_ID string = tenant().tenantId
output AZURE_RESOURCE_GROUP string = rg.name
output AZURE_FUNCTION_APP_NAME string = functionApp.outputs.name
output SERVICE_API_NAME string = functionApp.outputs.name
output PUBLIC_BASE_URL string = publicBaseUrl
output AZURE_KEY_VAULT_NAME string = keyVault.outputs.name
output AZURE_KEY_VAULT_ENDPOINT string = keyVault.outputs.uri
output AZURE_STORAGE_ACCOUNT_NAME string = storage.outputs.name
output TABLES_ENDPOINT string = storage.outputs.tableEndpoint
output TABLES_SHARDS string = string(tableShardEndpoints)
output QUEUES_ENDPOINT string = storage.outputs.queueEndpoint
output OIDC_SIGNING_KEYS_SECRET_NAME string = keyVault.outputs.oidcSigningKeysSecretName
output AZURE_MANAGED_IDENTITY_CLIENT_ID string = identity.outputs.clientId
output APPLICATIONINSIGHTS_NAME string = monitoring.outputs.applicationInsightsName
