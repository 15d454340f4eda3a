#!powershell

# Copyright (c) gofleet.cache contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

# The Windows twin of go_env.py: same options, same results. The documentation is in go_env.py. The file is
# %AppData%\go\env of the account (or its GOENV), edited as `go env -w`/`go env -u` do by Edit-GoEnvFileText in
# GoFleetCache.psm1, and written with LF line ends only (Go keeps a CR in the value).

#AnsibleRequires -CSharpUtil Ansible.Basic
#AnsibleRequires -PowerShell ansible_collections.gofleet.cache.plugins.module_utils.GoFleetCache

$spec = @{
    options = @{
        user = @{ type = 'str' }
        path = @{ type = 'path' }
        vars = @{ type = 'dict'; default = @{} }
        state = @{ type = 'str'; choices = @('present', 'absent'); default = 'present' }
    }
    supports_check_mode = $true
}

$module = [Ansible.Basic.AnsibleModule]::Create($args, $spec)

function Write-GoEnvFile {
    <#
    .SYNOPSIS
    Replace the file with the text (UTF-8 without BOM, the bytes given) so that readers see the old or the new file,
    never a part: a temporary file in the same directory, renamed over the target. A new file and its directories
    inherit their permissions from the account's profile folder, where the account has full control.
    #>
    param ([string]$Path, [string]$Text)
    $directory = [System.IO.Path]::GetDirectoryName($Path)
    $null = [System.IO.Directory]::CreateDirectory($directory)
    $temporary = [System.IO.Path]::Combine($directory, ".$([System.IO.Path]::GetFileName($Path)).$PID.tmp")
    try {
        [System.IO.File]::WriteAllBytes($temporary, [System.Text.UTF8Encoding]::new($false).GetBytes($Text))
        if ([System.IO.File]::Exists($Path)) {
            [System.IO.File]::Replace($temporary, $Path, $null)
        }
        else {
            [System.IO.File]::Move($temporary, $Path)
        }
    }
    finally {
        if ([System.IO.File]::Exists($temporary)) { [System.IO.File]::Delete($temporary) }
    }
}

$params = $module.Params
try {
    $account = if ($params.user) { Get-GoCacheAccount -Name $params.user -Option 'user' } else { Get-GoCacheAccount }
    $session = Get-GoAccountEnvironment $account
    $path = $params.path
    if (-not $path) {
        # Where Go looks for this account: GOENV, else %AppData%\go\env (file contents are not needed here).
        $path = (Get-GoEnvironment -Environment $session.environment -GoEnvFileText '' -GoRootEnvText '').goenv_path
        if (-not $path) {
            throw (New-GoOptionError 'user' $account.name 'Go finds no go env file for this account (GOENV=off, or no %AppData%)')
        }
    }
    # Like Go, write through a symbolic link (a dotfiles checkout).
    $target = Resolve-GoLinkPath $path
    $before = $null
    if ([System.IO.File]::Exists($target)) {
        $before = [System.IO.File]::ReadAllText($target, [System.Text.UTF8Encoding]::new($false))
    }
    $vars = if ($params.vars) { $params.vars } else { @{} }
    $edit = Edit-GoEnvFileText -Text $(if ($null -eq $before) { '' } else { $before }) -Vars $vars -State $params.state
    $after = $edit.text
    if ($params.state -eq 'absent' -and -not $vars.Count) {
        $after = $null   # state absent without vars: the whole file goes
    }
    elseif ($null -eq $before -and -not $edit.set.Count) {
        $after = $null   # removing from a file that does not exist: nothing to write
    }
    $changed = $after -cne $before
    if ($changed -and -not $module.CheckMode) {
        if ($null -eq $after) { [System.IO.File]::Delete($target) }
        else { Write-GoEnvFile $target $after }
    }
}
catch {
    if (-not (Test-GoOptionError $_)) { throw }
    $module.Result.option = $_.Exception.Data['gofleet_option']
    $module.Result.value = $_.Exception.Data['gofleet_value']
    $module.FailJson($_.Exception.Message)
}

# A non-empty OS environment variable of the account wins over the file (Go's precedence).
$overridden = [System.Collections.Generic.List[object]]::new()
$written = ConvertFrom-GoEnvFile $after
foreach ($name in $edit.set) {
    $environmentValue = $session.environment[$name]
    if ($environmentValue -and $environmentValue -cne $written[$name]) {
        $overridden.Add(@{ var = $name; value = $written[$name]; env_value = $environmentValue })
        $module.Warn("$name=$($written[$name]) written to $path does not take effect for $($account.name): the OS environment sets $name=$environmentValue, which wins")
    }
}
$module.Result.changed = $changed
$module.Result.path = $path
$module.Result.user = $account.name
$module.Result.set = @($edit.set)
$module.Result.removed = @($edit.removed)
$module.Result.overridden = $overridden.ToArray()
$module.Result.vars = $written
if ($module.DiffMode) {
    $module.Diff.before = $(if ($null -eq $before) { '' } else { $before })
    $module.Diff.after = $(if ($null -eq $after) { '' } else { $after })
    $module.Diff.before_header = $path
    $module.Diff.after_header = $path
}
$module.ExitJson()
