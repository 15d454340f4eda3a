# Copyright (c) gofleet.cache contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

<#
.SYNOPSIS
Run the Windows tests of gofleet.cache (Pester 5) on this machine: the shared vectors against GoFleetCache.psm1.

.DESCRIPTION
Works with Windows PowerShell 5.1 and PowerShell 7. Needs Pester 5 (Windows ships Pester 3.4):
    Install-Module Pester -MinimumVersion 5.5.0 -Scope CurrentUser -Force -SkipPublisherCheck
Run it from an elevated prompt, or with Developer Mode on, so that the vectors with symbolic links run too (they
are reported as skipped otherwise). The tests write only below Pester's TestDrive (%TEMP%) and never touch the
Go caches of this machine.

.PARAMETER OutputFile
Where to write NUnit XML results for a CI system (optional).

.EXAMPLE
powershell.exe -NoProfile -ExecutionPolicy Bypass -File tests\windows\Invoke-VectorTests.ps1

.EXAMPLE
pwsh -NoProfile -File tests/windows/Invoke-VectorTests.ps1 -OutputFile testResults.xml
#>
[CmdletBinding()]
param (
    [string]$OutputFile
)

$ErrorActionPreference = 'Stop'
$pester = Get-Module -ListAvailable -Name Pester | Where-Object { $_.Version -ge [version]'5.5.0' } |
    Sort-Object Version -Descending | Select-Object -First 1
if (-not $pester) {
    throw 'Pester 5.5 or newer is needed: Install-Module Pester -MinimumVersion 5.5.0 -Scope CurrentUser -Force -SkipPublisherCheck'
}
Import-Module $pester -Force

$configuration = New-PesterConfiguration
$configuration.Run.Path = $PSScriptRoot
$configuration.Run.Exit = $true
$configuration.Output.Verbosity = 'Detailed'
if ($OutputFile) {
    $configuration.TestResult.Enabled = $true
    $configuration.TestResult.OutputFormat = 'NUnitXml'
    $configuration.TestResult.OutputPath = $OutputFile
}
Invoke-Pester -Configuration $configuration
