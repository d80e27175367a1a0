// Log Analytics workspace that receives the Container Apps console and system logs.

@description('Workspace name.')
param name string

param location string
param tags object = {}

@description('How long logs are kept.')
@minValue(30)
@maxValue(730)
param retentionInDays int = 30

resource workspace 'Microsoft.OperationalInsights/workspaces@2023-09-01' = {
  name: name
  location: location
  tags: tags
  properties: {
    sku: {
      name: 'PerGB2018'
    }
    retentionInDays: retentionInDays
    features: {
      enableLogAccessUsingOnlyResourcePermissions: true
    }
  }
}

output workspaceName string = workspace.name
output customerId string = workspace.properties.customerId
