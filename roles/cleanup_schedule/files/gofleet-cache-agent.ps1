# Copyright (c) gofleet.cache contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

<#
.SYNOPSIS
gofleet-cache-agent for Windows: prune Go caches by the policy in a JSON file; run by a scheduled task.

.DESCRIPTION
The twin of the Linux agent (plugins/module_utils/_agent.py), installed by the role
gofleet.cache.cleanup_schedule next to module_utils\GoFleetCache.psm1, the engine go_cache_prune.ps1 runs:
the same policy file, the same targets (an account's caches, or the policy file's shared caches), the same
lock per cache, log line per cache, metrics file and exit codes.

Exit codes: 0 every cache pruned by policy (or nothing to do); 1 some paths or caches failed; 2 bad
configuration or usage, nothing touched; 3 a cache skipped or left partly alone because another run held its
lock or Go builds kept running.

One line per cache goes to stdout (unless -Quiet) and to the Application event log (source
gofleet-cache-agent, registered by the role), or to gofleet-cache-agent.log in the temporary directory when
the event log refuses it. With metrics_dir set, a real run replaces gofleet_cache_user_<account>.prom (or
gofleet_cache_shared.prom) there for windows_exporter's textfile collector.

.PARAMETER Config
The policy file (agent.json next to this script by default).

.PARAMETER User
Prune this account's caches (default: the account running the agent).

.PARAMETER Shared
Prune the policy file's shared caches instead.

.PARAMETER DryRun
Report what a real run would remove; remove nothing, write no metrics.

.PARAMETER CheckConfig
Validate the policy file and exit: 0 valid, 2 not.

.PARAMETER Quiet
No summary on stdout.
#>
[CmdletBinding()]
param (
    [string]$Config = (Join-Path $PSScriptRoot 'agent.json'),
    [string]$User,
    [switch]$Shared,
    [switch]$DryRun,
    [switch]$CheckConfig,
    [switch]$Quiet
)

Set-StrictMode -Version 2.0
$ErrorActionPreference = 'Stop'

$ExitOk = 0
$ExitFailed = 1
$ExitConfig = 2
$ExitBusy = 3
$LogSource = 'gofleet-cache-agent'
$PolicyOptions = @('remove_incomplete', 'max_age', 'keep_versions', 'max_size', 'min_free', 'keep_recent', 'keep',
    'keep_referenced', 'if_busy', 'busy_timeout')
$ConfigOptions = $PolicyOptions + @('kinds', 'go', 'caches', 'metrics_dir', 'lock_dir')
$LockPollMs = 500

Import-Module (Join-Path $PSScriptRoot 'module_utils\GoFleetCache.psm1') -Force

function Write-AgentLog {
    param ([string]$Text, [string]$Level = 'Information')
    if (-not $Quiet) { [Console]::Out.WriteLine($Text) }
    try {
        [System.Diagnostics.EventLog]::WriteEntry($LogSource, $Text, [System.Diagnostics.EventLogEntryType]$Level, 1000)
    }
    catch {
        $fallback = Join-Path ([System.IO.Path]::GetTempPath()) 'gofleet-cache-agent.log'
        Add-Content -LiteralPath $fallback -Value ('{0:o} {1} {2}' -f [DateTime]::UtcNow, $Level, $Text) -Encoding UTF8
    }
}

function Write-AgentError {
    param ([string]$Text)
    [Console]::Error.WriteLine("gofleet-cache-agent: error: $Text")
    $quietBefore = $script:Quiet
    $script:Quiet = $true
    Write-AgentLog "error: $Text" 'Error'
    $script:Quiet = $quietBefore
}

function Read-AgentConfig {
    # The policy file as a hashtable; option errors (New-GoOptionError) for anything wrong.
    param ([string]$Path)
    try {
        $data = Get-Content -LiteralPath $Path -Raw -Encoding UTF8 | ConvertFrom-Json
    }
    catch {
        throw (New-GoOptionError '-Config' $Path $_.Exception.Message)
    }
    $options = @{}
    foreach ($property in $data.PSObject.Properties) {
        if ($ConfigOptions -cnotcontains $property.Name) {
            throw (New-GoOptionError $property.Name $property.Value "unknown option (expected one of $($ConfigOptions -join ', '))")
        }
        if ($null -ne $property.Value) { $options[$property.Name] = $property.Value }
    }
    $policyOptions = @{}
    foreach ($name in $PolicyOptions) {
        if ($options.ContainsKey($name)) { $policyOptions[$name] = $options[$name] }
    }
    $kinds = if ($options.ContainsKey('kinds')) { @($options.kinds) } else { @('build') }
    foreach ($kind in $kinds) {
        if (@('build', 'module', 'fuzz') -cnotcontains $kind) { throw (New-GoOptionError 'kinds' $kind 'expected one of build, module, fuzz') }
    }
    $caches = @(foreach ($cache in @($options['caches'])) {
            if ($null -eq $cache) { continue }
            if (-not (Test-GoAbsolutePath $cache.path)) { throw (New-GoOptionError 'caches' $cache.path 'path must be absolute') }
            if (@('build', 'module', 'fuzz') -cnotcontains $cache.kind) {
                throw (New-GoOptionError 'caches' $cache.kind 'kind must be one of build, module, fuzz')
            }
            @{ path = [string]$cache.path; kind = [string]$cache.kind }
        })
    @{
        policy = New-GoCachePrunePolicy $policyOptions
        busy_timeout = ConvertFrom-GoDuration $(if ($policyOptions.ContainsKey('busy_timeout')) { $policyOptions.busy_timeout } else { '15m' }) 'busy_timeout'
        if_busy = $(if ($policyOptions.ContainsKey('if_busy')) { $policyOptions.if_busy } else { 'wait' })
        kinds = $kinds
        go = $(if ($options.ContainsKey('go')) { [string]$options.go } else { 'auto' })
        caches = $caches
        metrics_dir = $options['metrics_dir']
        lock_dir = $(if ($options.ContainsKey('lock_dir')) { $options.lock_dir } else { Join-Path $PSScriptRoot 'locks' })
    }
}

function Get-AgentTarget {
    # @{path; kind; sid; label} as go_cache_prune resolves them for an account or explicit paths.
    param ($Settings)
    if ($Shared) {
        foreach ($cache in $Settings.caches) { @{ path = $cache.path; kind = $cache.kind; sid = $null; label = 'shared' } }
        return
    }
    $account = if ($User) { Get-GoCacheAccount -Name $User -Option '-User' } else { Get-GoCacheAccount }
    $location = Get-GoAccountLocation -Account $account -Go $Settings.go
    foreach ($kind in $Settings.kinds) {
        $path, $null = Get-GoCacheLocation $location $kind
        @{ path = $path; kind = $kind; sid = $account.sid; label = $account.name }
    }
}

function Lock-AgentCache {
    # An exclusive handle on the cache's lock file (a dry run too: Windows has no shared flock), or $null when
    # another run still holds it after TimeoutSeconds.
    param ([string]$Directory, [string]$Path, [long]$TimeoutSeconds)
    $sha = [System.Security.Cryptography.SHA256]::Create()
    $digest = -join ($sha.ComputeHash([System.Text.Encoding]::UTF8.GetBytes($Path.ToLowerInvariant())) |
            Select-Object -First 8 | ForEach-Object { $_.ToString('x2') })
    $readable = ($Path -replace '[^A-Za-z0-9._-]+', '_').Trim('_')
    if ($readable.Length -gt 60) { $readable = $readable.Substring($readable.Length - 60) }
    $lockPath = Join-Path $Directory "$readable-$digest.lock"
    $deadline = [DateTime]::UtcNow.AddSeconds($TimeoutSeconds)
    while ($true) {
        try {
            return [System.IO.File]::Open($lockPath, 'OpenOrCreate', 'ReadWrite', 'None')
        }
        catch [System.IO.IOException] {
            if ([DateTime]::UtcNow -ge $deadline) { return $null }
            Start-Sleep -Milliseconds $LockPollMs
        }
    }
}

function Get-AgentExitCode {
    param ($Outcome)
    if ($Outcome.state -eq 'failed') { return $ExitFailed }
    if ($Outcome.state -eq 'locked') { return $ExitBusy }
    if ($null -eq $Outcome.result) { return $ExitOk }
    if ($Outcome.result.errors_total) { return $ExitFailed }
    if ($Outcome.result.busy) { return $ExitBusy }
    $ExitOk
}

function Format-AgentLine {
    # The log line of one cache, as the Linux agent writes it.
    param ($Outcome)
    $head = "$($Outcome.job) $($Outcome.kind) $($Outcome.path): "
    switch ($Outcome.state) {
        'locked' { return $head + ('skipped: another gofleet-cache-agent run held its lock for {0:F0}s' -f $Outcome.duration) }
        'failed' { return $head + "failed: $($Outcome.message)" }
        'missing' { return $head + 'no cache yet, nothing to prune' }
    }
    $result = $Outcome.result
    $verb = if ($DryRun) { 'would remove' } else { 'removed' }
    $kept = (@($result.kept.Keys | Sort-Object | ForEach-Object { "$_=$($result.kept[$_])" }) -join ' ')
    if (-not $kept) { $kept = 'nothing' }
    $text = $head + ('{0} {1} entries ({2}) of {3}, {4} left; kept {5}' -f $verb, $result.removed_entries,
        (Format-GoByteCount $result.removed_bytes), (Format-GoByteCount $result.before_bytes),
        (Format-GoByteCount $result.after_bytes), $kept)
    if ($result.busy) { $text += "; Go builds running ($(@($result.busy) -join ', '))" }
    if ($result.errors_total) {
        $first = @($result.errors)[0]
        $text += "; $($result.errors_total) paths failed, first $($first.path): $($first.error)"
    }
    $text + ('; {0:F1}s' -f $Outcome.duration)
}

function Format-AgentLabel {
    param ([string]$Value)
    $Value.Replace('\', '\\').Replace('"', '\"').Replace("`n", '\n')
}

function Write-AgentMetric {
    # The job's .prom file (the metrics of the Linux agent's _metrics.py), replaced in one rename.
    param ([string]$Directory, [string]$Job, $Outcomes)
    $metrics = @(
        @('gofleet_cache_size_bytes', 'Sum of the file sizes in the cache after the last run.', 'size_bytes'),
        @('gofleet_cache_entries', 'Units in the cache after the last run: build action entries, complete module versions or fuzz corpus files.', 'entries'),
        @('gofleet_cache_last_run_removed_bytes', 'Bytes the last run removed.', 'removed_bytes'),
        @('gofleet_cache_last_run_removed_entries', 'Units the last run removed.', 'removed_entries'),
        @('gofleet_cache_last_run_errors', 'Paths the last run failed to remove.', 'errors'),
        @('gofleet_cache_last_run_busy', '1 when running Go builds or another agent run kept the last run from applying the policy in full.', 'busy'),
        @('gofleet_cache_last_run_success', '1 when the last run applied the policy in full without errors.', 'success'),
        @('gofleet_cache_last_run_timestamp_seconds', 'Unix time the last run of this cache ended.', 'timestamp'),
        @('gofleet_cache_last_run_duration_seconds', 'How long the last run of this cache took, waiting included.', 'duration'),
        @('gofleet_cache_filesystem_size_bytes', 'Size of the file system holding the cache.', 'fs_size_bytes'),
        @('gofleet_cache_filesystem_free_bytes', 'Bytes an unprivileged account can still write on the file system holding the cache.', 'fs_free_bytes')
    )
    $samples = foreach ($outcome in $Outcomes) {
        if (-not $outcome.path) { continue }
        $facts = Get-GoCacheFact -Path $outcome.path -Kind $outcome.kind -AgeBuckets @() -Top 0 -LinkEntries $false
        $code = Get-AgentExitCode $outcome
        $result = if ($outcome.result) { $outcome.result } else { @{ removed_bytes = 0; removed_entries = 0; errors_total = 0 } }
        @{
            labels = 'user="{0}",kind="{1}",path="{2}",scope="{3}"' -f (Format-AgentLabel $(if ($Shared) { [string]$facts['owner'] } else { $outcome.job })),
            $outcome.kind, (Format-AgentLabel $outcome.path), $(if ($Shared) { 'shared' } else { 'user' })
            size_bytes = $facts.bytes; entries = $facts.entries
            removed_bytes = $result.removed_bytes; removed_entries = $result.removed_entries
            errors = $(if ($outcome.state -eq 'failed') { 1 } else { $result.errors_total })
            busy = [int]($code -eq $ExitBusy); success = [int]($code -eq $ExitOk)
            timestamp = [math]::Round($outcome.ended, 3); duration = [math]::Round($outcome.duration, 3)
            fs_size_bytes = $facts.filesystem.size_bytes; fs_free_bytes = $facts.filesystem.free_bytes
        }
    }
    $lines = [System.Collections.Generic.List[string]]::new()
    foreach ($metric in $metrics) {
        $lines.Add("# HELP $($metric[0]) $($metric[1])")
        $lines.Add("# TYPE $($metric[0]) gauge")
        foreach ($sample in $samples) {
            $value = $sample[$metric[2]]
            if ($null -eq $value) { continue }
            $lines.Add(('{0}{{{1}}} {2}' -f $metric[0], $sample.labels, [System.Convert]::ToString($value, [System.Globalization.CultureInfo]::InvariantCulture)))
        }
    }
    $name = 'gofleet_cache_' + ($Job -replace '[^A-Za-z0-9_.-]', '_') + '.prom'
    $target = Join-Path $Directory $name
    $temp = Join-Path $Directory ('.{0}.{1}.tmp' -f $name, [guid]::NewGuid().ToString('N'))
    # windows_exporter wants UTF-8 without a byte order mark and LF line ends.
    [System.IO.File]::WriteAllText($temp, (($lines -join "`n") + "`n"), [System.Text.UTF8Encoding]::new($false))
    try {
        if ([System.IO.File]::Exists($target)) { [System.IO.File]::Replace($temp, $target, $null) }
        else { [System.IO.File]::Move($temp, $target) }
    }
    finally {
        if ([System.IO.File]::Exists($temp)) { [System.IO.File]::Delete($temp) }
    }
}

# --------------------------------------------------------------------------- main

try {
    $settings = Read-AgentConfig $Config
    if ($Shared -and $User) { throw (New-GoOptionError '-User' $User 'give either -User or -Shared') }
    $targets = @(Get-AgentTarget $settings)
    if ($CheckConfig) {
        Write-AgentLog "$($Config): valid policy for $(if ($Shared) { 'shared caches' } else { @($targets)[0].label })"
        exit $ExitOk
    }
    # Every root is checked before any is touched, as go_cache_prune does.
    foreach ($target in $targets) {
        if ($target.label -eq 'shared' -or ($target.path -and [System.IO.Directory]::Exists((Get-GoLongPath $target.path)))) {
            $null = Test-GoCacheRoot $target.path $target.kind $(if ($target.label -eq 'shared') { 'caches' } else { 'user' })
        }
    }
    $null = New-Item -ItemType Directory -Force -Path $settings.lock_dir
    if ($settings.metrics_dir -and -not $DryRun -and -not [System.IO.Directory]::Exists($settings.metrics_dir)) {
        throw (New-GoOptionError 'metrics_dir' $settings.metrics_dir 'no such directory')
    }
}
catch {
    if (-not (Test-GoOptionError $_)) { throw }
    Write-AgentError $_.Exception.Message
    exit $ExitConfig
}

$job = if ($Shared) { 'shared' } else { @($targets)[0].label }
$freedOnVolume = @{}
$outcomes = foreach ($target in $targets) {
    $started = [DateTime]::UtcNow
    $outcome = @{ job = $job; path = $target.path; kind = $target.kind; state = 'done'; result = $null; message = $null }
    if (-not $target.path -or ($target.label -ne 'shared' -and -not [System.IO.Directory]::Exists((Get-GoLongPath $target.path)))) {
        $outcome.state = 'missing'
    }
    else {
        $timeout = if ($settings.if_busy -eq 'skip') { 0 } else { $settings.busy_timeout }
        $lock = Lock-AgentCache $settings.lock_dir $target.path $timeout
        if ($null -eq $lock) { $outcome.state = 'locked' }
        else {
            try {
                $outcome.result = Invoke-GoCachePrune -Path $target.path -Kind $target.kind -Policy $settings.policy `
                    -CheckMode:$DryRun -BusyUserSid $target.sid -FreedOnVolume $freedOnVolume
            }
            catch {
                $outcome.state = 'failed'
                $outcome.message = $_.Exception.Message
            }
            finally {
                $lock.Dispose()
            }
        }
    }
    $ended = [DateTime]::UtcNow
    $outcome.duration = ($ended - $started).TotalSeconds
    $outcome.ended = [DateTimeOffset]::new($ended).ToUnixTimeMilliseconds() / 1000.0
    $code = Get-AgentExitCode $outcome
    Write-AgentLog (Format-AgentLine $outcome) $(if ($code -eq $ExitOk) { 'Information' } elseif ($code -eq $ExitBusy) { 'Warning' } else { 'Error' })
    $outcome
}
$outcomes = @($outcomes)
$codes = @($outcomes | ForEach-Object { Get-AgentExitCode $_ })
if ($settings.metrics_dir -and -not $DryRun) {
    try {
        Write-AgentMetric $settings.metrics_dir $(if ($Shared) { 'shared' } else { "user_$job" }) $outcomes
    }
    catch {
        Write-AgentError "metrics_dir $($settings.metrics_dir): $($_.Exception.Message)"
        $codes += $ExitFailed
    }
}
foreach ($code in $ExitConfig, $ExitFailed, $ExitBusy) {
    if ($codes -contains $code) { exit $code }
}
exit $ExitOk
