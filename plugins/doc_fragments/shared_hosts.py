# -*- coding: utf-8 -*-
# Copyright (c) gofleet.cache contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations


class ModuleDocFragment(object):
    """How the modules act on hosts where accounts are not trusted (SECURITY.md)."""

    DOCUMENTATION = r"""
attributes:
  shared_hosts:
    description:
      - Safe to run as root on a host whose accounts are not trusted, cache owners included (see the notes).
    support: partial
    details:
      - Linux hosts follow every rule in the notes. The PowerShell twins of the modules on Windows do not separate
        privileges yet.
notes:
  - On a Linux host that several accounts share, the module runs as root but reads and changes an account's files only
    from a child process that dropped to that account (its groups, group and user IDs), so that the kernel decides
    what can be touched. Root itself acts only where it must, on directory descriptors, never following a link
    another account controls and never resolving a path twice. See C(SECURITY.md) in the collection.
  - A cache located from an account's own settings (its environment, its go env file, Go's default under its home)
    counts as that account's only when the account owns its root directory; any other location is reported with
    the reason and left alone. A cache named in the task (a path in root's own configuration) is opened from
    C(/) without following links another account controls, and acted on as the owner of its root directory.
  - Only regular files are read, opened without following links or waiting on a FIFO, up to a size bound; a file
    with more than one hard link is never written; mount points inside a cache (bind mounts of the same file
    system included) are never entered; directory walks are bounded in depth; file names that are not UTF-8 are
    reported with backslash escapes.
"""
