# -*- coding: utf-8 -*-
# Copyright (c) gofleet.cache contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

"""Module versions that projects reference (`keep_referenced`): go.sum and go.mod files.

A go.sum line `module version h1:...` means the build needs the version's
source: the whole version is kept.  A line `module version/go.mod h1:...`
means the module graph needs its go.mod: at least .mod and .info are kept.
A go.mod `require` (or `replace` target) keeps the whole version.
"""

from __future__ import annotations

import errno
import os
import re

from ansible_collections.gofleet.cache.plugins.module_utils import _fs
from ansible_collections.gofleet.cache.plugins.module_utils._units import OptionError

# Directories never searched for go.sum/go.mod: VCS metadata, vendored copies,
# test data and extracted module versions (`name@version`: a module cache
# under a searched directory would otherwise reference all of itself).
SKIP_DIRS = frozenset(('.git', '.hg', '.svn', 'node_modules', 'vendor', 'testdata'))
MAX_FILES = 100000
MAX_FILE_BYTES = 16 << 20
REFERENCE_FILES = frozenset(('go.sum', 'go.mod', 'go.work.sum'))

_REQUIRE_LINE = re.compile(r'^\s*(?:require\s+)?(\S+)\s+(v\S+?)(?:\s*//.*)?$')
_REPLACE_LINE = re.compile(r'=>\s*(\S+)\s+(v\S+)\s*(?://.*)?$')


def parse_go_sum(text, full, graph):
    for line in text.splitlines():
        fields = line.split()
        if len(fields) != 3:
            continue
        module, version = fields[0], fields[1]
        if version.endswith('/go.mod'):
            graph.add((module, version[:-len('/go.mod')]))
        else:
            full.add((module, version))


def parse_go_mod(text, full):
    in_block = None
    for raw in text.splitlines():
        line = raw.split('//', 1)[0].strip() if '=>' not in raw else raw.strip()
        if not line:
            continue
        if line.endswith('(') and line.split()[0] in ('require', 'replace', 'exclude', 'retract', 'tool', 'godebug', 'ignore'):
            in_block = line.split()[0]
            continue
        if line == ')':
            in_block = None
            continue
        directive = in_block or line.split()[0]
        if directive == 'require':
            match = _REQUIRE_LINE.match(line)
            if match:
                full.add((match.group(1), match.group(2)))
        elif directive == 'replace':
            match = _REPLACE_LINE.search(line)
            if match:
                full.add((match.group(1), match.group(2)))


def check_paths(paths, option='keep_referenced'):
    """The paths, once each is absolute and exists; OptionError naming the option and the path otherwise.

    Only checked here: what they reference is read later by whoever prunes a module cache, as its owner.
    """
    checked = []
    for path in paths:
        if not isinstance(path, str) or not os.path.isabs(path):
            raise OptionError(option, path, 'path must be absolute')
        if not os.path.lexists(path):
            raise OptionError(option, path, 'no such file or directory')
        checked.append(os.path.normpath(path))
    return checked


def collect(paths, option='keep_referenced'):
    """(full, graph, errors): sets of (module, version) referenced by the files or trees in `paths`, and an
    _fs.ErrorLog of the files in those trees that could not be read.

    The trees may hold anyone's checkouts: they are walked through
    descriptors without following links or entering other mounts, and only
    regular files named go.sum, go.mod or go.work.sum, of at most
    MAX_FILE_BYTES, are read (opened without waiting on a FIFO).  What
    cannot be read with this process's rights (someone's FIFO, a checkout
    closed to the reader) is an error in the result, and the rest is read.
    """
    full, graph = set(), set()
    errors = _fs.ErrorLog()
    count = [0]
    for path in check_paths(paths or [], option):
        try:
            _collect_path(path, full, graph, count, option, errors)
        except OSError as exc:
            # Not readable with this process's rights: nothing there protects this process's caches.
            errors.add(path, exc)
    return full, graph, errors


def _open_dir(path):
    if os.geteuid() == 0:
        return _fs.open_trusted_path(path)
    return os.open(path, os.O_RDONLY | os.O_DIRECTORY | getattr(os, 'O_CLOEXEC', 0))


def _collect_path(path, full, graph, count, option, errors):
    try:
        fd = _open_dir(path)
    except OSError as exc:
        if exc.errno != errno.ENOTDIR:
            raise
        parent = _open_dir(os.path.dirname(path))
        try:
            _parse_file(parent, os.path.basename(path), full, graph)
        finally:
            os.close(parent)
        return
    walk_errors = _fs.ErrorLog()
    try:
        for parent_fd, rel, name, _st in _walk(fd, walk_errors):
            count[0] += 1
            if count[0] > MAX_FILES:
                raise OptionError(option, path, 'more than %d go.sum/go.mod files; name narrower directories'
                                  % MAX_FILES)
            try:
                _parse_file(parent_fd, name, full, graph)
            except OSError as exc:
                walk_errors.add(os.path.join(rel, name), exc)
    finally:
        os.close(fd)
        errors.merge(walk_errors, prefix=path)


def _walk(fd, errors):
    """go.sum/go.mod files below fd, skipping SKIP_DIRS, hidden directories and extracted module versions.

    One named like a reference file but not a regular file (a link, a FIFO) is an error: not read.
    """
    boundary = _fs.Boundary(fd)

    def pruned(rel):
        name = rel.rsplit('/', 1)[-1]
        return name in SKIP_DIRS or name.startswith('.') or '@' in name

    def not_regular(rel):
        if rel.rsplit('/', 1)[-1] in REFERENCE_FILES:
            errors.add(rel, OSError(errno.EINVAL, 'not a regular file: not read'))

    for parent_fd, rel, name, st in _fs.walk_files(fd, '', boundary, errors, skip_symlink=not_regular,
                                                   skip_dir=pruned, skip_other=not_regular):
        if name in REFERENCE_FILES:
            yield parent_fd, rel, name, st


def _parse_file(dir_fd, name, full, graph):
    fd = _fs.open_file(name, dir_fd)
    try:
        text = _fs.read_fd(fd, MAX_FILE_BYTES, name).decode('utf-8', 'replace')
    finally:
        os.close(fd)
    if name == 'go.mod' or name.endswith('.mod'):
        parse_go_mod(text, full)
    else:
        parse_go_sum(text, full, graph)
