# -*- coding: utf-8 -*-
# Copyright (c) gofleet.cache contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

"""File system primitives shared by every cache scanner and remover.

Everything works relative to directory file descriptors, never follows a
symbolic link and never crosses into another mounted file system, so that a
cache tree cannot lead the code to anything outside it.  Nothing here opens a
file without O_NOATIME where the kernel allows it: on relatime mounts the
access time of module files is the only record of their last use.
"""

from __future__ import annotations

import errno
import os
import stat
import tempfile

O_DIR = os.O_RDONLY | os.O_DIRECTORY | getattr(os, 'O_NOFOLLOW', 0) | getattr(os, 'O_CLOEXEC', 0)
O_NOATIME = getattr(os, 'O_NOATIME', 0)
O_READ = os.O_RDONLY | getattr(os, 'O_NOFOLLOW', 0) | getattr(os, 'O_CLOEXEC', 0)

# Errors kept verbatim in a result; the rest are only counted so that the
# result stays small however broken a cache is.
MAX_REPORTED_ERRORS = 20


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
            self.items.append({'path': path, 'error': message})

    def merge(self, other):
        """Add another log's items (up to the limit) and total."""
        for item in other.items:
            if len(self.items) < self.limit:
                self.items.append(item)
        self.total += other.total

    def as_result(self):
        return {'errors': list(self.items), 'errors_total': self.total}


def open_dir(name, dir_fd=None):
    """Open a directory without following a symbolic link at its last component.

    With O_NOATIME where allowed: listing a directory must not count as a use
    either (check mode promises an unchanged disk).
    """
    try:
        return os.open(name, O_DIR | O_NOATIME, dir_fd=dir_fd)
    except OSError as exc:
        if exc.errno != errno.EPERM or not O_NOATIME:
            raise
    return os.open(name, O_DIR, dir_fd=dir_fd)


def open_rel_dir(root_fd, rel):
    """fd of a directory below root_fd, opened component by component (never through a symlink)."""
    fd = os.dup(root_fd)
    try:
        for part in [item for item in rel.split('/') if item]:
            next_fd = open_dir(part, fd)
            os.close(fd)
            fd = next_fd
    except OSError:
        os.close(fd)
        raise
    return fd


def read_small_file(name, dir_fd, limit=4096):
    """Read at most `limit` bytes without touching the access time where possible.

    O_NOATIME is refused (EPERM) for files the caller neither owns nor has
    CAP_FOWNER for; such files are read anyway: only module cache files carry
    a meaningful atime and those are never read, only stat'ed.
    """
    fd = open_file(name, dir_fd)
    try:
        return os.read(fd, limit)
    finally:
        os.close(fd)


def open_file(name, dir_fd):
    """Open a file for reading without following a link, with O_NOATIME where the kernel allows it."""
    try:
        return os.open(name, O_READ | O_NOATIME, dir_fd=dir_fd)
    except OSError as exc:
        if exc.errno != errno.EPERM or not O_NOATIME:
            raise
    return os.open(name, O_READ, dir_fd=dir_fd)


def read_text_file(path, limit=1 << 20):
    """Whole small text file by path (go env files, /etc/environment), or None if missing."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, 'O_CLOEXEC', 0) | O_NOATIME)
    except OSError as exc:
        if exc.errno == errno.EPERM and O_NOATIME:
            fd = os.open(path, os.O_RDONLY | getattr(os, 'O_CLOEXEC', 0))
        elif exc.errno in (errno.ENOENT, errno.ENOTDIR):
            return None
        else:
            raise
    try:
        chunks = []
        size = 0
        while size < limit:
            chunk = os.read(fd, 65536)
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
        return b''.join(chunks).decode('utf-8', 'surrogateescape')
    finally:
        os.close(fd)


def write_file_atomic(path, data, mode=None, owner=None):
    """Replace `path` with `data` (bytes) so that readers see the old or the new file, never a part.

    A temporary file in the same directory (a fresh name, created exclusively:
    the directory may be a sticky, world-writable one), flushed, then renamed
    over the target.  `mode` defaults to the old file's mode, else 0666 minus
    the umask (what Go's os.WriteFile gives a new file).  The file belongs to
    whoever runs this (see _users.acting_as), or to `owner` ((uid, gid)).
    """
    directory, name = os.path.split(path)
    if mode is None:
        try:
            mode = stat.S_IMODE(os.stat(path).st_mode)
        except OSError:
            umask = os.umask(0)
            os.umask(umask)
            mode = 0o666 & ~umask
    fd, temporary = tempfile.mkstemp(prefix='.' + name + '.', suffix='.tmp', dir=directory or '.')
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
        os.rename(temporary, path)
    except BaseException:
        try:
            os.unlink(temporary)
        except OSError:
            pass
        raise


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
    """All entries of an open directory with their lstat results, symlinks included."""
    with os.scandir(dir_fd) as iterator:
        entries = list(iterator)
    return [(entry.name, entry.stat(follow_symlinks=False)) for entry in entries]


def walk_files(dir_fd, rel, root_dev, errors, skip_symlink=None, skip_mount=None):
    """Yield (parent_fd, rel_dir, name, stat) for every regular file below dir_fd.

    Symbolic links are never followed and directories on another device
    (mount points) are never entered; both are reported through the optional
    callbacks.  Unreadable directories are recorded in `errors` and skipped.
    """
    try:
        listing = list_dir(dir_fd)
    except OSError as exc:
        errors.add(rel or '.', exc)
        return
    for name, st in listing:
        mode = st.st_mode
        if stat.S_ISREG(mode):
            yield dir_fd, rel, name, st
        elif stat.S_ISDIR(mode):
            child_rel = rel + '/' + name if rel else name
            if st.st_dev != root_dev:
                if skip_mount:
                    skip_mount(child_rel)
                continue
            try:
                child_fd = open_dir(name, dir_fd)
            except OSError as exc:
                errors.add(child_rel, exc)
                continue
            try:
                yield from walk_files(child_fd, child_rel, root_dev, errors, skip_symlink, skip_mount)
            finally:
                os.close(child_fd)
        elif stat.S_ISLNK(mode) and skip_symlink:
            skip_symlink(rel + '/' + name if rel else name)


def tree_totals(dir_fd, rel, root_dev, errors):
    """Files, bytes and allocated bytes of a subtree (one pass, stat only)."""
    totals = TreeTotals()

    def on_symlink(_path):
        totals.symlinks_skipped += 1

    def on_mount(_path):
        totals.mounts_skipped += 1

    for _parent, _rel, _name, st in walk_files(dir_fd, rel, root_dev, errors, on_symlink, on_mount):
        totals.add_file(st)
    return totals


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
    """List of (mount_point, fstype, options set) from /proc/self/mountinfo text."""
    mounts = []
    for line in text.splitlines():
        fields = line.split(' ')
        if '-' not in fields or len(fields) < 10:
            continue
        sep = fields.index('-')
        mount_point = _unescape_mount_field(fields[4])
        options = set(fields[5].split(','))
        fstype = fields[sep + 1]
        mounts.append((mount_point, fstype, options))
    return mounts


def find_mount(path, mounts):
    """The mount entry holding `path` (longest mount point prefix; the last one wins on ties)."""
    best = None
    for entry in mounts:
        point = entry[0]
        if path == point or point == '/' or path.startswith(point.rstrip('/') + '/'):
            if best is None or len(point) >= len(best[0]):
                best = entry
    return best


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


def filesystem_facts(path, mountinfo_text=None):
    """Space, inodes and atime behaviour of the file system holding `path`."""
    if mountinfo_text is None:
        mountinfo_text = read_text_file('/proc/self/mountinfo') or ''
    mount = find_mount(path, parse_mountinfo(mountinfo_text))
    facts = {
        'mount': mount[0] if mount else None,
        'fstype': mount[1] if mount else None,
        'atime_mode': atime_mode(mount[2]) if mount else None,
    }
    facts['atime_updates'] = facts['atime_mode'] in ('relatime', 'strictatime')
    try:
        vfs = os.statvfs(path)
    except OSError:
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
