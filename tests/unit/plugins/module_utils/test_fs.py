# -*- coding: utf-8 -*-
# Copyright (c) gofleet.cache contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

"""_fs: walks that no tree can lead astray (links, mounts, FIFOs, depth, names that are not UTF-8)."""

from __future__ import annotations

import errno
import json
import os
import subprocess

import pytest

from ansible_collections.gofleet.cache.plugins.module_utils import _fs

as_root = pytest.mark.skipif(os.geteuid() != 0, reason='needs root (mounts, other owners)')


def walk(root):
    fd = _fs.open_dir(root)
    errors = _fs.ErrorLog()
    mounts = []
    try:
        found = sorted((rel + '/' + name if rel else name) for _p, rel, name, _st in _fs.walk_files(
            fd, '', _fs.Boundary(fd), errors, skip_mount=mounts.append))
    finally:
        os.close(fd)
    return found, errors, mounts


def test_printable_escapes_bytes_that_are_not_utf8():
    name = b'caf\xe9-\xc3\xa9'.decode('utf-8', 'surrogateescape')
    assert _fs.printable(name) == 'caf\\xe9-\u00e9'
    json.dumps(_fs.printable(name)).encode('utf-8')


def test_a_deep_tree_is_walked_to_the_limit_and_reported(tmp_path):
    here = str(tmp_path)
    for _level in range(_fs.MAX_DEPTH + 40):
        here = os.path.join(here, 'd')
        try:
            os.mkdir(here)
        except OSError as exc:  # a path longer than PATH_MAX: go on from the directory itself
            assert exc.errno == errno.ENAMETOOLONG
            break
    found, errors, _mounts = walk(str(tmp_path))
    if len(os.path.relpath(here, str(tmp_path)).split('/')) > _fs.MAX_DEPTH:
        assert errors.total == 1 and 'directory levels' in errors.items[0]['error']
    assert found == []


def test_a_fifo_is_never_read(tmp_path):
    fifo = str(tmp_path / 'README')
    os.mkfifo(fifo)
    fd = _fs.open_dir(str(tmp_path))
    try:
        with pytest.raises(OSError) as raised:
            _fs.read_small_file('README', fd)
        assert raised.value.errno == errno.EINVAL
    finally:
        os.close(fd)
    with pytest.raises(OSError):
        _fs.read_text_file(fifo)


def test_a_text_file_over_the_limit_is_an_error(tmp_path):
    path = tmp_path / 'env'
    path.write_text('GOFLAGS=' + 'x' * 100)
    with pytest.raises(OSError) as raised:
        _fs.read_text_file(str(path), limit=50)
    assert raised.value.errno == errno.EFBIG


def test_a_link_is_never_read_through(tmp_path):
    (tmp_path / 'secret').write_text('x')
    os.symlink('secret', str(tmp_path / 'README'))
    fd = _fs.open_dir(str(tmp_path))
    try:
        with pytest.raises(OSError) as raised:
            _fs.read_small_file('README', fd)
        assert raised.value.errno == errno.ELOOP
    finally:
        os.close(fd)


@as_root
def test_a_bind_mount_of_the_same_file_system_is_not_entered(tmp_path):
    victim = tmp_path / 'victim'
    victim.mkdir()
    (victim / 'precious').write_text('keep')
    cache = tmp_path / 'cache'
    (cache / 'ab' / 'mnt').mkdir(parents=True)
    (cache / 'ab' / 'own').write_text('x')
    if subprocess.run(['mount', '--bind', str(victim), str(cache / 'ab' / 'mnt')], check=False).returncode:
        pytest.skip('cannot bind-mount here')
    try:
        assert os.stat(str(cache / 'ab' / 'mnt')).st_dev == os.stat(str(cache)).st_dev
        found, _errors, mounts = walk(str(cache))
        assert found == ['ab/own'] and mounts == ['ab/mnt']
        fd = _fs.open_dir(str(cache))
        try:
            boundary = _fs.Boundary(fd)
            assert boundary.strict
            with pytest.raises(_fs.CrossesMount):
                boundary.open_rel_dir(fd, 'ab/mnt')
        finally:
            os.close(fd)
    finally:
        subprocess.run(['umount', str(cache / 'ab' / 'mnt')], check=True)


@as_root
def test_trusted_paths_follow_only_root_links_in_root_directories(tmp_path):
    os.chmod(str(tmp_path), 0o755)
    real = tmp_path / 'real'
    real.mkdir()
    os.symlink(str(real), str(tmp_path / 'root-link'))
    fd = _fs.open_trusted_path(str(tmp_path / 'root-link'))
    try:
        assert os.path.samestat(os.fstat(fd), os.stat(str(real)))
    finally:
        os.close(fd)
    nobody = 65534
    account_dir = tmp_path / 'account'
    account_dir.mkdir()
    os.chown(str(account_dir), nobody, nobody)
    os.symlink(str(real), str(account_dir / 'link'))
    with pytest.raises(OSError) as raised:
        _fs.open_trusted_path(str(account_dir / 'link'))
    assert raised.value.errno == errno.ELOOP and raised.value.filename.endswith('/account/link')
    os.symlink(str(real), str(tmp_path / 'account-link'))
    os.lchown(str(tmp_path / 'account-link'), nobody, nobody)
    with pytest.raises(OSError):
        _fs.open_trusted_path(str(tmp_path / 'account-link'))


def test_entries_that_vanish_during_a_listing_are_left_out(tmp_path, monkeypatch):
    (tmp_path / 'stays').write_text('x')
    (tmp_path / 'goes').write_text('x')
    real_scandir = os.scandir

    class Vanishing(object):
        def __init__(self, fd):
            self.inner = real_scandir(fd)

        def __enter__(self):
            entries = list(self.inner)
            os.unlink(str(tmp_path / 'goes'))
            return iter(entries)

        def __exit__(self, *args):
            self.inner.close()

    monkeypatch.setattr(os, 'scandir', Vanishing)
    fd = _fs.open_dir(str(tmp_path))
    try:
        assert [name for name, _st in _fs.list_dir(fd)] == ['stays']
    finally:
        os.close(fd)
