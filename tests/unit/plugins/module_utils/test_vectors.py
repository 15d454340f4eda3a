# -*- coding: utf-8 -*-
# Copyright (c) gofleet.cache contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

"""The shared test vectors (tests/vectors/*.json) against the Python engine.

tests/windows runs the same vectors against the PowerShell engine on Windows;
tests/vectors/README.md describes the format.  Windows details are mapped to
their Linux analogue (read-only attribute -> mode 0444/0555, locked file ->
unlink fails with EBUSY, junction -> directory symlink, NTFS last access off ->
a simulated file system without atime updates) or the vector is skipped with
the reason it gives.
"""

from __future__ import annotations

import errno
import json
import ntpath
import os
import re
import stat
import time

import pytest

from ansible_collections.gofleet.cache.plugins.module_utils import _fs, _goenv, _procs, _prune
from ansible_collections.gofleet.cache.plugins.module_utils._facts import DEFAULT_AGE_BUCKETS, scan_cache
from ansible_collections.gofleet.cache.plugins.module_utils._units import OptionError, parse_duration
from ansible_collections.gofleet.cache.tests.unit.plugins.module_utils.cachetree import (
    README, action_line, make_writable, set_time)
from ansible_collections.gofleet.cache.tests.unit.plugins.module_utils.cachetree import snapshot

VECTOR_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))), 'vectors')
ROOT_NAMES = {'build': ('go-build',), 'module': ('mod',), 'fuzz': ('go-build', 'fuzz')}
DEFAULT_FILESYSTEM = {'size_bytes': 10 ** 12, 'free_bytes': 5 * 10 ** 11, 'atime_updates': False}
POLICY_KEYS = ('state', 'remove_incomplete', 'max_age', 'keep_versions', 'max_size', 'min_free', 'keep_recent',
               'keep', 'keep_referenced', 'if_busy', 'busy_timeout')
FILE_KINDS = ('size', 'content', 'action_output', 'dir', 'symlink', 'junction')
FILE_KEYS = FILE_KINDS + ('path', 'age', 'atime_age', 'readonly', 'locked', 'locked_ms', 'action_size')
VECTOR_KEYS = ('schema', 'name', 'description', 'covers', 'windows_only', 'linux_analogue', 'windows', 'environment',
               'cache', 'outside', 'facts', 'prune', 'go_environment', 'go_env')
CASE_KEYS = ('policy', 'expected', 'expected_error', 'check_mode_expected', 'remaining', 'contents', 'readonly_after',
             'second_run')
# What the vectors together must pin (issue #7: every policy and every Windows-specific case).
REQUIRED_COVERS = frozenset((
    'remove_incomplete', 'max_age', 'keep_versions', 'max_size', 'min_free', 'min_free:percent', 'keep_recent',
    'keep', 'keep_referenced', 'state:absent', 'if_busy:skip', 'if_busy:wait', 'if_busy:proceed',
    'facts:build', 'facts:module', 'facts:fuzz', 'facts:age_basis', 'facts:link_entries',
    'windows:readonly', 'windows:long_paths', 'windows:locked_file', 'windows:locked_file_retry', 'windows:symlink',
    'windows:junction', 'windows:last_access_disabled', 'go_env:lf_only', 'env:precedence',
    'env:registry_machine_user', 'safety:not_a_cache'))


def _load_vectors():
    vectors = []
    for name in sorted(os.listdir(VECTOR_DIR)):
        if name.endswith('.json'):
            with open(os.path.join(VECTOR_DIR, name), encoding='utf-8') as handle:
                vectors.append((name, json.load(handle)))
    return vectors


VECTORS = _load_vectors()


# Cases where the Python engine disagrees with a vector, reported and awaiting an engine fix. Strict: once
# the engine is fixed the case passes, the xfail fails, and the entry goes.
# Vectors the Python engine is known to fail (strict xfail: fixing the engine makes them fail until removed).
KNOWN_ENGINE_GAPS = {}


def _params(section):
    """pytest params (vector, item) for every item of a list section, ids `<vector>[<index>]`."""
    params = []
    for _name, vector in VECTORS:
        items = vector.get(section)
        if isinstance(items, dict):
            items = [items]
        for index, item in enumerate(items or []):
            case_id = '%s[%d]' % (vector['name'], index)
            marks = ()
            if section == 'prune' and case_id in KNOWN_ENGINE_GAPS:
                marks = pytest.mark.xfail(strict=True, reason=KNOWN_ENGINE_GAPS[case_id])
            params.append(pytest.param(vector, item, id=case_id, marks=marks))
    return params


def _skip_windows_only(vector):
    if vector.get('windows_only'):
        pytest.skip('Windows only: %s' % vector['windows_only'])


def output_sizes(files):
    """{output ID: size} of the vector's build outputs: a `-d` file, or the one file of a `-d` directory."""
    sizes = {}
    for item in files:
        parts = item['path'].split('/')
        for index, part in enumerate(parts[:-1] if 'dir' in item else parts):
            if len(part) == 66 and part.endswith('-d') and index >= len(parts) - 2 and 'size' in item:
                sizes[part[:64]] = item['size']
    return sizes


class Workspace(object):
    """A vector's tree on disk: the cache root and the `outside` directory, at one instant `now`."""

    def __init__(self, base, vector, now):
        self.vector = vector
        self.now = now
        self.kind = vector['cache']['kind']
        self.outside = os.path.join(base, 'outside')
        self.root = os.path.join(base, *ROOT_NAMES[self.kind])
        os.makedirs(self.outside)
        os.makedirs(self.root)
        if self.kind == 'fuzz':
            # The fuzz cache is GOCACHE/fuzz: its parent must be a build cache.
            with open(os.path.join(os.path.dirname(self.root), 'README'), 'w') as handle:
                handle.write(README)
        self.locked = set()
        self.output_sizes = output_sizes(vector['cache']['files'])
        self._make(self.root, vector['cache']['files'])
        self._make(self.outside, vector.get('outside', []))

    def substitute(self, value):
        """`{outside}` in policy strings and link targets."""
        if isinstance(value, list):
            return [self.substitute(item) for item in value]
        if isinstance(value, str):
            return value.replace('{outside}', self.outside)
        return value

    def _content(self, item, name):
        if 'size' in item:
            return b'x' * item['size']
        if 'action_output' in item:
            # The size Go records is the output's (a hit); `action_size` records another (a miss).
            size = item.get('action_size', self.output_sizes.get(item['action_output'], 0))
            return action_line(name[:64], item['action_output'], size)
        if 'content' in item:
            return re.sub(r'\{now-(\w+)\}', lambda match: str(self.now - parse_duration(match.group(1), 'content')),
                          item['content']).encode('utf-8')
        return None

    def _make(self, base, files):
        timed = []   # (path, mtime, atime) of files, then directories deepest first
        dirs = {}
        for item in files:
            path = os.path.join(base, *item['path'].split('/'))
            parent = os.path.dirname(path)
            while parent != base and parent not in dirs:
                dirs[parent] = {}
                parent = os.path.dirname(parent)
            if item.get('dir'):
                os.makedirs(path, exist_ok=True)
                dirs[path] = item
                continue
            os.makedirs(os.path.dirname(path), exist_ok=True)
            target = item.get('symlink', item.get('junction'))
            if target is not None:
                os.symlink(self.substitute(target), path)
                continue
            with open(path, 'wb') as handle:
                handle.write(self._content(item, os.path.basename(path)))
            timed.append((path, item))
            if item.get('locked'):
                self.locked.add(os.path.realpath(path))
        timed += sorted(dirs.items(), key=lambda pair: -pair[0].count(os.sep))
        for path, item in timed:
            age = parse_duration(item.get('age', '0s'), 'age')
            atime_age = parse_duration(item.get('atime_age', item.get('age', '0s')), 'atime_age')
            set_time(path, self.now - age, atime=self.now - atime_age)
        for path, item in timed:
            if item.get('readonly'):
                os.chmod(path, 0o555 if os.path.isdir(path) else 0o444)

    def listing(self):
        """Every path below the root: directories end with '/', links are listed, never followed."""
        found = []

        def walk(directory, prefix):
            with os.scandir(directory) as entries:
                for entry in entries:
                    rel = prefix + entry.name
                    if entry.is_dir(follow_symlinks=False):
                        found.append(rel + '/')
                        walk(entry.path, rel + '/')
                    else:
                        found.append(rel)
        walk(self.root, '')
        return sorted(found)

    def outside_state(self):
        return snapshot(self.outside)


def allocated_bytes(root):
    """Space the regular files below `root` occupy."""
    total = 0
    for directory, _dirs, names in os.walk(root):
        for name in names:
            st = os.lstat(os.path.join(directory, name))
            if stat.S_ISREG(st.st_mode):
                total += st.st_blocks * 512
    return total


@pytest.fixture
def simulated(monkeypatch):
    """Install a vector's simulated machine state: the volume holding the cache and running Go processes.

    The volume has `free_bytes` free once the tree is on disk, and gains what
    the engine removes from the tree (so that a second run sees the space
    the first one freed, as on a real disk).
    """
    def install(vector, space):
        environment = vector.get('environment', {})
        filesystem = dict(DEFAULT_FILESYSTEM, **environment.get('filesystem', {}))
        materialised = allocated_bytes(space.root)

        def filesystem_facts(*_args, **_kwargs):
            facts = {'mount': '/', 'fstype': 'simulated', 'inodes_total': None, 'inodes_free': None,
                     'inodes_used_pct': None}
            facts.update(filesystem)
            facts['free_bytes'] = filesystem['free_bytes'] + materialised - allocated_bytes(space.root)
            facts['atime_mode'] = 'relatime' if filesystem['atime_updates'] else 'noatime'
            return facts
        processes = [(4000 + index, 0, name) for index, name in enumerate(environment.get('go_processes', []))]
        monkeypatch.setattr(_fs, 'filesystem_facts', filesystem_facts)
        # Never the real process table: Go builds elsewhere on the machine must not make a vector wait.
        monkeypatch.setattr(_procs, 'go_processes', lambda uid=None: list(processes))
    return install


@pytest.fixture
def workspace(tmp_path):
    made = []

    def make(vector):
        made.append(Workspace(str(tmp_path), vector, int(time.time())))
        return made[-1]
    yield make
    if made:
        make_writable(str(tmp_path))   # Go's read-only module directories, so that pytest can clean up


def comparable(result):
    """A result with errors as their sorted paths and the sample sorted (their order is not part of the contract)."""
    result = dict(result)
    if 'errors' in result:
        result['errors'] = sorted(item['path'] for item in result['errors'])
    if 'sample' in result:
        result['sample'] = sorted(result['sample'])
    return result


def assert_matches(expected, actual, where, exact=False):
    """The result has every key of `expected` with an equal value; dictionaries inside (kept, orphans, age
    buckets) compare exactly.  Types matter: True is not 1."""
    if isinstance(expected, dict) and isinstance(actual, dict):
        for key, value in expected.items():
            assert key in actual, '%s: %r missing from %r' % (where, key, sorted(actual))
            assert_matches(value, actual[key], '%s.%s' % (where, key), exact=True)
        if exact:
            assert sorted(expected) == sorted(actual), '%s: keys %r, expected %r' % (where, sorted(actual), sorted(expected))
    elif isinstance(expected, list) and isinstance(actual, list):
        assert len(expected) == len(actual), '%s: expected %r, got %r' % (where, expected, actual)
        for index, (left, right) in enumerate(zip(expected, actual)):
            assert_matches(left, right, '%s[%d]' % (where, index), exact)
    else:
        numbers = (int, float)
        same_type = type(expected) is type(actual) or type(expected) in numbers and type(actual) in numbers
        assert expected == actual and same_type, '%s: expected %r, got %r' % (where, expected, actual)


def refusing_unlink(locked):
    """os.unlink that fails with EBUSY for the locked paths: Linux's stand-in for a Windows sharing violation."""
    real_unlink = os.unlink

    def unlink(path, *args, **kwargs):
        dir_fd = kwargs.get('dir_fd')
        full = os.path.join(os.readlink('/proc/self/fd/%d' % dir_fd), path) if dir_fd is not None else path
        if os.path.realpath(full) in locked:
            raise OSError(errno.EBUSY, os.strerror(errno.EBUSY), path)
        return real_unlink(path, *args, **kwargs)
    return unlink


@pytest.mark.parametrize('vector, case', _params('facts'))
def test_facts(vector, case, workspace, simulated):
    _skip_windows_only(vector)
    space = workspace(vector)
    simulated(vector, space)
    options = case['request']
    facts = scan_cache(space.root, space.kind, age_buckets=options.get('age_buckets', DEFAULT_AGE_BUCKETS),
                       top=options.get('top', 10), now=space.now, link_entries=options.get('link_entries', True))
    assert_matches(case['expected'], comparable(facts), 'facts')


@pytest.mark.parametrize('vector, case', _params('prune'))
def test_prune(vector, case, workspace, simulated, monkeypatch):
    _skip_windows_only(vector)
    space = workspace(vector)
    simulated(vector, space)
    policy_options = dict((key, space.substitute(value)) for key, value in case['policy'].items())
    assert set(policy_options) <= set(POLICY_KEYS)
    outside_before = space.outside_state()
    if 'expected_error' in case:
        # refused when the options are read (a bad value) or when the cache is looked at (not a cache)
        with pytest.raises(OptionError) as info:
            _prune.prune_cache(space.root, space.kind, _prune.Policy(**policy_options), now=space.now)
        assert info.value.option == case['expected_error']['option']
        assert case['expected_error']['contains'] in str(info.value)
        assert space.listing() == case['remaining']
        return

    policy = _prune.Policy(**policy_options)
    before = snapshot(space.root)
    preview = comparable(_prune.prune_cache(space.root, space.kind, policy, check_mode=True, now=space.now))
    assert snapshot(space.root) == before, 'check mode changed the disk'
    assert_matches(dict(case['expected'], **case.get('check_mode_expected', {})), preview, 'check mode')

    with monkeypatch.context() as patch:
        patch.setattr(os, 'unlink', refusing_unlink(space.locked))
        real = comparable(_prune.prune_cache(space.root, space.kind, policy, now=space.now))
    assert_matches(case['expected'], real, 'real run')
    if 'check_mode_expected' not in case:
        # docs/design.md: in check mode the reported numbers equal what the real run removes.
        for key in ('removed_entries', 'removed_bytes', 'kept', 'sample', 'target_met'):
            assert preview[key] == real[key], key

    assert space.listing() == case['remaining']
    for rel, text in case.get('contents', {}).items():
        with open(os.path.join(space.root, *rel.split('/')), 'rb') as handle:
            assert handle.read() == text.encode('utf-8'), rel
    for rel in case.get('readonly_after', []):
        assert not os.stat(os.path.join(space.root, *rel.split('/'))).st_mode & stat.S_IWUSR, rel
    assert space.outside_state() == outside_before, 'something outside the cache changed'

    again = comparable(_prune.prune_cache(space.root, space.kind, policy, now=space.now))
    assert_matches(case.get('second_run', {'removed_entries': 0}), again, 'second run')


@pytest.mark.parametrize('vector, spec', _params('go_environment'))
def test_go_environment(vector, spec, tmp_path):
    # On Windows a new logon session gets the machine variables overlaid by the user's.
    env = dict(spec.get('machine_env', {}), **spec.get('user_env', {}))
    config = tmp_path / 'config'
    (config / 'go').mkdir(parents=True)
    (config / 'go' / 'env').write_bytes(spec['goenv_file'].encode('utf-8'))
    env['XDG_CONFIG_HOME'] = str(config)   # the go env file's default place, as %AppData% is on Windows
    goroot = tmp_path / 'goroot'
    goroot.mkdir()
    (goroot / 'go.env').write_bytes(spec['goroot_env'].encode('utf-8'))
    # The vectors' paths are Windows paths, which only ntpath calls absolute (GOCACHE must be).
    goenv = _goenv.GoEnvironment(env, str(goroot), ntpath.isabs)
    for name, expected in spec['expected'].items():
        assert goenv.settings[name].as_dict() == expected, name
    assert goenv.conflicts() == spec['expected_conflicts']


@pytest.mark.parametrize('vector, case', _params('go_env'))
def test_go_env_file(vector, case):
    if not hasattr(_goenv, 'edit_env_file'):
        pytest.skip('the go_env engine (_goenv.edit_env_file) is not there yet')
    if 'expected_error' in case:
        with pytest.raises(OptionError) as info:
            _goenv.edit_env_file(case['before'], case['vars'], case['state'])
        assert info.value.option == case['expected_error']['option']
        assert case['expected_error']['contains'] in str(info.value)
        return
    assert _goenv.edit_env_file(case['before'], case['vars'], case['state'])[0] == case['after']


def test_vectors_are_well_formed():
    """Both runners read these files: unknown keys or ambiguous file descriptions are mistakes."""
    assert VECTORS, 'no vectors in %s' % VECTOR_DIR
    for file_name, vector in VECTORS:
        assert vector['schema'] == 1 and file_name == vector['name'] + '.json', file_name
        assert set(vector) <= set(VECTOR_KEYS), (file_name, set(vector) - set(VECTOR_KEYS))
        assert vector['description'] and vector['covers'], file_name
        files = vector.get('cache', {}).get('files', []) + vector.get('outside', [])
        for item in files:
            assert set(item) <= set(FILE_KEYS), (file_name, item)
            assert sum(1 for key in FILE_KINDS if key in item) == 1, (file_name, item)
            assert not item['path'].startswith('/') and '\\' not in item['path'], (file_name, item)
        for case in vector.get('prune', []):
            assert set(case) <= set(CASE_KEYS), (file_name, set(case) - set(CASE_KEYS))
            assert ('expected' in case) != ('expected_error' in case), file_name
            assert 'remaining' in case, file_name


def test_vectors_cover_every_policy_and_windows_case():
    covered = set()
    for _name, vector in VECTORS:
        covered.update(vector['covers'])
    assert not REQUIRED_COVERS - covered, sorted(REQUIRED_COVERS - covered)
