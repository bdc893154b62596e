// The Flex Consumption plan (FC1) and the function app on it: Python 3.11, HTTPS only, TLS 1.2, running as
// the user-assigned identity, which also pulls the deployment package and resolves Key Vault references.
// App settings are applied by appsettings.bicep once the app's host name is known.

param planName string
param name string
param location string
param tags object = {}

@description('Resource ID of the user-assigned managed identity the app runs as.')
param identityId string

@description('URL of the blob container Flex Consumption deploys the package from.')
param deploymentContainerUrl string

@description('Memory of each instance in MB (Flex Consumption sizes).')
@allowed([
  512
  2048
  4096
])
param instanceMemoryMB int = 2048

@description('Most instances the app scales out to.')
@minValue(1)
@maxValue(1000)
param maximumInstanceCount int = 100

@description('HTTP requests one instance works on at once (Flex Consumption runs Python at 1 unless told). bench/concurrency.py measured the choice; docs/scaling.md says why.')
@minValue(1)
@maxValue(1000)
param httpPerInstanceConcurrency int = 4

@description('Instances kept warm for the HTTP functions (0 = scale to zero; each warm instance is billed while idle).')
@minValue(0)
param alwaysReadyHttpInstances int = 0

resource plan 'Microsoft.Web/serverfarms@2024-04-01' = {
  name: planName
  location: location
  tags: tags
  kind: 'functionapp'
  sku: {
    name: 'FC1'
    tier: 'FlexConsumption'
  }
  //checkov:skip=CKV_AZURE_225: zone redundancy for Flex Consumption is a newer, region-limited plan option that could not be verified offline; instances are stateless and the state is in GZRS storage.
  properties: {
    reserved: true
  }
}

resource site 'Microsoft.Web/sites@2024-04-01' = {
  name: name
  location: location
  tags: tags
  kind: 'functionapp,linux'
  //checkov:skip=CKV_AZURE_78: Flex Consumption has no FTP endpoint, and ARM refuses siteConfig.ftpsState on Flex sites (error 51021); tests/test_settings_consistency.py keeps it out.
  identity: {
    type: 'UserAssigned'
    userAssignedIdentities: {
      '${identityId}': {}
    }
  }
  //checkov:skip=CKV_AZURE_17: client certificates cannot be asked of browsers, of Microsoft Entra's SAML POSTs or of its SCIM client.
  //checkov:skip=CKV_AZURE_222: the endpoints must be reachable from the Internet: browsers, Microsoft Entra (SAML and SCIM) and mobile apps.
  //checkov:skip=CKV_AZURE_212: a worker count belongs to fixed App Service plans; Flex Consumption scales out per function from zero (or alwaysReadyHttpInstances).
  //checkov:skip=CKV_AZURE_213: App Service health check serves dedicated and Elastic Premium plans, not Flex Consumption; the platform replaces failed instances itself.
  properties: {
    serverFarmId: plan.id
    httpsOnly: true
    clientAffinityEnabled: false
    publicNetworkAccess: 'Enabled'
    keyVaultReferenceIdentity: identityId
    siteConfig: {
      minTlsVersion: '1.2'
      scmMinTlsVersion: '1.2'
      // No ftpsState (nor any other property Flex Consumption rejects, tests/test_settings_consistency.py):
      // ARM refuses it for Flex sites with error 51021, and a Flex app has no FTP endpoint to turn off.
      http20Enabled: true
      // No `cors` here, on purpose: the OpenID Provider's discovery, JWKS, token and UserInfo answer CORS and their
      // OPTIONS preflight themselves (functions/oidc.py). Platform CORS would apply to every route (admin API, ACS)
      // and, once set, takes precedence over what the functions answer (docs/oidc-conformance.md).
    }
    functionAppConfig: {
      deployment: {
        storage: {
          type: 'blobContainer'
          value: deploymentContainerUrl
          authentication: {
            type: 'UserAssignedIdentity'
            userAssignedIdentityResourceId: identityId
          }
        }
      }
      scaleAndConcurrency: {
        instanceMemoryMB: instanceMemoryMB
        maximumInstanceCount: maximumInstanceCount
        // Requests mostly wait on storage round trips; one worker thread each overlaps those waits on the
        // instance's core. The Python worker's thread pool (default min(32, cores + 4)) has room for them.
        triggers: {
          http: {
            perInstanceConcurrency: httpPerInstanceConcurrency
          }
        }
        alwaysReady: alwaysReadyHttpInstances > 0 ? [
          {
            name: 'http'
            instanceCount: alwaysReadyHttpInstances
          }
        ] : []
      }
      runtime: {
        name: 'python'
        version: '3.11'
      }
    }
  }
}

// azd deploys with Entra tokens; basic (user name and password) publishing to the SCM endpoint stays off.
// There is no `ftp` policy: Flex Consumption has no FTP endpoint (the Azure-Samples Flex templates declare
// neither policy), and a property for a feature the plan lacks is what made ftpsState fail.
resource scmBasicAuth 'Microsoft.Web/sites/basicPublishingCredentialsPolicies@2024-04-01' = {
  parent: site
  name: 'scm'
  properties: {
    allow: false
  }
}

output id string = site.id
output name string = site.name
output defaultHostName string = site.properties.defaultHostName
