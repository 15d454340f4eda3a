# -*- coding: utf-8 -*-
# Copyright (c) gofleet.cache contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

"""The Go build cache (GOCACHE) as Go lays it out (src/cmd/go/internal/cache).

Units: an *entry* is an action file `<actionID>-a` plus the output file
`<outputID>-d` its line names.  Its last use is the newer mtime of the two
(Go refreshes each at most hourly).  One `-d` may be named by several `-a`
(one per Go version that built it); it is freed only with the last of them,
so its bytes are attributed to the most recently used of those entries.

The scan lists every directory once, stats every file once and reads every
`-a` (175 bytes) once.  What it keeps in memory is packed into bytearrays
(~60 bytes per file), bucketed by the first byte of the output ID so that
entries can be joined one bucket at a time.
"""

from __future__ import annotations

import os
import re
import stat
import struct

from ansible_collections.gofleet.cache.plugins.module_utils import _fs

README_NAME = 'README'
README_MARKER = b'This directory holds cached build artifacts from the Go build system.'
TRIM_NAME = 'trim.txt'
FUZZ_DIR = 'fuzz'
ENTRY_SIZE = 175  # len("v1 %x %x %20d %20d\n") with 32-byte IDs
HEX_DIRS = ['%02x' % i for i in range(256)]

_ENTRY_NAME = re.compile(r'[0-9a-f]{64}-[ad]\Z').match

# action id (may be empty when not kept), output id, mtime ns, size, allocated bytes, valid
ACTION_RECORD = struct.Struct('<32s32sqqq?')
# output id, mtime ns, size, allocated bytes, files (>1 for Go 1.24+ directory outputs), is dir
OUTPUT_RECORD = struct.Struct('<32sqqqi?')
_NO_ID = b'\0' * 32


def is_build_cache(root_fd):
    """True when the directory's README starts with Go's marker line."""
    try:
        head = _fs.read_small_file(README_NAME, root_fd, len(README_MARKER) + 2)
    except OSError:
        return False
    return head.startswith(README_MARKER)


def parse_action(data, action_hex):
    """Output ID (32 raw bytes) named by an -a file's content, or None when Go would ignore it.

    The checks are Go's own (cache.go getIndexEntry): exact length, `v1 `
    prefix, separators, trailing newline, and the action ID matching the name.
    """
    if (len(data) != ENTRY_SIZE or data[:3] != b'v1 ' or data[67:68] != b' '
            or data[132:133] != b' ' or data[174:175] != b'\n' or data[3:67] != action_hex):
        return None
    try:
        return bytes.fromhex(data[68:132].decode('ascii'))
    except ValueError:
        return None


class Entry(object):
    """One build cache entry after the join (an -a and, if present, its -d)."""

    __slots__ = ('action_id', 'output_id', 'action_mtime_ns', 'output_mtime_ns', 'last_used_ns',
                 'action_bytes', 'output_bytes', 'disk_bytes', 'files', 'output_is_dir', 'owns_output', 'alive')

    def __init__(self, action_id, output_id, action_mtime_ns, output_mtime_ns, action_bytes,
                 output_bytes, disk_bytes, files, output_is_dir, owns_output, alive):
        self.action_id = action_id
        self.output_id = output_id
        self.action_mtime_ns = action_mtime_ns
        self.output_mtime_ns = output_mtime_ns
        self.last_used_ns = max(action_mtime_ns, output_mtime_ns)
        self.action_bytes = action_bytes
        self.output_bytes = output_bytes
        self.disk_bytes = disk_bytes
        self.files = files
        self.output_is_dir = output_is_dir
        self.owns_output = owns_output
        self.alive = alive

    @property
    def bytes(self):
        """Bytes freed by removing this entry (its -d only if no other entry keeps it)."""
        return self.action_bytes + (self.output_bytes if self.owns_output else 0)


class BuildCacheScan(object):
    """One pass over a build cache; see the module docstring."""

    def __init__(self, root_fd, keep_action_ids=False):
        self.root_fd = root_fd
        self.keep_action_ids = keep_action_ids
        self.errors = _fs.ErrorLog()
        self.actions = [bytearray() for _i in range(256)]
        self.outputs = [bytearray() for _i in range(256)]
        self.files = 0
        self.bytes = 0
        self.disk_bytes = 0
        # Files that are neither entries nor Go's top-level bookkeeping.
        self.other_files = 0
        self.other_bytes = 0
        self.symlinks_skipped = 0
        self.mounts_skipped = 0
        self.last_trim = None
        self.root_dev = os.fstat(root_fd).st_dev

    def _count(self, st):
        self.files += 1
        self.bytes += st.st_size
        self.disk_bytes += st.st_blocks * 512

    def run(self):
        """Scan the cache; top-level files first, then the 256 entry directories."""
        hex_dirs = set(HEX_DIRS)
        for name, st in _fs.list_dir(self.root_fd):
            if stat.S_ISLNK(st.st_mode):
                self.symlinks_skipped += 1
            elif stat.S_ISREG(st.st_mode):
                self._count(st)
                if name == TRIM_NAME:
                    self.last_trim = self._read_trim()
            elif stat.S_ISDIR(st.st_mode) and name in hex_dirs:
                if st.st_dev != self.root_dev:
                    self.mounts_skipped += 1
                    continue
                self._scan_entry_dir(name)
            elif stat.S_ISDIR(st.st_mode) and name != FUZZ_DIR:
                # Not Go's: counted so that the totals add up, never entered for removal.
                totals = self._subtree(name, name)
                self.other_files += totals.files
                self.other_bytes += totals.bytes
        return self

    def _read_trim(self):
        try:
            return int(_fs.read_small_file(TRIM_NAME, self.root_fd, 64).strip() or b'0')
        except (OSError, ValueError):
            return None

    def _subtree(self, name, rel, dir_fd=None):
        try:
            fd = _fs.open_dir(name, self.root_fd if dir_fd is None else dir_fd)
        except OSError as exc:
            self.errors.add(rel, exc)
            return _fs.TreeTotals()
        try:
            totals = _fs.tree_totals(fd, rel, self.root_dev, self.errors)
        finally:
            os.close(fd)
        self.files += totals.files
        self.bytes += totals.bytes
        self.disk_bytes += totals.disk_bytes
        self.symlinks_skipped += totals.symlinks_skipped
        self.mounts_skipped += totals.mounts_skipped
        return totals

    def _scan_entry_dir(self, dirname):
        try:
            dir_fd = _fs.open_dir(dirname, self.root_fd)
        except OSError as exc:
            self.errors.add(dirname, exc)
            return
        try:
            try:
                listing = _fs.list_dir(dir_fd)
            except OSError as exc:
                self.errors.add(dirname, exc)
                return
            self._scan_listing(dirname, dir_fd, listing)
        finally:
            os.close(dir_fd)

    def _scan_listing(self, dirname, dir_fd, listing):
        bucket = int(dirname, 16)
        actions = self.actions
        outputs_here = self.outputs[bucket]
        pack_action = ACTION_RECORD.pack
        pack_output = OUTPUT_RECORD.pack
        keep_ids = self.keep_action_ids
        for name, st in listing:
            mode = st.st_mode
            is_entry = _ENTRY_NAME(name) is not None and name.startswith(dirname)
            if stat.S_ISREG(mode):
                self._count(st)
                if not is_entry:
                    self.other_files += 1
                    self.other_bytes += st.st_size
                elif name[-1] == 'a':
                    action_hex = name[:64].encode('ascii')
                    try:
                        output_id = parse_action(_fs.read_small_file(name, dir_fd, ENTRY_SIZE + 1), action_hex)
                    except OSError as exc:
                        self.errors.add(dirname + '/' + name, exc)
                        output_id = None
                    action_id = bytes.fromhex(name[:64]) if keep_ids or output_id is None else _NO_ID
                    if output_id is None:
                        # Go treats it as a miss; it is dead weight kept in bucket 0.
                        actions[0] += pack_action(action_id, _NO_ID, st.st_mtime_ns, st.st_size, st.st_blocks * 512, False)
                    else:
                        actions[output_id[0]] += pack_action(action_id, output_id, st.st_mtime_ns, st.st_size,
                                                             st.st_blocks * 512, True)
                else:
                    outputs_here += pack_output(bytes.fromhex(name[:64]), st.st_mtime_ns, st.st_size,
                                                st.st_blocks * 512, 1, False)
            elif stat.S_ISDIR(mode):
                rel = dirname + '/' + name
                if st.st_dev != self.root_dev:
                    self.mounts_skipped += 1
                    continue
                totals = self._subtree(name, rel, dir_fd)
                if is_entry and name[-1] == 'd':
                    # Go 1.24+: a -d directory holding one executable (go run, go tool).
                    outputs_here += pack_output(bytes.fromhex(name[:64]), st.st_mtime_ns, totals.bytes,
                                                totals.disk_bytes, totals.files, True)
                else:
                    self.other_files += totals.files
                    self.other_bytes += totals.bytes
            elif stat.S_ISLNK(mode):
                self.symlinks_skipped += 1

    def join(self):
        """Every Entry of join_buckets(), flattened."""
        for entries in self.join_buckets():
            yield from entries

    def join_buckets(self):
        """Yield, per output-ID bucket, the list of its Entries: alive and dead ones, then orphan outputs.

        Every entry naming an output is in that output's bucket, so a shared
        -d can be decided on with its bucket alone.  Dead entries (an -a Go
        would ignore, or whose -d is gone) have alive=False; orphan outputs
        have action_id None.  The order is deterministic for a given scan.
        """
        for bucket in range(256):
            outputs = {}
            for output_id, mtime, size, disk, files, is_dir in OUTPUT_RECORD.iter_unpack(self.outputs[bucket]):
                outputs[output_id] = (mtime, size, disk, files, is_dir)
            actions = list(ACTION_RECORD.iter_unpack(self.actions[bucket]))
            # Which alive entry owns each shared output: the most recently used.
            owner = {}
            for index, (_aid, output_id, a_mtime, _size, _disk, valid) in enumerate(actions):
                out = outputs.get(output_id) if valid else None
                if out is None:
                    continue
                last_used = max(a_mtime, out[0])
                current = owner.get(output_id)
                # On a tie the later entry owns it: least-recently-used order
                # (last use, then position) then removes the owner last.
                if current is None or last_used >= current[0]:
                    owner[output_id] = (last_used, index)
            entries = []
            for index, (action_id, output_id, a_mtime, a_size, a_disk, valid) in enumerate(actions):
                out = outputs.get(output_id) if valid else None
                if out is None:
                    entries.append(Entry(action_id, output_id if valid else None, a_mtime, 0, a_size, 0, a_disk, 1,
                                         False, False, False))
                    continue
                owns = owner[output_id][1] == index
                entries.append(Entry(action_id, output_id, a_mtime, out[0], a_size, out[1],
                                     a_disk + (out[2] if owns else 0), 1 + (out[3] if owns else 0), out[4], owns,
                                     True))
            for output_id, out in outputs.items():
                if output_id not in owner:
                    entries.append(Entry(None, output_id, 0, out[0], 0, out[1], out[2], out[3], out[4], True, False))
            yield entries
