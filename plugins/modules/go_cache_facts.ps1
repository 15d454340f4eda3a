#!powershell

# Copyright (c) gofleet.cache contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

# The Windows twin of go_cache_facts.py: same options, same ansible_facts.go_cache. The documentation is in
# go_cache_facts.py; the work is done by GoFleetCache.psm1, which the scheduled task agent shares.

#AnsibleRequires -CSharpUtil Ansible.Basic
#AnsibleRequires -PowerShell ansible_collections.gofleet.cache.plugins.module_utils.GoFleetCache

$spec = @{
    options = @{
        users = @{ type = 'list'; elements = 'str' }
        caches = @{
            type = 'list'
            elements = 'dict'
            default = @()
            options = @{
                path = @{ type = 'path'; required = $true }
                kind = @{ type = 'str'; required = $true; choices = @('build', 'module', 'fuzz') }
            }
        }
        kinds = @{ type = 'list'; elements = 'str'; choices = @('build', 'module', 'fuzz'); default = @('build', 'module', 'fuzz') }
        go = @{ type = 'str'; default = 'auto' }
        age_buckets = @{ type = 'list'; elements = 'str'; default = @('7d', '30d', '90d') }
        top = @{ type = 'int'; default = 10 }
        link_entries = @{ type = 'bool'; default = $true }
    }
    supports_check_mode = $true
}

$module = [Ansible.Basic.AnsibleModule]::Create($args, $spec)

function Get-GoCacheFactResult {
    # ansible_facts.go_cache for the requested accounts and explicit caches (the twin of _facts.gather).
    param ($Params)

    foreach ($label in $Params.age_buckets) { $null = ConvertFrom-GoDuration $label 'age_buckets' }
    if ($Params.top -lt 0) { throw (New-GoOptionError 'top' $Params.top 'expected a non-negative integer') }
    if ($Params.go -notin 'auto', 'none' -and -not (Test-GoAbsolutePath $Params.go)) {
        throw (New-GoOptionError 'go' $Params.go "expected 'auto', 'none' or an absolute path to go.exe")
    }
    foreach ($item in $Params.caches) {
        if (-not (Test-GoAbsolutePath $item.path)) { throw (New-GoOptionError 'caches' $item.path 'path must be absolute') }
    }
    $accounts = if ($null -eq $Params.users) { @(Get-GoCacheAccount) }
    elseif ($Params.users -contains '*') { @(Get-GoCacheAccount -All) }
    else { @($Params.users | ForEach-Object { Get-GoCacheAccount -Name $_ }) }

    $ageBuckets = [string[]]@($Params.age_buckets)
    $scanned = @{}
    $scanOnce = {
        # A cache shared by several accounts is scanned once.
        param ($path, $kind)
        $key = "$kind|$path"
        if (-not $scanned.ContainsKey($key)) {
            $scanned[$key] = Get-GoCacheFact -Path $path -Kind $kind -AgeBuckets $ageBuckets -Top $Params.top -LinkEntries $Params.link_entries
        }
        $item = $scanned[$key].Clone()
        $item.path = $path
        $item
    }

    $result = @{ caches = [System.Collections.Generic.List[object]]::new(); env = @{}; accounts = @{}
        conflicts = [System.Collections.Generic.List[object]]::new()
    }
    foreach ($account in $accounts) {
        $location = Get-GoAccountLocation -Account $account -Go $Params.go
        $settings = $location.environment.settings
        $envResult = @{}
        foreach ($name in $settings.Keys) { $envResult[$name] = ConvertTo-GoSettingResult $settings[$name] }
        $result.env[$account.name] = $envResult
        $result.accounts[$account.name] = @{ sid = $account.sid; home = $account.home; go_binary = $location.go_binary
            goroot = $location.environment.goroot; go_env_json = $location.go_env_json
            go_env_json_disagreements = $location.disagreements; errors = $location.errors
        }
        foreach ($conflict in $location.environment.conflicts) {
            $entry = $conflict.Clone()
            $entry.user = $account.name
            $result.conflicts.Add($entry)
        }
        foreach ($kind in $Params.kinds) {
            $path, $setting = Get-GoCacheLocation $location $kind
            if (-not (Test-GoAbsolutePath $path)) {
                $reason = if ($path -ceq 'off') { "$($setting.name) is off: Go uses no cache there" }
                elseif ($path) { "$($setting.name) is not an absolute path: '$path'" } else { "$($setting.name) is unset" }
                $item = Get-GoEmptyCacheFact $kind
                $item += @{ path = $(if ($path) { $path } else { $null }); kind = $kind; real_path = $null; exists = $false
                    valid = $false; filesystem = $null
                }
                $item.errors = @(@{ path = $path; error = $reason })
                $item.errors_total = 1
            }
            else {
                $item = & $scanOnce $path $kind
            }
            $item.user = $account.name
            $item.source = $setting.source
            $result.caches.Add($item)
        }
    }
    foreach ($explicit in $Params.caches) {
        $item = & $scanOnce $explicit.path $explicit.kind
        $item.user = $item.owner
        $item.source = 'explicit'
        $result.caches.Add($item)
    }
    $result
}

try {
    $facts = Get-GoCacheFactResult $module.Params
}
catch {
    if (-not (Test-GoOptionError $_)) { throw }
    $module.Result.option = $_.Exception.Data['gofleet_option']
    $module.Result.value = $_.Exception.Data['gofleet_value']
    $module.FailJson($_.Exception.Message)
}
$module.Result.changed = $false
$module.Result.ansible_facts = @{ go_cache = $facts }
$module.ExitJson()
