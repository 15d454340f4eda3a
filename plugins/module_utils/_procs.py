# -*- coding: utf-8 -*-
# Copyright (c) gofleet.cache contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

"""Running Go toolchain processes: deleting cache entries under a running build breaks it (golang/go#31948)."""

from __future__ import annotations

import os

# The go command and the tools it runs from $GOROOT/pkg/tool while building.
GO_TOOL_NAMES = frozenset(('go', 'compile', 'link', 'asm', 'cgo', 'vet', 'cover', 'buildid', 'pack',
                           'test2json', 'covdata', 'fix', 'preprofile', 'gopls'))


def _owner(pid):
    with open('/proc/%s/status' % pid) as handle:
        for line in handle:
            if line.startswith('Uid:'):
                return int(line.split()[1])
    return None


def go_processes(uid=None, proc='/proc'):
    """[(pid, uid, name)] of Go toolchain processes, of `uid` only when given; never this process."""
    found = []
    me = os.getpid()
    try:
        pids = [name for name in os.listdir(proc) if name.isdigit()]
    except OSError:
        return found
    for pid in pids:
        if int(pid) == me:
            continue
        try:
            with open('%s/%s/comm' % (proc, pid)) as handle:
                name = handle.read().strip()
            if name not in GO_TOOL_NAMES:
                continue
            owner = _owner(pid) if proc == '/proc' else None
        except (OSError, ValueError):
            continue  # the process ended meanwhile
        if uid is None or owner == uid:
            found.append((int(pid), owner, name))
    return found
