# -*- coding: utf-8 -*-
# Copyright (c) gofleet.cache contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

"""The Go build cache (GOCACHE) as Go lays it out (src/cmd/go/internal/cache).

Units: an *entry* is an action file `<actionID>-a` plus the output file
`<outputID>-d` its line names.  Go ages every file on its own (its trim
removes any `-a` or `-d` unused for 5 days and an hour), so an entry's last
use is its `-a`'s own mtime, which Go refreshes on every hit older than an
hour (MTIME_INTERVAL_S: a mtime may lag the last use by up to an hour).  One
`-d` may be named by several `-a` (one per Go version that built it, and
the empty output is named by a third or more of a real cache's entries); it is freed
only with the last entry naming it, so its bytes are attributed to the most
recently used of them.  An output no kept entry names is freed with it; one a
kept entry names always stays, whatever its own age (Go would trim it and
turn that entry into a miss: the one deliberate difference from Go's trim).

An entry is alive when Go would count it as a hit: its `-a` parses as Go
parses it (cache.go get) and its output exists with the size the `-a`
records (GetFile; for an executable output, a directory holding one file of
that size: OutputFile).  Every other `-a`, and every output no `-a` names, is
dead weight.

The scan lists every directory once, stats every file once and reads every
`-a` (175 bytes) once.  What it keeps in memory is packed into bytearrays
(~60 bytes per file), bucketed by the first byte of the output ID so that
entries can be joined one bucket at a time.
"""

from __future__ import annotations

import concurrent.futures
# Loaded now, not on first use: a child that dropped to an account may not read Python's files.
import concurrent.futures.thread  # noqa: F401  pylint: disable=unused-import
import os
import stat
import struct

from ansible_collections.gofleet.cache.plugins.module_utils import _fs

README_NAME = 'README'
README_MARKER = b'This directory holds cached build artifacts from the Go build system.'
TRIM_NAME = 'trim.txt'
TESTEXPIRE_NAME = 'testexpire.txt'
LOG_NAME = 'log.txt'  # legacy; go clean -cache removes it
FUZZ_DIR = 'fuzz'
# Top-level names of a Go build cache besides the 256 entry directories (cache.go, default.go, clean.go).
TOP_LEVEL_FILES = frozenset((README_NAME, TRIM_NAME, TESTEXPIRE_NAME, LOG_NAME))
ENTRY_SIZE = 175  # len("v1 %x %x %20d %20d\n") with 32-byte IDs
HEX_DIRS = ['%02x' % i for i in range(256)]
# Go refreshes a file's mtime on use only once it is at least this old (cache.go mtimeInterval).
MTIME_INTERVAL_S = 3600
_HEX_DIGITS = frozenset(b'0123456789abcdefABCDEF')
# The output of an action that wrote nothing (sha256 of no bytes): Go's GetBytes counts an entry naming it with
# size 0 as a hit even when the -d file is gone (it hashes the nil it read), so such an entry is never dead.
EMPTY_OUTPUT_ID = bytes.fromhex('e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855')
_INT64_MAX = 2 ** 63 - 1

# Packed records, one per file.  Prune keeps whole IDs (it needs the file
# names back); facts keep no action ID and the first 16 bytes of output IDs
# (a 2**-128 collision chance), 33 + 45 bytes a file instead of 81 + 61.
# Fields: action ID, output ID, mtime ns, size, allocated bytes, state (ACTION_*), output size the line records.
ACTION_FULL = struct.Struct('<32s32sqIIBq')
ACTION_COMPACT = struct.Struct('<0s16sqIIBq')
ACTION_DEAD, ACTION_VALID, ACTION_UNREAD = 0, 1, 2
# Fields: output ID, mtime ns, size, allocated bytes, files (>1 for Go 1.24+ directory outputs), flags (OUTPUT_*).
# OUTPUT_ONE_FILE: a directory output whose only entry is a regular file, the shape Go's OutputFile accepts.
OUTPUT_FULL = struct.Struct('<32sqqqIB')
OUTPUT_COMPACT = struct.Struct('<16sqqqIB')
OUTPUT_DIR, OUTPUT_UNREAD, OUTPUT_ONE_FILE = 1, 2, 4
# Stat-only scans (link=False) keep per file: mtime ns, size, is an action file.
FILE_RECORD = struct.Struct('<qq?')
_NO_ID = b'\0' * 32
_HEX_SET = frozenset(HEX_DIRS)
_U32 = 0xFFFFFFFF


def is_build_cache(root_fd):
    """True for a Go build cache: its README starts with Go's marker line, or, when the README is gone
    (Go writes it again on its next use) or lacks the marker, the directory has Go's structure
    (has_cache_structure)."""
    try:
        head = _fs.read_small_file(README_NAME, root_fd, len(README_MARKER) + 2)
    except OSError:
        return has_cache_structure(root_fd)
    # A README without the marker (cut short when Go wrote it, which it never redoes) is judged as a missing one.
    return head.startswith(README_MARKER) or has_cache_structure(root_fd)


def has_cache_structure(root_fd):
    """All 256 entry directories Go makes (cache.go Open) and nothing at the top but Go's own files and the fuzz
    directory, which tells a README-less build cache from, say, a git object store."""
    try:
        listing = _fs.list_dir(root_fd)
    except OSError:
        return False
    hex_dirs = 0
    for name, st in listing:
        if stat.S_ISDIR(st.st_mode) and len(name) == 2 and name in _HEX_SET:
            hex_dirs += 1
        elif not (stat.S_ISREG(st.st_mode) and name in TOP_LEVEL_FILES
                  or stat.S_ISDIR(st.st_mode) and name == FUZZ_DIR):
            return False
    return hex_dirs == 256


def _go_int(field):
    """strconv.ParseInt of a space-padded decimal field as Go's get() reads it; None when Go would not."""
    text = field.lstrip(b' ')
    digits = text[1:] if text[:1] in (b'+', b'-') else text
    if not digits or not digits.isdigit():
        return None
    value = int(text)
    return value if -_INT64_MAX - 1 <= value <= _INT64_MAX else None


def parse_action(data, action_hex):
    """(output ID (32 raw bytes), recorded output size) of an -a file's line, or None when Go would miss it.

    The checks are Go's own (cache.go get): exactly 175 bytes, `v1 `, the
    separators and the final newline, hex IDs (either case) with the action ID
    the name's, and size and time fields that parse as non-negative integers.
    """
    if (len(data) != ENTRY_SIZE or data[:3] != b'v1 ' or data[67:68] != b' ' or data[132:133] != b' '
            or data[153:154] != b' ' or data[174:175] != b'\n'):
        return None
    action, output = data[3:67], data[68:132]
    if not _HEX_DIGITS.issuperset(action) or not _HEX_DIGITS.issuperset(output) or \
            action.lower() != action_hex:
        return None
    size, when = _go_int(data[133:153]), _go_int(data[154:174])
    if size is None or size < 0 or when is None or when < 0:
        return None
    return bytes.fromhex(output.decode('ascii')), size


def _hex_id(name):
    """The 32-byte ID of a file named <64 hex>-a/-d, or None when the name is not Go's."""
    try:
        raw = bytes.fromhex(name[:64])
    except ValueError:
        return None
    text = name[:64]
    # fromhex skips spaces and takes uppercase; Go writes neither.
    if len(raw) != 32 or not (text.islower() or text.isdigit()):
        return None
    return raw


def is_entry_name(name, dirname, st):
    """Whether a name in an entry directory is one of Go's entries: `<64 hex>-a` file or `-d` file/directory."""
    kind_ok = stat.S_ISREG(st.st_mode) or (name.endswith('-d') and stat.S_ISDIR(st.st_mode))
    return (kind_ok and len(name) == 66 and name[64] == '-' and name[65] in 'ad' and name[:2] == dirname
            and _hex_id(name) is not None)


class Entry(object):
    """One build cache entry after the join (an -a and, if present, its -d)."""

    __slots__ = ('action_id', 'output_id', 'action_mtime_ns', 'output_mtime_ns', 'last_used_ns',
                 'action_bytes', 'output_bytes', 'disk_bytes', 'files', 'output_is_dir', 'owns_output', 'alive',
                 'unread')

    def __init__(self, action_id, output_id, action_mtime_ns, output_mtime_ns, action_bytes,
                 output_bytes, disk_bytes, files, output_is_dir, owns_output, alive, unread=False):
        self.action_id = action_id
        self.output_id = output_id
        self.action_mtime_ns = action_mtime_ns
        self.output_mtime_ns = output_mtime_ns
        # Go ages every file on its own: an entry by its -a, an output no entry names by itself.
        self.last_used_ns = output_mtime_ns if action_id is None else action_mtime_ns
        self.action_bytes = action_bytes
        self.output_bytes = output_bytes
        self.disk_bytes = disk_bytes
        self.files = files
        self.output_is_dir = output_is_dir
        self.owns_output = owns_output
        self.alive = alive
        # Part of it could not be read (an -a, a -d directory, or the directory its output lives in): whether it
        # is alive is unknown, so it is never removed.
        self.unread = unread

    @property
    def bytes(self):
        """Bytes freed by removing this entry (its -d only if no other entry keeps it)."""
        return self.action_bytes + (self.output_bytes if self.owns_output else 0)


# Directories scanned at once: reading the -a files is random I/O on a cold
# cache, which a disk serves faster several requests at a time (the reads
# release the GIL); on a warm cache the Python work is CPU-bound and more
# threads than cores only contend.  Twice the cores is the compromise measured.
SCAN_THREADS = min(8, 2 * (os.cpu_count() or 1))


class _Tally(object):
    """Counters of one part of a scan; parts are added up in a fixed order."""

    def __init__(self):
        self.files = 0
        self.bytes = 0
        self.disk_bytes = 0
        # Files that are neither entries nor Go's top-level bookkeeping.
        self.other_files = 0
        self.other_bytes = 0
        self.symlinks_skipped = 0
        self.mounts_skipped = 0
        self.errors = _fs.ErrorLog()
        self.unread = False  # the directory itself could not be listed
        self.strays = 0  # names in an entry directory that are not Go's entries
        self.actions = {}   # output-ID bucket -> packed action records
        self.outputs = bytearray()
        self.unlinked = bytearray()  # stat-only scans: FILE_RECORDs

    def count(self, st):
        self.files += 1
        self.bytes += st.st_size
        self.disk_bytes += st.st_blocks * 512

    def add(self, other):
        for name in ('files', 'bytes', 'disk_bytes', 'other_files', 'other_bytes', 'symlinks_skipped',
                     'mounts_skipped'):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.errors.merge(other.errors)


class BuildCacheScan(_Tally):
    """One pass over a build cache; see the module docstring."""

    def __init__(self, root_fd, keep_action_ids=False, link=True, boundary=None):
        """`link`: read every -a to join it with its -d (exact entries, orphans, shared outputs).

        Without it the scan is stat only, like du: entries are counted and
        aged file by file, orphans are unknown.  On a cold million-file cache
        the reads are most of the time (random I/O).
        """
        super(BuildCacheScan, self).__init__()
        self.root_fd = root_fd
        self.link = link
        self.keep_action_ids = keep_action_ids
        self.action_record = ACTION_FULL if keep_action_ids else ACTION_COMPACT
        self.output_record = OUTPUT_FULL if keep_action_ids else OUTPUT_COMPACT
        self.actions = [bytearray() for _i in range(256)]
        self.outputs = [bytearray() for _i in range(256)]
        # Entry directories that could not be listed: their outputs are unknown.
        self.unread_dirs = set()
        self.last_trim = None
        self.boundary = boundary or _fs.Boundary(root_fd)
        self.root_dev = self.boundary.root_dev
        # What state=absent sweeps besides entries: names in the entry directories that are not Go's, log.txt.
        self.strays = 0
        self.has_log = False

    def run(self):
        """Scan the cache; top-level files first, then the 256 entry directories."""
        hex_dirs = set(HEX_DIRS)
        entry_dirs = []
        for name, st in _fs.list_dir(self.root_fd):
            if stat.S_ISLNK(st.st_mode):
                self.symlinks_skipped += 1
            elif stat.S_ISREG(st.st_mode):
                self.count(st)
                if name == TRIM_NAME:
                    self.last_trim = self._read_trim()
                elif name == LOG_NAME:
                    self.has_log = True
            elif stat.S_ISDIR(st.st_mode) and name in hex_dirs:
                if self.boundary.crosses(name, st):
                    self.mounts_skipped += 1
                    self.unread_dirs.add(name)
                    self.errors.add(name, _fs.CrossesMount(name))
                    continue
                entry_dirs.append(name)
            elif stat.S_ISDIR(st.st_mode) and name != FUZZ_DIR:
                # Not Go's: counted so that the totals add up, never entered for removal.
                files, size = self.files, self.bytes
                self._subtree(self, name, name)
                self.other_files += self.files - files
                self.other_bytes += self.bytes - size
        entry_dirs.sort()
        with concurrent.futures.ThreadPoolExecutor(max_workers=SCAN_THREADS) as pool:
            # map() yields in submission order: the records keep a deterministic order.
            for dirname, part in zip(entry_dirs, pool.map(self._scan_entry_dir, entry_dirs)):
                if part.unread:
                    self.unread_dirs.add(dirname)
                self.strays += part.strays
                self.add(part)
                for bucket, records in part.actions.items():
                    self.actions[bucket] += records
                self.outputs[int(dirname, 16)] += part.outputs
                self.unlinked += part.unlinked
        return self

    def _read_trim(self):
        try:
            return int(_fs.read_small_file(TRIM_NAME, self.root_fd, 64).strip() or b'0')
        except (OSError, ValueError):
            return None

    def _subtree(self, tally, name, rel, dir_fd=None):
        """Totals of a directory below the root; None when any of it could not be read."""
        try:
            fd = self.boundary.open_dir(name, self.root_fd if dir_fd is None else dir_fd, rel)
        except _fs.CrossesMount as exc:
            tally.mounts_skipped += 1
            tally.errors.add(rel, exc)
            return None
        except OSError as exc:
            tally.errors.add(rel, exc)
            return None
        errors_before = tally.errors.total
        try:
            totals = _fs.tree_totals(fd, rel, self.boundary, tally.errors)
        finally:
            os.close(fd)
        tally.files += totals.files
        tally.bytes += totals.bytes
        tally.disk_bytes += totals.disk_bytes
        tally.symlinks_skipped += totals.symlinks_skipped
        tally.mounts_skipped += totals.mounts_skipped
        if tally.errors.total != errors_before or totals.mounts_skipped:
            return None
        return totals

    def _dir_output_shape(self, name, rel, dir_fd):
        """OUTPUT_ONE_FILE when a -d directory's only entry is a regular file, as Go's OutputFile requires
        (anything else there, or a file one level down, is a miss); OUTPUT_UNREAD when its only entry is a
        symbolic link, which Go follows and the scan never does, so whether it is a hit is unknown."""
        try:
            fd = self.boundary.open_dir(name, dir_fd, rel)
        except OSError:
            return OUTPUT_UNREAD
        try:
            listing = _fs.list_dir(fd)
        except OSError:
            return OUTPUT_UNREAD
        finally:
            os.close(fd)
        if len(listing) != 1:
            return 0
        mode = listing[0][1].st_mode
        return OUTPUT_ONE_FILE if stat.S_ISREG(mode) else OUTPUT_UNREAD if stat.S_ISLNK(mode) else 0

    def _scan_entry_dir(self, dirname):
        """One of the 256 directories, into a _Tally of its own (runs in a worker thread)."""
        part = _Tally()
        try:
            dir_fd = self.boundary.open_dir(dirname, self.root_fd, dirname)
        except OSError as exc:
            part.errors.add(dirname, exc)
            part.unread = True
            return part
        try:
            try:
                listing = _fs.list_dir(dir_fd)
            except OSError as exc:
                part.errors.add(dirname, exc)
                part.unread = True
                return part
            self._scan_listing(part, dirname, dir_fd, listing)
        finally:
            os.close(dir_fd)
        return part

    def _scan_listing(self, part, dirname, dir_fd, listing):
        actions = part.actions
        outputs_here = part.outputs
        pack_action = self.action_record.pack
        pack_output = self.output_record.pack
        keep_ids = self.keep_action_ids
        link = self.link
        unlinked = part.unlinked
        pack_file = FILE_RECORD.pack
        for name, st in listing:
            mode = st.st_mode
            # Go's names: <64 lowercase hex>-a / -d, in the directory of their first byte.
            is_entry = len(name) == 66 and name[64] == '-' and name[65] in 'ad' and name[:2] == dirname
            if stat.S_ISREG(mode):
                part.count(st)
                if is_entry and not link:
                    unlinked += pack_file(st.st_mtime_ns, st.st_size, name[65] == 'a')
                    continue
                entry_id = _hex_id(name) if is_entry else None
                if entry_id is None:
                    part.strays += 1
                    part.other_files += 1
                    part.other_bytes += st.st_size
                elif name[65] == 'a':
                    state = ACTION_VALID
                    output_id, recorded = None, -1
                    try:
                        parsed = parse_action(_fs.read_small_file(name, dir_fd, ENTRY_SIZE + 1),
                                              name[:64].encode('ascii'))
                        if parsed is None:
                            state = ACTION_DEAD
                        else:
                            output_id, recorded = parsed
                    except OSError as exc:
                        part.errors.add(dirname + '/' + name, exc)
                        state = ACTION_UNREAD
                    # Go treats an -a it cannot parse as a miss: dead weight, kept in bucket 0.
                    bucket = 0 if output_id is None else output_id[0]
                    record = pack_action(entry_id if keep_ids or output_id is None else b'', output_id or _NO_ID,
                                         st.st_mtime_ns, min(st.st_size, _U32), min(st.st_blocks * 512, _U32),
                                         state, recorded)
                    if bucket in actions:
                        actions[bucket] += record
                    else:
                        actions[bucket] = bytearray(record)
                else:
                    outputs_here += pack_output(entry_id, st.st_mtime_ns, st.st_size, st.st_blocks * 512, 1, 0)
            elif stat.S_ISDIR(mode):
                rel = dirname + '/' + name
                files, size, disk = part.files, part.bytes, part.disk_bytes
                complete = self._subtree(part, name, rel, dir_fd) is not None
                files, size, disk = part.files - files, part.bytes - size, part.disk_bytes - disk
                entry_id = _hex_id(name) if is_entry and name[65] == 'd' else None
                if entry_id is not None and not link:
                    unlinked += pack_file(st.st_mtime_ns, size, False)
                elif entry_id is not None:
                    # Go 1.24+: a -d directory holding one executable (go run, go tool).
                    outputs_here += pack_output(entry_id, st.st_mtime_ns, size, disk, files,
                                                OUTPUT_DIR | (self._dir_output_shape(name, rel, dir_fd)
                                                              if complete else OUTPUT_UNREAD))
                else:
                    part.strays += 1
                    part.other_files += files
                    part.other_bytes += size
            elif stat.S_ISLNK(mode):
                part.symlinks_skipped += 1
                part.strays += 1
            else:
                part.strays += 1  # FIFOs, sockets: nothing of Go's

    def join(self):
        """Every Entry of join_buckets(), flattened."""
        for entries in self.join_buckets():
            yield from entries

    def join_buckets(self):
        """Yield, per output-ID bucket, the list of its Entries: alive and dead ones, then orphan outputs.

        Every entry naming an output is in that output's bucket, so a shared
        -d can be decided on with its bucket alone.  Dead entries (an -a Go
        would miss: unparsable, its -d gone or of another size) have
        alive=False; outputs no alive entry names have action_id None.  The
        order is deterministic for a given scan.
        """
        for bucket in range(256):
            outputs = {}
            for output_id, mtime, size, disk, files, flags in self.output_record.iter_unpack(self.outputs[bucket]):
                outputs[output_id] = (mtime, size, disk, files, flags)
            actions = list(self.action_record.iter_unpack(self.actions[bucket]))
            # Outputs of this bucket that could not be listed: an entry naming one may be alive.
            outputs_unread = HEX_DIRS[bucket] in self.unread_dirs
            hits = [_hit(state, outputs.get(output_id), recorded, output_id)
                    for _aid, output_id, _mtime, _size, _disk, state, recorded in actions]
            # Which alive entry owns each shared output: the most recently used (its own -a's mtime).
            owner = {}
            for index, (_aid, output_id, a_mtime, _size, _disk, _state, _recorded) in enumerate(actions):
                if hits[index] is None:
                    continue
                current = owner.get(output_id)
                # On a tie the later entry owns it: least-recently-used order
                # (last use, then position) then removes the owner last.
                if current is None or a_mtime >= current[0]:
                    owner[output_id] = (a_mtime, index)
            entries = []
            for index, (action_id, output_id, a_mtime, a_size, a_disk, state, _recorded) in enumerate(actions):
                valid = state == ACTION_VALID
                out = hits[index]
                if out is None:
                    unread = state == ACTION_UNREAD or valid and outputs_unread and output_id not in outputs
                    entries.append(Entry(action_id, output_id if valid else None, a_mtime, 0, a_size, 0, a_disk, 1,
                                         False, False, False, unread))
                    continue
                # A missing empty output (see _hit) is no file to free.
                owns = owner[output_id][1] == index and out is not _MISSING_EMPTY_OUTPUT
                mtime, size, disk, files, flags = out
                entries.append(Entry(action_id, output_id, a_mtime, mtime, a_size, size,
                                     a_disk + (disk if owns else 0), 1 + (files if owns else 0),
                                     bool(flags & OUTPUT_DIR), owns, True, bool(flags & OUTPUT_UNREAD)))
            for output_id, (mtime, size, disk, files, flags) in outputs.items():
                if output_id not in owner:
                    entries.append(Entry(None, output_id, 0, mtime, 0, size, disk, files, bool(flags & OUTPUT_DIR),
                                         True, False, bool(flags & OUTPUT_UNREAD)))
            yield entries


# The output record of an entry naming the empty output that is not on disk (mtime, size, disk, files, flags).
_MISSING_EMPTY_OUTPUT = (0, 0, 0, 0, 0)


def _hit(state, out, recorded, output_id):
    """The output record when Go would count the entry as a hit (GetFile, OutputFile, GetBytes), else None.

    An output that could not be read whole is taken as a hit: whether it is
    one is unknown, and the entry is then marked unread and kept.
    """
    if state != ACTION_VALID:
        return None
    if out is None:
        # Compact records (facts) keep a prefix of each output ID.
        return _MISSING_EMPTY_OUTPUT if recorded == 0 and output_id == EMPTY_OUTPUT_ID[:len(output_id)] else None
    _mtime, size, _disk, _files, flags = out
    if flags & OUTPUT_UNREAD or size == recorded and (flags & OUTPUT_ONE_FILE or not flags & OUTPUT_DIR):
        return out
    return None
