# -*- coding: utf-8 -*-
# Copyright (c) gofleet.cache contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

import os
import time

import pytest

from ansible_collections.gofleet.cache.plugins.module_utils import _modcache
from ansible_collections.gofleet.cache.plugins.module_utils._facts import scan_cache
from ansible_collections.gofleet.cache.tests.unit.plugins.module_utils.cachetree import (
    DAY, add_module_version)

NOW = time.time()


@pytest.mark.parametrize('plain, escaped', [
    ('example.com/MixedCase/lib', 'example.com/!mixed!case/lib'),
    ('github.com/BurntSushi/toml', 'github.com/!burnt!sushi/toml'),
    ('v1.0.0-RC1', 'v1.0.0-!r!c1'), ('golang.org/x/tools', 'golang.org/x/tools'),
])
def test_escaping_round_trip(plain, escaped):
    assert _modcache.escape(plain) == escaped
    assert _modcache.unescape(escaped) == plain


@pytest.mark.parametrize('name, expected', [
    ('v1.2.3.zip', ('v1.2.3', '.zip')), ('v1.2.3.ziphash', ('v1.2.3', '.ziphash')),
    ('v0.0.1-go1.99.0.linux-amd64.mod', ('v0.0.1-go1.99.0.linux-amd64', '.mod')),
    ('v1.2.3.zip4059123.tmp', ('v1.2.3', '.tmp')), ('list', (None, None)), ('v1.0.0.partial', ('v1.0.0', '.partial')),
])
def test_download_names(name, expected):
    assert _modcache.split_download_name(name) == expected


def test_states_and_counts(modcache):
    old, recent = NOW - 60 * DAY, NOW - 2 * DAY
    add_module_version(modcache, 'example.com/MixedCase/lib', 'v1.0.0', old)
    add_module_version(modcache, 'example.com/MixedCase/lib', 'v1.1.0', recent,
                       files={'go.mod': 'module example.com/MixedCase/lib\n', 'lib.go': 'package lib\n' * 100})
    # Graph only: .info and .mod, a complete state.
    add_module_version(modcache, 'example.com/dep', 'v0.1.0', old, extracted=False, parts=('info', 'mod', 'lock'))
    # Interrupted extraction: .partial present.
    add_module_version(modcache, 'example.com/dep', 'v0.2.0', recent, parts=('info', 'mod', 'zip', 'ziphash', 'partial'))
    # Extracted but .ziphash missing: Go re-downloads it.
    add_module_version(modcache, 'example.com/dep', 'v0.3.0', recent, parts=('info', 'mod', 'zip'))
    add_module_version(modcache, 'golang.org/toolchain', 'v0.0.1-go1.99.0.linux-amd64', recent,
                       files={'go.mod': 'module golang.org/toolchain\n', 'bin': 'x' * 50000})
    at_v = os.path.join(modcache, 'cache', 'download', 'example.com', 'dep', '@v')
    with open(os.path.join(at_v, 'v0.4.0.zip123.tmp'), 'wb') as handle:
        handle.write(b't' * 77)
    sumdb = os.path.join(modcache, 'cache', 'download', 'sumdb', 'sum.golang.org', 'lookup')
    os.makedirs(sumdb)
    with open(os.path.join(sumdb, 'x'), 'wb') as handle:
        handle.write(b's' * 11)
    facts = scan_cache(modcache, 'module', age_buckets=['30d'], top=2, now=NOW)
    assert facts['valid']
    assert (facts['complete'], facts['download_only'], facts['incomplete']) == (3, 1, 3)
    assert facts['versions'] == 4 and facts['entries'] == 3 and facts['modules'] == 3
    assert facts['toolchains'] == 1
    assert facts['tmp_files'] == 1 and facts['sumdb_bytes'] == 11
    assert [item['module'] for item in facts['top_modules']] == ['golang.org/toolchain', 'example.com/MixedCase/lib']
    assert facts['top_modules'][1]['versions'] == 2
    assert facts['age_buckets'][0]['entries'] == 2  # lib v1.0.0 and dep v0.1.0
    disk_total = sum(os.path.getsize(os.path.join(d, f)) for d, _s, fs in os.walk(modcache) for f in fs)
    assert facts['bytes'] == disk_total


def test_age_basis_atime_vs_mtime(modcache):
    add_module_version(modcache, 'example.com/a', 'v1.0.0', NOW - 90 * DAY, atime=NOW - DAY)
    facts_atime = scan_cache(modcache, 'module', age_buckets=['30d'], now=NOW)
    fd = os.open(modcache, os.O_RDONLY)
    try:
        scan = _modcache.ModuleCacheScan(fd).run()
    finally:
        os.close(fd)
    version = list(scan.versions.values())[0]
    assert version.last_used_ns(False) // 10 ** 9 == int(NOW - 90 * DAY)
    assert version.last_used_ns(True) // 10 ** 9 == int(NOW - DAY)
    if facts_atime['filesystem']['atime_updates']:
        assert facts_atime['age_basis'] == 'atime' and facts_atime['age_buckets'][0]['entries'] == 0


def test_not_a_module_cache(tmp_path):
    (tmp_path / 'x').mkdir()
    (tmp_path / 'x' / 'notes.txt').write_text('not Go\n')
    facts = scan_cache(str(tmp_path / 'x'), 'module')
    assert facts['exists'] and not facts['valid']
    # empty, it is an empty module cache (Go makes cache/download on its first download)
    (tmp_path / 'x' / 'notes.txt').unlink()
    facts = scan_cache(str(tmp_path / 'x'), 'module')
    assert facts['valid'] and facts['entries'] == 0 and facts['bytes'] == 0


def test_symlink_out_of_tree_ignored(modcache, tmp_path):
    add_module_version(modcache, 'example.com/a', 'v1.0.0', NOW)
    (tmp_path / 'secret').mkdir()
    (tmp_path / 'secret' / 'f').write_bytes(b'z' * 5000)
    os.symlink(str(tmp_path / 'secret'), os.path.join(modcache, 'example.com', 'b@v1.0.0'))
    facts = scan_cache(modcache, 'module')
    assert facts['symlinks_skipped'] == 1 and facts['bytes'] < 5000


def test_gathering_keeps_atimes(modcache):
    at_v = add_module_version(modcache, 'example.com/a', 'v1.0.0', NOW - 9 * DAY, atime=NOW - 8 * DAY)
    paths = [os.path.join(at_v, name) for name in sorted(os.listdir(at_v))]
    before = [os.stat(path).st_atime_ns for path in paths]
    scan_cache(modcache, 'module')
    assert [os.stat(path).st_atime_ns for path in paths] == before
