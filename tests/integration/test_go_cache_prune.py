"""gofleet.cache.go_cache_prune against caches made by the real go command.

Every cache here is made by real Go (``go mod download`` / ``go build`` /
``go run`` as the non-root account gofleet-ci, from a ``file://`` GOPROXY)
once per module into ``golden/``; each test prunes its own ``cp -a`` clone,
aged with ``os.utime`` (atime and mtime) so that policies select a known set.
Expectations come from the disk (os.walk / lstat / reading -a files), never
from the collection's engine. After every real run the consumer project must
still build offline (``GOPROXY=off go build``) and pass ``go mod verify`` as
gofleet-ci, against the pruned caches.

Snapshots read file contents with O_NOATIME and record paths, types, modes,
owners, sizes, mtimes and atimes, so "check mode changes nothing" includes
the access times Go's module cache relies on (relatime: module last use =
atime of .ziphash/.mod/.info).

Policy tasks use ``if_busy: proceed`` (except the busy tests): a ``path``
target counts Go processes of every account as busy, and this machine may run
other Go builds meanwhile.
"""

from __future__ import annotations

import bisect
import hashlib
import json
import os
import random
import re
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from types import SimpleNamespace
from typing import NamedTuple

import pytest

from tests.support import goproxy, gorun

CI = "gofleet-ci"
DAY = 86400
NS = 10 ** 9
REPO_ROOT = Path(__file__).resolve().parents[2]
PYPATH = REPO_ROOT / ".cache" / "pypath"
MODULE = "gofleet.cache.go_cache_prune"
IF_BUSY = "proceed"
TOOLCHAIN_SIZE = 24 * 1024 * 1024
TOOLCHAIN_KEY = (goproxy.TOOLCHAIN_MODULE, goproxy.TOOLCHAIN_VERSION)
LOTS = "example.com/lots"
LOTS_VERSIONS = ["v0.0.0-20230101000000-abcdefabcdef", "v0.1.0", "v0.2.0", "v0.10.0", "v1.0.0-beta.1",
                 "v1.0.0", "v1.2.0-rc.1"]  # Go's semver order, oldest first
BULK_MODULES, BULK_VERSIONS, BULK_FILES = 50, 6, 12
ACTION_RE = re.compile(r"^[0-9a-f]{64}-a$")
OUTPUT_RE = re.compile(r"^[0-9a-f]{64}-d$")
GO_MARKER = "This directory holds cached build artifacts from the Go build system."
# What the consumer project (goproxy.DEFAULT_REQUIRES) needs: go.sum h1 lines, and a /go.mod-only line.
PROJECT_FULL = set(goproxy.DEFAULT_REQUIRES.items())
PROJECT_GRAPH = {("example.com/greet", "v1.1.0")}


# =========================================================================== disk model


def esc(module, version):
    """Escaped (module, version) key, as the module cache lays it out."""
    return goproxy.escape_path(module), goproxy.escape_version(version)


def unesc(key):
    return "%s@%s" % (goproxy.unescape(key[0]), goproxy.unescape(key[1]))


class Node(NamedTuple):
    kind: str  # f(ile) d(ir) l(ink) o(ther)
    mode: int
    uid: int
    gid: int
    size: int
    mtime: int
    atime: int
    data: object  # file: blake2b digest; link: target


def _open_noatime(path, flags):
    flags |= os.O_NOFOLLOW | os.O_CLOEXEC
    try:
        return os.open(path, flags | os.O_NOATIME)
    except PermissionError:
        return os.open(path, flags)


def _digest(path):
    fd = _open_noatime(path, os.O_RDONLY)
    h = hashlib.blake2b(digest_size=16)
    try:
        while True:
            chunk = os.read(fd, 1 << 20)
            if not chunk:
                return h.hexdigest()
            h.update(chunk)
    finally:
        os.close(fd)


def read_noatime(path, limit=1 << 16):
    fd = _open_noatime(str(path), os.O_RDONLY)
    try:
        return os.read(fd, limit)
    finally:
        os.close(fd)


class Snap(dict):
    """{path: Node}; ``under(p)`` = p and every path below it."""

    _keys = None

    def under(self, prefix):
        if self._keys is None:
            self._keys = sorted(self)
        out = [prefix] if prefix in self else []
        i = bisect.bisect_left(self._keys, prefix + "/")
        while i < len(self._keys) and self._keys[i].startswith(prefix + "/"):
            out.append(self._keys[i])
            i += 1
        return out


def snapshot(*roots):
    """Snap of roots and everything below them; nothing read changes an atime."""
    snap = Snap()

    def visit(path):
        st = os.lstat(path)
        mode = st.st_mode
        kind = "f" if stat.S_ISREG(mode) else "d" if stat.S_ISDIR(mode) else "l" if stat.S_ISLNK(mode) else "o"
        data = _digest(path) if kind == "f" else os.readlink(path) if kind == "l" else None
        snap[path] = Node(kind, stat.S_IMODE(mode), st.st_uid, st.st_gid, st.st_size if kind != "d" else 0,
                          st.st_mtime_ns, st.st_atime_ns, data)
        if kind == "d":
            fd = _open_noatime(path, os.O_RDONLY | os.O_DIRECTORY)
            try:
                names = os.listdir(fd)
            finally:
                os.close(fd)
            for name in sorted(names):
                visit(os.path.join(path, name))

    for root in roots:
        if os.path.lexists(str(root)):
            visit(str(root))
    return snap


def diff(before, after, dir_atime=False, limit=15):
    """Human-readable differences between two snapshots (directory atimes only when asked)."""
    out = []
    for path in sorted(set(before) | set(after)):
        b, a = before.get(path), after.get(path)
        if b is None:
            out.append("new: %s %s" % (path, a))
        elif a is None:
            out.append("gone: %s" % path)
        elif b != a:
            fields = [f for f in Node._fields if getattr(b, f) != getattr(a, f)]
            if fields == ["atime"] and b.kind == "d" and not dir_atime:
                continue
            if b.kind == "d" and not dir_atime:
                fields = [f for f in fields if f != "atime"]
            changes = ["%s %r -> %r" % (f, getattr(b, f), getattr(a, f)) for f in fields]
            out.append("changed %s: %s" % (path, ", ".join(changes)))
    return out[:limit] + (["... %d more" % (len(out) - limit)] if len(out) > limit else [])


def same(a, b):
    """Two snapshot nodes are the same, a directory's atime aside (listing one may refresh it)."""
    if a is None or b is None:
        return a is b
    if a.kind == "d" and b.kind == "d":
        return a._replace(atime=0) == b._replace(atime=0)
    return a == b


def dir_atime_changes(before, after):
    return sorted(p for p, b in before.items() if b.kind == "d" and p in after and after[p].atime != b.atime)


def file_bytes(snap, under=None, exclude=()):
    return sum(n.size for p, n in snap.items() if n.kind == "f" and (under is None or p.startswith(under + "/"))
               and not any(p.startswith(x + "/") or p == x for x in exclude))


# --------------------------------------------------------------------------- module cache


def _split_download(name):
    """(escaped version, suffix) of a file in an @v directory; (None, None) for list."""
    if name.endswith(".tmp"):
        hits = [(name.find(s), s) for s in (".ziphash", ".zip", ".mod", ".info", ".partial") if name.find(s) > 0]
        return (name[:min(hits)[0]], ".tmp") if hits else (None, ".tmp")
    for suffix in (".ziphash", ".partial", ".info", ".lock", ".mod", ".zip"):
        if name.endswith(suffix) and len(name) > len(suffix):
            return name[:-len(suffix)], suffix
    return None, None


class Version(object):
    def __init__(self):
        self.tree = None
        self.dl = {}  # file name in @v -> suffix
        self.at_v = None

    def dl_paths(self, suffixes=None):
        return [os.path.join(self.at_v, n) for n, s in self.dl.items() if suffixes is None or s in suffixes]

    def unit_paths(self, snap=None):
        """Every path of the unit except its .lock (Go's lock file stays): from ``snap``, else the disk."""
        paths = [os.path.join(self.at_v, n) for n, s in self.dl.items() if s != ".lock"]
        if self.tree:
            paths += snap.under(self.tree) if snap is not None else tree_paths(self.tree)
        return paths

    @property
    def present(self):
        """Go's rule: tree exists, .ziphash exists, no .partial."""
        suffixes = set(self.dl.values())
        return bool(self.tree) and ".ziphash" in suffixes and ".partial" not in suffixes


def versions_on_disk(root):
    """{(module_esc, version_esc): Version} from the extracted trees and cache/download/**/@v."""
    root = str(root)
    out = {}
    for dirpath, dirnames, _files in os.walk(root):
        if dirpath == root and "cache" in dirnames:
            dirnames.remove("cache")
        for d in list(dirnames):
            if "@" in d:
                dirnames.remove(d)
                p = os.path.join(dirpath, d)
                if os.path.islink(p):
                    continue
                mod, ver = os.path.relpath(p, root).rsplit("@", 1)
                out.setdefault((mod, ver), Version()).tree = p
    dl = os.path.join(root, "cache", "download")
    for dirpath, _dirnames, filenames in os.walk(dl):
        if os.path.basename(dirpath) != "@v":
            continue
        mod = os.path.relpath(os.path.dirname(dirpath), dl)
        for n in filenames:
            ver, suffix = _split_download(n)
            if ver:
                v = out.setdefault((mod, ver), Version())
                v.dl[n] = suffix
                v.at_v = dirpath
    return out


def unit_bytes(snap, version):
    """Bytes of a version's regular files (tree + download files except .lock), from a snapshot."""
    return sum(snap[p].size for p in version.unit_paths(snap) if snap.get(p) and snap[p].kind == "f")


# module.CanonicalVersion(v) == v, which Go's rewriteVersionList requires of a .mod file's
# (escaped) name: an escaped version such as v1.1.0-!r!c.1 is never listed by Go.
CANONICAL = re.compile(r"^v(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)"
                       r"(-(0|[1-9]\d*|\d*[A-Za-z-][0-9A-Za-z-]*)(\.(0|[1-9]\d*|\d*[A-Za-z-][0-9A-Za-z-]*))*)?"
                       r"(\+incompatible)?$")


def list_problems(root):
    """@v/list files that differ from what Go writes: the versions whose .mod exists (canonical names)."""
    problems = []
    dl = os.path.join(str(root), "cache", "download")
    for dirpath, _dirnames, filenames in os.walk(dl):
        if os.path.basename(dirpath) != "@v":
            continue
        mods = {n[:-4] for n in filenames if n.endswith(".mod") and CANONICAL.match(n[:-4])}
        listed = set()
        if "list" in filenames:
            lines = read_noatime(os.path.join(dirpath, "list")).decode().split("\n")
            listed = {x.strip() for x in lines if x.strip()}
            if len([x for x in lines if x.strip()]) != len(listed):
                problems.append("%s: duplicate lines %r" % (dirpath, lines))
        elif mods:
            problems.append("%s: no list, but .mod files %s" % (dirpath, sorted(mods)))
        if listed != mods:
            problems.append("%s: list %s != versions with .mod %s" % (dirpath, sorted(listed), sorted(mods)))
    return problems


# --------------------------------------------------------------------------- build cache


def build_on_disk(root):
    """(actions {aid: (path, oid or None)}, outputs {oid: path}) of a build cache."""
    actions, outputs = {}, {}
    for i in range(256):
        hx = os.path.join(str(root), "%02x" % i)
        if not os.path.isdir(hx) or os.path.islink(hx):
            continue
        for name in os.listdir(hx):
            p = os.path.join(hx, name)
            if os.path.islink(p):
                continue
            if ACTION_RE.match(name) and os.path.isfile(p):
                data = read_noatime(p, 512)
                ok = (len(data) == 175 and data[:3] == b"v1 " and data[3:67] == name[:64].encode()
                      and data[174:175] == b"\n")
                actions[name[:64]] = (p, data[68:132].decode() if ok else None)
            elif OUTPUT_RE.match(name):
                outputs[name[:64]] = p
    return actions, outputs


def paths_under(root):
    out = set()
    for dirpath, dirnames, filenames in os.walk(str(root)):
        out.update(os.path.join(dirpath, n) for n in dirnames + filenames)
    return out


def tree_paths(path):
    paths = [path]
    if os.path.isdir(path) and not os.path.islink(path):
        for dirpath, dirnames, filenames in os.walk(path):
            paths += [os.path.join(dirpath, n) for n in dirnames + filenames]
    return paths


# --------------------------------------------------------------------------- times


def set_times(path, t):
    ns = int(t * NS)
    os.utime(str(path), ns=(ns, ns), follow_symlinks=False)


def age_tree(root, t):
    """Set atime+mtime of root and everything below (bottom-up, so listing does not refresh them)."""
    for dirpath, dirnames, filenames in os.walk(str(root), topdown=False):
        for n in filenames + dirnames:
            p = os.path.join(dirpath, n)
            set_times(p, t)
        set_times(dirpath, t)


def age_version(version, t, atimes=None):
    """Age a module version: tree and download files; ``atimes`` {suffix: t} overrides single atimes."""
    for p in version.unit_paths() + version.dl_paths({".lock"}):
        set_times(p, t)
    if version.tree:
        age_tree(version.tree, t)
    for name, suffix in version.dl.items():
        if atimes and suffix in atimes:
            p = os.path.join(version.at_v, name)
            os.utime(p, ns=(int(atimes[suffix] * NS), int(t * NS)), follow_symlinks=False)


def age_entry(actions, outputs, aid, t_a, t_d=None):
    path, oid = actions[aid]
    set_times(path, t_a)
    if oid in outputs:
        out = outputs[oid]
        if os.path.isdir(out):
            age_tree(out, t_a if t_d is None else t_d)
        else:
            set_times(out, t_a if t_d is None else t_d)


# =========================================================================== Go and the module


class GoRunner(object):
    """Runs the real go command as gofleet-ci against given caches (offline unless proxy=True)."""

    def __init__(self, go_bin, home, proxy, project):
        self.go_bin, self.home, self.proxy, self.project = go_bin, home, proxy, project

    def env(self, gocache, gomod, proxy=False):
        return gorun.go_env(self.home, gocache, gomod, go=self.go_bin, GOFLAGS="-mod=mod", GOSUMDB="off",
                            GOTOOLCHAIN="local", GOPROXY=goproxy.proxy_url(self.proxy) if proxy else "off")

    def run(self, args, gocache, gomod, proxy=False, check=True, cwd=None):
        return gorun.run_go(args, self.env(gocache, gomod, proxy), user=CI, cwd=cwd or self.project,
                            go=self.go_bin, check=check, timeout=300)

    def verify_project(self, gocache, gomod, run=False):
        """As gofleet-ci: GOPROXY=off go build (and go run) of the project, then go mod verify."""
        self.run(["build", "-o", os.devnull, "."], gocache, gomod)
        if run:
            r = self.run(["run", "."], gocache, gomod)
            assert "example.com/greet@v1.2.0" in r.stdout + r.stderr, r.stdout + r.stderr
        v = self.run(["mod", "verify"], gocache, gomod)
        assert "all modules verified" in v.stdout + v.stderr, v.stdout + v.stderr


def prune_task(name, args, check=False, become=False, environment=None):
    t = {"name": name, MODULE: dict(args)}
    if check:
        t["check_mode"] = True
    if become:
        t["become_user"] = CI
    if environment:
        t["environment"] = environment
    return t


def ok(result):
    assert not result.get("failed"), "module failed: %s" % json.dumps(result, indent=1)[:3000]
    return result


REPORTED = ("removed_entries", "removed_bytes", "sample")


def reported(result):
    return {k: result[k] for k in REPORTED}


# =========================================================================== the golden caches


def _lots_modules():
    mods = []
    for v in LOTS_VERSIONS:
        t = "2023-01-01T00:00:00Z" if v.startswith("v0.0.0-") else None
        mods.append(goproxy.Module(LOTS, v, {"lots.go": 'package lots\n\nfunc Name() string { return "%s" }\n' % v},
                                   time=t))
    return mods


def _bulk_modules():
    mods = []
    for i in range(BULK_MODULES):
        path = "example.com/bulk/m%02d" % i
        for j in range(BULK_VERSIONS):
            v = "v1.%d.0" % j
            files = {"m.go": 'package m%02d\n\nfunc Name() string { return "%s@%s" }\n' % (i, path, v)}
            for k in range(BULK_FILES):
                files["data/f%02d.txt" % k] = "%s@%s file %d\n" % (path, v, k) * 8
            mods.append(goproxy.Module(path, v, files, time="2024-01-02T03:04:05Z"))
    return mods


def _mkdir(path, owner=None, mode=0o755):
    """mkdir -p; ``owner``: a passwd entry or a uid (whose group is the account's)."""
    os.makedirs(str(path), exist_ok=True)
    os.chmod(str(path), mode)
    if owner is not None:
        pw = gorun.account(owner) if isinstance(owner, int) else owner
        os.chown(str(path), pw.pw_uid, pw.pw_gid)
    return str(path)


@pytest.fixture(scope="module")
def golden(go_bin, ci_user, playbook):  # playbook: skips the module when the collection is not there
    """Real caches of gofleet-ci made once by Go: golden/{gocache,gomod} plus the proxy and project."""
    t0 = time.monotonic()
    work = Path(tempfile.mkdtemp(prefix="gofleet-prune-it-"))
    os.chmod(str(work), 0o755)
    g = SimpleNamespace()
    g.work = str(work)
    g.proxy = str(work / "proxy")
    g.project = str(work / "project")
    g.home = _mkdir(work / "home", ci_user)
    _mkdir(work / "golden", ci_user)  # Go creates the caches in it
    g.gocache = str(work / "golden" / "gocache")
    g.gomod = str(work / "golden" / "gomod")
    g.cases = _mkdir(work / "cases")
    g.uid, g.gid = ci_user.pw_uid, ci_user.pw_gid
    goproxy.write_proxy(g.proxy, goproxy.default_modules(TOOLCHAIN_SIZE) + _lots_modules())
    goproxy.write_project(g.project)
    g.go = GoRunner(go_bin, g.home, g.proxy, g.project)
    env = dict(g.go.env(g.gocache, g.gomod))
    g.timings = gorun.populate_caches(CI, env, g.proxy, g.project, downloads=goproxy.DEFAULT_DOWNLOADS, go=go_bin)
    g.go.run(["mod", "download"] + ["%s@%s" % (LOTS, v) for v in LOTS_VERSIONS], g.gocache, g.gomod, proxy=True,
             cwd=g.home)
    g.timings["total"] = round(time.monotonic() - t0, 2)
    sys.stderr.write("\n[golden] %s\n" % json.dumps(g.timings))
    yield g
    shutil.rmtree(g.work, ignore_errors=True)


def clone(g, name, base=None):
    """A fresh cp -a copy of the golden caches: (case dir, gocache, gomod)."""
    d = os.path.join(base or g.cases, name)
    if os.path.exists(d):
        shutil.rmtree(d)
    _mkdir(d)
    subprocess.run(["cp", "-a", g.gocache, g.gomod, d + "/"], check=True)
    return d, os.path.join(d, "gocache"), os.path.join(d, "gomod")


def test_golden_caches_are_what_go_made(golden):
    """Sanity of the material every other test relies on (layout, read-only trees, lists, no junk)."""
    vs = versions_on_disk(golden.gomod)
    greet_11 = vs[esc("example.com/greet", "v1.1.0")]
    assert greet_11.tree is None and set(greet_11.dl.values()) == {".mod"}, greet_11.dl  # graph-only fetch
    assert all(v.present for k, v in vs.items() if k != esc("example.com/greet", "v1.1.0")), sorted(vs)
    assert len(vs) == 13 + len(LOTS_VERSIONS), sorted(vs)  # 12 demo versions Go stored + greet v1.1.0 .mod
    tree = vs[esc(goproxy.MIXED_CASE_MODULE, "v0.1.0")].tree
    assert tree.endswith("example.com/!mixed!case/lib@v0.1.0")
    for p in tree_paths(tree):
        st = os.lstat(p)
        assert (st.st_uid, stat.S_IMODE(st.st_mode)) == (golden.uid, 0o555 if stat.S_ISDIR(st.st_mode) else 0o444), p
    assert list_problems(golden.gomod) == []
    actions, outputs = build_on_disk(golden.gocache)
    assert len(actions) > 100
    assert all(oid in outputs for _p, oid in actions.values()), "dead entries in a fresh cache"
    assert set(outputs) <= {oid for _p, oid in actions.values()}, "orphan outputs in a fresh cache"
    assert any(os.path.isdir(p) for p in outputs.values()), "no go run -d directory"
    sums = Path(golden.project, "go.sum").read_text()
    assert "example.com/greet v1.1.0/go.mod h1:" in sums and "example.com/greet v1.1.0 h1:" not in sums


# =========================================================================== policy matrix (item 1)


class Case(object):
    """One clone, the tasks run on it and what they must remove."""

    def __init__(self, g, name, base=None):
        self.name = name
        self.dir, self.gocache, self.gomod = clone(g, name, base)
        self.tasks = []  # (label, args)
        self.mod_removed = set()  # version keys wholly removed
        self.mod_graph_only = set()  # version keys whose .mod/.info stay
        self.build_removed = set()  # action ids removed
        self.orphans_removed = set()  # output ids removed without an action
        self.kept = {}  # label -> expected subset of kept
        self.extra_gone = []  # files beside kept units that must go (leftover temporary files)
        self.verify = "project"  # project | project+run | empty_module
        self.max_size = None

    def refresh(self):
        self.versions = versions_on_disk(self.gomod)
        self.actions, self.outputs = build_on_disk(self.gocache)

    def key(self, module, version):
        k = esc(module, version)
        assert k in self.versions, "%s not in %s" % (k, sorted(self.versions))
        return k


def _baseline(c, now):
    age_tree(c.gocache, now - 2 * DAY)
    age_tree(c.gomod, now - 2 * DAY)
    c.refresh()


def _unshared(c):
    named = {}
    for aid, (_p, oid) in c.actions.items():
        named.setdefault(oid, []).append(aid)
    return sorted(aid for aid, (_p, oid) in c.actions.items() if len(named[oid]) == 1
                  and not os.path.isdir(c.outputs[oid]))


def setup_incomplete(c, g, now, rng):
    # greet v1.3.0 downloaded by Go, then its extraction marked interrupted (as Go leaves it when killed)
    g.go.run(["mod", "download", "example.com/greet@v1.3.0"], c.gocache, c.gomod, proxy=True, cwd=g.home)
    c.refresh()
    v13 = c.versions[c.key("example.com/greet", "v1.3.0")]
    at_v = v13.at_v
    Path(at_v, "v1.3.0.partial").write_bytes(b"")
    os.chmod(v13.tree, 0o755)
    os.unlink(os.path.join(v13.tree, "README.md"))
    os.chmod(v13.tree, 0o555)
    # depender v1.1.0: zip written, killed before .ziphash and extraction
    d11 = c.versions[c.key("example.com/depender", "v1.1.0")]
    gorun._make_writable(d11.tree)  # pylint: disable=protected-access
    shutil.rmtree(d11.tree)
    os.unlink(os.path.join(d11.at_v, "v1.1.0.ziphash"))
    # a temporary file of a download that never finished (no other file of that version)
    Path(at_v, "v1.9.0.zip123456.tmp").write_bytes(b"PK partial zip" * 100)
    for p in Path(at_v).iterdir():
        os.lchown(str(p), g.uid, g.gid)
    _baseline(c, now)
    c.mod_removed = {esc("example.com/greet", "v1.3.0"), esc("example.com/depender", "v1.1.0"),
                     esc("example.com/greet", "v1.9.0")}
    # build cache: an action whose output is gone, a corrupt (short) action, an output nobody names
    aids = _unshared(c)
    dead, corrupt = rng.sample(aids, 2)
    os.unlink(c.outputs[c.actions[dead][1]])
    cpath = c.actions[corrupt][0]
    data = read_noatime(cpath)
    with open(cpath, "wb") as f:
        f.write(data[:100])
    stray = "%064x" % rng.getrandbits(256)
    spath = os.path.join(c.gocache, stray[:2], stray + "-d")
    Path(spath).write_bytes(b"stray output nobody names\n" * 50)
    os.lchown(spath, g.uid, g.gid)
    for p in (cpath, spath):
        set_times(p, now - 2 * DAY)
    corrupt_out = c.actions[corrupt][1]
    c.refresh()
    c.build_removed = {dead, corrupt}
    c.orphans_removed = {stray, corrupt_out}
    c.tasks = [("build", {"path": c.gocache, "kind": "build"}), ("module", {"path": c.gomod, "kind": "module"})]
    c.verify = "project+run"


def setup_leftover_tmp(c, g, now, rng):
    # Go writes .zip/.mod/.info through "<name><random>.tmp" then renames; a killed go command leaves
    # the temporary file beside a version that a later download completed.
    _baseline(c, now)
    g10 = c.versions[c.key("example.com/greet", "v1.0.0")]
    for name in ("v1.0.0.zip381734.tmp", "v1.0.0.mod99121.tmp"):
        p = os.path.join(g10.at_v, name)
        Path(p).write_bytes(b"left by a killed go command\n" * 40)
        os.lchown(p, g.uid, g.gid)
        set_times(p, now - 2 * DAY)
        c.extra_gone.append(p)
    c.refresh()
    c.tasks = [("module", {"path": c.gomod, "kind": "module"})]


def setup_max_age(c, g, now, rng):
    _baseline(c, now)
    aids = _unshared(c)
    rng.shuffle(aids)
    old, mid, (p_old_a, q_retained) = aids[:12], aids[12:17], aids[17:19]
    run_entry = [aid for aid, (_p, oid) in c.actions.items() if os.path.isdir(c.outputs[oid])]
    for aid in old + run_entry:
        age_entry(c.actions, c.outputs, aid, now - 40 * DAY)
    for aid in mid:
        age_entry(c.actions, c.outputs, aid, now - 20 * DAY)
    # Go ages every file on its own (its trim): an entry is as old as its -a.  One whose -d was used ten
    # minutes ago but whose -a is 40 days old goes (its -d too: no kept entry names it); one whose -a is 2 days
    # old stays with its 40-day-old -d.
    age_entry(c.actions, c.outputs, p_old_a, now - 40 * DAY, now - 600)
    age_entry(c.actions, c.outputs, q_retained, now - 2 * DAY, now - 40 * DAY)
    c.build_removed = set(old + run_entry + [p_old_a])
    k = c.key
    for m, v in [("example.com/greet", "v1.0.0"), (goproxy.MIXED_CASE_MODULE, "v0.1.0"), TOOLCHAIN_KEY]:
        age_version(c.versions[k(m, v)], now - 40 * DAY)
        c.mod_removed.add(k(m, v))
    # used 10 minutes ago (atime of .info), downloaded 40 days ago: recent
    age_version(c.versions[k("example.com/depender", "v1.1.0")], now - 40 * DAY, {".info": now - 600})
    # .ziphash read 5 days ago: used within max_age
    age_version(c.versions[k("example.com/nested/outer/inner", "v1.0.0")], now - 40 * DAY, {".ziphash": now - 5 * DAY})
    age_version(c.versions[k(goproxy.MIXED_CASE_MODULE, "v1.1.0-RC.1")], now - 20 * DAY)
    c.tasks = [("build", {"path": c.gocache, "kind": "build", "max_age": "30d"}),
               ("module", {"path": c.gomod, "kind": "module", "max_age": "30d"})]
    c.kept = {"module": {"recent": 1}}
    c.verify = "project+run"


def setup_keep_versions(c, g, now, rng):
    _baseline(c, now)
    k = c.key
    c.mod_removed = {k("example.com/greet", "v1.0.0"), k(goproxy.MIXED_CASE_MODULE, "v0.1.0")} | {
        k(LOTS, v) for v in LOTS_VERSIONS[:-2]}
    c.tasks = [("module", {"path": c.gomod, "kind": "module", "keep_versions": 2})]


def setup_max_size(c, g, now, rng):
    _baseline(c, now)
    # distinct last uses in a random order: the -a times; every -d older than any -a
    order = sorted(c.actions)
    rng.shuffle(order)
    for i, aid in enumerate(order):  # order[0] is the least recently used
        age_entry(c.actions, c.outputs, aid, now - 3 * DAY + i * 60, now - 100 * DAY)
    before = snapshot(c.gocache)
    total = file_bytes(before, c.gocache, exclude=[os.path.join(c.gocache, "fuzz")])
    remaining_refs = {}
    for aid, (_p, oid) in c.actions.items():
        remaining_refs[oid] = remaining_refs.get(oid, 0) + 1

    def size(p):
        return sum(before[x].size for x in tree_paths(p) if before[x].kind == "f")

    freed = []
    for aid in order:
        path, oid = c.actions[aid]
        remaining_refs[oid] -= 1
        freed.append(size(path) + (size(c.outputs[oid]) if remaining_refs[oid] == 0 else 0))
    n = int(len(order) * 0.4)
    cap = total - sum(freed[:n - 1]) - freed[n - 1] // 2  # needs exactly n entries removed
    assert freed[n - 1] >= 2
    c.build_removed = set(order[:n])
    c.max_size = cap
    c.tasks = [("build", {"path": c.gocache, "kind": "build", "max_size": "%dB" % cap})]
    c.verify = "project+run"


def setup_keep(c, g, now, rng):
    age_tree(c.gomod, now - 40 * DAY)
    age_tree(c.gocache, now - 2 * DAY)
    c.refresh()
    k = c.key
    c.mod_removed = {k("example.com/depender", "v1.1.0"), TOOLCHAIN_KEY} | {
        k(LOTS, v) for v in LOTS_VERSIONS if v != "v0.1.0"}
    keep = ["example.com/greet", "example.com/greet/v2", "example.com/MixedCase/*", "example.com/depender@v1.0.0",
            "example.com/nested/*", LOTS + "@v0.1.0"]
    c.tasks = [("module", {"path": c.gomod, "kind": "module", "max_age": "30d", "keep": keep})]
    c.kept = {"module": {"keep": len(c.versions) - len(c.mod_removed)}}


def setup_keep_referenced(c, g, now, rng):
    age_tree(c.gomod, now - 40 * DAY)
    age_tree(c.gocache, now - 2 * DAY)
    c.refresh()
    k = c.key
    # a second checkout whose go.sum needs only depender v1.1.0's go.mod (module graph, no source)
    other = _mkdir(os.path.join(c.dir, "checkouts", "other"))
    Path(other, "go.sum").write_text("example.com/depender v1.1.0/go.mod h1:oDIDbgWQm6wJyR8aPdJH0qu3NtkXQWIzVc63fvCQ+D8=\n")
    c.referenced = {k(*mv) for mv in PROJECT_FULL} | {k(*mv) for mv in PROJECT_GRAPH}
    c.mod_graph_only = {k("example.com/depender", "v1.1.0")}
    c.mod_removed = set(c.versions) - c.referenced - c.mod_graph_only
    c.tasks = [("module", {"path": c.gomod, "kind": "module", "max_age": "30d",
                           "keep_referenced": [g.project, os.path.join(c.dir, "checkouts")]})]
    c.kept = {"module": {"referenced": len(c.referenced)}}


def _plant_fuzz(gocache, uid, gid, now):
    fdir = Path(gocache, "fuzz", "example.com", "consumer", "FuzzParse")
    fdir.mkdir(parents=True)
    files = []
    for i, payload in enumerate([b"hello", b"\x00\x01\x02 world", b"x" * 300]):
        body = b"go test fuzz v1\n[]byte(" + repr(payload).encode() + b")\n"
        f = fdir / hashlib.sha256(body).hexdigest()[:16]
        f.write_bytes(body)
        files.append(str(f))
    for p in tree_paths(os.path.join(gocache, "fuzz")):
        os.lchown(p, uid, gid)
    return files


def setup_absent_build_fuzz(c, g, now, rng):
    # fresh times: state=absent ignores keep_recent
    c.fuzz_files = _plant_fuzz(c.gocache, g.uid, g.gid, now)
    c.refresh()
    c.build_removed = set(c.actions)
    c.tasks = [("build", {"path": c.gocache, "kind": "build", "state": "absent"}),
               ("fuzz", {"path": os.path.join(c.gocache, "fuzz"), "kind": "fuzz", "state": "absent"})]
    c.verify = "project+run"


def setup_absent_module(c, g, now, rng):
    c.refresh()
    c.mod_removed = set(c.versions)
    c.tasks = [("module", {"path": c.gomod, "kind": "module", "state": "absent"})]
    c.verify = "empty_module"


SETUPS = {
    "remove_incomplete": setup_incomplete,
    "leftover_tmp": setup_leftover_tmp,
    "max_age": setup_max_age,
    "keep_versions": setup_keep_versions,
    "max_size": setup_max_size,
    "keep": setup_keep,
    "keep_referenced": setup_keep_referenced,
    "absent_build_fuzz": setup_absent_build_fuzz,
    "absent_module": setup_absent_module,
}


@pytest.fixture(scope="module")
def matrix(golden, playbook):
    """Every policy on its own clone: check mode (one play), then real run + second run (one play)."""
    now = time.time()
    rng = random.Random(20241121)
    cases = {}
    for name, setup in SETUPS.items():
        c = Case(golden, name)
        c.refresh()
        setup(c, golden, now, rng)
        c.refresh()
        cases[name] = c
    for c in cases.values():
        c.versions_before = c.versions
        c.actions_before, c.outputs_before = c.actions, c.outputs
        c.before = snapshot(c.gocache, c.gomod)
    tasks = []
    for c in cases.values():
        for label, args in c.tasks:
            tasks.append(prune_task("%s/%s/check" % (c.name, label), dict(args, if_busy=IF_BUSY), check=True))
    check = playbook(tasks, "prune-check")
    for c in cases.values():
        c.after_check = snapshot(c.gocache, c.gomod)
    tasks = []
    for c in cases.values():
        for label, args in c.tasks:
            tasks.append(prune_task("%s/%s/real" % (c.name, label), dict(args, if_busy=IF_BUSY)))
            tasks.append(prune_task("%s/%s/again" % (c.name, label), dict(args, if_busy=IF_BUSY)))
    real = playbook(tasks, "prune-real")
    for c in cases.values():
        c.after = snapshot(c.gocache, c.gomod)
        c.results = {}
        for label, _args in c.tasks:
            c.results[label] = {m: (check if m == "check" else real)["%s/%s/%s" % (c.name, label, m)]
                                for m in ("check", "real", "again")}
    return cases


CASES = sorted(SETUPS)


@pytest.mark.parametrize("case", CASES)
def test_check_mode_changes_nothing(matrix, case):
    c = matrix[case]
    for label, r in c.results.items():
        ok(r["check"])
    changes = diff(c.before, c.after_check)
    assert not changes, "check mode changed the disk:\n" + "\n".join(changes)


@pytest.mark.parametrize("case", CASES)
def test_check_mode_reports_what_the_real_run_removes(matrix, case):
    c = matrix[case]
    for label, r in c.results.items():
        check, real = ok(r["check"]), ok(r["real"])
        assert check["removed_entries"] > 0, (label, check)
        assert check["changed"] is True and real["changed"] is True, label
        assert reported(check) == reported(real), label
        assert real["errors"] == [] and real["errors_total"] == 0, (label, real["errors"])
        assert len(real["sample"]) == min(20, real["removed_entries"])
        assert check["before_bytes"] == real["before_bytes"]
        assert real["after_bytes"] == real["before_bytes"] - real["removed_bytes"]
        for key, count in c.kept.get(label, {}).items():
            assert real["kept"].get(key) == count, (label, key, real["kept"])


@pytest.mark.parametrize("case", CASES)
def test_second_run_changes_nothing(matrix, case):
    c = matrix[case]
    for label, r in c.results.items():
        again = ok(r["again"])
        assert again["changed"] is False, (label, again["sample"])
        assert (again["removed_entries"], again["removed_bytes"], again["sample"]) == (0, 0, []), label
        assert again["errors_total"] == 0, again["errors"]


def _module_expectations(c, result, before_bytes_check=True):
    """Disk after the real run of a module cache against c.mod_removed / c.mod_graph_only."""
    vs_before = c.versions_before
    after = c.after
    problems = []
    gone_bytes = 0
    names = set()
    for key, v in vs_before.items():
        unit = v.unit_paths(c.before)
        if key in c.mod_removed:
            left = [p for p in unit if p in after]
            if left:
                problems.append("%s should be gone, left: %s" % (unesc(key), left[:3]))
            gone_bytes += unit_bytes(c.before, v)
            names.add("module " + unesc(key))
        elif key in c.mod_graph_only:
            keep = set(v.dl_paths({".mod", ".info"}))
            left = [p for p in unit if p in after and p not in keep]
            changed = [p for p in keep if not same(after.get(p), c.before[p])]
            if left or changed:
                problems.append("%s graph-only: left %s, changed %s" % (unesc(key), left[:3], changed))
            gone_bytes += unit_bytes(c.before, v) - sum(c.before[p].size for p in keep)
            names.add("module " + unesc(key))
        else:
            changed = [p for p in unit + v.dl_paths({".lock"}) if not same(after.get(p), c.before[p])
                       and p not in c.extra_gone]
            if changed:
                problems.append("%s should be untouched: %s" % (unesc(key), diff(
                    {p: c.before[p] for p in changed}, {p: after[p] for p in changed if p in after})))
    left = [p for p in c.extra_gone if p in after]
    if left:
        problems.append("leftover temporary files kept: %s" % left)
    assert not problems, "\n".join(problems)
    assert result["removed_bytes"] == gone_bytes + sum(c.before[p].size for p in c.extra_gone)
    if c.extra_gone:
        assert result["removed_entries"] > len(c.mod_removed) + len(c.mod_graph_only)
    else:
        assert result["removed_entries"] == len(c.mod_removed) + len(c.mod_graph_only)
    # Leftover temporaries beside a usable version are a unit of their own.
    extra = {name for name in result["sample"] if name.endswith(" (temporary files)")} if c.extra_gone else set()
    assert set(result["sample"]) - extra <= names, set(result["sample"]) - extra - names
    if before_bytes_check:
        assert result["before_bytes"] == file_bytes(c.before, c.gomod)
    # nothing new but Go's lock files, owned like their directory
    new = [p for p in after if p.startswith(c.gomod + "/") and p not in c.before]
    assert all(p.endswith(".lock") and after[p].uid == c.before[os.path.dirname(p)].uid for p in new), new
    assert list_problems(c.gomod) == []


def _build_expectations(c, result):
    actions, outputs = c.actions_before, c.outputs_before
    after = c.after
    removed_outputs = set(c.orphans_removed)
    for oid in {oid for _p, oid in actions.values() if oid in outputs}:
        if all(aid in c.build_removed for aid, (_p, o) in actions.items() if o == oid):
            removed_outputs.add(oid)
    problems = []
    for aid, (path, oid) in actions.items():
        if aid in c.build_removed:
            if path in after:
                problems.append("action %s should be gone" % aid)
        elif not same(after.get(path), c.before[path]):
            what = diff({path: c.before[path]}, {path: after[path]}) if path in after else "gone"
            problems.append("action %s changed: %s" % (aid, what))
    for oid, path in outputs.items():
        paths = c.before.under(path)
        if oid in removed_outputs:
            if any(p in after for p in paths):
                problems.append("output %s should be gone" % oid)
        elif any(not same(after.get(p), c.before[p]) for p in paths):
            problems.append("output %s changed or gone" % oid)
    assert not problems, "\n".join(problems[:20])
    fuzz = os.path.join(c.gocache, "fuzz")
    gone = [p for p in c.before if p.startswith(c.gocache + "/") and not p.startswith(fuzz + "/")
            and p not in after and c.before[p].kind == "f"]
    assert result["removed_bytes"] == sum(c.before[p].size for p in gone)
    names = {"build entry " + aid for aid in c.build_removed} | {"build output " + oid for oid in c.orphans_removed}
    assert result["removed_entries"] == len(c.build_removed) + len(c.orphans_removed)
    assert set(result["sample"]) <= names, sorted(set(result["sample"]) - names)[:5]
    assert result["before_bytes"] == file_bytes(c.before, c.gocache, exclude=[fuzz])
    assert result["after_bytes"] == file_bytes(after, c.gocache, exclude=[fuzz])
    if c.max_size is not None:
        assert result["after_bytes"] <= c.max_size and result["caches"][0]["target_met"] is True
    # the root, README and trim.txt stay as they were
    for p in [c.gocache, os.path.join(c.gocache, "README"), os.path.join(c.gocache, "trim.txt")]:
        assert after.get(p) and after[p][:4] == c.before[p][:4], p
    assert read_noatime(os.path.join(c.gocache, "README")).decode().splitlines()[0] == GO_MARKER


@pytest.mark.parametrize("case", CASES)
def test_real_run_removes_exactly_the_selection_and_go_still_builds(matrix, golden, case):
    c = matrix[case]
    for label, args in c.tasks:
        real = ok(c.results[label]["real"])
        if args["kind"] == "module":
            if args.get("state") == "absent":
                _assert_empty_module_cache(c, real)
            else:
                _module_expectations(c, real)
        elif args["kind"] == "build":
            _build_expectations(c, real)
        else:
            _assert_fuzz_emptied(c, real)
    if c.verify == "empty_module":
        # the emptied cache is still one Go fills again and builds from
        golden.go.run(["mod", "download"], c.gocache, c.gomod, proxy=True)
        golden.go.verify_project(c.gocache, c.gomod)
    else:
        golden.go.verify_project(c.gocache, c.gomod, run=c.verify == "project+run")


def _assert_empty_module_cache(c, result):
    left = sorted(p for p in c.after if p.startswith(c.gomod + "/"))
    # Only an empty cache/download stays, so that the root is still a module cache (a second run accepts it).
    assert left == [c.gomod + "/cache", c.gomod + "/cache/download"], left[:10]
    assert c.after[c.gomod][:4] == c.before[c.gomod][:4], (c.before[c.gomod], c.after[c.gomod])
    assert result["removed_entries"] == len(c.versions_before)
    assert result["removed_bytes"] == sum(unit_bytes(c.before, v) for v in c.versions_before.values())
    assert result["after_bytes"] == result["before_bytes"] - result["removed_bytes"]


def _assert_fuzz_emptied(c, result):
    fuzz = os.path.join(c.gocache, "fuzz")
    assert c.after[fuzz][:4] == c.before[fuzz][:4], (c.before[fuzz], c.after[fuzz])
    assert [p for p in c.after if p.startswith(fuzz + "/")] == []
    assert result["removed_entries"] == len(c.fuzz_files)
    assert result["removed_bytes"] == sum(c.before[f].size for f in c.fuzz_files)


def test_absent_build_cache_keeps_the_fuzz_cache(matrix):
    """go clean -cache does not remove fuzz/ (golang/go#48526): state=absent kind=build must not either."""
    c = matrix["absent_build_fuzz"]
    build = ok(c.results["build"]["real"])
    assert all("FuzzParse" not in s for s in build["sample"]), build["sample"]
    # the fuzz run came after the build cache was emptied: it still found every corpus file
    assert ok(c.results["fuzz"]["real"])["removed_entries"] == len(c.fuzz_files)


def test_check_mode_keeps_directory_atimes(matrix):
    """Check mode only looks: it must not even refresh directory access times (relatime updates
    them on the first listing after a change or after 24h; O_NOATIME on directories avoids it)."""
    changed = []
    for c in matrix.values():
        changed += dir_atime_changes(c.before, c.after_check)
    assert not changed, "%d directory atimes changed by check mode, e.g. %s" % (len(changed), changed[:5])


# =========================================================================== min_free (item 1)


@pytest.fixture
def private_fs(golden):
    """A 256 MiB tmpfs of its own (relatime, like /): its free space moves only with this test.
    (/ here is shared with other writers whose churn is tens of MiB per second.)"""
    mnt = _mkdir(os.path.join(golden.work, "private-fs"))
    res = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256m,mode=0755", "gofleet-prune-it", mnt],
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT, universal_newlines=True, check=False)
    if res.returncode != 0:
        pytest.skip("cannot mount a private tmpfs for min_free: %s" % res.stdout.strip())
    try:
        yield mnt
    finally:
        if subprocess.run(["umount", mnt], check=False).returncode != 0:
            subprocess.run(["umount", "-l", mnt], check=False)


def test_min_free_percent_relative_to_real_free_space(golden, playbook, private_fs):
    """min_free as a percentage of the file system just above its current free space: the oldest unit
    (the 24 MiB toolchain module, 48 MiB on disk with its zip) is exactly what frees enough."""
    now = time.time()
    c = Case(golden, "min_free", base=private_fs)
    c.refresh()
    _baseline(c, now)
    tool = c.versions[TOOLCHAIN_KEY]
    age_version(tool, now - 40 * DAY)
    age_version(c.versions[c.key("example.com/greet", "v1.0.0")], now - 20 * DAY)
    c.refresh()
    before = snapshot(c.gocache, c.gomod)
    disk = sum(os.lstat(p).st_blocks * 512 for p in tool.unit_paths(before) if before[p].kind == "f")
    assert disk >= 2 * TOOLCHAIN_SIZE
    vfs = os.statvfs(c.gomod)
    free, size = vfs.f_bavail * vfs.f_frsize, vfs.f_blocks * vfs.f_frsize
    need = disk // 2
    pct = "%.7f%%" % (100.0 * (free + need) / size)
    args = {"path": c.gomod, "kind": "module", "min_free": pct, "if_busy": IF_BUSY}
    check = playbook([prune_task("pct", args, check=True),
                      prune_task("bytes", dict(args, min_free="%dB" % (free + need)), check=True)], "min-free-check")
    after_check = snapshot(c.gocache, c.gomod)
    assert diff(before, after_check) == []
    real = playbook([prune_task("real", args), prune_task("again", args)], "min-free-real")
    c.before, c.after = before, snapshot(c.gocache, c.gomod)
    c.versions_before = c.versions
    c.mod_removed = {TOOLCHAIN_KEY}
    want = ["module %s@%s" % TOOLCHAIN_KEY]
    for name in ("pct", "bytes"):
        assert ok(check[name])["sample"] == want, (name, check[name]["sample"], free, need)
    assert reported(check["pct"]) == reported(check["bytes"]) == reported(ok(real["real"]))
    assert real["real"]["caches"][0]["target_met"] is True
    _module_expectations(c, real["real"])
    vfs = os.statvfs(c.gomod)
    assert vfs.f_bavail * vfs.f_frsize >= free + need
    assert ok(real["again"])["changed"] is False, real["again"]["sample"]
    golden.go.verify_project(c.gocache, c.gomod)


# =========================================================================== busy caches (item 2)


class BuildLoop(object):
    """Bounded loops of `go build -a` as gofleet-ci on one GOCACHE, in staggered workers."""

    def __init__(self, g, gocache, gomod, workers=2, max_builds=12, max_seconds=150):
        self.g, self.gocache, self.gomod = g, gocache, gomod
        self.stop = threading.Event()
        self.deadline = time.monotonic() + max_seconds
        self.max_builds = max_builds
        self.results = []  # (worker, rc, seconds, stderr tail)
        self.procs = {}
        self.lock = threading.Lock()
        self.threads = [threading.Thread(target=self._work, args=(i,), daemon=True) for i in range(workers)]

    def _work(self, i):
        env = self.g.go.env(self.gocache, self.gomod)
        cmd = [str(self.g.go.go_bin), "build", "-a", "-o", os.devnull, "."]
        n = 0
        while not self.stop.is_set() and n < self.max_builds and time.monotonic() < self.deadline:
            t0 = time.monotonic()
            p = subprocess.Popen(cmd, env=env, cwd=self.g.project, stdin=subprocess.DEVNULL,
                                 stdout=subprocess.PIPE, stderr=subprocess.STDOUT, universal_newlines=True,
                                 user=self.g.uid, group=self.g.gid, extra_groups=[], start_new_session=True)
            self.procs[i] = p
            out = p.communicate()[0]
            with self.lock:
                self.results.append((i, p.returncode, round(time.monotonic() - t0, 1), out[-2000:]))
            n += 1

    def start(self):
        for i, t in enumerate(self.threads):
            t.start()
            time.sleep(1.5)  # staggered: some go command is always running
        return self

    def running(self):
        return any(t.is_alive() for t in self.threads)

    def finish(self):
        self.stop.set()
        for t in self.threads:
            t.join(90)
        for p in self.procs.values():
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait()


def test_busy_cache_is_left_alone_while_builds_run(golden, playbook):
    """A loop of go build -a on the cache: if_busy=skip changes nothing at once; if_busy=wait with
    busy_timeout 20s waits, then reports busy and removes nothing; no build fails. Once the loop
    stopped, the same prune removes the entries (they were selected all along)."""
    now = time.time()
    c = Case(golden, "busy")
    age_tree(c.gocache, now - 40 * DAY)
    c.refresh()
    args = {"path": c.gocache, "kind": "build", "max_age": "30d"}
    loop = BuildLoop(golden, c.gocache, c.gomod).start()
    try:
        files_before = paths_under(c.gocache)
        t0 = time.monotonic()
        skip = playbook([prune_task("skip", dict(args, if_busy="skip"))], "busy-skip")["skip"]
        skip_s = time.monotonic() - t0
        t0 = time.monotonic()
        wait = playbook([prune_task("wait", dict(args, if_busy="wait", busy_timeout="20s"))], "busy-wait")["wait"]
        wait_s = time.monotonic() - t0
        still_running = loop.running() and not loop.stop.is_set()
        files_after = paths_under(c.gocache)
    finally:
        loop.finish()
    summary = {"skip_s": round(skip_s, 1), "wait_s": round(wait_s, 1), "builds": [r[:3] for r in loop.results],
               "skip": {k: ok(skip)[k] for k in ("removed_entries", "kept", "busy")},
               "wait": {k: ok(wait)[k] for k in ("removed_entries", "kept", "busy")},
               "wait_processes_seen": wait["caches"][0]["busy"]}
    sys.stderr.write("\n[busy] %s\n" % json.dumps(summary))
    failed = [r for r in loop.results if r[1] != 0]
    assert not failed, "builds failed beside the prune: %s" % failed
    assert still_running, "the build loop stopped before the prune ended: %s" % summary
    assert len(loop.results) >= 3, summary
    for name, r, seconds in (("skip", skip, skip_s), ("wait", wait, wait_s)):
        assert r["busy"] == [os.path.realpath(c.gocache)], (name, summary)
        assert (r["changed"], r["removed_entries"], r["removed_bytes"]) == (False, 0, 0), (name, summary)
        assert r["kept"].get("busy", 0) > 0, (name, summary)
    assert skip_s < 20, summary
    assert wait_s >= 20, "if_busy=wait returned before busy_timeout: %s" % summary
    assert files_before <= files_after, sorted(files_before - files_after)[:5]
    # control: idle now, the same selection goes
    done = ok(playbook([prune_task("idle", dict(args, if_busy=IF_BUSY))], "busy-idle")["idle"])
    assert done["removed_entries"] > 0 and done["busy"] == [], done
    golden.go.verify_project(c.gocache, c.gomod, run=True)


# =========================================================================== kill -9 (item 3)


KILL_SCRIPT = r"""
import json, sys
sys.path.insert(0, sys.argv[1])
from ansible_collections.gofleet.cache.plugins.module_utils import _locate, _prune, _prune_run
args = json.loads(sys.argv[2])
policy = _prune.Policy(**args["policy"])
sys.stdout.write("ready\n")
sys.stdout.flush()
result = _prune_run.run([_locate.Target(path, kind) for path, kind in args["targets"]], policy)
sys.stdout.write(json.dumps(result) + "\n")
"""


@pytest.fixture(scope="module")
def bulk_golden(golden):
    """golden/gomod plus 300 synthetic versions (12 files each) downloaded by Go through the proxy."""
    mods = _bulk_modules()
    goproxy.write_proxy(golden.proxy, mods)
    d = os.path.join(golden.work, "bulk")
    _mkdir(d)
    subprocess.run(["cp", "-a", golden.gomod, d + "/"], check=True)
    gomod = os.path.join(d, "gomod")
    golden.go.run(["mod", "download"] + ["%s@%s" % (m.path, m.version) for m in mods], golden.gocache, gomod,
                  proxy=True, cwd=golden.home)
    return gomod


class KillRun(object):
    def __init__(self, g, bulk, name, now, rng):
        self.dir = os.path.join(g.cases, name)
        if os.path.exists(self.dir):
            shutil.rmtree(self.dir)
        _mkdir(self.dir)
        subprocess.run(["cp", "-a", g.gocache, bulk, self.dir + "/"], check=True)
        self.gocache, self.gomod = os.path.join(self.dir, "gocache"), os.path.join(self.dir, "gomod")
        age_tree(self.gomod, now - 40 * DAY)
        age_tree(self.gocache, now - 2 * DAY)
        actions, outputs = build_on_disk(self.gocache)
        self.actions = actions
        self.aged = sorted(rng.sample(sorted(actions), len(actions) // 4))
        for aid in self.aged:
            age_entry(actions, outputs, aid, now - 40 * DAY)
        self.versions = versions_on_disk(self.gomod)
        self.referenced = {esc(*mv) for mv in PROJECT_FULL | PROJECT_GRAPH}
        self.before = snapshot(self.gocache, self.gomod)
        self.args = {"policy": {"max_age": "30d", "keep_referenced": [g.project], "if_busy": IF_BUSY},
                     "targets": [[self.gomod, "module"], [self.gocache, "build"]]}

    def start(self):
        return subprocess.Popen([sys.executable, "-c", KILL_SCRIPT, str(PYPATH), json.dumps(self.args)],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True,
                                start_new_session=True)

    def progress_paths(self):
        """Files whose disappearance marks a unit's removal: removable versions' .ziphash, aged -a files."""
        paths = [v.dl_paths({".ziphash"})[0] for key, v in sorted(self.versions.items())
                 if key not in self.referenced and v.present]
        return paths + [self.actions[aid][0] for aid in self.aged]

    def kill_after(self, target, progress):
        """Start the engine, SIGKILL it once `target` units are gone; (returncode, units gone)."""
        p = self.start()
        try:
            assert p.stdout.readline() == "ready\n"
            deadline = time.monotonic() + 120
            while p.poll() is None and time.monotonic() < deadline:
                if sum(1 for x in progress if not os.path.lexists(x)) >= target:
                    # The whole session: the engine and the child that prunes as the caches' owner.
                    os.killpg(p.pid, signal.SIGKILL)
                    break
        finally:
            if p.poll() is None:
                p.kill()
            p.communicate()
        return p.returncode, sum(1 for x in progress if not os.path.lexists(x))

    def run_to_end(self):
        p = self.start()
        assert p.stdout.readline() == "ready\n"
        t0 = time.monotonic()
        out, err = p.communicate(timeout=300)
        assert p.returncode == 0, err
        return json.loads(out), time.monotonic() - t0

    def consistency_problems(self):
        """After a kill: every unit Go can still see is whole and unchanged; referenced versions untouched."""
        now_snap = snapshot(self.gocache, self.gomod)
        problems = []
        after = versions_on_disk(self.gomod)
        for key, v in self.versions.items():
            unit = v.unit_paths(self.before)
            if key in self.referenced:
                if any(not same(now_snap.get(p), self.before[p]) for p in unit):
                    problems.append("referenced %s touched" % unesc(key))
                continue
            a = after.get(key)
            if a is not None and a.present:
                if any(not same(now_snap.get(p), self.before[p]) for p in unit):
                    problems.append("%s looks present to Go but is not whole" % unesc(key))
        actions, outputs = build_on_disk(self.gocache)
        for aid, (path, oid) in actions.items():
            if not same(now_snap.get(path), self.before.get(path)):
                problems.append("action %s changed" % aid)
            elif oid not in outputs or any(not same(now_snap.get(p), self.before.get(p))
                                           for p in self.before.under(outputs[oid])):
                problems.append("action %s kept but its output %s is gone or changed" % (aid, oid))
        removed = sum(1 for key, v in self.versions.items() if key not in self.referenced
                      and not (after.get(key) and after[key].present))
        return problems, removed, now_snap


def test_kill_minus_9_leaves_caches_usable(golden, bulk_golden):
    """SIGKILL the engine at seeded random points of its progress (module versions, then build entries)
    while it prunes 300+ module versions and a quarter of the build cache: units are whole or gone, Go still
    builds offline and verifies, and a new run completes cleanly."""
    rng = random.Random(4242)
    now = time.time()
    ref = KillRun(golden, bulk_golden, "kill-ref", now, rng)
    removable = sum(1 for k in ref.versions if k not in ref.referenced)
    result, seconds = ref.run_to_end()
    assert result["errors_total"] == 0, result["errors"]
    assert result["removed_entries"] >= removable + len(ref.aged), result
    assert ref.consistency_problems()[0] == []
    shutil.rmtree(ref.dir)
    report = []
    for i in range(5):
        k = KillRun(golden, bulk_golden, "kill-%d" % i, now, rng)
        progress = k.progress_paths()
        target = rng.randint(1, len(progress) - 1)
        rc, gone = k.kill_after(target, progress)
        problems, removed, _snap = k.consistency_problems()
        report.append({"target": target, "units_gone": gone, "of": len(progress), "rc": rc,
                       "versions_removed": removed})
        assert not problems, (report[-1], problems[:10])
        golden.go.verify_project(k.gocache, k.gomod, run=True)
        result, _s = k.run_to_end()
        assert result["errors_total"] == 0, result["errors"]
        left = versions_on_disk(k.gomod)
        present = {key for key, v in left.items() if v.present}
        assert present == {key for key in k.referenced if k.versions[key].present}, sorted(present)[:5]
        report[-1]["leftover_trees"] = len([key for key, v in left.items() if v.tree and not v.present])
        # checked after every iteration (below): the re-run must leave @v/list as Go writes it
        stale = list_problems(k.gomod)
        report[-1]["stale_lists"] = len(stale)
        report[-1]["stale_example"] = stale[:1]
        golden.go.verify_project(k.gocache, k.gomod)
        shutil.rmtree(k.dir)
    sys.stderr.write("\n[kill] full run %.2fs; %s\n" % (seconds, json.dumps(report)))
    interrupted = [r for r in report if r["rc"] == -signal.SIGKILL and 0 < r["units_gone"] < r["of"]]
    assert len(interrupted) >= 3, "too few kills landed mid-removal: %s" % report
    stale = [r for r in report if r["stale_lists"]]
    assert not stale, "after kill + a complete re-run, @v/list still names versions whose .mod is gone: %s" % stale


# =========================================================================== symlinks (item 4)


def test_symlinks_out_of_the_caches_are_never_followed(golden, playbook):
    now = time.time()
    c = Case(golden, "symlinks")
    c.refresh()
    _baseline(c, now)
    outside = _mkdir(os.path.join(c.dir, "outside"))
    ofile = os.path.join(outside, "precious.txt")
    odir = os.path.join(outside, "precious-dir")
    Path(ofile).write_text("outside file\n")
    _mkdir(os.path.join(odir, "sub"))
    Path(odir, "a.txt").write_text("outside dir file\n")
    Path(odir, "sub", "b.txt").write_text("nested\n")
    Path(odir, "x@v1.0.0").mkdir()  # looks like a module version when seen through a link
    Path(odir, "x@v1.0.0", "x.go").write_text("package x\n")
    links = []

    def link(target, path):
        os.symlink(target, path)
        os.lchown(path, golden.uid, golden.gid)
        set_times(path, now - 40 * DAY)
        links.append(path)

    # build cache: entries whose -a / -d are links, and an entry-looking hex dir link
    aids = _unshared(c)
    a1, a2 = aids[:2]
    for aid, target in ((a1, ofile), (a2, odir)):
        age_entry(c.actions, c.outputs, aid, now - 40 * DAY)
        out = c.outputs[c.actions[aid][1]]
        os.unlink(out)
        link(target, out)
    fake = "%064x" % 7
    link(ofile, os.path.join(c.gocache, fake[:2], fake + "-a"))
    link(odir, os.path.join(c.gocache, fake[:2], fake + "-d"))
    # a whole entry directory moved out and linked back, real Go entries in it (aged: max_age would take them)
    hexdir = max((h for h in ("%02x" % i for i in range(256)) if h not in (a1[:2], a2[:2], fake[:2])),
                 key=lambda h: len(os.listdir(os.path.join(c.gocache, h))))
    moved = os.path.join(outside, "entries-" + hexdir)
    shutil.move(os.path.join(c.gocache, hexdir), moved)
    assert [n for n in os.listdir(moved) if n.endswith("-a")]
    link(moved, os.path.join(c.gocache, hexdir))
    # module cache: links inside a version that goes, a version that is a link, a link as a path element
    g10 = c.versions[c.key("example.com/greet", "v1.0.0")]
    age_version(g10, now - 40 * DAY)
    os.chmod(g10.tree, 0o755)
    link(odir, os.path.join(g10.tree, "linkdir"))
    link(ofile, os.path.join(g10.tree, "linkfile"))
    os.chmod(g10.tree, 0o555)
    set_times(g10.tree, now - 40 * DAY)
    info = os.path.join(g10.at_v, "v1.0.0.info")
    os.unlink(info)
    link(ofile, info)
    link(odir, os.path.join(c.gomod, "example.com", "evil@v1.0.0"))
    evil_at_v = _mkdir(os.path.join(c.gomod, "cache", "download", "example.com", "evil", "@v"), golden.uid)
    for suffix in (".mod", ".ziphash", ".zip", ".info"):
        link(ofile, os.path.join(evil_at_v, "v1.0.0" + suffix))
    link(odir, os.path.join(c.gomod, "example.com", "linked"))
    age_tree(outside, now - 40 * DAY)
    outside_before = snapshot(outside)

    def run(label, extra):
        tasks = [prune_task("build", dict(extra, path=c.gocache, kind="build", if_busy=IF_BUSY)),
                 prune_task("module", dict(extra, path=c.gomod, kind="module", if_busy=IF_BUSY))]
        out = playbook(tasks, label)
        assert diff(outside_before, snapshot(outside), dir_atime=True) == [], label
        return ok(out["build"]), ok(out["module"])

    b, m = run("symlinks-max-age", {"max_age": "30d"})
    assert b["removed_entries"] >= 1 and m["removed_entries"] >= 1, (b, m)
    assert not os.path.lexists(g10.tree), "greet@v1.0.0 (with links inside) should be gone"
    assert os.path.isfile(ofile) and os.path.isdir(odir)
    b, m = run("symlinks-absent", {"state": "absent"})
    # Only the empty cache/download that keeps the root a module cache, and links (never followed) remain.
    assert all(p == "cache" or os.path.islink(os.path.join(c.gomod, p)) for p in os.listdir(c.gomod)), \
        os.listdir(c.gomod)
    assert os.listdir(os.path.join(c.gomod, "cache")) == ["download"]
    assert diff(outside_before, snapshot(outside), dir_atime=True) == []


# =========================================================================== refusals and bad input (items 5, 7)


@pytest.fixture(scope="module")
def refusals(golden, playbook, ci_user):
    now = time.time()
    c = Case(golden, "bad-input")
    age_tree(c.gocache, now - 40 * DAY)
    age_tree(c.gomod, now - 40 * DAY)
    noncache = _mkdir(os.path.join(c.dir, "not-a-cache"))
    Path(noncache, "README").write_text("This directory holds my precious build logs.\n")
    fake = "%064x" % 11
    _mkdir(os.path.join(noncache, fake[:2]))
    Path(noncache, fake[:2], fake + "-a").write_text("v1 %s %s %20d %20d\n" % (fake, fake, 10, 0))
    Path(noncache, fake[:2], fake + "-d").write_text("precious\n")
    _mkdir(os.path.join(noncache, "fuzz", "example.com"))
    Path(noncache, "fuzz", "example.com", "corpus").write_text("go test fuzz v1\n")
    nonmod = _mkdir(os.path.join(c.dir, "not-a-modcache"))
    _mkdir(os.path.join(nonmod, "example.com", "greet@v1.0.0"))
    Path(nonmod, "example.com", "greet@v1.0.0", "greet.go").write_text("package greet\n")
    age_tree(noncache, now - 40 * DAY)
    age_tree(nonmod, now - 40 * DAY)
    roots = (c.gocache, c.gomod, noncache, nonmod)
    before = snapshot(*roots)
    env = {"GOCACHE": c.gocache, "GOMODCACHE": c.gomod, "HOME": golden.home}
    tasks = [
        prune_task("noncache_build", {"path": noncache, "kind": "build", "max_age": "1d"}),
        prune_task("noncache_build_absent", {"path": noncache, "kind": "build", "state": "absent"}),
        prune_task("noncache_fuzz", {"path": os.path.join(noncache, "fuzz"), "kind": "fuzz", "state": "absent"}),
        prune_task("noncache_module", {"path": nonmod, "kind": "module", "state": "absent"}),
        prune_task("root_build", {"path": "/", "kind": "build", "state": "absent"}),
        prune_task("root_module", {"path": "/", "kind": "module", "max_age": "1d"}),
        prune_task("home_module", {"path": ci_user.pw_dir, "kind": "module", "state": "absent"}),
        prune_task("bad_kinds", {"kinds": ["build", "bogus"], "max_age": "1d", "if_busy": IF_BUSY},
                   become=True, environment=env),
        prune_task("bad_kind", {"path": c.gocache, "kind": "bogus", "max_age": "1d"}),
        prune_task("negative_max_size", {"path": c.gocache, "kind": "build", "max_size": "-5GB", "max_age": "1d"}),
        prune_task("percent_over_100", {"path": c.gomod, "kind": "module", "min_free": "150%", "max_age": "1d"}),
        prune_task("path_with_kinds", {"path": c.gocache, "kinds": ["build"], "max_age": "1d"}),
    ]
    out = playbook(tasks, "refusals")
    out["_changes"] = diff(before, snapshot(*roots))
    out["_paths"] = {"noncache": noncache, "nonmod": nonmod, "home": ci_user.pw_dir}
    return out


def _standalone(value, msg):
    return re.search(r"(^|[\s'\"(:=])%s($|[\s'\"),.:;])" % re.escape(value), msg) is not None


@pytest.mark.parametrize("task,option,value", [
    ("noncache_build", "path", "noncache"),
    ("noncache_build_absent", "path", "noncache"),
    ("noncache_fuzz", "path", "noncache/fuzz"),
    ("noncache_module", "path", "nonmod"),
    ("root_build", "path", "/"),
    ("root_module", "path", "/"),
    ("home_module", "path", "home"),
])
def test_non_cache_roots_are_refused(refusals, task, option, value):
    paths = refusals["_paths"]
    value = paths["noncache"] + "/fuzz" if value == "noncache/fuzz" else paths.get(value, value)
    r = refusals[task]
    assert r.get("failed") is True, r
    msg = r.get("msg", "")
    assert option in msg and _standalone(value, msg), msg
    assert not r.get("removed_entries"), r
    assert refusals["_changes"] == [], refusals["_changes"]


@pytest.mark.parametrize("task,options,value", [
    ("bad_kinds", ["kinds"], "bogus"),
    ("bad_kind", ["kind"], "bogus"),
    ("negative_max_size", ["max_size"], "-5GB"),
    ("percent_over_100", ["min_free"], "150%"),
    ("path_with_kinds", ["path", "kinds"], None),
])
def test_bad_input_fails_naming_option_and_value(refusals, task, options, value):
    r = refusals[task]
    assert r.get("failed") is True, r
    msg = r.get("msg", "")
    for option in options:
        assert option in msg, msg
    if value is not None:
        assert value in msg, msg
    assert refusals["_changes"] == [], refusals["_changes"]


# =========================================================================== read-only trees (item 6)


def test_read_only_versions_of_another_account_are_removed(golden, playbook):
    """Go leaves extracted versions 0555/0444 owned by gofleet-ci: root removes them, and so does
    gofleet-ci itself (become su) on its own cache; nothing is left owned by root."""
    now = time.time()
    targets = [("example.com/greet", "v1.0.0"), (goproxy.MIXED_CASE_MODULE, "v0.1.0")]  # the latter has a subdir
    runs = {}
    tasks = []
    for who in ("root", "user"):
        c = Case(golden, "readonly-" + who)
        c.refresh()
        _baseline(c, now)
        for mv in targets:
            v = c.versions[c.key(*mv)]
            for p in tree_paths(v.tree):
                st = os.lstat(p)
                assert st.st_uid == golden.uid
                assert stat.S_IMODE(st.st_mode) == (0o555 if stat.S_ISDIR(st.st_mode) else 0o444), p
            age_version(v, now - 40 * DAY)
        c.refresh()
        c.before = snapshot(c.gomod)
        c.versions_before = c.versions
        c.mod_removed = {esc(*mv) for mv in targets}
        runs[who] = c
        args = {"max_age": "30d", "if_busy": IF_BUSY}
        if who == "root":
            tasks.append(prune_task(who, dict(args, path=c.gomod, kind="module")))
        else:
            tasks.append(prune_task(who, dict(args, kinds=["module"]), become=True,
                                    environment={"GOMODCACHE": c.gomod, "GOCACHE": c.gocache, "HOME": golden.home}))
    out = playbook(tasks, "read-only")
    for who, c in runs.items():
        r = ok(out[who])
        assert r["errors_total"] == 0, (who, r["errors"])
        c.after = snapshot(c.gomod)
        _module_expectations(c, r)
        root_owned = [p for p, n in c.after.items() if n.uid == 0]
        assert root_owned == [], (who, root_owned[:5])
        golden.go.verify_project(c.gocache, c.gomod)
