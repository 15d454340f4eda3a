# -*- coding: utf-8 -*-
# Copyright (c) gofleet.cache contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

"""The module wrappers: options reach the engine, errors name the option, results have the contract's keys."""

from __future__ import annotations

import json
import os
import time

import pytest

from ansible.module_utils.testing import patch_module_args

from ansible_collections.gofleet.cache.plugins.modules import go_cache_facts, go_cache_prune
from ansible_collections.gofleet.cache.tests.unit.plugins.module_utils.cachetree import (
    DAY, add_entry, hexid, new_build_cache)


def run_module(module, args, capsys):
    with patch_module_args(args):
        with pytest.raises(SystemExit):
            module.main()
    return json.loads(capsys.readouterr().out)


@pytest.fixture
def build_cache(tmp_path):
    root = new_build_cache(str(tmp_path / 'go-build'))
    now = time.time()
    add_entry(root, 'old', 5000, now - 40 * DAY)
    add_entry(root, 'new', 7000, now - 60)
    return root


def test_facts_of_an_explicit_cache(build_cache, capsys):
    result = run_module(go_cache_facts, {'caches': [{'path': build_cache, 'kind': 'build'}], 'kinds': ['build'],
                                         'go': 'none', 'age_buckets': ['30d']}, capsys)
    assert result['changed'] is False
    explicit = result['ansible_facts']['go_cache']['caches'][-1]
    assert explicit['source'] == 'explicit' and explicit['entries'] == 2
    assert explicit['age_buckets'] == [{'older_than': '30d', 'older_than_s': 30 * DAY, 'entries': 1, 'bytes': 5175}]
    assert set(result['ansible_facts']['go_cache']) == {'caches', 'env', 'accounts', 'conflicts'}


@pytest.mark.parametrize('args, option, value', [
    ({'age_buckets': ['7x']}, 'age_buckets', '7x'),
    ({'users': ['no-such-account-gofleet']}, 'users', 'no-such-account-gofleet'),
    ({'caches': [{'path': 'relative/dir', 'kind': 'build'}]}, 'caches', 'relative/dir'),
    ({'top': -1}, 'top', -1),
])
def test_facts_bad_input(args, option, value, capsys):
    result = run_module(go_cache_facts, dict(args, go='none'), capsys)
    assert result['failed'] and result['option'] == option and result['value'] == value
    assert option in result['msg'] and str(value) in result['msg']


def test_prune_check_mode_then_real(build_cache, capsys):
    args = {'path': build_cache, 'kind': 'build', 'max_age': '30d', '_ansible_check_mode': True, '_ansible_diff': True}
    preview = run_module(go_cache_prune, args, capsys)
    assert preview['changed'] and preview['removed_entries'] == 1 and preview['removed_bytes'] == 5175
    assert 'entries removed' in preview['diff']['after']
    old_action = hexid('aold')
    assert os.path.exists(os.path.join(build_cache, old_action[:2], old_action + '-a'))
    real = run_module(go_cache_prune, dict(args, _ansible_check_mode=False), capsys)
    assert (real['removed_entries'], real['removed_bytes']) == (1, 5175)
    assert not os.path.exists(os.path.join(build_cache, old_action[:2], old_action + '-a'))
    again = run_module(go_cache_prune, dict(args, _ansible_check_mode=False), capsys)
    assert again['changed'] is False


@pytest.mark.parametrize('args, option', [
    ({'path': '/', 'kind': 'build'}, 'path'),
    ({'path': '/tmp/x', 'kind': 'build', 'kinds': ['build']}, 'kinds'),
    ({'path': '/tmp/x'}, 'kind'),
    ({'kinds': ['build'], 'max_size': '-5GB'}, 'max_size'),
    ({'kinds': ['build'], 'min_free': '101%'}, 'min_free'),
])
def test_prune_bad_input(args, option, capsys):
    result = run_module(go_cache_prune, dict(args, go='none'), capsys)
    assert result['failed'] and option in result['msg']
