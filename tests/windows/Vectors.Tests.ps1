# Copyright (c) gofleet.cache contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

# Pester 5: the shared vectors (tests/vectors/*.json) against the PowerShell engine GoFleetCache.psm1, on NTFS.
# The same steps as tests/unit/plugins/module_utils/test_vectors.py, with Windows itself where Linux needs an
# analogue: the ReadOnly attribute, junctions, files held open by another handle, paths past 260 characters.
# Machine state a vector simulates (the volume's free space and last-access setting, running Go processes) is
# mocked inside the module. Run with tests/windows/Invoke-VectorTests.ps1.

BeforeDiscovery {
    $vectorDirectory = [System.IO.Path]::Combine($PSScriptRoot, '..', 'vectors')
    . ([System.IO.Path]::Combine($PSScriptRoot, 'VectorHelpers.ps1'))
    $vectors = foreach ($file in (Get-ChildItem -LiteralPath $vectorDirectory -Filter '*.json' | Sort-Object Name)) {
        $vector = Read-Vector $file.FullName
        @{
            Name = $vector.name
            Vector = $vector
            Facts = @(if ($vector.Contains('facts')) { for ($i = 0; $i -lt $vector.facts.Count; $i++) { @{ Index = $i; Case = $vector.facts[$i] } } })
            Prune = @(if ($vector.Contains('prune')) { for ($i = 0; $i -lt $vector.prune.Count; $i++) { @{ Index = $i; Case = $vector.prune[$i] } } })
            GoEnv = @(if ($vector.Contains('go_env')) { for ($i = 0; $i -lt $vector.go_env.Count; $i++) { @{ Index = $i; Case = $vector.go_env[$i] } } })
        }
    }
}

BeforeAll {
    . ([System.IO.Path]::Combine($PSScriptRoot, 'VectorHelpers.ps1'))
    $modulePath = [System.IO.Path]::Combine($PSScriptRoot, '..', '..', 'plugins', 'module_utils', 'GoFleetCache.psm1')
    Import-Module ([System.IO.Path]::GetFullPath($modulePath)) -Force

    function Enter-VectorCase {
        # A fresh workspace for one case, and the vector's simulated machine state.
        param ([System.Collections.IDictionary]$Vector)
        $base = [System.IO.Path]::Combine($TestDrive, [guid]::NewGuid().ToString('n').Substring(0, 8))
        $now = [DateTimeOffset]::UtcNow.ToUnixTimeSeconds()
        $space = New-VectorWorkspace -Vector $Vector -Base $base -Now $now
        $space.base = $base
        $environment = if ($Vector.Contains('environment')) { $Vector.environment } else { @{} }
        $filesystem = $script:DefaultFileSystem.Clone()
        if ($environment.Contains('filesystem')) {
            foreach ($key in $environment.filesystem.Keys) { $filesystem[$key] = $environment.filesystem[$key] }
        }
        # The simulated volume has free_bytes free once the tree is on disk and gains what the engine removes.
        $script:SimulatedVolume = @{ settings = $filesystem; root = $space.root
            materialised = (Get-VectorAllocatedBytes $space.root)
        }
        $script:SimulatedProcesses = @(if ($environment.Contains('go_processes')) {
                $processId = 4000
                foreach ($name in $environment.go_processes) { @{ pid = $processId++; user = $null; name = $name } }
            })
        $space
    }

    function Invoke-VectorPrune {
        param ([hashtable]$Space, [System.Collections.IDictionary]$Policy, [switch]$CheckMode)
        ConvertTo-VectorComparable (Invoke-GoCachePrune -Path $Space.root -Kind $Space.kind -Policy $Policy -CheckMode:$CheckMode -Now $Space.now)
    }
}

Describe 'vector <Name>' -ForEach $vectors {
    BeforeAll {
        if ($Vector.Contains('windows') -and $Vector.windows.Contains('requires') -and -not (Test-SymbolicLinkPrivilege $TestDrive)) {
            $script:SkipReason = "needs $($Vector.windows.requires)"
        }
        else {
            $script:SkipReason = $null
        }
        Mock -ModuleName GoFleetCache Get-GoCacheFileSystem {
            $settings = $script:SimulatedVolume.settings
            $removed = $script:SimulatedVolume.materialised - (Get-VectorAllocatedBytes $script:SimulatedVolume.root)
            @{ mount = 'C:\'; fstype = 'NTFS'; size_bytes = $settings.size_bytes; free_bytes = $settings.free_bytes + $removed
                inodes_total = $null; inodes_free = $null; inodes_used_pct = $null; cluster_bytes = 4096
                atime_updates = [bool]$settings.atime_updates
                atime_mode = $(if ($settings.atime_updates) { 'relatime' } else { 'noatime' })
            }
        }
        # Never the real process table: Go builds elsewhere on the machine must not make a vector wait.
        Mock -ModuleName GoFleetCache Get-GoToolchainProcess { , @($script:SimulatedProcesses) }
    }

    It 'facts [<Index>]' -ForEach $Facts {
        if ($script:SkipReason) { Set-ItResult -Skipped -Because $script:SkipReason; return }
        $space = Enter-VectorCase $Vector
        try {
            $options = $Case.request
            $ageBuckets = if ($options.Contains('age_buckets')) { [string[]]$options.age_buckets } else { [string[]]@('7d', '30d', '90d') }
            $top = if ($options.Contains('top')) { [int]$options.top } else { 10 }
            $link = if ($options.Contains('link_entries')) { [bool]$options.link_entries } else { $true }
            $facts = Get-GoCacheFact -Path $space.root -Kind $space.kind -AgeBuckets $ageBuckets -Top $top -Now $space.now -LinkEntries $link
            Assert-VectorMatch $Case.expected (ConvertTo-VectorComparable $facts) 'facts'
        }
        finally {
            Remove-VectorWorkspace $space.base
        }
    }

    It 'prune [<Index>]' -ForEach $Prune {
        if ($script:SkipReason) { Set-ItResult -Skipped -Because $script:SkipReason; return }
        $space = Enter-VectorCase $Vector
        $holders = [System.Collections.Generic.List[object]]::new()
        try {
            $policy = @{}
            foreach ($key in $Case.policy.Keys) { $policy[$key] = Expand-VectorText $space $Case.policy[$key] }
            $outsideBefore = Get-VectorSnapshot $space.outside

            if ($Case.Contains('expected_error')) {
                $thrown = $null
                try {
                    $null = Invoke-VectorPrune $space $policy
                }
                catch {
                    $thrown = $_
                }
                $thrown | Should -Not -BeNullOrEmpty
                $thrown.Exception.Data['gofleet_option'] | Should -BeExactly $Case.expected_error.option
                $thrown.Exception.Message | Should -BeLike "*$($Case.expected_error.contains)*"
                Assert-VectorMatch $Case.remaining (Get-VectorListing $space.root) 'remaining'
                return
            }

            $before = Get-VectorSnapshot $space.root
            $preview = Invoke-VectorPrune $space $policy -CheckMode
            Get-VectorSnapshot $space.root | Should -BeExactly $before -Because 'check mode changes nothing'
            $checkExpected = [ordered]@{}
            foreach ($key in $Case.expected.Keys) { $checkExpected[$key] = $Case.expected[$key] }
            if ($Case.Contains('check_mode_expected')) {
                foreach ($key in $Case.check_mode_expected.Keys) { $checkExpected[$key] = $Case.check_mode_expected[$key] }
            }
            Assert-VectorMatch $checkExpected $preview 'check mode'

            # Files held open by another handle, without FILE_SHARE_DELETE (as Go opens files) ...
            foreach ($path in $space.locked) {
                $holders.Add([System.IO.File]::Open($path, 'Open', 'Read', 'Read'))
            }
            # ... and files held for a moment by another process (a build finishing).
            $jobs = foreach ($transient in $space.locked_ms) {
                $ready = "$($transient.path).held"
                Start-Job -ArgumentList $transient.path, $transient.ms, $ready -ScriptBlock {
                    param ($path, $ms, $ready)
                    $stream = [System.IO.File]::Open($path, 'Open', 'Read', 'Read')
                    [System.IO.File]::WriteAllText($ready, '')
                    Start-Sleep -Milliseconds $ms
                    $stream.Dispose()
                }
                while (-not [System.IO.File]::Exists($ready)) { Start-Sleep -Milliseconds 20 }
                [System.IO.File]::Delete($ready)
            }
            try {
                $real = Invoke-VectorPrune $space $policy
            }
            finally {
                foreach ($holder in $holders) { $holder.Dispose() }
                $holders.Clear()
                foreach ($job in @($jobs)) { if ($job) { $null = $job | Wait-Job | Remove-Job } }
            }
            Assert-VectorMatch $Case.expected $real 'real run'
            if (-not $Case.Contains('check_mode_expected')) {
                # docs/design.md: in check mode the reported numbers equal what the real run removes.
                foreach ($key in 'removed_entries', 'removed_bytes', 'kept', 'sample', 'target_met') {
                    Assert-VectorMatch $real[$key] $preview[$key] "check mode = real run: $key" -Exact
                }
            }

            Assert-VectorMatch $Case.remaining (Get-VectorListing $space.root) 'remaining'
            if ($Case.Contains('contents')) {
                foreach ($rel in $Case.contents.Keys) {
                    $bytes = [System.IO.File]::ReadAllBytes((Get-VectorLongPath (Join-VectorPath $space.root $rel)))
                    [System.Text.UTF8Encoding]::new($false).GetString($bytes) | Should -BeExactly $Case.contents[$rel] -Because $rel
                }
            }
            if ($Case.Contains('readonly_after')) {
                foreach ($rel in $Case.readonly_after) {
                    $attributes = [System.IO.File]::GetAttributes((Get-VectorLongPath (Join-VectorPath $space.root $rel)))
                    [bool]($attributes -band [System.IO.FileAttributes]::ReadOnly) | Should -BeTrue -Because "$rel keeps Go's ReadOnly attribute"
                }
            }
            Get-VectorSnapshot $space.outside | Should -BeExactly $outsideBefore -Because 'nothing outside the cache changes'

            $again = Invoke-VectorPrune $space $policy
            $secondExpected = if ($Case.Contains('second_run')) { $Case.second_run } else { @{ removed_entries = 0 } }
            Assert-VectorMatch $secondExpected $again 'second run'
        }
        finally {
            foreach ($holder in $holders) { $holder.Dispose() }
            Remove-VectorWorkspace $space.base
        }
    }

    It 'go environment precedence' -Skip:(-not $Vector.Contains('go_environment')) {
        $spec = $Vector.go_environment
        # A new logon session gets the machine variables overlaid by the user's.
        $environment = @{}
        foreach ($source in $spec.machine_env, $spec.user_env) {
            foreach ($key in $source.Keys) { $environment[$key] = $source[$key] }
        }
        $goEnvironment = Get-GoEnvironment -Environment $environment -GoEnvFileText $spec.goenv_file -GoRootEnvText $spec.goroot_env
        foreach ($name in $spec.expected.Keys) {
            Assert-VectorMatch $spec.expected[$name] (ConvertTo-GoSettingResult $goEnvironment.settings[$name]) $name -Exact
        }
        Assert-VectorMatch $spec.expected_conflicts @($goEnvironment.conflicts) 'conflicts' -Exact
    }

    It 'go env file [<Index>]' -ForEach $GoEnv {
        $vars = @{}
        foreach ($key in $Case.vars.Keys) { $vars[$key] = $Case.vars[$key] }
        if ($Case.Contains('expected_error')) {
            $thrown = $null
            try {
                $null = Edit-GoEnvFileText -Text $Case.before -Vars $vars -State $Case.state
            }
            catch {
                $thrown = $_
            }
            $thrown | Should -Not -BeNullOrEmpty
            $thrown.Exception.Data['gofleet_option'] | Should -BeExactly $Case.expected_error.option
            $thrown.Exception.Message | Should -BeLike "*$($Case.expected_error.contains)*"
            return
        }
        (Edit-GoEnvFileText -Text $Case.before -Vars $vars -State $Case.state).text | Should -BeExactly $Case.after
    }
}
