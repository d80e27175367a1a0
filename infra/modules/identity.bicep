// User-assigned managed identity of the container app. It exists before the app, so its Key Vault and
// registry role assignments are in place when the first revision starts and pulls secrets and the image.

param name string
param location string
param tags object = {}

@description('Name of an existing Azure Container Registry in this resource group to pull the image from; empty = public image.')
param containerRegistryName string = ''

var acrPullRoleId = '7f951dda-4ed3-4680-a7ca-43fe172d538d' // built-in role "AcrPull"

resource identity 'Microsoft.ManagedIdentity/userAssignedIdentities@2023-01-31' = {
  name: name
  location: location
  tags: tags
}

resource registry 'Microsoft.ContainerRegistry/registries@2023-07-01' existing = if (!empty(containerRegistryName)) {
  name: containerRegistryName
}

resource acrPull 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (!empty(containerRegistryName)) {
  name: guid(resourceGroup().id, containerRegistryName, identity.id, acrPullRoleId)
  scope: registry
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', acrPullRoleId)
    principalId: identity.properties.principalId
    principalType: 'ServicePrincipal'
  }
}

output id string = identity.id
output principalId string = identity.properties.principalId
output clientId string = identity.properties.clientId
