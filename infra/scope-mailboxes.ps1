<#
.SYNOPSIS
    Limits Rufpool's Mail.ReadWrite to the pool mailboxes (RBAC for Applications in Exchange Online) and
    removes the tenant-wide Microsoft Graph grant.

.DESCRIPTION
    An Entra application permission "Mail.ReadWrite" with admin consent lets the app read and change EVERY
    mailbox in the tenant. Rufpool only needs the shared mailboxes of its pool lines. This script:

      1. registers the app's service principal in Exchange Online (New-ServicePrincipal),
      2. puts the pool mailboxes into a mail-enabled security group (created if missing, kept in sync),
      3. creates a management scope whose RecipientRestrictionFilter matches the members of that group,
      4. assigns the Exchange role "Application Mail.ReadWrite" to the app, limited to that scope,
      5. removes the tenant-wide Entra grant of Graph Mail.ReadWrite (Remove-MgServicePrincipalAppRoleAssignment),
         because Exchange grants the UNION of both: while the Entra grant exists, the scope restricts nothing,
      6. checks the result with Test-ServicePrincipalAuthorization.

    It is idempotent: run it again after changing POOL_LINES, with the new list of mailboxes.

    Requirements: PowerShell 7, modules ExchangeOnlineManagement (3.x) and Microsoft.Graph.Applications
    (Install-Module ExchangeOnlineManagement, Microsoft.Graph.Applications -Scope CurrentUser). Run as an
    Exchange administrator who can also manage app role assignments (e.g. Global Administrator, or Exchange
    Administrator plus Privileged Role Administrator).

    Changes to RBAC for Applications can take 30 minutes to 2 hours to reach every Exchange server; until then
    Test-ServicePrincipalAuthorization may already say InScope = True while Graph still answers 403.

.PARAMETER AppId
    Application (client) ID of the Rufpool app registration (GRAPH_CLIENT_ID, usually = MicrosoftAppId).

.PARAMETER PoolMailboxes
    The shared mailboxes of all pool lines (the "mailbox" values of POOL_LINES).

.PARAMETER GroupName
    Mail-enabled security group that defines the scope. Created when missing; its members are synchronised
    with -PoolMailboxes.

.PARAMETER ScopeName
    Name of the Exchange management scope.

.PARAMETER AssignmentName
    Name of the management role assignment.

.PARAMETER OutsideMailbox
    Optional: a mailbox that is NOT a pool mailbox; the check then also shows that the app cannot reach it.

.PARAMETER KeepTenantWideGrant
    Do not remove the Entra grant (only for a transition; the scope has no effect while it exists).

.PARAMETER TenantId
    Tenant to sign in to with Microsoft Graph PowerShell (default: your home tenant).

.EXAMPLE
    ./infra/scope-mailboxes.ps1 -AppId 00000000-0000-0000-0000-000000000000 `
        -PoolMailboxes zentrale@firma.de, service@firma.de -OutsideMailbox chef@firma.de

.EXAMPLE
    ./infra/scope-mailboxes.ps1 -AppId 00000000-0000-0000-0000-000000000000 -PoolMailboxes zentrale@firma.de -WhatIf
#>
#Requires -Version 7.0
#Requires -Modules ExchangeOnlineManagement, Microsoft.Graph.Applications
[CmdletBinding(SupportsShouldProcess = $true)]
param(
    [Parameter(Mandatory = $true)]
    [ValidatePattern('^[0-9a-fA-F]{8}-([0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}$')]
    [string] $AppId,

    [Parameter(Mandatory = $true)]
    [ValidateNotNullOrEmpty()]
    [string[]] $PoolMailboxes,

    [string] $GroupName = 'Rufpool-Pool-Postfaecher',

    [string] $ScopeName = 'Rufpool pool mailboxes',

    [string] $AssignmentName = 'Rufpool Mail.ReadWrite (pool mailboxes)',

    [string] $OutsideMailbox,

    [switch] $KeepTenantWideGrant,

    [string] $TenantId
)

Set-StrictMode -Version Latest
$ErrorActionPreference = 'Stop'

$GraphAppId = '00000003-0000-0000-c000-000000000000'   # Microsoft Graph's well-known application id
$ExchangeRole = 'Application Mail.ReadWrite'

# --- Sign in (interactive) unless a session already exists ----------------------------------------------
if (-not (Get-MgContext)) {
    $graphParameters = @{ Scopes = @('Application.Read.All', 'AppRoleAssignment.ReadWrite.All'); NoWelcome = $true }
    if ($TenantId) { $graphParameters.TenantId = $TenantId }
    Connect-MgGraph @graphParameters
}
if (-not (Get-ConnectionInformation | Where-Object State -eq 'Connected')) {
    Connect-ExchangeOnline -ShowBanner:$false
}

# --- 1. The app's service principal, known to Exchange ----------------------------------------------------
# Exchange needs a pointer to the Entra service principal (enterprise application), not to the app
# registration: its ObjectId is the service principal's object id.
$servicePrincipal = Get-MgServicePrincipal -Filter "appId eq '$AppId'"
if (-not $servicePrincipal) {
    throw "No enterprise application (service principal) for app id $AppId in this tenant. Grant admin consent once or create it with New-MgServicePrincipal -AppId $AppId."
}
$exchangePrincipal = Get-ServicePrincipal -Identity $servicePrincipal.Id -ErrorAction SilentlyContinue
if (-not $exchangePrincipal -and $PSCmdlet.ShouldProcess($servicePrincipal.DisplayName, 'New-ServicePrincipal in Exchange Online')) {
    $exchangePrincipal = New-ServicePrincipal -AppId $AppId -ObjectId $servicePrincipal.Id -DisplayName $servicePrincipal.DisplayName
}

# --- 2. Mail-enabled security group holding exactly the pool mailboxes ----------------------------------
$group = Get-DistributionGroup -Identity $GroupName -ErrorAction SilentlyContinue
if (-not $group -and $PSCmdlet.ShouldProcess($GroupName, 'New-DistributionGroup -Type Security')) {
    $group = New-DistributionGroup -Name $GroupName -Type Security -Notes 'Rufpool: pool mailboxes the app may access (RBAC for Applications scope). Do not add other members.'
    # Nobody needs to mail this group: keep it out of the address book.
    Set-DistributionGroup -Identity $group.Identity -HiddenFromAddressListsEnabled $true
}
if ($group) {
    $wanted = @($PoolMailboxes | ForEach-Object { (Get-Mailbox -Identity $_).PrimarySmtpAddress.ToString().ToLowerInvariant() })
    $current = @(Get-DistributionGroupMember -Identity $group.Identity -ResultSize Unlimited |
        ForEach-Object { $_.PrimarySmtpAddress.ToString().ToLowerInvariant() })
    foreach ($address in $wanted | Where-Object { $_ -notin $current }) {
        if ($PSCmdlet.ShouldProcess($address, "Add to $GroupName")) {
            Add-DistributionGroupMember -Identity $group.Identity -Member $address -BypassSecurityGroupManagerCheck
        }
    }
    foreach ($address in $current | Where-Object { $_ -notin $wanted }) {
        if ($PSCmdlet.ShouldProcess($address, "Remove from $GroupName (not a pool mailbox)")) {
            Remove-DistributionGroupMember -Identity $group.Identity -Member $address -BypassSecurityGroupManagerCheck -Confirm:$false
        }
    }
}

# --- 3. Management scope: "members of that group" ---------------------------------------------------------
# MemberOfGroup compares with the group's distinguished name. Only DIRECT members count (no nesting).
if ($group) {
    $filter = "MemberOfGroup -eq '$($group.DistinguishedName)'"
    $scope = Get-ManagementScope -Identity $ScopeName -ErrorAction SilentlyContinue
    if (-not $scope -and $PSCmdlet.ShouldProcess($ScopeName, "New-ManagementScope ($filter)")) {
        New-ManagementScope -Name $ScopeName -RecipientRestrictionFilter $filter | Out-Null
    }
    elseif ($scope -and $scope.RecipientFilter -ne $filter -and $PSCmdlet.ShouldProcess($ScopeName, "Set-ManagementScope ($filter)")) {
        Set-ManagementScope -Identity $ScopeName -RecipientRestrictionFilter $filter
    }
}

# --- 4. Exchange role "Application Mail.ReadWrite", limited to the scope ------------------------------------
$assignment = Get-ManagementRoleAssignment -Identity $AssignmentName -ErrorAction SilentlyContinue
if (-not $assignment -and $PSCmdlet.ShouldProcess($AssignmentName, "New-ManagementRoleAssignment -Role '$ExchangeRole'")) {
    New-ManagementRoleAssignment -Name $AssignmentName -Role $ExchangeRole -App $servicePrincipal.Id -CustomResourceScope $ScopeName | Out-Null
}

# --- 5. Remove the tenant-wide Entra grant of Graph Mail.ReadWrite ------------------------------------------
# Exchange authorises an app with the union of its Entra grants and its Exchange role assignments, so the
# scope above only restricts anything once the unscoped Entra grant is gone. Also remove Mail.ReadWrite from
# the app registration's "API permissions" list (or never press "Grant admin consent" again): consenting
# again would bring the tenant-wide grant back.
if (-not $KeepTenantWideGrant) {
    $graph = Get-MgServicePrincipal -Filter "appId eq '$GraphAppId'"
    $mailReadWrite = $graph.AppRoles | Where-Object { $_.Value -eq 'Mail.ReadWrite' -and $_.AllowedMemberTypes -contains 'Application' }
    $grants = @(Get-MgServicePrincipalAppRoleAssignment -ServicePrincipalId $servicePrincipal.Id -All |
        Where-Object { $_.ResourceId -eq $graph.Id -and $_.AppRoleId -eq $mailReadWrite.Id })
    foreach ($grant in $grants) {
        if ($PSCmdlet.ShouldProcess("$($servicePrincipal.DisplayName): Graph Mail.ReadWrite (tenant-wide)", 'Remove-MgServicePrincipalAppRoleAssignment')) {
            Remove-MgServicePrincipalAppRoleAssignment -ServicePrincipalId $servicePrincipal.Id -AppRoleAssignmentId $grant.Id
        }
    }
    if ($grants.Count -eq 0) {
        Write-Host 'No tenant-wide Graph Mail.ReadWrite grant found (already removed).'
    }
}

# --- 6. Check ----------------------------------------------------------------------------------------------
$expectations = @($PoolMailboxes | ForEach-Object { [pscustomobject]@{ Mailbox = $_; Expected = $true } })
if ($OutsideMailbox) {
    $expectations += [pscustomobject]@{ Mailbox = $OutsideMailbox; Expected = $false }
}
$problems = 0
$report = foreach ($expectation in $expectations) {
    $result = Test-ServicePrincipalAuthorization -Identity $servicePrincipal.Id -Resource $expectation.Mailbox |
        Where-Object RoleName -eq $ExchangeRole
    $inScope = [bool]($result -and $result.InScope)
    if ($inScope -ne $expectation.Expected) { $problems++ }
    [pscustomobject]@{
        Mailbox  = $expectation.Mailbox
        Role     = $ExchangeRole
        InScope  = $inScope
        Expected = $expectation.Expected
        Ok       = ($inScope -eq $expectation.Expected)
    }
}
$report | Format-Table -AutoSize

if ($problems -gt 0 -and -not $WhatIfPreference) {
    Write-Warning "$problems mailbox(es) not as expected. New group members and scopes can take up to 2 hours to apply; run the script again later. Then check with: python -m bot doctor"
    exit 1
}
Write-Host "Done. Rufpool may now access only: $($PoolMailboxes -join ', '). Verify end-to-end with: python -m bot doctor"
