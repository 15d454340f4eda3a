# -*- coding: utf-8 -*-
# Copyright (c) gofleet.cache contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

"""The Go module cache (GOMODCACHE) as Go lays it out (src/cmd/go/internal/modfetch).

Unit: a *module version*: the extracted tree `<esc module>@<esc version>/`
and its download files `cache/download/<esc module>/@v/<esc version>.{info,
mod,zip,ziphash,partial}` (the `.lock` stays: Go's flock target).  Go
considers a version present iff the tree exists, no .partial exists and the
.ziphash exists.  A version with only .info and .mod is one Go fetched for
the module graph: a complete state, not a broken one.

Nothing in Go updates the times of module files after download, so the last
use of a version is the access time of its .ziphash/.mod/.info on mounts that
update access times (Go reads them on every build), else the download time.
"""

from __future__ import annotations

import functools
import os
import stat

from ansible_collections.gofleet.cache.plugins.module_utils import _fs

DOWNLOAD_DIR = ('cache', 'download')
SUMDB_DIR = 'sumdb'
VCS_DIR = 'vcs'
TOOLCHAIN_MODULE = 'golang.org/toolchain'
# Longest first, so that `v1.zip` is not read as the version `v1.zip` of `.hash`.
DOWNLOAD_SUFFIXES = ('.ziphash', '.partial', '.info', '.lock', '.mod', '.zip')
# Files whose access time tells that a build used the version.
USE_SUFFIXES = ('.ziphash', '.mod', '.info')


def unescape(escaped):
    """Go's case escaping undone: `!mixed!case` -> `MixedCase` (module.UnescapePath)."""
    if '!' not in escaped:
        return escaped
    out = []
    bang = False
    for char in escaped:
        if bang:
            out.append(char.upper())
            bang = False
        elif char == '!':
            bang = True
        else:
            out.append(char)
    return ''.join(out)


def escape(path):
    """Go's case escaping: uppercase letters become `!` + lowercase (module.EscapePath)."""
    return ''.join('!' + char.lower() if 'A' <= char <= 'Z' else char for char in path)


def is_module_cache(root_fd):
    """True when the directory has Go's `cache/download` layout."""
    try:
        cache_fd = _fs.open_dir(DOWNLOAD_DIR[0], root_fd)
    except OSError:
        return False
    try:
        return stat.S_ISDIR(os.stat(DOWNLOAD_DIR[1], dir_fd=cache_fd, follow_symlinks=False).st_mode)
    except OSError:
        return False
    finally:
        os.close(cache_fd)


def split_download_name(name):
    """(escaped version, suffix) of a file in an @v directory, or (None, None) for `list` and others.

    Temporary files Go leaves when killed mid-download (`v1.0.0.zip123.tmp`)
    are reported with suffix `.tmp`.
    """
    if name.endswith('.tmp'):
        for suffix in DOWNLOAD_SUFFIXES:
            at = name.find(suffix)
            if at > 0:
                return name[:at], '.tmp'
        return None, '.tmp'
    for suffix in DOWNLOAD_SUFFIXES:
        if name.endswith(suffix) and len(name) > len(suffix):
            return name[:-len(suffix)], suffix
    return None, None


class Version(object):
    """Everything known about one module version after the scan."""

    __slots__ = ('module_esc', 'version_esc', 'download', 'tree', 'tree_files', 'tree_bytes',
                 'tree_disk_bytes', 'tree_mtime_ns', 'tmp', 'unread')

    def __init__(self, module_esc, version_esc):
        self.module_esc = module_esc
        self.version_esc = version_esc
        self.download = {}  # suffix -> (size, allocated, atime_ns, mtime_ns)
        self.tree = False
        self.tree_files = 0
        self.tree_bytes = 0
        self.tree_disk_bytes = 0
        self.tree_mtime_ns = 0
        # Temporary files Go left when killed mid-download: (size, allocated, newest mtime) or None.
        self.tmp = None
        # Part of the version could not be read (its @v, its tree, a directory above them): its state is
        # unknown, so it is never removed.
        self.unread = False

    @property
    def module(self):
        return unescape(self.module_esc)

    @property
    def version(self):
        return unescape(self.version_esc)

    @property
    def state(self):
        """complete | download_only | incomplete | removed (see the module docstring).

        `removed`: only the .lock is left, as after a prune (Go leaves lock
        files too); there is nothing of the version to report or remove.
        """
        files = self.download
        if not self.tree and all(suffix == '.lock' for suffix in files):
            return 'incomplete' if self.tmp else 'removed'
        if '.partial' in files or (self.tree and '.ziphash' not in files):
            return 'incomplete'
        if '.zip' in files and '.ziphash' not in files:
            return 'incomplete'
        if self.tree:
            return 'complete'
        if '.mod' in files:
            return 'download_only'
        return 'incomplete'

    @property
    def bytes(self):
        return self.tree_bytes + sum(item[0] for suffix, item in self.download.items() if suffix != '.lock')

    @property
    def disk_bytes(self):
        return self.tree_disk_bytes + sum(item[1] for suffix, item in self.download.items() if suffix != '.lock')

    @property
    def files(self):
        return self.tree_files + sum(1 for suffix in self.download if suffix != '.lock')

    def last_used_ns(self, use_atime):
        """Newest use signal: atime (if the mount updates it) or mtime of .ziphash/.mod/.info."""
        newest = 0
        for suffix in USE_SUFFIXES:
            item = self.download.get(suffix)
            if item is not None:
                newest = max(newest, item[3], item[2] if use_atime else 0)
        return newest or self.tree_mtime_ns


def _is_within(module_esc, prefix):
    return not prefix or module_esc == prefix or module_esc.startswith(prefix + '/')


# Areas of a module cache; the scan descends the first two with an explicit stack.
_TREE, _DOWNLOAD = 'tree', 'download'


class ModuleCacheScan(object):
    """One pass over a module cache: the download cache, then the extracted trees.

    Iterative and bounded in depth (_fs.MAX_DEPTH).  A directory that cannot
    be read is an error, and every version that could lie below it is marked
    `unread`, so that planning never takes an unseen part for a missing one.
    """

    def __init__(self, root_fd, boundary=None):
        self.root_fd = root_fd
        self.boundary = boundary or _fs.Boundary(root_fd)
        self.root_dev = self.boundary.root_dev
        self.errors = _fs.ErrorLog()
        self.versions = {}
        self.files = 0
        self.bytes = 0
        self.disk_bytes = 0
        self.sumdb_bytes = 0
        self.vcs_bytes = 0
        self.tmp_files = 0
        self.tmp_bytes = 0
        self.other_bytes = 0
        self.symlinks_skipped = 0
        self.mounts_skipped = 0
        # Escaped module path prefixes below which something could not be read ('' = all of them).
        self.unread_prefixes = set()

    def _version(self, module_esc, version_esc):
        key = (module_esc, version_esc)
        version = self.versions.get(key)
        if version is None:
            version = self.versions[key] = Version(module_esc, version_esc)
        return version

    def _count(self, st):
        self.files += 1
        self.bytes += st.st_size
        self.disk_bytes += st.st_blocks * 512

    def _count_other(self, st):
        """A file that belongs to no version (`list`, locks, stray files): counted in the totals."""
        self._count(st)
        self.other_bytes += st.st_size

    def _on_symlink(self, _path):
        self.symlinks_skipped += 1

    def _on_mount(self, _path):
        self.mounts_skipped += 1

    def run(self):
        self._walk()
        if self.unread_prefixes:
            for version in self.versions.values():
                if any(_is_within(version.module_esc, prefix) for prefix in self.unread_prefixes):
                    version.unread = True
        return self

    @staticmethod
    def _module_prefix(area, rel):
        """The escaped module path a directory of the tree or download area stands for."""
        if area == _TREE:
            return rel
        return rel.split('/', 2)[2] if rel.count('/') >= 2 else ''

    def _unreadable(self, area, rel, error):
        self.errors.add(rel or '.', error)
        self.unread_prefixes.add(self._module_prefix(area, rel) if area in (_TREE, _DOWNLOAD) else '')

    def _walk(self, start_fd=None, start_rel='', start_area=_TREE):
        """A tree or download area, depth first with a stack of open directories."""
        start_fd = self.root_fd if start_fd is None else start_fd
        stack = [(None, start_fd, start_rel, start_area, iter(self._listing(start_fd, start_rel, start_area)))]
        try:
            while stack:
                _owned, fd, here, area, entries = stack[-1]
                for name, st in entries:
                    child = here + '/' + name if here else name
                    if stat.S_ISREG(st.st_mode):
                        self._count_other(st)
                        continue
                    if not stat.S_ISDIR(st.st_mode):
                        continue
                    descend = self._visit_dir(fd, here, area, name, child)
                    if descend is None:
                        continue
                    if len(stack) > _fs.MAX_DEPTH:
                        self._unreadable(descend, child, _fs.TooDeep(child))
                        continue
                    try:
                        child_fd = self.boundary.open_dir(name, fd, child)
                    except OSError as exc:
                        self._unreadable(descend, child, exc)
                        continue
                    stack.append((child_fd, child_fd, child, descend, iter(self._listing(child_fd, child, descend))))
                    break
                else:
                    owned = stack.pop()[0]
                    if owned is not None:
                        os.close(owned)
        finally:
            for owned, _fd, _rel, _area, _entries in stack:
                if owned is not None:
                    os.close(owned)

    def _visit_dir(self, fd, here, area, name, child):
        """Handle the directory `name` of a tree or download directory; the area to descend into, or None."""
        if area == _TREE:
            if not here and name == DOWNLOAD_DIR[0]:
                self._with_dir(fd, name, child, self._scan_cache_dir)
                return None
            if '@' in name:
                elem, _at, version_esc = name.rpartition('@')
                version = self._version(here + '/' + elem if here else elem, version_esc)
                version.tree = True
                self._with_dir(fd, name, child, functools.partial(self._measure_tree, version),
                               functools.partial(self._tree_unreadable, version))
                return None
            return _TREE
        prefix = self._module_prefix(_DOWNLOAD, here)
        if name == '@v' and prefix:
            self._with_dir(fd, name, child, self._scan_at_v,
                           lambda rel, exc: self._unreadable(_DOWNLOAD, here, exc))
            return None
        if name == SUMDB_DIR and not prefix:
            self._with_dir(fd, name, child, self._measure_sumdb)
            return None
        return _DOWNLOAD

    def _with_dir(self, parent_fd, name, rel, scan, on_error=None):
        try:
            fd = self.boundary.open_dir(name, parent_fd, rel)
        except OSError as exc:
            if isinstance(exc, _fs.CrossesMount):
                self.mounts_skipped += 1
            if on_error is not None:
                on_error(rel, exc)
            else:
                self.errors.add(rel, exc)
            return
        try:
            scan(fd, rel)
        finally:
            os.close(fd)

    def _tree_unreadable(self, version, rel, error):
        self.errors.add(rel, error)
        version.unread = True

    def _subtree_bytes(self, fd, rel):
        totals = _fs.TreeTotals()
        for _parent, _rel, _name, st in _fs.walk_files(fd, rel, self.boundary, self.errors,
                                                       self._on_symlink, self._on_mount):
            totals.add_file(st)
            self._count(st)
        return totals

    def _scan_cache_dir(self, fd, rel):
        """cache/: download/ holds versions; vcs/, sumdb and the lock are only measured."""
        for name, st in self._listing(fd, rel, _DOWNLOAD):
            child = rel + '/' + name
            if stat.S_ISREG(st.st_mode):
                self._count_other(st)
            elif not stat.S_ISDIR(st.st_mode):
                continue
            elif name == DOWNLOAD_DIR[1]:
                self._with_dir(fd, name, child, functools.partial(self._walk, start_area=_DOWNLOAD),
                               lambda rel, exc: self._unreadable(_DOWNLOAD, '', exc))
            elif name == VCS_DIR:
                self._with_dir(fd, name, child, self._measure_vcs)
            else:
                self._with_dir(fd, name, child, self._measure_other)

    def _measure_vcs(self, fd, rel):
        self.vcs_bytes += self._subtree_bytes(fd, rel).bytes

    def _measure_sumdb(self, fd, rel):
        self.sumdb_bytes += self._subtree_bytes(fd, rel).bytes

    def _measure_other(self, fd, rel):
        self.other_bytes += self._subtree_bytes(fd, rel).bytes

    def _listing(self, fd, rel, area=None):
        try:
            listing = _fs.list_dir(fd)
        except OSError as exc:
            if area is None:
                self.errors.add(rel, exc)
            else:
                self._unreadable(area, rel, exc)
            return []
        result = []
        for name, st in listing:
            if stat.S_ISLNK(st.st_mode):
                self.symlinks_skipped += 1
            elif stat.S_ISDIR(st.st_mode) and self.boundary.crosses(rel + '/' + name if rel else name, st):
                self.mounts_skipped += 1
                child = rel + '/' + name if rel else name
                if area is None:
                    self.errors.add(child, _fs.CrossesMount(child))
                else:
                    self._unreadable(area, child, _fs.CrossesMount(child))
            else:
                result.append((name, st))
        return result

    def _scan_at_v(self, fd, rel):
        module_esc = rel[len('cache/download/'):-len('/@v')]
        try:
            listing = _fs.list_dir(fd)
        except OSError as exc:
            self.errors.add(rel, exc)
            self.unread_prefixes.add(module_esc)
            return
        for name, st in listing:
            if stat.S_ISLNK(st.st_mode):
                self.symlinks_skipped += 1
                continue
            if not stat.S_ISREG(st.st_mode):
                if stat.S_ISDIR(st.st_mode):
                    self._with_dir(fd, name, rel + '/' + name, self._measure_other)
                continue
            self._count(st)
            version_esc, suffix = split_download_name(name)
            if suffix == '.tmp':
                # Go's leftovers when killed mid-download: part of that version's (incomplete) unit.
                self.tmp_files += 1
                self.tmp_bytes += st.st_size
                if version_esc:
                    version = self._version(module_esc, version_esc)
                    size, disk, mtime = version.tmp or (0, 0, 0)
                    version.tmp = (size + st.st_size, disk + st.st_blocks * 512, max(mtime, st.st_mtime_ns))
            elif version_esc is None:
                self.other_bytes += st.st_size  # `list`
            else:
                self._version(module_esc, version_esc).download[suffix] = (
                    st.st_size, st.st_blocks * 512, st.st_atime_ns, st.st_mtime_ns)

    def _measure_tree(self, version, fd, rel):
        version.tree_mtime_ns = os.fstat(fd).st_mtime_ns
        errors, mounts = self.errors.total, self.mounts_skipped
        totals = self._subtree_bytes(fd, rel)
        version.tree_files += totals.files
        version.tree_bytes += totals.bytes
        version.tree_disk_bytes += totals.disk_bytes
        if self.errors.total != errors or self.mounts_skipped != mounts:
            version.unread = True
