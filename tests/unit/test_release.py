# -*- coding: utf-8 -*-
# Copyright (c) gofleet.cache contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

"""What the collection declares agrees with what it uses and tests.

- galaxy.yml's dependencies name every collection whose modules, roles or filters the roles and playbooks call
  (a user with only ansible-core gets them on install), and nothing else.
- galaxy.yml's version is the newest release in the changelog.
- The oldest ansible-core the test suite runs the playbooks on (tests/requirements-oldest-core.txt) is the one
  meta/runtime.yml claims, and the newest (tests/requirements.txt) is at least that.
"""

from __future__ import annotations

import os
import re

import yaml

from ansible_collections.gofleet.cache.tests.sanity.ps1 import ps1_tree

ROOT = ps1_tree.ROOT
THIS = 'gofleet.cache'
# Task keys of the form namespace.collection.name, in YAML task files and templates of tasks.
FQCN_KEY = re.compile(r'^\s*(?:- )?([a-z0-9_]+\.[a-z0-9_]+)\.[a-z0-9_]+:\s*$', re.M)
# Filters, tests and lookups called by FQCN inside templates.
FQCN_CALL = re.compile(r"""(?:\|\s*|lookup\(\s*['"]|query\(\s*['"]|\bis\s+(?:not\s+)?)([a-z0-9_]+\.[a-z0-9_]+)\.[a-z0-9_]+""")
# Role references by FQCN (name: / role:), the only way another collection's role is reached.
FQCN_ROLE = re.compile(r'^\s*(?:- )?(?:name|role):\s*([a-z0-9_]+\.[a-z0-9_]+)\.[a-z0-9_]+\s*$', re.M)


def _yaml_files():
    for top in ('roles', 'playbooks'):
        for dirpath, _dirs, files in os.walk(os.path.join(ROOT, top)):
            for name in files:
                if name.endswith(('.yml', '.yaml')):
                    yield os.path.join(dirpath, name)


def collections_used():
    used = {}
    for path in _yaml_files():
        with open(path) as handle:
            text = handle.read()
        for pattern in (FQCN_KEY, FQCN_CALL, FQCN_ROLE):
            for name in pattern.findall(text):
                used.setdefault(name, set()).add(os.path.relpath(path, ROOT))
    used.pop(THIS, None)
    used.pop('ansible.builtin', None)
    return used


def galaxy():
    with open(os.path.join(ROOT, 'galaxy.yml')) as handle:
        return yaml.safe_load(handle)


def pinned(requirements, package):
    with open(os.path.join(ROOT, 'tests', requirements)) as handle:
        for line in handle:
            match = re.match(r'^%s==([0-9.]+)\s*$' % re.escape(package), line.strip())
            if match:
                return tuple(int(part) for part in match.group(1).split('.'))
    raise AssertionError('%s pins no %s' % (requirements, package))


def test_every_collection_the_roles_and_playbooks_call_is_a_dependency():
    used = collections_used()
    assert 'ansible.posix' in used and 'ansible.windows' in used  # the scan finds what is there
    declared = set(galaxy()['dependencies'])
    missing = dict((name, sorted(files)) for name, files in used.items() if name not in declared)
    assert not missing, 'used but not in galaxy.yml dependencies: %r' % missing
    assert not declared - set(used), 'declared but never used: %r' % sorted(declared - set(used))


def test_the_tested_ansible_core_range_is_the_claimed_one():
    with open(os.path.join(ROOT, 'meta', 'runtime.yml')) as handle:
        claim = yaml.safe_load(handle)['requires_ansible']
    match = re.match(r'^>=\s*([0-9]+)\.([0-9]+)(?:\.[0-9]+)?$', claim)
    assert match, 'requires_ansible %r: expected ">=X.Y[.Z]"' % claim
    oldest = (int(match.group(1)), int(match.group(2)))
    assert pinned('requirements-oldest-core.txt', 'ansible-core')[:2] == oldest
    assert pinned('requirements.txt', 'ansible-core')[:2] > oldest


def test_the_version_is_the_latest_release_of_the_changelog():
    with open(os.path.join(ROOT, 'changelogs', 'changelog.yaml')) as handle:
        releases = yaml.safe_load(handle)['releases']
    latest = max(releases, key=lambda version: tuple(int(part) for part in version.split('.')))
    assert galaxy()['version'] == latest
    with open(os.path.join(ROOT, 'CHANGELOG.rst')) as handle:
        assert '\nv%s\n' % latest in handle.read()  # generated from changelog.yaml (antsibull-changelog generate)
