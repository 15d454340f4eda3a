# -*- coding: utf-8 -*-
# Copyright (c) gofleet.cache contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

"""Each Windows module (.ps1) declares exactly the options its Python twin documents.

Names, type, elements, choices, default, required, aliases and suboptions of every option of the .ps1's
Ansible.Basic `$spec` against the .py's DOCUMENTATION, and the spec-level rules (mutually_exclusive,
required_together, ...) against the .py's AnsibleModule call; check mode support against the documented
attribute. The .ps1 is read with tree-sitter (no PowerShell runs here), the .py without importing it.
"""

from __future__ import annotations

import ast
import os

import pytest
import yaml

from ansible_collections.gofleet.cache.tests.sanity.ps1 import ps1_tree

MODULES = os.path.join(ps1_tree.ROOT, 'plugins', 'modules')
# docs/design.md: these modules have Windows twins.
TWINS = ('go_cache_facts', 'go_cache_prune', 'go_env')
# Option keys Ansible.Basic knows; anything else in a .ps1 spec is a typo it would reject at run time.
SPEC_KEYS = frozenset(('type', 'elements', 'choices', 'default', 'required', 'aliases', 'options', 'no_log',
                       'deprecated_aliases', 'apply_defaults', 'removed_in_version', 'removed_at_date',
                       'removed_from_collection', 'mutually_exclusive', 'required_together', 'required_one_of',
                       'required_if', 'required_by'))
RULES = ('mutually_exclusive', 'required_together', 'required_one_of', 'required_if', 'required_by')


def ps1_names():
    return sorted(name[:-4] for name in os.listdir(MODULES) if name.endswith('.ps1'))


def python_module(name):
    """(DOCUMENTATION as data, {rule: value} of the AnsibleModule call) of plugins/modules/<name>.py."""
    with open(os.path.join(MODULES, name + '.py')) as handle:
        tree = ast.parse(handle.read())
    documentation = None
    rules = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign) and any(getattr(target, 'id', None) == 'DOCUMENTATION' for target in node.targets):
            documentation = yaml.safe_load(ast.literal_eval(node.value))
        if isinstance(node, ast.Call) and getattr(node.func, 'id', None) == 'AnsibleModule':
            for keyword in node.keywords:
                if keyword.arg in RULES:
                    rules[keyword.arg] = ast.literal_eval(keyword.value)
    return documentation, rules


def ps1_spec(name):
    with open(os.path.join(MODULES, name + '.ps1'), 'rb') as handle:
        return ps1_tree.assigned_literal(ps1_tree.parse(handle.read()), 'spec')


def normalized_rules(value):
    return sorted(tuple(sorted(item)) if isinstance(item, (list, tuple)) else item for item in value or [])


def compare_options(documented, declared, where):
    """Differences between documented options and an Ansible.Basic options hashtable, as readable lines."""
    differences = []
    if set(documented) != set(declared):
        differences.append('%s: documented %s, declared %s' % (where, sorted(documented), sorted(declared)))
    for name in sorted(set(documented) & set(declared)):
        doc, spec = documented[name], declared[name]
        unknown = set(spec) - SPEC_KEYS
        if unknown:
            differences.append('%s.%s: keys Ansible.Basic does not know: %s' % (where, name, sorted(unknown)))
        pairs = (
            ('type', doc.get('type', 'str'), spec.get('type', 'str')),
            ('elements', doc.get('elements'), spec.get('elements')),
            ('choices', sorted(doc['choices']) if 'choices' in doc else None,
             sorted(spec['choices']) if 'choices' in spec else None),
            ('default', doc.get('default'), spec.get('default')),
            ('required', bool(doc.get('required', False)), bool(spec.get('required', False))),
            ('aliases', sorted(doc.get('aliases', [])), sorted(spec.get('aliases', []))),
            ('no_log', bool(doc.get('no_log', False)), bool(spec.get('no_log', False))),
        )
        for key, left, right in pairs:
            if left != right or type(left) is not type(right):
                differences.append('%s.%s.%s: documented %r, declared %r' % (where, name, key, left, right))
        if 'suboptions' in doc or 'options' in spec:
            differences.extend(compare_options(doc.get('suboptions', {}), spec.get('options', {}),
                                               '%s.%s' % (where, name)))
    return differences


def test_every_twin_exists():
    assert set(TWINS) <= set(ps1_names())
    for name in ps1_names():
        assert os.path.exists(os.path.join(MODULES, name + '.py')), '%s.ps1 has no Python twin' % name


@pytest.mark.parametrize('name', ps1_names())
def test_options_match_the_python_documentation(name):
    documentation, _rules = python_module(name)
    spec = ps1_spec(name)
    assert not compare_options(documentation.get('options', {}), spec['options'], name), '\n'.join(
        compare_options(documentation.get('options', {}), spec['options'], name))


@pytest.mark.parametrize('name', ps1_names())
def test_rules_and_check_mode_match_the_python_module(name):
    documentation, rules = python_module(name)
    spec = ps1_spec(name)
    for rule in RULES:
        assert normalized_rules(spec.get(rule)) == normalized_rules(rules.get(rule)), rule
    check_mode = documentation.get('attributes', {}).get('check_mode', {}).get('support', 'none') != 'none'
    assert spec.get('supports_check_mode', False) is check_mode


def test_a_difference_is_reported():
    documented = {'state': {'type': 'str', 'choices': ['present', 'absent'], 'default': 'present'},
                  'paths': {'type': 'list', 'elements': 'path', 'default': []}}
    declared = {'state': {'type': 'str', 'choices': ['present'], 'default': 'present'},
                'paths': {'type': 'list', 'elements': 'str', 'default': [], 'require': True}}
    assert compare_options(documented, declared, 'm') == [
        "m.paths: keys Ansible.Basic does not know: ['require']",
        "m.paths.elements: documented 'path', declared 'str'",
        "m.state.choices: documented ['absent', 'present'], declared ['present']"]
