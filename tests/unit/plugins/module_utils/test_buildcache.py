# -*- coding: utf-8 -*-
# Copyright (c) gofleet.cache contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

import os
import time

from ansible_collections.gofleet.cache.plugins.module_utils import _buildcache, _fs
from ansible_collections.gofleet.cache.plugins.module_utils._facts import scan_cache
from ansible_collections.gofleet.cache.tests.unit.plugins.module_utils.cachetree import (
    DAY, add_action, add_entry, add_output, hexid, new_build_cache, set_time)

NOW = time.time()


def scan(root):
    fd = _fs.open_dir(root)
    try:
        result = _buildcache.BuildCacheScan(fd, keep_action_ids=True).run()
        return result, list(result.join())
    finally:
        os.close(fd)


def test_marker_or_structure(tmp_path):
    root = new_build_cache(str(tmp_path / 'c'))
    fd = _fs.open_dir(root)
    try:
        assert _buildcache.is_build_cache(fd)
        # Someone deleted the README (Go writes it again on its next use): the structure still says cache.
        os.remove(os.path.join(root, 'README'))
        assert _buildcache.is_build_cache(fd)
        with open(os.path.join(root, 'trim.txt'), 'w') as handle:
            handle.write('1')
        assert _buildcache.is_build_cache(fd)
        # ... but not with something at the top that is not Go's, nor without all 256 entry directories.
        os.mkdir(os.path.join(root, 'pack'))
        assert not _buildcache.is_build_cache(fd)
        os.rmdir(os.path.join(root, 'pack'))
        os.rmdir(os.path.join(root, 'ff'))
        assert not _buildcache.is_build_cache(fd)
        # A README without the marker (Go's write of it cut short; Go never writes it again) counts as a missing
        # one: the structure decides.
        with open(os.path.join(root, 'README'), 'w') as handle:
            handle.write('This directory holds')
        assert not _buildcache.is_build_cache(fd)
        os.mkdir(os.path.join(root, 'ff'))
        assert _buildcache.is_build_cache(fd)
        os.mkdir(os.path.join(root, 'info'))
        assert not _buildcache.is_build_cache(fd)
        os.rmdir(os.path.join(root, 'info'))
        os.rmdir(os.path.join(root, 'ff'))
    finally:
        os.close(fd)
    facts = scan_cache(root, 'build')
    assert facts['exists'] and not facts['valid'] and facts['entries'] == 0
    assert 'not a Go build cache' in facts['errors'][0]['error']


def test_parse_action_checks_like_go():
    aid, oid = hexid(1), hexid(2)

    def line(size='%20d' % 5, when='%20d' % 6, action=aid, output=oid):
        return ('v1 %s %s %s %s\n' % (action, output, size, when)).encode()
    assert len(line()) == _buildcache.ENTRY_SIZE
    assert _buildcache.parse_action(line(), aid.encode()) == (bytes.fromhex(oid), 5)
    # Go decodes hex in either case and compares the decoded action ID.
    assert _buildcache.parse_action(line(action=aid.upper(), output=oid.upper()), aid.encode()) == \
        (bytes.fromhex(oid), 5)
    assert _buildcache.parse_action(line('%+20d' % 7), aid.encode()) == (bytes.fromhex(oid), 7)
    for bad in (line(action=hexid(3)), line()[:-1], line() + b'x', b'v2' + line()[2:], line('%20d' % -1),
                line(when='%20d' % -1), line('%-20d' % 5), line(' ' * 19 + 'x'), line(output='g' + oid[1:]),
                line()[:153] + b'_' + line()[154:]):
        assert _buildcache.parse_action(bad, aid.encode()) is None, bad


def test_entries_shared_outputs_and_orphans(tmp_path):
    root = new_build_cache(str(tmp_path / 'c'))
    old, recent = NOW - 40 * DAY, NOW - DAY
    add_entry(root, 1, 1000, old)
    # Output refreshed recently, action old: Go ages every file on its own, so the entry is old (its output
    # stays while any kept entry names it).
    add_entry(root, 2, 2000, old, output_used=recent)
    # One -d named by two -a (two Go versions): freed only with the newer.
    shared = hexid('shared')
    add_output(root, shared, 5000, old)
    add_action(root, hexid('go1'), shared, old, size=5000)
    add_action(root, hexid('go2'), shared, recent, size=5000)
    # Dead weight: an -a whose -d is gone, a -d nobody names, a corrupt -a, an -a recording another size
    # than its -d has (Go's GetFile: a miss), and a directory output holding two files (OutputFile: a miss).
    add_action(root, hexid('lost'), hexid('missing'), old)
    add_output(root, hexid('nobody'), 300, old)
    bad = os.path.join(root, hexid('bad')[:2], hexid('bad') + '-a')
    with open(bad, 'wb') as handle:
        handle.write(b'garbage')
    add_output(root, hexid('sized'), 600, old)
    add_action(root, hexid('wrongsize'), hexid('sized'), old, size=601)
    _action, twofiles = add_entry(root, 'two', 10, recent, directory=True)
    with open(os.path.join(root, twofiles[:2], twofiles + '-d', 'extra'), 'wb') as handle:
        handle.write(b'x')
    set_time(os.path.join(root, twofiles[:2], twofiles + '-d'), recent)
    # Go 1.24+ directory output.
    add_entry(root, 'exe', 4000, recent, directory=True)
    result, entries = scan(root)
    alive = [entry for entry in entries if entry.alive]
    assert len(alive) == 5
    by_action = dict((entry.action_id.hex(), entry) for entry in alive)
    assert by_action[hexid('a2')].last_used_ns // 10 ** 9 == int(old)
    assert by_action[hexid('go2')].owns_output and not by_action[hexid('go1')].owns_output
    assert by_action[hexid('go1')].bytes == 175 and by_action[hexid('go2')].bytes == 175 + 5000
    assert by_action[hexid('aexe')].output_is_dir and by_action[hexid('aexe')].bytes == 175 + 4000
    dead = [entry for entry in entries if not entry.alive]
    assert sorted((entry.action_id is None, entry.bytes) for entry in dead) == [
        (False, 7), (False, 175), (False, 175), (False, 175), (True, 11), (True, 300), (True, 600)]
    # Every file counted once: 9 -a, 8 -d files (three inside directory outputs), README.
    assert result.files == 9 + 8 + 1
    facts = scan_cache(root, 'build', age_buckets=['7d', '30d'], now=NOW)
    assert facts['entries'] == 5
    assert facts['orphans'] == {'actions_without_output': 4, 'outputs_without_action': 3,
                                'bytes': 175 * 3 + 7 + 300 + 600 + 11}
    over_30d = facts['age_buckets'][1]
    # Entries 1, 2 and go1 are unused for 40 days; go1's shared -d belongs to go2, entry 2's -d to entry 2.
    assert (over_30d['entries'], over_30d['bytes']) == (3, 175 + 1000 + 175 + 2000 + 175)
    assert facts['bytes'] == sum(os.path.getsize(os.path.join(d, f)) for d, _s, fs in os.walk(root) for f in fs)


def test_go_hit_rules_for_the_empty_output_and_directory_outputs(tmp_path):
    """Go's GetBytes counts an entry naming the empty output (size 0) as a hit though its -d is gone; OutputFile
    wants a directory output's only entry to be a regular file, and follows a link there (the scan never does)."""
    root = new_build_cache(str(tmp_path / 'c'))
    used = NOW - DAY
    empty = _buildcache.EMPTY_OUTPUT_ID.hex()
    add_action(root, hexid('empty-gone'), empty, used)                   # hit (GetBytes), nothing to free
    add_action(root, hexid('empty-sized'), empty, used, size=3)          # size 3 recorded: a miss
    _a, subdir = add_entry(root, 'subdir', 10, used, directory=True)     # one file and an empty directory
    os.mkdir(os.path.join(root, subdir[:2], subdir + '-d', 'sub'))
    nested = hexid('nested')                                             # its only file one level down
    os.makedirs(os.path.join(root, nested[:2], nested + '-d', 'sub'))
    with open(os.path.join(root, nested[:2], nested + '-d', 'sub', 'prog'), 'wb') as handle:
        handle.write(b'x' * 10)
    add_action(root, hexid('nested-a'), nested, used, size=10)
    linked = hexid('linked')                                             # its only entry a symbolic link
    os.mkdir(os.path.join(root, linked[:2], linked + '-d'))
    os.symlink('/etc/hostname', os.path.join(root, linked[:2], linked + '-d', 'prog'))
    add_action(root, hexid('linked-a'), linked, used, size=10)
    _result, entries = scan(root)
    by_action = dict((entry.action_id.hex(), entry) for entry in entries if entry.action_id is not None)
    gone = by_action[hexid('empty-gone')]
    assert gone.alive and not gone.owns_output and gone.bytes == 175
    assert not by_action[hexid('empty-sized')].alive
    assert not by_action[hexid('asubdir')].alive and not by_action[hexid('nested-a')].alive
    assert by_action[hexid('linked-a')].unread, "whether Go hits it depends on the link target: kept, unknown"
    facts = scan_cache(root, 'build', now=NOW)
    assert facts['entries'] == 2
    assert facts['orphans']['actions_without_output'] == 3


def test_age_buckets_allow_for_gos_hourly_refresh(tmp_path):
    """Go refreshes an mtime only when it is an hour old: an entry counts as unused for 7 days once its -a is
    7 days and an hour old, as max_age=7d decides."""
    root = new_build_cache(str(tmp_path / 'c'))
    now = int(NOW)  # whole seconds: the boundary is exact
    add_entry(root, 'edge', 10, now - 7 * DAY - 3600)
    add_entry(root, 'past', 20, now - 7 * DAY - 3601)
    facts = scan_cache(root, 'build', age_buckets=['7d'], now=now)
    assert (facts['age_buckets'][0]['entries'], facts['age_buckets'][0]['bytes']) == (1, 175 + 20)


def test_symlinks_and_foreign_dirs_not_followed(tmp_path):
    root = new_build_cache(str(tmp_path / 'c'))
    outside = tmp_path / 'outside'
    outside.mkdir()
    (outside / 'big').write_bytes(b'x' * 10000)
    add_entry(root, 1, 10, NOW)
    os.symlink(str(outside), os.path.join(root, 'ab', 'link'))
    os.symlink(str(outside / 'big'), os.path.join(root, '00', hexid('x') + '-d'))
    os.symlink(str(outside), os.path.join(root, 'fuzz'))
    facts = scan_cache(root, 'build')
    assert facts['symlinks_skipped'] == 3
    assert facts['bytes'] < 10000


def test_symlinked_root_reports_real_path(tmp_path):
    root = new_build_cache(str(tmp_path / 'real'))
    add_entry(root, 1, 10, NOW)
    os.symlink(root, str(tmp_path / 'link'))
    facts = scan_cache(str(tmp_path / 'link'), 'build')
    assert facts['real_path'] == root and facts['path'] == str(tmp_path / 'link') and facts['entries'] == 1


def test_trim_and_missing(tmp_path):
    root = new_build_cache(str(tmp_path / 'c'))
    with open(os.path.join(root, 'trim.txt'), 'w') as handle:
        handle.write('%d' % (NOW - 3600))
    facts = scan_cache(root, 'build', now=NOW)
    assert 3599 <= facts['last_trim_age_s'] <= 3601
    missing = scan_cache(str(tmp_path / 'nope'), 'build')
    assert not missing['exists'] and missing['filesystem']['mount'] and missing['bytes'] == 0


def test_scan_does_not_change_times(tmp_path):
    root = new_build_cache(str(tmp_path / 'c'))
    action_id, _output_id = add_entry(root, 1, 10, NOW - 10 * DAY)
    path = os.path.join(root, action_id[:2], action_id + '-a')
    set_time(path, NOW - 10 * DAY, atime=NOW - 20 * DAY)
    before = os.stat(path)
    scan_cache(root, 'build')
    after = os.stat(path)
    assert (before.st_atime_ns, before.st_mtime_ns) == (after.st_atime_ns, after.st_mtime_ns)


def test_stat_only_scan_ages_files_on_their_own(tmp_path):
    root = new_build_cache(str(tmp_path / 'c'))
    add_entry(root, 1, 1000, NOW - 40 * DAY)
    add_entry(root, 2, 2000, NOW - 40 * DAY, output_used=NOW - DAY)
    add_action(root, hexid('lost'), hexid('missing'), NOW - 50 * DAY)
    linked = scan_cache(root, 'build', age_buckets=['30d'], now=NOW)
    fast = scan_cache(root, 'build', age_buckets=['30d'], now=NOW, link_entries=False)
    assert (linked['entries'], fast['entries']) == (2, 3)
    assert fast['orphans'] is None and not fast['entries_linked'] and linked['entries_linked']
    assert (linked['files'], linked['bytes']) == (fast['files'], fast['bytes'])
    # Both age every file on its own: entry 2's -a is old although its -d was used a day ago.  Linked, the
    # entry carries its output's bytes and the dead -a is left out; stat only, each file counts for itself.
    assert linked['age_buckets'][0]['entries'] == 2 and linked['age_buckets'][0]['bytes'] == 1175 + 2175
    assert fast['age_buckets'][0]['entries'] == 3 and fast['age_buckets'][0]['bytes'] == 175 * 3 + 1000
