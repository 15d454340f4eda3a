# Copyright (c) gofleet.cache contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

# The gofleet.cache engine for Windows: the PowerShell twin of the Python engine in plugins/module_utils
# (_units, _semver, _refs, _goenv, _buildcache, _modcache, _facts, _prune). Plain PowerShell 5.1/7 without
# Ansible, so that the modules (go_cache_facts.ps1, go_cache_prune.ps1, go_env.ps1) and the scheduled task
# agent of the cleanup_schedule role import this very file. The shared vectors in tests/vectors pin its
# behaviour to the Python engine's; tests/windows runs them with Pester.
#
# Windows specifics, each where it happens: paths are used with the \\?\ prefix (no 260-character limit),
# reparse points (symbolic links, junctions, volume mount points) are never followed, the ReadOnly attribute
# Go sets on module files and directories is cleared before removal (as Go's own os.Remove does), a file
# another process holds open is retried briefly and then reported, and last use falls back to modification
# times when NTFS last-access updates are disabled.
#
# Times are [long] ticks (100 ns) since the Unix epoch; "now" is [long] Unix seconds.

using namespace System.Collections.Generic
using namespace System.IO

#region Constants

$script:UnixEpochTicks = 621355968000000000
$script:TicksPerSecond = 10000000
$script:Kinds = @('build', 'module', 'fuzz')
$script:IfBusyChoices = @('wait', 'skip', 'proceed')
$script:States = @('present', 'absent')
$script:SampleSize = 20
$script:MaxReportedErrors = 20
# A file another process holds open is retried this long (a build finishing with it) before it counts as an error.
$script:LockedFileRetryMs = 2000
$script:RetryPauseMs = 100
# Go's per-version lock (lockedfile) is waited for this long before the version is skipped.
$script:VersionLockWaitMs = 2000
# How often a running removal looks for Go processes that started meanwhile.
$script:BusyRecheckMs = 500
$script:BusyPollMs = 1000

$script:DurationUnits = @{ s = 1; m = 60; h = 3600; d = 86400; w = 604800 }
# Decimal and binary units (docs/design.md); a bare number is bytes (min_free refuses one: ambiguous there).
$script:SizeUnits = @{
    b = 1; k = 1000; kb = 1000; m = 1000000; mb = 1000000; g = 1000000000; gb = 1000000000
    t = 1000000000000; tb = 1000000000000
    kib = 1024; mib = 1048576; gib = 1073741824; tib = 1099511627776
}

$script:BuildReadmeMarker = 'This directory holds cached build artifacts from the Go build system.'
$script:FuzzDirName = 'fuzz'
$script:TrimFileName = 'trim.txt'
$script:ActionFileSize = 175   # len("v1 %x %x %20d %20d\n") with 32-byte IDs
# The output of an action that wrote nothing (sha256 of no bytes): Go's GetBytes counts an entry naming it with
# size 0 as a hit even when the -d file is gone, so such an entry is never dead.
$script:EmptyOutputId = 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855'
# Go refreshes a build cache file's mtime on use only when it is an hour old (cache.go mtimeInterval): a last use
# may be up to this much after the mtime, so keep_recent, max_age and age buckets allow for it.
$script:BuildUseLagSeconds = 3600
# Longest first, so that `v1.zip` is not read as the version `v1.zip` of `.hash`.
$script:DownloadSuffixes = @('.ziphash', '.partial', '.info', '.lock', '.mod', '.zip')
# Files whose last access tells that a build used a module version.
$script:UseSuffixes = @('.ziphash', '.mod', '.info')
$script:ToolchainModule = 'golang.org/toolchain'
# Directories never searched for go.sum/go.mod (keep_referenced).
$script:ReferenceSkipDirs = @('.git', '.hg', '.svn', 'node_modules', 'vendor', 'testdata')
$script:MaxReferenceFiles = 100000

# Unit classes and why a unit stays (protections are checked in this order).
$script:UnitComplete = 0
$script:UnitIncomplete = 1
$script:ProtectRecent = 1
$script:ProtectKeep = 2
$script:ProtectReferenced = 3
$script:KeptReasons = @{ 0 = 'retained'; 1 = 'recent'; 2 = 'keep'; 3 = 'referenced' }

# The go command and the tools it runs from $GOROOT\pkg\tool while building.
$script:GoToolNames = @('go', 'compile', 'link', 'asm', 'cgo', 'vet', 'cover', 'buildid', 'pack', 'test2json',
    'covdata', 'fix', 'preprofile', 'gopls')

# The variables that decide where caches live and how modules are fetched.
$script:CacheVars = @('GOCACHE', 'GOMODCACHE', 'GOPATH', 'GOENV', 'GOPROXY', 'GOSUMDB', 'GONOSUMDB', 'GONOPROXY',
    'GOPRIVATE', 'GOFLAGS', 'GOTOOLCHAIN')
# Every variable `go env -w` accepts (internal/cfg.KnownEnv of go1.27.3) ...
$script:GoKnownVars = [HashSet[string]]::new([string[]]@(
        'AR', 'CC', 'CGO_CFLAGS', 'CGO_CFLAGS_ALLOW', 'CGO_CFLAGS_DISALLOW', 'CGO_CPPFLAGS', 'CGO_CPPFLAGS_ALLOW',
        'CGO_CPPFLAGS_DISALLOW', 'CGO_CXXFLAGS', 'CGO_CXXFLAGS_ALLOW', 'CGO_CXXFLAGS_DISALLOW', 'CGO_ENABLED',
        'CGO_FFLAGS', 'CGO_FFLAGS_ALLOW', 'CGO_FFLAGS_DISALLOW', 'CGO_LDFLAGS', 'CGO_LDFLAGS_ALLOW',
        'CGO_LDFLAGS_DISALLOW', 'CXX', 'FC', 'GCCGO', 'GO111MODULE', 'GO386', 'GOAMD64', 'GOARCH', 'GOARM', 'GOARM64',
        'GOAUTH', 'GOBIN', 'GOCACHE', 'GOCACHEPROG', 'GOENV', 'GOEXE', 'GOEXPERIMENT', 'GOFIPS140', 'GOFLAGS',
        'GOGCCFLAGS', 'GOHOSTARCH', 'GOHOSTOS', 'GOINSECURE', 'GOMIPS', 'GOMIPS64', 'GOMODCACHE', 'GONOPROXY',
        'GONOSUMDB', 'GOOS', 'GOPATH', 'GOPPC64', 'GOPRIVATE', 'GOPROXY', 'GORISCV64', 'GOROOT', 'GOSUMDB', 'GOTMPDIR',
        'GOTOOLCHAIN', 'GOTOOLDIR', 'GOVCS', 'GOWASM', 'GOWORK', 'GO_EXTLINK_ENABLED', 'PKG_CONFIG'))
# ... except these (cmd/go/internal/envcmd checkEnvWrite): computed by Go, or OS environment only.
$script:GoReadOnlyVars = @('GOEXE', 'GOGCCFLAGS', 'GOHOSTARCH', 'GOHOSTOS', 'GOMOD', 'GOROOT', 'GOTELEMETRY',
    'GOTELEMETRYDIR', 'GOTOOLDIR', 'GOVERSION', 'GOWORK')
$script:GoOsOnlyVars = @('GOENV', 'GODEBUG')
# Go refuses relative GOPATH/GOMODCACHE/GOTMPDIR; it accepts a relative GOCACHE and then every build fails.
$script:GoAbsolutePathVars = @('GOCACHE', 'GOMODCACHE', 'GOPATH', 'GOTMPDIR')

$script:SemverPattern = [regex]'^v(0|[1-9][0-9]*)(?:\.(0|[1-9][0-9]*)(?:\.(0|[1-9][0-9]*)(-[0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*)?(\+[0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*)?)?)?$'
$script:NumberPattern = [regex]'^\s*([0-9]+(?:\.[0-9]+)?)\s*([a-zA-Z]*)\s*$'
$script:RequireLinePattern = [regex]'^\s*(?:require\s+)?(\S+)\s+(v\S+?)(?:\s*//.*)?$'
$script:ReplaceLinePattern = [regex]'=>\s*(\S+)\s+(v\S+)\s*(?://.*)?$'

#endregion

#region Option values (_units)

function New-GoOptionError {
    <#
    .SYNOPSIS
    The error every bad option value raises: an ArgumentException whose message names option and value.
    Data['gofleet_option'] and Data['gofleet_value'] carry them for Ansible's fail_json(option=, value=).
    #>
    [OutputType([System.ArgumentException])]
    param ([string]$Option, [object]$Value, [string]$Reason)

    $shown = if ($Value -is [string]) { "'$Value'" } elseif ($null -eq $Value) { 'None' } else { "$Value" }
    $exception = [System.ArgumentException]::new("${Option}: invalid value ${shown}: $Reason")
    $exception.Data['gofleet_option'] = $Option
    $exception.Data['gofleet_value'] = $Value
    $exception
}

function Test-GoOptionError {
    <# .SYNOPSIS True for an error record made from New-GoOptionError. #>
    param ([System.Management.Automation.ErrorRecord]$ErrorRecord)
    $ErrorRecord.Exception -is [System.ArgumentException] -and $ErrorRecord.Exception.Data.Contains('gofleet_option')
}

function ConvertFrom-GoNumberWithUnit {
    # (number, unit) of '90m' or '10GiB'; $null when the text is not a number with a unit.
    param ([string]$Text)
    $match = $script:NumberPattern.Match($Text)
    if (-not $match.Success) { return $null }
    , @([double]::Parse($match.Groups[1].Value, [System.Globalization.CultureInfo]::InvariantCulture),
        $match.Groups[2].Value.ToLowerInvariant())
}

function ConvertFrom-GoDuration {
    <# .SYNOPSIS Seconds for '90m', '12h', '30d', '2w', '45s' or a bare number of seconds. #>
    [OutputType([long])]
    param ([AllowNull()][object]$Value, [string]$Option)

    if ($Value -is [bool] -or $null -eq $Value) {
        throw (New-GoOptionError $Option $Value 'expected a duration such as 90m, 12h, 30d or 2w')
    }
    if ($Value -is [int] -or $Value -is [long] -or $Value -is [double]) {
        if ($Value -lt 0) { throw (New-GoOptionError $Option $Value 'a duration cannot be negative') }
        return [long][math]::Floor($Value)
    }
    $parsed = ConvertFrom-GoNumberWithUnit "$Value"
    if ($null -eq $parsed -or ($parsed[1] -ne '' -and -not $script:DurationUnits.ContainsKey($parsed[1]))) {
        throw (New-GoOptionError $Option $Value 'expected a duration such as 90m, 12h, 30d or 2w (units s, m, h, d, w)')
    }
    $multiplier = if ($parsed[1]) { $script:DurationUnits[$parsed[1]] } else { 1 }
    [long][math]::Floor($parsed[0] * $multiplier)
}

function ConvertFrom-GoSize {
    <# .SYNOPSIS Bytes for '500MB', '10GiB', '1.5G' or a bare number of bytes. #>
    [OutputType([long])]
    param ([AllowNull()][object]$Value, [string]$Option)

    if ($Value -is [bool] -or $null -eq $Value) {
        throw (New-GoOptionError $Option $Value 'expected a size such as 500MB or 10GiB')
    }
    if ($Value -is [int] -or $Value -is [long] -or $Value -is [double]) {
        if ($Value -lt 0) { throw (New-GoOptionError $Option $Value 'a size cannot be negative') }
        return [long][math]::Floor($Value)
    }
    if ("$Value".Trim().StartsWith('-')) { throw (New-GoOptionError $Option $Value 'a size cannot be negative') }
    $parsed = ConvertFrom-GoNumberWithUnit "$Value"
    if ($null -eq $parsed -or ($parsed[1] -ne '' -and -not $script:SizeUnits.ContainsKey($parsed[1]))) {
        throw (New-GoOptionError $Option $Value 'expected a size such as 500MB or 10GiB (units B, KB, MB, GB, TB, KiB, MiB, GiB, TiB)')
    }
    $multiplier = if ($parsed[1]) { $script:SizeUnits[$parsed[1]] } else { 1 }
    [long][math]::Floor($parsed[0] * $multiplier)
}

function ConvertFrom-GoSizeOrPercent {
    <# .SYNOPSIS @{unit = 'bytes'|'percent'; amount} for '20GB' or '15%'. #>
    param ([AllowNull()][object]$Value, [string]$Option)

    $text = "$Value".Trim()
    if ($text.EndsWith('%')) {
        $percent = 0.0
        if (-not [double]::TryParse($text.Substring(0, $text.Length - 1), [System.Globalization.NumberStyles]::Float,
                [System.Globalization.CultureInfo]::InvariantCulture, [ref]$percent)) {
            throw (New-GoOptionError $Option $Value 'expected a percentage such as 15% or a size such as 20GB')
        }
        if ($percent -lt 0 -or $percent -gt 100) {
            throw (New-GoOptionError $Option $Value 'a percentage must be between 0% and 100%')
        }
        return @{ unit = 'percent'; amount = $percent }
    }
    if ($text -match '^\d+(\.\d+)?$' -and [double]::Parse($text, [System.Globalization.CultureInfo]::InvariantCulture) -ne 0) {
        # "min_free: 15" means 15% to some readers and 15 GB to others; 15 bytes is never what was meant.
        throw (New-GoOptionError $Option $Value 'a bare number is ambiguous here: write a percentage such as 15% or a size with its unit such as 15GB')
    }
    @{ unit = 'bytes'; amount = (ConvertFrom-GoSize $Value $Option) }
}

function Format-GoByteCount {
    # Human-readable binary size ('1.5 GiB'), as the Python engine's format_bytes writes it for diffs and logs.
    param ([long]$Count)
    $size = [double]$Count
    foreach ($unit in 'B', 'KiB', 'MiB', 'GiB') {
        if ([math]::Abs($size) -lt 1024) {
            if ($unit -eq 'B') { return "$Count B" }
            return ('{0:F1} {1}' -f $size, $unit)
        }
        $size /= 1024
    }
    '{0:F1} TiB' -f $size
}

function ConvertTo-GoIsoTime {
    <# .SYNOPSIS ISO-8601 UTC text ('2026-11-21T22:27:17Z') of Unix seconds, or $null. #>
    param ([AllowNull()][object]$UnixSeconds)
    if ($null -eq $UnixSeconds) { return $null }
    [DateTimeOffset]::FromUnixTimeSeconds([long]$UnixSeconds).UtcDateTime.ToString(
        "yyyy-MM-dd'T'HH:mm:ss'Z'", [System.Globalization.CultureInfo]::InvariantCulture)
}

function Get-GoUnixTicks {
    # A file time as ticks since the Unix epoch.
    param ([DateTime]$Utc)
    $Utc.Ticks - $script:UnixEpochTicks
}

function ConvertTo-GoUnixSeconds {
    # Ticks since the Unix epoch, floored to seconds (Python's `ns // NS`).
    param ([long]$Ticks)
    [long][math]::Floor($Ticks / $script:TicksPerSecond)
}

#endregion

#region Semantic versions (_semver: golang.org/x/mod/semver order)

function Get-GoSemverPart {
    # (major, minor, patch, prerelease) as strings, or $null when Go would call the version invalid.
    param ([string]$Version)
    $match = $script:SemverPattern.Match($Version)
    if (-not $match.Success) { return $null }
    $prerelease = $match.Groups[4].Value
    if ($prerelease) {
        foreach ($identifier in $prerelease.Substring(1).Split('.')) {
            # numeric identifiers with leading zeros are invalid
            if ($identifier -cmatch '^[0-9]+$' -and $identifier.Length -gt 1 -and $identifier[0] -eq '0') { return $null }
        }
    }
    $minor = if ($match.Groups[2].Success) { $match.Groups[2].Value } else { '0' }
    $patch = if ($match.Groups[3].Success) { $match.Groups[3].Value } else { '0' }
    , @($match.Groups[1].Value, $minor, $patch, $prerelease)
}

function Test-GoSemver {
    param ([string]$Version)
    $null -ne (Get-GoSemverPart $Version)
}

function Compare-GoSemverNumber {
    # Go compares numbers as strings: by length first, so that no number is too large.
    param ([string]$Left, [string]$Right)
    if ($Left -ceq $Right) { return 0 }
    if ($Left.Length -ne $Right.Length) { return $(if ($Left.Length -lt $Right.Length) { -1 } else { 1 }) }
    [math]::Sign([string]::CompareOrdinal($Left, $Right))
}

function Compare-GoSemverPrerelease {
    param ([string]$Left, [string]$Right)
    if ($Left -ceq $Right) { return 0 }
    if (-not $Left) { return 1 }
    if (-not $Right) { return -1 }
    $leftParts = $Left.Substring(1).Split('.')
    $rightParts = $Right.Substring(1).Split('.')
    for ($index = 0; $index -lt [math]::Min($leftParts.Count, $rightParts.Count); $index++) {
        $leftPart = $leftParts[$index]
        $rightPart = $rightParts[$index]
        if ($leftPart -ceq $rightPart) { continue }
        $leftNumeric = $leftPart -cmatch '^[0-9]+$'
        $rightNumeric = $rightPart -cmatch '^[0-9]+$'
        if ($leftNumeric -ne $rightNumeric) { return $(if ($leftNumeric) { -1 } else { 1 }) }
        if ($leftNumeric) { return (Compare-GoSemverNumber $leftPart $rightPart) }
        return [math]::Sign([string]::CompareOrdinal($leftPart, $rightPart))
    }
    if ($leftParts.Count -lt $rightParts.Count) { -1 } else { 1 }
}

function Compare-GoSemver {
    <# .SYNOPSIS -1, 0 or 1 as semver.Compare; invalid versions sort before valid ones. #>
    [OutputType([int])]
    param ([string]$Left, [string]$Right)
    $leftParts = Get-GoSemverPart $Left
    $rightParts = Get-GoSemverPart $Right
    if ($null -eq $leftParts -or $null -eq $rightParts) {
        if ($null -eq $leftParts -and $null -eq $rightParts) { return 0 }
        return $(if ($null -eq $leftParts) { -1 } else { 1 })
    }
    for ($index = 0; $index -lt 3; $index++) {
        $result = Compare-GoSemverNumber $leftParts[$index] $rightParts[$index]
        if ($result) { return $result }
    }
    Compare-GoSemverPrerelease $leftParts[3] $rightParts[3]
}

function Sort-GoSemver {
    <# .SYNOPSIS Versions in semver.Sort order (by precedence, then by text, so that the order is total). #>
    [OutputType([string[]])]
    param ([AllowEmptyCollection()][AllowNull()][string[]]$Version, [switch]$Descending)
    if ($null -eq $Version) { return , [string[]]@() }
    $list = [List[string]]::new($Version)
    $sign = if ($Descending) { -1 } else { 1 }
    $list.Sort([Comparison[string]] {
            param ($left, $right)
            $result = Compare-GoSemver $left $right
            if (-not $result) { $result = [math]::Sign([string]::CompareOrdinal($left, $right)) }
            $sign * $result
        })
    , $list.ToArray()
}

#endregion

#region Module paths and globs

function ConvertFrom-GoEscapedPath {
    <# .SYNOPSIS Go's case escaping undone: `!mixed!case` -> `MixedCase` (module.UnescapePath). #>
    param ([string]$Escaped)
    if (-not $Escaped.Contains('!')) { return $Escaped }
    $builder = [System.Text.StringBuilder]::new()
    $bang = $false
    foreach ($char in $Escaped.ToCharArray()) {
        if ($bang) { $null = $builder.Append([char]::ToUpperInvariant($char)); $bang = $false }
        elseif ($char -eq [char]'!') { $bang = $true }
        else { $null = $builder.Append($char) }
    }
    $builder.ToString()
}

function ConvertTo-GoGlobRegex {
    # Python's fnmatch.translate: * ? [seq] [!seq], case-sensitive; `*` matches `/` too.
    param ([string]$Pattern)
    $builder = [System.Text.StringBuilder]::new('^')
    $index = 0
    while ($index -lt $Pattern.Length) {
        $char = $Pattern[$index]
        $index++
        if ($char -eq [char]'*') { $null = $builder.Append('.*') }
        elseif ($char -eq [char]'?') { $null = $builder.Append('.') }
        elseif ($char -eq [char]'[') {
            $end = $index
            if ($end -lt $Pattern.Length -and $Pattern[$end] -eq [char]'!') { $end++ }
            if ($end -lt $Pattern.Length -and $Pattern[$end] -eq [char]']') { $end++ }
            while ($end -lt $Pattern.Length -and $Pattern[$end] -ne [char]']') { $end++ }
            if ($end -ge $Pattern.Length) { $null = $builder.Append('\[') }
            else {
                $class = $Pattern.Substring($index, $end - $index).Replace('\', '\\')
                $index = $end + 1
                if ($class.StartsWith('!')) { $class = '^' + $class.Substring(1) }
                elseif ($class.StartsWith('^')) { $class = '\' + $class }
                $null = $builder.Append('[').Append($class).Append(']')
            }
        }
        else { $null = $builder.Append([regex]::Escape([string]$char)) }
    }
    [regex]::new($builder.Append('$').ToString(), [System.Text.RegularExpressions.RegexOptions]::Singleline)
}

function Test-GoAbsolutePath {
    # Absolute on Windows: a drive letter with a separator, or a UNC path.
    param ([AllowNull()][string]$Path)
    [bool]($Path -and ($Path -match '^[A-Za-z]:[\\/]' -or $Path -match '^[\\/]{2}[^\\/]'))
}

#endregion

#region File system primitives

function Get-GoLongPath {
    <# .SYNOPSIS The \\?\ form of an absolute path, which the Win32 file API takes beyond 260 characters. #>
    param ([string]$Path)
    if ($Path.StartsWith('\\?\')) { return $Path }
    $full = [Path]::GetFullPath($Path)
    if ($full.StartsWith('\\')) { return '\\?\UNC\' + $full.Substring(2) }
    '\\?\' + $full
}

function Get-GoPlainPath {
    # A path without its \\?\ prefix, for messages and results.
    param ([string]$Path)
    if ($Path.StartsWith('\\?\UNC\')) { return '\\' + $Path.Substring(8) }
    if ($Path.StartsWith('\\?\')) { return $Path.Substring(4) }
    $Path
}

function Test-GoReparsePoint {
    # Symbolic links, junctions and volume mount points: never followed, never descended into.
    param ([FileSystemInfo]$Item)
    [bool]($Item.Attributes -band [FileAttributes]::ReparsePoint)
}

function New-GoErrorLog {
    <# .SYNOPSIS Per-path failures that did not stop the run, bounded in size (the result stays small). #>
    @{ items = [List[object]]::new(); total = 0 }
}

function Get-GoException {
    # The .NET exception of an error record, without the MethodInvocationException PowerShell wraps around
    # what a .NET method throws.
    param ([object]$Problem)
    $exception = if ($Problem -is [System.Management.Automation.ErrorRecord]) { $Problem.Exception } else { $Problem }
    if ($exception -is [System.Management.Automation.MethodInvocationException] -and $exception.InnerException) {
        $exception = $exception.InnerException
    }
    $exception
}

function Add-GoError {
    param ([hashtable]$Log, [string]$Path, [object]$Problem)
    $Log.total++
    if ($Log.items.Count -lt $script:MaxReportedErrors) {
        $exception = Get-GoException $Problem
        $message = if ($exception -is [Exception]) { $exception.Message } else { "$exception" }
        $Log.items.Add(@{ path = $Path; error = $message })
    }
}

function Merge-GoErrorLog {
    param ([hashtable]$Into, [hashtable]$From)
    foreach ($item in $From.items) {
        if ($Into.items.Count -lt $script:MaxReportedErrors) { $Into.items.Add($item) }
    }
    $Into.total += $From.total
}

function Get-GoChildItem {
    # The entries of a directory (FileInfo/DirectoryInfo carry attributes, size and times from the listing).
    param ([DirectoryInfo]$Directory)
    , @($Directory.EnumerateFileSystemInfos())
}

function Get-GoAllocatedBytes {
    # Space a file of this size takes: whole clusters (small files NTFS keeps in the MFT are counted too).
    param ([long]$Size, [long]$ClusterBytes)
    if ($Size -le 0) { return 0 }
    [long]([math]::Ceiling($Size / $ClusterBytes) * $ClusterBytes)
}

function Get-GoTreeTotal {
    <#
    .SYNOPSIS
    Files, bytes, allocated bytes and newest modification of a directory tree; reparse points are skipped and
    counted, unreadable directories recorded in the error log.
    #>
    param ([DirectoryInfo]$Directory, [string]$Rel, [hashtable]$Errors, [long]$ClusterBytes)

    $totals = @{ files = 0; bytes = [long]0; disk_bytes = [long]0; newest = [long]0; symlinks_skipped = 0;
        file_list = [List[object]]::new() }
    $pending = [Stack[object]]::new()
    $pending.Push(@($Directory, $Rel))
    while ($pending.Count) {
        $directory, $rel = $pending.Pop()
        try {
            $children = Get-GoChildItem $directory
        }
        catch {
            Add-GoError $Errors $rel $_
            continue
        }
        foreach ($child in $children) {
            $childRel = if ($rel) { "$rel/$($child.Name)" } else { $child.Name }
            if (Test-GoReparsePoint $child) { $totals.symlinks_skipped++ }
            elseif ($child -is [DirectoryInfo]) { $pending.Push(@($child, $childRel)) }
            else {
                $mtime = Get-GoUnixTicks $child.LastWriteTimeUtc
                $totals.files++
                $totals.bytes += $child.Length
                $totals.disk_bytes += Get-GoAllocatedBytes $child.Length $ClusterBytes
                if ($mtime -gt $totals.newest) { $totals.newest = $mtime }
                $totals.file_list.Add(@{ rel = $childRel; item = $child; mtime = $mtime })
            }
        }
    }
    $totals
}

function Invoke-GoWithRetry {
    # Run a file operation, retrying while another process holds the file open (sharing or lock violation).
    param ([scriptblock]$Operation)
    $deadline = [DateTime]::UtcNow.AddMilliseconds($script:LockedFileRetryMs)
    while ($true) {
        try {
            & $Operation
            return
        }
        catch {
            # ERROR_SHARING_VIOLATION (32), ERROR_LOCK_VIOLATION (33): another process has the file open.
            $exception = Get-GoException $_
            $code = $exception.HResult -band 0xFFFF
            $inUse = $exception -is [IOException] -and ($code -eq 32 -or $code -eq 33)
            if (-not $inUse -or [DateTime]::UtcNow -gt $deadline) { throw }
            Start-Sleep -Milliseconds $script:RetryPauseMs
        }
    }
}

function Remove-GoCacheFile {
    <#
    .SYNOPSIS
    Remove one file (or a link, never what it points to); $true when it is gone. Clears the ReadOnly attribute
    first as Go's os.Remove does on Windows; a file held open is retried briefly, then reported.
    #>
    [OutputType([bool])]
    param ([FileSystemInfo]$Item, [string]$Rel, [hashtable]$Errors)

    try {
        if ($Item.Attributes -band [FileAttributes]::ReadOnly) {
            $Item.Attributes = $Item.Attributes -band -bnot [FileAttributes]::ReadOnly
        }
        $path = $Item.FullName
        if ($Item -is [DirectoryInfo]) {
            # A directory link (junction, directory symbolic link): RemoveDirectory removes the link itself.
            Invoke-GoWithRetry { [Directory]::Delete($path, $false) }
        }
        else {
            Invoke-GoWithRetry { [File]::Delete($path) }
        }
        $true
    }
    catch {
        $exception = Get-GoException $_
        if ($exception -is [FileNotFoundException] -or $exception -is [DirectoryNotFoundException]) {
            return $true   # gone already: the goal is met
        }
        Add-GoError $Errors $Rel $_
        $false
    }
}

function Remove-GoCacheTree {
    <#
    .SYNOPSIS
    Remove a directory tree without following reparse points (they are removed as links); $true when all went.
    Read-only directories (Go makes module trees read-only) are made writable first.
    #>
    [OutputType([bool])]
    param ([DirectoryInfo]$Directory, [string]$Rel, [hashtable]$Errors, [switch]$KeepRoot)

    if (Test-GoReparsePoint $Directory) { return (Remove-GoCacheFile $Directory $Rel $Errors) }
    $ok = $true
    try {
        if ($Directory.Attributes -band [FileAttributes]::ReadOnly) {
            $Directory.Attributes = $Directory.Attributes -band -bnot [FileAttributes]::ReadOnly
        }
        foreach ($child in (Get-GoChildItem $Directory)) {
            $childRel = "$Rel/$($child.Name)"
            if ($child -is [DirectoryInfo] -and -not (Test-GoReparsePoint $child)) {
                $ok = (Remove-GoCacheTree $child $childRel $Errors) -and $ok
            }
            else {
                $ok = (Remove-GoCacheFile $child $childRel $Errors) -and $ok
            }
        }
    }
    catch {
        if ((Get-GoException $_) -is [DirectoryNotFoundException]) { return $true }
        Add-GoError $Errors $Rel $_
        return $false
    }
    if ($ok -and -not $KeepRoot) {
        try {
            $path = $Directory.FullName
            Invoke-GoWithRetry { [Directory]::Delete($path, $false) }
        }
        catch {
            Add-GoError $Errors $Rel $_
            $ok = $false
        }
    }
    $ok
}

function Join-GoPath {
    # A relative path ('/' separators) below a directory. Join-Path is not used: it needs the drive to exist
    # and does not take \\?\ paths in Windows PowerShell.
    param ([string]$Base, [string]$Rel)
    if (-not $Rel) { return $Base }
    $Base.TrimEnd('\') + '\' + $Rel.Replace('/', '\')
}

function Get-GoItem {
    # A FileInfo/DirectoryInfo below a directory by relative path ('/' separators), or $null when absent.
    param ([string]$Base, [string]$Rel, [switch]$Directory)
    $path = Join-GoPath (Get-GoLongPath $Base) $Rel
    if ($Directory) {
        $item = [DirectoryInfo]::new($path)
    }
    else {
        $item = [FileInfo]::new($path)
    }
    if ($item.Exists) { $item } else { $null }
}

#endregion

#region File systems, accounts and processes

function Get-GoNtfsLastAccessUpdate {
    <#
    .SYNOPSIS
    Whether NTFS updates last-access times: NtfsDisableLastAccessUpdate (what `fsutil behavior query
    disablelastaccess` reports): 0/2 enabled (user/system managed), 1/3 disabled; missing means disabled, the
    default before Windows 10 1803.
    #>
    [OutputType([bool])]
    param ()
    $key = 'HKLM:\SYSTEM\CurrentControlSet\Control\FileSystem'
    $value = (Get-ItemProperty -LiteralPath $key -Name NtfsDisableLastAccessUpdate -ErrorAction SilentlyContinue).NtfsDisableLastAccessUpdate
    if ($null -eq $value) { return $false }
    -not ([long]$value -band 1)
}

function Get-GoCacheFileSystem {
    <#
    .SYNOPSIS
    The volume holding a path: mount, fstype, size and free bytes (free to this account, like f_bavail), cluster
    size, and whether last-access times are updated (age_basis of module caches). NTFS has no inode table: the
    inode figures are null.
    #>
    param ([string]$Path)

    $root = [Path]::GetPathRoot((Get-GoPlainPath $Path))
    $facts = @{ mount = $root; fstype = $null; size_bytes = $null; free_bytes = $null; inodes_total = $null
        inodes_free = $null; inodes_used_pct = $null; atime_mode = $null; atime_updates = $false; cluster_bytes = 4096
    }
    try {
        $drive = [DriveInfo]::new($root)
        $facts.fstype = $drive.DriveFormat
        $facts.size_bytes = $drive.TotalSize
        $facts.free_bytes = $drive.AvailableFreeSpace
    }
    catch {
        # A UNC share or a volume that is not ready: no figures, and min_free then cannot apply.
        return $facts
    }
    try {
        $volume = Get-CimInstance -ClassName Win32_Volume -Filter "DriveType=3" -ErrorAction Stop |
            Where-Object { $_.Name -eq $root } | Select-Object -First 1
        if ($volume -and $volume.BlockSize) { $facts.cluster_bytes = [long]$volume.BlockSize }
    }
    catch {
        $null = $_   # keep the 4 KiB default, NTFS's default cluster size
    }
    # The same vocabulary as Linux mounts, so that fleet reports group both: NTFS updates last access lazily
    # (at most hourly) when enabled, which is what relatime gives too.
    $facts.atime_updates = $facts.fstype -eq 'NTFS' -and (Get-GoNtfsLastAccessUpdate)
    $facts.atime_mode = if ($facts.atime_updates) { 'relatime' } else { 'noatime' }
    $facts
}

function Get-GoToolchainProcess {
    <#
    .SYNOPSIS
    Running Go toolchain processes (go.exe and the tools it runs while building), of one account when -UserSid is
    given; never this process. Deleting cache entries under a running build breaks it (golang/go#31948).
    #>
    param ([string]$UserSid)

    $found = [List[object]]::new()
    foreach ($process in (Get-Process -ErrorAction SilentlyContinue)) {
        if ($process.Id -eq $PID -or $script:GoToolNames -notcontains $process.ProcessName.ToLowerInvariant()) { continue }
        $owner = $null
        if ($UserSid) {
            try {
                $cim = Get-CimInstance -ClassName Win32_Process -Filter "ProcessId=$($process.Id)" -ErrorAction Stop
                $owner = (Invoke-CimMethod -InputObject $cim -MethodName GetOwnerSid -ErrorAction Stop).Sid
            }
            catch {
                continue   # the process ended meanwhile
            }
            if ($owner -ne $UserSid) { continue }
        }
        $found.Add(@{ pid = $process.Id; user = $owner; name = $process.ProcessName.ToLowerInvariant() })
    }
    , $found.ToArray()
}

function Get-GoProfileList {
    # SID -> profile directory of every account with a profile on this machine.
    $profiles = [Dictionary[string, string]]::new([StringComparer]::OrdinalIgnoreCase)
    $key = 'HKLM:\SOFTWARE\Microsoft\Windows NT\CurrentVersion\ProfileList'
    foreach ($entry in (Get-ChildItem -LiteralPath $key -ErrorAction SilentlyContinue)) {
        $image = $entry.GetValue('ProfileImagePath')
        if ($image) { $profiles[$entry.PSChildName] = [Environment]::ExpandEnvironmentVariables($image) }
    }
    $profiles
}

function Get-GoCacheAccount {
    <#
    .SYNOPSIS
    Accounts as @{name; sid; home}: -Name (an account name or a SID), -All (every account with a profile
    directory, what `users: '*'` means), or the account this runs as.
    #>
    param ([string]$Name, [switch]$All, [string]$Option = 'users')

    $profiles = Get-GoProfileList
    if ($All) {
        $accounts = [List[object]]::new()
        foreach ($sid in @($profiles.Keys | Sort-Object)) {
            # S-1-5-21-...: real accounts; system, local service and network service profiles hold no Go caches.
            if (-not $sid.StartsWith('S-1-5-21-') -or -not [Directory]::Exists($profiles[$sid])) { continue }
            try {
                $accountName = [Security.Principal.SecurityIdentifier]::new($sid).Translate(
                    [Security.Principal.NTAccount]).Value
            }
            catch {
                $accountName = $sid   # a deleted account whose profile is still there
            }
            $accounts.Add(@{ name = $accountName; sid = $sid; home = $profiles[$sid] })
        }
        return , $accounts.ToArray()
    }
    if (-not $Name) {
        $identity = [Security.Principal.WindowsIdentity]::GetCurrent()
        $sid = $identity.User.Value
        $profileHome = if ($profiles.ContainsKey($sid)) { $profiles[$sid] } else { $env:USERPROFILE }
        return @{ name = $identity.Name; sid = $sid; home = $profileHome }
    }
    try {
        if ($Name -match '^S-1-') {
            $sid = [Security.Principal.SecurityIdentifier]::new($Name)
            $accountName = $sid.Translate([Security.Principal.NTAccount]).Value
        }
        else {
            $sid = [Security.Principal.NTAccount]::new($Name).Translate([Security.Principal.SecurityIdentifier])
            $accountName = $sid.Translate([Security.Principal.NTAccount]).Value
        }
    }
    catch {
        throw (New-GoOptionError $Option $Name 'no such local account')
    }
    $profileHome = if ($profiles.ContainsKey($sid.Value)) { $profiles[$sid.Value] } else { $null }
    @{ name = $accountName; sid = $sid.Value; home = $profileHome }
}

function Expand-GoEnvironmentText {
    # %NAME% references expanded from a given environment (Windows leaves unknown ones as they are).
    param ([string]$Text, [hashtable]$Environment)
    [regex]::Replace($Text, '%([^%]+)%', {
            param ($match)
            $name = $match.Groups[1].Value
            if ($Environment.ContainsKey($name)) { $Environment[$name] } else { $match.Value }
        })
}

function Read-GoRegistryEnvironment {
    # Add the values of one registry Environment key to $Environment, expanding REG_EXPAND_SZ with it. As at
    # logon, a user's Path is appended to the machine's; any other user variable replaces the machine's.
    param ([Microsoft.Win32.RegistryKey]$Key, [hashtable]$Environment, [switch]$User)
    foreach ($name in $Key.GetValueNames()) {
        $raw = $Key.GetValue($name, $null, [Microsoft.Win32.RegistryValueOptions]::DoNotExpandEnvironmentNames)
        if ($null -eq $raw) { continue }
        $value = "$raw"
        if ($Key.GetValueKind($name) -eq [Microsoft.Win32.RegistryValueKind]::ExpandString) {
            $value = Expand-GoEnvironmentText $value $Environment
        }
        if ($User -and $name -eq 'Path' -and $Environment['Path']) { $value = "$($Environment['Path']);$value" }
        $Environment[$name] = $value
    }
}

function Get-GoAccountEnvironment {
    <#
    .SYNOPSIS
    The environment a new logon session of the account gets (what its scheduled tasks, services and CI agents
    run with): its profile folders, the machine variables, then its user variables, which win. Returns
    @{environment; errors}. User variables come from HKEY_USERS\<SID>, loaded while the account is logged on
    or runs something; when it is not loaded they are unknown and an error says so.
    #>
    param ([hashtable]$Account)

    $environment = @{}   # case-insensitive, like Windows environment names
    $errors = [List[string]]::new()
    foreach ($name in 'SystemRoot', 'SystemDrive', 'windir', 'ProgramData', 'ALLUSERSPROFILE', 'ProgramFiles',
        'ProgramFiles(x86)', 'PUBLIC', 'COMPUTERNAME') {
        $value = [Environment]::GetEnvironmentVariable($name)
        if ($value) { $environment[$name] = $value }
    }
    $environment['USERNAME'] = ($Account.name -split '\\')[-1]
    if ($Account.home) {
        $environment['USERPROFILE'] = $Account.home
        $environment['APPDATA'] = [Path]::Combine($Account.home, 'AppData', 'Roaming')
        $environment['LOCALAPPDATA'] = [Path]::Combine($Account.home, 'AppData', 'Local')
    }
    else {
        $errors.Add("$($Account.name) has no profile directory: Go's default locations are unknown")
    }

    $userHive = $null
    try {
        $userHive = [Microsoft.Win32.Registry]::Users.OpenSubKey($Account.sid)
    }
    catch {
        $errors.Add("cannot read the registry of $($Account.name): $($_.Exception.Message)")
    }
    if ($userHive) {
        # Folder redirection moves AppData: the shell folders say where it really is.
        $folders = $userHive.OpenSubKey('Software\Microsoft\Windows\CurrentVersion\Explorer\User Shell Folders')
        if ($folders) {
            foreach ($pair in @(@('AppData', 'APPDATA'), @('Local AppData', 'LOCALAPPDATA'))) {
                $raw = $folders.GetValue($pair[0], $null, [Microsoft.Win32.RegistryValueOptions]::DoNotExpandEnvironmentNames)
                if ($raw) { $environment[$pair[1]] = Expand-GoEnvironmentText "$raw" $environment }
            }
            $folders.Dispose()
        }
    }
    $machine = [Microsoft.Win32.Registry]::LocalMachine.OpenSubKey('SYSTEM\CurrentControlSet\Control\Session Manager\Environment')
    if ($machine) {
        Read-GoRegistryEnvironment $machine $environment
        $machine.Dispose()
    }
    if ($userHive) {
        $userEnvironment = $userHive.OpenSubKey('Environment')
        if ($userEnvironment) {
            Read-GoRegistryEnvironment $userEnvironment $environment -User
            $userEnvironment.Dispose()
        }
        $userHive.Dispose()
    }
    elseif (-not $errors.Count) {
        $errors.Add("the registry hive of $($Account.name) is not loaded (not logged on): its user environment variables are unknown; machine variables and defaults used")
    }
    @{ environment = $environment; errors = $errors.ToArray() }
}

#endregion

#region Go environment (_goenv)

function ConvertFrom-GoEnvFile {
    <#
    .SYNOPSIS
    KEY=VALUE pairs exactly as Go reads a go env file (cfg.go readEnvFile): lines end at LF only, so a CR stays
    in the value; lines without '=' or not starting with an uppercase letter are ignored; a later duplicate wins.
    #>
    param ([AllowNull()][AllowEmptyString()][string]$Text)
    $values = [Dictionary[string, string]]::new()
    foreach ($line in "$Text".Split([char]"`n")) {
        $equals = $line.IndexOf('=')
        if ($equals -lt 0 -or $line -cnotmatch '^[A-Z]') { continue }
        $values[$line.Substring(0, $equals)] = $line.Substring($equals + 1)
    }
    , $values
}

function New-GoCandidate {
    param ([string]$Source, [AllowNull()][object]$Value)
    @{ source = $Source; value = $Value }
}

function New-GoSetting {
    # One variable's effective value, where it came from and what it hides, as Go's cfg.Getenv and
    # EnvOrAndChanged decide: the first candidate (New-GoCandidate, in precedence order, $null values skipped),
    # and, when its value is empty, the variable's built-in -Default.
    param ([string]$Name, [object[]]$Candidate, [string]$Default = '', [string]$DerivedFrom)
    $present = @($Candidate | Where-Object { $null -ne $_.value })
    $setting = @{ name = $Name; source = 'default'; value = $Default; shadowed = [List[object]]::new() }
    if ($present.Count) {
        $setting.source = $present[0].source
        $setting.value = $present[0].value
        for ($index = 1; $index -lt $present.Count; $index++) { $setting.shadowed.Add($present[$index]) }
    }
    if (-not $setting.value -and $Default) {
        $setting.source = 'default'
        $setting.value = $Default
    }
    if ($DerivedFrom) { $setting.derived_from = $DerivedFrom }
    $setting
}

function ConvertTo-GoSettingResult {
    # A setting as go_cache_facts reports it: {value, source, shadowed[, derived_from]}.
    param ([hashtable]$Setting)
    $result = @{ value = $Setting.value; source = $Setting.source; shadowed = @($Setting.shadowed) }
    if ($Setting.ContainsKey('derived_from')) { $result.derived_from = $Setting.derived_from }
    $result
}

function Read-GoEnvFileBytes {
    # A go env file as Go's os.ReadFile reads it: bytes as UTF-8, no byte-order mark removed and no UTF-16
    # decoded (Go ignores a first line that starts with a BOM, and finds no key in a UTF-16 file).
    param ([string]$Path)
    [Text.UTF8Encoding]::new($false).GetString([File]::ReadAllBytes($Path))
}

function Get-GoCleanPath {
    # filepath.Clean on Windows for an absolute path (Go joins its defaults and GOPATH\pkg\mod with it):
    # separators made \, doubled ones, . and .. removed, no trailing separator but at the root.
    param ([string]$Path)
    if ($Path -cnotmatch '^([A-Za-z]:[\\/]|[\\/]{2}[^\\/])') { return $Path }
    try {
        $clean = [Path]::GetFullPath($Path)
    }
    catch {
        return $Path   # characters .NET refuses in paths: left as Go would hand them to the system
    }
    if ($clean.Length -gt 3 -and $clean.EndsWith('\') -and $clean -cnotmatch '^\\\\[^\\]+\\[^\\]+\\$') {
        $clean = $clean.TrimEnd('\')
    }
    $clean
}

function Get-GoEnvironment {
    <#
    .SYNOPSIS
    Go's view of one account (the twin of _goenv.GoEnvironment with Windows defaults): for every cache variable
    its value, source (env, goenv_file, goroot_env, default) and what it shadows. Precedence: a non-empty
    variable of -Environment, then the go env file, then $GOROOT\go.env, then Go's default (%LocalAppData%\go-build,
    %USERPROFILE%\go, %AppData%\go\env). File contents may be given (-GoEnvFileText, -GoRootEnvText) or are read.
    Returns @{settings; goenv_path; goroot; errors; conflicts}.
    #>
    # Untyped: a [string] parameter would turn "not given" ($null) into ''.
    param (
        [hashtable]$Environment,
        [AllowNull()][object]$GoRoot,
        [AllowNull()][object]$GoEnvFileText,
        [AllowNull()][object]$GoRootEnvText
    )

    $errors = [List[string]]::new()
    $get = { param ($name) $value = $Environment[$name]; if ($value) { $value } else { $null } }

    $goenvPath = $null
    $goenvSource = 'default'
    if (& $get 'GOENV') {
        $goenvSource = 'env'
        if ($Environment['GOENV'] -cne 'off') { $goenvPath = $Environment['GOENV'] }
    }
    elseif (& $get 'APPDATA') { $goenvPath = Get-GoCleanPath ([Path]::Combine($Environment['APPDATA'], 'go', 'env')) }
    else { $errors.Add('GOENV: %AppData% is not defined') }

    if ($null -eq $GoEnvFileText -and $goenvPath) {
        try {
            if ([File]::Exists((Get-GoLongPath $goenvPath))) {
                $GoEnvFileText = Read-GoEnvFileBytes (Get-GoLongPath $goenvPath)
            }
        }
        catch {
            $errors.Add("GOENV: cannot read ${goenvPath}: $($_.Exception.Message)")
        }
    }
    $fileValues = ConvertFrom-GoEnvFile $GoEnvFileText
    # Go's findGOROOT: the go env file's GOROOT, then the environment's, then the binary's.
    $goroot = if ($fileValues['GOROOT']) { $fileValues['GOROOT'] } elseif (& $get 'GOROOT') { $Environment['GOROOT'] } else { $GoRoot }
    if ($null -eq $GoRootEnvText -and $goroot) {
        $gorootEnv = [Path]::Combine($goroot, 'go.env')
        if ([File]::Exists($gorootEnv)) { $GoRootEnvText = Read-GoEnvFileBytes $gorootEnv }
    }
    $gorootValues = ConvertFrom-GoEnvFile $GoRootEnvText

    $candidates = {
        # A key the go env file has (even empty) hides $GOROOT\go.env's: Go does not read that one then.
        param ($name)
        $fromFile = $null
        $fromGoroot = $null
        if ($fileValues.ContainsKey($name)) { $fromFile = $fileValues[$name] }
        elseif ($gorootValues.ContainsKey($name)) { $fromGoroot = $gorootValues[$name] }
        @((New-GoCandidate 'env' (& $get $name)), (New-GoCandidate 'goenv_file' $fromFile),
            (New-GoCandidate 'goroot_env' $fromGoroot))
    }

    $settings = @{}
    # go env GOENV prints the file Go reads, "" when there is none (GOENV=off).
    $settings['GOENV'] = New-GoSetting 'GOENV' @(New-GoCandidate $goenvSource $(if ($goenvPath) { $goenvPath } else { '' }))
    # Go's cache.DefaultDir: no default directory, or a relative GOCACHE, means the cache is off.
    $cacheDefault = if (& $get 'LOCALAPPDATA') { Get-GoCleanPath ([Path]::Combine($Environment['LOCALAPPDATA'], 'go-build')) } else { 'off' }
    $gocache = New-GoSetting 'GOCACHE' @(& $candidates 'GOCACHE') $cacheDefault
    if ($cacheDefault -ceq 'off' -and $gocache.source -eq 'default') { $errors.Add('GOCACHE: %LocalAppData% is not defined') }
    elseif ($gocache.value -cne 'off' -and -not (Test-GoAbsolutePath $gocache.value)) {
        $errors.Add("GOCACHE: '$($gocache.value)' is not an absolute path, so Go does not use a cache")
        $gocache.value = 'off'
    }
    $settings['GOCACHE'] = $gocache
    $pathDefault = if (& $get 'USERPROFILE') { Get-GoCleanPath ([Path]::Combine($Environment['USERPROFILE'], 'go')) } else { '' }
    if ($pathDefault -and (& $get 'GOROOT') -and $pathDefault -ceq (Get-GoCleanPath $Environment['GOROOT'])) {
        $pathDefault = ''   # go/build's defaultGOPATH: never GOROOT
    }
    $settings['GOPATH'] = New-GoSetting 'GOPATH' @(& $candidates 'GOPATH') $pathDefault
    $gopath = $settings['GOPATH']
    $firstGopath = if ($gopath.value) { $gopath.value.Split(';')[0] } else { '' }
    $modcache = New-GoSetting 'GOMODCACHE' @(& $candidates 'GOMODCACHE')
    if (-not $modcache.value) {
        # Derived: the first GOPATH entry + \pkg\mod, with GOPATH's provenance.
        $derived = if ($firstGopath) { Get-GoCleanPath ([Path]::Combine($firstGopath, 'pkg', 'mod')) } else { '' }
        $modcache = New-GoSetting 'GOMODCACHE' @(New-GoCandidate $gopath.source $derived) -DerivedFrom 'GOPATH'
    }
    $settings['GOMODCACHE'] = $modcache
    foreach ($name in 'GOPROXY', 'GOSUMDB', 'GOPRIVATE', 'GOFLAGS', 'GOTOOLCHAIN') {
        $settings[$name] = New-GoSetting $name @(& $candidates $name)
    }
    foreach ($name in 'GONOSUMDB', 'GONOPROXY') {
        $setting = New-GoSetting $name @(& $candidates $name)
        if (-not $setting.value) {   # Go defaults both to GOPRIVATE
            $setting = New-GoSetting $name @(New-GoCandidate $settings['GOPRIVATE'].source $settings['GOPRIVATE'].value) -DerivedFrom 'GOPRIVATE'
        }
        $settings[$name] = $setting
    }

    # Variables whose OS environment value hides a different go env file value (go env -w seemingly ignored).
    $conflicts = [List[object]]::new()
    foreach ($name in @($settings.Keys | Sort-Object { $_ } -CaseSensitive)) {
        $setting = $settings[$name]
        if ($setting.source -ne 'env') { continue }
        foreach ($shadowed in $setting.shadowed) {
            if ($shadowed.source -eq 'goenv_file' -and $shadowed.value -cne $setting.value) {
                $conflicts.Add(@{ var = $name; value = $setting.value; source = 'env'; shadowed_source = 'goenv_file'
                        shadowed_value = $shadowed.value
                    })
            }
        }
    }
    @{ settings = $settings; goenv_path = $goenvPath; goroot = $goroot; errors = $errors.ToArray()
        conflicts = $conflicts.ToArray()
    }
}

function Find-GoBinary {
    <# .SYNOPSIS The go.exe to ask: -Explicit, else the environment's PATH, else the usual install place. #>
    param ([hashtable]$Environment, [string]$Explicit)
    if ($Explicit) { return $(if ([File]::Exists($Explicit)) { $Explicit } else { $null }) }
    $path = if ($Environment['Path']) { $Environment['Path'] } else { $env:Path }
    foreach ($directory in "$path".Split(";")) {
        if (-not $directory) { continue }
        $candidate = [Path]::Combine($directory, 'go.exe')
        if ([File]::Exists($candidate)) { return $candidate }
    }
    foreach ($candidate in @("$env:ProgramFiles\Go\bin\go.exe", 'C:\Go\bin\go.exe')) {
        if ([File]::Exists($candidate)) { return $candidate }
    }
    $null
}

function Invoke-GoEnvJson {
    <#
    .SYNOPSIS
    `go env -json` as the account this runs as; returns @{values; error}. GOTOOLCHAIN=local keeps Go from
    downloading a toolchain, GOENV is pinned to the resolved file and APPDATA pointed below a file (uncreatable)
    so that Go's telemetry cannot write into the profile.
    #>
    param ([string]$GoBinary, [hashtable]$Environment, [string]$GoEnvPath, [int]$TimeoutSeconds = 60)

    $start = [Diagnostics.ProcessStartInfo]::new($GoBinary)
    $start.UseShellExecute = $false
    $start.RedirectStandardOutput = $true
    $start.RedirectStandardError = $true
    $start.CreateNoWindow = $true
    $names = @($script:CacheVars | Where-Object { $_ -notin 'GOENV', 'GOTOOLCHAIN' }) + @('GOROOT', 'GOVERSION')
    $start.Arguments = 'env -json ' + ($names -join ' ')
    foreach ($pair in $Environment.GetEnumerator()) { $start.EnvironmentVariables[$pair.Key] = "$($pair.Value)" }
    $start.EnvironmentVariables['GOTOOLCHAIN'] = 'local'
    $start.EnvironmentVariables['GOENV'] = $(if ($GoEnvPath) { $GoEnvPath } else { 'off' })
    $start.EnvironmentVariables['APPDATA'] = [Path]::Combine($GoBinary, 'gofleet-no-telemetry')
    try {
        $process = [Diagnostics.Process]::Start($start)
    }
    catch {
        return @{ values = $null; error = "cannot run ${GoBinary}: $($_.Exception.Message)" }
    }
    $stderr = $process.StandardError.ReadToEndAsync()
    $stdout = $process.StandardOutput.ReadToEnd()
    if (-not $process.WaitForExit($TimeoutSeconds * 1000)) {
        $process.Kill()
        return @{ values = $null; error = "$GoBinary env -json timed out after ${TimeoutSeconds}s" }
    }
    if ($process.ExitCode -ne 0) {
        $text = $stderr.Result.Trim()
        return @{ values = $null; error = "$GoBinary env -json failed (rc=$($process.ExitCode)): $($text.Substring(0, [math]::Min(500, $text.Length)))" }
    }
    try {
        $parsed = ConvertFrom-Json -InputObject $stdout -ErrorAction Stop
    }
    catch {
        return @{ values = $null; error = "$GoBinary env -json returned no JSON" }
    }
    $values = @{}
    foreach ($property in $parsed.PSObject.Properties) { $values[$property.Name] = "$($property.Value)" }
    @{ values = $values; error = $null }
}

function Update-GoEnvironmentFromGo {
    <#
    .SYNOPSIS
    Let `go env -json` overrule the computed settings (it is the authority when it runs); returns the
    disagreements. GOTOOLCHAIN and GOENV are excluded: the query pins both.
    #>
    param ([hashtable]$GoEnvironment, [hashtable]$Reported)
    $disagreements = [List[object]]::new()
    foreach ($name in @($GoEnvironment.settings.Keys)) {
        if ($name -in 'GOTOOLCHAIN', 'GOENV' -or -not $Reported.ContainsKey($name)) { continue }
        $setting = $GoEnvironment.settings[$name]
        if ($Reported[$name] -cne $setting.value) {
            $disagreements.Add(@{ var = $name; computed = $setting.value; computed_source = $setting.source
                    go_env_json = $Reported[$name]
                })
            $setting.shadowed.Insert(0, @{ source = $setting.source; value = $setting.value })
            $setting.value = $Reported[$name]
            $setting.source = 'go_env_json'
        }
    }
    , $disagreements.ToArray()
}

function Test-GoEnvVariable {
    <#
    .SYNOPSIS
    Refuse what `go env -w NAME=VALUE` refuses (and a relative GOCACHE), naming the variable (twin of
    _goenv.check_var with Windows paths). -Existing: names already in the file, which Go lets be written even
    when it does not know them. A $null value checks only the name (`go env -u`).
    #>
    # $Value is untyped: a [string] parameter would turn $null into ''.
    param ([string]$Name, [AllowNull()][object]$Value, [string]$Option = 'vars', [string[]]$Existing = @())

    $where = "$Option.$Name"
    if ($script:GoOsOnlyVars -ccontains $Name) {
        throw (New-GoOptionError $where $Value "$Name can only be set in the OS environment, not in a go env file")
    }
    if ($script:GoReadOnlyVars -ccontains $Name) {
        throw (New-GoOptionError $where $Value "$Name is computed by Go and cannot be modified")
    }
    # Removing a name the file does not hold is done already: a second run must succeed (unlike go env -u).
    if ($null -eq $Value) { return }
    if (-not $script:GoKnownVars.Contains($Name) -and $Existing -cnotcontains $Name) {
        throw (New-GoOptionError $Option $Name "unknown go command variable $Name")
    }
    $Value = [string]$Value
    if ($Value.Contains([char]0)) { throw (New-GoOptionError $where $Value 'invalid NUL in the value') }
    if ($Value.IndexOfAny([char[]]"`v`r`n") -ge 0) {
        throw (New-GoOptionError $where $Value 'invalid newline in the value (a go env file holds one line per variable)')
    }
    if ($Name -ceq 'GO111MODULE' -and @('', 'auto', 'on', 'off') -cnotcontains $Value) {
        throw (New-GoOptionError $where $Value 'expected one of auto, on, off')
    }
    if ($Name -ceq 'GOCACHE' -and $Value -ceq 'off') {
        throw (New-GoOptionError $where $Value 'GOCACHE=off makes every go build fail since Go 1.12')
    }
    if ($script:GoAbsolutePathVars -ccontains $Name -and $Value) {
        $entries = if ($Name -ceq 'GOPATH') { $Value.Split(';') } else { @($Value) }
        foreach ($entry in $entries) {
            if ($entry.StartsWith('~')) {
                throw (New-GoOptionError $where $Value "entry '$entry' starts with the shell metacharacter '~'")
            }
            if (-not (Test-GoAbsolutePath $entry)) {
                throw (New-GoOptionError $where $Value "entry '$entry' is relative; must be an absolute path")
            }
        }
    }
}

function Get-GoEnvLineKey {
    # KEY of a KEY=VALUE line, '' for comments, blank and other lines (envcmd lineToKey).
    param ([string]$Line)
    $equals = $Line.IndexOf('=')
    if ($equals -lt 0) { return '' }
    $key = $Line.Substring(0, $equals)
    if ($key.Contains('#')) { '' } else { $key }
}

function Update-GoEnvFileText {
    <#
    .SYNOPSIS
    The go env file `go env -w` (-Add) and `go env -u` (-Remove) leave behind, byte for byte (envcmd
    updateEnvFile): keep only the last copy of a duplicated key, set existing keys in place and append new ones,
    blank removed keys, then sort each run of KEY=VALUE lines by key; comments, blank and invalid lines (and the
    places of dropped lines) separate the runs and stay where they are. Lines written end with LF only.
    #>
    [OutputType([string])]
    param ([AllowEmptyString()][string]$Text, [System.Collections.IDictionary]$Add = @{}, [string[]]$Remove = @())

    $parts = $Text.Split([char]"`n")
    $lines = [List[string]]::new()
    for ($index = 0; $index -lt $parts.Count - 1; $index++) { $lines.Add($parts[$index] + "`n") }
    if ($parts[-1]) { $lines.Add($parts[-1] + "`n") }
    $last = [Dictionary[string, int]]::new()
    for ($index = 0; $index -lt $lines.Count; $index++) {
        $key = Get-GoEnvLineKey $lines[$index]
        if ($key) {
            if ($last.ContainsKey($key)) { $lines[$last[$key]] = '' }
            $last[$key] = $index
        }
    }
    foreach ($key in @($Add.Keys | Sort-Object { $_ } -CaseSensitive)) {
        $line = "$key=$($Add[$key])`n"
        if ($last.ContainsKey($key)) { $lines[$last[$key]] = $line } else { $lines.Add($line) }
    }
    foreach ($key in $Remove) {
        if ($last.ContainsKey($key)) { $lines[$last[$key]] = '' }
    }
    $start = 0
    for ($index = 0; $index -le $lines.Count; $index++) {
        if ($index -eq $lines.Count -or -not (Get-GoEnvLineKey $lines[$index])) {
            if ($index - $start -gt 1) {
                $run = $lines.GetRange($start, $index - $start).ToArray()
                $keys = [string[]]@($run | ForEach-Object { Get-GoEnvLineKey $_ })
                # Array.Sort by key with ordinal comparison: Go's sort.Slice on keys, byte order.
                [Array]::Sort($keys, $run, [StringComparer]::Ordinal)
                for ($offset = 0; $offset -lt $run.Count; $offset++) { $lines[$start + $offset] = $run[$offset] }
            }
            $start = $index + 1
        }
    }
    -join $lines
}

function Edit-GoEnvFileText {
    <#
    .SYNOPSIS
    @{text; set; removed} for a go env file holding -Text (twin of _goenv.edit_env_file): with -State present a
    $null value removes its variable and any other sets it; with absent every named variable is removed.
    Values are checked as `go env -w` checks them before anything is decided.
    #>
    param ([AllowEmptyString()][string]$Text, [System.Collections.IDictionary]$Vars, [string]$State = 'present',
        [string]$Option = 'vars')

    $existing = @((ConvertFrom-GoEnvFile $Text).Keys)
    $add = [ordered]@{}
    $remove = [List[string]]::new()
    foreach ($name in @($Vars.Keys | Sort-Object { $_ } -CaseSensitive)) {
        $value = $Vars[$name]
        if ($State -eq 'absent' -or $null -eq $value) {
            Test-GoEnvVariable $name $null $Option $existing
            $remove.Add($name)
            continue
        }
        if ($value -is [bool] -or -not ($value -is [string] -or $value -is [int] -or $value -is [long])) {
            throw (New-GoOptionError "$Option.$name" $value 'expected a string (quote numbers and booleans)')
        }
        $value = "$value"
        Test-GoEnvVariable $name $value $Option $existing
        $add[$name] = $value
    }
    @{ text = (Update-GoEnvFileText $Text $add $remove.ToArray()); set = @($add.Keys); removed = $remove.ToArray() }
}

#endregion

#region Build cache (_buildcache)

function Test-GoBuildCache {
    <# .SYNOPSIS True for a Go build cache: its README starts with Go's marker line, or, the README gone (Go writes
    it again on its next use) or without the marker, it has Go's structure (Test-GoBuildCacheStructure). #>
    param ([string]$Path)
    $readme = Join-GoPath (Get-GoLongPath $Path) 'README'
    if (-not [File]::Exists($readme)) { return (Test-GoBuildCacheStructure $Path) }
    try {
        $stream = [FileStream]::new($readme, [FileMode]::Open, [FileAccess]::Read, [FileShare]'ReadWrite, Delete')
        try {
            $buffer = [byte[]]::new($script:BuildReadmeMarker.Length)
            $read = $stream.Read($buffer, 0, $buffer.Length)
        }
        finally {
            $stream.Dispose()
        }
        ($read -eq $buffer.Length -and [Text.Encoding]::ASCII.GetString($buffer) -ceq $script:BuildReadmeMarker) -or
            (Test-GoBuildCacheStructure $Path)
    }
    catch {
        Test-GoBuildCacheStructure $Path
    }
}

function Test-GoBuildCacheStructure {
    # All 256 entry directories Go makes (cache.go Open) and nothing at the top but Go's own files and fuzz.
    param ([string]$Path)
    $hexDirs = 0
    try {
        foreach ($child in [DirectoryInfo]::new((Get-GoLongPath $Path)).EnumerateFileSystemInfos()) {
            if ($child -is [DirectoryInfo] -and $child.Name -cmatch '^[0-9a-f]{2}$') { $hexDirs++ }
            elseif (-not (($child -is [FileInfo] -and @('README', 'trim.txt', 'testexpire.txt', 'log.txt') -ccontains $child.Name) -or
                    ($child -is [DirectoryInfo] -and $child.Name -ceq 'fuzz'))) {
                return $false
            }
        }
    }
    catch {
        return $false
    }
    $hexDirs -eq 256
}

function Read-GoActionLine {
    <#
    .SYNOPSIS
    @{ output = the output ID (64 lowercase hex) an -a file's line names; size = the output size it records }, or
    $null when Go would miss it. The checks are Go's own (cache.go get): exactly 175 bytes, `v1 `, the
    separators and the final newline, hex IDs (either case) with the action ID the name's, and size and time
    fields that parse as non-negative 64-bit integers after their leading spaces.
    #>
    param ([FileInfo]$File, [string]$ActionId)
    $stream = [FileStream]::new($File.FullName, [FileMode]::Open, [FileAccess]::Read, [FileShare]'ReadWrite, Delete')
    try {
        $buffer = [byte[]]::new($script:ActionFileSize + 1)
        $read = 0
        while ($read -lt $buffer.Length) {
            $count = $stream.Read($buffer, $read, $buffer.Length - $read)
            if ($count -le 0) { break }
            $read += $count
        }
    }
    finally {
        $stream.Dispose()
    }
    if ($read -ne $script:ActionFileSize) { return $null }
    $text = [Text.Encoding]::ASCII.GetString($buffer, 0, $read)
    if (-not $text.StartsWith('v1 ') -or $text[67] -ne [char]' ' -or $text[132] -ne [char]' ' -or
        $text[153] -ne [char]' ' -or $text[174] -ne [char]"`n") {
        return $null
    }
    $action = $text.Substring(3, 64)
    $output = $text.Substring(68, 64)
    if ($action -notmatch '^[0-9a-fA-F]{64}$' -or $action.ToLowerInvariant() -cne $ActionId -or
        $output -notmatch '^[0-9a-fA-F]{64}$') {
        return $null
    }
    $size = ConvertFrom-GoDecimalField $text.Substring(133, 20)
    $time = ConvertFrom-GoDecimalField $text.Substring(154, 20)
    if ($null -eq $size -or $size -lt 0 -or $null -eq $time -or $time -lt 0) { return $null }
    @{ output = $output.ToLowerInvariant(); size = $size }
}

function ConvertFrom-GoDecimalField {
    # strconv.ParseInt(field without its leading spaces, 10, 64), or $null where Go's would fail.
    param ([string]$Field)
    $text = $Field.TrimStart(' ')
    if ($text -notmatch '^[+-]?[0-9]+$') { return $null }
    $value = [long]0
    if (-not [long]::TryParse($text, [Globalization.NumberStyles]::AllowLeadingSign, [Globalization.CultureInfo]::InvariantCulture, [ref]$value)) {
        return $null
    }
    $value
}

function Get-GoBuildCacheScan {
    <#
    .SYNOPSIS
    One pass over a build cache: actions (@{id; rel; output; mtime; size; disk}), outputs keyed by ID
    (@{id; rel; mtime; size; disk; files; is_dir}), totals. With -Link:$false (link_entries false) the -a files
    are not read: every entry file is kept as @{mtime; size; is_action} and aged on its own.
    #>
    param ([string]$Root, [bool]$Link = $true, [long]$ClusterBytes = 4096)

    $scan = @{ files = 0; bytes = [long]0; disk_bytes = [long]0; other_files = 0; other_bytes = [long]0
        symlinks_skipped = 0; mounts_skipped = 0; errors = (New-GoErrorLog); last_trim = $null
        actions = [List[object]]::new(); outputs = [Dictionary[string, object]]::new(); unlinked = [List[object]]::new()
    }
    $count = {
        param ($size)
        $scan.files++
        $scan.bytes += $size
        $scan.disk_bytes += Get-GoAllocatedBytes $size $ClusterBytes
    }
    $addTree = {
        param ($totals)
        $scan.files += $totals.files
        $scan.bytes += $totals.bytes
        $scan.disk_bytes += $totals.disk_bytes
        $scan.symlinks_skipped += $totals.symlinks_skipped
    }
    $rootItem = [DirectoryInfo]::new((Get-GoLongPath $Root))
    $entryDirs = [List[object]]::new()
    foreach ($child in (Get-GoChildItem $rootItem)) {
        if (Test-GoReparsePoint $child) { $scan.symlinks_skipped++ }
        elseif ($child -is [FileInfo]) {
            & $count $child.Length
            if ($child.Name -ceq $script:TrimFileName) {
                try {
                    $scan.last_trim = [long]([File]::ReadAllText($child.FullName).Trim())
                }
                catch {
                    $scan.last_trim = $null
                }
            }
        }
        elseif ($child.Name -cmatch '^[0-9a-f]{2}$') { $entryDirs.Add($child) }
        elseif ($child.Name -cne $script:FuzzDirName) {
            # Not Go's: counted so that the totals add up, never entered for removal.
            $totals = Get-GoTreeTotal $child $child.Name $scan.errors $ClusterBytes
            & $addTree $totals
            $scan.other_files += $totals.files
            $scan.other_bytes += $totals.bytes
        }
    }
    foreach ($directory in ($entryDirs | Sort-Object Name)) {
        $dirName = $directory.Name
        try {
            $children = Get-GoChildItem $directory
        }
        catch {
            Add-GoError $scan.errors $dirName $_
            continue
        }
        foreach ($child in $children) {
            $rel = "$dirName/$($child.Name)"
            if (Test-GoReparsePoint $child) { $scan.symlinks_skipped++; continue }
            # Go's names: <64 lowercase hex>-a / -d, in the directory of their first byte.
            $isEntry = $child.Name -cmatch '^[0-9a-f]{64}-[ad]$' -and $child.Name.Substring(0, 2) -ceq $dirName
            $mtime = Get-GoUnixTicks $child.LastWriteTimeUtc
            if ($child -is [FileInfo]) {
                & $count $child.Length
                if (-not $isEntry) {
                    $scan.other_files++
                    $scan.other_bytes += $child.Length
                    continue
                }
                $id = $child.Name.Substring(0, 64)
                $isAction = $child.Name.EndsWith('-a')
                if (-not $Link) {
                    $scan.unlinked.Add(@{ mtime = $mtime; size = $child.Length; is_action = $isAction })
                }
                elseif ($isAction) {
                    try {
                        $line = Read-GoActionLine $child $id
                    }
                    catch {
                        Add-GoError $scan.errors $rel $_
                        $line = $null
                    }
                    $scan.actions.Add(@{ id = $id; rel = $rel; output = $(if ($line) { $line.output } else { $null })
                            recorded = $(if ($line) { $line.size } else { [long]-1 }); mtime = $mtime; size = $child.Length
                            disk = (Get-GoAllocatedBytes $child.Length $ClusterBytes)
                        })
                }
                else {
                    $scan.outputs[$id] = @{ id = $id; rel = $rel; mtime = $mtime; size = $child.Length
                        disk = (Get-GoAllocatedBytes $child.Length $ClusterBytes); files = 1; is_dir = $false
                    }
                }
            }
            else {
                $totals = Get-GoTreeTotal $child $rel $scan.errors $ClusterBytes
                & $addTree $totals
                if ($isEntry -and $child.Name.EndsWith('-d')) {
                    # Go 1.24+: a -d directory holding one executable (go run, go tool).
                    $id = $child.Name.Substring(0, 64)
                    if (-not $Link) {
                        $scan.unlinked.Add(@{ mtime = $mtime; size = $totals.bytes; is_action = $false })
                    }
                    else {
                        # Go's OutputFile: a hit only when the directory's only entry is a regular file.
                        $only = @(Get-GoChildItem $child)
                        $oneFile = $only.Count -eq 1 -and $only[0] -is [FileInfo] -and -not (Test-GoReparsePoint $only[0])
                        $scan.outputs[$id] = @{ id = $id; rel = $rel; mtime = $mtime; size = $totals.bytes
                            disk = $totals.disk_bytes; files = $totals.files; is_dir = $true; one_file = $oneFile
                        }
                    }
                }
                else {
                    $scan.other_files += $totals.files
                    $scan.other_bytes += $totals.bytes
                }
            }
        }
    }
    $scan
}

function Get-GoHitOutput {
    # The output an action names when Go counts the entry as a hit (GetFile, OutputFile): the -d exists with the
    # size the line records (a -d directory: its only entry a file of that size); else $null.
    param ([hashtable]$Scan, [hashtable]$Action)
    if ($null -eq $Action.output -or -not $Scan.outputs.ContainsKey($Action.output)) { return $null }
    $output = $Scan.outputs[$Action.output]
    if ($output.size -ne $Action.recorded -or ($output.is_dir -and -not $output.one_file)) { return $null }
    $output
}

function Get-GoBuildCacheEntry {
    <#
    .SYNOPSIS
    The entries of a scan: every action joined with the output it names, then orphan outputs. Every file ages on
    its own, as Go's trim ages it: an entry's last use is its -a's mtime. A shared output belongs to the most
    recently used alive entry naming it; its bytes count for that entry only. Dead entries (an -a Go would miss:
    unparsable, its -d gone or of another size) and outputs no alive entry names have alive $false.
    #>
    param ([hashtable]$Scan)

    $owner = [Dictionary[string, object]]::new()
    foreach ($action in $Scan.actions) {
        if ($null -eq (Get-GoHitOutput $Scan $action)) { continue }
        if (-not $owner.ContainsKey($action.output) -or $action.mtime -ge $owner[$action.output].last_used) {
            $owner[$action.output] = @{ last_used = $action.mtime; action = $action }
        }
    }
    $entries = [List[object]]::new()
    foreach ($action in $Scan.actions) {
        $output = Get-GoHitOutput $Scan $action
        if ($null -eq $output -and $action.output -ceq $script:EmptyOutputId -and $action.recorded -eq 0 -and
                -not $Scan.outputs.ContainsKey($action.output)) {
            # Go's GetBytes hit on the empty output, whose -d is gone: alive, with no output to free.
            $entries.Add(@{ action = $action; output = $null; output_id = $action.output; alive = $true
                    owns_output = $false; last_used = $action.mtime; bytes = $action.size; disk = $action.disk
                })
            continue
        }
        if ($null -eq $output) {
            $entries.Add(@{ action = $action; output = $null; output_id = $action.output; alive = $false
                    owns_output = $false; last_used = $action.mtime; bytes = $action.size; disk = $action.disk
                })
            continue
        }
        $owns = [object]::ReferenceEquals($owner[$output.id].action, $action)
        $entries.Add(@{ action = $action; output = $output; output_id = $output.id; alive = $true; owns_output = $owns
                last_used = $action.mtime
                bytes = $action.size + $(if ($owns) { $output.size } else { 0 })
                disk = $action.disk + $(if ($owns) { $output.disk } else { 0 })
            })
    }
    foreach ($output in $Scan.outputs.Values) {
        if ($owner.ContainsKey($output.id)) { continue }
        $entries.Add(@{ action = $null; output = $output; output_id = $output.id; alive = $false; owns_output = $true
                last_used = $output.mtime; bytes = $output.size; disk = $output.disk
            })
    }
    , $entries.ToArray()
}

#endregion

#region Module cache (_modcache)

function Split-GoDownloadName {
    <#
    .SYNOPSIS
    (escaped version, suffix) of a file in an @v directory, or ($null, $null) for `list` and others. Temporary
    files Go leaves when killed mid-download (`v1.0.0.zip123.tmp`) have the suffix `.tmp`.
    #>
    param ([string]$Name)
    if ($Name.EndsWith('.tmp')) {
        foreach ($suffix in $script:DownloadSuffixes) {
            $at = $Name.IndexOf($suffix, [StringComparison]::Ordinal)
            if ($at -gt 0) { return , @($Name.Substring(0, $at), '.tmp') }
        }
        return , @($null, '.tmp')
    }
    foreach ($suffix in $script:DownloadSuffixes) {
        if ($Name.EndsWith($suffix, [StringComparison]::Ordinal) -and $Name.Length -gt $suffix.Length) {
            return , @($Name.Substring(0, $Name.Length - $suffix.Length), $suffix)
        }
    }
    , @($null, $null)
}

function Test-GoModuleCache {
    <# .SYNOPSIS True when the directory has Go's cache\download layout. #>
    param ([string]$Path)
    $download = [DirectoryInfo]::new((Join-GoPath (Get-GoLongPath $Path) 'cache/download'))
    $cache = [DirectoryInfo]::new((Join-GoPath (Get-GoLongPath $Path) 'cache'))
    $download.Exists -and -not (Test-GoReparsePoint $download) -and -not (Test-GoReparsePoint $cache)
}

function Get-GoModuleVersionState {
    <#
    .SYNOPSIS
    complete | download_only | incomplete | removed. Go considers a version present iff the tree exists, no
    .partial exists and the .ziphash exists; one with only .info and .mod was fetched for the module graph.
    `removed`: only the .lock is left (as after a prune): nothing of the version to report or remove.
    #>
    param ([hashtable]$Version)
    $files = $Version.download
    $onlyLock = -not @($files.Keys | Where-Object { $_ -cne '.lock' }).Count
    if (-not $Version.tree -and $onlyLock) { return $(if ($Version.tmp) { 'incomplete' } else { 'removed' }) }
    if ($files.ContainsKey('.partial') -or ($Version.tree -and -not $files.ContainsKey('.ziphash'))) { return 'incomplete' }
    if ($files.ContainsKey('.zip') -and -not $files.ContainsKey('.ziphash')) { return 'incomplete' }
    if ($Version.tree) { return 'complete' }
    if ($files.ContainsKey('.mod')) { return 'download_only' }
    'incomplete'
}

function Get-GoModuleVersionSize {
    # @(bytes, allocated bytes, files) of a version: its tree and download files but the .lock.
    param ([hashtable]$Version, [string[]]$Exclude = @('.lock'))
    $bytes = $Version.tree_bytes
    $disk = $Version.tree_disk
    $files = $Version.tree_files
    foreach ($suffix in $Version.download.Keys) {
        if ($Exclude -ccontains $suffix) { continue }
        $bytes += $Version.download[$suffix].size
        $disk += $Version.download[$suffix].disk
        $files++
    }
    , @($bytes, $disk, $files)
}

function Get-GoModuleVersionLastUse {
    # Newest use signal: last access (if the volume updates it) or modification of .ziphash/.mod/.info.
    param ([hashtable]$Version, [bool]$UseAtime)
    $newest = [long]0
    foreach ($suffix in $script:UseSuffixes) {
        if (-not $Version.download.ContainsKey($suffix)) { continue }
        $item = $Version.download[$suffix]
        $newest = [math]::Max($newest, $item.mtime)
        if ($UseAtime) { $newest = [math]::Max($newest, $item.atime) }
    }
    if ($newest) { $newest } else { $Version.tree_mtime }
}

function Get-GoModuleCacheScan {
    <#
    .SYNOPSIS
    One pass over a module cache: the versions (keyed "<escaped module>@<escaped version>"; a version has
    module_esc, version_esc, download (suffix -> @{size; disk; atime; mtime}), tree, tree_* totals, tmp)
    and the totals go_cache_facts reports.
    #>
    param ([string]$Root, [long]$ClusterBytes = 4096)

    $scan = @{ files = 0; bytes = [long]0; disk_bytes = [long]0; sumdb_bytes = [long]0; vcs_bytes = [long]0
        tmp_files = 0; tmp_bytes = [long]0; other_bytes = [long]0; symlinks_skipped = 0; mounts_skipped = 0
        errors = (New-GoErrorLog); versions = [Dictionary[string, object]]::new()
    }
    $getVersion = {
        param ($moduleEsc, $versionEsc)
        $key = "$moduleEsc@$versionEsc"
        if (-not $scan.versions.ContainsKey($key)) {
            $scan.versions[$key] = @{ module_esc = $moduleEsc; version_esc = $versionEsc
                download = [Dictionary[string, object]]::new(); tree = $false; tree_files = 0; tree_bytes = [long]0
                tree_disk = [long]0; tree_mtime = [long]0; tmp = $null
            }
        }
        $scan.versions[$key]
    }
    $count = {
        param ($size)
        $scan.files++
        $scan.bytes += $size
        $scan.disk_bytes += Get-GoAllocatedBytes $size $ClusterBytes
    }
    $measure = {
        # A subtree counted in the totals; returns its totals.
        param ($directory, $rel)
        $totals = Get-GoTreeTotal $directory $rel $scan.errors $ClusterBytes
        $scan.files += $totals.files
        $scan.bytes += $totals.bytes
        $scan.disk_bytes += $totals.disk_bytes
        $scan.symlinks_skipped += $totals.symlinks_skipped
        $totals
    }
    $listing = {
        param ($directory, $rel)
        try {
            $children = Get-GoChildItem $directory
        }
        catch {
            Add-GoError $scan.errors $rel $_
            return , @()
        }
        $kept = [List[object]]::new()
        foreach ($child in $children) {
            if (Test-GoReparsePoint $child) { $scan.symlinks_skipped++ } else { $kept.Add($child) }
        }
        , $kept.ToArray()
    }

    $pending = [Stack[object]]::new()   # (directory, rel, what): tree | cache | download | at_v
    $pending.Push(@([DirectoryInfo]::new((Get-GoLongPath $Root)), '', 'tree'))
    while ($pending.Count) {
        $directory, $rel, $what = $pending.Pop()
        $prefix = if ($rel) { "$rel/" } else { '' }
        foreach ($child in (& $listing $directory $rel)) {
            $childRel = $prefix + $child.Name
            $isDir = $child -is [DirectoryInfo]
            if ($what -eq 'at_v') {
                if ($isDir) { $scan.other_bytes += (& $measure $child $childRel).bytes; continue }
                & $count $child.Length
                $versionEsc, $suffix = Split-GoDownloadName $child.Name
                $moduleEsc = $rel.Substring('cache/download/'.Length, $rel.Length - 'cache/download/'.Length - '/@v'.Length)
                if ($suffix -eq '.tmp') {
                    # Go's leftovers when killed mid-download: part of that version's (incomplete) unit.
                    $scan.tmp_files++
                    $scan.tmp_bytes += $child.Length
                    if ($versionEsc) {
                        $version = & $getVersion $moduleEsc $versionEsc
                        $tmp = if ($version.tmp) { $version.tmp } else { @{ size = [long]0; disk = [long]0; mtime = [long]0 } }
                        $tmp.size += $child.Length
                        $tmp.disk += Get-GoAllocatedBytes $child.Length $ClusterBytes
                        $tmp.mtime = [math]::Max($tmp.mtime, (Get-GoUnixTicks $child.LastWriteTimeUtc))
                        $version.tmp = $tmp
                    }
                }
                elseif ($null -eq $versionEsc) { $scan.other_bytes += $child.Length }   # `list`
                else {
                    (& $getVersion $moduleEsc $versionEsc).download[$suffix] = @{ size = $child.Length
                        disk = (Get-GoAllocatedBytes $child.Length $ClusterBytes)
                        atime = (Get-GoUnixTicks $child.LastAccessTimeUtc); mtime = (Get-GoUnixTicks $child.LastWriteTimeUtc)
                    }
                }
                continue
            }
            if (-not $isDir) {
                # A file that belongs to no version (locks, stray files): counted in the totals.
                & $count $child.Length
                $scan.other_bytes += $child.Length
                continue
            }
            if ($what -eq 'tree') {
                if (-not $rel -and $child.Name -ceq 'cache') { $pending.Push(@($child, $childRel, 'cache')) }
                elseif ($child.Name.Contains('@')) {
                    # An extracted tree: `<last path element>@<version>`.
                    $at = $child.Name.LastIndexOf('@')
                    $version = & $getVersion ($prefix + $child.Name.Substring(0, $at)) $child.Name.Substring($at + 1)
                    $version.tree = $true
                    $version.tree_mtime = Get-GoUnixTicks $child.LastWriteTimeUtc
                    $totals = & $measure $child $childRel
                    $version.tree_files += $totals.files
                    $version.tree_bytes += $totals.bytes
                    $version.tree_disk += $totals.disk_bytes
                }
                else { $pending.Push(@($child, $childRel, 'tree')) }
            }
            elseif ($what -eq 'cache') {
                if ($child.Name -ceq 'download') { $pending.Push(@($child, $childRel, 'download')) }
                elseif ($child.Name -ceq 'vcs') { $scan.vcs_bytes += (& $measure $child $childRel).bytes }
                else { $scan.other_bytes += (& $measure $child $childRel).bytes }
            }
            else {
                # cache/download/<escaped module path>/@v; sumdb directly below download.
                $modulePrefix = $rel.Length -gt 'cache/download'.Length
                if ($child.Name -ceq '@v' -and $modulePrefix) { $pending.Push(@($child, $childRel, 'at_v')) }
                elseif ($child.Name -ceq 'sumdb' -and -not $modulePrefix) { $scan.sumdb_bytes += (& $measure $child $childRel).bytes }
                else { $pending.Push(@($child, $childRel, 'download')) }
            }
        }
    }
    $scan
}

#endregion

#region Facts (_facts)

function New-GoAgeHistogram {
    # Cumulative counts of units not used for longer than each threshold: older iff last use < now - threshold -
    # lag (how much a recorded last use may lag the real one: BuildUseLagSeconds for a build cache).
    param ([string[]]$Bucket, [long]$Now, [long]$LagSeconds = 0)
    $thresholds = [List[object]]::new()
    foreach ($label in $Bucket) {
        $seconds = ConvertFrom-GoDuration $label 'age_buckets'
        $thresholds.Add(@{ label = $label; seconds = $seconds; cutoff = ($Now - $seconds - $LagSeconds) * $script:TicksPerSecond
                entries = 0; bytes = [long]0
            })
    }
    @{ now = $Now; thresholds = $thresholds; oldest = $null; newest = $null }
}

function Add-GoAgeHistogram {
    param ([hashtable]$Histogram, [long]$LastUsed, [long]$Size, [int]$Count = 1)
    if ($null -eq $Histogram.oldest -or $LastUsed -lt $Histogram.oldest) { $Histogram.oldest = $LastUsed }
    if ($null -eq $Histogram.newest -or $LastUsed -gt $Histogram.newest) { $Histogram.newest = $LastUsed }
    foreach ($threshold in $Histogram.thresholds) {
        if ($LastUsed -lt $threshold.cutoff) {
            $threshold.entries += $Count
            $threshold.bytes += $Size
        }
    }
}

function ConvertTo-GoAgeFact {
    param ([hashtable]$Histogram)
    $facts = @{ age_buckets = @($Histogram.thresholds | ForEach-Object {
                @{ older_than = $_.label; older_than_s = $_.seconds; entries = $_.entries; bytes = $_.bytes }
            })
    }
    foreach ($pair in @(@('oldest_used', $Histogram.oldest), @('newest_used', $Histogram.newest))) {
        $seconds = if ($null -eq $pair[1]) { $null } else { ConvertTo-GoUnixSeconds $pair[1] }
        $facts[$pair[0]] = ConvertTo-GoIsoTime $seconds
        $facts["$($pair[0])_age_s"] = if ($null -eq $seconds) { $null } else { [math]::Max([long]0, $Histogram.now - $seconds) }
    }
    $facts
}

function Get-GoScanCommonFact {
    param ([hashtable]$Scan)
    @{ files = $Scan.files; bytes = $Scan.bytes; disk_bytes = $Scan.disk_bytes; symlinks_skipped = $Scan.symlinks_skipped
        mounts_skipped = $Scan.mounts_skipped; errors = $Scan.errors.items.ToArray(); errors_total = $Scan.errors.total
    }
}

function Get-GoBuildCacheFact {
    param ([string]$Root, [string[]]$AgeBuckets, [long]$Now, [bool]$Link, [long]$ClusterBytes)
    $scan = Get-GoBuildCacheScan $Root $Link $ClusterBytes
    $ages = New-GoAgeHistogram $AgeBuckets $Now $script:BuildUseLagSeconds
    $entries = 0
    $orphans = $null
    if ($Link) {
        $orphans = @{ actions_without_output = 0; outputs_without_action = 0; bytes = [long]0 }
        foreach ($entry in (Get-GoBuildCacheEntry $scan)) {
            if ($entry.alive) {
                $entries++
                Add-GoAgeHistogram $ages $entry.last_used $entry.bytes
            }
            else {
                if ($null -eq $entry.action) { $orphans.outputs_without_action++ } else { $orphans.actions_without_output++ }
                $orphans.bytes += $entry.bytes
            }
        }
    }
    else {
        # Stat only: every file ages on its own; an entry is an -a file.
        foreach ($record in $scan.unlinked) {
            if ($record.is_action) { $entries++ }
            Add-GoAgeHistogram $ages $record.mtime $record.size $(if ($record.is_action) { 1 } else { 0 })
        }
    }
    $facts = Get-GoScanCommonFact $scan
    $facts += ConvertTo-GoAgeFact $ages
    $facts.entries = $entries
    $facts.other_files = $scan.other_files
    $facts.other_bytes = $scan.other_bytes
    $facts.orphans = $orphans
    $facts.entries_linked = $Link
    $facts.last_trim = ConvertTo-GoIsoTime $scan.last_trim
    $facts.last_trim_age_s = if ($null -eq $scan.last_trim) { $null } else { [math]::Max([long]0, $Now - $scan.last_trim) }
    $facts
}

function Get-GoModuleCacheFact {
    param ([string]$Root, [string[]]$AgeBuckets, [long]$Now, [int]$Top, [bool]$UseAtime, [long]$ClusterBytes)
    $scan = Get-GoModuleCacheScan $Root $ClusterBytes
    $ages = New-GoAgeHistogram $AgeBuckets $Now
    $states = @{ complete = 0; download_only = 0; incomplete = 0 }
    $incompleteBytes = $scan.tmp_bytes
    $perModule = [Dictionary[string, object]]::new()
    $toolchains = 0
    $graphOnly = 0
    foreach ($version in $scan.versions.Values) {
        $state = Get-GoModuleVersionState $version
        if ($state -eq 'removed') { continue }
        $states[$state]++
        $size = (Get-GoModuleVersionSize $version)[0]
        if ($state -eq 'incomplete') { $incompleteBytes += $size; continue }
        if ($state -eq 'download_only' -and -not $version.download.ContainsKey('.zip')) { $graphOnly++ }
        Add-GoAgeHistogram $ages (Get-GoModuleVersionLastUse $version $UseAtime) $size
        $module = ConvertFrom-GoEscapedPath $version.module_esc
        if (-not $perModule.ContainsKey($module)) { $perModule[$module] = @{ module = $module; versions = 0; bytes = [long]0 } }
        $perModule[$module].versions++
        $perModule[$module].bytes += $size
        if ($module -ceq $script:ToolchainModule) { $toolchains++ }
    }
    # The `top` largest; on equal size the greater module path first (Python's heapq.nlargest on (bytes, module)).
    $largest = @($perModule.Values | Sort-Object -Property @{ Expression = { $_.bytes }; Descending = $true },
        @{ Expression = { $_.module }; Descending = $true } -CaseSensitive | Select-Object -First $Top)
    $facts = Get-GoScanCommonFact $scan
    $facts += ConvertTo-GoAgeFact $ages
    $facts += @{ entries = $states.complete; modules = $perModule.Count; versions = $states.complete + $states.download_only
        complete = $states.complete; download_only = $states.download_only; graph_only = $graphOnly
        incomplete = $states.incomplete; incomplete_bytes = $incompleteBytes; tmp_files = $scan.tmp_files
        toolchains = $toolchains; top_modules = $largest; sumdb_bytes = $scan.sumdb_bytes; vcs_bytes = $scan.vcs_bytes
        age_basis = $(if ($UseAtime) { 'atime' } else { 'mtime' })
    }
    $facts
}

function Get-GoFuzzCacheFact {
    # Fuzz corpora (GOCACHE\fuzz\<package>\<FuzzTest>\<file>): Go never trims them; age = modification time.
    param ([string]$Root, [string[]]$AgeBuckets, [long]$Now, [long]$ClusterBytes)
    $errors = New-GoErrorLog
    $ages = New-GoAgeHistogram $AgeBuckets $Now
    $totals = Get-GoTreeTotal ([DirectoryInfo]::new((Get-GoLongPath $Root))) '' $errors $ClusterBytes
    foreach ($file in $totals.file_list) { Add-GoAgeHistogram $ages $file.mtime $file.item.Length }
    $facts = @{ files = $totals.files; bytes = $totals.bytes; disk_bytes = $totals.disk_bytes; entries = $totals.files
        symlinks_skipped = $totals.symlinks_skipped; mounts_skipped = 0; errors = $errors.items.ToArray()
        errors_total = $errors.total
    }
    $facts += ConvertTo-GoAgeFact $ages
    $facts
}

function Get-GoEmptyCacheFact {
    param ([string]$Kind)
    $facts = @{ files = 0; bytes = 0; disk_bytes = 0; entries = 0; age_buckets = @(); oldest_used = $null
        newest_used = $null; oldest_used_age_s = $null; newest_used_age_s = $null; errors = @(); errors_total = 0
    }
    if ($Kind -eq 'module') {
        $facts += @{ modules = 0; versions = 0; complete = 0; download_only = 0; graph_only = 0; incomplete = 0
            toolchains = 0; top_modules = @()
        }
    }
    $facts
}

function Get-GoCacheFact {
    <#
    .SYNOPSIS
    Facts of one cache directory (no user, no source): what go_cache_facts reports per cache (the twin of
    _facts.scan_cache). -Now: Unix seconds (tests pin it).
    #>
    param (
        [Parameter(Mandatory)][string]$Path,
        [Parameter(Mandatory)][ValidateSet('build', 'module', 'fuzz')][string]$Kind,
        [string[]]$AgeBuckets = @('7d', '30d', '90d'),
        [int]$Top = 10,
        [long]$Now = [DateTimeOffset]::UtcNow.ToUnixTimeSeconds(),
        [bool]$LinkEntries = $true
    )

    $realPath = Resolve-GoLinkPath $Path
    $facts = @{ kind = $Kind; path = $Path; real_path = $realPath; exists = $false; valid = $false; owner = $null
        mode = $null
    }
    $existing = $realPath
    while ($existing -and -not [Directory]::Exists((Get-GoLongPath $existing))) { $existing = [Path]::GetDirectoryName($existing) }
    $filesystem = Get-GoCacheFileSystem $(if ($existing) { $existing } else { $realPath })
    $facts.filesystem = $filesystem
    $facts += Get-GoEmptyCacheFact $Kind
    $rootItem = [DirectoryInfo]::new((Get-GoLongPath $realPath))
    if (-not $rootItem.Exists) {
        $facts.exists = [File]::Exists((Get-GoLongPath $realPath))
        if ($facts.exists) { $facts.errors = @(@{ path = $realPath; error = 'not a directory' }); $facts.errors_total = 1 }
        return $facts
    }
    $facts.exists = $true
    try {
        $facts.owner = (Get-Acl -LiteralPath $realPath -ErrorAction Stop).Owner
    }
    catch {
        $facts.owner = $null
    }
    $cluster = $filesystem.cluster_bytes
    $scanned = $null
    if ($Kind -eq 'build') {
        $facts.valid = Test-GoBuildCache $realPath
        if ($facts.valid) { $scanned = Get-GoBuildCacheFact $realPath $AgeBuckets $Now $LinkEntries $cluster }
    }
    elseif ($Kind -eq 'module') {
        $facts.valid = Test-GoModuleCache $realPath
        if ($facts.valid) { $scanned = Get-GoModuleCacheFact $realPath $AgeBuckets $Now $Top ([bool]$filesystem.atime_updates) $cluster }
    }
    else {
        $facts.valid = $true
        $scanned = Get-GoFuzzCacheFact $realPath $AgeBuckets $Now $cluster
    }
    if ($null -eq $scanned) {
        $reason = if ($Kind -eq 'build') { 'README marker missing' } else { 'no cache/download directory' }
        $facts.errors = @(@{ path = $realPath; error = "not a Go $Kind cache ($reason); not scanned" })
        $facts.errors_total = 1
    }
    else {
        foreach ($key in @($scanned.Keys)) { $facts[$key] = $scanned[$key] }
    }
    $facts
}

#endregion

#region Prune policy, roots and references (_prune.Policy, _refs, check_root)

function Read-GoReference {
    <#
    .SYNOPSIS
    Module versions projects reference (keep_referenced; the twin of _refs.collect): @{full; graph} sets of
    "module@version". A go.sum hash line keeps the whole version, a `/go.mod` line its .mod and .info; a go.mod
    require or replace target keeps the whole version. Directories are searched without following links, skipping
    VCS metadata, vendor, testdata and `name@version` directories.
    #>
    param ([string[]]$Path, [string]$Option = 'keep_referenced')

    $full = [HashSet[string]]::new()
    $graph = [HashSet[string]]::new()
    $files = [List[string]]::new()
    foreach ($entry in $Path) {
        if (-not (Test-GoAbsolutePath $entry)) { throw (New-GoOptionError $Option $entry 'path must be absolute') }
        $long = Get-GoLongPath $entry
        if ([File]::Exists($long)) { $files.Add($long); continue }
        if (-not [Directory]::Exists($long)) { throw (New-GoOptionError $Option $entry 'no such file or directory') }
        $pending = [Stack[DirectoryInfo]]::new()
        $pending.Push([DirectoryInfo]::new($long))
        while ($pending.Count) {
            $directory = $pending.Pop()
            foreach ($child in (Get-GoChildItem $directory)) {
                if (Test-GoReparsePoint $child) { continue }
                if ($child -is [DirectoryInfo]) {
                    if ($script:ReferenceSkipDirs -cnotcontains $child.Name -and -not $child.Name.StartsWith('.') -and
                        -not $child.Name.Contains('@')) { $pending.Push($child) }
                }
                elseif (@('go.sum', 'go.mod', 'go.work.sum') -ccontains $child.Name) { $files.Add($child.FullName) }
            }
            if ($files.Count -gt $script:MaxReferenceFiles) {
                throw (New-GoOptionError $Option $entry "more than $($script:MaxReferenceFiles) go.sum/go.mod files; name narrower directories")
            }
        }
    }
    foreach ($file in $files) {
        try {
            $text = [File]::ReadAllText($file, [Text.UTF8Encoding]::new($false))
        }
        catch {
            throw (New-GoOptionError $Option (Get-GoPlainPath $file) "cannot read: $($_.Exception.Message)")
        }
        $lines = $text -split "`r`n|`n|`r"
        if ([Path]::GetFileName($file) -ceq 'go.mod' -or $file.EndsWith('.mod')) {
            $block = $null
            foreach ($raw in $lines) {
                $line = if ($raw.Contains('=>')) { $raw.Trim() } else { $raw.Split(@('//'), 2, [StringSplitOptions]::None)[0].Trim() }
                if (-not $line) { continue }
                $first = ($line -split '\s+')[0]
                if ($line.EndsWith('(') -and @('require', 'replace', 'exclude', 'retract', 'tool', 'godebug', 'ignore') -ccontains $first) {
                    $block = $first
                    continue
                }
                if ($line -ceq ')') { $block = $null; continue }
                $directive = if ($block) { $block } else { $first }
                if ($directive -ceq 'require') {
                    $match = $script:RequireLinePattern.Match($line)
                    if ($match.Success) { $null = $full.Add("$($match.Groups[1].Value)@$($match.Groups[2].Value)") }
                }
                elseif ($directive -ceq 'replace') {
                    $match = $script:ReplaceLinePattern.Match($line)
                    if ($match.Success) { $null = $full.Add("$($match.Groups[1].Value)@$($match.Groups[2].Value)") }
                }
            }
        }
        else {
            foreach ($line in $lines) {
                $fields = @($line -split '\s+' | Where-Object { $_ })
                if ($fields.Count -ne 3) { continue }
                if ($fields[1].EndsWith('/go.mod')) {
                    $null = $graph.Add("$($fields[0])@$($fields[1].Substring(0, $fields[1].Length - '/go.mod'.Length))")
                }
                else { $null = $full.Add("$($fields[0])@$($fields[1])") }
            }
        }
    }
    @{ full = $full; graph = $graph }
}

function New-GoCachePrunePolicy {
    <#
    .SYNOPSIS
    Validated go_cache_prune policy options (state, remove_incomplete, max_age, keep_versions, max_size, min_free,
    keep_recent, keep, keep_referenced, if_busy, busy_timeout; others are ignored). Every bad value throws an
    option error before anything is touched. Missing options get go_cache_prune's defaults.
    #>
    param ([System.Collections.IDictionary]$Options = @{})

    $get = { param ($name, $default) if ($Options.Contains($name) -and $null -ne $Options[$name]) { $Options[$name] } else { $default } }
    $state = & $get 'state' 'present'
    if ($script:States -cnotcontains $state) { throw (New-GoOptionError 'state' $state "expected one of $($script:States -join ', ')") }
    $ifBusy = & $get 'if_busy' 'wait'
    if ($script:IfBusyChoices -cnotcontains $ifBusy) {
        throw (New-GoOptionError 'if_busy' $ifBusy "expected one of $($script:IfBusyChoices -join ', ')")
    }
    $removeIncomplete = & $get 'remove_incomplete' $true
    if ($removeIncomplete -isnot [bool]) { throw (New-GoOptionError 'remove_incomplete' $removeIncomplete 'expected true or false') }
    $keepVersions = & $get 'keep_versions' $null
    if ($null -ne $keepVersions -and ($keepVersions -is [bool] -or -not ($keepVersions -is [int] -or $keepVersions -is [long]) -or $keepVersions -lt 1)) {
        throw (New-GoOptionError 'keep_versions' $keepVersions 'expected an integer of at least 1')
    }
    $keep = [List[regex]]::new()
    foreach ($pattern in @(& $get 'keep' @())) {
        if ($pattern -isnot [string] -or -not $pattern.Trim()) {
            throw (New-GoOptionError 'keep' $pattern 'expected a module path glob such as example.com/internal/*')
        }
        $keep.Add((ConvertTo-GoGlobRegex $pattern.Trim()))
    }
    $references = Read-GoReference @(& $get 'keep_referenced' @())
    $maxAge = & $get 'max_age' $null
    $maxSize = & $get 'max_size' $null
    $minFree = & $get 'min_free' $null
    [PSCustomObject]@{
        PSTypeName = 'GoFleet.PrunePolicy'
        state = $state
        remove_incomplete = $removeIncomplete
        max_age = $(if ($null -ne $maxAge) { ConvertFrom-GoDuration $maxAge 'max_age' } else { $null })
        keep_versions = $keepVersions
        max_size = $(if ($null -ne $maxSize) { ConvertFrom-GoSize $maxSize 'max_size' } else { $null })
        min_free = $(if ($null -ne $minFree) { ConvertFrom-GoSizeOrPercent $minFree 'min_free' } else { $null })
        keep_recent = ConvertFrom-GoDuration (& $get 'keep_recent' '1h') 'keep_recent'
        keep = $keep.ToArray()
        referenced_full = $references.full
        referenced_graph = $references.graph
        if_busy = $ifBusy
        busy_timeout = ConvertFrom-GoDuration (& $get 'busy_timeout' '15m') 'busy_timeout'
    }
}

function Test-GoKeptModule {
    # Whether a keep glob matches the module path or module@version.
    param ($Policy, [string]$Module, [string]$Version)
    foreach ($pattern in $Policy.keep) {
        if ($pattern.IsMatch($Module) -or $pattern.IsMatch("$Module@$Version")) { return $true }
    }
    $false
}

function Resolve-GoLinkPath {
    # The path with the links of its own last components resolved (symbolic links and junctions), like realpath
    # for the root a user names; at most 40 hops, as Linux allows.
    param ([string]$Path)
    $current = [Path]::GetFullPath($Path).TrimEnd('\')
    if ($current -match '^[A-Za-z]:$') { $current += '\' }
    for ($hop = 0; $hop -lt 40; $hop++) {
        $item = Get-Item -LiteralPath $current -Force -ErrorAction SilentlyContinue
        if (-not $item -or -not (Test-GoReparsePoint $item) -or -not $item.PSObject.Properties['Target']) { break }
        $target = @($item.Target)[0]
        if (-not $target) { break }
        $current = [Path]::GetFullPath($(if ([Path]::IsPathRooted($target)) { $target } else { [Path]::Combine([Path]::GetDirectoryName($current), $target) })).TrimEnd('\')
    }
    $current
}

function Get-GoSystemDirectory {
    # Directories that are never a cache root, whatever they contain.
    $directories = [HashSet[string]]::new([StringComparer]::OrdinalIgnoreCase)
    foreach ($path in @($env:SystemRoot, $env:ProgramFiles, ${env:ProgramFiles(x86)}, $env:ProgramData,
            $env:ALLUSERSPROFILE, $env:PUBLIC, "$env:SystemDrive\Users", "$env:SystemDrive\")) {
        if ($path) { $null = $directories.Add($path.TrimEnd('\')) }
    }
    $directories
}

function Test-GoCacheRoot {
    <#
    .SYNOPSIS
    The real path of a cache root that is safe to prune; an option error naming the reason otherwise: not
    absolute, a drive root, a system or profile directory, not there, or not a Go cache of that kind (Go's README
    marker; cache\download; the fuzz directory of a build cache).
    #>
    [OutputType([string])]
    param ([string]$Path, [string]$Kind, [string]$Option = 'path')

    if ($script:Kinds -cnotcontains $Kind) { throw (New-GoOptionError 'kind' $Kind "expected one of $($script:Kinds -join ', ')") }
    if (-not (Test-GoAbsolutePath $Path)) { throw (New-GoOptionError $Option $Path 'a cache path must be absolute') }
    $real = Resolve-GoLinkPath $Path
    $trimmed = $real.TrimEnd('\')
    if (-not [Path]::GetDirectoryName($real) -or (Get-GoSystemDirectory).Contains($trimmed)) {
        throw (New-GoOptionError $Option $Path "refusing a system directory ($real)")
    }
    foreach ($profileHome in (Get-GoProfileList).Values) {
        if ($profileHome.TrimEnd('\') -eq $trimmed) { throw (New-GoOptionError $Option $Path "refusing a home directory ($real)") }
    }
    if (-not [Directory]::Exists((Get-GoLongPath $real))) { throw (New-GoOptionError $Option $Path 'no such cache directory') }
    $valid = switch ($Kind) {
        'build' { Test-GoBuildCache $real }
        'module' { Test-GoModuleCache $real }
        'fuzz' { [Path]::GetFileName($real) -ceq $script:FuzzDirName -and (Test-GoBuildCache ([Path]::GetDirectoryName($real))) }
    }
    if (-not $valid -and $Kind -cne 'fuzz') {
        # An empty directory is an empty cache: Go makes its layout on first use (_locate.check_root_fd).
        try { $valid = -not [DirectoryInfo]::new((Get-GoLongPath $real)).EnumerateFileSystemInfos().GetEnumerator().MoveNext() }
        catch { $valid = $false }
    }
    if (-not $valid) {
        $reason = @{ build = "it is not empty and has neither Go's README nor Go's 256 entry directories"
            module = 'it is not empty and has no cache/download directory'
            fuzz = 'it is not the fuzz directory of a Go build cache'
        }[$Kind]
        throw (New-GoOptionError $Option $Path "not a Go $Kind cache: $reason")
    }
    $real
}

#endregion

#region Prune plan (_prune.Plan)

function New-GoPruneUnit {
    # One unit of deletion in a plan: when it was last used, what removing it frees, its class and protection.
    param ([long]$LastUsed, [long]$Size, [long]$Disk, [int]$Class, [int]$Protect, [object]$Payload, [string]$Name)
    @{ last_used = $LastUsed; size = $Size; disk = $Disk; class = $Class; protect = $Protect; remove = $false
        payload = $Payload; name = $Name; index = 0
    }
}

function Get-GoRecentProtection {
    # keep_recent, allowing for how much a recorded last use may lag the real one (-LagSeconds).
    param ($Policy, [long]$Now, [long]$LastUsed, [long]$LagSeconds = 0)
    if ($Policy.state -eq 'present' -and $LastUsed -gt ($Now - $Policy.keep_recent - $LagSeconds) * $script:TicksPerSecond) {
        return $script:ProtectRecent
    }
    0
}

function Select-GoPruneUnit {
    <#
    .SYNOPSIS
    Apply the policies in order to the units (marks .remove) and return whether the max_size and min_free targets
    can be met: remove_incomplete, max_age, keep_versions (-Group: unit lists of one module, newest version
    first), then least recently used units until the cache is at most max_size and the volume has min_free.
    #>
    [OutputType([bool])]
    param ([object[]]$Unit, $Policy, [long]$Now, [long]$TotalBytes, [AllowNull()][object]$FreeBytes,
        [AllowNull()][object]$VolumeBytes, [object[]]$Group = @(), [long]$LagSeconds = 0)

    $removable = { param ($unit) -not $unit.remove -and -not $unit.protect }
    if ($Policy.state -eq 'absent') {
        foreach ($unit in $Unit) { $unit.remove = $true }
        return $true
    }
    if ($Policy.remove_incomplete) {
        foreach ($unit in $Unit) { if ($unit.class -eq $script:UnitIncomplete -and -not $unit.protect) { $unit.remove = $true } }
    }
    if ($null -ne $Policy.max_age) {
        $cutoff = ($Now - $Policy.max_age - $LagSeconds) * $script:TicksPerSecond
        foreach ($unit in $Unit) {
            # Dead weight ages too, as Go's trim ages it.
            if ($unit.last_used -lt $cutoff -and (& $removable $unit)) { $unit.remove = $true }
        }
    }
    if ($null -ne $Policy.keep_versions) {
        foreach ($members in $Group) {
            foreach ($unit in @($members | Select-Object -Skip $Policy.keep_versions)) {
                if (& $removable $unit) { $unit.remove = $true }
            }
        }
    }
    $remaining = $TotalBytes
    $freed = [long]0
    foreach ($unit in $Unit) {
        if ($unit.remove) { $remaining -= $unit.size; $freed += $unit.disk }
    }
    $targetFree = $null
    if ($null -ne $Policy.min_free -and $null -ne $FreeBytes) {
        $targetFree = if ($Policy.min_free.unit -eq 'bytes') { $Policy.min_free.amount }
        else { [long][math]::Floor($VolumeBytes * $Policy.min_free.amount / 100.0) }
    }
    $needsSize = $null -ne $Policy.max_size -and $remaining -gt $Policy.max_size
    $needsFree = $null -ne $targetFree -and $FreeBytes + $freed -lt $targetFree
    if (-not ($needsSize -or $needsFree)) { return $true }
    # Least recently used first; the position breaks ties deterministically.
    $candidates = @($Unit | Where-Object { $_.class -eq $script:UnitComplete -and (& $removable $_) } |
        Sort-Object -Property @{ Expression = { $_.last_used } }, @{ Expression = { $_.index } })
    foreach ($unit in $candidates) {
        if (-not ($needsSize -or $needsFree)) { break }
        $unit.remove = $true
        $remaining -= $unit.size
        $freed += $unit.disk
        $needsSize = $null -ne $Policy.max_size -and $remaining -gt $Policy.max_size
        $needsFree = $null -ne $targetFree -and $FreeBytes + $freed -lt $targetFree
    }
    -not ($needsSize -or $needsFree)
}

function New-GoPruneOutcome {
    # What happened to one cache (or would, in check mode).
    param ([string]$Path, [string]$Kind, [long]$BeforeBytes)
    @{ path = $Path; kind = $Kind; before_bytes = $BeforeBytes; removed_entries = 0; removed_bytes = [long]0
        removed_disk_bytes = [long]0; kept = @{}; errors = (New-GoErrorLog); sample = [List[string]]::new(); busy = $null
        target_met = $true
    }
}

function Add-GoKept {
    param ([hashtable]$Outcome, [string]$Reason, [int]$Count = 1)
    if ($Count -le 0) { return }
    $Outcome.kept[$Reason] = $(if ($Outcome.kept.ContainsKey($Reason)) { $Outcome.kept[$Reason] } else { 0 }) + $Count
}

function Add-GoRemoved {
    param ([hashtable]$Outcome, [hashtable]$Unit)
    $Outcome.removed_entries++
    $Outcome.removed_bytes += $Unit.size
    $Outcome.removed_disk_bytes += $Unit.disk
    if ($Outcome.sample.Count -lt $script:SampleSize) { $Outcome.sample.Add($Unit.name) }
}

function Add-GoPlanKept {
    # Count the units the plan keeps, by protection (retained: no policy selected it).
    param ([hashtable]$Outcome, [object[]]$Unit)
    foreach ($unit in $Unit) {
        if (-not $unit.remove) { Add-GoKept $Outcome $script:KeptReasons[$unit.protect] }
    }
}

#endregion

#region Busy guard (_prune.BusyGuard)

function New-GoBusyGuard {
    param ($Policy, [string]$UserSid)
    @{ policy = $Policy; user_sid = $UserSid; deadline = $null; last_check = [DateTime]::MinValue; seen = @() }
}

function Test-GoCacheIdle {
    <#
    .SYNOPSIS
    True when removal may go on now: no Go toolchain process runs, or if_busy is proceed. With if_busy wait it
    waits up to busy_timeout, counted over the whole run; with skip it does not wait.
    #>
    [OutputType([bool])]
    param ([hashtable]$Guard)
    if ($Guard.policy.if_busy -eq 'proceed') { return $true }
    if ($null -eq $Guard.deadline) { $Guard.deadline = [DateTime]::UtcNow.AddSeconds($Guard.policy.busy_timeout) }
    while ($true) {
        $processes = @(Get-GoToolchainProcess -UserSid $Guard.user_sid)
        $Guard.last_check = [DateTime]::UtcNow
        if (-not $processes.Count) { return $true }
        $Guard.seen = $processes
        if ($Guard.policy.if_busy -eq 'skip' -or $Guard.last_check -ge $Guard.deadline) { return $false }
        $pause = [math]::Min($script:BusyPollMs, [math]::Max(0, ($Guard.deadline - $Guard.last_check).TotalMilliseconds))
        Start-Sleep -Milliseconds ([int]$pause)
    }
}

function Test-GoCacheStillIdle {
    # The cheap periodic re-check during removal (at most every BusyRecheckMs).
    param ([hashtable]$Guard)
    if ($Guard.policy.if_busy -eq 'proceed' -or ([DateTime]::UtcNow - $Guard.last_check).TotalMilliseconds -lt $script:BusyRecheckMs) {
        return $true
    }
    Test-GoCacheIdle $Guard
}

#endregion

#region Pruners

function Test-GoUsedSinceScan {
    # Go refreshed a file since the scan (a build is using it): its modification time moved.
    param ([FileSystemInfo]$Item, [long]$ScannedMtime)
    if ($null -eq $Item) { return $false }
    $Item.Refresh()
    $Item.Exists -and (Get-GoUnixTicks $Item.LastWriteTimeUtc) -gt $ScannedMtime
}

function Get-GoBuildPrunePlan {
    param ([string]$Root, $Policy, [long]$Now, [long]$ClusterBytes)
    $scan = Get-GoBuildCacheScan $Root $true $ClusterBytes
    $units = [List[object]]::new()
    foreach ($entry in (Get-GoBuildCacheEntry $scan)) {
        $name = if ($null -eq $entry.action) { "output $($entry.output.id)" } else { "entry $($entry.action.id)" }
        $class = if ($entry.alive) { $script:UnitComplete } else { $script:UnitIncomplete }
        $unit = New-GoPruneUnit $entry.last_used $entry.bytes $entry.disk $class (Get-GoRecentProtection $Policy $Now $entry.last_used $script:BuildUseLagSeconds) $entry $name
        $unit.index = $units.Count
        $units.Add($unit)
    }
    @{ scan = $scan; units = $units.ToArray(); total = $scan.bytes; groups = @(); lag = $script:BuildUseLagSeconds }
}

function Invoke-GoBuildPrune {
    # Remove the chosen build entries: -a first, then the -d once no kept entry names it (Go then sees a miss).
    param ([string]$Root, [hashtable]$Plan, $Policy, [hashtable]$Outcome, [hashtable]$Guard)

    $keptRefs = [Dictionary[string, int]]::new()
    $addRef = { param ($id) $keptRefs[$id] = $(if ($keptRefs.ContainsKey($id)) { $keptRefs[$id] } else { 0 }) + 1 }
    foreach ($unit in $Plan.units) {
        if ($unit.payload.alive -and -not $unit.remove) { & $addRef $unit.payload.output_id }
    }
    $removed = [List[object]]::new()
    $chosen = @($Plan.units | Where-Object { $_.remove })
    for ($index = 0; $index -lt $chosen.Count; $index++) {
        $unit = $chosen[$index]
        $entry = $unit.payload
        if (-not (Test-GoCacheStillIdle $Guard)) {
            $Outcome.busy = @($Guard.seen | ForEach-Object { $_.name })
            Add-GoKept $Outcome 'busy' ($chosen.Count - $index)
            break
        }
        $actionItem = if ($entry.action) { Get-GoItem $Root $entry.action.rel } else { $null }
        $outputItem = if ($entry.output) { Get-GoItem $Root $entry.output.rel -Directory:$entry.output.is_dir } else { $null }
        $reason = $null
        if ($Policy.state -eq 'present' -and (($entry.action -and (Test-GoUsedSinceScan $actionItem $entry.action.mtime)) -or
                ($entry.output -and (Test-GoUsedSinceScan $outputItem $entry.output.mtime)))) {
            $reason = 'used_since_scan'
        }
        elseif ($actionItem -and -not (Remove-GoCacheFile $actionItem $entry.action.rel $Outcome.errors)) {
            $reason = 'error'
        }
        if ($reason) {
            Add-GoKept $Outcome $reason
            if ($entry.alive) { & $addRef $entry.output_id }
            continue
        }
        $removed.Add($entry)
        Add-GoRemoved $Outcome $unit
    }
    # Outputs go last, and only when no kept entry names them.
    foreach ($entry in $removed) {
        if (-not $entry.owns_output -or $null -eq $entry.output -or $keptRefs.ContainsKey($entry.output.id)) { continue }
        $item = Get-GoItem $Root $entry.output.rel -Directory:$entry.output.is_dir
        if ($null -eq $item) { continue }
        if ($entry.output.is_dir) { $null = Remove-GoCacheTree $item $entry.output.rel $Outcome.errors }
        else { $null = Remove-GoCacheFile $item $entry.output.rel $Outcome.errors }
    }
    if ($Policy.state -eq 'absent' -and $null -eq $Outcome.busy) {
        # What go clean -cache also removes besides entries (stray files, log.txt). README, trim.txt and
        # testexpire.txt stay, and so do the entry directories, so that the root remains a Go cache.
        $rootItem = [DirectoryInfo]::new((Get-GoLongPath $Root))
        foreach ($directory in (Get-GoChildItem $rootItem)) {
            if ($directory -isnot [DirectoryInfo] -or (Test-GoReparsePoint $directory) -or $directory.Name -cnotmatch '^[0-9a-f]{2}$') { continue }
            $null = Remove-GoCacheTree $directory $directory.Name $Outcome.errors -KeepRoot
        }
        $log = Get-GoItem $Root 'log.txt'
        if ($log) { $null = Remove-GoCacheFile $log 'log.txt' $Outcome.errors }
    }
}

function Get-GoModulePrunePlan {
    param ([string]$Root, $Policy, [long]$Now, [long]$ClusterBytes, [bool]$UseAtime)

    $scan = Get-GoModuleCacheScan $Root $ClusterBytes
    $units = [List[object]]::new()
    $byModule = [Dictionary[string, object]]::new()
    $listRepairs = [List[string]]::new()
    $ordered = @($scan.versions.Values | Sort-Object -Property @{ Expression = { $_.module_esc } }, @{ Expression = { $_.version_esc } } -CaseSensitive)
    foreach ($version in $ordered) {
        $state = Get-GoModuleVersionState $version
        if ($state -eq 'removed') {
            # Only the .lock is left: its @v/list may still name the version.
            if ($listRepairs -cnotcontains $version.module_esc) { $listRepairs.Add($version.module_esc) }
            continue
        }
        $module = ConvertFrom-GoEscapedPath $version.module_esc
        $versionName = ConvertFrom-GoEscapedPath $version.version_esc
        $parts = @('all')
        if ($version.tmp -and $state -ne 'incomplete') { $parts += 'tmp' }
        foreach ($part in $parts) {
            $incomplete = $part -eq 'tmp' -or $state -eq 'incomplete'
            if ($part -eq 'tmp') { $lastUsed = $version.tmp.mtime }
            elseif ($state -eq 'incomplete') {
                # Activity of any kind in the download files (a download in progress writes them; a .partial marks an
                # extraction in progress). The tree's own time is not used: removing files from it changes it.
                $lastUsed = [long]0
                foreach ($suffix in $version.download.Keys) {
                    if ($suffix -cne '.lock') { $lastUsed = [math]::Max($lastUsed, $version.download[$suffix].mtime) }
                }
                if ($version.tmp) { $lastUsed = [math]::Max($lastUsed, $version.tmp.mtime) }
                if (-not $lastUsed) { $lastUsed = $version.tree_mtime }
            }
            else { $lastUsed = Get-GoModuleVersionLastUse $version $UseAtime }
            $protect = Get-GoRecentProtection $Policy $Now $lastUsed
            $key = "$module@$versionName"
            if ($part -eq 'all' -and $Policy.state -eq 'present' -and -not $protect) {
                if (Test-GoKeptModule $Policy $module $versionName) { $protect = $script:ProtectKeep }
                elseif ($Policy.referenced_full.Contains($key)) { $protect = $script:ProtectReferenced }
                elseif ($Policy.referenced_graph.Contains($key) -and -not $incomplete) {
                    if ($state -eq 'download_only' -and -not $version.download.ContainsKey('.zip')) {
                        $protect = $script:ProtectReferenced   # .mod and .info are all there is
                    }
                    else { $part = 'graph' }   # all but .mod and .info, which a /go.mod line needs
                }
            }
            if ($part -eq 'tmp') { $size = $version.tmp.size; $disk = $version.tmp.disk }
            else {
                $exclude = if ($part -eq 'graph') { @('.lock', '.mod', '.info') } else { @('.lock') }
                $size, $disk, $null = Get-GoModuleVersionSize $version $exclude
                if ($version.tmp -and $state -eq 'incomplete') { $size += $version.tmp.size; $disk += $version.tmp.disk }
            }
            $name = if ($part -eq 'tmp') { "$key (temporary files)" } else { $key }
            $class = if ($incomplete) { $script:UnitIncomplete } else { $script:UnitComplete }
            $unit = New-GoPruneUnit $lastUsed $size $disk $class $protect @{ version = $version; part = $part } $name
            $unit.index = $units.Count
            $units.Add($unit)
            if (-not $incomplete) {
                if (-not $byModule.ContainsKey($module)) { $byModule[$module] = [List[object]]::new() }
                $byModule[$module].Add(@{ version = $versionName; unit = $unit })
            }
        }
    }
    # keep_versions groups: the units of one module, newest version first (semver order).
    $groups = [List[object]]::new()
    foreach ($members in $byModule.Values) {
        $unitOf = [Dictionary[string, object]]::new()
        foreach ($member in $members) { $unitOf[$member.version] = $member.unit }
        $newestFirst = Sort-GoSemver @($unitOf.Keys) -Descending
        $groups.Add([object[]]@(foreach ($name in $newestFirst) { $unitOf[$name] }))
    }
    @{ scan = $scan; units = $units.ToArray(); total = $scan.bytes; groups = $groups.ToArray()
        list_repairs = $listRepairs.ToArray()
    }
}

function Lock-GoModuleVersion {
    <#
    .SYNOPSIS
    Go's per-version lock (lockedfile on Windows: LockFileEx over the whole .lock file), as an open FileStream,
    or $null when Go holds it for longer than VersionLockWaitMs. The .lock is created if missing, as Go does.
    #>
    param ([string]$AtV, [string]$VersionEsc)
    $path = Join-GoPath $AtV "$VersionEsc.lock"
    try {
        $stream = [FileStream]::new($path, [FileMode]::OpenOrCreate, [FileAccess]::ReadWrite, [FileShare]'ReadWrite, Delete')
    }
    catch {
        $stream = [FileStream]::new($path, [FileMode]::Open, [FileAccess]::Read, [FileShare]'ReadWrite, Delete')
    }
    $deadline = [DateTime]::UtcNow.AddMilliseconds($script:VersionLockWaitMs)
    while ($true) {
        try {
            $stream.Lock(0, [long]::MaxValue)
            return $stream
        }
        catch {
            if ([DateTime]::UtcNow -gt $deadline) { $stream.Dispose(); return $null }
            Start-Sleep -Milliseconds 50
        }
    }
}

function Update-GoVersionList {
    <#
    .SYNOPSIS
    Rewrite @v/list as Go's rewriteVersionList does: the versions whose .mod exists, semver-sorted, one per line,
    under a lock on the list file itself (lockedfile.Edit); left alone when already right.
    #>
    param ([string]$Root, [string]$ModuleEsc, [hashtable]$Errors)
    $rel = "cache/download/$ModuleEsc/@v"
    $atV = Get-GoItem $Root $rel -Directory
    if ($null -eq $atV) { return }
    try {
        # EndsWith too: with 8.3 names, '*.mod' also matches longer extensions.
        $versions = @($atV.EnumerateFiles('*.mod') | Where-Object { $_.Name.EndsWith('.mod') -and -not (Test-GoReparsePoint $_) } |
            ForEach-Object { $_.Name.Substring(0, $_.Name.Length - 4) } | Where-Object { Test-GoSemver $_ })
        $content = -join @((Sort-GoSemver $versions) | ForEach-Object { "$_`n" })
        $bytes = [Text.UTF8Encoding]::new($false).GetBytes($content)
        $stream = [FileStream]::new((Join-GoPath $atV.FullName 'list'), [FileMode]::OpenOrCreate, [FileAccess]::ReadWrite,
            [FileShare]'ReadWrite, Delete')
        try {
            $stream.Lock(0, [long]::MaxValue)
            try {
                $current = [byte[]]::new($bytes.Length + 1)
                $read = 0
                while ($read -lt $current.Length) {
                    $count = $stream.Read($current, $read, $current.Length - $read)
                    if ($count -le 0) { break }
                    $read += $count
                }
                $same = $read -eq $bytes.Length -and [Convert]::ToBase64String($current, 0, $read) -ceq [Convert]::ToBase64String($bytes)
                if (-not $same) {
                    $stream.SetLength(0)
                    $stream.Position = 0
                    $stream.Write($bytes, 0, $bytes.Length)
                    $stream.Flush()
                }
            }
            finally {
                $stream.Unlock(0, [long]::MaxValue)
            }
        }
        finally {
            $stream.Dispose()
        }
    }
    catch {
        Add-GoError $Errors "$rel/list" $_
    }
}

function Remove-GoModuleTemporary {
    # Go's leftover .tmp files of one version.
    param ([DirectoryInfo]$AtV, [string]$VersionEsc, [string]$Rel, [hashtable]$Errors)
    foreach ($file in @($AtV.EnumerateFiles('*.tmp'))) {
        $versionEsc, $suffix = Split-GoDownloadName $file.Name
        if ($suffix -eq '.tmp' -and $versionEsc -ceq $VersionEsc) {
            $null = Remove-GoCacheFile $file "$Rel/$($file.Name)" $Errors
        }
    }
}

function Remove-GoModuleVersion {
    <#
    .SYNOPSIS
    Remove one module version as a unit under its .lock: .ziphash first (from then on Go no longer sees the
    version as present), the extracted tree, then .zip, .partial, .mod, .info (part graph keeps .mod and .info);
    the .lock stays. Returns $true, 'locked', 'used_since_scan' or 'error'.
    #>
    param ([string]$Root, [hashtable]$Unit, $Policy, [bool]$UseAtime, [hashtable]$Errors)
    $version = $Unit.payload.version
    $part = $Unit.payload.part
    $moduleEsc = $version.module_esc
    $versionEsc = $version.version_esc
    $atVRel = "cache/download/$moduleEsc/@v"
    $label = "$moduleEsc@$versionEsc"
    $atV = $null
    $lock = $null
    try {
        if ($version.download.Count -or $version.tmp) {
            $atV = Get-GoItem $Root $atVRel -Directory
            if ($null -eq $atV) { Add-GoError $Errors $atVRel 'no such directory'; return 'error' }
            $lock = Lock-GoModuleVersion $atV.FullName $versionEsc
            if ($null -eq $lock) { return 'locked' }
            if ($part -eq 'tmp') {
                Remove-GoModuleTemporary $atV $versionEsc $atVRel $Errors
                return $true
            }
            if ($Policy.state -eq 'present') {
                foreach ($suffix in $script:UseSuffixes) {
                    if (-not $version.download.ContainsKey($suffix)) { continue }
                    $item = Get-GoItem $Root "$atVRel/$versionEsc$suffix"
                    if ($null -eq $item) { continue }
                    if ((Get-GoUnixTicks $item.LastWriteTimeUtc) -gt $version.download[$suffix].mtime -or
                        ($UseAtime -and (Get-GoUnixTicks $item.LastAccessTimeUtc) -gt $version.download[$suffix].atime)) {
                        return 'used_since_scan'
                    }
                }
            }
            if ($version.download.ContainsKey('.ziphash')) {
                $item = Get-GoItem $Root "$atVRel/$versionEsc.ziphash"
                if ($item -and -not (Remove-GoCacheFile $item "$label.ziphash" $Errors)) { return 'error' }
            }
        }
        $ok = $true
        if ($version.tree) {
            $tree = Get-GoItem $Root $label -Directory
            if ($tree) { $ok = Remove-GoCacheTree $tree $label $Errors }
        }
        if ($atV) {
            $keepSuffixes = if ($part -eq 'graph') { @('.lock', '.mod', '.info') } else { @('.lock') }
            foreach ($suffix in '.zip', '.partial', '.mod', '.info') {
                if (-not $version.download.ContainsKey($suffix) -or $keepSuffixes -ccontains $suffix) { continue }
                $item = Get-GoItem $Root "$atVRel/$versionEsc$suffix"
                if ($item) { $ok = (Remove-GoCacheFile $item "$label$suffix" $Errors) -and $ok }
            }
            if ($version.tmp -and (Get-GoModuleVersionState $version) -eq 'incomplete') {
                Remove-GoModuleTemporary $atV $versionEsc $atVRel $Errors
            }
        }
        if ($ok) { $true } else { 'error' }
    }
    finally {
        if ($lock) { $lock.Dispose() }   # closing releases the lock
    }
}

function Invoke-GoModulePrune {
    param ([string]$Root, [hashtable]$Plan, $Policy, [hashtable]$Outcome, [hashtable]$Guard, [bool]$UseAtime)

    # Modules whose @v/list is rewritten afterwards: every module a unit was attempted in (a .mod may be gone even
    # when the unit failed), and those whose list may still name versions an earlier run removed.
    $touched = [List[string]]::new()
    $chosen = @($Plan.units | Where-Object { $_.remove })
    for ($index = 0; $index -lt $chosen.Count; $index++) {
        $unit = $chosen[$index]
        if (-not (Test-GoCacheStillIdle $Guard)) {
            $Outcome.busy = @($Guard.seen | ForEach-Object { $_.name })
            Add-GoKept $Outcome 'busy' ($chosen.Count - $index)
            break
        }
        $result = Remove-GoModuleVersion $Root $unit $Policy $UseAtime $Outcome.errors
        $removed = $result -is [bool]
        if ($removed) { Add-GoRemoved $Outcome $unit } else { Add-GoKept $Outcome $result }
        if ($removed -or $result -ceq 'error') {
            if ($touched -cnotcontains $unit.payload.version.module_esc) { $touched.Add($unit.payload.version.module_esc) }
        }
    }
    foreach ($moduleEsc in @($touched) + @($Plan.list_repairs)) { Update-GoVersionList $Root $moduleEsc $Outcome.errors }
    if ($Policy.state -eq 'absent' -and $null -eq $Outcome.busy) {
        # After every version went unit by unit, the rest (vcs, sumdb, lists, locks). An empty cache\download stays
        # so that the root is still recognisably a Go module cache.
        $rootItem = [DirectoryInfo]::new((Get-GoLongPath $Root))
        foreach ($child in (Get-GoChildItem $rootItem)) {
            if ($child -is [DirectoryInfo] -and $child.Name -ceq 'cache' -and -not (Test-GoReparsePoint $child)) {
                foreach ($inner in (Get-GoChildItem $child)) {
                    $rel = "cache/$($inner.Name)"
                    if ($inner -is [DirectoryInfo] -and -not (Test-GoReparsePoint $inner)) {
                        $null = Remove-GoCacheTree $inner $rel $Outcome.errors -KeepRoot:($inner.Name -ceq 'download')
                    }
                    else { $null = Remove-GoCacheFile $inner $rel $Outcome.errors }
                }
            }
            elseif ($child -is [DirectoryInfo] -and -not (Test-GoReparsePoint $child)) {
                $null = Remove-GoCacheTree $child $child.Name $Outcome.errors
            }
            else { $null = Remove-GoCacheFile $child $child.Name $Outcome.errors }
        }
    }
}

function Get-GoFuzzPrunePlan {
    param ([string]$Root, $Policy, [long]$Now, [long]$ClusterBytes)
    $errors = New-GoErrorLog
    $totals = Get-GoTreeTotal ([DirectoryInfo]::new((Get-GoLongPath $Root))) '' $errors $ClusterBytes
    $units = [List[object]]::new()
    foreach ($file in ($totals.file_list | Sort-Object { $_.rel } -CaseSensitive)) {
        $unit = New-GoPruneUnit $file.mtime $file.item.Length (Get-GoAllocatedBytes $file.item.Length $ClusterBytes) $script:UnitComplete (Get-GoRecentProtection $Policy $Now $file.mtime) $file $file.rel
        $unit.index = $units.Count
        $units.Add($unit)
    }
    @{ units = $units.ToArray(); total = $totals.bytes; groups = @(); errors = $errors }
}

function Invoke-GoFuzzPrune {
    param ([string]$Root, [hashtable]$Plan, $Policy, [hashtable]$Outcome, [hashtable]$Guard)
    $chosen = @($Plan.units | Where-Object { $_.remove })
    for ($index = 0; $index -lt $chosen.Count; $index++) {
        $unit = $chosen[$index]
        if (-not (Test-GoCacheStillIdle $Guard)) {
            $Outcome.busy = @($Guard.seen | ForEach-Object { $_.name })
            Add-GoKept $Outcome 'busy' ($chosen.Count - $index)
            break
        }
        $item = $unit.payload.item
        if ($Policy.state -eq 'present' -and (Test-GoUsedSinceScan $item $unit.payload.mtime)) { Add-GoKept $Outcome 'used_since_scan' }
        elseif (Remove-GoCacheFile $item $unit.payload.rel $Outcome.errors) { Add-GoRemoved $Outcome $unit }
        else { Add-GoKept $Outcome 'error' }
    }
    if ($Policy.state -eq 'absent' -and $null -eq $Outcome.busy) {
        $rootItem = [DirectoryInfo]::new((Get-GoLongPath $Root))
        foreach ($child in (Get-GoChildItem $rootItem)) {
            if ($child -is [DirectoryInfo]) { $null = Remove-GoCacheTree $child $child.Name $Outcome.errors }
        }
    }
}

function Invoke-GoCachePrune {
    <#
    .SYNOPSIS
    Prune one Go cache by policy: the engine behind go_cache_prune.ps1 and the cleanup_schedule agent.

    .DESCRIPTION
    Flow: verify the root (Test-GoCacheRoot) -> scan once -> plan (protections, then the policies in order) ->
    wait while Go builds run (if_busy) -> remove unit by unit, re-checking each unit's last use right before.
    In check mode the same plan is reported and nothing changes, so the figures equal what a real run removes
    when nothing uses the cache in between.

    .PARAMETER Path
    The cache root: GOCACHE (build), GOMODCACHE (module) or GOCACHE\fuzz (fuzz).

    .PARAMETER Kind
    build, module or fuzz.

    .PARAMETER Policy
    A hashtable of go_cache_prune policy options (state, remove_incomplete, max_age, keep_versions, max_size,
    min_free, keep_recent, keep, keep_referenced, if_busy, busy_timeout; missing ones take the module's
    defaults), or the object New-GoCachePrunePolicy returns (validated once for several caches).

    .PARAMETER CheckMode
    Report what would be removed without removing anything.

    .PARAMETER BusyUserSid
    Whose Go processes make the cache busy; all accounts' when empty (a shared cache).

    .PARAMETER Now
    Unix seconds to age against (tests pin it); the current time by default.

    .PARAMETER FreedOnVolume
    A hashtable shared by the calls of one run: volume -> allocated bytes planned so far, so that min_free in
    check mode accounts for caches planned before this one on the same volume, as a real run's free space would.

    .OUTPUTS
    A hashtable with the keys of one item of go_cache_prune's `caches` result but `user`: path, real_path, kind,
    before_bytes, after_bytes, removed_entries, removed_bytes, kept (reason -> count), sample (at most 20 unit
    names), busy (Go process names, or $null), target_met, errors (at most 20 @{path; error}), errors_total.
    Bad options and refused roots throw an ArgumentException whose Data['gofleet_option'] names the option.
    #>
    [CmdletBinding()]
    param (
        [Parameter(Mandatory)][string]$Path,
        [Parameter(Mandatory)][ValidateSet('build', 'module', 'fuzz')][string]$Kind,
        [object]$Policy = @{},
        [switch]$CheckMode,
        [string]$BusyUserSid,
        [long]$Now = [DateTimeOffset]::UtcNow.ToUnixTimeSeconds(),
        [hashtable]$FreedOnVolume = @{}
    )

    if ($Policy -is [System.Collections.IDictionary]) { $Policy = New-GoCachePrunePolicy $Policy }
    $real = Test-GoCacheRoot $Path $Kind
    $filesystem = Get-GoCacheFileSystem $real
    $free = $filesystem.free_bytes
    if ($null -ne $free -and $CheckMode -and $FreedOnVolume.ContainsKey($filesystem.mount)) {
        $free += $FreedOnVolume[$filesystem.mount]
    }
    $cluster = $filesystem.cluster_bytes
    $useAtime = [bool]$filesystem.atime_updates
    $plan = switch ($Kind) {
        'build' { Get-GoBuildPrunePlan $real $Policy $Now $cluster }
        'module' { Get-GoModulePrunePlan $real $Policy $Now $cluster $useAtime }
        'fuzz' { Get-GoFuzzPrunePlan $real $Policy $Now $cluster }
    }
    $outcome = New-GoPruneOutcome $real $Kind $plan.total
    if ($plan.ContainsKey('scan')) { Merge-GoErrorLog $outcome.errors $plan.scan.errors }
    if ($plan.ContainsKey('errors')) { Merge-GoErrorLog $outcome.errors $plan.errors }
    $lag = if ($plan.ContainsKey('lag')) { $plan.lag } else { 0 }
    $outcome.target_met = Select-GoPruneUnit $plan.units $Policy $Now $plan.total $free $filesystem.size_bytes $plan.groups $lag
    Add-GoPlanKept $outcome $plan.units

    $chosen = @($plan.units | Where-Object { $_.remove })
    $guard = New-GoBusyGuard $Policy $BusyUserSid
    if ($CheckMode) {
        foreach ($unit in $chosen) { Add-GoRemoved $outcome $unit }
    }
    elseif ($chosen.Count -and -not (Test-GoCacheIdle $guard)) {
        $outcome.busy = @($guard.seen | ForEach-Object { $_.name })
        Add-GoKept $outcome 'busy' $chosen.Count
    }
    elseif ($chosen.Count -or $Policy.state -eq 'absent' -or ($plan.ContainsKey('list_repairs') -and $plan.list_repairs.Count)) {
        switch ($Kind) {
            'build' { Invoke-GoBuildPrune $real $plan $Policy $outcome $guard }
            'module' { Invoke-GoModulePrune $real $plan $Policy $outcome $guard $useAtime }
            'fuzz' { Invoke-GoFuzzPrune $real $plan $Policy $outcome $guard }
        }
    }
    if ($filesystem.mount) {
        $FreedOnVolume[$filesystem.mount] = $(if ($FreedOnVolume.ContainsKey($filesystem.mount)) { $FreedOnVolume[$filesystem.mount] } else { 0 }) + $outcome.removed_disk_bytes
    }
    @{ path = $Path; real_path = $real; kind = $Kind; before_bytes = $outcome.before_bytes
        after_bytes = $outcome.before_bytes - $outcome.removed_bytes; removed_entries = $outcome.removed_entries
        removed_bytes = $outcome.removed_bytes; kept = $outcome.kept; sample = $outcome.sample.ToArray(); busy = $outcome.busy
        target_met = $outcome.target_met; errors = $outcome.errors.items.ToArray(); errors_total = $outcome.errors.total
    }
}

#endregion

#region Locations of an account's caches (_facts.account_locations, _prune_run.resolve_targets)

function Get-GoAccountLocation {
    <#
    .SYNOPSIS
    Where Go puts an account's caches: @{account; environment (Get-GoEnvironment); go_binary; go_env_json;
    disagreements; errors}. -Go: 'auto' (find go.exe), 'none' (never run Go) or the path of go.exe. `go env -json`
    runs only for the account this runs as: Windows cannot start a process as another account without its
    password, so for the others the computed locations stand (and an error says so).
    #>
    param ([hashtable]$Account, [string]$Go = 'auto')

    $session = Get-GoAccountEnvironment $Account
    $errors = [List[string]]::new()
    foreach ($message in $session.errors) { $errors.Add($message) }
    $explicit = if ($Go -notin 'auto', 'none') { $Go } else { $null }
    $goBinary = Find-GoBinary $session.environment $explicit
    # The go binary tells GOROOT (and so $GOROOT\go.env) even when it must not be run.
    $goroot = if ($goBinary) { [Path]::GetDirectoryName([Path]::GetDirectoryName($goBinary)) } else { $null }
    $environment = Get-GoEnvironment -Environment $session.environment -GoRoot $goroot
    foreach ($message in $environment.errors) { $errors.Add($message) }
    $disagreements = @()
    $asked = $false
    if ($goBinary -and $Go -ne 'none') {
        if ($Account.sid -eq [Security.Principal.WindowsIdentity]::GetCurrent().User.Value) {
            $reported = Invoke-GoEnvJson $goBinary $session.environment $environment.goenv_path
            if ($reported.error) { $errors.Add($reported.error) }
            else {
                $asked = $true
                $disagreements = Update-GoEnvironmentFromGo $environment $reported.values
            }
        }
        else {
            $errors.Add("go env -json runs only as the account the module runs as on Windows; the locations of $($Account.name) are computed")
        }
    }
    @{ account = $Account; environment = $environment; go_binary = $goBinary; go_env_json = $asked
        disagreements = $disagreements; errors = $errors.ToArray()
    }
}

function Get-GoCacheLocation {
    # The path of one kind of cache from an account's settings: @(path or $null, setting).
    param ([hashtable]$Location, [string]$Kind)
    $setting = $Location.environment.settings[$(if ($Kind -eq 'module') { 'GOMODCACHE' } else { 'GOCACHE' })]
    $path = $setting.value
    if ($path -and (Test-GoAbsolutePath $path) -and $Kind -eq 'fuzz') { $path = [Path]::Combine($path, $script:FuzzDirName) }
    , @($path, $setting)
}

#endregion

Export-ModuleMember -Function @(
    'ConvertFrom-GoDuration', 'ConvertFrom-GoSize', 'ConvertFrom-GoSizeOrPercent', 'ConvertTo-GoIsoTime', 'Format-GoByteCount',
    'Compare-GoSemver', 'Sort-GoSemver', 'ConvertFrom-GoEscapedPath', 'Test-GoAbsolutePath', 'Test-GoOptionError',
    'New-GoOptionError', 'Get-GoCacheAccount', 'Get-GoAccountEnvironment', 'Get-GoEnvironment', 'ConvertFrom-GoEnvFile',
    'ConvertTo-GoSettingResult', 'Edit-GoEnvFileText', 'Test-GoEnvVariable', 'Get-GoAccountLocation',
    'Get-GoCacheLocation', 'Get-GoCacheFact', 'Get-GoEmptyCacheFact', 'Get-GoCacheFileSystem', 'Get-GoNtfsLastAccessUpdate',
    'Get-GoToolchainProcess', 'New-GoCachePrunePolicy', 'Test-GoCacheRoot', 'Invoke-GoCachePrune', 'Get-GoLongPath',
    'Resolve-GoLinkPath'
)
