// Azure Bot resource (single-tenant Entra app registration) with the Microsoft Teams channel enabled.

param name string
param tags object = {}

@description('Application (client) ID of the single-tenant app registration = MicrosoftAppId.')
param microsoftAppId string

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
    msaAppType: 'SingleTenant'
    msaAppTenantId: tenant().tenantId
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
