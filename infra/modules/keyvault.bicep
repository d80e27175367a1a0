// Key Vault (RBAC mode) holding the app's secrets; the app's managed identity may read them and nothing else.

param name string
param location string
param tags object = {}

@description('Principal id of the managed identity that reads the secrets.')
param readerPrincipalId string

@description('Secret name -> value. Key Vault secret names allow only letters, digits and dashes.')
@secure()
param secrets object

@description('Purge protection cannot be switched off again; keep false for a first trial deployment.')
param enablePurgeProtection bool = false

var secretsUserRoleId = '4633458b-17de-408a-b874-0445c86b69e6' // built-in role "Key Vault Secrets User"

resource vault 'Microsoft.KeyVault/vaults@2023-07-01' = {
  name: name
  location: location
  tags: tags
  properties: {
    tenantId: tenant().tenantId
    sku: {
      family: 'A'
      name: 'standard'
    }
    enableRbacAuthorization: true
    enableSoftDelete: true
    softDeleteRetentionInDays: 90
    enablePurgeProtection: enablePurgeProtection ? true : null
    publicNetworkAccess: 'Enabled'
  }
}

resource secret 'Microsoft.KeyVault/vaults/secrets@2023-07-01' = [for item in items(secrets): {
  parent: vault
  name: item.key
  properties: {
    value: item.value
    contentType: 'text/plain'
  }
}]

resource secretsUser 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(vault.id, readerPrincipalId, secretsUserRoleId)
  scope: vault
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', secretsUserRoleId)
    principalId: readerPrincipalId
    principalType: 'ServicePrincipal'
  }
}

@description('Vault URI with a trailing slash, e.g. https://kv-abc.vault.azure.net/')
output vaultUri string = vault.properties.vaultUri
output vaultName string = vault.name
