// Applies the app settings that main.bicep assembles. Kept apart from functionapp.bicep because
// PUBLIC_BASE_URL is built from the app's default host name, which exists only once the app does.
// This replaces every app setting on each provision: settings belong in main.bicep, not in the portal.

param functionAppName string

@description('Every app setting, by name (main.bicep: var appSettings).')
param appSettings object

resource site 'Microsoft.Web/sites@2024-04-01' existing = {
  name: functionAppName
}

// checkov reads every Microsoft.Web/sites/config as the `web` configuration. This one is `appsettings`,
// plain name/value pairs that cannot hold the properties below; the web configuration is the siteConfig
// of modules/functionapp.bicep, where the checks that apply to this app run.
resource settings 'Microsoft.Web/sites/config@2024-04-01' = {
  //checkov:skip=CKV_AZURE_13: not the web config; and Easy Auth would put a second sign-in before endpoints public by design (SAML ACS, SCIM, mobile config).
  //checkov:skip=CKV_AZURE_63: not the web config; App Service HTTP logs do not exist on Flex Consumption, requests go to Application Insights.
  //checkov:skip=CKV_AZURE_65: not the web config; detailed error pages are an IIS feature, and the app must never show error details.
  //checkov:skip=CKV_AZURE_66: not the web config; failed request tracing is an IIS (Windows) feature.
  parent: site
  //checkov:skip=CKV_AZURE_80: not the web config; this is a Python app, no .NET Framework.
  //checkov:skip=CKV_AZURE_88: not the web config; the app keeps no files, its state is in Table Storage.
  //checkov:skip=CKV_AZURE_222: not the web config; public access is decided at the site (functionapp.bicep).
  name: 'appsettings'
  properties: appSettings
}
