// Azure Bot resource (a single-tenant Entra app registration or a user-assigned managed identity) with the
// Microsoft Teams channel enabled.

param name string
param tags object = {}

@description('MicrosoftAppId: the app registration\'s Application (client) ID, or the managed identity\'s client id.')
param microsoftAppId string

@allowed(['SingleTenant', 'UserAssignedMSI'])
param appType string = 'SingleTenant'

@description('Resource id of the user-assigned managed identity (UserAssignedMSI only).')
param managedIdentityResourceId string = ''

@description('https://<host>/api/messages')
param messagingEndpoint string

@allowed(['F0', 'S1'])
@description('Teams is a standard channel: F0 (free) is enough.')
param sku string = 'F0'

resource bot 'Microsoft.BotService/botServices@2022-09-15' = {
  name: name
  location: 'global'
  tags: tags
  kind: 'azurebot'
  sku: {
    name: sku
  }
  properties: {
    displayName: 'Rufpool'
    endpoint: messagingEndpoint
    msaAppId: microsoftAppId
    msaAppType: appType
    msaAppTenantId: tenant().tenantId
    msaAppMSIResourceId: appType == 'UserAssignedMSI' ? managedIdentityResourceId : null
    publicNetworkAccess: 'Enabled'
  }
}

resource teams 'Microsoft.BotService/botServices/channels@2022-09-15' = {
  parent: bot
  name: 'MsTeamsChannel'
  location: 'global'
  properties: {
    channelName: 'MsTeamsChannel'
    properties: {
      isEnabled: true
    }
  }
}

output name string = bot.name
output endpoint string = bot.properties.endpoint
