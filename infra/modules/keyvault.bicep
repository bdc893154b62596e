// Key Vault (RBAC authorisation, no access policies) holding the secrets the app reads through Key Vault
// references: PLATFORM_ADMIN_KEY (the operator's key), SESSION_SIGNING_KEY and OIDC_SIGNING_KEYS.
//
// `oidc-signing-keys` (a JSON array of PKCS#8 PEM RSA keys; the first signs, all are published in the JWKS) is
// deliberately NOT declared here: a secret resource writes its value on every provision, which would replace
// the keys (and break every token already issued) or undo a rotation. tools/postprovision.py creates it once,
// when it does not exist, and never touches it again; rotation is `python tools/postprovision.py --rotate-oidc-key`
// (docs/deploy.md).

@description('Key Vault name: 3-24 letters, digits and hyphens, globally unique.')
param name string

param location string
param tags object = {}

@secure()
@description('Value of the platform-admin-key secret (PLATFORM_ADMIN_KEY).')
param platformAdminKey string

@secure()
@description('Value of the session-signing-key secret (SESSION_SIGNING_KEY).')
param sessionSigningKey string

@description('Name of the secret holding the OpenID Provider signing keys; created by tools/postprovision.py, not here.')
param oidcSigningKeysSecretName string = 'oidc-signing-keys'

resource vault 'Microsoft.KeyVault/vaults@2023-07-01' = {
  name: name
  location: location
  tags: tags
  //checkov:skip=CKV_AZURE_109: Key Vault references from a function app without VNet integration resolve over the public endpoint (App Service is not a trusted service for them); access is RBAC-only.
  //checkov:skip=CKV_AZURE_189: same reason as CKV_AZURE_109: the public endpoint must stay reachable for Key Vault references and for `azd provision` reading the secrets back.
  properties: {
    tenantId: subscription().tenantId
    sku: {
      family: 'A'
      name: 'standard'
    }
    enableRbacAuthorization: true
    enableSoftDelete: true
    softDeleteRetentionInDays: 90
    // A deleted vault keeps its name for the retention period; `azd down` cannot purge it (docs/deploy.md).
    enablePurgeProtection: true
    publicNetworkAccess: 'Enabled'
    networkAcls: {
      defaultAction: 'Allow'
      bypass: 'AzureServices'
    }
  }
}

resource platformAdminKeySecret 'Microsoft.KeyVault/vaults/secrets@2023-07-01' = {
  parent: vault
  name: 'platform-admin-key'
  //checkov:skip=CKV_AZURE_41: an expiry date does not stop App Service from resolving the secret, it only suggests rotation; rotation is an operator procedure (docs/deploy.md).
  properties: {
    value: platformAdminKey
    contentType: 'text/plain'
    attributes: {
      enabled: true
    }
  }
}

resource sessionSigningKeySecret 'Microsoft.KeyVault/vaults/secrets@2023-07-01' = {
  parent: vault
  name: 'session-signing-key'
  //checkov:skip=CKV_AZURE_41: same reason as for platform-admin-key: rotation is an operator procedure (docs/deploy.md).
  properties: {
    value: sessionSigningKey
    contentType: 'text/plain'
    attributes: {
      enabled: true
    }
  }
}

output id string = vault.id
output name string = vault.name
output uri string = vault.properties.vaultUri
// Versionless URIs: App Service picks up a rotated secret without a redeployment.
output platformAdminKeySecretUri string = '${vault.properties.vaultUri}secrets/${platformAdminKeySecret.name}'
output sessionSigningKeySecretUri string = '${vault.properties.vaultUri}secrets/${sessionSigningKeySecret.name}'
output oidcSigningKeysSecretName string = oidcSigningKeysSecretName
output oidcSigningKeysSecretUri string = '${vault.properties.vaultUri}secrets/${oidcSigningKeysSecretName}'
