# -*- coding: utf-8 -*-
# Copyright (c) gofleet.cache contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

"""Retention for Go caches that never breaks a build.

Flow per cache: verify the root -> wait while Go builds run -> scan once ->
plan (protections, then policies in order) -> remove unit by unit, re-checking
each unit's last use right before, watching for builds starting meanwhile.

Policies, in this order: remove_incomplete, max_age, keep_versions (module
caches), max_size, min_free.  Protections win over every policy: keep_recent,
keep (module globs), keep_referenced (go.sum/go.mod).  The plan is computed in
full before anything is removed, so check mode reports exactly what a real
run removes when nothing uses the cache in between.

Units of deletion are Go's: a build entry (`-a` first, then its `-d` once no
kept entry names it), a module version (under its `.lock`, `.ziphash` first,
`.lock` left, `@v/list` rewritten), a fuzz corpus file.  A run killed at any
point leaves every unit either whole or removed in an order Go treats as a
cache miss.
"""

from __future__ import annotations

import collections
import concurrent.futures
import errno
import fcntl
import fnmatch
import functools
import os
import pwd
import stat
import threading
import time
from array import array

from ansible_collections.gofleet.cache.plugins.module_utils import _buildcache
from ansible_collections.gofleet.cache.plugins.module_utils import _fs
from ansible_collections.gofleet.cache.plugins.module_utils import _modcache
from ansible_collections.gofleet.cache.plugins.module_utils import _procs
from ansible_collections.gofleet.cache.plugins.module_utils import _refs
from ansible_collections.gofleet.cache.plugins.module_utils import _semver
from ansible_collections.gofleet.cache.plugins.module_utils._units import (
    OptionError, parse_duration, parse_size, parse_size_or_percent)

KINDS = ('build', 'module', 'fuzz')
IF_BUSY = ('wait', 'skip', 'proceed')
STATES = ('present', 'absent')
SAMPLE_SIZE = 20
NS = 1000000000
# How often a running removal looks for Go processes that started meanwhile.
BUSY_RECHECK_S = 0.5
BUSY_POLL_S = 1.0
LOCK_WAIT_S = 2.0
# Build cache buckets removed at once (unlink is I/O; see _execute_in_parallel).
PRUNE_THREADS = _buildcache.SCAN_THREADS

# Unit classes in a plan.
UNIT = 0          # a complete unit: build entry, module version, corpus file
INCOMPLETE = 1    # dead build entry / orphan output, broken or partial module download

# Parts of a module version a unit removes.
ALL, GRAPH, TMP = 'all', 'graph', 'tmp'

# Why a unit stays.  Protections are checked in this order.
RECENT, KEEP, REFERENCED, RETAINED = 1, 2, 3, 4
REASONS = {RECENT: 'recent', KEEP: 'keep', REFERENCED: 'referenced', RETAINED: 'retained'}
# Removal outcomes decided at run time.
USED_SINCE_SCAN, LOCKED, FAILED, BUSY = 'used_since_scan', 'locked', 'error', 'busy'

# Directories that are never a cache root, whatever they contain.
SYSTEM_DIRS = frozenset(('/', '/bin', '/boot', '/dev', '/etc', '/home', '/lib', '/lib64', '/opt', '/proc',
                         '/root', '/run', '/sbin', '/srv', '/sys', '/tmp', '/usr', '/usr/local', '/var',
                         '/var/cache', '/var/lib', '/var/tmp', '/mnt', '/media'))


class Policy(object):
    """Validated prune options; every bad value raises OptionError before anything is touched."""

    def __init__(self, state='present', remove_incomplete=True, max_age=None, keep_versions=None, max_size=None,
                 min_free=None, keep_recent='1h', keep=None, keep_referenced=None, if_busy='wait',
                 busy_timeout='15m'):
        if state not in STATES:
            raise OptionError('state', state, 'expected one of %s' % ', '.join(STATES))
        if if_busy not in IF_BUSY:
            raise OptionError('if_busy', if_busy, 'expected one of %s' % ', '.join(IF_BUSY))
        if not isinstance(remove_incomplete, bool):
            raise OptionError('remove_incomplete', remove_incomplete, 'expected true or false')
        self.state = state
        self.remove_incomplete = remove_incomplete
        self.max_age = None if max_age is None else parse_duration(max_age, 'max_age')
        if keep_versions is not None and (isinstance(keep_versions, bool) or not isinstance(keep_versions, int)
                                          or keep_versions < 1):
            raise OptionError('keep_versions', keep_versions, 'expected an integer of at least 1')
        self.keep_versions = keep_versions
        self.max_size = None if max_size is None else parse_size(max_size, 'max_size')
        self.min_free = None if min_free is None else parse_size_or_percent(min_free, 'min_free')
        self.keep_recent = parse_duration(keep_recent, 'keep_recent')
        self.keep = []
        for pattern in keep or []:
            if not isinstance(pattern, str) or not pattern.strip():
                raise OptionError('keep', pattern, 'expected a module path glob such as example.com/internal/*')
            self.keep.append(pattern.strip())
        self.referenced_full, self.referenced_graph = _refs.collect(keep_referenced or [])
        self.if_busy = if_busy
        self.busy_timeout = parse_duration(busy_timeout, 'busy_timeout')

    def keeps_module(self, module, version):
        name = '%s@%s' % (module, version)
        return any(fnmatch.fnmatchcase(module, pattern) or fnmatch.fnmatchcase(name, pattern)
                   for pattern in self.keep)


def _home_dirs():
    homes = set()
    for entry in pwd.getpwall():
        if entry.pw_dir:
            homes.add(os.path.realpath(entry.pw_dir))
    return homes


def check_cache_path(path, option='path'):
    """Real path of a place a cache may be: absolute, neither a system directory nor a home directory."""
    if not path or not os.path.isabs(path):
        raise OptionError(option, path, 'a cache path must be absolute')
    real = os.path.realpath(path)
    if real in SYSTEM_DIRS or real.rstrip('/') == '':
        raise OptionError(option, path, 'refusing a system directory (%s)' % real)
    if real in _home_dirs():
        raise OptionError(option, path, 'refusing a home directory (%s)' % real)
    return real


def check_root(path, kind, option='path'):
    """Real path of a cache root that is safe to prune; OptionError naming the reason otherwise."""
    if kind not in KINDS:
        raise OptionError('kind', kind, 'expected one of %s' % ', '.join(KINDS))
    real = check_cache_path(path, option)
    if not os.path.isdir(real):
        raise OptionError(option, path, 'no such cache directory')
    fd = _fs.open_dir(real)
    try:
        if kind == 'build':
            valid = _buildcache.is_build_cache(fd)
        elif kind == 'module':
            valid = _modcache.is_module_cache(fd)
        else:
            valid = False
    finally:
        os.close(fd)
    if kind == 'fuzz':
        # The fuzz cache is GOCACHE/fuzz: its parent must be a build cache.
        parent_fd = _fs.open_dir(os.path.dirname(real))
        try:
            valid = os.path.basename(real) == _buildcache.FUZZ_DIR and _buildcache.is_build_cache(parent_fd)
        finally:
            os.close(parent_fd)
    if not valid:
        reason = {'build': "its README does not start with Go's build cache marker",
                  'module': 'it has no cache/download directory',
                  'fuzz': 'it is not the fuzz directory of a Go build cache'}[kind]
        raise OptionError(option, path, 'not a Go %s cache: %s' % (kind, reason))
    return real


class BusyGuard(object):
    """Waits while Go toolchain processes run (of `uid`, or of anyone when None)."""

    def __init__(self, policy, uid, clock=time.monotonic, sleep=time.sleep):
        self.policy = policy
        self.uid = uid
        self.clock = clock
        self.sleep = sleep
        self.deadline = None
        self.last_check = 0.0
        self.seen = []
        self.waited_s = 0.0

    def idle(self):
        """True when removal may go on now; waits up to busy_timeout (over the whole run) with if_busy=wait."""
        if self.policy.if_busy == 'proceed':
            return True
        started = self.clock()
        if self.deadline is None:
            self.deadline = started + self.policy.busy_timeout
        while True:
            processes = _procs.go_processes(self.uid)
            self.last_check = self.clock()
            if not processes:
                self.waited_s += self.last_check - started
                return True
            self.seen = processes
            if self.policy.if_busy == 'skip' or self.last_check >= self.deadline:
                self.waited_s += self.last_check - started
                return False
            self.sleep(min(BUSY_POLL_S, max(0.0, self.deadline - self.last_check)))

    def due(self):
        """Whether a periodic re-check is due (never with if_busy=proceed)."""
        return self.policy.if_busy != 'proceed' and self.clock() - self.last_check >= BUSY_RECHECK_S

    def busy_now(self):
        """One look at the processes, without waiting."""
        processes = _procs.go_processes(self.uid)
        self.last_check = self.clock()
        if processes:
            self.seen = processes
        return bool(processes)

    def still_idle(self):
        """Cheap periodic re-check during removal."""
        if self.policy.if_busy == 'proceed' or self.clock() - self.last_check < BUSY_RECHECK_S:
            return True
        return self.idle()


class Outcome(object):
    """What happened to one cache (or would, in check mode)."""

    def __init__(self, path, kind, before_bytes):
        self.path = path
        self.kind = kind
        self.before_bytes = before_bytes
        self.removed_entries = 0
        self.removed_bytes = 0
        self.removed_disk_bytes = 0
        self.kept = {}
        self.errors = _fs.ErrorLog()
        self.sample = []
        self.busy = None
        self.target_met = True

    def keep(self, reason, count=1):
        self.kept[reason] = self.kept.get(reason, 0) + count

    def removed(self, name, size, disk):
        """Count a removed unit; `name` may be a callable, made into text only for the sample."""
        self.removed_entries += 1
        self.removed_bytes += size
        self.removed_disk_bytes += disk
        if len(self.sample) < SAMPLE_SIZE:
            self.sample.append(name() if callable(name) else name)

    def merge(self, other):
        """Add a part's results (a bucket removed in a worker thread), in submission order."""
        self.removed_entries += other.removed_entries
        self.removed_bytes += other.removed_bytes
        self.removed_disk_bytes += other.removed_disk_bytes
        for reason, count in other.kept.items():
            self.keep(reason, count)
        self.errors.merge(other.errors)
        self.sample.extend(other.sample[:SAMPLE_SIZE - len(self.sample)])

    def as_dict(self):
        result = {'path': self.path, 'kind': self.kind, 'before_bytes': self.before_bytes,
                  'after_bytes': self.before_bytes - self.removed_bytes, 'removed_entries': self.removed_entries,
                  'removed_bytes': self.removed_bytes, 'kept': dict(self.kept), 'sample': list(self.sample),
                  'busy': self.busy, 'target_met': self.target_met}
        result.update(self.errors.as_result())
        return result


class Plan(object):
    """Per-unit decisions in compact arrays (a million-file cache stays within tens of MB)."""

    def __init__(self):
        self.last_used = array('q')
        self.size = array('q')
        self.disk = array('q')
        self.unit_class = bytearray()
        self.protect = bytearray()
        self.remove = bytearray()

    def add(self, last_used_ns, size, disk, unit_class, protect=0):
        self.last_used.append(last_used_ns)
        self.size.append(size)
        self.disk.append(disk)
        self.unit_class.append(unit_class)
        self.protect.append(protect)
        self.remove.append(0)

    def __len__(self):
        return len(self.remove)

    def removable(self, index):
        return not self.remove[index] and not self.protect[index]

    def select(self, policy, now, total_bytes, free_bytes, fs_size, groups=None):
        """Apply the policies in order; returns whether max_size/min_free targets can be met."""
        count = len(self)
        if policy.state == 'absent':
            for index in range(count):
                self.remove[index] = 1
            return True
        if policy.remove_incomplete:
            for index in range(count):
                if self.unit_class[index] == INCOMPLETE and not self.protect[index]:
                    self.remove[index] = 1
        if policy.max_age is not None:
            cutoff = (now - policy.max_age) * NS
            for index in range(count):
                if self.unit_class[index] == UNIT and self.last_used[index] < cutoff and self.removable(index):
                    self.remove[index] = 1
        if policy.keep_versions is not None and groups:
            for indexes in groups:
                # groups: unit indexes of one module, newest version first.
                for index in indexes[policy.keep_versions:]:
                    if self.removable(index):
                        self.remove[index] = 1
        met = True
        remaining = total_bytes - sum(self.size[index] for index in range(count) if self.remove[index])
        freed = sum(self.disk[index] for index in range(count) if self.remove[index])
        needs_size = policy.max_size is not None and remaining > policy.max_size
        target_free = None
        if policy.min_free is not None and free_bytes is not None:
            unit, amount = policy.min_free
            target_free = amount if unit == 'bytes' else int(fs_size * amount / 100.0)
        needs_free = target_free is not None and free_bytes + freed < target_free
        if needs_size or needs_free:
            # Least recently used first; the index breaks ties deterministically.
            candidates = sorted((index for index in range(count) if self.unit_class[index] == UNIT
                                 and self.removable(index)), key=lambda index: (self.last_used[index], index))
            for index in candidates:
                if not needs_size and not needs_free:
                    break
                self.remove[index] = 1
                remaining -= self.size[index]
                freed += self.disk[index]
                needs_size = policy.max_size is not None and remaining > policy.max_size
                needs_free = target_free is not None and free_bytes + freed < target_free
            met = not needs_size and not needs_free
        return met

    def count_kept(self, outcome):
        for index in range(len(self)):
            if not self.remove[index]:
                outcome.keep(REASONS[self.protect[index] or RETAINED])


def _protect_recent(policy, now, last_used_ns):
    return RECENT if policy.state == 'present' and last_used_ns > (now - policy.keep_recent) * NS else 0


def _remove_contents(fd, root_dev, errors, rel):
    """Remove everything inside an open directory (kept itself); False if anything stayed.

    Go makes module directories read-only: each is made writable before its
    entries are unlinked (root needs no such change, but keeps it harmless).
    Symbolic links are unlinked, never followed; other devices never entered.
    """
    ok = True
    try:
        st = os.fstat(fd)
        if st.st_dev != root_dev:
            errors.add(rel, OSError(errno.EXDEV, 'mount point inside the cache: left alone'))
            return False
        if not st.st_mode & stat.S_IWUSR:
            os.fchmod(fd, stat.S_IMODE(st.st_mode) | stat.S_IRWXU)
        for child, child_st in _fs.list_dir(fd):
            child_rel = rel + '/' + child
            if stat.S_ISDIR(child_st.st_mode):
                ok = remove_tree(fd, child, root_dev, errors, child_rel) and ok
            else:
                ok = _unlink(child, fd, errors, child_rel) and ok
    except OSError as exc:
        errors.add(rel, exc)
        ok = False
    return ok


def remove_tree(parent_fd, name, root_dev, errors, rel):
    """Remove a directory tree below parent_fd without following links or leaving the device."""
    try:
        fd = _fs.open_dir(name, parent_fd)
    except OSError as exc:
        errors.add(rel, exc)
        return False
    try:
        ok = _remove_contents(fd, root_dev, errors, rel)
    finally:
        os.close(fd)
    if ok:
        try:
            os.rmdir(name, dir_fd=parent_fd)
        except OSError as exc:
            errors.add(rel, exc)
            ok = False
    return ok


def _unlink(name, dir_fd, errors, rel):
    try:
        os.unlink(name, dir_fd=dir_fd)
        return True
    except OSError as exc:
        if exc.errno == errno.ENOENT:
            return True  # gone already: the goal is met
        errors.add(rel, exc)
        return False


def rewrite_version_list(at_v_fd, errors, rel):
    """@v/list = the versions whose .mod exists, semver-sorted, as Go's rewriteVersionList writes it."""
    try:
        versions = [name[:-len('.mod')] for name, st in _fs.list_dir(at_v_fd)
                    if name.endswith('.mod') and stat.S_ISREG(st.st_mode) and _semver.is_valid(name[:-4])]
        content = ''.join(version + '\n' for version in sorted(versions, key=_semver.sort_key)).encode()
        fd = os.open('list', os.O_RDWR | os.O_CREAT | getattr(os, 'O_NOFOLLOW', 0), 0o666, dir_fd=at_v_fd)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)  # Go's lockedfile.Edit locks the list file itself
            if os.read(fd, len(content) + 1) != content:
                os.ftruncate(fd, 0)
                os.pwrite(fd, content, 0)
            parent = os.fstat(at_v_fd)
            if os.geteuid() == 0 and os.fstat(fd).st_uid != parent.st_uid:
                os.fchown(fd, parent.st_uid, parent.st_gid)
        finally:
            os.close(fd)
    except OSError as exc:
        errors.add(rel, exc)


def _mtime_ns(name, dir_fd):
    try:
        return os.stat(name, dir_fd=dir_fd, follow_symlinks=False).st_mtime_ns
    except OSError:
        return None


class _CachePruner(object):
    """What every pruner shares: the open root, the policy, the clock, the busy guard."""

    def __init__(self, root_fd, root, policy, now, check_mode, guard):
        self.root_fd = root_fd
        self.root = root
        self.policy = policy
        self.now = now
        self.check_mode = check_mode
        self.guard = guard

    def open_rel_dir(self, rel):
        return _fs.open_rel_dir(self.root_fd, rel)


class _Control(object):
    """Shared by the main thread and the removal workers: pause (resume cleared) and stop."""

    def __init__(self):
        self.resume = threading.Event()
        self.resume.set()
        self.stop = False


class BuildCachePruner(_CachePruner):
    """Build cache: units are entries (see _buildcache)."""

    def __init__(self, root_fd, root, policy, now, check_mode, guard):
        super(BuildCachePruner, self).__init__(root_fd, root, policy, now, check_mode, guard)
        self.scan = _buildcache.BuildCacheScan(root_fd, keep_action_ids=True).run()
        self.outcome = Outcome(root, 'build', self.scan.bytes)
        self.dir_fds = {}

    def plan(self, free_bytes, fs_size):
        plan = Plan()
        for entries in self.scan.join_buckets():
            for entry in entries:
                last_used = entry.last_used_ns
                plan.add(last_used, entry.bytes, entry.disk_bytes, UNIT if entry.alive else INCOMPLETE,
                         _protect_recent(self.policy, self.now, last_used))
        self.outcome.target_met = plan.select(self.policy, self.now, self.scan.bytes, free_bytes, fs_size)
        plan.count_kept(self.outcome)
        return plan

    def _open_dirs(self):
        # All 256 up front: worker threads then only read this dict.
        for hex_prefix in _buildcache.HEX_DIRS:
            try:
                self.dir_fds[hex_prefix] = _fs.open_dir(hex_prefix, self.root_fd)
            except OSError:
                continue

    def _dir_fd(self, hex_prefix):
        fd = self.dir_fds.get(hex_prefix)
        if fd is None:
            raise OSError(errno.ENOENT, 'no such entry directory', hex_prefix)
        return fd

    def close(self):
        for fd in self.dir_fds.values():
            os.close(fd)
        self.dir_fds = {}

    def _chosen_buckets(self, plan):
        """(entries, chosen offsets) of every bucket with something to remove, in join order."""
        index = 0
        for entries in self.scan.join_buckets():
            first = index
            index += len(entries)
            chosen = [offset for offset in range(len(entries)) if plan.remove[first + offset]]
            if chosen:
                yield entries, chosen

    def execute(self, plan):
        self._open_dirs()
        try:
            if self.check_mode:
                for entries, chosen in self._chosen_buckets(plan):
                    self._remove_bucket(entries, chosen, self.outcome, None)
                return
            self._execute_in_parallel(plan)
            if self.policy.state == 'absent' and self.outcome.busy is None:
                self._sweep()
        finally:
            self.close()

    def _execute_in_parallel(self, plan):
        """Buckets are independent (every entry naming an output is in that output's bucket): remove
        several at once, since unlinking is I/O.  The main thread watches for Go processes and pauses
        the workers, which look at `control` before every entry, while it waits."""
        control = _Control()
        window = collections.deque()
        with concurrent.futures.ThreadPoolExecutor(max_workers=PRUNE_THREADS) as pool:
            for entries, chosen in self._chosen_buckets(plan):
                while len(window) >= 2 * PRUNE_THREADS:
                    self._settle(window.popleft(), control)
                if not self._watch(control):
                    break
                part = Outcome(self.root, 'build', 0)
                window.append(pool.submit(self._remove_bucket, entries, chosen, part, control))
            while window:
                self._settle(window.popleft(), control)

    def _settle(self, future, control):
        while True:
            try:
                part = future.result(timeout=BUSY_RECHECK_S)
                break
            except concurrent.futures.TimeoutError:
                self._watch(control)
        self.outcome.merge(part)

    def _watch(self, control):
        """False once the run must stop for running builds; pauses the workers while waiting."""
        if control.stop:
            return False
        if not self.guard.due() or not self.guard.busy_now():
            return True
        control.resume.clear()
        if self.guard.idle():
            control.resume.set()
            return True
        control.stop = True
        control.resume.set()
        self.outcome.busy = [process[2] for process in self.guard.seen]
        return False

    def _sweep(self):
        """state=absent: what go clean -cache also removes besides entries (stray files, log.txt).

        The README, trim.txt and testexpire.txt stay so that the directory
        remains a Go cache with its owner and mode.
        """
        errors = self.outcome.errors
        for hex_prefix in _buildcache.HEX_DIRS:
            try:
                fd = self._dir_fd(hex_prefix)
                listing = _fs.list_dir(fd)
            except OSError:
                continue
            for name, st in listing:
                rel = hex_prefix + '/' + name
                if stat.S_ISDIR(st.st_mode):
                    remove_tree(fd, name, self.scan.root_dev, errors, rel)
                else:
                    _unlink(name, fd, errors, rel)
        _unlink('log.txt', self.root_fd, errors, 'log.txt')

    def _remove_bucket(self, entries, chosen, outcome, control):
        """Remove the chosen entries (offsets) of one bucket into `outcome` (runs in a worker thread)."""
        chosen_set = set(chosen)
        removed = set()
        kept_refs = {}
        for offset, entry in enumerate(entries):
            if entry.alive and offset not in chosen_set:
                kept_refs[entry.output_id] = kept_refs.get(entry.output_id, 0) + 1
        for offset in chosen:
            entry = entries[offset]
            if control is None:  # check mode
                outcome.removed(functools.partial(self._name, entry), entry.bytes, entry.disk_bytes)
                continue
            control.resume.wait()
            if control.stop:
                outcome.keep(BUSY)
                if entry.alive:
                    kept_refs[entry.output_id] = kept_refs.get(entry.output_id, 0) + 1
                continue
            reason = USED_SINCE_SCAN if self._used_since_scan(entry) else None
            if reason is None and entry.action_id is not None:
                action_hex = entry.action_id.hex()
                if not _unlink(action_hex + '-a', self._dir_fd(action_hex[:2]), outcome.errors,
                               '%s/%s-a' % (action_hex[:2], action_hex)):
                    reason = FAILED
            if reason is not None:
                outcome.keep(reason)
                if entry.alive:
                    kept_refs[entry.output_id] = kept_refs.get(entry.output_id, 0) + 1
                continue
            removed.add(offset)
            outcome.removed(functools.partial(self._name, entry), entry.bytes, entry.disk_bytes)
        if control is None:
            return outcome
        # Outputs go last, and only when no kept entry of this bucket names them.
        for offset in removed:
            entry = entries[offset]
            if not entry.owns_output or entry.output_id is None or kept_refs.get(entry.output_id):
                continue
            output_hex = entry.output_id.hex()
            fd = self._dir_fd(output_hex[:2])
            rel = '%s/%s-d' % (output_hex[:2], output_hex)
            if entry.output_is_dir:
                remove_tree(fd, output_hex + '-d', self.scan.root_dev, outcome.errors, rel)
            else:
                _unlink(output_hex + '-d', fd, outcome.errors, rel)
        return outcome

    @staticmethod
    def _name(entry):
        if entry.action_id is None:
            return 'output %s' % entry.output_id.hex()
        return 'entry %s' % entry.action_id.hex()

    def _used_since_scan(self, entry):
        """Go refreshed the -a or -d since the scan: a build is using it."""
        if self.policy.state == 'absent':
            return False
        if entry.action_id is not None:
            action_hex = entry.action_id.hex()
            mtime = _mtime_ns(action_hex + '-a', self._dir_fd(action_hex[:2]))
            if mtime is not None and mtime > entry.action_mtime_ns:
                return True
        if entry.output_id is not None and entry.output_mtime_ns:
            output_hex = entry.output_id.hex()
            mtime = _mtime_ns(output_hex + '-d', self._dir_fd(output_hex[:2]))
            if mtime is not None and mtime > entry.output_mtime_ns:
                return True
        return False


class ModuleCachePruner(_CachePruner):
    """Module cache: units are module versions (see _modcache)."""

    def __init__(self, root_fd, root, policy, now, check_mode, guard, use_atime):
        super(ModuleCachePruner, self).__init__(root_fd, root, policy, now, check_mode, guard)
        self.use_atime = use_atime
        self.scan = _modcache.ModuleCacheScan(root_fd).run()
        self.outcome = Outcome(root, 'module', self.scan.bytes)
        versions = sorted(self.scan.versions.values(), key=lambda version: (version.module_esc, version.version_esc))
        # Units, in module order: (version, part) with part ALL (the whole version), GRAPH (all but .mod and
        # .info, which a go.sum /go.mod line needs) or TMP (temporary files Go left beside a usable version).
        self.units = []
        for version in versions:
            state = version.state
            if state == 'removed':
                continue
            self.units.append((version, ALL))
            if version.tmp and state != 'incomplete':
                self.units.append((version, TMP))
        # Modules whose @v/list may still name versions a killed run removed.
        self.list_repairs = set(version.module_esc for version in versions if version.state == 'removed')

    def _last_used(self, version, part):
        if part == TMP:
            return version.tmp[2]
        if version.state == 'incomplete':
            # Activity of any kind in the download files (a download in progress writes them; a .partial
            # marks an extraction in progress).  The tree's own mtime is not used: removing files from it
            # (a killed prune) changes it.
            times = [item[3] for suffix, item in version.download.items() if suffix != '.lock']
            if version.tmp:
                times.append(version.tmp[2])
            return max(times) if times else version.tree_mtime_ns
        return version.last_used_ns(self.use_atime)

    def plan(self, free_bytes, fs_size):
        plan = Plan()
        policy = self.policy
        by_module = {}
        for index, (version, part) in enumerate(self.units):
            module, name = version.module, version.version
            last_used = self._last_used(version, part)
            incomplete = part == TMP or version.state == 'incomplete'
            protect = _protect_recent(policy, self.now, last_used)
            if part == ALL and policy.state == 'present' and not protect:
                if policy.keeps_module(module, name):
                    protect = KEEP
                elif (module, name) in policy.referenced_full:
                    protect = REFERENCED
                elif (module, name) in policy.referenced_graph and not incomplete:
                    if version.state == 'download_only' and '.zip' not in version.download:
                        protect = REFERENCED  # .mod and .info are all there is
                    else:
                        part = GRAPH
                        self.units[index] = (version, GRAPH)
            size, disk = self._unit_bytes(version, part)
            plan.add(last_used, size, disk, INCOMPLETE if incomplete else UNIT, protect)
            if not incomplete:
                by_module.setdefault(module, []).append((name, index))
        groups = [[index for _name, index in sorted(items, key=lambda item: _semver.sort_key(item[0]), reverse=True)]
                  for items in by_module.values()]
        self.outcome.target_met = plan.select(policy, self.now, self.scan.bytes, free_bytes, fs_size, groups)
        plan.count_kept(self.outcome)
        return plan

    @staticmethod
    def _unit_bytes(version, part):
        """Bytes the unit frees; its temporaries count with it only when they are not a unit of their own."""
        if part == TMP:
            return version.tmp[0], version.tmp[1]
        size, disk = version.bytes, version.disk_bytes
        if part == GRAPH:
            for suffix in ('.mod', '.info'):
                item = version.download.get(suffix)
                if item is not None:
                    size -= item[0]
                    disk -= item[1]
        elif version.tmp and version.state == 'incomplete':
            size += version.tmp[0]
            disk += version.tmp[1]
        return size, disk

    def execute(self, plan):
        outcome = self.outcome
        pending_list = None  # module whose @v/list is rewritten once its last unit has been handled
        for index, (version, part) in enumerate(self.units):
            if pending_list is not None and pending_list != version.module_esc:
                self._rewrite_list(pending_list)
                pending_list = None
            if not plan.remove[index]:
                continue
            name = '%s@%s%s' % (version.module, version.version, ' (temporary files)' if part == TMP else '')
            if self.check_mode:
                outcome.removed(name, plan.size[index], plan.disk[index])
                continue
            if not self.guard.still_idle():
                outcome.busy = [process[2] for process in self.guard.seen]
                break
            result = self._remove_version(version, part)
            if result is True:
                outcome.removed(name, plan.size[index], plan.disk[index])
            else:
                outcome.keep(result)
            if result in (True, FAILED):
                # A failed removal may have gone part of the way, its .mod among it: @v/list follows the disk.
                pending_list = version.module_esc
        if self.check_mode:
            return
        if pending_list is not None:
            self._rewrite_list(pending_list)
        for module_esc in sorted(self.list_repairs):
            self._rewrite_list(module_esc)
        if self.policy.state == 'absent' and outcome.busy is None:
            self._remove_rest()

    def _open_at_v(self, module_esc):
        """fd of cache/download/<module>/@v."""
        return self.open_rel_dir('%s/%s/%s/@v' % (_modcache.DOWNLOAD_DIR + (module_esc,)))

    def _lock(self, at_v_fd, version_esc):
        """Go's per-version lock (lockedfile = flock on Linux); None when Go holds it."""
        name = version_esc + '.lock'
        try:
            fd = os.open(name, os.O_RDWR | os.O_CREAT | getattr(os, 'O_CLOEXEC', 0) | getattr(os, 'O_NOFOLLOW', 0),
                         0o666, dir_fd=at_v_fd)
        except OSError:
            fd = os.open(name, os.O_RDONLY | getattr(os, 'O_CLOEXEC', 0) | getattr(os, 'O_NOFOLLOW', 0),
                         dir_fd=at_v_fd)
        parent = os.fstat(at_v_fd)
        if os.geteuid() == 0 and os.fstat(fd).st_uid != parent.st_uid:
            os.fchown(fd, parent.st_uid, parent.st_gid)  # created by root in someone's cache
        deadline = time.monotonic() + LOCK_WAIT_S
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return fd
            except OSError as exc:
                if exc.errno not in (errno.EAGAIN, errno.EACCES) or time.monotonic() > deadline:
                    os.close(fd)
                    return None
                time.sleep(0.05)

    def _remove_version(self, version, part):
        errors = self.outcome.errors
        module_esc, version_esc = version.module_esc, version.version_esc
        label = '%s@%s' % (module_esc, version_esc)
        at_v_fd = None
        lock_fd = None
        try:
            if version.download or version.tmp:
                try:
                    at_v_fd = self._open_at_v(module_esc)
                except OSError as exc:
                    errors.add('cache/download/%s/@v' % module_esc, exc)
                    return FAILED
                lock_fd = self._lock(at_v_fd, version_esc)
                if lock_fd is None:
                    return LOCKED
                if part == TMP:
                    self._remove_temporaries(at_v_fd, version_esc)
                    return True
                if self.policy.state == 'present' and self._used_since_scan(version, at_v_fd):
                    return USED_SINCE_SCAN
                # .ziphash first: from then on Go no longer sees the version as present.
                if '.ziphash' in version.download:
                    if not _unlink(version_esc + '.ziphash', at_v_fd, errors, label + '.ziphash'):
                        return FAILED
            ok = True
            if version.tree:
                parent_rel, _slash, elem = module_esc.rpartition('/')
                try:
                    parent_fd = self.open_rel_dir(parent_rel)
                except OSError as exc:
                    errors.add(label, exc)
                    return FAILED
                try:
                    ok = remove_tree(parent_fd, '%s@%s' % (elem, version_esc), self.scan.root_dev, errors, label)
                finally:
                    os.close(parent_fd)
            keep_suffixes = ('.lock', '.mod', '.info') if part == GRAPH else ('.lock',)
            if at_v_fd is not None:
                for suffix in ('.zip', '.partial', '.mod', '.info'):
                    if suffix in version.download and suffix not in keep_suffixes:
                        ok = _unlink(version_esc + suffix, at_v_fd, errors, label + suffix) and ok
                if version.tmp and version.state == 'incomplete':
                    self._remove_temporaries(at_v_fd, version_esc)
            return True if ok else FAILED
        finally:
            if lock_fd is not None:
                os.close(lock_fd)  # closing releases the flock
            if at_v_fd is not None:
                os.close(at_v_fd)

    def _remove_temporaries(self, at_v_fd, version_esc):
        for name, st in _fs.list_dir(at_v_fd):
            if stat.S_ISREG(st.st_mode) and name.endswith('.tmp') and \
                    _modcache.split_download_name(name)[0] == version_esc:
                _unlink(name, at_v_fd, self.outcome.errors, name)

    def _used_since_scan(self, version, at_v_fd):
        for suffix in _modcache.USE_SUFFIXES:
            item = version.download.get(suffix)
            if item is None:
                continue
            try:
                st = os.stat(version.version_esc + suffix, dir_fd=at_v_fd, follow_symlinks=False)
            except OSError:
                continue
            if st.st_mtime_ns > item[3] or (self.use_atime and st.st_atime_ns > item[2]):
                return True
        return False

    def _rewrite_list(self, module_esc):
        try:
            at_v_fd = self._open_at_v(module_esc)
        except OSError:
            return
        try:
            rewrite_version_list(at_v_fd, self.outcome.errors, 'cache/download/%s/@v/list' % module_esc)
        finally:
            os.close(at_v_fd)

    def _remove_rest(self):
        """state=absent: after every version went unit by unit, the rest (vcs, sumdb, lists, locks).

        An empty cache/download stays so that the root is still recognisably a
        Go module cache (a second run, the agent, Go itself all accept it).
        """
        errors = self.outcome.errors
        root_dev = self.scan.root_dev
        for name, st in _fs.list_dir(self.root_fd):
            if stat.S_ISDIR(st.st_mode) and name == _modcache.DOWNLOAD_DIR[0]:
                cache_fd = _fs.open_dir(name, self.root_fd)
                try:
                    for child, child_st in _fs.list_dir(cache_fd):
                        rel = name + '/' + child
                        if stat.S_ISDIR(child_st.st_mode) and child == _modcache.DOWNLOAD_DIR[1]:
                            download_fd = _fs.open_dir(child, cache_fd)
                            try:
                                _remove_contents(download_fd, root_dev, errors, rel)
                            finally:
                                os.close(download_fd)
                        elif stat.S_ISDIR(child_st.st_mode):
                            remove_tree(cache_fd, child, root_dev, errors, rel)
                        else:
                            _unlink(child, cache_fd, errors, rel)
                finally:
                    os.close(cache_fd)
            elif stat.S_ISDIR(st.st_mode):
                remove_tree(self.root_fd, name, root_dev, errors, name)
            else:
                _unlink(name, self.root_fd, errors, name)


class FuzzCachePruner(_CachePruner):
    """Fuzz cache: units are corpus files; their age is their mtime (Go never touches them again)."""

    def __init__(self, root_fd, root, policy, now, check_mode, guard):
        super(FuzzCachePruner, self).__init__(root_fd, root, policy, now, check_mode, guard)
        self.errors = _fs.ErrorLog()
        self.files = []
        total = 0
        for _parent, rel, name, st in _fs.walk_files(root_fd, '', os.fstat(root_fd).st_dev, self.errors):
            self.files.append((rel, name, st.st_mtime_ns, st.st_size, st.st_blocks * 512))
            total += st.st_size
        self.outcome = Outcome(root, 'fuzz', total)
        self.outcome.errors = self.errors

    def plan(self, free_bytes, fs_size):
        plan = Plan()
        for _rel, _name, mtime, size, disk in self.files:
            plan.add(mtime, size, disk, UNIT, _protect_recent(self.policy, self.now, mtime))
        self.outcome.target_met = plan.select(self.policy, self.now, self.outcome.before_bytes, free_bytes, fs_size)
        plan.count_kept(self.outcome)
        return plan

    def execute(self, plan):
        root_dev = os.fstat(self.root_fd).st_dev
        for index, (rel, name, mtime, size, disk) in enumerate(self.files):
            if not plan.remove[index]:
                continue
            path = rel + '/' + name if rel else name
            if self.check_mode:
                self.outcome.removed(path, size, disk)
                continue
            if not self.guard.still_idle():
                self.outcome.busy = [process[2] for process in self.guard.seen]
                break
            try:
                parent_fd = self.open_rel_dir(rel)
            except OSError as exc:
                self.errors.add(path, exc)
                self.outcome.keep(FAILED)
                continue
            try:
                if self.policy.state == 'present' and (_mtime_ns(name, parent_fd) or 0) > mtime:
                    self.outcome.keep(USED_SINCE_SCAN)
                elif _unlink(name, parent_fd, self.errors, path):
                    self.outcome.removed(path, size, disk)
                else:
                    self.outcome.keep(FAILED)
            finally:
                os.close(parent_fd)
        if self.policy.state == 'absent' and not self.check_mode and self.outcome.busy is None:
            for name, st in _fs.list_dir(self.root_fd):
                if stat.S_ISDIR(st.st_mode):
                    remove_tree(self.root_fd, name, root_dev, self.errors, name)


def prune_cache(path, kind, policy, check_mode=False, now=None, busy_uid=None, freed_on_device=None):
    """Prune one cache; returns Outcome.as_dict().

    `busy_uid`: whose Go processes make the cache busy (None: anyone's).
    `freed_on_device`: {st_dev: bytes} planned so far in this run, so that
    min_free in check mode accounts for caches planned before this one on the
    same file system exactly as a real run's statvfs would.
    """
    now = time.time() if now is None else now
    real = check_root(path, kind)
    freed_on_device = {} if freed_on_device is None else freed_on_device
    guard = BusyGuard(policy, busy_uid)
    fd = _fs.open_dir(real)
    try:
        dev = os.fstat(fd).st_dev
        fs = _fs.filesystem_facts(real)
        free = fs.get('free_bytes')
        if free is not None and check_mode:
            free += freed_on_device.get(dev, 0)
        if kind == 'build':
            pruner = BuildCachePruner(fd, real, policy, now, check_mode, guard)
        elif kind == 'module':
            pruner = ModuleCachePruner(fd, real, policy, now, check_mode, guard, bool(fs.get('atime_updates')))
        else:
            pruner = FuzzCachePruner(fd, real, policy, now, check_mode, guard)
        plan = pruner.plan(free, fs.get('size_bytes'))
        outcome = pruner.outcome
        if any(plan.remove) and not check_mode and not guard.idle():
            outcome.busy = [process[2] for process in guard.seen]
            outcome.kept[BUSY] = sum(plan.remove)
        else:
            pruner.execute(plan)
            if outcome.busy:
                settled = outcome.removed_entries + sum(outcome.kept.get(reason, 0)
                                                        for reason in (USED_SINCE_SCAN, LOCKED, FAILED, BUSY))
                outcome.keep(BUSY, sum(plan.remove) - settled)
        freed_on_device[dev] = freed_on_device.get(dev, 0) + outcome.removed_disk_bytes
        result = outcome.as_dict()
        result['path'] = path
        result['real_path'] = real
        return result
    finally:
        os.close(fd)
