# -*- coding: utf-8 -*-
# Copyright (c) gofleet.cache contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

"""Small Go cache trees in Go's exact on-disk format, for engine tests."""

from __future__ import annotations

import hashlib
import os

# Go's case escaping itself is pinned by literal vectors in test_modcache.py.
from ansible_collections.gofleet.cache.plugins.module_utils import _modcache

README = 'This directory holds cached build artifacts from the Go build system.\nRun "go clean -cache" if the directory is getting too large.\n'
DAY = 86400


def hexid(seed):
    """A deterministic 64-hex ID."""
    return hashlib.sha256(str(seed).encode()).hexdigest()


def set_time(path, seconds, atime=None):
    os.utime(path, (seconds if atime is None else atime, seconds), follow_symlinks=False)


def new_build_cache(root):
    os.makedirs(root)
    with open(os.path.join(root, 'README'), 'w') as handle:
        handle.write(README)
    for index in range(256):
        os.mkdir(os.path.join(root, '%02x' % index))
    return root


def action_line(action_id, output_id, size, when_ns=0):
    return ('v1 %s %s %20d %20d\n' % (action_id, output_id, size, when_ns)).encode()


def add_output(root, output_id, size, used, directory=False):
    path = os.path.join(root, output_id[:2], output_id + '-d')
    if directory:
        os.mkdir(path)
        with open(os.path.join(path, 'a.out'), 'wb') as handle:
            handle.write(b'x' * size)
        set_time(os.path.join(path, 'a.out'), used)
    else:
        with open(path, 'wb') as handle:
            handle.write(b'o' * size)
    set_time(path, used)
    return path


def add_action(root, action_id, output_id, used, size=0):
    path = os.path.join(root, action_id[:2], action_id + '-a')
    with open(path, 'wb') as handle:
        handle.write(action_line(action_id, output_id, size))
    set_time(path, used)
    return path


def add_entry(root, seed, size, used, output_used=None, directory=False):
    """An -a plus its -d; returns (action_id, output_id)."""
    action_id, output_id = hexid('a%s' % seed), hexid('d%s' % seed)
    add_output(root, output_id, size, used if output_used is None else output_used, directory)
    add_action(root, action_id, output_id, used, size)
    return action_id, output_id


def add_module_version(root, module, version, used, files=None, extracted=True, parts=('info', 'mod', 'zip', 'ziphash', 'lock'),
                       atime=None):
    """A module version in GOMODCACHE layout; `parts` chooses the download files."""
    at_v = os.path.join(root, 'cache', 'download', _modcache.escape(module), '@v')
    os.makedirs(at_v, exist_ok=True)
    for part in parts:
        path = os.path.join(at_v, '%s.%s' % (_modcache.escape(version), part))
        with open(path, 'wb') as handle:
            handle.write(('%s %s %s\n' % (module, version, part)).encode())
        set_time(path, used, atime)
    if extracted:
        tree = os.path.join(root, _modcache.escape(module) + '@' + _modcache.escape(version))
        os.makedirs(tree)
        for name, content in (files or {'go.mod': 'module %s\n' % module}).items():
            path = os.path.join(tree, name)
            with open(path, 'w') as handle:
                handle.write(content)
            os.chmod(path, 0o444)
            set_time(path, used)
        os.chmod(tree, 0o555)
        set_time(tree, used)
    return at_v


def make_writable(root):
    """Undo Go's read-only module trees so that pytest can remove tmp_path."""
    for dirpath, dirnames, _files in os.walk(root):
        for name in dirnames:
            os.chmod(os.path.join(dirpath, name), 0o755)


def snapshot(root):
    """Every path with its type, size, mode and times: proves check mode changes nothing."""
    state = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            path = os.path.join(dirpath, name)
            st = os.lstat(path)
            digest = None
            if os.path.isfile(path) and not os.path.islink(path):
                # O_NOATIME: reading must not refresh the access times the module cache ages by.
                fd = os.open(path, os.O_RDONLY | getattr(os, 'O_NOATIME', 0))
                try:
                    digest = hashlib.sha256(os.read(fd, st.st_size + 1)).hexdigest()
                finally:
                    os.close(fd)
            state[os.path.relpath(path, root)] = (st.st_mode, st.st_size, st.st_mtime_ns, digest)
    return state
