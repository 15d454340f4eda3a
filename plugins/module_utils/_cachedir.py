# -*- coding: utf-8 -*-
# Copyright (c) gofleet.cache contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

"""Preparing a Go cache directory for an account, and moving the old cache into it.

The directory: a missing parent inside a directory the account owns (its
home, its GOPATH) is made as the account (a root-owned ~/.cache or
GOPATH/pkg would lock the account out of its own files); other missing
parents belong to root.  The cache directory itself gets the owner, group
and mode asked for.

Moving:

Both caches may be moved freely: the build cache is content-addressed (a
moved entry is found again) and a moved module cache only costs cache misses
in the build cache, never an error.  What matters is that no state along the
way makes Go believe in something that is not there:

- On one file system the cache is renamed: atomic.
- Across file systems every file is copied to a temporary name and renamed
  into place, so a file under its final name is always whole.  A module
  version counts as present for Go once its `.ziphash` exists, so every
  `.ziphash` is copied after everything else; a run killed at any point leaves
  the new cache with versions that are whole or absent.  A second run skips
  what is already there (resumable).
- The old cache is then removed unit by unit, as `go_cache_prune state=absent`
  removes it (the same code), and finally its root.
"""

from __future__ import annotations

import errno
import grp
import os
import stat

from ansible_collections.gofleet.cache.plugins.module_utils import _fs
from ansible_collections.gofleet.cache.plugins.module_utils import _prune
from ansible_collections.gofleet.cache.plugins.module_utils import _users
from ansible_collections.gofleet.cache.plugins.module_utils._units import OptionError

METHODS = ('move', 'clean')
KINDS = ('build', 'module')
COPY_CHUNK = 1 << 20
TEMPORARY_PREFIX = '.gofleet-migrate-'


def _is_within(path, root):
    return path == root or path.startswith(root.rstrip('/') + '/')


def _device_of(path):
    """st_dev of path, or of its nearest existing ancestor (where a new directory would be made)."""
    while True:
        try:
            return os.stat(path).st_dev
        except OSError as exc:
            if exc.errno not in (errno.ENOENT, errno.ENOTDIR) or path == os.path.dirname(path):
                raise
            path = os.path.dirname(path)


def _is_empty_dir(path):
    try:
        return os.path.isdir(path) and not os.path.islink(path) and not os.listdir(path)
    except OSError:
        return False


class _Copier(object):
    """Copies a tree file by file: owner, mode and times kept, links copied as links, never followed."""

    def __init__(self, root_dev, check_mode, defer_suffix=None):
        self.root_dev = root_dev
        self.check_mode = check_mode
        self.defer_suffix = defer_suffix
        self.deferred = []
        self.files = 0
        self.bytes = 0
        self.already_there = 0
        self.errors = _fs.ErrorLog()
        self.touched_version_lists = set()

    def copy_tree(self, src_fd, dest, rel):
        """Copy the directory open as src_fd to the path dest (made if missing)."""
        st = os.fstat(src_fd)
        if not self.check_mode:
            self._make_dir(dest, st)
        try:
            listing = _fs.list_dir(src_fd)
        except OSError as exc:
            self.errors.add(rel or '.', exc)
            return
        for name, child_st in listing:
            child_rel = rel + '/' + name if rel else name
            target = os.path.join(dest, name)
            if stat.S_ISDIR(child_st.st_mode):
                if child_st.st_dev != self.root_dev:
                    self.errors.add(child_rel, OSError(errno.EXDEV, 'mount point inside the cache: not copied'))
                    continue
                try:
                    child_fd = _fs.open_dir(name, src_fd)
                except OSError as exc:
                    self.errors.add(child_rel, exc)
                    continue
                try:
                    self.copy_tree(child_fd, target, child_rel)
                finally:
                    os.close(child_fd)
            elif self.defer_suffix and name.endswith(self.defer_suffix):
                self.deferred.append((rel, name, target, child_st))
            else:
                self.copy_entry(src_fd, name, target, child_rel, child_st)
        if not self.check_mode:
            self._settle_dir(dest, st)

    def copy_deferred(self, src_fd):
        for rel, name, target, child_st in self.deferred:
            try:
                parent_fd = _fs.open_rel_dir(src_fd, rel)
            except OSError as exc:
                self.errors.add(rel, exc)
                continue
            try:
                self.copy_entry(parent_fd, name, target, rel + '/' + name, child_st)
            finally:
                os.close(parent_fd)

    def copy_entry(self, src_dir_fd, name, target, rel, st):
        if os.path.lexists(target):
            self.already_there += 1
            return
        if not (stat.S_ISREG(st.st_mode) or stat.S_ISLNK(st.st_mode)):
            return  # sockets, fifos: nothing Go keeps in a cache
        self.files += 1
        self.bytes += st.st_size if stat.S_ISREG(st.st_mode) else 0
        if rel.startswith('cache/download/') and rel.endswith('.mod'):
            self.touched_version_lists.add(os.path.dirname(rel))
        if self.check_mode:
            return
        directory = os.path.dirname(target)
        temporary = os.path.join(directory, TEMPORARY_PREFIX + name)
        restore = self._writable(directory)
        try:
            if stat.S_ISLNK(st.st_mode):
                os.symlink(os.readlink(name, dir_fd=src_dir_fd), temporary)
            else:
                self._copy_file(src_dir_fd, name, temporary)
            if os.geteuid() == 0:
                os.chown(temporary, st.st_uid, st.st_gid, follow_symlinks=False)
            if not stat.S_ISLNK(st.st_mode):
                os.chmod(temporary, stat.S_IMODE(st.st_mode))
            os.utime(temporary, ns=(st.st_atime_ns, st.st_mtime_ns), follow_symlinks=False)
            os.rename(temporary, target)
        except OSError as exc:
            self.errors.add(rel, exc)
            try:
                os.unlink(temporary)
            except OSError:
                pass
        finally:
            if restore is not None:
                os.chmod(directory, restore)

    @staticmethod
    def _copy_file(src_dir_fd, name, temporary):
        src = _fs.open_file(name, src_dir_fd)
        try:
            dest = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, 'O_NOFOLLOW', 0), 0o600)
            try:
                while True:
                    chunk = os.read(src, COPY_CHUNK)
                    if not chunk:
                        break
                    view = memoryview(chunk)
                    while view:
                        view = view[os.write(dest, view):]
            finally:
                os.close(dest)
        finally:
            os.close(src)

    def _make_dir(self, dest, st):
        if not os.path.isdir(dest):
            parent = os.path.dirname(dest)
            restore = self._writable(parent)
            try:
                os.mkdir(dest, 0o700)
                if os.geteuid() == 0:
                    os.chown(dest, st.st_uid, st.st_gid)
            finally:
                if restore is not None:
                    os.chmod(parent, restore)
        self._writable(dest)

    @staticmethod
    def _settle_dir(dest, st):
        # Go's module directories are read-only: they get their mode once their content is in.
        os.chmod(dest, stat.S_IMODE(st.st_mode))
        os.utime(dest, ns=(st.st_atime_ns, st.st_mtime_ns))

    @staticmethod
    def _writable(directory):
        """Make a read-only directory writable for the owner; returns the mode to restore (or None)."""
        mode = stat.S_IMODE(os.stat(directory).st_mode)
        if mode & stat.S_IWUSR:
            return None
        os.chmod(directory, mode | stat.S_IRWXU)
        return mode


def parse_mode(value, option='mode'):
    """Permission bits from '0700', '2775' or an int; OptionError otherwise."""
    if isinstance(value, int) and not isinstance(value, bool):
        mode = value
    else:
        try:
            mode = int(str(value), 8)
        except ValueError:
            raise OptionError(option, value, 'expected an octal mode such as 0700 or 2775')
    if mode < 0 or mode > 0o7777:
        raise OptionError(option, value, 'expected an octal mode such as 0700 or 2775')
    return mode


def ensure_dir(path, account, group=None, mode=0o700, check_mode=False):
    """Make `path` a directory owned by account (and group) with mode; returns (changed, [made])."""
    real = _prune.check_cache_path(path, 'path')
    gid = account.pw_gid
    if group is not None:
        try:
            gid = grp.getgrnam(group).gr_gid if not str(group).isdigit() else int(group)
        except KeyError:
            raise OptionError('group', group, 'no such group')
    if os.path.lexists(real) and not os.path.isdir(real):
        raise OptionError('path', path, 'exists and is not a directory')
    missing = []
    probe = real
    while not os.path.isdir(probe):
        missing.append(probe)
        probe = os.path.dirname(probe)
    missing.reverse()
    changed = bool(missing)
    if not check_mode:
        for directory in missing[:-1]:
            if account.pw_uid != 0 and os.stat(os.path.dirname(directory)).st_uid == account.pw_uid:
                # Inside the account's own tree (its home, its GOPATH): the account's, as Go would make it.
                with _users.acting_as(account):
                    os.mkdir(directory, 0o755)
            else:
                os.mkdir(directory, 0o755)
        if missing:
            os.mkdir(real, 0o700)
    if os.path.isdir(real):
        st = os.stat(real)
        wrong_owner = (st.st_uid, st.st_gid) != (account.pw_uid, gid)
        wrong_mode = stat.S_IMODE(st.st_mode) != mode
        changed = changed or wrong_owner or wrong_mode
        if not check_mode:
            if wrong_owner or missing:
                os.chown(real, account.pw_uid, gid)
            os.chmod(real, mode)  # after chown, which clears the setgid bit
    return changed, missing


def check_locations(src, dest, kind):
    """(real src, dest) after refusing contradictions; OptionError names the option."""
    if kind not in KINDS:
        raise OptionError('kind', kind, 'expected one of %s' % ', '.join(KINDS))
    for option, value in (('migrate_from', src), ('path', dest)):
        if not value or not os.path.isabs(value):
            raise OptionError(option, value, 'must be an absolute path')
    real_src = os.path.realpath(src)
    real_dest = os.path.realpath(dest)
    if _is_within(real_dest, real_src) or _is_within(real_src, real_dest):
        raise OptionError('path', dest, 'the new location %s and the old one %s must not contain each other'
                          % (real_dest, real_src))
    return real_src, real_dest


def nothing_moved():
    """The result of migrate() when nothing was (or would be) moved or removed."""
    return {'changed': False, 'action': 'none', 'files': 0, 'bytes': 0, 'already_there': 0, 'removed_bytes': 0,
            'errors': [], 'errors_total': 0, 'reason': None}


def migrate(src, dest, kind, method='move', check_mode=False, if_busy='wait', busy_timeout='15m', busy_uid=None):
    """Move the cache at src into dest (method move) or remove it (method clean).

    Returns {changed, action: none|rename|copy|clean, files, bytes, already_there,
    removed_bytes, errors, errors_total}.  A missing src, or one that is not
    a Go cache of that kind, is left alone (action none, with the reason).
    """
    if method not in METHODS:
        raise OptionError('migrate', method, 'expected one of %s' % ', '.join(METHODS))
    real_src, dest = check_locations(src, dest, kind)
    result = nothing_moved()
    if not os.path.isdir(real_src):
        result['reason'] = 'nothing at the old location'
        return result
    try:
        _prune.check_root(real_src, kind, 'migrate_from')
    except OptionError as exc:
        result['reason'] = 'old location left alone: %s' % exc.reason
        return result
    policy = _prune.Policy(state='absent', if_busy=if_busy, busy_timeout=busy_timeout)
    if method == 'move':
        st = os.stat(real_src)
        if _device_of(dest) == st.st_dev and (not os.path.exists(dest) or _is_empty_dir(dest)):
            result.update(changed=True, action='rename')
            if not check_mode:
                _rename(real_src, dest)
            return result
        copier = _copy(real_src, dest, kind, check_mode, st.st_dev)
        result.update(changed=copier.files > 0, action='copy', files=copier.files, bytes=copier.bytes,
                      already_there=copier.already_there, **copier.errors.as_result())
        if copier.errors.total:
            return result  # the old cache stays until every file is across; a second run resumes
    removal = _prune.prune_cache(real_src, kind, policy, check_mode, busy_uid=busy_uid)
    result['removed_bytes'] = removal['removed_bytes']
    result['changed'] = True
    if method == 'clean':
        result['action'] = 'clean'
    if removal['busy']:
        result['reason'] = 'Go builds were using the old cache: %d units left there' % removal['kept'].get('busy', 0)
        return result
    if not check_mode:
        errors = _fs.ErrorLog()
        parent_fd = _fs.open_dir(os.path.dirname(real_src))
        try:
            _prune.remove_tree(parent_fd, os.path.basename(real_src), os.lstat(real_src).st_dev, errors,
                               real_src)
        finally:
            os.close(parent_fd)
        result['errors'] = (result['errors'] + removal['errors'] + errors.items)[:_fs.MAX_REPORTED_ERRORS]
        result['errors_total'] += removal['errors_total'] + errors.total
    return result


def _rename(real_src, dest):
    """Rename the cache into place; an empty directory prepared at dest keeps its owner and mode."""
    prepared = os.stat(dest) if os.path.isdir(dest) else None
    parent = os.path.dirname(dest)
    if not os.path.isdir(parent):
        os.makedirs(parent, 0o755)
    os.rename(real_src, dest)
    if prepared is not None:
        os.chown(dest, prepared.st_uid, prepared.st_gid)
        os.chmod(dest, stat.S_IMODE(prepared.st_mode))


def _copy(real_src, dest, kind, check_mode, root_dev):
    """Copy every file; for a module cache every .ziphash last, then rewrite the @v/list files touched."""
    copier = _Copier(root_dev, check_mode, defer_suffix='.ziphash' if kind == 'module' else None)
    if not check_mode and not os.path.isdir(os.path.dirname(dest)):
        os.makedirs(os.path.dirname(dest), 0o755)
    prepared = os.stat(dest) if os.path.isdir(dest) else None
    src_fd = _fs.open_dir(real_src)
    try:
        copier.copy_tree(src_fd, dest, '')
        copier.copy_deferred(src_fd)
    finally:
        os.close(src_fd)
    if check_mode:
        return copier
    if prepared is not None:
        # A directory prepared for the cache keeps its owner and mode.
        os.chown(dest, prepared.st_uid, prepared.st_gid)
        os.chmod(dest, stat.S_IMODE(prepared.st_mode))
    dest_fd = _fs.open_dir(dest)
    try:
        for at_v in sorted(copier.touched_version_lists):
            # Merged caches: @v/list must name every version whose .mod is now there (Go reads it offline).
            try:
                at_v_fd = _fs.open_rel_dir(dest_fd, at_v)
            except OSError as exc:
                copier.errors.add(at_v, exc)
                continue
            try:
                _prune.rewrite_version_list(at_v_fd, copier.errors, at_v + '/list')
            finally:
                os.close(at_v_fd)
    finally:
        os.close(dest_fd)
    return copier
