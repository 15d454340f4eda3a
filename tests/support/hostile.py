"""Helpers for the hostile-account integration tests (tests/integration/test_hostile.py).

Stdlib only. Everything an attacker does is done with the attacker's own
rights: :func:`as_user` forks, drops to the account (setgroups([]),
setresgid, setresuid) and runs a Python callable there; :class:`Loop` runs a
small Python program as the account in the background (for races). Only
what needs root is done as root (bind mounts, a tmpfs, victim trees).

- ``ensure_account(name)``: passwd entry, ``useradd -m`` when missing.
- ``host_lock(path, wait_s)``: context manager holding an exclusive flock on
  ``path`` (sessions that share the test accounts run one after the other).
- ``as_user(pw, func, *args)``: ``func(*args)`` as ``pw``; its return value,
  or RuntimeError with the child's exception text.
- ``write_file(path, data)``: create/truncate without following a final link.
- ``write_as(pw, path, data)``, ``mkdirs_as(pw, path)``: files and
  directories the account makes itself.
- ``make_deep_as(pw, parent, name, depth)``: a ``depth``-level directory chain
  (fd-relative, so longer than PATH_MAX) with one file at the bottom.
- ``snapshot(root)``: {relative path: (type, mode, uid, gid, size, mtime_ns,
  content digest | link target)} of a tree, without following links,
  reading FIFOs or changing access times. Two equal snapshots = nothing
  written, chowned, chmodded, created or removed.
- ``copy_tree(src, dest, owner=None)``: ``cp -a`` (then ``chown -hR``).
- ``remove_tree(path)``: unmount everything below (deepest first), make
  writable, ``rm -rf`` (GNU rm handles trees deeper than Python's recursion).
- ``bind_mount(src, dest)``, ``tmpfs_mount(dest, size)``, ``umount(dest)``.
- ``Loop(pw, script, *args)``: context manager; runs ``/usr/bin/python3 -c
  script args... STOPFILE`` as ``pw`` until the block ends (the script polls
  ``sys.argv[-1]``), then waits for it (kills it, by pid, if it lingers).
- ``unjam(paths)``: opens each FIFO for writing and reading without blocking
  and closes it again, which releases a reader or writer blocked on it.
- ``kill_descendants(match)``: SIGKILL processes descended from this one whose
  command line contains ``match`` (only what this test process started).
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import os
import pickle
import pwd
import signal
import stat
import subprocess
import tempfile
import time
import traceback

TARGET_PYTHON = os.environ.get("GOFLEET_IT_TARGET_PYTHON", "/usr/bin/python3")
GO_MARKER = b"This directory holds cached build artifacts from the Go build system."


# --------------------------------------------------------------------------- accounts


def ensure_account(name):
    """The passwd entry of ``name``, created with ``useradd -m`` if missing."""
    try:
        return pwd.getpwnam(name)
    except KeyError:
        pass
    res = subprocess.run(["useradd", "-m", "-s", "/bin/sh", name], stdout=subprocess.PIPE,
                         stderr=subprocess.STDOUT, universal_newlines=True, check=False)
    if res.returncode not in (0, 9):  # 9: made meanwhile by someone else
        raise RuntimeError("useradd %s failed: %s" % (name, res.stdout))
    return pwd.getpwnam(name)


def as_user(pw, func, *args, **kwargs):
    """Run ``func(*args, **kwargs)`` in a child that is ``pw`` (no supplementary groups)."""
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:  # child
        status = 0
        try:
            os.close(read_fd)
            os.setgroups([])
            os.setresgid(pw.pw_gid, pw.pw_gid, pw.pw_gid)
            os.setresuid(pw.pw_uid, pw.pw_uid, pw.pw_uid)
            os.umask(0o022)
            payload = pickle.dumps(("ok", func(*args, **kwargs)))
        except BaseException:  # pylint: disable=broad-except
            payload = pickle.dumps(("error", traceback.format_exc()))
            status = 1
        try:
            view = memoryview(payload)
            while view:
                view = view[os.write(write_fd, view):]
        finally:
            os._exit(status)
    os.close(write_fd)
    chunks = []
    while True:
        chunk = os.read(read_fd, 65536)
        if not chunk:
            break
        chunks.append(chunk)
    os.close(read_fd)
    os.waitpid(pid, 0)
    outcome, value = pickle.loads(b"".join(chunks)) if chunks else ("error", "child died")
    if outcome != "ok":
        raise RuntimeError("as %s: %s" % (pw.pw_name, value))
    return value


def write_file(path, data, mode=0o644):
    """Create or truncate ``path`` (str or bytes; never through a final symlink) with ``data``."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, mode)
    try:
        os.write(fd, data if isinstance(data, bytes) else data.encode())
    finally:
        os.close(fd)


def write_as(pw, path, data, mode=0o644):
    """``path`` written by ``pw`` (parents made as ``pw``)."""
    def work():
        os.makedirs(os.path.dirname(path), exist_ok=True)
        write_file(path, data, mode)
    as_user(pw, work)


def mkdirs_as(pw, path, mode=0o755):
    as_user(pw, os.makedirs, path, mode, True)


def make_deep_as(pw, parent, name, depth):
    """``parent/name/name/.../name`` ``depth`` levels deep with a file ``bottom`` at the end."""
    def work():
        fd = os.open(parent, os.O_RDONLY | os.O_DIRECTORY)
        try:
            for _level in range(depth):
                os.mkdir(name, 0o755, dir_fd=fd)
                next_fd = os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=fd)
                os.close(fd)
                fd = next_fd
            bottom = os.open("bottom", os.O_WRONLY | os.O_CREAT, 0o644, dir_fd=fd)
            os.write(bottom, b"the bottom of a very deep tree\n")
            os.close(bottom)
        finally:
            os.close(fd)
    as_user(pw, work)


@contextlib.contextmanager
def host_lock(path, wait_s):
    """flock on ``path`` (root's, never through a link) for the block; waits up to ``wait_s``."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    try:
        deadline = time.monotonic() + wait_s
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise RuntimeError("another session holds %s for more than %d s" % (path, wait_s))
                time.sleep(1)
        yield
    finally:
        os.close(fd)


# --------------------------------------------------------------------------- trees


def _digest(path):
    flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
    try:
        fd = os.open(path, flags | os.O_NOATIME)
    except PermissionError:
        fd = os.open(path, flags)
    h = hashlib.blake2b(digest_size=16)
    try:
        while True:
            chunk = os.read(fd, 1 << 20)
            if not chunk:
                return h.hexdigest()
            h.update(chunk)
    finally:
        os.close(fd)


def snapshot(root):
    """{relative path: (type, mode, uid, gid, size, mtime_ns, digest|target)} below and of ``root``."""
    out = {}
    root = os.fspath(root)
    stack = [""]
    while stack:
        rel = stack.pop()
        path = os.path.join(root, rel) if rel else root
        try:
            st = os.lstat(path)
        except FileNotFoundError:
            continue
        mode = st.st_mode
        if stat.S_ISREG(mode):
            kind, data = "file", _digest(path)
        elif stat.S_ISDIR(mode):
            kind, data = "dir", None
            fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_NOATIME)
            try:
                names = os.listdir(fd)
            finally:
                os.close(fd)
            stack.extend(os.path.join(rel, name) if rel else name for name in names)
        elif stat.S_ISLNK(mode):
            kind, data = "link", os.readlink(path)
        elif stat.S_ISFIFO(mode):
            kind, data = "fifo", None
        else:
            kind, data = "other", None
        out[rel or "."] = (kind, "%04o" % stat.S_IMODE(mode), st.st_uid, st.st_gid,
                           st.st_size if kind != "dir" else 0, st.st_mtime_ns, data)
    return out


def snapshot_diff(before, after, limit=12):
    """Readable differences between two snapshots."""
    lines = []
    for rel in sorted(set(before) | set(after)):
        b, a = before.get(rel), after.get(rel)
        if b == a:
            continue
        if b is None:
            lines.append("new: %s %s" % (rel, a))
        elif a is None:
            lines.append("gone: %s" % rel)
        else:
            fields = ("type", "mode", "uid", "gid", "size", "mtime_ns", "content")
            changes = ["%s %r -> %r" % (f, x, y) for f, x, y in zip(fields, b, a) if x != y]
            lines.append("changed %s: %s" % (rel, ", ".join(changes)))
    more = len(lines) - limit
    return lines[:limit] + (["... %d more" % more] if more > 0 else [])


def copy_tree(src, dest, owner=None):
    """cp -a src dest; then everything below dest owned by ``owner`` (a passwd entry) if given."""
    subprocess.run(["cp", "-a", os.fspath(src), os.fspath(dest)], check=True)
    if owner is not None:
        subprocess.run(["chown", "-hR", "%d:%d" % (owner.pw_uid, owner.pw_gid), os.fspath(dest)], check=True)


def mounts_below(path):
    """Mount points at or below ``path`` (from /proc/self/mountinfo), deepest first."""
    path = os.path.realpath(os.fspath(path))
    found = []
    with open("/proc/self/mountinfo") as handle:
        for line in handle:
            point = line.split(" ")[4]
            point = point.replace("\\040", " ").replace("\\011", "\t").replace("\\012", "\n") \
                .replace("\\134", "\\")
            if point == path or point.startswith(path.rstrip("/") + "/"):
                found.append(point)
    return sorted(found, key=len, reverse=True)


def bind_mount(src, dest):
    subprocess.run(["mount", "--bind", os.fspath(src), os.fspath(dest)], check=True)


def tmpfs_mount(dest, size):
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=%d,mode=0755" % size, "gofleet-hostile",
                    os.fspath(dest)], check=True)


def umount(dest):
    subprocess.run(["umount", os.fspath(dest)], check=False)
    if os.path.realpath(os.fspath(dest)) in mounts_below(dest):
        subprocess.run(["umount", "-l", os.fspath(dest)], check=False)


def remove_tree(path):
    """Unmount below, make writable, remove; never follows links, never fails."""
    path = os.fspath(path)
    for point in mounts_below(path):
        umount(point)
    if not os.path.lexists(path):
        return
    if os.path.islink(path) or not os.path.isdir(path):
        os.unlink(path)
        return
    subprocess.run(["chmod", "-R", "u+rwx", path], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                   check=False)
    subprocess.run(["rm", "-rf", "--one-file-system", path], stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL, check=False)


# --------------------------------------------------------------------------- background attacker


class Loop(object):
    """``script`` run as ``pw`` by the system Python until the with-block ends."""

    def __init__(self, pw, script, *args):
        self.pw = pw
        self.script = script
        self.args = [os.fspath(a) for a in args]
        self.proc = None
        self.stop_dir = None
        self.output = ""

    def __enter__(self):
        self.stop_dir = tempfile.mkdtemp(prefix="gofleet-hostile-stop-")
        os.chmod(self.stop_dir, 0o755)
        stop = os.path.join(self.stop_dir, "stop")
        self.proc = subprocess.Popen(  # noqa: S603
            [TARGET_PYTHON, "-c", self.script] + self.args + [stop], cwd="/",
            env={"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"}, stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, universal_newlines=True,
            user=self.pw.pw_uid, group=self.pw.pw_gid, extra_groups=[])
        time.sleep(0.2)
        return self

    def __exit__(self, *exc):
        with open(os.path.join(self.stop_dir, "stop"), "w"):
            pass
        try:
            self.output = self.proc.communicate(timeout=20)[0]
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.output = self.proc.communicate()[0]
        os.unlink(os.path.join(self.stop_dir, "stop"))
        os.rmdir(self.stop_dir)
        return False


def spawn_as(pw, argv):
    """A background process of ``pw`` (no supplementary groups); the caller kills and waits for it."""
    return subprocess.Popen([os.fspath(a) for a in argv], cwd="/", env={"PATH": "/usr/bin:/bin"},  # noqa: S603
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            user=pw.pw_uid, group=pw.pw_gid, extra_groups=[])


def spawn(argv):
    """A background process of root's with a minimal environment; the caller kills and waits for it."""
    return subprocess.Popen([os.fspath(a) for a in argv], cwd="/", env={"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"},
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def run_cmd(argv, timeout):
    """A command of root's with a minimal environment, to completion (text output)."""
    return subprocess.run([os.fspath(a) for a in argv], cwd="/", env={"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"},
                          stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          universal_newlines=True, timeout=timeout, check=False)


def unjam(paths):
    """Release whatever is blocked opening or reading one of these FIFOs."""
    for path in paths:
        for flags in (os.O_WRONLY | os.O_NONBLOCK, os.O_RDONLY | os.O_NONBLOCK):
            try:
                fd = os.open(path, flags | os.O_NOFOLLOW)
            except OSError as exc:
                if exc.errno not in (errno.ENXIO, errno.ENOENT, errno.ELOOP, errno.EACCES):
                    raise
                continue
            try:
                if flags & os.O_WRONLY:
                    try:
                        os.write(fd, b"GOFLEET_UNJAM=1\n")
                    except OSError:
                        pass
            finally:
                os.close(fd)


def _children_map():
    children = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % entry) as handle:
                data = handle.read()
        except OSError:
            continue
        ppid = int(data.rpartition(")")[2].split()[1])
        children.setdefault(ppid, []).append(int(entry))
    return children


def kill_descendants(match):
    """SIGKILL descendants of this process whose command line contains ``match``; their pids."""
    children = _children_map()
    stack = list(children.get(os.getpid(), []))
    killed = []
    while stack:
        pid = stack.pop()
        stack.extend(children.get(pid, []))
        try:
            with open("/proc/%d/cmdline" % pid, "rb") as handle:
                cmdline = handle.read().replace(b"\0", b" ").decode("utf-8", "replace")
        except OSError:
            continue
        if match in cmdline:
            try:
                os.kill(pid, signal.SIGKILL)
                killed.append(pid)
            except OSError:
                pass
    return killed
