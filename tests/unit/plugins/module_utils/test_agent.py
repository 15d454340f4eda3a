# -*- coding: utf-8 -*-
# Copyright (c) gofleet.cache contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

"""The on-host agent on synthetic caches: config validation, runs, dry runs, locks, exit codes, metrics.

The agent runs in-process through _agent.main (without lowering the test
runner's priority; test_lower_priority checks that part in a child process).
"""

from __future__ import annotations

import json
import os
import pathlib
import pwd
import shutil
import stat
import subprocess
import sys
import tempfile
import threading
import time

import pytest

from ansible_collections.gofleet.cache.plugins.module_utils import _agent
from ansible_collections.gofleet.cache.plugins.module_utils._facts import scan_cache
from ansible_collections.gofleet.cache.plugins.module_utils._units import OptionError
from ansible_collections.gofleet.cache.tests.unit.plugins.module_utils.cachetree import (
    DAY, add_entry, add_module_version, new_build_cache)

try:
    from prometheus_client.parser import text_string_to_metric_families
except ImportError:  # the Python 3.8 engine venv has no prometheus_client
    text_string_to_metric_families = None

NOW = time.time()
ME = pwd.getpwuid(os.geteuid()).pw_name
as_root = pytest.mark.skipif(os.geteuid() != 0, reason='needs root (another account, ownership)')


def old_entries(root, count=10):
    """Entries used 1, 11, 21, ... days ago: max_age=30d removes the seven used 31 days ago or earlier."""
    for day in range(count):
        add_entry(root, day, 1000 * (day + 1), NOW - (day * 10 + 1) * DAY)
    return root


@pytest.fixture
def shared_cache(tmp_path):
    return old_entries(new_build_cache(str(tmp_path / 'srv' / 'go-build')))


@pytest.fixture
def dirs(tmp_path):
    made = {}
    for name in ('locks', 'metrics'):
        made[name] = str(tmp_path / name)
        os.mkdir(made[name], 0o755)
    made['lock_fd'] = os.open(made['locks'], os.O_RDONLY | os.O_DIRECTORY)
    yield made
    os.close(made['lock_fd'])


def write_config(tmp_path, **options):
    path = str(tmp_path / 'agent.json')
    with open(path, 'w') as handle:
        json.dump(options, handle)
    return path


def run(argv, capsys):
    """(exit status, stdout lines, stderr) of one in-process agent run."""
    code = _agent.main(argv, idle=False)
    out, err = capsys.readouterr()
    return code, out.splitlines(), err


def action_files(root):
    return sorted(name for bucket in os.listdir(root) if len(bucket) == 2
                  for name in os.listdir(os.path.join(root, bucket)) if name.endswith('-a'))


def without_duration(line):
    """A summary line without its last field, the run's duration."""
    return line.rsplit('; ', 1)[0]


def tree(root):
    state = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            st = os.lstat(os.path.join(dirpath, name))
            state[os.path.relpath(os.path.join(dirpath, name), root)] = (st.st_mode, st.st_size, st.st_mtime_ns)
    return state


def metrics_of(path):
    with open(path) as handle:
        text = handle.read()
    if text_string_to_metric_families is None:
        return text, None
    return text, dict((family.name, family) for family in text_string_to_metric_families(text))


# --------------------------------------------------------------------------- configuration


def test_parse_config_takes_the_module_options_and_skips_nulls(shared_cache):
    config = _agent.parse_config({'max_age': '30d', 'max_size': None, 'kinds': ['build', 'module'], 'go': 'none',
                                  'caches': [{'path': shared_cache, 'kind': 'build'}], 'metrics_dir': None})
    assert config.policy.max_age == 30 * DAY
    assert config.policy.max_size is None
    assert config.policy.keep_recent == 3600  # go_cache_prune's default
    assert config.kinds == ['build', 'module']
    assert config.caches == [(shared_cache, 'build')]
    assert config.metrics_dir is None


@pytest.mark.parametrize('options,option,value', [
    ({'max_age': '3x'}, 'max_age', '3x'),
    ({'keep_versions': 0}, 'keep_versions', 0),
    ({'keep_versions': '3'}, 'keep_versions', '3'),
    ({'remove_incomplete': 'yes'}, 'remove_incomplete', 'yes'),
    ({'min_free': '120%'}, 'min_free', '120%'),
    ({'if_busy': 'later'}, 'if_busy', 'later'),
    ({'keep': 'example.com/*'}, 'keep', 'example.com/*'),
    ({'keep_referenced': ['relative/go.sum']}, 'keep_referenced', 'relative/go.sum'),
    ({'kinds': ['build', 'cache']}, 'kinds', 'cache'),
    ({'kinds': 'build'}, 'kinds', 'build'),
    ({'go': 'go'}, 'go', 'go'),
    ({'caches': [{'path': 'srv/go-build', 'kind': 'build'}]}, 'caches', 'srv/go-build'),
    ({'caches': [{'path': '/srv/go-build', 'kind': 'gocache'}]}, 'caches', 'gocache'),
    ({'caches': [{'path': '/srv/go-build', 'kind': 'build'}, {'path': '/srv/go-build/', 'kind': 'build'}]},
     'caches', '/srv/go-build'),
    ({'metrics_dir': 'metrics'}, 'metrics_dir', 'metrics'),
    ({'lock_dir': 5}, 'lock_dir', 5),
    ({'state': 'absent'}, 'state', 'absent'),
    ({'max_agee': '30d'}, 'max_agee', '30d'),
])
def test_bad_options_name_the_option_and_the_value(options, option, value):
    with pytest.raises(OptionError) as raised:
        _agent.parse_config(options)
    assert (raised.value.option, raised.value.value) == (option, value)
    assert str(raised.value).startswith('%s: invalid value %r' % (option, value))


def test_a_config_that_is_no_object_is_refused():
    with pytest.raises(OptionError) as raised:
        _agent.parse_config(['max_age', '30d'], '/etc/gofleet-cache/agent.json')
    assert raised.value.option == 'config'


def test_check_config(tmp_path, shared_cache, capsys):
    path = write_config(tmp_path, max_age='30d', caches=[{'path': shared_cache, 'kind': 'build'}])
    code, out, _err = run(['--config', path, '--shared', '--check-config'], capsys)
    assert code == _agent.EXIT_OK
    assert out == ['%s: valid policy for shared caches' % path]


@pytest.mark.parametrize('content,message', [
    ('{"max_age": "forever"}', "max_age: invalid value 'forever'"),
    ('{"max_age": ', '--config: invalid value'),
    (None, 'No such file or directory'),
])
def test_bad_config_exits_2_naming_the_problem_and_touches_nothing(tmp_path, shared_cache, dirs, capsys,
                                                                   content, message):
    path = str(tmp_path / 'agent.json')
    if content is not None:
        with open(path, 'w') as handle:
            handle.write(content)
    before = tree(shared_cache)
    code, out, err = run(['--config', path, '--shared'], capsys)
    assert code == _agent.EXIT_CONFIG
    assert out == []
    assert err.startswith('gofleet-cache-agent: error: ') and message in err
    assert tree(shared_cache) == before


def test_a_shared_path_that_is_no_go_cache_exits_2_before_any_cache_is_touched(tmp_path, shared_cache, dirs, capsys):
    not_a_cache = str(tmp_path / 'srv' / 'not-a-cache')
    os.makedirs(not_a_cache)
    with open(os.path.join(not_a_cache, 'notes.txt'), 'w') as handle:
        handle.write('not Go\n')  # an empty directory would be an empty cache
    path = write_config(tmp_path, max_age='30d', lock_dir=dirs['locks'], if_busy='proceed',
                        caches=[{'path': shared_cache, 'kind': 'build'}, {'path': not_a_cache, 'kind': 'build'}])
    before = tree(shared_cache)
    code, _out, err = run(['--config', path, '--shared'], capsys)
    assert code == _agent.EXIT_CONFIG
    assert "not a Go build cache" in err and not_a_cache in err
    assert tree(shared_cache) == before


@pytest.mark.parametrize('job', [['--shared'], ['--user', 'root']])
def test_a_bad_policy_still_reports_failure_in_the_metrics(tmp_path, shared_cache, dirs, capsys, job):
    """A job that cannot run writes success 0 (and its time), so the dashboards and alerts see it; nothing else."""
    path = write_config(tmp_path, max_age='bogus', lock_dir=dirs['locks'], metrics_dir=dirs['metrics'],
                        caches=[{'path': shared_cache, 'kind': 'build'}])
    before = tree(shared_cache)
    code, _out, err = run(['--config', path] + job, capsys)
    assert code == _agent.EXIT_CONFIG and "max_age: invalid value 'bogus'" in err
    assert tree(shared_cache) == before
    name = 'gofleet_cache_shared.prom' if job == ['--shared'] else 'gofleet_cache_user_root.prom'
    assert os.listdir(dirs['metrics']) == [name]
    text, families = metrics_of(os.path.join(dirs['metrics'], name))
    assert 'gofleet_cache_last_run_success{user="%s",kind="",path="",scope="%s"} 0' % (
        '' if job == ['--shared'] else 'root', 'shared' if job == ['--shared'] else 'user') in text
    if families is not None:
        assert families['gofleet_cache_last_run_timestamp_seconds'].samples[0].value > time.time() - 60
        assert 'gofleet_cache_size_bytes' not in [sample.name for family in families.values()
                                                  for sample in family.samples]
    # a dry run and --check-config never write metrics
    os.unlink(os.path.join(dirs['metrics'], name))
    for extra in (['--dry-run'], ['--check-config']):
        assert run(['--config', path] + job + extra, capsys)[0] == _agent.EXIT_CONFIG
    assert os.listdir(dirs['metrics']) == []


def test_usage_errors_exit_2(capsys):
    with pytest.raises(SystemExit) as raised:
        _agent.main(['--user', 'root', '--shared'], idle=False)
    assert raised.value.code == _agent.EXIT_CONFIG
    assert 'not allowed with argument' in capsys.readouterr().err


def test_help_documents_the_exit_codes(capsys):
    with pytest.raises(SystemExit):
        _agent.main(['--help'], idle=False)
    out = capsys.readouterr().out
    for line in ('0  every cache was pruned', '1  some paths', '2  bad configuration', '3  a cache was skipped'):
        assert line in out


# --------------------------------------------------------------------------- runs


def test_dry_run_predicts_the_real_run_and_changes_nothing(tmp_path, shared_cache, dirs, capsys):
    path = write_config(tmp_path, max_age='30d', lock_dir=dirs['locks'], metrics_dir=dirs['metrics'],
                        if_busy='proceed', caches=[{'path': shared_cache, 'kind': 'build'}])
    before = tree(shared_cache)
    code, dry, _err = run(['--config', path, '--shared', '--dry-run'], capsys)
    assert code == _agent.EXIT_OK
    assert tree(shared_cache) == before
    assert os.listdir(dirs['metrics']) == []  # a dry run writes no metrics
    code, real, _err = run(['--config', path, '--shared'], capsys)
    assert code == _agent.EXIT_OK
    assert [without_duration(line).replace('would remove', 'removed') for line in dry] == [
        without_duration(line) for line in real]
    assert real[0].startswith('shared build %s: removed 7 entries (' % shared_cache)
    assert 'kept retained=3' in real[0]
    assert len(action_files(shared_cache)) == 3
    code, again, _err = run(['--config', path, '--shared'], capsys)
    assert code == _agent.EXIT_OK and 'removed 0 entries' in again[0]


def test_user_caches_located_like_go_and_metrics_per_kind(tmp_path, dirs, capsys, monkeypatch, modcache):
    gocache = old_entries(new_build_cache(str(tmp_path / 'gocache')))
    add_module_version(modcache, 'example.com/old', 'v1.0.0', NOW - 60 * DAY)
    add_module_version(modcache, 'example.com/new', 'v1.0.0', NOW - 2 * DAY)
    monkeypatch.setenv('GOCACHE', gocache)
    monkeypatch.setenv('GOMODCACHE', modcache)
    path = write_config(tmp_path, max_age='30d', kinds=['build', 'module', 'fuzz'], go='none', if_busy='proceed',
                        lock_dir=dirs['locks'], metrics_dir=dirs['metrics'])
    code, out, err = run(['--config', path], capsys)
    assert code == _agent.EXIT_OK, err
    assert out[0].startswith('%s build %s: removed 7 entries' % (ME, gocache))
    assert out[1].startswith('%s module %s: removed 1 entries' % (ME, modcache))
    assert out[2] == '%s fuzz %s: no cache yet, nothing to prune' % (ME, os.path.join(gocache, 'fuzz'))
    assert not os.path.exists(os.path.join(modcache, 'example.com', 'old@v1.0.0'))
    assert os.path.isdir(os.path.join(modcache, 'example.com', 'new@v1.0.0'))
    text, families = metrics_of(os.path.join(dirs['metrics'], 'gofleet_cache_user_%s.prom' % ME))
    assert 'gofleet_cache_size_bytes{user="%s",kind="build",path="%s",scope="user"} %d' % (
        ME, gocache, scan_cache(gocache, 'build')['bytes']) in text
    if families is not None:
        by_kind = dict((s.labels['kind'], s.value) for s in families['gofleet_cache_last_run_removed_entries'].samples)
        assert by_kind == {'build': 7, 'module': 1, 'fuzz': 0}
        entries = dict((s.labels['kind'], s.value) for s in families['gofleet_cache_entries'].samples)
        assert entries == {'build': 3, 'module': 1, 'fuzz': 0}
        success = set(s.value for s in families['gofleet_cache_last_run_success'].samples)
        assert success == {1}
        stamps = [s.value for s in families['gofleet_cache_last_run_timestamp_seconds'].samples]
        assert all(NOW - 5 < stamp <= time.time() for stamp in stamps)
        free = families['gofleet_cache_filesystem_free_bytes'].samples[0].value
        assert free == pytest.approx(os.statvfs(gocache).f_bavail * os.statvfs(gocache).f_frsize, rel=0.01)


def test_caches_go_cannot_locate_are_reported_not_failed(tmp_path, dirs, capsys, monkeypatch):
    # No HOME and no Go variables (a job with an empty environment): Go has no default cache location.
    for name in ('HOME', 'XDG_CACHE_HOME', 'GOCACHE', 'GOMODCACHE', 'GOPATH', 'GOENV'):
        monkeypatch.delenv(name, raising=False)
    path = write_config(tmp_path, kinds=['build', 'module'], go='none', lock_dir=dirs['locks'],
                        metrics_dir=dirs['metrics'])
    code, out, err = run(['--config', path], capsys)
    assert code == _agent.EXIT_OK, err
    assert [line.split(': ', 1)[1] for line in out] == ['no cache yet, nothing to prune'] * 2
    assert os.listdir(dirs['locks']) == []


@as_root
def test_shared_metrics_name_the_cache_owner(tmp_path, shared_cache, dirs, capsys):
    nobody = pwd.getpwnam('nobody')
    os.chown(shared_cache, nobody.pw_uid, nobody.pw_gid)
    path = write_config(tmp_path, lock_dir=dirs['locks'], metrics_dir=dirs['metrics'], if_busy='proceed',
                        caches=[{'path': shared_cache, 'kind': 'build'}])
    assert run(['--config', path, '--shared'], capsys)[0] == _agent.EXIT_OK
    text, _families = metrics_of(os.path.join(dirs['metrics'], 'gofleet_cache_shared.prom'))
    assert 'gofleet_cache_entries{user="nobody",kind="build",path="%s",scope="shared"} 10' % shared_cache in text


@as_root
def test_root_writes_an_accounts_metrics_file_itself(tmp_path, dirs, capsys, monkeypatch):
    path = write_config(tmp_path, go='none', lock_dir=dirs['locks'], metrics_dir=dirs['metrics'])
    # nobody's caches do not exist: the run reports them and writes its metrics file all the same.
    code, out, _err = run(['--config', path, '--user', 'nobody'], capsys)
    assert code == _agent.EXIT_OK
    assert out[0].endswith('no cache yet, nothing to prune')
    # Root's file in a directory only root writes: no account can replace it or squat its name.
    st = os.stat(os.path.join(dirs['metrics'], 'gofleet_cache_user_nobody.prom'))
    assert (st.st_uid, stat.S_IMODE(st.st_mode)) == (0, 0o644)


@as_root
def test_a_metrics_file_someone_planted_is_replaced_not_followed(tmp_path, shared_cache, dirs, capsys):
    victim = tmp_path / 'victim'
    victim.write_text('keep\n')
    planted = os.path.join(dirs['metrics'], 'gofleet_cache_shared.prom')
    os.symlink(str(victim), planted)
    path = write_config(tmp_path, caches=[{'path': shared_cache, 'kind': 'build'}], lock_dir=dirs['locks'],
                        metrics_dir=dirs['metrics'])
    code, _out, _err = run(['--config', path, '--shared'], capsys)
    assert code == _agent.EXIT_OK
    assert victim.read_text() == 'keep\n'
    assert not os.path.islink(planted) and 'gofleet_cache_size_bytes' in open(planted).read()


def python_for(account):
    """A Python this account may run (a virtualenv under /root is out of its reach), or None."""
    for candidate in (sys.executable, '/usr/bin/python3'):
        try:
            probe = subprocess.run([candidate, '-c', 'pass'], preexec_fn=lambda: os.setuid(account.pw_uid),
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
        except OSError:
            continue
        if probe.returncode == 0:
            return candidate
    return None


@pytest.fixture
def public_dir():
    """A directory every account can read (pytest's tmp_path is root's alone)."""
    directory = tempfile.mkdtemp(prefix='gofleet-agent-test-')
    os.chmod(directory, 0o755)
    yield pathlib.Path(directory)
    shutil.rmtree(directory)


@as_root
def test_only_root_prunes_another_accounts_caches(public_dir):
    path = write_config(public_dir, go='none')
    nobody = pwd.getpwnam('nobody')
    python = python_for(nobody)
    if python is None:
        pytest.skip('no Python the account nobody may run')
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path), HOME='/')
    script = 'import sys; from ansible_collections.gofleet.cache.plugins.module_utils import _agent; sys.exit(_agent.main())'
    proc = subprocess.run(
        [python, '-c', script, '--config', path, '--user', 'root'],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True, cwd='/', check=False,
        preexec_fn=lambda: (os.setgid(nobody.pw_gid), os.setuid(nobody.pw_uid)))
    assert proc.returncode == _agent.EXIT_CONFIG, proc.stderr
    assert "--user: invalid value 'root': only root may prune another account's caches" in proc.stderr


def test_metrics_dir_must_exist(tmp_path, shared_cache, dirs, capsys):
    path = write_config(tmp_path, caches=[{'path': shared_cache, 'kind': 'build'}], lock_dir=dirs['locks'],
                        metrics_dir=str(tmp_path / 'missing'))
    code, _out, err = run(['--config', path, '--shared'], capsys)
    assert code == _agent.EXIT_CONFIG and 'metrics_dir' in err and 'No such file or directory' in err


# --------------------------------------------------------------------------- locks


def locked_config(tmp_path, shared_cache, dirs, **options):
    options.setdefault('if_busy', 'wait')
    return write_config(tmp_path, max_age='30d', lock_dir=dirs['locks'], metrics_dir=dirs['metrics'],
                        caches=[{'path': shared_cache, 'kind': 'build'}], **options)


class HeldLock(_agent.CacheLock):
    """A CacheLock on the lock directory as another run opens it."""

    def __init__(self, dirs, cache, exclusive=True):
        super(HeldLock, self).__init__(dirs['lock_fd'], _agent.lock_key('shared', os.path.realpath(cache)), exclusive)


def hold(dirs, cache, exclusive=True):
    lock = HeldLock(dirs, cache, exclusive)
    assert lock.acquire(0)
    return lock


def test_skip_leaves_a_locked_cache_and_exits_3(tmp_path, shared_cache, dirs, capsys):
    path = locked_config(tmp_path, shared_cache, dirs, if_busy='skip')
    lock = hold(dirs, shared_cache)
    try:
        before = tree(shared_cache)
        code, out, _err = run(['--config', path, '--shared'], capsys)
    finally:
        lock.release()
    assert code == _agent.EXIT_BUSY
    assert 'skipped: another gofleet-cache-agent run held %s' % os.path.join(dirs['locks'], lock.name) in out[0]
    assert tree(shared_cache) == before
    _text, families = metrics_of(os.path.join(dirs['metrics'], 'gofleet_cache_shared.prom'))
    if families is not None:
        assert families['gofleet_cache_last_run_busy'].samples[0].value == 1
        assert families['gofleet_cache_last_run_success'].samples[0].value == 0
        assert families['gofleet_cache_entries'].samples[0].value == 10


def test_wait_gives_up_after_busy_timeout(tmp_path, shared_cache, dirs, capsys):
    path = locked_config(tmp_path, shared_cache, dirs, busy_timeout='1s')
    lock = hold(dirs, shared_cache)
    started = time.monotonic()
    try:
        code, out, _err = run(['--config', path, '--shared'], capsys)
    finally:
        lock.release()
    assert code == _agent.EXIT_BUSY and 'skipped' in out[0]
    assert 1.0 <= time.monotonic() - started < 5


@pytest.mark.parametrize('if_busy', ['wait', 'proceed'])
def test_wait_and_proceed_prune_once_the_other_run_ends(tmp_path, shared_cache, dirs, capsys, if_busy):
    path = locked_config(tmp_path, shared_cache, dirs, if_busy=if_busy, busy_timeout='30s')
    lock = hold(dirs, shared_cache)
    timer = threading.Timer(1.0, lock.release)
    timer.start()
    started = time.monotonic()
    try:
        code, out, _err = run(['--config', path, '--shared'], capsys)
    finally:
        timer.cancel()
        lock.release()
    assert code == _agent.EXIT_OK, out
    assert 'removed 7 entries' in out[0]
    assert time.monotonic() - started >= 0.9


def test_dry_runs_share_the_lock_a_real_run_takes_alone(dirs, shared_cache):
    first = hold(dirs, shared_cache, exclusive=False)
    second = HeldLock(dirs, shared_cache, exclusive=False)
    real = HeldLock(dirs, shared_cache, exclusive=True)
    third = HeldLock(dirs, shared_cache, exclusive=False)
    try:
        assert second.acquire(0)
        assert not real.acquire(0.2)
        first.release()
        second.release()
        assert real.acquire(0)
        assert not third.acquire(0)
    finally:
        for lock in (first, second, real, third):
            lock.release()


def test_lock_names_are_per_real_path_and_readable():
    name = _agent.lock_name('/home/runner/.cache/go-build')
    assert name.startswith('home_runner_.cache_go-build-') and name.endswith('.lock')
    assert name != _agent.lock_name('/home/runner/.cache/go_build')
    assert len(_agent.lock_name('/x' * 500)) < 100


def test_a_symlink_planted_as_lock_file_is_never_followed(tmp_path, shared_cache, dirs, capsys):
    target = str(tmp_path / 'precious')
    with open(target, 'w') as handle:
        handle.write('keep\n')
    lock_path = os.path.join(dirs['locks'], _agent.lock_name(_agent.lock_key('shared', os.path.realpath(shared_cache))))
    os.symlink(target, lock_path)
    path = locked_config(tmp_path, shared_cache, dirs)
    code, out, _err = run(['--config', path, '--shared'], capsys)
    assert code == _agent.EXIT_FAILED
    assert 'failed:' in out[0]
    assert len(action_files(shared_cache)) == 10
    with open(target) as handle:
        assert handle.read() == 'keep\n'


def test_a_fifo_planted_as_lock_file_never_blocks_the_run(tmp_path, shared_cache, dirs, capsys):
    os.mkfifo(os.path.join(dirs['locks'], _agent.lock_name(_agent.lock_key('shared', os.path.realpath(shared_cache)))))
    path = locked_config(tmp_path, shared_cache, dirs)
    code, out, _err = run(['--config', path, '--shared'], capsys)
    assert code == _agent.EXIT_FAILED and 'not a regular file' in out[0]
    assert len(action_files(shared_cache)) == 10


def test_lock_directory_is_made_private(tmp_path):
    directory = str(tmp_path / 'locks')
    fd, path = _agent.lock_directory(directory)
    assert path == directory
    try:
        assert os.path.samestat(os.fstat(fd), os.stat(directory))
    finally:
        os.close(fd)
    assert stat.S_IMODE(os.stat(directory).st_mode) == 0o700


@pytest.mark.parametrize('mode', [0o1777, 0o775, 0o757])
def test_a_lock_directory_others_may_write_is_refused(tmp_path, mode):
    directory = str(tmp_path / 'locks')
    os.mkdir(directory)
    os.chmod(directory, mode)
    with pytest.raises(OptionError) as raised:
        _agent.lock_directory(directory)
    assert raised.value.option == 'lock_dir' and 'another account could write there' in str(raised.value)


@as_root
def test_a_lock_directory_another_account_owns_is_refused(tmp_path):
    directory = str(tmp_path / 'locks')
    os.mkdir(directory)
    os.chown(directory, pwd.getpwnam('nobody').pw_uid, -1)
    with pytest.raises(OptionError) as raised:
        _agent.lock_directory(directory)
    assert raised.value.option == 'lock_dir'


# --------------------------------------------------------------------------- exit codes and priority


@pytest.mark.parametrize('state,result,code', [
    ('done', {'errors_total': 0, 'busy': None}, _agent.EXIT_OK),
    ('done', {'errors_total': 2, 'busy': None}, _agent.EXIT_FAILED),
    ('done', {'errors_total': 0, 'busy': ['compile']}, _agent.EXIT_BUSY),
    ('done', {'errors_total': 1, 'busy': ['go']}, _agent.EXIT_FAILED),
    ('missing', None, _agent.EXIT_OK),
    ('locked', None, _agent.EXIT_BUSY),
    ('failed', None, _agent.EXIT_FAILED),
])
def test_exit_code_per_cache(state, result, code):
    assert _agent.exit_code({'state': state, 'result': result}) == code


def test_lower_priority_makes_the_process_idle():
    script = '\n'.join([
        'import ctypes, os, platform',
        'from ansible_collections.gofleet.cache.plugins.module_utils import _agent',
        '_agent.lower_priority()',
        'number = {"x86_64": 252, "aarch64": 31}.get(platform.machine())',
        'ioprio = ctypes.CDLL(None, use_errno=True).syscall(number, 1, 0) if number else -1',
        'print(os.getpriority(os.PRIO_PROCESS, 0), ioprio)',
    ])
    out = subprocess.run([sys.executable, '-c', script], env=dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path)),
                         stdout=subprocess.PIPE, universal_newlines=True, check=True).stdout.split()
    assert int(out[0]) == 19
    if int(out[1]) < 0:
        pytest.skip('ioprio_get not available here')
    assert int(out[1]) >> _agent.IOPRIO_CLASS_SHIFT == _agent.IOPRIO_CLASS_IDLE
