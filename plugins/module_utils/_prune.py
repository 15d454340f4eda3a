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
# Loaded now, not on first use: a child that dropped to an account may not read Python's files.
import concurrent.futures.thread  # noqa: F401  pylint: disable=unused-import
import errno
import fcntl
import fnmatch
import functools
import os
import stat
import threading
import time
from array import array

from ansible_collections.gofleet.cache.plugins.module_utils import _buildcache
from ansible_collections.gofleet.cache.plugins.module_utils import _fs
from ansible_collections.gofleet.cache.plugins.module_utils import _locate
from ansible_collections.gofleet.cache.plugins.module_utils import _modcache
from ansible_collections.gofleet.cache.plugins.module_utils import _procs
from ansible_collections.gofleet.cache.plugins.module_utils import _refs
from ansible_collections.gofleet.cache.plugins.module_utils import _semver
from ansible_collections.gofleet.cache.plugins.module_utils._units import (
    OptionError, parse_count, parse_duration, parse_size, parse_size_or_percent)

KINDS = _locate.KINDS
IF_BUSY = ('wait', 'skip', 'proceed')
STATES = ('present', 'absent')
SAMPLE_SIZE = 20
NS = 1000000000
# How often a running removal looks for Go processes that started meanwhile.
BUSY_RECHECK_S = 0.5
BUSY_POLL_S = 1.0
LOCK_WAIT_S = 2.0
# All the waiting for Go's version locks one run may do: another account holding the .lock files of a shared
# module cache must not stretch a run by LOCK_WAIT_S per version (the versions are then kept as `locked`).
LOCK_BUDGET_S = 30.0
# Build cache buckets removed at once (unlink is I/O; see _execute_in_parallel).
PRUNE_THREADS = _buildcache.SCAN_THREADS

# Unit classes in a plan.
UNIT = 0          # a complete unit: build entry, module version, corpus file
INCOMPLETE = 1    # dead build entry / orphan output, broken or partial module download

# Parts of a module version a unit removes.
ALL, GRAPH, TMP = 'all', 'graph', 'tmp'

# Why a unit stays.  Protections are checked in this order; UNREAD (part of the unit could not be scanned,
# so what it is is unknown) wins even over state=absent.
RECENT, KEEP, REFERENCED, RETAINED, UNREAD = 1, 2, 3, 4, 5
REASONS = {RECENT: 'recent', KEEP: 'keep', REFERENCED: 'referenced', RETAINED: 'retained', UNREAD: 'unreadable'}
# Removal outcomes decided at run time.
USED_SINCE_SCAN, LOCKED, FAILED, BUSY = 'used_since_scan', 'locked', 'error', 'busy'


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
        self.keep_versions = None if keep_versions is None else parse_count(keep_versions, 'keep_versions', 1)
        self.max_size = None if max_size is None else parse_size(max_size, 'max_size')
        self.min_free = None if min_free is None else parse_size_or_percent(min_free, 'min_free')
        self.keep_recent = parse_duration(keep_recent, 'keep_recent')
        self.keep = []
        for pattern in keep or []:
            if not isinstance(pattern, str) or not pattern.strip():
                raise OptionError('keep', pattern, 'expected a module path glob such as example.com/internal/*')
            self.keep.append(pattern.strip())
        # Checked now, read later: by the process that prunes a module cache, as its owner (see references).
        self.keep_referenced = _refs.check_paths(keep_referenced or [])
        self._references = None
        self.if_busy = if_busy
        self.busy_timeout = parse_duration(busy_timeout, 'busy_timeout')

    def references(self):
        """(full, graph, errors) of keep_referenced, read once per process with that process's rights.

        A module cache is pruned as its owner, so only what its owner may read
        protects anything in it: the builds that use the cache run as that
        owner too, and no account learns from its own cache what another
        account's unreadable go.sum holds.
        """
        if self._references is None:
            self._references = _refs.collect(self.keep_referenced)
        return self._references

    def keeps_module(self, module, version):
        name = '%s@%s' % (module, version)
        return any(fnmatch.fnmatchcase(module, pattern) or fnmatch.fnmatchcase(name, pattern)
                   for pattern in self.keep)


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
        # state=absent: whether anything besides the units (stray files, locks, empty directories) was removed
        # (or, in check mode, is there to remove).
        self.cleared_other = False

    def keep(self, reason, count=1):
        self.kept[reason] = self.kept.get(reason, 0) + count

    def removed(self, name, size, disk):
        """Count a removed unit; `name` may be a callable, made into text only for the sample."""
        self.removed_entries += 1
        self.removed_bytes += size
        self.removed_disk_bytes += disk
        if len(self.sample) < SAMPLE_SIZE:
            self.sample.append(_fs.printable(name() if callable(name) else name))

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
        result = {'path': _fs.printable(self.path), 'kind': self.kind, 'before_bytes': self.before_bytes,
                  'after_bytes': self.before_bytes - self.removed_bytes, 'removed_entries': self.removed_entries,
                  'removed_bytes': self.removed_bytes, 'kept': dict(self.kept), 'sample': list(self.sample),
                  'busy': self.busy, 'target_met': self.target_met, 'cleared_other': self.cleared_other}
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

    def select(self, policy, now, total_bytes, free_bytes, fs_size, groups=None, lag_s=0):
        """Apply the policies in order; returns whether max_size/min_free targets can be met.

        `lag_s`: how much a unit's recorded last use may lag its real one (see _CachePruner.USE_LAG_S);
        max_age removes only what was surely not used for that long.
        """
        count = len(self)
        if policy.state == 'absent':
            for index in range(count):
                self.remove[index] = 0 if self.protect[index] == UNREAD else 1
            return True
        if policy.remove_incomplete:
            for index in range(count):
                if self.unit_class[index] == INCOMPLETE and not self.protect[index]:
                    self.remove[index] = 1
        if policy.max_age is not None:
            cutoff = (now - policy.max_age - lag_s) * NS
            # Dead weight ages too (Go's trim removes an old -a it would miss like any other), so that max_age
            # alone, without remove_incomplete, still removes what Go's trim removes.
            for index in range(count):
                if self.last_used[index] < cutoff and self.removable(index):
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


def _make_writable(fd):
    """Go makes module directories read-only: a directory is made writable for its owner before emptying it."""
    st = os.fstat(fd)
    if not st.st_mode & stat.S_IWUSR:
        os.fchmod(fd, stat.S_IMODE(st.st_mode) | stat.S_IRWXU)


def remove_contents(fd, boundary, errors, rel):
    """Remove everything inside an open directory (kept itself); (all removed, paths removed).

    Depth first with an explicit stack of open directories, at most
    _fs.MAX_DEPTH deep.  Symbolic links are unlinked, never followed; mount
    points (boundary) never entered; a directory whose contents could not all
    be removed stays, and the error names it.
    """
    removed = 0
    try:
        _make_writable(fd)
        listing = _fs.list_dir(fd)
    except OSError as exc:
        errors.add(rel, exc)
        return False, 0
    # [owned fd, fd, rel, entries, all removed so far, name in the parent (None for the start)]
    frames = [[None, fd, rel, iter(listing), True, None]]
    ok = True
    try:
        while frames:
            frame = frames[-1]
            dir_fd, here, entries = frame[1], frame[2], frame[3]
            for name, st in entries:
                child = here + '/' + name if here else name
                if not stat.S_ISDIR(st.st_mode):
                    if unlink_entry(name, dir_fd, errors, child):
                        removed += 1
                    else:
                        frame[4] = False
                    continue
                if len(frames) > _fs.MAX_DEPTH:
                    errors.add(child, _fs.TooDeep(child))
                    frame[4] = False
                    continue
                child_fd = None
                try:
                    if boundary.crosses(child, st):
                        raise _fs.CrossesMount(child)
                    child_fd = boundary.open_dir(name, dir_fd, child)
                    _make_writable(child_fd)
                    child_listing = _fs.list_dir(child_fd)
                except OSError as exc:
                    if child_fd is not None:
                        os.close(child_fd)
                    errors.add(child, exc)
                    frame[4] = False
                    continue
                frames.append([child_fd, child_fd, child, iter(child_listing), True, name])
                break
            else:
                done = frames.pop()
                if done[0] is not None:
                    os.close(done[0])
                if done[5] is None:
                    ok = done[4]
                elif done[4] and _rmdir(done[5], frames[-1][1], errors, done[2]):
                    removed += 1
                else:
                    frames[-1][4] = False
    finally:
        for frame in frames:
            if frame[0] is not None:
                os.close(frame[0])
    return ok, removed


def remove_tree(parent_fd, name, boundary, errors, rel):
    """Remove the directory `name` below parent_fd and everything in it; (all removed, paths removed)."""
    try:
        fd = boundary.open_dir(name, parent_fd, rel)
    except OSError as exc:
        errors.add(rel, exc)
        return False, 0
    try:
        ok, removed = remove_contents(fd, boundary, errors, rel)
    finally:
        os.close(fd)
    if ok and _rmdir(name, parent_fd, errors, rel):
        return True, removed + 1
    return False, removed


def _rmdir(name, dir_fd, errors, rel):
    try:
        os.rmdir(name, dir_fd=dir_fd)
        return True
    except OSError as exc:
        errors.add(rel, exc)
        return False


def unlink_entry(name, dir_fd, errors, rel):
    """Unlink one name below dir_fd (never following it); False, with the error logged, when it stays."""
    try:
        os.unlink(name, dir_fd=dir_fd)
        return True
    except OSError as exc:
        if exc.errno == errno.ENOENT:
            return True  # gone already: the goal is met
        errors.add(rel, exc)
        return False


def flock_within(fd, seconds):
    """An exclusive flock(2) on fd, waiting at most `seconds` (a lock holder must never hold our run)."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except OSError as exc:
            if exc.errno not in (errno.EAGAIN, errno.EACCES) or time.monotonic() > deadline:
                return False
        time.sleep(0.05)


def open_shared_file(name, dir_fd, flags, owner_of=None):
    """Open (creating it if missing) a file Go shares with us (a version's .lock, @v/list); (fd, created).

    Never through a link, never blocking on a FIFO; it must be a regular
    file with a single link (a hard link could be any file of the account,
    or of another account when root acts).  A file root creates gets the
    owner of `owner_of` (the directory's fstat), as Go would have made it.
    """
    base = flags | getattr(os, 'O_NOFOLLOW', 0) | getattr(os, 'O_CLOEXEC', 0) | getattr(os, 'O_NONBLOCK', 0)
    created = False
    try:
        fd = os.open(name, base | os.O_CREAT | os.O_EXCL, 0o666, dir_fd=dir_fd)
        created = True
    except OSError as exc:
        if exc.errno != errno.EEXIST:
            raise
        fd = os.open(name, base, dir_fd=dir_fd)
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise OSError(errno.EINVAL, 'not a regular file: left alone', name)
        if st.st_nlink != 1:
            raise OSError(errno.EMLINK, 'a file with %d hard links: left alone' % st.st_nlink, name)
        if created and owner_of is not None and os.geteuid() == 0 and st.st_uid != owner_of.st_uid:
            os.fchown(fd, owner_of.st_uid, owner_of.st_gid)
    except BaseException:
        os.close(fd)
        raise
    return fd, created


def rewrite_version_list(at_v_fd, errors, rel):
    """@v/list = the versions whose .mod exists, semver-sorted, as Go's rewriteVersionList writes it."""
    try:
        versions = [name[:-len('.mod')] for name, st in _fs.list_dir(at_v_fd)
                    if name.endswith('.mod') and stat.S_ISREG(st.st_mode) and _semver.is_valid(name[:-4])]
        content = ''.join(version + '\n' for version in sorted(versions, key=_semver.sort_key)).encode()
        fd, _created = open_shared_file('list', at_v_fd, os.O_RDWR, os.fstat(at_v_fd))
        try:
            # Go's lockedfile.Edit locks the list file itself, briefly; the account could hold it forever.
            if not flock_within(fd, LOCK_WAIT_S):
                raise OSError(errno.EAGAIN, 'locked by another process: not rewritten', 'list')
            if os.pread(fd, len(content) + 1, 0) != content:
                os.ftruncate(fd, 0)
                os.pwrite(fd, content, 0)
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

    # How much a unit's recorded last use may lag its real last use: keep_recent protects, and max_age removes,
    # with that margin.  Go refreshes a build cache file's mtime only when it is an hour old.
    USE_LAG_S = 0

    def __init__(self, root_fd, root, policy, now, check_mode, guard):
        self.root_fd = root_fd
        self.root = root
        self.policy = policy
        self.now = now
        self.check_mode = check_mode
        self.guard = guard
        self.boundary = _fs.Boundary(root_fd)

    def open_rel_dir(self, rel):
        return self.boundary.open_rel_dir(self.root_fd, rel)

    def recent(self, last_used_ns):
        """RECENT when the unit may have been used within keep_recent (never with state=absent), else 0."""
        cutoff = (self.now - self.policy.keep_recent - self.USE_LAG_S) * NS
        return RECENT if self.policy.state == 'present' and last_used_ns > cutoff else 0

    def select(self, plan, total_bytes, free_bytes, fs_size, groups=None):
        """plan.select with this cache's use lag; records whether the size targets can be met."""
        self.outcome.target_met = plan.select(self.policy, self.now, total_bytes, free_bytes, fs_size, groups,
                                              self.USE_LAG_S)
        plan.count_kept(self.outcome)

    def sweep_tree(self, parent_fd, name, rel):
        """state=absent: remove a directory that is no unit, counting it in cleared_other."""
        removed = remove_tree(parent_fd, name, self.boundary, self.outcome.errors, rel)[1]
        self.outcome.cleared_other = self.outcome.cleared_other or removed > 0

    def sweep_file(self, name, dir_fd, rel):
        if unlink_entry(name, dir_fd, self.outcome.errors, rel):
            self.outcome.cleared_other = True


class _Control(object):
    """Shared by the main thread and the removal workers: pause (resume cleared) and stop."""

    def __init__(self):
        self.resume = threading.Event()
        self.resume.set()
        self.stop = False


class BuildCachePruner(_CachePruner):
    """Build cache: units are entries (see _buildcache)."""

    USE_LAG_S = _buildcache.MTIME_INTERVAL_S

    def __init__(self, root_fd, root, policy, now, check_mode, guard):
        super(BuildCachePruner, self).__init__(root_fd, root, policy, now, check_mode, guard)
        self.scan = _buildcache.BuildCacheScan(root_fd, keep_action_ids=True, boundary=self.boundary).run()
        self.outcome = Outcome(root, 'build', self.scan.bytes)
        self.outcome.errors.merge(self.scan.errors)  # what could not be read (and so stays) is reported too
        self.dir_fds = {}

    def plan(self, free_bytes, fs_size):
        plan = Plan()
        for entries in self.scan.join_buckets():
            for entry in entries:
                last_used = entry.last_used_ns
                plan.add(last_used, entry.bytes, entry.disk_bytes, UNIT if entry.alive else INCOMPLETE,
                         UNREAD if entry.unread else self.recent(last_used))
        self.select(plan, self.scan.bytes, free_bytes, fs_size)
        if self.check_mode and self.policy.state == 'absent':
            self.outcome.cleared_other = bool(self.scan.strays or self.scan.has_log)
        return plan

    def _open_dirs(self):
        # All 256 up front: worker threads then only read this dict.
        for hex_prefix in _buildcache.HEX_DIRS:
            try:
                self.dir_fds[hex_prefix] = self.boundary.open_dir(hex_prefix, self.root_fd, hex_prefix)
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

        Only names that are not Go's entries: an entry that stayed (locked,
        unreadable, failed) is never swept away around its unit.  The README,
        trim.txt and testexpire.txt stay so that the directory remains a Go
        cache with its owner and mode.
        """
        for hex_prefix in _buildcache.HEX_DIRS:
            try:
                fd = self._dir_fd(hex_prefix)
                listing = _fs.list_dir(fd)
            except OSError:
                continue
            for name, st in listing:
                rel = hex_prefix + '/' + name
                if _buildcache.is_entry_name(name, hex_prefix, st):
                    continue
                if stat.S_ISDIR(st.st_mode):
                    self.sweep_tree(fd, name, rel)
                else:
                    self.sweep_file(name, fd, rel)
        try:
            os.stat(_buildcache.LOG_NAME, dir_fd=self.root_fd, follow_symlinks=False)
        except OSError:
            return
        self.sweep_file(_buildcache.LOG_NAME, self.root_fd, _buildcache.LOG_NAME)

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
                if not unlink_entry(action_hex + '-a', self._dir_fd(action_hex[:2]), outcome.errors,
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
                remove_tree(fd, output_hex + '-d', self.boundary, outcome.errors, rel)
            else:
                unlink_entry(output_hex + '-d', fd, outcome.errors, rel)
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
        self.lock_budget = LOCK_BUDGET_S
        self.scan = _modcache.ModuleCacheScan(root_fd, self.boundary).run()
        self.outcome = Outcome(root, 'module', self.scan.bytes)
        self.outcome.errors.merge(self.scan.errors)  # what could not be read (and so stays) is reported too
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
        self.list_repairs = set(version.module_esc for version in versions
                                if version.state == 'removed' and not version.unread)

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
        referenced_full, referenced_graph, reference_errors = policy.references()
        self.outcome.errors.merge(reference_errors)
        by_module = {}
        for index, (version, part) in enumerate(self.units):
            module, name = version.module, version.version
            last_used = self._last_used(version, part)
            incomplete = part == TMP or version.state == 'incomplete'
            protect = UNREAD if version.unread else self.recent(last_used)
            if part == ALL and policy.state == 'present' and not protect:
                if policy.keeps_module(module, name):
                    protect = KEEP
                elif (module, name) in referenced_full:
                    protect = REFERENCED
                elif (module, name) in referenced_graph and not incomplete:
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
        self.select(plan, self.scan.bytes, free_bytes, fs_size, groups)
        if self.check_mode and policy.state == 'absent':
            self.outcome.cleared_other = not self._is_skeleton()
        return plan

    def _is_skeleton(self):
        """Whether the cache is already what state=absent leaves: the root with an empty cache/download."""
        try:
            if [name for name, _st in _fs.list_dir(self.root_fd)] != [_modcache.DOWNLOAD_DIR[0]]:
                return False
            cache_fd = self.boundary.open_dir(_modcache.DOWNLOAD_DIR[0], self.root_fd, _modcache.DOWNLOAD_DIR[0])
            try:
                if [name for name, _st in _fs.list_dir(cache_fd)] != [_modcache.DOWNLOAD_DIR[1]]:
                    return False
                download_fd = self.boundary.open_dir(_modcache.DOWNLOAD_DIR[1], cache_fd, '/'.join(_modcache.DOWNLOAD_DIR))
                try:
                    return not _fs.list_dir(download_fd)
                finally:
                    os.close(download_fd)
            finally:
                os.close(cache_fd)
        except OSError:
            return False

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
        # Only once every unit is gone: the rest holds the trees and locks of any version that stayed.
        if self.policy.state == 'absent' and outcome.busy is None and not any(
                outcome.kept.get(reason) for reason in (LOCKED, FAILED, REASONS[UNREAD])):
            self._remove_rest()

    def _open_at_v(self, module_esc):
        """fd of cache/download/<module>/@v."""
        return self.open_rel_dir('%s/%s/%s/@v' % (_modcache.DOWNLOAD_DIR + (module_esc,)))

    def _lock(self, at_v_fd, version_esc):
        """Go's per-version lock (lockedfile = flock on Linux); None when Go holds it, OSError when unusable."""
        name = version_esc + '.lock'
        try:
            fd, _created = open_shared_file(name, at_v_fd, os.O_RDWR, os.fstat(at_v_fd))
        except OSError as exc:
            if exc.errno not in (errno.EACCES, errno.EPERM):
                raise
            fd, _created = open_shared_file(name, at_v_fd, os.O_RDONLY)  # flock needs no write access
        started = time.monotonic()
        acquired = flock_within(fd, max(0.0, min(LOCK_WAIT_S, self.lock_budget)))
        self.lock_budget -= time.monotonic() - started
        if acquired:
            return fd
        os.close(fd)
        return None

    def _remove_version(self, version, part):
        errors = self.outcome.errors
        module_esc, version_esc = version.module_esc, version.version_esc
        label = '%s@%s' % (module_esc, version_esc)
        at_v_fd = None
        lock_fd = None
        try:
            try:
                at_v_fd = self._open_at_v(module_esc)
            except OSError as exc:
                # Without @v there is no lock to take and nothing of the download to remove: a tree whose
                # download is gone entirely (Go recreates @v before it extracts).  Any other failure stops.
                if exc.errno != errno.ENOENT or version.download or version.tmp:
                    errors.add('cache/download/%s/@v' % module_esc, exc)
                    return FAILED
            if at_v_fd is not None:
                try:
                    lock_fd = self._lock(at_v_fd, version_esc)
                except OSError as exc:
                    errors.add(label + '.lock', exc)
                    return FAILED
                if lock_fd is None:
                    return LOCKED
                if part == TMP:
                    self._remove_temporaries(at_v_fd, version_esc)
                    return True
                if self.policy.state == 'present' and self._used_since_scan(version, at_v_fd):
                    return USED_SINCE_SCAN
                # .ziphash first: from then on Go no longer sees the version as present.
                if '.ziphash' in version.download:
                    if not unlink_entry(version_esc + '.ziphash', at_v_fd, errors, label + '.ziphash'):
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
                    ok = remove_tree(parent_fd, '%s@%s' % (elem, version_esc), self.boundary, errors, label)[0]
                finally:
                    os.close(parent_fd)
            keep_suffixes = ('.lock', '.mod', '.info') if part == GRAPH else ('.lock',)
            if at_v_fd is not None:
                for suffix in ('.zip', '.partial', '.mod', '.info'):
                    if suffix in version.download and suffix not in keep_suffixes:
                        ok = unlink_entry(version_esc + suffix, at_v_fd, errors, label + suffix) and ok
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
                unlink_entry(name, at_v_fd, self.outcome.errors, name)

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
        cache_name, download_name = _modcache.DOWNLOAD_DIR
        for name, st in _fs.list_dir(self.root_fd):
            if not stat.S_ISDIR(st.st_mode):
                self.sweep_file(name, self.root_fd, name)
            elif name != cache_name:
                self.sweep_tree(self.root_fd, name, name)
                continue
            else:
                try:
                    cache_fd = self.boundary.open_dir(name, self.root_fd, name)
                except OSError as exc:
                    self.outcome.errors.add(name, exc)
                    continue
                try:
                    for child, child_st in _fs.list_dir(cache_fd):
                        rel = name + '/' + child
                        if stat.S_ISDIR(child_st.st_mode) and child == download_name:
                            self._empty_download(cache_fd, rel)
                        elif stat.S_ISDIR(child_st.st_mode):
                            self.sweep_tree(cache_fd, child, rel)
                        else:
                            self.sweep_file(child, cache_fd, rel)
                finally:
                    os.close(cache_fd)

    def _empty_download(self, cache_fd, rel):
        try:
            download_fd = self.boundary.open_dir(_modcache.DOWNLOAD_DIR[1], cache_fd, rel)
        except OSError as exc:
            self.outcome.errors.add(rel, exc)
            return
        try:
            removed = remove_contents(download_fd, self.boundary, self.outcome.errors, rel)[1]
            self.outcome.cleared_other = self.outcome.cleared_other or removed > 0
        finally:
            os.close(download_fd)


class FuzzCachePruner(_CachePruner):
    """Fuzz cache: units are corpus files; their age is their mtime (Go never touches them again)."""

    def __init__(self, root_fd, root, policy, now, check_mode, guard):
        super(FuzzCachePruner, self).__init__(root_fd, root, policy, now, check_mode, guard)
        self.errors = _fs.ErrorLog()
        self.files = []
        total = 0
        for _parent, rel, name, st in _fs.walk_files(root_fd, '', self.boundary, self.errors):
            self.files.append((rel, name, st.st_mtime_ns, st.st_size, st.st_blocks * 512))
            total += st.st_size
        self.outcome = Outcome(root, 'fuzz', total)
        self.outcome.errors = self.errors

    def plan(self, free_bytes, fs_size):
        plan = Plan()
        for _rel, _name, mtime, size, disk in self.files:
            plan.add(mtime, size, disk, UNIT, self.recent(mtime))
        self.select(plan, self.outcome.before_bytes, free_bytes, fs_size)
        if self.check_mode and self.policy.state == 'absent':
            self.outcome.cleared_other = any(stat.S_ISDIR(st.st_mode) for _name, st in _fs.list_dir(self.root_fd))
        return plan

    def execute(self, plan):
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
                elif unlink_entry(name, parent_fd, self.errors, path):
                    self.outcome.removed(path, size, disk)
                else:
                    self.outcome.keep(FAILED)
            finally:
                os.close(parent_fd)
        # Directories only once every file is gone: a corpus file that stayed must not go with its directory.
        if self.policy.state == 'absent' and not self.check_mode and self.outcome.busy is None and not any(
                self.outcome.kept.get(reason) for reason in (FAILED, REASONS[UNREAD])) and not self.errors.total:
            for name, st in _fs.list_dir(self.root_fd):
                if stat.S_ISDIR(st.st_mode):
                    self.sweep_tree(self.root_fd, name, name)


def prune_root(root_fd, real_path, target, policy, check_mode, now, busy_uid, freed_on_device):
    """Prune the cache open as root_fd (run as its owner by _locate.on_root); Outcome.as_dict() plus its device.

    `busy_uid`: whose Go processes make the cache busy (None: anyone's).
    `freed_on_device`: {st_dev: bytes} planned so far in this run, so that
    min_free in check mode accounts for caches planned before this one on the
    same file system exactly as a real run's statvfs would.
    """
    guard = BusyGuard(policy, busy_uid)
    kind = target.kind
    dev = os.fstat(root_fd).st_dev
    fs = _fs.filesystem_facts(fd=root_fd)
    free = fs.get('free_bytes')
    if free is not None and check_mode:
        free += freed_on_device.get(str(dev), 0)
    if kind == 'build':
        pruner = BuildCachePruner(root_fd, real_path, policy, now, check_mode, guard)
    elif kind == 'module':
        pruner = ModuleCachePruner(root_fd, real_path, policy, now, check_mode, guard, bool(fs.get('atime_updates')))
    else:
        pruner = FuzzCachePruner(root_fd, real_path, policy, now, check_mode, guard)
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
    result = outcome.as_dict()
    result['path'] = _fs.printable(target.path)
    result['real_path'] = _fs.printable(real_path)
    result['device'] = str(dev)
    result['removed_disk_bytes'] = outcome.removed_disk_bytes
    return result


def prune_cache(path, kind, policy, check_mode=False, now=None, busy_uid=None, freed_on_device=None):
    """Prune the cache directory `path` (an explicit cache: checked, then pruned as its owner)."""
    target = _locate.Target(path, kind)
    return prune_target(target, policy, check_mode, now, busy_uid, freed_on_device)[1]


def prune_target(target, policy, check_mode=False, now=None, busy_uid=None, freed_on_device=None):
    """[state, result or reason, owner] of pruning one target as its owner (see _locate.on_root)."""
    now = time.time() if now is None else now
    freed_on_device = {} if freed_on_device is None else freed_on_device
    outcome = _locate.on_root(target, prune_root, policy, check_mode, now, busy_uid, dict(freed_on_device))
    if outcome[0] == _locate.OK:
        result = outcome[1]
        device = result.pop('device')
        freed_on_device[device] = freed_on_device.get(device, 0) + result.pop('removed_disk_bytes', 0)
    return outcome
