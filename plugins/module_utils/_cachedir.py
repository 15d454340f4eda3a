# -*- coding: utf-8 -*-
# Copyright (c) gofleet.cache contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

"""Preparing a Go cache directory for an account, and moving the old cache into it.

Who acts where (SECURITY.md): the path is walked from / one component at a
time.  Root creates what is missing only in directories root alone controls,
and follows only links root owns there.  From the first directory the account
owns, a child running as the account goes on, following the account's own
links as Go would and creating what is missing as the account (a root-owned
~/.cache or GOPATH/pkg would lock the account out of its own files).  A
directory owned by any other account on the way is refused.  The directory
reached is then held open: its owner, group and mode are set on that
descriptor, after checking that it is the account's (or root's, in root's own
space), never by name.

Moving, as the old cache's owner (the old location is the account's choice,
so it must be the account's own Go cache):

Both caches may be moved freely: the build cache is content-addressed (a
moved entry is found again) and a moved module cache only costs cache misses
in the build cache, never an error.  What matters is that no state along the
way makes Go believe in something that is not there:

- On one mount the cache is renamed: atomic.  Where the account may not write
  both parents, root renames the very directory the account's child checked
  (held open by both), and checks afterwards that it is what arrived.
- Otherwise every file is copied to a fresh temporary name and renamed into
  place, so a file under its final name is always whole.  A module version
  counts as present for Go once its `.ziphash` exists, so the `.ziphash` files
  are copied last, and only by a run in which everything else was copied
  without an error: a run killed or failing (ENOSPC) at any point leaves the
  new cache with versions that are whole or absent for Go.  A second run
  skips what is already there (resumable).
- The old cache is then removed unit by unit, as `go_cache_prune state=absent`
  removes it (the same code), and finally its root.
"""

from __future__ import annotations

import errno
import os
import stat
import time

from ansible_collections.gofleet.cache.plugins.module_utils import _fs
from ansible_collections.gofleet.cache.plugins.module_utils import _locate
from ansible_collections.gofleet.cache.plugins.module_utils import _privsep
from ansible_collections.gofleet.cache.plugins.module_utils import _prune
from ansible_collections.gofleet.cache.plugins.module_utils._units import OptionError

METHODS = ('move', 'clean')
KINDS = ('build', 'module')
COPY_CHUNK = 1 << 20
TEMPORARY_PREFIX = '.gofleet-migrate-'
ZIPHASH = '.ziphash'
_O_DIR_FOLLOW = os.O_RDONLY | os.O_DIRECTORY | getattr(os, 'O_CLOEXEC', 0)
_O_NEW = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, 'O_NOFOLLOW', 0) | getattr(os, 'O_CLOEXEC', 0)


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


def _is_within(path, root):
    return path == root or path.startswith(root.rstrip('/') + '/')


def check_locations(src, dest, kind):
    """(src, dest) normalized, after refusing contradictions; OptionError names the option."""
    if kind not in KINDS:
        raise OptionError('kind', kind, 'expected one of %s' % ', '.join(KINDS))
    for option, value in (('migrate_from', src), ('path', dest)):
        if not value or not os.path.isabs(value):
            raise OptionError(option, value, 'must be an absolute path')
    src, dest = os.path.normpath(src), os.path.normpath(dest)
    if _is_within(dest, src) or _is_within(src, dest):
        raise OptionError('path', dest, 'the new location %s and the old one %s must not contain each other'
                          % (dest, src))
    return src, dest


def nothing_moved():
    """The result of migrate() when nothing was (or would be) moved or removed."""
    return {'changed': False, 'action': 'none', 'files': 0, 'bytes': 0, 'already_there': 0, 'removed_bytes': 0,
            'errors': [], 'errors_total': 0, 'reason': None}


# --------------------------------------------------------------------------- preparing the directory


class Prepared(object):
    """The cache directory, held open: fd (None in check mode before it exists), its parent and name."""

    def __init__(self, path, fd, parent_fd, name, created, device, mount, owners=()):
        self.path = path
        # Who the directory may belong to before it is settled: in root's space root or the account, in the
        # account's own space the account only (anything else was reached through the account's links).
        self.owners = owners
        self.fd = fd
        self.parent_fd = parent_fd
        self.name = name
        self.created = created
        # Device and mount of the directory, or of the nearest one that exists (check mode).
        self.device = device
        self.mount = mount
        # After the old cache was renamed into place: that directory, held since the owner's child checked it.
        self.renamed_fd = None

    def close(self):
        for fd in (self.fd, self.parent_fd, self.renamed_fd):
            if fd is not None:
                os.close(fd)
        self.fd = self.parent_fd = self.renamed_fd = None


def _refusal(path, reason):
    return OptionError('path', path, reason)


def prepare(path, account, check_mode=False):
    """Walk to `path` (see the module docstring), creating what is missing; a Prepared holding it open."""
    normal = _locate.check_cache_path(path)
    _locate.protected_dirs()
    pending = [part for part in normal.split('/') if part]
    fd = _fs.open_dir('/')
    parent_fd = None
    here = '/'
    created = []
    followed = 0
    try:
        while pending:
            st = os.fstat(fd)
            if account.pw_uid != 0 and st.st_uid == account.pw_uid:
                return _prepare_as_account(normal, fd, here, pending, account, check_mode, created)
            if st.st_uid != 0:
                raise _refusal(path, '%s belongs to %s: %s\'s cache directory is not made in another account\'s '
                               'directory' % (here, _locate.owner_name(st.st_uid), account.pw_name))
            part = pending[0]
            try:
                target = _fs.trusted_link_target(fd, part)
            except OSError as exc:
                if exc.errno == errno.ELOOP:
                    raise _refusal(path, '%s is a symbolic link that another account controls'
                                   % os.path.join(here, part))
                if exc.errno != errno.ENOENT:
                    raise
                target = None
            if target is not None:
                followed += 1
                if followed > _fs.MAX_SYMLINKS or '..' in target.split('/'):
                    raise _refusal(path, '%s: a symbolic link root does not follow' % os.path.join(here, part))
                pending[:1] = [item for item in target.split('/') if item and item != '.']
                if target.startswith('/'):
                    os.close(fd)
                    fd = -1
                    fd = _fs.open_dir('/')
                    here = '/'
                continue
            pending.pop(0)
            child = os.path.join(here, part)
            try:
                next_fd = _fs.open_dir(part, fd)
            except OSError as exc:
                if exc.errno == errno.ENOTDIR:
                    raise _refusal(path, '%s exists and is not a directory' % child)
                if exc.errno != errno.ENOENT:
                    raise
                if check_mode:
                    created.append(child)
                    created.extend(os.path.join(child, *pending[:index + 1]) for index in range(len(pending)))
                    device = os.fstat(fd).st_dev
                    return Prepared(normal, None, None, None, created, device, _fs.mount_id(fd))
                next_fd = _make_dir_as_root(fd, part, child, 0o700 if not pending else 0o755, path)
                created.append(child)
            else:
                if not pending and _fs.controlled_by_others(os.fstat(fd)) and os.fstat(next_fd).st_uid == 0 \
                        and account.pw_uid != 0:
                    # Others may rename root's directories in there: root hands over only one it just made.
                    os.close(next_fd)
                    raise _refusal(path, '%s exists in a directory other accounts may write; root does not hand '
                                   'a directory it did not make there to %s' % (child, account.pw_name))
            if not pending:
                parent_fd = fd
            else:
                os.close(fd)
            fd = next_fd
            here = child
        return _held(normal, fd, parent_fd, account, created, (0, account.pw_uid))
    except BaseException:
        for item in (fd, parent_fd):
            if item is not None and item >= 0:
                os.close(item)
        raise


def _make_dir_as_root(parent_fd, name, child, mode, path):
    """mkdir in a root-owned directory, then open what was made and check it is root's own, still empty."""
    try:
        os.mkdir(name, mode, dir_fd=parent_fd)
    except OSError as exc:
        if exc.errno != errno.EEXIST:
            raise
    fd = _fs.open_dir(name, parent_fd)
    st = os.fstat(fd)
    if st.st_uid not in (0,) or _fs.list_dir(fd):
        os.close(fd)
        raise _refusal(path, '%s was replaced while it was being made' % child)
    return fd


def _held(normal, fd, parent_fd, account, created, owners):
    """The Prepared for the directory reached; refused when it is a system or home directory or not ours."""
    st = os.fstat(fd)
    parent = os.fstat(parent_fd) if parent_fd is not None else None
    reason = _locate.protected_dirs().get((st.st_dev, st.st_ino))
    if not reason and st.st_uid not in owners:
        reason = 'a directory that belongs to %s' % _locate.owner_name(st.st_uid)
    if not reason and parent is not None and parent.st_uid not in (0, account.pw_uid):
        reason = 'a directory inside one that belongs to %s' % _locate.owner_name(parent.st_uid)
    if reason:
        raise _refusal(normal, 'refusing %s (the cache directory of %s)' % (reason, account.pw_name))
    return Prepared(normal, fd, parent_fd, os.path.basename(normal), created, st.st_dev, _fs.mount_id(fd), owners)


def _prepare_as_account(normal, fd, here, pending, account, check_mode, created):
    """The rest of the walk as the account; root then checks the directory it handed over."""
    try:
        outcome = _privsep.call_as(_privsep.Identity.of_account(account), _walk_as_account, fd, here, pending,
                                   check_mode, keep_fds=[fd])
    finally:
        os.close(fd)
    if isinstance(outcome, _privsep.WithFds):
        made, fds = outcome.value, outcome.fds
    else:
        made, fds = outcome, []
    created.extend(made['created'])
    if not fds:
        return Prepared(normal, None, None, None, created, made['device'], made['mount'])
    parent_fd, final_fd = fds
    try:
        if not stat.S_ISDIR(os.fstat(final_fd).st_mode) or not stat.S_ISDIR(os.fstat(parent_fd).st_mode):
            raise _refusal(normal, 'did not lead to a directory')
        return _held(normal, final_fd, parent_fd, account, created, (account.pw_uid,))
    except BaseException:
        os.close(final_fd)
        os.close(parent_fd)
        raise


def _walk_as_account(fd, here, pending, check_mode):
    """(Child, as the account.) Open or make each remaining component, following the account's own links."""
    created = []
    fd = os.dup(fd)
    parent_fd = None
    try:
        for index, part in enumerate(pending):
            last = index == len(pending) - 1
            child = os.path.join(here, part)
            try:
                next_fd = _fs._open(part, _O_DIR_FOLLOW, fd)  # pylint: disable=protected-access
            except OSError as exc:
                if exc.errno != errno.ENOENT:
                    raise
                if check_mode:
                    created.extend(os.path.join(here, *pending[:stop + 1]) for stop in range(index, len(pending)))
                    return {'created': created, 'device': os.fstat(fd).st_dev, 'mount': _fs.mount_id(fd)}
                # Go's MkdirAll makes parents 0777 minus the umask; the cache itself starts private.
                try:
                    os.mkdir(part, 0o700 if last else 0o777, dir_fd=fd)
                    created.append(child)
                except OSError as exc2:
                    if exc2.errno != errno.EEXIST:
                        raise
                next_fd = _fs._open(part, _O_DIR_FOLLOW, fd)  # pylint: disable=protected-access
            if last:
                parent_fd = fd
            else:
                os.close(fd)
            fd = next_fd
            here = child
        result = _privsep.WithFds({'created': created}, [parent_fd, fd])
        parent_fd = fd = None
        return result
    finally:
        for item in (fd, parent_fd):
            if item is not None:
                os.close(item)


def settle(prepared, account, gid, mode, check_mode=False, renamed_from=None):
    """Give the held directory its owner, group and mode (by descriptor); whether anything changed.

    After a rename (`renamed_from`: the old cache's owner) the directory is
    the old cache, held since the owner's child checked it, and must still be
    that account's.  Nothing is looked up again by name.
    """
    if renamed_from is not None:
        fd, owners = prepared.renamed_fd, (renamed_from.pw_uid,)
    else:
        fd, owners = prepared.fd, prepared.owners
    if fd is None:
        return True  # check mode: it would be made
    st = os.fstat(fd)
    if st.st_uid not in owners:
        raise _refusal(prepared.path, 'changed while it was being prepared (now owned by %s)'
                       % _locate.owner_name(st.st_uid))
    wrong_owner = (st.st_uid, st.st_gid) != (account.pw_uid, gid)
    wrong_mode = stat.S_IMODE(st.st_mode) != mode
    if not check_mode:
        if wrong_owner:
            os.fchown(fd, account.pw_uid, gid)
        if wrong_owner or wrong_mode:
            os.fchmod(fd, mode)  # after chown, which clears the setgid bit
    return wrong_owner or wrong_mode


def prepare_and_migrate(path, account, gid, mode, kind=None, migrate_from=None, method='keep', old_owner=None,
                        check_mode=False, if_busy='wait', busy_timeout='15m'):
    """What go_cache_dir does: (changed, created, migration result) for the cache directory `path`.

    The directory is prepared and settled (owner, group, mode) before the
    old cache moves in as `old_owner` (default `account`), and settled again
    when a rename put the old directory in its place.
    """
    old_owner = account if old_owner is None else old_owner
    # Nothing to move when the old location is the new one (a second run after a change of setting).
    migrating = bool(migrate_from) and method != 'keep' and os.path.normpath(migrate_from) != os.path.normpath(path)
    if migrating:
        # Every refusal before the directory is made: bad input changes nothing on disk.
        migrate_from, _dest = check_locations(migrate_from, path, kind)
    prepared = prepare(path, account, check_mode)
    try:
        changed = bool(prepared.created)
        changed = settle(prepared, account, gid, mode, check_mode) or changed
        result = nothing_moved()
        if migrating:
            result = migrate(prepared, migrate_from, kind, method, old_owner, check_mode, if_busy, busy_timeout)
            if prepared.renamed_fd is not None:
                settle(prepared, account, gid, mode, renamed_from=old_owner)
        moved = result.pop('changed', False)
        return changed or moved, prepared.created, result
    finally:
        prepared.close()


# --------------------------------------------------------------------------- moving the old cache


def migrate(prepared, src, kind, method, owner, check_mode=False, if_busy='wait', busy_timeout='15m'):
    """Move the cache at src into the prepared directory (method move) or remove it (method clean).

    `owner`: the account the old cache belongs to; everything runs as it.
    Returns {changed, action: none|rename|copy|clean, files, bytes,
    already_there, removed_bytes, errors, errors_total, reason}.  A missing
    src, or one that is not the owner's Go cache of that kind, is left alone
    (action none, with the reason).
    """
    if method not in METHODS:
        raise OptionError('migrate', method, 'expected one of %s' % ', '.join(METHODS))
    policy = _prune.Policy(state='absent', if_busy=if_busy, busy_timeout=busy_timeout)
    _locate.protected_dirs()
    keep = [fd for fd in (prepared.fd, prepared.parent_fd) if fd is not None]
    outcome = _privsep.call_as(_privsep.Identity.of_account(owner), _migrate_as_owner, prepared, src, kind, method,
                               owner.pw_uid, check_mode, policy, keep_fds=keep)
    if not isinstance(outcome, _privsep.WithFds):
        return outcome
    result, fds = outcome.value, outcome.fds
    try:
        if 'renamed' in result:
            return _renamed_by_owner(prepared, result, fds, owner)
        if len(fds) != 2:
            raise OptionError('migrate_from', src, 'the old cache changed while it was being moved')
        if 'rename_by_root' in result:
            return _rename_for_owner(prepared, result, fds, owner)
        return _rmdir_for_owner(result, fds, owner)
    finally:
        for fd in fds:
            os.close(fd)


def root_alone_writes(st):
    """Whether no account but root may change the entries of this directory: then a name in it cannot be
    swapped between root's check and root's use of it."""
    return st.st_uid == 0 and not st.st_mode & (stat.S_IWGRP | stat.S_IWOTH)


def _plain_name(name, option, value):
    if not isinstance(name, str) or not name or '/' in name or name in ('.', '..'):
        raise OptionError(option, value, 'the old cache changed while it was being moved')
    return name


def _migrate_as_owner(prepared, src, kind, method, uid, check_mode, policy):
    """(Child, as the old cache's owner.)  Check the old cache, then rename, copy or clean it."""
    result = nothing_moved()
    try:
        src_fd = _fs._open(src, _O_DIR_FOLLOW)  # pylint: disable=protected-access
    except OSError as exc:
        result['reason'] = ('nothing at the old location' if exc.errno in (errno.ENOENT, errno.ENOTDIR)
                            else 'old location left alone: %s' % exc.strerror)
        return result
    try:
        st = os.fstat(src_fd)
        if prepared.fd is not None and os.path.samestat(st, os.fstat(prepared.fd)):
            result['reason'] = 'the old location is the new one'
            return result
        if st.st_uid != uid:
            result['reason'] = ('old location left alone: owned by %s, not by %s'
                                % (_locate.owner_name(st.st_uid), _locate.owner_name(uid)))
            return result
        try:
            _locate.check_root_fd(src_fd, kind, src, 'migrate_from')
        except OptionError as exc:
            result['reason'] = 'old location left alone: %s' % exc.reason
            return result
        if method == 'move':
            renamed = _try_rename(prepared, src, src_fd, st, check_mode, result)
            if renamed is not None:
                return renamed
            _copy(src_fd, prepared, kind, check_mode, result)
            if result['errors_total']:
                return result  # the old cache stays until every file is across; a second run resumes
        return _remove_old(src, src_fd, kind, method, check_mode, policy, result)
    finally:
        os.close(src_fd)


def _parent_of(src, src_fd):
    """(Child.)  fd of the directory holding src, checked to hold that very directory under its name."""
    parent_fd = _fs._open(os.path.dirname(src), _O_DIR_FOLLOW)  # pylint: disable=protected-access
    try:
        entry = os.stat(os.path.basename(src), dir_fd=parent_fd, follow_symlinks=False)
        held = os.fstat(src_fd)
        if (entry.st_dev, entry.st_ino) != (held.st_dev, held.st_ino):
            raise OSError(errno.ESTALE, 'the old cache changed while it was being moved', src)
    except BaseException:
        os.close(parent_fd)
        raise
    return parent_fd


def _try_rename(prepared, src, src_fd, st, check_mode, result):
    """A rename when both sides are on one mount and the new directory is empty; None to copy instead.

    The owner renames when it may; root renames for it only out of a
    directory root alone may change (else the owner could swap the name
    between root's check and root's rename), and otherwise it is a copy.
    """
    if prepared.device != st.st_dev or prepared.mount != _fs.mount_id(src_fd):
        return None
    if prepared.fd is not None and _fs.list_dir(prepared.fd):
        return None  # a cache to merge into
    if check_mode:
        result.update(changed=True, action='rename')
        return result
    parent_fd = _parent_of(src, src_fd)
    try:
        os.rename(os.path.basename(src), prepared.name, src_dir_fd=parent_fd, dst_dir_fd=prepared.parent_fd)
    except OSError as exc:
        if exc.errno not in (errno.EACCES, errno.EPERM) or not root_alone_writes(os.fstat(parent_fd)):
            os.close(parent_fd)
            if exc.errno in (errno.EACCES, errno.EPERM, errno.EXDEV):
                return None
            raise
        result.update(changed=True, action='rename', rename_by_root=os.path.basename(src))
        return _privsep.WithFds(result, [parent_fd, os.dup(src_fd)])
    os.close(parent_fd)
    result.update(changed=True, action='rename', renamed=True)
    return _privsep.WithFds(result, [os.dup(src_fd)])


def _renamed_by_owner(prepared, result, fds, owner):
    """The owner's child renamed its old cache into place: keep the directory it held, for settle()."""
    result.pop('renamed')
    if len(fds) != 1:
        raise OptionError('migrate_from', prepared.path, 'the old cache changed while it was being moved')
    held = os.fstat(fds[0])
    if not stat.S_ISDIR(held.st_mode) or held.st_uid != owner.pw_uid:
        raise OptionError('migrate_from', prepared.path, 'the old cache changed while it was being moved')
    prepared.renamed_fd = os.dup(fds[0])
    return result


def _rename_for_owner(prepared, result, fds, owner):
    """Root's rename of the old cache the owner's child checked and holds, out of a directory root alone
    may change (so the name cannot be swapped), into the prepared place; then what arrived is checked."""
    name = result.pop('rename_by_root')
    parent_fd, src_fd = fds
    if prepared.parent_fd is None:
        raise OptionError('path', prepared.path, 'its parent is not held: cannot rename into it')
    held = _held_old_cache(name, parent_fd, src_fd, owner)
    os.rename(name, prepared.name, src_dir_fd=parent_fd, dst_dir_fd=prepared.parent_fd)
    arrived = os.stat(prepared.name, dir_fd=prepared.parent_fd, follow_symlinks=False)
    if not os.path.samestat(arrived, held):
        raise OptionError('migrate_from', name, 'the old cache changed while it was being moved')
    prepared.renamed_fd = os.dup(src_fd)
    return result


def _held_old_cache(name, parent_fd, src_fd, owner):
    """(Root.)  Check that the directory the owner's child holds is still the one under `name` in parent_fd,
    a directory root alone may change."""
    _plain_name(name, 'migrate_from', name)
    if not root_alone_writes(os.fstat(parent_fd)):
        raise OptionError('migrate_from', name, 'in a directory other accounts may change: left to its owner')
    held = os.fstat(src_fd)
    entry = os.stat(name, dir_fd=parent_fd, follow_symlinks=False)
    if (not stat.S_ISDIR(held.st_mode) or held.st_uid != owner.pw_uid
            or (entry.st_dev, entry.st_ino) != (held.st_dev, held.st_ino)):
        raise OptionError('migrate_from', name, 'the old cache changed while it was being moved')
    return held


def _rmdir_for_owner(result, fds, owner):
    """Root's removal of the emptied old root, where its owner may not write the directory that holds it."""
    name = result.pop('rmdir_by_root')
    parent_fd, src_fd = fds
    _held_old_cache(name, parent_fd, src_fd, owner)
    errors = _error_log(result)
    if _fs.list_dir(src_fd):
        errors.add(name, OSError(errno.ENOTEMPTY, 'not empty any more: left alone'))
    else:
        try:
            os.rmdir(name, dir_fd=parent_fd)
        except OSError as exc:
            errors.add(name, exc)
    result.update(errors.as_result())
    return result


def _remove_old(src, src_fd, kind, method, check_mode, policy, result):
    """(Child.)  The old cache emptied unit by unit like go_cache_prune state=absent, then its root removed."""
    target = _locate.Target(src, kind)
    removal = _prune.prune_root(src_fd, src, target, policy, check_mode, time.time(), os.geteuid(),
                                {})
    result['removed_bytes'] = removal['removed_bytes']
    result['changed'] = True
    if method == 'clean':
        result['action'] = 'clean'
    if removal['busy']:
        result['reason'] = 'Go builds were using the old cache: %d units left there' % removal['kept'].get('busy', 0)
        return result
    errors = _fs.ErrorLog()
    errors.merge(_error_log(result))
    errors.merge(_error_log(removal))
    if not check_mode and not removal['errors_total']:
        # What state=absent keeps so that a cache stays a cache (README, the empty directories) goes too.
        _prune.remove_contents(src_fd, _fs.Boundary(src_fd), errors, src)
    result.update(errors.as_result())
    if check_mode or result['errors_total']:
        return result
    try:
        parent_fd = _parent_of(src, src_fd)
    except OSError as exc:
        errors.add(src, exc)
        result.update(errors.as_result())
        return result
    try:
        os.rmdir(os.path.basename(src), dir_fd=parent_fd)
    except OSError as exc:
        if exc.errno in (errno.EACCES, errno.EPERM) and root_alone_writes(os.fstat(parent_fd)):
            # The owner may not write the directory holding its old cache: root removes the (empty) root.
            result['rmdir_by_root'] = os.path.basename(src)
            return _privsep.WithFds(result, [parent_fd, os.dup(src_fd)])
        errors.add(src, exc)
        result.update(errors.as_result())
    os.close(parent_fd)
    return result


def _error_log(result):
    log = _fs.ErrorLog()
    log.items = list(result['errors'])
    log.total = result['errors_total']
    return log


# --------------------------------------------------------------------------- copying


class _Copier(object):
    """Copies a tree file by file between two open directories: modes and times kept, links copied as links.

    Everything is relative to descriptors; new files get fresh temporary names
    created exclusively and are renamed into place whole.  Root (copying a
    cache root owns) gives each file its source's owner on the new
    descriptor; anyone else's copies are simply theirs.
    """

    def __init__(self, boundary, dest_boundary, check_mode, defer_suffix=None):
        self.boundary = boundary
        self.dest_boundary = dest_boundary
        self.check_mode = check_mode
        self.defer_suffix = defer_suffix
        self.deferred = []
        self.files = 0
        self.bytes = 0
        self.already_there = 0
        self.errors = _fs.ErrorLog()
        self.touched_version_lists = set()
        self.keep_owner = os.geteuid() == 0

    def copy_tree(self, src_fd, dest_fd):
        """Copy the contents of src_fd into dest_fd (dest_fd None in check mode when it does not exist)."""
        try:
            listing = _fs.list_dir(src_fd)
        except OSError as exc:
            self.errors.add('.', exc)
            return
        # [source fd, copy fd, rel, entries, source stat]; every frame but the first owns its two fds.
        frames = [[src_fd, dest_fd, '', iter(listing), None]]
        if dest_fd is not None:
            self._clear_leftovers(dest_fd, '')
        try:
            while frames:
                here_src, here_dest, here, entries, _st = frames[-1]
                for name, st in entries:
                    rel = here + '/' + name if here else name
                    if stat.S_ISDIR(st.st_mode):
                        pushed = self._enter(here_src, here_dest, name, rel, st, len(frames))
                        if pushed is not None:
                            frames.append(pushed)
                            break
                    elif self.defer_suffix and name.endswith(self.defer_suffix):
                        self.deferred.append((here, name, st))
                    else:
                        self.copy_entry(here_src, here_dest, name, rel, st)
                else:
                    done = frames.pop()
                    if not frames:
                        break
                    os.close(done[0])
                    if done[1] is not None:
                        if not self.check_mode:
                            self._settle_dir(done[1], done[4])
                        os.close(done[1])
        finally:
            for frame in frames[1:]:
                for fd in frame[:2]:
                    if fd is not None:
                        os.close(fd)

    def _enter(self, src_parent, dest_parent, name, rel, st, depth):
        """The frame for a source directory and its copy (made if missing), or None when it cannot be entered."""
        if len(rel.split('/')) > _fs.MAX_DEPTH or depth > _fs.MAX_DEPTH:
            self.errors.add(rel, _fs.TooDeep(rel))
            return None
        try:
            if self.boundary.crosses(rel, st):
                raise _fs.CrossesMount(rel)
            child_src = self.boundary.open_dir(name, src_parent, rel)
        except OSError as exc:
            self.errors.add(rel, exc)
            return None
        try:
            listing = _fs.list_dir(child_src)
        except OSError as exc:
            os.close(child_src)
            self.errors.add(rel, exc)
            return None
        child_dest = None
        if dest_parent is not None:
            try:
                child_dest = self._dest_dir(dest_parent, name, st, rel)
            except OSError as exc:
                os.close(child_src)
                self.errors.add(rel, exc)
                return None
        return [child_src, child_dest, rel, iter(listing), st]

    def _clear_leftovers(self, dest_fd, rel):
        """Temporary files of a copy killed before it could rename them: never whole, so removed."""
        if self.check_mode:
            return
        for name, st in _fs.list_dir(dest_fd):
            if name.startswith(TEMPORARY_PREFIX) and not stat.S_ISDIR(st.st_mode):
                with _writable(dest_fd):
                    _prune.unlink_entry(name, dest_fd, self.errors, rel + '/' + name if rel else name)

    def _dest_dir(self, dest_parent, name, st, rel):
        """The copy's directory: opened (never through a link or into a mount), or made."""
        try:
            fd = self.dest_boundary.open_dir(name, dest_parent, rel)
        except OSError as exc:
            if exc.errno != errno.ENOENT:
                raise
            if self.check_mode:
                return None
            with _writable(dest_parent):
                os.mkdir(name, 0o700, dir_fd=dest_parent)
            fd = self.dest_boundary.open_dir(name, dest_parent, rel)
            if self.keep_owner:
                os.fchown(fd, st.st_uid, st.st_gid)
            return fd
        try:
            self._clear_leftovers(fd, rel)
        except BaseException:
            os.close(fd)
            raise
        return fd

    @staticmethod
    def _settle_dir(fd, st):
        # Go's module directories are read-only: they get their mode once their content is in.
        os.fchmod(fd, stat.S_IMODE(st.st_mode))
        os.utime(fd, ns=(st.st_atime_ns, st.st_mtime_ns))

    def copy_deferred(self, src_root, dest_root):
        """The deferred files (.ziphash): only when nothing else failed, so that no partial version looks whole."""
        if self.errors.total:
            return
        for rel, name, st in self.deferred:
            path = rel + '/' + name if rel else name
            try:
                src_fd = self.boundary.open_rel_dir(src_root, rel)
            except OSError as exc:
                self.errors.add(path, exc)
                continue
            try:
                dest_fd = None if dest_root is None else self.dest_boundary.open_rel_dir(dest_root, rel)
            except OSError as exc:
                os.close(src_fd)
                self.errors.add(path, exc)
                continue
            try:
                self.copy_entry(src_fd, dest_fd, name, path, st)
            finally:
                os.close(src_fd)
                if dest_fd is not None:
                    os.close(dest_fd)

    def copy_entry(self, src_dir_fd, dest_dir_fd, name, rel, st):
        if not (stat.S_ISREG(st.st_mode) or stat.S_ISLNK(st.st_mode)):
            return  # FIFOs, sockets: nothing Go keeps in a cache
        if dest_dir_fd is not None:
            try:
                os.stat(name, dir_fd=dest_dir_fd, follow_symlinks=False)
                self.already_there += 1
                return
            except OSError as exc:
                if exc.errno != errno.ENOENT:
                    self.errors.add(rel, exc)
                    return
        self.files += 1
        self.bytes += st.st_size if stat.S_ISREG(st.st_mode) else 0
        if rel.startswith('cache/download/') and rel.endswith('.mod'):
            self.touched_version_lists.add(os.path.dirname(rel))
        if self.check_mode:
            return
        temporary = '%s%s.%s' % (TEMPORARY_PREFIX, name, os.urandom(4).hex())
        try:
            with _writable(dest_dir_fd):
                if stat.S_ISLNK(st.st_mode):
                    os.symlink(os.readlink(name, dir_fd=src_dir_fd), temporary, dir_fd=dest_dir_fd)
                    if self.keep_owner:
                        os.chown(temporary, st.st_uid, st.st_gid, dir_fd=dest_dir_fd, follow_symlinks=False)
                    os.utime(temporary, ns=(st.st_atime_ns, st.st_mtime_ns), dir_fd=dest_dir_fd,
                             follow_symlinks=False)
                else:
                    self._copy_file(src_dir_fd, name, dest_dir_fd, temporary, st)
                os.rename(temporary, name, src_dir_fd=dest_dir_fd, dst_dir_fd=dest_dir_fd)
        except OSError as exc:
            self.errors.add(rel, exc)
            try:
                os.unlink(temporary, dir_fd=dest_dir_fd)
            except OSError:
                pass

    def _copy_file(self, src_dir_fd, name, dest_dir_fd, temporary, st):
        src = _fs.open_file(name, src_dir_fd)
        try:
            dest = os.open(temporary, _O_NEW, 0o600, dir_fd=dest_dir_fd)
            try:
                while True:
                    chunk = os.read(src, COPY_CHUNK)
                    if not chunk:
                        break
                    view = memoryview(chunk)
                    while view:
                        view = view[os.write(dest, view):]
                if self.keep_owner:
                    os.fchown(dest, st.st_uid, st.st_gid)
                os.fchmod(dest, stat.S_IMODE(st.st_mode))
                os.utime(dest, ns=(st.st_atime_ns, st.st_mtime_ns))
            finally:
                os.close(dest)
        finally:
            os.close(src)


class _writable(object):
    """Context: a read-only directory (Go's module trees) writable for its owner meanwhile."""

    def __init__(self, fd):
        self.fd = fd
        self.restore = None

    def __enter__(self):
        mode = stat.S_IMODE(os.fstat(self.fd).st_mode)
        if not mode & stat.S_IWUSR:
            os.fchmod(self.fd, mode | stat.S_IRWXU)
            self.restore = mode
        return self

    def __exit__(self, *exc_info):
        if self.restore is not None:
            os.fchmod(self.fd, self.restore)
        return False


def _copy(src_fd, prepared, kind, check_mode, result):
    """(Child.)  Copy every file; for a module cache the .ziphash files last, then rewrite the touched @v/lists."""
    dest_fd = prepared.fd
    copier = _Copier(_fs.Boundary(src_fd), None if dest_fd is None else _fs.Boundary(dest_fd), check_mode,
                     defer_suffix=ZIPHASH if kind == 'module' else None)
    copier.copy_tree(src_fd, dest_fd)
    copier.copy_deferred(src_fd, dest_fd)
    if not check_mode and dest_fd is not None:
        for at_v in sorted(copier.touched_version_lists):
            # Merged caches: @v/list must name every version whose .mod is now there (Go reads it offline).
            try:
                at_v_fd = copier.dest_boundary.open_rel_dir(dest_fd, at_v)
            except OSError as exc:
                copier.errors.add(at_v, exc)
                continue
            try:
                _prune.rewrite_version_list(at_v_fd, copier.errors, at_v + '/list')
            finally:
                os.close(at_v_fd)
    result.update(changed=copier.files > 0, action='copy', files=copier.files, bytes=copier.bytes,
                  already_there=copier.already_there, **copier.errors.as_result())
