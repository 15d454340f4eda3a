# -*- coding: utf-8 -*-
# Copyright (c) gofleet.cache contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

"""File system primitives shared by every cache scanner and remover.

The trees gofleet walks belong to accounts that are not trusted (SECURITY.md):
they may hold symbolic links, hard links, FIFOs and mount points meant to make
root act somewhere else.  So everything here works relative to directory file
descriptors, never follows a symbolic link, never enters another mount (found
by device and by mount ID, so that a bind mount of the same file system counts
too), reads only regular files (opened non-blocking, checked with fstat, read
up to a bound) and walks with an explicit stack of bounded depth.

Nothing opens a file without O_NOATIME where the kernel allows it: on relatime
mounts the access time of module files is the only record of their last use.
"""

from __future__ import annotations

import errno
import os
import stat
import tempfile

_CLOEXEC = getattr(os, 'O_CLOEXEC', 0)
_NOFOLLOW = getattr(os, 'O_NOFOLLOW', 0)
O_DIR = os.O_RDONLY | os.O_DIRECTORY | _NOFOLLOW | _CLOEXEC
O_NOATIME = getattr(os, 'O_NOATIME', 0)
# O_NONBLOCK: opening a FIFO for reading must not wait for a writer.
O_READ = os.O_RDONLY | _NOFOLLOW | _CLOEXEC | getattr(os, 'O_NONBLOCK', 0)
O_PATH = getattr(os, 'O_PATH', 0)

# Errors kept verbatim in a result; the rest are only counted so that the
# result stays small however broken a cache is.
MAX_REPORTED_ERRORS = 20
# Directory levels a walk enters below its start.  Go's caches are a few dozen
# deep at most; a deeper tree is someone's trap and is reported, not followed
# (every level holds one open descriptor).
MAX_DEPTH = 256
# Symbolic links followed while resolving one trusted path (the kernel's own limit).
MAX_SYMLINKS = 40
MOUNTINFO = '/proc/self/mountinfo'


def printable(text):
    """`text` with undecodable file name bytes as backslash escapes: valid UTF-8 for results and logs.

    File names are bytes; Python hands them over with the bytes that are not
    UTF-8 as lone surrogates, which JSON encoders and UTF-8 streams refuse.
    """
    if text is None:
        return None
    return text.encode('utf-8', 'surrogateescape').decode('utf-8', 'backslashreplace')


class ErrorLog(object):
    """Per-path failures that did not stop the run, bounded in size."""

    def __init__(self, limit=MAX_REPORTED_ERRORS):
        self.limit = limit
        self.items = []
        self.total = 0

    def add(self, path, error):
        self.total += 1
        if len(self.items) < self.limit:
            message = error.strerror if isinstance(error, OSError) and error.strerror else str(error)
            self.items.append({'path': printable(path), 'error': printable(message)})

    def merge(self, other, prefix=None):
        """Add another log's items (up to the limit) and total; `prefix` joined before their paths."""
        for item in other.items:
            if len(self.items) < self.limit:
                if prefix is not None:
                    item = dict(item, path=printable(os.path.join(prefix, item['path'])))
                self.items.append(item)
        self.total += other.total

    def as_result(self):
        return {'errors': list(self.items), 'errors_total': self.total}


class CrossesMount(OSError):
    """A directory that is a mount point inside the tree being walked."""

    def __init__(self, rel):
        super(CrossesMount, self).__init__(errno.EXDEV, 'mount point inside the cache: left alone', rel)


class TooDeep(OSError):
    def __init__(self, rel):
        super(TooDeep, self).__init__(errno.ELOOP, 'more than %d directory levels: not entered' % MAX_DEPTH, rel)


def _open(name, flags, dir_fd=None, mode=0o777):
    """os.open with O_NOATIME where allowed (EPERM for files the caller neither owns nor has CAP_FOWNER for)."""
    if O_NOATIME:
        try:
            return os.open(name, flags | O_NOATIME, mode, dir_fd=dir_fd)
        except OSError as exc:
            if exc.errno != errno.EPERM:
                raise
    return os.open(name, flags, mode, dir_fd=dir_fd)


def open_dir(name, dir_fd=None):
    """Open a directory without following a symbolic link at its last component.

    With O_NOATIME where allowed: listing a directory must not count as a use
    either (check mode promises an unchanged disk).
    """
    return _open(name, O_DIR, dir_fd)


def open_file(name, dir_fd):
    """Open a regular file for reading: never through a link, never blocking, never anything but a regular file."""
    fd = _open(name, O_READ, dir_fd)
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise OSError(errno.EINVAL, 'not a regular file', name)
    except BaseException:
        os.close(fd)
        raise
    return fd


def read_fd(fd, limit, name=None):
    """Everything of an open regular file up to `limit` bytes; EFBIG (naming `name`) when it holds more."""
    chunks = []
    size = 0
    while True:
        chunk = os.read(fd, min(65536, limit + 1 - size))
        if not chunk:
            return b''.join(chunks)
        chunks.append(chunk)
        size += len(chunk)
        if size > limit:
            raise OSError(errno.EFBIG, 'larger than %d bytes' % limit, name)


def read_small_file(name, dir_fd, limit=4096):
    """The first `limit` bytes of a regular file below dir_fd (see open_file).

    Reads until `limit` or the end, as Go's io.ReadFull does: a network or FUSE file system may return less
    than asked for, and a short read must not make a whole file look cut.
    """
    fd = open_file(name, dir_fd)
    try:
        chunks = []
        size = 0
        while size < limit:
            chunk = os.read(fd, limit - size)
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
        return b''.join(chunks)
    finally:
        os.close(fd)


def read_text_file(path, limit=1 << 20):
    """A whole small text file by path (go env files, /etc/environment), or None if missing.

    The path is followed as Go follows it (a go env file may be a dotfiles
    link): callers read an account's files as that account (_privsep), so
    the kernel decides what may be read.  Only a regular file is read, without
    waiting on a FIFO; more than `limit` bytes is an error (EFBIG).
    """
    try:
        fd = _open(path, os.O_RDONLY | _CLOEXEC | getattr(os, 'O_NONBLOCK', 0))
    except OSError as exc:
        if exc.errno in (errno.ENOENT, errno.ENOTDIR):
            return None
        raise
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise OSError(errno.EINVAL, 'not a regular file', path)
        return read_fd(fd, limit, path).decode('utf-8', 'surrogateescape')
    finally:
        os.close(fd)


def write_file_atomic(path, data, mode=None, owner=None, dir_fd=None):
    """Replace `path` with `data` (bytes) so that readers see the old or the new file, never a part.

    A temporary file in the same directory (a fresh name, created exclusively:
    the directory may be a sticky, world-writable one), flushed, then renamed
    over the target.  With `dir_fd`, `path` is a name in that open directory
    and nothing is resolved by path.  `mode` defaults to the old file's mode,
    else 0666 minus the umask (what Go's os.WriteFile gives a new file).  The
    file belongs to whoever runs this (see _privsep), or to `owner` ((uid, gid)).
    """
    directory, name = os.path.split(path)
    if dir_fd is not None:
        directory, name = None, path
    if mode is None:
        try:
            mode = stat.S_IMODE(os.stat(name if dir_fd is not None else path, dir_fd=dir_fd,
                                        follow_symlinks=False).st_mode)
        except OSError:
            umask = os.umask(0)
            os.umask(umask)
            mode = 0o666 & ~umask
    if dir_fd is None:
        fd, temporary = tempfile.mkstemp(prefix='.' + name + '.', suffix='.tmp', dir=directory or '.')
    else:
        fd, temporary = _create_temporary(name, dir_fd)
    try:
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
            os.fchmod(fd, mode)
            if owner is not None:
                os.fchown(fd, owner[0], owner[1])
            os.fsync(fd)
        finally:
            os.close(fd)
        os.rename(temporary, name if dir_fd is not None else path, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
    except BaseException:
        try:
            os.unlink(temporary, dir_fd=dir_fd)
        except OSError:
            pass
        raise


def _create_temporary(name, dir_fd):
    """(fd, name) of a new file with a fresh name in an open directory (mkstemp's O_EXCL, fd-relative)."""
    for _attempt in range(100):
        temporary = '.%s.%s.tmp' % (name, os.urandom(6).hex())
        try:
            return os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _NOFOLLOW | _CLOEXEC, 0o600,
                           dir_fd=dir_fd), temporary
        except OSError as exc:
            if exc.errno != errno.EEXIST:
                raise
    raise OSError(errno.EEXIST, 'no free temporary name', name)


class TreeTotals(object):
    """Running totals of a subtree walk."""

    __slots__ = ('files', 'bytes', 'disk_bytes', 'newest_mtime_ns', 'symlinks_skipped', 'mounts_skipped')

    def __init__(self):
        self.files = 0
        self.bytes = 0
        self.disk_bytes = 0
        self.newest_mtime_ns = 0
        self.symlinks_skipped = 0
        self.mounts_skipped = 0

    def add_file(self, st):
        self.files += 1
        self.bytes += st.st_size
        self.disk_bytes += st.st_blocks * 512
        if st.st_mtime_ns > self.newest_mtime_ns:
            self.newest_mtime_ns = st.st_mtime_ns


def list_dir(dir_fd):
    """All entries of an open directory with their lstat results, symlinks included.

    An entry removed between the listing and its stat is left out: it is gone.
    """
    with os.scandir(dir_fd) as iterator:
        entries = list(iterator)
    listing = []
    for entry in entries:
        try:
            listing.append((entry.name, entry.stat(follow_symlinks=False)))
        except OSError as exc:
            if exc.errno not in (errno.ENOENT, errno.ENOTDIR):
                raise
    return listing


# --------------------------------------------------------------------------- mounts


def _unescape_mount_field(field):
    # /proc/self/mountinfo escapes space, tab, newline and backslash as \ooo.
    out = []
    i = 0
    while i < len(field):
        if field[i] == '\\' and i + 3 < len(field) and field[i + 1:i + 4].isdigit():
            out.append(chr(int(field[i + 1:i + 4], 8)))
            i += 4
        else:
            out.append(field[i])
            i += 1
    return ''.join(out)


def parse_mountinfo(text):
    """List of (mount_point, fstype, options set, mount ID) from /proc/self/mountinfo text."""
    mounts = []
    for line in text.splitlines():
        fields = line.split(' ')
        if '-' not in fields or len(fields) < 10:
            continue
        sep = fields.index('-')
        mount_point = _unescape_mount_field(fields[4])
        options = set(fields[5].split(','))
        fstype = fields[sep + 1]
        try:
            mount_id = int(fields[0])
        except ValueError:
            mount_id = None
        mounts.append((mount_point, fstype, options, mount_id))
    return mounts


def mount_id(fd):
    """The mount ID of an open file (/proc/self/fdinfo), or None where the kernel does not tell."""
    try:
        text = read_text_file('/proc/self/fdinfo/%d' % fd, 1 << 16)
    except OSError:
        return None
    for line in (text or '').splitlines():
        if line.startswith('mnt_id:'):
            try:
                return int(line.split()[1])
            except (IndexError, ValueError):
                return None
    return None


def fd_path(fd):
    """The path the kernel knows for an open directory (for reports and mount lookups only, never to open)."""
    try:
        path = os.readlink('/proc/self/fd/%d' % fd)
    except OSError:
        return None
    return path if path.startswith('/') else None


def _is_below(path, root):
    return path != root and path.startswith(root.rstrip('/') + '/')


class Boundary(object):
    """Where a walk below a root directory must stop: other devices and other mounts.

    A bind mount of the same file system has the root's st_dev, so mounts are
    also found in /proc/self/mountinfo.  When one lies below the root at the
    start, every directory entered is also checked by mount ID, so that renaming
    a parent cannot move a mount out of the way of the check.
    """

    def __init__(self, root_fd, mountinfo_text=None):
        self.root_dev = os.fstat(root_fd).st_dev
        root = fd_path(root_fd)
        if mountinfo_text is None:
            try:
                mountinfo_text = read_text_file(MOUNTINFO, 64 << 20) or ''
            except OSError:
                mountinfo_text = ''
        below = [entry[0] for entry in parse_mountinfo(mountinfo_text) if root and _is_below(entry[0], root)]
        self.mount_rels = frozenset(point[len(root.rstrip('/')) + 1:] for point in below)
        self.root_mount_id = mount_id(root_fd) if below or root is None else None
        self.strict = self.root_mount_id is not None

    def crosses(self, rel, st):
        """Whether the directory `rel` (lstat `st`) is another file system or a mount point."""
        return st.st_dev != self.root_dev or rel in self.mount_rels

    def open_dir(self, name, parent_fd, rel):
        """Open the directory `name` below parent_fd (`rel` below the root); CrossesMount if it is a mount."""
        fd = open_dir(name, parent_fd)
        try:
            if os.fstat(fd).st_dev != self.root_dev or rel in self.mount_rels or (
                    self.strict and mount_id(fd) != self.root_mount_id):
                raise CrossesMount(rel)
        except BaseException:
            os.close(fd)
            raise
        return fd

    def open_rel_dir(self, root_fd, rel):
        """fd of a directory below root_fd, opened component by component (never through a link or a mount)."""
        fd = os.dup(root_fd)
        here = ''
        try:
            for part in [item for item in rel.split('/') if item]:
                here = here + '/' + part if here else part
                next_fd = self.open_dir(part, fd, here)
                os.close(fd)
                fd = next_fd
        except BaseException:
            os.close(fd)
            raise
        return fd


def walk_files(dir_fd, rel, boundary, errors, skip_symlink=None, skip_mount=None, skip_dir=None, skip_other=None):
    """Yield (parent_fd, rel_dir, name, stat) for every regular file below dir_fd.

    Iterative (an explicit stack of open directories, at most MAX_DEPTH deep).
    Symbolic links are never followed and mounts never entered; both are
    reported through the optional callbacks.  Unreadable or too deep
    directories are recorded in `errors` and skipped, so a caller can tell a
    complete walk from an incomplete one by errors.total.  `skip_dir(rel)`:
    directories not to enter at all; `skip_other(rel)`: FIFOs, sockets, devices.
    """
    try:
        listing = list_dir(dir_fd)
    except OSError as exc:
        errors.add(rel or '.', exc)
        return
    # [owned fd or None, fd, rel, iterator over the listing]
    stack = [(None, dir_fd, rel, iter(listing))]
    try:
        while stack:
            _owned, fd, here, entries = stack[-1]
            for name, st in entries:
                mode = st.st_mode
                if stat.S_ISREG(mode):
                    yield fd, here, name, st
                elif stat.S_ISDIR(mode):
                    child = here + '/' + name if here else name
                    if skip_dir is not None and skip_dir(child):
                        continue
                    if boundary.crosses(child, st):
                        if skip_mount:
                            skip_mount(child)
                        continue
                    if len(stack) > MAX_DEPTH:
                        errors.add(child, TooDeep(child))
                        continue
                    try:
                        child_fd = boundary.open_dir(name, fd, child)
                    except CrossesMount:
                        if skip_mount:
                            skip_mount(child)
                        continue
                    except OSError as exc:
                        errors.add(child, exc)
                        continue
                    try:
                        child_listing = list_dir(child_fd)
                    except OSError as exc:
                        os.close(child_fd)
                        errors.add(child, exc)
                        continue
                    stack.append((child_fd, child_fd, child, iter(child_listing)))
                    break
                elif stat.S_ISLNK(mode):
                    if skip_symlink:
                        skip_symlink(here + '/' + name if here else name)
                elif skip_other:
                    skip_other(here + '/' + name if here else name)
            else:
                owned = stack.pop()[0]
                if owned is not None:
                    os.close(owned)
    finally:
        for owned, _fd, _rel, _entries in stack:
            if owned is not None:
                os.close(owned)


def tree_totals(dir_fd, rel, boundary, errors):
    """Files, bytes and allocated bytes of a subtree (one pass, stat only)."""
    totals = TreeTotals()

    def on_symlink(_path):
        totals.symlinks_skipped += 1

    def on_mount(_path):
        totals.mounts_skipped += 1

    for _parent, _rel, _name, st in walk_files(dir_fd, rel, boundary, errors, on_symlink, on_mount):
        totals.add_file(st)
    return totals


# --------------------------------------------------------------------------- paths root may open


def controlled_by_others(st):
    """Whether an account other than root may change the entries of a directory (owns it, or may write to it)."""
    return bool(st.st_uid != 0 or st.st_mode & (stat.S_IWGRP | stat.S_IWOTH))


def trusted_link_target(parent_fd, name):
    """The target of the symbolic link `name` in an open directory, if root may follow it; else ELOOP.

    Root follows a link only when root owns it and no other account can put
    another link in its place: the directory is root's and not writable by
    others, or sticky (only a file's owner may rename or remove it there).
    The link is opened and read through one descriptor, so the link checked
    is the link read.
    """
    parent = os.fstat(parent_fd)
    link_fd = os.open(name, O_PATH | _NOFOLLOW | _CLOEXEC, dir_fd=parent_fd)
    try:
        st = os.fstat(link_fd)
        if not stat.S_ISLNK(st.st_mode):
            return None
        if st.st_uid != 0 or (controlled_by_others(parent) and not parent.st_mode & stat.S_ISVTX):
            raise OSError(errno.ELOOP, 'a symbolic link that another account controls', name)
        return os.readlink('', dir_fd=link_fd)
    finally:
        os.close(link_fd)


def open_trusted_path(path):
    """fd of the directory a path in root's own configuration names (an explicit cache, a GOROOT).

    Resolved from / one component at a time with O_NOFOLLOW, so the result is
    one fixed directory whatever happens to the names afterwards, and nothing
    is resolved twice.  Symbolic links are followed only where
    trusted_link_target allows; `..` in a link target climbs to the physical
    parent, but never out of a directory another account controls.  Callers
    then act as the owner of the directory they got (_privsep).
    """
    if not path.startswith('/'):
        raise OSError(errno.EINVAL, 'not an absolute path', path)
    pending = [part for part in path.split('/') if part and part != '.']
    fd = open_dir('/')
    here = '/'
    followed = 0
    try:
        while pending:
            part = pending.pop(0)
            if part == '..':
                if controlled_by_others(os.fstat(fd)):
                    raise OSError(errno.ELOOP, "'..' out of a directory another account controls", here)
                next_fd = open_dir('..', fd)
                here = os.path.dirname(here.rstrip('/')) or '/'
            else:
                try:
                    target = trusted_link_target(fd, part)
                except OSError as exc:
                    exc.filename = os.path.join(here, part)
                    raise
                if target is not None:
                    followed += 1
                    if followed > MAX_SYMLINKS:
                        raise OSError(errno.ELOOP, 'too many symbolic links', path)
                    pending[:0] = [item for item in target.split('/') if item and item != '.']
                    if target.startswith('/'):
                        next_fd = open_dir('/')
                        here = '/'
                    else:
                        continue
                else:
                    try:
                        next_fd = open_dir(part, fd)
                    except OSError as exc:
                        exc.filename = os.path.join(here, part)
                        raise
                    here = os.path.join(here, part)
            os.close(fd)
            fd = next_fd
    except BaseException:
        os.close(fd)
        raise
    return fd


def make_dir(parent_fd, name, mode):
    """fd of a directory made in parent_fd (or already there, when it is ours and empty).

    In a directory others may write (sticky /tmp, a group-writable shared
    directory) the name can be swapped between mkdir and open, so what was
    opened must belong to us and be empty, or EEXIST is raised.
    """
    try:
        os.mkdir(name, mode, dir_fd=parent_fd)
    except OSError as exc:
        if exc.errno != errno.EEXIST:
            raise
    fd = open_dir(name, parent_fd)
    try:
        if os.fstat(fd).st_uid != os.geteuid() or list_dir(fd):
            raise OSError(errno.EEXIST, 'replaced by someone else while it was being made', name)
    except BaseException:
        os.close(fd)
        raise
    return fd


def nearest_trusted_dir(path):
    """(fd, missing components) of the deepest existing directory on `path`, opened by open_trusted_path."""
    missing = []
    here = os.path.normpath(path)
    while True:
        try:
            return open_trusted_path(here), missing
        except OSError as exc:
            if exc.errno not in (errno.ENOENT, errno.ENOTDIR) or here == '/':
                raise
        missing.insert(0, os.path.basename(here))
        here = os.path.dirname(here)


# --------------------------------------------------------------------------- file systems


def atime_mode(options):
    """How the kernel updates access times on a mount: noatime, relatime or strictatime.

    mountinfo shows `relatime` or `noatime` explicitly and nothing for
    strictatime; `nodiratime` only concerns directories.
    """
    if 'noatime' in options:
        return 'noatime'
    if 'relatime' in options:
        return 'relatime'
    return 'strictatime'


def find_mount(path, mounts):
    """The mount entry holding `path` (longest mount point prefix; the last one wins on ties)."""
    best = None
    for entry in mounts:
        point = entry[0]
        if path == point or point == '/' or path.startswith(point.rstrip('/') + '/'):
            if best is None or len(point) >= len(best[0]):
                best = entry
    return best


def filesystem_facts(path=None, mountinfo_text=None, fd=None):
    """Space, inodes and atime behaviour of the file system holding the open directory `fd` (else `path`).

    With an fd, the mount is the one with the fd's mount ID and the numbers
    come from fstatvfs: nothing is looked up by name.
    """
    if mountinfo_text is None:
        try:
            mountinfo_text = read_text_file(MOUNTINFO, 64 << 20) or ''
        except OSError:
            mountinfo_text = ''
    mounts = parse_mountinfo(mountinfo_text)
    mount = None
    if fd is not None:
        wanted = mount_id(fd)
        mount = next((entry for entry in mounts if wanted is not None and entry[3] == wanted), None)
        if mount is None:
            path = fd_path(fd)
    if mount is None and path is not None:
        mount = find_mount(path, mounts)
    facts = {
        'mount': printable(mount[0]) if mount else None,
        'fstype': mount[1] if mount else None,
        'atime_mode': atime_mode(mount[2]) if mount else None,
    }
    facts['atime_updates'] = facts['atime_mode'] in ('relatime', 'strictatime')
    try:
        vfs = os.fstatvfs(fd) if fd is not None else os.statvfs(path)
    except (OSError, TypeError):
        vfs = None
    if vfs is None:
        facts.update(size_bytes=None, free_bytes=None, inodes_total=None, inodes_free=None, inodes_used_pct=None)
        return facts
    facts['size_bytes'] = vfs.f_blocks * vfs.f_frsize
    # f_bavail: what an unprivileged user (a build) can still write.
    facts['free_bytes'] = vfs.f_bavail * vfs.f_frsize
    facts['inodes_total'] = vfs.f_files
    facts['inodes_free'] = vfs.f_favail
    # Some file systems (btrfs) have no fixed inode table and report 0.
    facts['inodes_used_pct'] = (round(100.0 * (vfs.f_files - vfs.f_ffree) / vfs.f_files, 1) if vfs.f_files else None)
    return facts
