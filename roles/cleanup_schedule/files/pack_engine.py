# -*- coding: utf-8 -*-
# Copyright (c) gofleet.cache contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

"""Pack the collection's module_utils into the tar the role unpacks on each host (runs on the controller).

    python pack_engine.py MODULE_UTILS_DIR TAR_PATH

One transfer instead of a copy per file. The tar holds
ansible_collections/gofleet/cache/plugins/module_utils/*.py with an __init__.py
at every level (regular packages: no other installed gofleet.cache can shadow
the copy), and is the same bytes for the same sources: sorted, owned by root,
one fixed mtime, so that unarchive finds nothing to change on a second run.
The launcher never writes bytecode, so a fixed mtime cannot make Python run a
stale .pyc.
"""

import io
import os
import sys
import tarfile

PACKAGE = ('ansible_collections', 'gofleet', 'cache', 'plugins', 'module_utils')
MTIME = 946684800  # 2000-01-01T00:00:00Z


def _info(name, mode, size=0, directory=False):
    info = tarfile.TarInfo(name)
    info.type = tarfile.DIRTYPE if directory else tarfile.REGTYPE
    info.mode = mode
    info.size = size
    info.mtime = MTIME
    info.uid = info.gid = 0
    info.uname = info.gname = 'root'
    return info


def pack(source_dir, tar_path):
    sources = sorted(name for name in os.listdir(source_dir) if name.endswith('.py') and name != '__init__.py')
    with tarfile.open(tar_path, 'w', format=tarfile.GNU_FORMAT) as tar:
        for depth in range(1, len(PACKAGE) + 1):
            directory = '/'.join(PACKAGE[:depth])
            tar.addfile(_info(directory, 0o755, directory=True))
            tar.addfile(_info(directory + '/__init__.py', 0o644), io.BytesIO(b''))
        for name in sources:
            with open(os.path.join(source_dir, name), 'rb') as handle:
                data = handle.read()
            tar.addfile(_info('/'.join(PACKAGE + (name,)), 0o644, len(data)), io.BytesIO(data))
    return sources


if __name__ == '__main__':
    pack(sys.argv[1], sys.argv[2])
