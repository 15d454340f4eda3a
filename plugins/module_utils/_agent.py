# -*- coding: utf-8 -*-
# Copyright (c) gofleet.cache contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

"""The on-host cleanup agent: `gofleet-cache-agent`, run by cron, a systemd timer or by hand.

It prunes with the very engine go_cache_prune uses (_prune_run.resolve_targets,
_prune_run.run, _prune.Policy): the role copies these module_utils files to the
host.  What it adds is what an unattended job needs: a policy file, a lock per
cache so that runs never overlap, idle CPU and I/O priority, one log line per
cache to syslog (the journal under systemd), Prometheus textfile metrics and
exit codes a scheduler can act on.

Pure standard library, Python 3.8+, no Ansible imports.
"""

from __future__ import annotations

import argparse
import ctypes
import errno
import fcntl
import hashlib
import json
import os
import platform
import pwd
import re
import stat
import sys
import tempfile
import time

from ansible_collections.gofleet.cache.plugins.module_utils import _facts
from ansible_collections.gofleet.cache.plugins.module_utils import _fs
from ansible_collections.gofleet.cache.plugins.module_utils import _locate
from ansible_collections.gofleet.cache.plugins.module_utils import _metrics
from ansible_collections.gofleet.cache.plugins.module_utils import _prune
from ansible_collections.gofleet.cache.plugins.module_utils import _prune_run
from ansible_collections.gofleet.cache.plugins.module_utils import _users
from ansible_collections.gofleet.cache.plugins.module_utils._units import OptionError, format_bytes

try:
    import syslog
except ImportError:  # pragma: no cover - not on Windows, where the PowerShell agent runs instead
    syslog = None

PROG = 'gofleet-cache-agent'
DEFAULT_CONFIG = '/etc/gofleet-cache/agent.json'
# Root's lock directory when none is configured: in /run, where only root makes names (not /run/lock, which
# everyone may write: an account could make the name first after a reboot); see private_dir.
DEFAULT_LOCK_DIR = '/run/gofleet-cache'
LOCK_POLL_S = 0.5

# Exit codes, from the most to the least serious; a run exits with the most serious that applies.
EXIT_OK = 0        # every cache pruned by policy (or nothing to do)
EXIT_FAILED = 1    # some paths or caches failed; the rest was pruned
EXIT_CONFIG = 2    # bad config or usage: nothing was touched
EXIT_BUSY = 3      # a cache was left (partly) alone: its lock was held or Go builds kept running
EXIT_SEVERITY = (EXIT_CONFIG, EXIT_FAILED, EXIT_BUSY, EXIT_OK)

# The go_cache_prune options a policy file may hold (state is not one: a schedule never empties caches).
POLICY_OPTIONS = ('remove_incomplete', 'max_age', 'keep_versions', 'max_size', 'min_free', 'keep_recent', 'keep',
                  'keep_referenced', 'if_busy', 'busy_timeout')
TARGET_OPTIONS = ('kinds', 'go')
AGENT_OPTIONS = ('caches', 'metrics_dir', 'lock_dir')
CONFIG_OPTIONS = POLICY_OPTIONS + TARGET_OPTIONS + AGENT_OPTIONS
LIST_OPTIONS = ('kinds', 'keep', 'keep_referenced', 'caches')

# ioprio_set(2) has no libc wrapper; syscall numbers per architecture.
IOPRIO_SET = {'x86_64': 251, 'amd64': 251, 'i386': 289, 'i686': 289, 'aarch64': 30, 'arm64': 30, 'riscv64': 30,
              'armv7l': 314, 'armv6l': 314, 'ppc64le': 273, 'ppc64': 273, 's390x': 282}
IOPRIO_WHO_PROCESS = 1
IOPRIO_CLASS_IDLE = 3
IOPRIO_CLASS_SHIFT = 13

USAGE_EPILOG = '''\
exit status:
  0  every cache was pruned by the policy, or had nothing to prune
  1  some paths or caches could not be pruned (see the log); the rest was
  2  bad configuration or usage; nothing was touched
  3  a cache was skipped or left partly alone because another run held its
     lock or Go builds kept running (if_busy, busy_timeout)

Each cache gets one line on stdout (unless --quiet) and in syslog (ident
gofleet-cache-agent; the journal under systemd).  With metrics_dir set, a real
run replaces metrics_dir/gofleet_cache_user_<name>.prom (or
gofleet_cache_shared.prom for --shared) for node_exporter's textfile collector.
'''


class Config(object):
    """A validated policy file."""

    def __init__(self, policy, kinds, go, caches, metrics_dir, lock_dir, path):
        self.policy = policy
        self.kinds = kinds
        self.go = go
        self.caches = caches
        self.metrics_dir = metrics_dir
        self.lock_dir = lock_dir
        self.path = path


def _absolute_or_none(data, option):
    value = data.get(option)
    if value is not None and (not isinstance(value, str) or not os.path.isabs(value)):
        raise OptionError(option, value, 'expected an absolute path')
    return value


def parse_config(data, path='<config>'):
    """A Config from the decoded JSON; OptionError naming the option and value for anything wrong.

    The checks are the engine's own: _prune.Policy for the policy, and
    _facts.normalize_options for kinds, go and the shared caches.
    """
    if not isinstance(data, dict):
        raise OptionError('config', path, 'expected a JSON object of options')
    for key in data:
        if key not in CONFIG_OPTIONS:
            raise OptionError(key, data[key], 'unknown option (expected one of %s)' % ', '.join(CONFIG_OPTIONS))
    for key in LIST_OPTIONS:
        # A string would be taken character by character.
        if data.get(key) is not None and not isinstance(data[key], list):
            raise OptionError(key, data[key], 'expected a list')
    # null means "not set", as an omitted module option.
    policy = _prune.Policy(**dict((key, data[key]) for key in POLICY_OPTIONS if data.get(key) is not None))
    kinds = data.get('kinds')
    caches = data.get('caches') or []
    go = data.get('go') or 'auto'
    _accounts, explicit, kinds, go, _buckets, _top = _facts.normalize_options(
        users=[], caches=caches, kinds=['build'] if kinds is None else kinds, go=go)
    seen = set()
    for cache_path, _kind in explicit:
        if cache_path in seen:
            # Two jobs' worth of metrics for one cache would make node_exporter reject the file.
            raise OptionError('caches', cache_path, 'listed twice')
        seen.add(cache_path)
    return Config(policy, kinds, go, explicit, _absolute_or_none(data, 'metrics_dir'),
                  _absolute_or_none(data, 'lock_dir'), path)


def load_config(path):
    try:
        with open(path, 'rb') as handle:
            data = json.loads(handle.read().decode('utf-8'))
    except (OSError, IOError) as exc:
        raise OptionError('--config', path, exc.strerror or str(exc))
    except ValueError as exc:
        raise OptionError('--config', path, 'not valid JSON: %s' % exc)
    return parse_config(data, path)


# --------------------------------------------------------------------------- priority


def lower_priority():
    """Idle CPU (nice 19) and idle I/O class for this process and the threads it starts.

    Failures are ignored: the unit or cron line may already have set them, and a
    container may forbid ioprio_set.
    """
    try:
        os.setpriority(os.PRIO_PROCESS, 0, 19)
    except (AttributeError, OSError):
        pass
    number = IOPRIO_SET.get(platform.machine().lower())
    if number is None:
        return
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.syscall(number, IOPRIO_WHO_PROCESS, 0, IOPRIO_CLASS_IDLE << IOPRIO_CLASS_SHIFT)
    except (AttributeError, OSError):
        pass


# --------------------------------------------------------------------------- locks


def private_dir(path, option, create=True):
    """fd of a directory only this run's identity may change: owned by root or by us, not writable by others.

    Lock files and metrics live there, so that no account can hold, swap
    or pre-create them (SECURITY.md).  Made with mode 0700 when missing
    (`create`); an existing one that others could write is refused, naming
    the option.  As root it is opened without following links an account
    controls.
    """
    me = os.geteuid()
    if create:
        try:
            os.mkdir(path, 0o700)
        except OSError as exc:
            if exc.errno != errno.EEXIST:
                raise OptionError(option, path, exc.strerror or str(exc))
    try:
        fd = _fs.open_trusted_path(path) if me == 0 else _fs.open_dir(path)
    except OSError as exc:
        raise OptionError(option, path, '%s: %s' % (_fs.printable(exc.filename or path), exc.strerror or exc))
    st = os.fstat(fd)
    if st.st_uid not in (0, me) or st.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        os.close(fd)
        raise OptionError(option, path, 'owned by %s with mode %04o: another account could write there; it must '
                          'belong to root (or to the account running the agent) and be writable by it alone'
                          % (_owner_of_uid(st.st_uid), stat.S_IMODE(st.st_mode)))
    return fd


def metrics_directory(path):
    """fd of metrics_dir.  Root replaces its files through this fd with a fresh temporary name and a rename,
    which no file an account planted there can redirect or outlast; an account running the agent for itself
    needs a directory nobody else writes (private_dir), or others could squat its file."""
    if os.geteuid() != 0:
        return private_dir(path, 'metrics_dir', create=False)
    try:
        return _fs.open_trusted_path(path)
    except OSError as exc:
        raise OptionError('metrics_dir', path, '%s: %s' % (_fs.printable(exc.filename or path), exc.strerror or exc))


def _owner_of_uid(uid):
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return str(uid)


def default_lock_dir():
    """Root's locks in /run (root only); an account's own in its runtime directory or its own temp directory."""
    if os.geteuid() == 0:
        return DEFAULT_LOCK_DIR
    runtime = os.environ.get('XDG_RUNTIME_DIR')
    if runtime and os.path.isabs(runtime):
        return os.path.join(runtime, 'gofleet-cache')
    return os.path.join(tempfile.gettempdir(), 'gofleet-cache-%d' % os.geteuid())


def lock_directory(configured=None):
    """(fd, path) of the directory holding the cache locks: `configured`, else default_lock_dir()."""
    path = configured or default_lock_dir()
    return private_dir(path, 'lock_dir'), path


def lock_key(job, real_path):
    """What a cache's lock is named after: the job (an account or `shared`) and the cache's physical path."""
    return '%s:%s' % (job, real_path)


def lock_name(path):
    """A lock file name per cache, readable and unique: the path's tail plus a hash of the whole."""
    digest = hashlib.sha256(path.encode('utf-8', 'surrogateescape')).hexdigest()[:16]
    readable = re.sub(r'[^A-Za-z0-9._-]+', '_', path.strip('/'))[-60:]
    return '%s-%s.lock' % (readable, digest)


class CacheLock(object):
    """flock(2) on a per-cache file: exclusive for a real run, shared for a dry run.

    The file lives in a directory only this identity writes (private_dir), so
    no account can hold it; it is still opened without following a link or
    blocking, and must be a regular file.
    """

    def __init__(self, dir_fd, path, exclusive=True, directory=''):
        self.dir_fd = dir_fd
        self.name = lock_name(path)
        self.path = os.path.join(directory, self.name)  # for logs: the file is only ever opened by name in dir_fd
        self.exclusive = exclusive
        self.fd = None

    def _open(self):
        flags = os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK | getattr(os, 'O_CLOEXEC', 0)
        fd = os.open(self.name, flags, 0o600, dir_fd=self.dir_fd)
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            os.close(fd)
            raise OSError(errno.EINVAL, 'not a regular file', self.name)
        return fd

    def acquire(self, timeout, clock=time.monotonic, sleep=time.sleep):
        """True once locked; False when still held by another run after `timeout` seconds."""
        self.fd = self._open()
        operation = (fcntl.LOCK_EX if self.exclusive else fcntl.LOCK_SH) | fcntl.LOCK_NB
        deadline = clock() + timeout
        while True:
            try:
                fcntl.flock(self.fd, operation)
                return True
            except OSError as exc:
                if exc.errno not in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
                    self.release()
                    raise
            remaining = deadline - clock()
            if remaining <= 0:
                self.release()
                return False
            sleep(min(LOCK_POLL_S, remaining))

    def release(self):
        if self.fd is not None:
            os.close(self.fd)  # closing drops the flock
            self.fd = None


# --------------------------------------------------------------------------- logging


class Log(object):
    """One line per cache to stdout (unless quiet) and to syslog; problems also to stderr."""

    def __init__(self, quiet=False, use_syslog=True, stdout=None, stderr=None):
        self.quiet = quiet
        self.stdout = stdout or sys.stdout
        self.stderr = stderr or sys.stderr
        self.use_syslog = use_syslog and syslog is not None
        if self.use_syslog:
            syslog.openlog(PROG, syslog.LOG_PID, syslog.LOG_USER)

    def line(self, text, level='info'):
        if not self.quiet:
            self.stdout.write(text + '\n')
            self.stdout.flush()
        if self.use_syslog:
            priority = {'info': syslog.LOG_INFO, 'warning': syslog.LOG_WARNING, 'error': syslog.LOG_ERR}[level]
            syslog.syslog(priority, text)

    def error(self, text):
        """A run-level problem (bad config, unwritable metrics): stderr and syslog, even when quiet."""
        self.stderr.write('%s: error: %s\n' % (PROG, text))
        self.stderr.flush()
        if self.use_syslog:
            syslog.syslog(syslog.LOG_ERR, 'error: ' + text)

    def close(self):
        if self.use_syslog:
            syslog.closelog()


def _kept_text(kept):
    return ' '.join('%s=%d' % (reason, count) for reason, count in sorted(kept.items())) or 'nothing'


def cache_line(outcome, dry_run):
    """The log line of one cache: what went (or would), what stayed and why, how long it took."""
    head = '%s %s %s: ' % (outcome['job_user'], outcome['kind'], _fs.printable(outcome['path']))
    if outcome['state'] == 'locked':
        return head + 'skipped: another %s run held %s for %.0fs' % (PROG, outcome['lock'], outcome['duration'])
    if outcome['state'] == 'failed':
        return head + 'failed: %s' % _fs.printable(outcome['message'])
    if outcome['state'] == 'skipped':
        return head + 'left alone: %s' % _fs.printable(outcome['message'])
    if outcome['state'] == 'missing':
        return head + 'no cache yet, nothing to prune'
    result = outcome['result']
    verb = 'would remove' if dry_run else 'removed'
    text = head + '%s %d entries (%s) of %s, %s left; kept %s' % (
        verb, result['removed_entries'], format_bytes(result['removed_bytes']), format_bytes(result['before_bytes']),
        format_bytes(result['after_bytes']), _kept_text(result['kept']))
    if result['busy']:
        processes = ', '.join(sorted(set(result['busy'])))
        text += '; Go builds running (%s): %d entries left' % (processes, result['kept'].get(_prune.BUSY, 0))
    if result['errors_total']:
        first = result['errors'][0] if result['errors'] else {}
        text += '; %d paths failed, first %s: %s' % (result['errors_total'], first.get('path'), first.get('error'))
    return text + '; %.1fs' % outcome['duration']


# --------------------------------------------------------------------------- one run


def _targets(config, account, shared):
    """(targets, unlocated) as go_cache_prune resolves them for a user or the explicit shared caches."""
    if shared:
        targets = []
        for path, kind in config.caches:
            targets.extend(_prune_run.resolve_targets(path=path, kind=kind)[0])
        return targets, []
    return _prune_run.resolve_targets(account.pw_name, config.kinds, go=config.go)


def _outcome(target, state, message=None):
    return {'target': target, 'path': target.path, 'kind': target.kind, 'state': state, 'result': None,
            'message': message, 'lock': None, 'duration': 0.0, 'ended': time.time()}


def prune_one(target, config, lock_dir, dry_run, freed_on_device, job):
    """Prune one cache under its lock; an outcome dict for the log line, the metrics and the exit code.

    `lock_dir`: (fd, path) of the lock directory (lock_directory).  The lock is named after the job and the
    cache's physical path as the check found it, never after the account's setting: an account's text can
    name another job's cache (`../`), and a lock shared across jobs would let one job hold another's.
    """
    started = time.monotonic()
    outcome = _outcome(target, 'done')
    lock = CacheLock(lock_dir[0], lock_key(job, target.real or os.path.normpath(target.path)),
                     exclusive=not dry_run, directory=lock_dir[1])
    outcome['lock'] = lock.path
    # if_busy=skip does not wait for another run either; wait and proceed wait up to busy_timeout
    # (proceed ignores Go builds, never a second prune of the same cache).
    timeout = 0 if config.policy.if_busy == 'skip' else config.policy.busy_timeout
    try:
        if not lock.acquire(timeout):
            outcome['state'] = 'locked'
        else:
            try:
                state, value = _prune_run.prune_checked(target, config.policy, dry_run, time.time(),
                                                        freed_on_device)
            finally:
                lock.release()
            if state == _locate.MISSING:  # removed since the up-front check
                outcome['state'] = 'missing'
            elif state == _locate.SKIPPED:  # changed hands since the up-front check
                outcome['state'] = 'skipped'
                outcome['message'] = value
            else:
                outcome['result'] = value
    except (OSError, OptionError) as exc:
        # OptionError here: the cache changed after the up-front check (e.g. it was removed).
        outcome['state'] = 'failed'
        outcome['message'] = str(exc)
    outcome['duration'] = time.monotonic() - started
    outcome['ended'] = time.time()
    return outcome


def exit_code(outcome):
    if outcome['state'] in ('failed', 'skipped'):
        return EXIT_FAILED
    if outcome['state'] == 'locked':
        return EXIT_BUSY
    result = outcome['result']
    if result is None:
        return EXIT_OK
    if result['errors_total']:
        return EXIT_FAILED
    if result['busy']:
        return EXIT_BUSY
    return EXIT_OK


def metrics_sample(outcome, scope):
    """Labels and values of one cache for _metrics.render, measured after the run (as the cache's owner)."""
    target = outcome['target']
    facts = {}
    if outcome['state'] != 'skipped':
        facts = _facts.scan_target(target, age_buckets=(), top=0, link_entries=False)
    result = outcome['result'] or {}
    code = exit_code(outcome)
    fs = facts.get('filesystem') or {}
    return {
        'user': outcome['job_user'] if scope == 'user' else (facts.get('owner') or ''),
        'kind': outcome['kind'], 'path': _fs.printable(outcome['path']), 'scope': scope,
        'size_bytes': facts.get('bytes', 0), 'entries': facts.get('entries', 0),
        'removed_bytes': result.get('removed_bytes', 0), 'removed_entries': result.get('removed_entries', 0),
        'errors': result.get('errors_total', 1 if outcome['state'] in ('failed', 'skipped') else 0),
        'busy': 1 if code == EXIT_BUSY else 0, 'success': 1 if code == EXIT_OK else 0,
        'timestamp': round(outcome['ended'], 3), 'duration': round(outcome['duration'], 3),
        'fs_size_bytes': fs.get('size_bytes'), 'fs_free_bytes': fs.get('free_bytes'),
        'fs_free_inodes': fs.get('inodes_free'),
    }


def write_metrics(config, outcomes, job, scope):
    """Replace the job's .prom file in metrics_dir with one sample per cache."""
    return _write_prom(config.metrics_dir, job, [metrics_sample(outcome, scope) for outcome in outcomes
                                                 if outcome['path']])


def _write_prom(metrics_dir, job, samples):
    """Replace the job's .prom file in metrics_dir, a directory no other account may write (private_dir)."""
    dir_fd = metrics_directory(metrics_dir)
    try:
        return _metrics.write_atomic(dir_fd, metrics_dir, _metrics.file_name(job), _metrics.render(samples))
    finally:
        os.close(dir_fd)


def job_name(args, account_name):
    """The job a run is ('shared' or 'user_<account>'): its metrics file is named for it."""
    return 'shared' if args.shared else 'user_' + account_name


def write_failure_metrics(args, log, me):
    """After a configuration error, one sample with success 0 in the job's .prom file, when the policy file names
    a usable metrics_dir: a job that cannot run must show on the dashboards and fire the alerts, not go quiet."""
    try:
        with open(args.config, 'rb') as handle:
            metrics_dir = json.loads(handle.read().decode('utf-8')).get('metrics_dir')
    except (OSError, IOError, ValueError, AttributeError):
        return
    if not isinstance(metrics_dir, str) or not os.path.isabs(metrics_dir):
        return
    account_name = args.user or me.pw_name
    sample = {'user': '' if args.shared else account_name, 'kind': '', 'path': '',
              'scope': 'shared' if args.shared else 'user', 'errors': 1, 'busy': 0, 'success': 0,
              'timestamp': round(time.time(), 3), 'duration': 0}
    try:
        _write_prom(metrics_dir, job_name(args, account_name), [sample])
    except (OSError, OptionError) as exc:
        log.error('metrics_dir %s: %s' % (metrics_dir, exc))


def build_parser():
    parser = argparse.ArgumentParser(
        prog=PROG, formatter_class=argparse.RawDescriptionHelpFormatter, epilog=USAGE_EPILOG,
        description='Prune Go build, module and fuzz caches by the policy in a JSON file, with the engine of '
                    'gofleet.cache.go_cache_prune. Installed and scheduled by the gofleet.cache.cleanup_schedule '
                    'role.')
    parser.add_argument('--config', default=DEFAULT_CONFIG, metavar='PATH',
                        help='policy file (default: %(default)s)')
    target = parser.add_mutually_exclusive_group()
    target.add_argument('--user', metavar='NAME',
                        help="prune this account's caches (default: the account running the agent; "
                             'another account needs root)')
    target.add_argument('--shared', action='store_true', help="prune the policy file's shared caches instead")
    parser.add_argument('--dry-run', action='store_true',
                        help='report what a real run would remove; remove nothing, write no metrics')
    parser.add_argument('--check-config', action='store_true',
                        help='validate the policy file (and --user) and exit: 0 valid, 2 not')
    parser.add_argument('--quiet', action='store_true', help='no summary on stdout (syslog only)')
    return parser


def main(argv=None, use_syslog=True, idle=True):
    """Run the agent; returns the exit status (see USAGE_EPILOG).

    `idle=False` keeps the caller's priority (tests run the agent in-process).
    """
    args = build_parser().parse_args(argv)
    if idle:
        lower_priority()
    log = Log(args.quiet, use_syslog)
    try:
        return _main(args, log)
    finally:
        log.close()


def _main(args, log):
    me = _users.current_account()
    try:
        config = load_config(args.config)
        account = None
        if not args.shared:
            account = me if args.user is None else _users.lookup(args.user, '--user')
            if account.pw_uid != me.pw_uid and me.pw_uid != 0:
                raise OptionError('--user', args.user, "only root may prune another account's caches (running as "
                                  '%s)' % me.pw_name)
        if args.check_config:
            log.line('%s: valid policy for %s' % (config.path, 'shared caches' if args.shared else account.pw_name))
            return EXIT_OK
        targets, unlocated = _targets(config, account, args.shared)
        # Every root is checked before any is touched, as go_cache_prune does.
        checked, _missing, skipped = _prune_run.check_targets(targets)
        lock_dir = lock_directory(config.lock_dir)
        if config.metrics_dir and not args.dry_run:
            os.close(metrics_directory(config.metrics_dir))
    except OptionError as exc:
        log.error(str(exc))
        if not (args.dry_run or args.check_config):
            write_failure_metrics(args, log, me)
        return EXIT_CONFIG
    try:
        outcomes = _run_targets(args, log, config, account, targets, unlocated, checked, skipped, lock_dir)
    finally:
        os.close(lock_dir[0])
    codes = set(exit_code(outcome) for outcome in outcomes)
    if config.metrics_dir and not args.dry_run:
        try:
            write_metrics(config, outcomes, job_name(args, None if args.shared else account.pw_name),
                          'shared' if args.shared else 'user')
        except (OSError, OptionError) as exc:
            log.error('metrics_dir %s: %s' % (config.metrics_dir, exc))
            codes.add(EXIT_FAILED)
    return next(code for code in EXIT_SEVERITY if code in codes) if codes else EXIT_OK


def _run_targets(args, log, config, account, targets, unlocated, checked, skipped, lock_dir):
    """Prune the checked targets one at a time, logging each cache's line as it is done."""
    job_user = 'shared' if args.shared else account.pw_name
    reasons = dict(((item['path'], item['kind']), item['reason']) for item in skipped)
    outcomes = []
    freed_on_device = {}
    work = [(None, item) for item in unlocated] + [(target, None) for target in targets]
    for target, unplaced in work:
        if unplaced is not None:
            # Go has no place for that cache (unset, relative): nothing to lock or prune, its metrics say 0.
            outcome = _outcome(_locate.Target(unplaced['path'] or '', unplaced['kind'], account), 'missing')
            outcome['path'] = unplaced['path']
        elif target in checked:
            outcome = prune_one(target, config, lock_dir, args.dry_run, freed_on_device, job_user)
        elif (_fs.printable(target.path), target.kind) in reasons:
            outcome = _outcome(target, 'skipped', reasons[(_fs.printable(target.path), target.kind)])
        else:
            # An account without that cache (yet): nothing to lock or prune, its metrics say 0.
            outcome = _outcome(target, 'missing')
        outcome['job_user'] = job_user
        code = exit_code(outcome)
        log.line(cache_line(outcome, args.dry_run),
                 'info' if code == EXIT_OK else 'warning' if code == EXIT_BUSY else 'error')
        outcomes.append(outcome)
    return outcomes
