#!powershell

# Copyright (c) gofleet.cache contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

# The Windows twin of go_cache_prune.py: same options, same results. The documentation is in
# go_cache_prune.py; the work is done by GoFleetCache.psm1 (Invoke-GoCachePrune), which the scheduled task
# agent shares.

#AnsibleRequires -CSharpUtil Ansible.Basic
#AnsibleRequires -PowerShell ansible_collections.gofleet.cache.plugins.module_utils.GoFleetCache

$spec = @{
    options = @{
        user = @{ type = 'str' }
        kinds = @{ type = 'list'; elements = 'str'; choices = @('build', 'module', 'fuzz') }
        path = @{ type = 'path' }
        kind = @{ type = 'str'; choices = @('build', 'module', 'fuzz') }
        state = @{ type = 'str'; choices = @('present', 'absent'); default = 'present' }
        remove_incomplete = @{ type = 'bool'; default = $true }
        max_age = @{ type = 'str' }
        keep_versions = @{ type = 'int' }
        max_size = @{ type = 'str' }
        min_free = @{ type = 'str' }
        keep_recent = @{ type = 'str'; default = '1h' }
        keep = @{ type = 'list'; elements = 'str'; default = @() }
        keep_referenced = @{ type = 'list'; elements = 'path'; default = @() }
        if_busy = @{ type = 'str'; choices = @('wait', 'skip', 'proceed'); default = 'wait' }
        busy_timeout = @{ type = 'str'; default = '15m' }
        go = @{ type = 'str'; default = 'auto' }
    }
    mutually_exclusive = @(
        , @('path', 'user')
        , @('path', 'kinds')
    )
    required_together = @(, @('path', 'kind'))
    supports_check_mode = $true
}

$module = [Ansible.Basic.AnsibleModule]::Create($args, $spec)

$maxErrors = 20
$sampleSize = 20

function Resolve-GoCachePruneTarget {
    # @{path; kind; sid; label} to prune (the twin of _prune_run.resolve_targets).
    param ($Params)
    if ($Params.path) {
        return @(@{ path = $Params.path; kind = $Params.kind; sid = $null; label = 'explicit' })
    }
    if ($Params.kind) { throw (New-GoOptionError 'kind' $Params.kind 'kind goes with path; for a user use kinds') }
    $kinds = if ($null -eq $Params.kinds) { @('build') } else { @($Params.kinds) }
    $account = if ($Params.user) { Get-GoCacheAccount -Name $Params.user -Option 'user' } else { Get-GoCacheAccount }
    $location = Get-GoAccountLocation -Account $account -Go $Params.go
    foreach ($kind in $kinds) {
        $path, $null = Get-GoCacheLocation $location $kind
        @{ path = $path; kind = $kind; sid = $account.sid; label = $account.name }
    }
}

function Get-GoPruneSummary {
    # One line per cache for the diff: size before or after, and what went.
    param ($Caches, [switch]$After)
    $lines = foreach ($item in $Caches) {
        $size = if ($After) { $item.after_bytes } else { $item.before_bytes }
        $line = "$($item.kind) cache $($item.real_path): $(Format-GoByteCount $size)"
        if ($After) { $line += ", $($item.removed_entries) entries removed ($(Format-GoByteCount $item.removed_bytes))" }
        "$line`n"
    }
    -join @($lines)
}

try {
    $policy = New-GoCachePrunePolicy $module.Params
    $targets = @(Resolve-GoCachePruneTarget $module.Params)
    # Every root is verified before anything is removed.
    $checked = [System.Collections.Generic.List[object]]::new()
    $missing = [System.Collections.Generic.List[object]]::new()
    foreach ($target in $targets) {
        if ($target.label -ne 'explicit' -and (-not $target.path -or -not (Test-GoAbsolutePath $target.path) -or
                -not [System.IO.Directory]::Exists((Get-GoLongPath $target.path)))) {
            # An account without that cache yet has nothing to prune.
            $missing.Add(@{ path = $(if ($target.path) { $target.path } else { $null }); kind = $target.kind; user = $target.label })
            continue
        }
        $option = if ($target.label -eq 'explicit') { 'path' } else { 'user' }
        $null = Test-GoCacheRoot $target.path $target.kind $option
        $checked.Add($target)
    }
    $freedOnVolume = @{}
    $caches = foreach ($target in $checked) {
        $cache = Invoke-GoCachePrune -Path $target.path -Kind $target.kind -Policy $policy -CheckMode:$module.CheckMode `
            -BusyUserSid $target.sid -FreedOnVolume $freedOnVolume
        $cache.user = if ($target.label -eq 'explicit') { $null } else { $target.label }
        $cache
    }
}
catch {
    if (-not (Test-GoOptionError $_)) { throw }
    $module.Result.option = $_.Exception.Data['gofleet_option']
    $module.Result.value = $_.Exception.Data['gofleet_value']
    $module.FailJson($_.Exception.Message)
}

$caches = @($caches)
$result = $module.Result
foreach ($key in 'removed_entries', 'removed_bytes', 'before_bytes', 'after_bytes', 'errors_total') {
    $result[$key] = [long]0
    foreach ($cache in $caches) { $result[$key] += $cache[$key] }
}
$result.kept = @{}
$result.errors = [System.Collections.Generic.List[object]]::new()
$result.sample = [System.Collections.Generic.List[string]]::new()
foreach ($cache in $caches) {
    foreach ($reason in $cache.kept.Keys) {
        $result.kept[$reason] = $(if ($result.kept.ContainsKey($reason)) { $result.kept[$reason] } else { 0 }) + $cache.kept[$reason]
    }
    foreach ($item in $cache.errors) {
        if ($result.errors.Count -lt $maxErrors) { $result.errors.Add(@{ path = $item.path; error = $item.error; cache = $cache.real_path }) }
    }
    foreach ($name in $cache.sample) {
        if ($result.sample.Count -lt $sampleSize) { $result.sample.Add("$($cache.kind) $name") }
    }
}
$result.caches = $caches
$result.missing = $missing.ToArray()
$result.busy = @($caches | Where-Object { $_.busy } | ForEach-Object { $_.real_path })
$result.changed = $result.removed_entries -gt 0
if ($module.DiffMode) {
    # Ansible.Basic fills the diff from Module.Diff: the sizes before, and after what was (or would be) removed.
    $module.Diff.before = Get-GoPruneSummary $caches
    $module.Diff.after = Get-GoPruneSummary $caches -After
}
if ($result.busy.Count) {
    $busyKept = if ($result.kept.ContainsKey('busy')) { $result.kept['busy'] } else { 0 }
    $module.Warn("Go builds were running: $busyKept units left in $($result.busy -join ', ')")
}
$module.ExitJson()
