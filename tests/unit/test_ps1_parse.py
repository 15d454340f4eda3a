# -*- coding: utf-8 -*-
# Copyright (c) gofleet.cache contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

"""Every .ps1/.psm1 of the collection parses, and calls only what exists (no PowerShell runs here).

See tests/sanity/ps1/ps1_tree.py for what is checked; `python tests/sanity/ps1/ps1_tree.py` prints the same
problems as file:line:column lines.
"""

from __future__ import annotations

import pytest

from ansible_collections.gofleet.cache.tests.sanity.ps1 import ps1_tree

FILES = ps1_tree.powershell_files()
REPORT = ps1_tree.check(FILES)


def test_the_windows_twins_are_checked():
    for name in ('plugins/module_utils/GoFleetCache.psm1', 'plugins/modules/go_cache_facts.ps1',
                 'plugins/modules/go_cache_prune.ps1', 'plugins/modules/go_env.ps1', 'tests/windows/Vectors.Tests.ps1'):
        assert name in FILES


@pytest.mark.parametrize('path', FILES)
def test_powershell_file(path):
    problems = ['%s:%d:%d: %s' % (path, line, column, problem) for line, column, problem in REPORT[path]]
    assert not problems, '\n'.join(problems)


@pytest.mark.parametrize('source, expected', [
    (b'$x = @(\n', 'syntax error'),
    (b'function f { if ($a) { 1 }\n', 'missing'),
    (b'$h = @{ a = }\n', 'syntax error'),
])
def test_syntax_errors_are_found(source, expected):
    problems = ps1_tree.syntax_errors(ps1_tree.parse(source))
    assert problems and any(expected in problem[2] for problem in problems), problems


def test_unknown_commands_parameters_and_variables_are_found():
    tree = ps1_tree.parse(b'function Get-GoThing { param ([string]$Path) $Pth; Get-GoThing -Paht x; Get-GoThingy }\n')
    commands = ps1_tree.command_problems('plugins/module_utils/x.psm1', tree, {}, set())
    assert [problem[2] for problem in commands] == ['parameter -paht is not declared by get-gothing',
                                                    'unknown command Get-GoThingy']
    assert [problem[2] for problem in ps1_tree.variable_problems(tree)] == ['variable $Pth is never assigned']
