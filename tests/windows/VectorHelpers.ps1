# Copyright (c) gofleet.cache contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

# Helpers for Vectors.Tests.ps1: read the shared vectors (tests/vectors, format in its README.md), put a
# vector's tree on NTFS, list and compare. The Python runner of the same vectors is
# tests/unit/plugins/module_utils/test_vectors.py; both must agree with every vector.

$script:DefaultFileSystem = @{ size_bytes = 1000000000000; free_bytes = 500000000000; atime_updates = $false }
$script:ClusterBytes = 4096
$script:GoReadme = "This directory holds cached build artifacts from the Go build system.`n" +
"Run `"go clean -cache`" if the directory is getting too large.`n" +
"Run `"go clean -fuzzcache`" to delete the fuzz testing cache.`n" +
"See golang.org to learn more about Go.`n"

function ConvertTo-VectorValue {
    # ConvertFrom-Json objects as hashtables and arrays (Windows PowerShell has no -AsHashtable).
    param ($Value)
    if ($Value -is [System.Management.Automation.PSCustomObject]) {
        $table = [ordered]@{}
        foreach ($property in $Value.PSObject.Properties) { $table[$property.Name] = ConvertTo-VectorValue $property.Value }
        return $table
    }
    if ($Value -is [System.Collections.IList]) {
        return , [object[]]@(foreach ($item in $Value) { , (ConvertTo-VectorValue $item) })
    }
    $Value
}

function Read-Vector {
    param ([string]$Path)
    ConvertTo-VectorValue (Get-Content -LiteralPath $Path -Raw -Encoding UTF8 | ConvertFrom-Json)
}

function ConvertFrom-VectorAge {
    # Seconds of an age ('40d', '30m', '2592001s').
    param ([string]$Age)
    $units = @{ s = 1; m = 60; h = 3600; d = 86400; w = 604800 }
    if ($Age -notmatch '^(\d+)([smhdw])$') { throw "bad age '$Age'" }
    [long]$Matches[1] * $units[$Matches[2]]
}

function Get-VectorLongPath {
    param ([string]$Path)
    if ($Path.StartsWith('\\?\')) { $Path } else { '\\?\' + [System.IO.Path]::GetFullPath($Path) }
}

function Join-VectorPath {
    param ([string]$Base, [string]$Rel)
    $Base.TrimEnd('\') + '\' + $Rel.Replace('/', '\')
}

function Test-SymbolicLinkPrivilege {
    # Creating symbolic links needs Administrator or Developer Mode.
    param ([string]$Directory)
    $link = Join-VectorPath $Directory "link-probe-$([guid]::NewGuid())"
    try {
        $null = New-Item -ItemType SymbolicLink -Path $link -Target $Directory -ErrorAction Stop
        [System.IO.Directory]::Delete($link)
        $true
    }
    catch {
        $false
    }
}

function New-VectorWorkspace {
    <#
    .SYNOPSIS
    A vector's tree on disk below -Base at the instant -Now: @{root; outside; kind; locked; locked_ms}.
    Times are set after every file is written (directories deepest first), attributes after the times.
    #>
    param ([System.Collections.IDictionary]$Vector, [string]$Base, [long]$Now)

    $kind = $Vector.cache.kind
    $outside = Join-VectorPath $Base 'outside'
    $root = switch ($kind) {
        'build' { Join-VectorPath $Base 'go-build' }
        'module' { Join-VectorPath $Base 'mod' }
        'fuzz' { Join-VectorPath $Base 'go-build\fuzz' }
    }
    $null = [System.IO.Directory]::CreateDirectory((Get-VectorLongPath $outside))
    $null = [System.IO.Directory]::CreateDirectory((Get-VectorLongPath $root))
    if ($kind -eq 'fuzz') {
        # The fuzz cache is GOCACHE\fuzz: its parent must be a build cache.
        [System.IO.File]::WriteAllText((Join-VectorPath $Base 'go-build\README'), $script:GoReadme)
    }
    $space = @{ root = $root; outside = $outside; kind = $kind; now = $Now
        locked = [System.Collections.Generic.List[string]]::new()
        locked_ms = [System.Collections.Generic.List[object]]::new()
    }
    New-VectorTree $space $root @($Vector.cache.files)
    if ($Vector.Contains('outside')) { New-VectorTree $space $outside @($Vector.outside) }
    $space
}

function Expand-VectorText {
    # {outside} in policy strings and link targets.
    param ([hashtable]$Space, $Value)
    if ($Value -is [string]) { return $Value.Replace('{outside}', $Space.outside) }
    if ($Value -is [System.Collections.IList]) { return , [object[]]@($Value | ForEach-Object { Expand-VectorText $Space $_ }) }
    $Value
}

function New-VectorTree {
    param ([hashtable]$Space, [string]$Base, [object[]]$Files)

    $timed = [System.Collections.Generic.List[object]]::new()
    $dirs = [System.Collections.Generic.Dictionary[string, object]]::new([StringComparer]::OrdinalIgnoreCase)
    $encoding = [System.Text.UTF8Encoding]::new($false)
    # The size an action line records: its output's (a -d file, or the one file of a -d directory), unless the
    # item gives action_size (a miss in Go's eyes).
    $outputSizes = @{}
    foreach ($item in $Files) {
        if (-not $item.Contains('size')) { continue }
        $parts = $item.path.Split('/')
        for ($i = [Math]::Max(0, $parts.Length - 2); $i -lt $parts.Length; $i++) {
            if ($parts[$i].Length -eq 66 -and $parts[$i].EndsWith('-d')) { $outputSizes[$parts[$i].Substring(0, 64)] = $item.size }
        }
    }
    foreach ($item in $Files) {
        $path = Get-VectorLongPath (Join-VectorPath $Base $item.path)
        $parent = [System.IO.Path]::GetDirectoryName($path)
        while ($parent.Length -gt (Get-VectorLongPath $Base).Length -and -not $dirs.ContainsKey($parent)) {
            $dirs[$parent] = @{}
            $parent = [System.IO.Path]::GetDirectoryName($parent)
        }
        if ($item.Contains('dir')) {
            $null = [System.IO.Directory]::CreateDirectory($path)
            $dirs[$path] = $item
            continue
        }
        $null = [System.IO.Directory]::CreateDirectory([System.IO.Path]::GetDirectoryName($path))
        if ($item.Contains('symlink')) {
            $null = New-Item -ItemType SymbolicLink -Path $path.Substring(4) -Target (Expand-VectorText $Space $item.symlink).Replace('/', '\') -ErrorAction Stop
            continue
        }
        if ($item.Contains('junction')) {
            $null = New-Item -ItemType Junction -Path $path.Substring(4) -Target (Expand-VectorText $Space $item.junction).Replace('/', '\') -ErrorAction Stop
            continue
        }
        if ($item.Contains('size')) { $bytes = [byte[]]::new($item.size); for ($i = 0; $i -lt $bytes.Length; $i++) { $bytes[$i] = 0x78 } }
        elseif ($item.Contains('action_output')) {
            # Go's action line: "v1 <action ID> <output ID> <size %20d> <time %20d>\n", 175 bytes.
            $actionId = [System.IO.Path]::GetFileName($path).Substring(0, 64)
            $recorded = if ($item.Contains('action_size')) { $item.action_size } elseif ($outputSizes.Contains($item.action_output)) { $outputSizes[$item.action_output] } else { 0 }
            $bytes = $encoding.GetBytes(('v1 {0} {1} {2,20} {3,20}' -f $actionId, $item.action_output, $recorded, 0) + "`n")
        }
        else {
            $text = [regex]::Replace($item.content, '\{now-(\w+)\}', { param ($match) [string]($Space.now - (ConvertFrom-VectorAge $match.Groups[1].Value)) })
            $bytes = $encoding.GetBytes($text)
        }
        [System.IO.File]::WriteAllBytes($path, $bytes)
        $timed.Add(@($path, $item, $false))
        if ($item.Contains('locked') -and $item.locked) { $Space.locked.Add($path) }
        if ($item.Contains('locked_ms')) { $Space.locked_ms.Add(@{ path = $path; ms = $item.locked_ms }) }
    }
    foreach ($directory in @($dirs.Keys | Sort-Object { ($_ -split '\\').Count } -Descending)) {
        $timed.Add(@($directory, $dirs[$directory], $true))
    }
    foreach ($entry in $timed) {
        $path, $item, $isDir = $entry
        $age = if ($item.Contains('age')) { ConvertFrom-VectorAge $item.age } else { 0 }
        $atimeAge = if ($item.Contains('atime_age')) { ConvertFrom-VectorAge $item.atime_age } else { $age }
        $mtime = [DateTimeOffset]::FromUnixTimeSeconds($Space.now - $age).UtcDateTime
        $atime = [DateTimeOffset]::FromUnixTimeSeconds($Space.now - $atimeAge).UtcDateTime
        if ($isDir) {
            [System.IO.Directory]::SetLastWriteTimeUtc($path, $mtime)
            [System.IO.Directory]::SetLastAccessTimeUtc($path, $atime)
        }
        else {
            [System.IO.File]::SetLastWriteTimeUtc($path, $mtime)
            [System.IO.File]::SetLastAccessTimeUtc($path, $atime)
        }
    }
    foreach ($entry in $timed) {
        $path, $item, $isDir = $entry
        if (-not ($item.Contains('readonly') -and $item.readonly)) { continue }
        # What Go's chmod 0444 (files) and 0555 (directories) do on Windows.
        $info = if ($isDir) { [System.IO.DirectoryInfo]::new($path) } else { [System.IO.FileInfo]::new($path) }
        $info.Attributes = $info.Attributes -bor [System.IO.FileAttributes]::ReadOnly
    }
}

function Get-VectorListing {
    <# .SYNOPSIS Every path below a directory: directories end with '/', links are listed, never followed. #>
    param ([string]$Root)
    $found = [System.Collections.Generic.List[string]]::new()
    $pending = [System.Collections.Generic.Stack[object]]::new()
    $pending.Push(@([System.IO.DirectoryInfo]::new((Get-VectorLongPath $Root)), ''))
    while ($pending.Count) {
        $directory, $prefix = $pending.Pop()
        foreach ($child in $directory.EnumerateFileSystemInfos()) {
            $rel = $prefix + $child.Name
            $isLink = [bool]($child.Attributes -band [System.IO.FileAttributes]::ReparsePoint)
            if ($child -is [System.IO.DirectoryInfo] -and -not $isLink) {
                $found.Add("$rel/")
                $pending.Push(@($child, "$rel/"))
            }
            else { $found.Add($rel) }
        }
    }
    $sorted = $found.ToArray()
    [Array]::Sort($sorted, [StringComparer]::Ordinal)
    , $sorted
}

function Get-VectorSnapshot {
    <#
    .SYNOPSIS
    Every path with attributes, size and modification time: proves check mode changes nothing. Contents are not
    read: reading would refresh the last-access times the module cache ages by.
    #>
    param ([string]$Root)
    $lines = foreach ($rel in (Get-VectorListing $Root)) {
        $path = Get-VectorLongPath (Join-VectorPath $Root $rel.TrimEnd('/'))
        $info = if ($rel.EndsWith('/')) { [System.IO.DirectoryInfo]::new($path) } else { [System.IO.FileInfo]::new($path) }
        $length = if ($info -is [System.IO.FileInfo]) { $info.Length } else { 0 }
        "$rel|$($info.Attributes)|$length|$($info.LastWriteTimeUtc.Ticks)"
    }
    -join @($lines | ForEach-Object { "$_`n" })
}

function Get-VectorAllocatedBytes {
    # Space the files below a directory take in whole clusters (the simulated volume's accounting).
    param ([string]$Root)
    $total = [long]0
    $pending = [System.Collections.Generic.Stack[System.IO.DirectoryInfo]]::new()
    $pending.Push([System.IO.DirectoryInfo]::new((Get-VectorLongPath $Root)))
    while ($pending.Count) {
        foreach ($child in $pending.Pop().EnumerateFileSystemInfos()) {
            if ($child.Attributes -band [System.IO.FileAttributes]::ReparsePoint) { continue }
            if ($child -is [System.IO.DirectoryInfo]) { $pending.Push($child) }
            elseif ($child.Length) { $total += [long]([math]::Ceiling($child.Length / $script:ClusterBytes) * $script:ClusterBytes) }
        }
    }
    $total
}

function Remove-VectorWorkspace {
    # Clear Go's ReadOnly attributes, then remove the tree (links are removed, not followed).
    param ([string]$Base)
    $long = Get-VectorLongPath $Base
    if (-not [System.IO.Directory]::Exists($long)) { return }
    $pending = [System.Collections.Generic.Stack[System.IO.DirectoryInfo]]::new()
    $pending.Push([System.IO.DirectoryInfo]::new($long))
    while ($pending.Count) {
        $directory = $pending.Pop()
        $directory.Attributes = $directory.Attributes -band -bnot [System.IO.FileAttributes]::ReadOnly
        foreach ($child in $directory.EnumerateFileSystemInfos()) {
            if ($child.Attributes -band [System.IO.FileAttributes]::ReparsePoint) { continue }
            $child.Attributes = $child.Attributes -band -bnot [System.IO.FileAttributes]::ReadOnly
            if ($child -is [System.IO.DirectoryInfo]) { $pending.Push($child) }
        }
    }
    [System.IO.Directory]::Delete($long, $true)
}

function ConvertTo-VectorComparable {
    # A result with errors as their sorted paths and the sample sorted (their order is not part of the contract).
    param ([System.Collections.IDictionary]$Result)
    $copy = @{}
    foreach ($key in $Result.Keys) { $copy[$key] = $Result[$key] }
    if ($copy.ContainsKey('errors')) {
        $paths = [string[]]@($copy.errors | ForEach-Object { $_.path })
        [Array]::Sort($paths, [StringComparer]::Ordinal)
        $copy.errors = $paths
    }
    if ($copy.ContainsKey('sample')) {
        $sample = [string[]]@($copy.sample)
        [Array]::Sort($sample, [StringComparer]::Ordinal)
        $copy.sample = $sample
    }
    $copy
}

function Assert-VectorMatch {
    <#
    .SYNOPSIS
    The result has every key of -Expected with an equal value; dictionaries inside (kept, orphans, age buckets)
    compare exactly, as do all with -Exact. Types matter: true is not 1, null is not 0.
    #>
    param ($Expected, $Actual, [string]$Where, [switch]$Exact)
    if ($Expected -is [System.Collections.IDictionary]) {
        if ($Actual -isnot [System.Collections.IDictionary]) { throw "${Where}: expected a dictionary, got '$Actual'" }
        foreach ($key in $Expected.Keys) {
            if (-not $Actual.Contains($key)) { throw "${Where}: '$key' missing from [$(@($Actual.Keys) -join ', ')]" }
            Assert-VectorMatch $Expected[$key] $Actual[$key] "$Where.$key" -Exact
        }
        if ($Exact -and $Expected.Count -ne $Actual.Count) {
            throw "${Where}: keys [$(@($Actual.Keys) -join ', ')], expected [$(@($Expected.Keys) -join ', ')]"
        }
        return
    }
    if ($Expected -is [System.Collections.IList]) {
        $items = @($Actual)
        if ($null -eq $Actual -or $Actual -is [string] -or $items.Count -ne $Expected.Count) {
            throw "${Where}: expected $($Expected.Count) items [$($Expected -join ', ')], got [$($items -join ', ')]"
        }
        for ($index = 0; $index -lt $items.Count; $index++) {
            Assert-VectorMatch $Expected[$index] $items[$index] "$Where[$index]" -Exact:$Exact
        }
        return
    }
    if ($null -eq $Expected) {
        if ($null -ne $Actual) { throw "${Where}: expected null, got '$Actual'" }
        return
    }
    if ($Expected -is [bool] -or $Actual -is [bool]) {
        if ($Expected -isnot [bool] -or $Actual -isnot [bool] -or $Expected -ne $Actual) { throw "${Where}: expected $Expected, got '$Actual'" }
        return
    }
    if ($Expected -is [string]) {
        if ($Actual -isnot [string] -or $Expected -cne $Actual) { throw "${Where}: expected '$Expected', got '$Actual'" }
        return
    }
    if ($null -eq $Actual -or $Actual -is [string] -or [decimal]$Expected -ne [decimal]$Actual) {
        throw "${Where}: expected $Expected, got '$Actual'"
    }
}
