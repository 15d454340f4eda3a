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
# Shared by every account's jobs (mode 1777, like /tmp): the lock of a cache must be
# the same file whoever prunes it.  /run/lock is a tmpfs every account may write.
DEFAULT_LOCK_DIRS = ('/run/lock/gofleet-cache', os.path.join(tempfile.gettempdir(), 'gofleet-cache-locks'))
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


def _shared_dir(path):
    """Create (mode 1777) or accept a lock directory; OSError when it is not safe to use.

    An existing one must be a real directory owned by root or by us: a lock
    directory another account owns could have our lock files swapped.
    """
    try:
        os.mkdir(path, 0o1777)
        os.chmod(path, 0o1777)  # mkdir's mode is masked by the umask
    except OSError as exc:
        if exc.errno != errno.EEXIST:
            raise
    st = os.lstat(path)
    if not stat.S_ISDIR(st.st_mode) or st.st_uid not in (0, os.geteuid()):
        raise OSError(errno.EPERM, 'not a directory owned by root or by this account', path)
    return path


def lock_directory(configured=None):
    """The directory holding the cache locks: `configured`, else the first usable default."""
    if configured:
        try:
            return _shared_dir(configured)
        except OSError as exc:
            raise OptionError('lock_dir', configured, exc.strerror or str(exc))
    error = None
    for candidate in DEFAULT_LOCK_DIRS:
        try:
            return _shared_dir(candidate)
        except OSError as exc:
            error = exc
    raise OptionError('lock_dir', DEFAULT_LOCK_DIRS[0], 'no usable lock directory: %s' % error)


def lock_name(real_path):
    """A lock file name per cache, readable and unique: the path's tail plus a hash of the whole."""
    digest = hashlib.sha256(real_path.encode('utf-8', 'surrogateescape')).hexdigest()[:16]
    readable = re.sub(r'[^A-Za-z0-9._-]+', '_', real_path.strip('/'))[-60:]
    return '%s-%s.lock' % (readable, digest)


class CacheLock(object):
    """flock(2) on a per-cache file: exclusive for a real run, shared for a dry run.

    Lock files live in a directory every account writes (sticky, like /tmp),
    so a file may belong to another account: it is opened read-only (flock
    needs no more), without O_CREAT first (fs.protected_regular forbids O_CREAT
    on another account's file there) and never through a symbolic link.
    """

    def __init__(self, directory, real_path, exclusive=True):
        self.path = os.path.join(directory, lock_name(real_path))
        self.exclusive = exclusive
        self.fd = None

    def _open(self):
        flags = os.O_RDONLY | os.O_NOFOLLOW | getattr(os, 'O_CLOEXEC', 0)
        while True:
            try:
                return os.open(self.path, flags)
            except OSError as exc:
                if exc.errno != errno.ENOENT:
                    raise
            try:
                fd = os.open(self.path, flags | os.O_CREAT | os.O_EXCL, 0o644)
                os.fchmod(fd, 0o644)
                return fd
            except OSError as exc:
                if exc.errno != errno.EEXIST:
                    raise
                # Created by another run meanwhile: open that one.

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
    head = '%s %s %s: ' % (outcome['job_user'], outcome['kind'], outcome['path'])
    if outcome['state'] == 'locked':
        return head + 'skipped: another %s run held %s for %.0fs' % (PROG, outcome['lock'], outcome['duration'])
    if outcome['state'] == 'failed':
        return head + 'failed: %s' % outcome['message']
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


def _owner_name(path):
    try:
        return pwd.getpwuid(os.stat(path).st_uid).pw_name
    except (OSError, KeyError):
        return ''


def _targets(config, account, shared):
    """[(path, kind, busy uid, label)] as go_cache_prune resolves them for a user or explicit paths."""
    if shared:
        targets = []
        for path, kind in config.caches:
            targets.extend(_prune_run.resolve_targets(path=path, kind=kind))
        return targets
    return _prune_run.resolve_targets(account.pw_name, config.kinds, go=config.go)


def prune_one(target, config, lock_dir, dry_run, freed_on_device):
    """Prune one cache under its lock; an outcome dict for the log line, the metrics and the exit code."""
    path, kind, _uid, _label = target
    started = time.monotonic()
    outcome = {'path': path, 'kind': kind, 'state': 'done', 'result': None, 'message': None, 'lock': None}
    lock = CacheLock(lock_dir, os.path.realpath(path), exclusive=not dry_run)
    outcome['lock'] = lock.path
    # if_busy=skip does not wait for another run either; wait and proceed wait up to busy_timeout
    # (proceed ignores Go builds, never a second prune of the same cache).
    timeout = 0 if config.policy.if_busy == 'skip' else config.policy.busy_timeout
    try:
        if not lock.acquire(timeout):
            outcome['state'] = 'locked'
        else:
            try:
                result = _prune_run.run([target], config.policy, check_mode=dry_run, freed_on_device=freed_on_device)
            finally:
                lock.release()
            if result['missing']:  # removed since the up-front check
                outcome['state'] = 'missing'
            else:
                outcome['result'] = result['caches'][0]
    except (OSError, OptionError) as exc:
        # OptionError here: the cache changed after the up-front check (e.g. it was removed).
        outcome['state'] = 'failed'
        outcome['message'] = str(exc)
    outcome['duration'] = time.monotonic() - started
    outcome['ended'] = time.time()
    return outcome


def exit_code(outcome):
    if outcome['state'] == 'failed':
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
    """Labels and values of one cache for _metrics.render, measured after the run."""
    path = outcome['path']
    facts = _facts.scan_cache(path, outcome['kind'], age_buckets=(), top=0, link_entries=False)
    result = outcome['result'] or {}
    code = exit_code(outcome)
    fs = facts.get('filesystem') or {}
    return {
        'user': outcome['job_user'] if scope == 'user' else (facts.get('owner') or _owner_name(path)),
        'kind': outcome['kind'], 'path': path, 'scope': scope,
        'size_bytes': facts['bytes'], 'entries': facts['entries'],
        'removed_bytes': result.get('removed_bytes', 0), 'removed_entries': result.get('removed_entries', 0),
        'errors': result.get('errors_total', 1 if outcome['state'] == 'failed' else 0),
        'busy': 1 if code == EXIT_BUSY else 0, 'success': 1 if code == EXIT_OK else 0,
        'timestamp': round(outcome['ended'], 3), 'duration': round(outcome['duration'], 3),
        'fs_size_bytes': fs.get('size_bytes'), 'fs_free_bytes': fs.get('free_bytes'),
        'fs_free_inodes': fs.get('inodes_free'),
    }


def write_metrics(config, outcomes, job, scope, account):
    samples = [metrics_sample(outcome, scope) for outcome in outcomes if outcome['path']]
    owner = None
    if os.geteuid() == 0 and account is not None and account.pw_uid != 0:
        owner = (account.pw_uid, account.pw_gid)
    return _metrics.write_atomic(config.metrics_dir, _metrics.file_name(job), _metrics.render(samples), owner)


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
        targets = _targets(config, account, args.shared)
        # Every root is checked before any is touched, as go_cache_prune does.
        checked, _missing = _prune_run.check_targets(targets)
        lock_dir = lock_directory(config.lock_dir)
        if config.metrics_dir and not args.dry_run and not os.path.isdir(config.metrics_dir):
            raise OptionError('metrics_dir', config.metrics_dir, 'no such directory')
    except OptionError as exc:
        log.error(str(exc))
        return EXIT_CONFIG
    job_user = 'shared' if args.shared else account.pw_name
    outcomes = []
    freed_on_device = {}
    for target in targets:
        if target in checked:
            outcome = prune_one(target, config, lock_dir, args.dry_run, freed_on_device)
        else:
            # An account without that cache (yet): nothing to lock or prune, its metrics say 0.
            outcome = {'path': target[0] or None, 'kind': target[1], 'state': 'missing', 'result': None,
                       'duration': 0.0, 'ended': time.time()}
        outcome['job_user'] = job_user
        code = exit_code(outcome)
        log.line(cache_line(outcome, args.dry_run),
                 'info' if code == EXIT_OK else 'warning' if code == EXIT_BUSY else 'error')
        outcomes.append(outcome)
    codes = set(exit_code(outcome) for outcome in outcomes)
    if config.metrics_dir and not args.dry_run:
        try:
            write_metrics(config, outcomes, 'shared' if args.shared else 'user_' + account.pw_name,
                          'shared' if args.shared else 'user', account)
        except OSError as exc:
            log.error('metrics_dir %s: %s' % (config.metrics_dir, exc))
            codes.add(EXIT_FAILED)
    return next(code for code in EXIT_SEVERITY if code in codes) if codes else EXIT_OK
