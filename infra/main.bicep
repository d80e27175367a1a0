// Rufpool on Azure: Azure Bot (single tenant or user-assigned managed identity, Teams channel) -> Container Apps
// (https, 1 to maxReplicas replicas on one PostgreSQL database) with secrets from Key Vault via a managed identity,
// PostgreSQL flexible server, Log Analytics.
//
//   az deployment group create --resource-group <rg> --template-file infra/main.bicep \
//     --parameters @infra/main.parameters.json \
//     --parameters microsoftAppPassword=$APP_SECRET graphClientState=$CLIENT_STATE postgresAdminPassword=$PG_PASSWORD
//
// See docs/admin-guide.en.md (English) or docs/admin-guide.de.md (Deutsch) for the whole procedure.

targetScope = 'resourceGroup'

@description('Short name used in every resource name.')
@minLength(3)
@maxLength(12)
param appName string = 'rufpool'

param location string = resourceGroup().location

param tags object = {
  app: 'rufpool'
}

// --- Identity: one single-tenant app registration serves the bot and (by default) Microsoft Graph ---

@description('How the bot authenticates to the Bot Framework: SingleTenant = the app registration and its client secret; UserAssignedMSI = the user-assigned managed identity this template creates (no bot secret to rotate; Graph still uses the app registration).')
@allowed(['SingleTenant', 'UserAssignedMSI'])
param botAppType string = 'SingleTenant'

@description('Application (client) ID of the single-tenant app registration (MicrosoftAppId).')
param microsoftAppId string

@description('Client secret of that app registration (MicrosoftAppPassword).')
@secure()
param microsoftAppPassword string

@description('App registration used for Graph; empty = the bot\'s (MicrosoftAppId).')
param graphClientId string = ''

@description('Client secret for Graph; empty = MicrosoftAppPassword.')
@secure()
param graphClientSecret string = ''

@description('Random secret (at most 128 characters) that Graph echoes in every change notification.')
@secure()
@maxLength(128)
param graphClientState string

param graphBaseUrl string = 'https://graph.microsoft.com/v1.0'

// --- Placetel call webhooks (optional) ---

@description('Shared secret of Placetel\'s Notify API (Settings → External APIs); empty = mails only.')
@secure()
param placetelNotifySecret string = ''

@description('reached: a callback that reached the caller marks the case done; never: it is only shown.')
@allowed(['reached', 'never'])
param autoDoneOnCallback string = 'never'

// --- What Rufpool watches and who may link channels ---

@description('Pool lines: [{"id": "zentrale", "mailbox": "zentrale@firma.de", "numbers": ["+49..."], "display_name": "Zentrale"}]')
param poolLines array

@description('E-mail addresses (UPNs) of the users allowed to link channels with "@Rufpool verbinden <Leitung>".')
param linkAdmins array = []

@description('true: the owners of a team may link that team\'s channels too. Needs the Graph application permission GroupMember.Read.All on the Graph app registration.')
param linkTeamOwners bool = false

// --- Hosting ---

@description('Container image, e.g. myregistry.azurecr.io/rufpool:1.0.0')
param containerImage string

@description('Existing Azure Container Registry in this resource group to pull from with the managed identity; empty = public image.')
param containerRegistryName string = ''

@description('Custom host name you will bind to the container app (optional); empty = its *.azurecontainerapps.io name.')
param customHostName string = ''

@allowed(['F0', 'S1'])
param botSku string = 'F0'

// --- Database ---

param postgresAdminLogin string = 'rufpool'

@secure()
@minLength(12)
param postgresAdminPassword string

param postgresSkuName string = 'Standard_B1ms'

@description('Most replicas of the container app. Replicas share the PostgreSQL database: a database lease gives each mailbox one subscription owner, the outbox hands each job to one worker. 2 = one replica keeps serving while the other restarts or a new revision starts.')
@minValue(1)
@maxValue(10)
param maxReplicas int = 2
param postgresSkuTier string = 'Burstable'

param enableKeyVaultPurgeProtection bool = false

var suffix = uniqueString(resourceGroup().id, appName)
var botUsesManagedIdentity = botAppType == 'UserAssignedMSI'
var databaseName = 'rufpool'

module monitoring 'modules/monitoring.bicep' = {
  name: 'monitoring'
  params: {
    name: 'log-${appName}-${suffix}'
    location: location
    tags: tags
  }
}

module identity 'modules/identity.bicep' = {
  name: 'identity'
  params: {
    name: 'id-${appName}-${suffix}'
    location: location
    tags: tags
    containerRegistryName: containerRegistryName
  }
}

module postgres 'modules/postgres.bicep' = {
  name: 'postgres'
  params: {
    name: 'psql-${appName}-${suffix}'
    location: location
    tags: tags
    administratorLogin: postgresAdminLogin
    administratorPassword: postgresAdminPassword
    databaseName: databaseName
    skuName: postgresSkuName
    skuTier: postgresSkuTier
  }
}

// The bot's id: the app registration's, or the managed identity's client id.
var botAppId = botUsesManagedIdentity ? identity.outputs.clientId : microsoftAppId

// psycopg accepts a URL; the password is percent-encoded, TLS is required by the server.
var databaseUrl = 'postgresql://${postgresAdminLogin}:${uriComponent(postgresAdminPassword)}@${postgres.outputs.fqdn}:5432/${databaseName}?sslmode=require'

module keyVault 'modules/keyvault.bicep' = {
  name: 'keyvault'
  params: {
    name: 'kv-${take(suffix, 13)}'
    location: location
    tags: tags
    readerPrincipalId: identity.outputs.principalId
    enablePurgeProtection: enableKeyVaultPurgeProtection
    secrets: union({
      MicrosoftAppPassword: botUsesManagedIdentity ? 'unused: the bot authenticates with its managed identity' : microsoftAppPassword
      'GRAPH-CLIENT-SECRET': empty(graphClientSecret) ? microsoftAppPassword : graphClientSecret
      'GRAPH-CLIENT-STATE': graphClientState
      'DATABASE-URL': databaseUrl
    }, empty(placetelNotifySecret) ? {} : { 'PLACETEL-NOTIFY-SECRET': placetelNotifySecret })
  }
}

module containerApp 'modules/containerapp.bicep' = {
  name: 'containerapp'
  // Every output used below makes this module wait for the whole module that produced it: the identity
  // module's AcrPull assignment and the Key Vault module's secrets and role assignment exist before the
  // first revision pulls its image and resolves its secrets.
  params: {
    name: 'ca-${appName}'
    environmentName: 'cae-${appName}-${suffix}'
    location: location
    tags: tags
    logAnalyticsWorkspaceName: monitoring.outputs.workspaceName
    identityId: identity.outputs.id
    containerImage: containerImage
    registryServer: empty(containerRegistryName) ? '' : '${containerRegistryName}.azurecr.io'
    keyVaultUri: keyVault.outputs.vaultUri
    customHostName: customHostName
    maxReplicas: maxReplicas
    secretSettings: concat(botUsesManagedIdentity ? [] : [
      { env: 'MicrosoftAppPassword', vaultSecret: 'MicrosoftAppPassword' }
    ], [
      { env: 'GRAPH_CLIENT_SECRET', vaultSecret: 'GRAPH-CLIENT-SECRET' }
      { env: 'GRAPH_CLIENT_STATE', vaultSecret: 'GRAPH-CLIENT-STATE' }
      { env: 'DATABASE_URL', vaultSecret: 'DATABASE-URL' }
    ], empty(placetelNotifySecret) ? [] : [
      { env: 'PLACETEL_NOTIFY_SECRET', vaultSecret: 'PLACETEL-NOTIFY-SECRET' }
    ])
    plainSettings: {
      MicrosoftAppId: botAppId
      MicrosoftAppType: botAppType
      MicrosoftAppTenantId: tenant().tenantId
      GRAPH_TENANT_ID: tenant().tenantId
      GRAPH_CLIENT_ID: empty(graphClientId) ? microsoftAppId : graphClientId
      GRAPH_BASE_URL: graphBaseUrl
      POOL_LINES: string(poolLines)
      LINK_ADMINS: join(linkAdmins, ',')
      LINK_TEAM_OWNERS: linkTeamOwners ? 'true' : 'false'
      AUTO_DONE_ON_CALLBACK: autoDoneOnCallback
      LOG_LEVEL: 'INFO'
    }
  }
}

module bot 'modules/bot.bicep' = {
  name: 'bot'
  params: {
    name: 'bot-${appName}-${suffix}'
    tags: tags
    microsoftAppId: botAppId
    appType: botAppType
    managedIdentityResourceId: botUsesManagedIdentity ? identity.outputs.id : ''
    messagingEndpoint: '${containerApp.outputs.publicBaseUrl}/api/messages'
    sku: botSku
  }
}

output publicBaseUrl string = containerApp.outputs.publicBaseUrl
output containerAppName string = containerApp.outputs.name
output containerAppFqdn string = containerApp.outputs.fqdn
output botName string = bot.outputs.name
@description('The bot\'s MicrosoftAppId (the managed identity\'s client id with UserAssignedMSI): use it for make package.')
output botAppId string = botAppId
output messagingEndpoint string = bot.outputs.endpoint
output keyVaultName string = keyVault.outputs.vaultName
output postgresHost string = postgres.outputs.fqdn
