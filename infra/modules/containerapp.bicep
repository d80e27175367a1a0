// Container Apps environment (logs to Log Analytics) and the Rufpool container app: https ingress on port
// 3978, at least one replica always (Graph notifications and the outbox worker must not wait for a cold start),
// up to maxReplicas under HTTP load,
// secrets resolved from Key Vault through the user-assigned managed identity.

param name string
param environmentName string
param location string
param tags object = {}

param logAnalyticsWorkspaceName string

@description('Resource id of the user-assigned identity (Key Vault Secrets User, AcrPull).')
param identityId string

@description('Image to run, e.g. myregistry.azurecr.io/rufpool:1.0.0')
param containerImage string

@description('Login server of the registry pulled with the managed identity; empty = public image.')
param registryServer string = ''

@description('Key Vault URI with trailing slash.')
param keyVaultUri string

@description('[{ env: ENV_NAME, vaultSecret: key-vault-secret-name }]: settings read from Key Vault.')
param secretSettings array

@description('ENV_NAME -> value: plain settings.')
param plainSettings object

@description('Custom host name bound to the app later (optional); empty = the app\'s own *.azurecontainerapps.io name.')
param customHostName string = ''

param cpu string = '0.5'
param memory string = '1Gi'

@description('Most replicas; more than 1 needs DATABASE_URL on PostgreSQL (SQLite is one process\'s file).')
@minValue(1)
param maxReplicas int = 2

var port = 3978

resource workspace 'Microsoft.OperationalInsights/workspaces@2023-09-01' existing = {
  name: logAnalyticsWorkspaceName
}

resource managedEnvironment 'Microsoft.App/managedEnvironments@2025-01-01' = {
  name: environmentName
  location: location
  tags: tags
  properties: {
    appLogsConfiguration: {
      destination: 'log-analytics'
      logAnalyticsConfiguration: {
        customerId: workspace.properties.customerId
        sharedKey: workspace.listKeys().primarySharedKey
      }
    }
  }
}

var publicBaseUrl = empty(customHostName)
  ? 'https://${name}.${managedEnvironment.properties.defaultDomain}'
  : 'https://${customHostName}'

var secretEnv = [for setting in secretSettings: {
  name: setting.env
  secretRef: toLower(setting.vaultSecret)
}]

var plainEnv = [for setting in items(plainSettings): {
  name: setting.key
  value: setting.value
}]

resource app 'Microsoft.App/containerApps@2025-01-01' = {
  name: name
  location: location
  tags: tags
  identity: {
    type: 'UserAssigned'
    userAssignedIdentities: {
      '${identityId}': {}
    }
  }
  properties: {
    managedEnvironmentId: managedEnvironment.id
    configuration: {
      activeRevisionsMode: 'Single'
      ingress: {
        external: true
        targetPort: port
        transport: 'auto'
        allowInsecure: false
      }
      registries: empty(registryServer) ? [] : [
        {
          server: registryServer
          identity: identityId
        }
      ]
      secrets: [for setting in secretSettings: {
        name: toLower(setting.vaultSecret)
        keyVaultUrl: '${keyVaultUri}secrets/${setting.vaultSecret}'
        identity: identityId
      }]
    }
    template: {
      containers: [
        {
          name: 'rufpool'
          image: containerImage
          resources: {
            cpu: json(cpu)
            memory: memory
          }
          env: concat(secretEnv, plainEnv, [
            { name: 'PUBLIC_BASE_URL', value: publicBaseUrl }
            { name: 'HOST', value: '0.0.0.0' }
            { name: 'PORT', value: string(port) }
          ])
          probes: [
            {
              type: 'Liveness'
              httpGet: {
                path: '/healthz'
                port: port
              }
              initialDelaySeconds: 10
              periodSeconds: 30
              failureThreshold: 3
            }
            {
              type: 'Readiness'
              httpGet: {
                path: '/healthz?probe=ready'
                port: port
              }
              initialDelaySeconds: 5
              periodSeconds: 10
              failureThreshold: 3
            }
          ]
        }
      ]
      scale: {
        minReplicas: 1
        maxReplicas: maxReplicas
      }
    }
  }
}

output publicBaseUrl string = publicBaseUrl
output fqdn string = app.properties.configuration.ingress.fqdn
output name string = app.name
