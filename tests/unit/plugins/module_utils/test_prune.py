# -*- coding: utf-8 -*-
# Copyright (c) gofleet.cache contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

import os
import pwd
import time

import pytest

from ansible_collections.gofleet.cache.plugins.module_utils import _buildcache, _locate, _prune, _semver
from ansible_collections.gofleet.cache.plugins.module_utils._facts import scan_cache
from ansible_collections.gofleet.cache.plugins.module_utils._units import OptionError
from ansible_collections.gofleet.cache.tests.unit.plugins.module_utils.cachetree import (
    DAY, add_action, add_entry, add_module_version, add_output, hexid, new_build_cache, set_time, snapshot)

NOW = time.time()


def prune(root, kind, now=NOW, **options):
    """Check mode, then the real run, then the same again: returns the three results."""
    policy = _prune.Policy(**options)
    before = snapshot(root)
    preview = _prune.prune_cache(root, kind, policy, check_mode=True, now=now)
    assert snapshot(root) == before
    real = _prune.prune_cache(root, kind, policy, now=now)
    again = _prune.prune_cache(root, kind, policy, now=now)
    for key in ('removed_entries', 'removed_bytes', 'kept'):
        assert preview[key] == real[key], key
    assert preview['sample'] == real['sample']
    assert again['removed_entries'] == 0
    return preview, real, again


@pytest.fixture
def build_cache(tmp_path):
    root = new_build_cache(str(tmp_path / 'go-build'))
    for day in range(10):
        add_entry(root, day, 1000 * (day + 1), NOW - (day * 10 + 1) * DAY)  # 1d, 11d, ... 91d
    return root


def test_max_age_removes_old_entries(build_cache):
    _preview, real, _again = prune(build_cache, 'build', max_age='30d')
    # Entries used 31d, 41d, ... 91d ago go: seven of ten.
    assert real['removed_entries'] == 7
    assert real['removed_bytes'] == sum(175 + 1000 * (day + 1) for day in range(3, 10))
    facts = scan_cache(build_cache, 'build')
    assert facts['entries'] == 3 and facts['orphans']['outputs_without_action'] == 0


def test_max_size_least_recently_used_first(build_cache):
    total = scan_cache(build_cache, 'build')['bytes']
    _preview, real, _again = prune(build_cache, 'build', max_size=str(total - 9000))
    # The least recently used entry (91 days, 10000 + 175 bytes) alone brings the cache under the cap.
    assert real['removed_entries'] == 1 and real['removed_bytes'] == 10175
    assert real['after_bytes'] <= total - 9000
    kept = scan_cache(build_cache, 'build')
    assert 80 * DAY < kept['oldest_used_age_s'] < 82 * DAY


def test_keep_recent_wins_over_policies(build_cache):
    _preview, real, _again = prune(build_cache, 'build', max_size='0', keep_recent='15d')
    assert real['kept']['recent'] == 2  # 1d and 11d
    assert scan_cache(build_cache, 'build')['entries'] == 2


def test_min_free_unreachable_removes_everything_eligible(build_cache):
    _preview, real, _again = prune(build_cache, 'build', min_free='100%', keep_recent='0s')
    assert real['removed_entries'] == 10 and real['target_met'] is False


def test_dead_weight_and_shared_outputs(tmp_path):
    root = new_build_cache(str(tmp_path / 'c'))
    shared = hexid('shared')
    add_output(root, shared, 5000, NOW - 50 * DAY)
    add_action(root, hexid('go1'), shared, NOW - 50 * DAY, size=5000)
    add_action(root, hexid('go2'), shared, NOW - 2 * DAY, size=5000)
    add_action(root, hexid('lost'), hexid('missing'), NOW - 3 * DAY)
    add_output(root, hexid('nobody'), 300, NOW - 3 * DAY)
    add_output(root, hexid('fresh'), 300, NOW - 60)  # a build writes -d before -a: protected
    _preview, real, _again = prune(root, 'build', max_age='30d')
    assert real['removed_entries'] == 3  # go1 (not its shared -d), the lost -a, the nobody -d
    assert os.path.exists(os.path.join(root, shared[:2], shared + '-d'))
    assert not os.path.exists(os.path.join(root, hexid('go1')[:2], hexid('go1') + '-a'))
    assert os.path.exists(os.path.join(root, hexid('fresh')[:2], hexid('fresh') + '-d'))
    # Now the newer user of the shared output ages out too: the output goes with it.
    _preview, real, _again = prune(root, 'build', max_age='1d')
    assert not os.path.exists(os.path.join(root, shared[:2], shared + '-d'))


def test_entries_go_would_miss_are_dead_weight(tmp_path):
    """An -a recording another size than its output's, or naming a directory output that does not hold exactly
    one file, is a miss for Go: remove_incomplete removes it (and the output no hit names), whatever its age."""
    root = new_build_cache(str(tmp_path / 'c'))
    add_output(root, hexid('sized'), 600, NOW - DAY)
    add_action(root, hexid('wrongsize'), hexid('sized'), NOW - DAY, size=601)
    _action, output = add_entry(root, 'two', 10, NOW - DAY, directory=True)
    with open(os.path.join(root, output[:2], output + '-d', 'extra'), 'wb') as handle:
        handle.write(b'x')
    set_time(os.path.join(root, output[:2], output + '-d'), NOW - DAY)
    live, _output = add_entry(root, 'live', 30, NOW - DAY)
    _preview, real, _again = prune(root, 'build')
    assert real['removed_entries'] == 4 and real['kept'] == {'retained': 1}
    assert os.listdir(os.path.join(root, live[:2])) == [live + '-a']


def test_max_age_alone_ages_dead_weight_like_gos_trim(tmp_path):
    """Without remove_incomplete, max_age still removes old dead weight (Go's trim removes an old -a it would
    miss, and an old output nobody names, like any other file) and keeps young dead weight (as Go does)."""
    root = new_build_cache(str(tmp_path / 'c'))
    add_action(root, hexid('dead-old'), hexid('gone'), NOW - 10 * DAY)
    add_action(root, hexid('dead-new'), hexid('gone'), NOW - DAY)
    add_output(root, hexid('orphan-old'), 300, NOW - 10 * DAY)
    add_output(root, hexid('orphan-new'), 300, NOW - DAY)
    add_action(root, hexid('empty'), _buildcache.EMPTY_OUTPUT_ID.hex(), NOW - DAY)  # a GetBytes hit: no dead weight
    _preview, real, _again = prune(root, 'build', max_age='5d', remove_incomplete=False)
    assert real['removed_entries'] == 2 and real['kept'] == {'retained': 3}
    left = sorted(name for hexdir in os.listdir(root) if len(hexdir) == 2
                  for name in os.listdir(os.path.join(root, hexdir)))
    assert left == sorted([hexid('dead-new') + '-a', hexid('orphan-new') + '-d', hexid('empty') + '-a'])
    # remove_incomplete then removes the young dead weight, and still keeps the empty-output hit.
    _preview, real, _again = prune(root, 'build')
    assert real['removed_entries'] == 2 and real['kept'] == {'retained': 1}


def test_keep_recent_allows_for_gos_hourly_refresh(tmp_path):
    """Go refreshes an mtime on use only when it is an hour old: an entry used a minute ago may carry a mtime of
    59 minutes.  keep_recent=1h protects every mtime of the last two hours, and max_age=1d removes only mtimes
    older than a day and an hour."""
    root = new_build_cache(str(tmp_path / 'c'))
    now = int(NOW)  # whole seconds: the boundaries are exact
    kept, _o = add_entry(root, 'kept', 10, now - 2 * 3600 + 1)
    gone, _o = add_entry(root, 'gone', 10, now - 2 * 3600 - 1)
    _preview, real, _again = prune(root, 'build', now=now, max_size='0')
    assert real['kept'] == {'recent': 1} and real['removed_entries'] == 1
    assert os.path.exists(os.path.join(root, kept[:2], kept + '-a'))
    assert not os.path.exists(os.path.join(root, gone[:2], gone + '-a'))
    day_edge, _o = add_entry(root, 'edge', 10, now - DAY - 3600)
    day_past, _o = add_entry(root, 'past', 10, now - DAY - 3601)
    _preview, real, _again = prune(root, 'build', now=now, max_age='1d')
    assert real['removed_entries'] == 1
    assert os.path.exists(os.path.join(root, day_edge[:2], day_edge + '-a'))
    assert not os.path.exists(os.path.join(root, day_past[:2], day_past + '-a'))


def test_directory_outputs_removed(tmp_path):
    root = new_build_cache(str(tmp_path / 'c'))
    _action, output = add_entry(root, 'exe', 4000, NOW - 40 * DAY, directory=True)
    prune(root, 'build', max_age='30d')
    assert not os.path.exists(os.path.join(root, output[:2], output + '-d'))


def test_state_absent_keeps_root_and_marker(build_cache):
    os.chmod(build_cache, 0o750)
    with open(os.path.join(build_cache, 'trim.txt'), 'w') as handle:
        handle.write('1')
    _preview, real, _again = prune(build_cache, 'build', state='absent')
    assert real['removed_entries'] == 10
    assert sorted(name for name in os.listdir(build_cache) if len(name) != 2) == ['README', 'trim.txt']
    assert oct(os.stat(build_cache).st_mode & 0o777) == '0o750'
    assert all(not os.listdir(os.path.join(build_cache, '%02x' % i)) for i in range(256))


def test_symlinks_never_followed(build_cache, tmp_path):
    outside = tmp_path / 'precious'
    outside.mkdir()
    (outside / 'data').write_text('keep me')
    old = NOW - 100 * DAY
    os.utime(str(outside / 'data'), (old, old))
    link = os.path.join(build_cache, '00', hexid('x') + '-d')
    os.symlink(str(outside / 'data'), link)
    os.symlink(str(outside), os.path.join(build_cache, 'ab', 'dir-link'))
    prune(build_cache, 'build', state='absent')
    assert (outside / 'data').read_text() == 'keep me'


@pytest.mark.parametrize('path_kind, reason', [
    ('/', 'system directory'), ('/usr', 'system directory'), ('home', 'home directory'),
    ('plain', 'not a Go build cache'),
])
def test_refuses_non_cache_roots(tmp_path, path_kind, reason):
    if path_kind == 'home':
        stats = [os.stat(item) for item in _locate.SYSTEM_DIRS if os.path.isdir(item)]
        system = set((st.st_dev, st.st_ino) for st in stats)
        homes = [entry.pw_dir for entry in pwd.getpwall() if os.path.isdir(entry.pw_dir)
                 and (os.stat(entry.pw_dir).st_dev, os.stat(entry.pw_dir).st_ino) not in system]
        if not homes:
            pytest.skip('no account with a home directory outside the system directories')
        path = homes[0]
    elif path_kind == 'plain':
        path = str(tmp_path)
        (tmp_path / 'file').write_text('x')
    else:
        path = path_kind
    with pytest.raises(OptionError, match=reason):
        _prune.prune_cache(path, 'build', _prune.Policy(state='absent'))
    if path_kind == 'plain':
        assert (tmp_path / 'file').read_text() == 'x'


@pytest.mark.parametrize('options, option', [
    ({'max_age': '3x'}, 'max_age'), ({'max_size': '-1GB'}, 'max_size'), ({'min_free': '120%'}, 'min_free'),
    ({'keep_versions': 0}, 'keep_versions'), ({'if_busy': 'later'}, 'if_busy'), ({'state': 'gone'}, 'state'),
    ({'keep_referenced': ['relative/go.sum']}, 'keep_referenced'), ({'keep_recent': 'soon'}, 'keep_recent'),
])
def test_bad_policy_values(options, option):
    with pytest.raises(OptionError) as info:
        _prune.Policy(**options)
    assert info.value.option == option and option in str(info.value)


def versions_on_disk(root):
    facts_root = os.path.join(root, 'cache', 'download')
    found = set()
    for dirpath, _dirs, files in os.walk(facts_root):
        if dirpath.endswith('@v'):
            found.update((os.path.relpath(dirpath, facts_root)[:-3], name[:-4]) for name in files if name.endswith('.mod'))
    return found


def test_keep_versions_semver_order_and_list_rewrite(modcache):
    for index, version in enumerate(['v1.9.0', 'v1.10.0', 'v1.10.0-rc.1', 'v0.1.0', 'v2.0.0+incompatible']):
        add_module_version(modcache, 'example.com/Lib', version, NOW - (10 + index) * DAY)
    _preview, real, _again = prune(modcache, 'module', keep_versions=2)
    assert real['removed_entries'] == 3
    assert versions_on_disk(modcache) == {('example.com/!lib', 'v2.0.0+incompatible'), ('example.com/!lib', 'v1.10.0')}
    with open(os.path.join(modcache, 'cache/download/example.com/!lib/@v/list')) as handle:
        assert handle.read() == 'v1.10.0\nv2.0.0+incompatible\n'
    # Lock files stay (Go's flock targets); extracted trees are gone.
    assert os.path.exists(os.path.join(modcache, 'cache/download/example.com/!lib/@v/v1.9.0.lock'))
    assert not os.path.exists(os.path.join(modcache, 'example.com/!lib@v1.9.0'))


def test_keep_and_keep_referenced(modcache, tmp_path):
    for module in ('corp.example/internal/a', 'example.com/x', 'example.com/graph', 'example.com/gone'):
        add_module_version(modcache, module, 'v1.0.0', NOW - 100 * DAY)
    project = tmp_path / 'project'
    project.mkdir()
    (project / 'go.sum').write_text('example.com/x v1.0.0 h1:abc=\nexample.com/x v1.0.0/go.mod h1:def=\n'
                                    'example.com/graph v1.0.0/go.mod h1:ghi=\n')
    _preview, real, _again = prune(modcache, 'module', max_age='30d', keep=['corp.example/*'],
                                   keep_referenced=[str(project)])
    assert real['kept'] == {'keep': 1, 'referenced': 1}
    assert real['removed_entries'] == 2
    at_v = os.path.join(modcache, 'cache/download/example.com/graph/@v')
    # Graph-only reference: source gone, .mod and .info kept (a complete graph-only state).
    assert sorted(os.listdir(at_v)) == ['list', 'v1.0.0.info', 'v1.0.0.lock', 'v1.0.0.mod']
    assert not os.path.exists(os.path.join(modcache, 'example.com/graph@v1.0.0'))
    assert os.path.exists(os.path.join(modcache, 'example.com/x@v1.0.0'))
    assert not os.path.exists(os.path.join(modcache, 'example.com/gone@v1.0.0'))


def test_incomplete_downloads_removed_unless_in_progress(modcache):
    add_module_version(modcache, 'example.com/a', 'v1.0.0', NOW - 5 * DAY, parts=('info', 'mod', 'zip', 'partial'))
    add_module_version(modcache, 'example.com/b', 'v1.0.0', NOW - 60, parts=('info', 'mod', 'zip', 'partial'))
    add_module_version(modcache, 'example.com/c', 'v1.0.0', NOW - 5 * DAY, extracted=False, parts=('info', 'mod'))
    _preview, real, _again = prune(modcache, 'module')
    assert real['removed_entries'] == 1 and real['kept'] == {'recent': 1, 'retained': 1}
    assert versions_on_disk(modcache) == {('example.com/b', 'v1.0.0'), ('example.com/c', 'v1.0.0')}


def test_module_lock_held_by_go_keeps_version(modcache, monkeypatch):
    import fcntl  # pylint: disable=import-outside-toplevel
    at_v = add_module_version(modcache, 'example.com/a', 'v1.0.0', NOW - 50 * DAY)
    monkeypatch.setattr(_prune, 'LOCK_WAIT_S', 0.1)
    with open(os.path.join(at_v, 'v1.0.0.lock'), 'r+') as holder:
        fcntl.flock(holder, fcntl.LOCK_EX)
        result = _prune.prune_cache(modcache, 'module', _prune.Policy(max_age='30d'), now=NOW)
    assert result['removed_entries'] == 0 and result['kept'] == {'locked': 1}
    assert versions_on_disk(modcache) == {('example.com/a', 'v1.0.0')}


def test_used_since_scan_stays(build_cache, monkeypatch):
    policy = _prune.Policy(max_age='30d')
    real_scan = _prune.BuildCachePruner.plan

    def plan_then_use(self, free, size):
        plan = real_scan(self, free, size)
        for dirpath, _dirs, files in os.walk(build_cache):
            for name in files:
                if name.endswith('-a'):
                    os.utime(os.path.join(dirpath, name))  # a build used everything meanwhile
        return plan
    monkeypatch.setattr(_prune.BuildCachePruner, 'plan', plan_then_use)
    result = _prune.prune_cache(build_cache, 'build', policy, now=NOW)
    assert result['removed_entries'] == 0 and result['kept']['used_since_scan'] == 7


def test_busy_skip_changes_nothing(build_cache, monkeypatch):
    monkeypatch.setattr(_prune._procs, 'go_processes', lambda uid=None: [(1, 0, 'compile')])
    before = snapshot(build_cache)
    result = _prune.prune_cache(build_cache, 'build', _prune.Policy(max_age='30d', if_busy='skip'), now=NOW)
    assert snapshot(build_cache) == before
    assert result['busy'] == ['compile'] and result['kept']['busy'] == 7


def test_semver_order():
    ordered = ['v0.0.0-20200101000000-abcdefabcdef', 'v0.1.0', 'v1.0.0-alpha', 'v1.0.0-alpha.1', 'v1.0.0-alpha.beta',
               'v1.0.0-beta.2', 'v1.0.0-beta.11', 'v1.0.0-rc.1', 'v1.0.0', 'v1.2.0', 'v1.10.0', 'v2.0.0+incompatible']
    assert sorted(reversed(ordered), key=_semver.sort_key) == ordered
    assert not _semver.is_valid('1.0.0') and not _semver.is_valid('v1.0.0-01')
