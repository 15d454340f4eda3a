"""An unprivileged account against gofleet.cache run as root (issue 11).

The attacker is the account ``gofleet-mallory``; the stand-in victims are
trees owned by root or by a second account, ``gofleet-victim``. Every
booby-trap is made as the attacker, with only the attacker's rights (a fork
that drops to it, or a background program run as it), except bind mounts and
tmpfs, which only root can make. The modules then run as root through the
real ``ansible-playbook`` (the ``playbook`` fixture), with a timeout so that a
hang fails one test instead of the suite.

What is asserted is only what the issue promises, on disk and in the
documented results:

- the victim tree is unchanged: every path, type, mode, owner, group, size,
  mtime and content digest (``hostile.snapshot``);
- the module reported the refusal or the problem (a failure whose message
  names the option or path, a ``skipped`` facts item or ``skipped_caches`` entry, an ``errors``
  entry) and never a traceback (``MODULE FAILURE``).

Classes (issue 11): 1 a path checked then used by name (symlink swaps, before
and during the run); 2 locations the account chooses; 3 hard links; 4 bind
mounts; 5 special files; 9 robustness. Classes 6-8 (locks, metrics, role
templates, cleanup_schedule state absent) live elsewhere.

Run as root:

    . scripts/env.sh && .venv/bin/python -m pytest tests/integration/test_hostile.py -q -p no:cacheprovider

``GOFLEET_HOSTILE_HANG_S`` (default 120) is how long a playbook may run before
the test calls it a hang.
"""

from __future__ import annotations

import json
import os
import pwd
import stat
import tempfile
import threading
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from tests.support import goproxy, gorun, hostile

MALLORY = "gofleet-mallory"
VICTIM = "gofleet-victim"
FACTS = "gofleet.cache.go_cache_facts"
PRUNE = "gofleet.cache.go_cache_prune"
CACHE_DIR = "gofleet.cache.go_cache_dir"
GO_ENV = "gofleet.cache.go_env"
HANG_S = int(os.environ.get("GOFLEET_HOSTILE_HANG_S", "120"))
DAY = 86400
OLD = time.time() - 40 * DAY
TOOLCHAIN_SIZE = 2 << 20  # two incompressible 2 MiB files (zip and bin/go): the ENOSPC test needs them
GREET_AT_V = "cache/download/example.com/greet/@v"
HUGE = "1" + "0" * 299  # 300 digits
LOCK_FILE = "/run/gofleet-hostile-tests.lock"
LOCK_WAIT_S = 1800


# =========================================================================== fixtures


@pytest.fixture(scope="module")
def accounts(go_bin):
    """The attacker and victim accounts, for this session alone.

    Their homes (the attacker's go env file above all) are host-wide state:
    a second session running these tests at the same time would rewrite them
    under this one. A lock in a root-only place serialises sessions.
    """
    if os.geteuid() != 0:
        pytest.skip("the hostile tests run as root: they act as %s against modules run as root" % MALLORY)
    with hostile.host_lock(LOCK_FILE, LOCK_WAIT_S):
        yield SimpleNamespace(mallory=hostile.ensure_account(MALLORY), victim=hostile.ensure_account(VICTIM),
                              root=pwd.getpwuid(0))


def _action_files(build):
    """[(path of -a, path of the -d it names)] of a build cache, from the 175-byte action lines."""
    found = []
    for hexdir in sorted(Path(build).glob("[0-9a-f][0-9a-f]")):
        for action in sorted(hexdir.glob("*-a")):
            parts = action.read_bytes().split()
            if len(parts) >= 3 and parts[0] == b"v1":
                output = Path(build) / parts[2].decode()[:2] / (parts[2].decode() + "-d")
                found.append((action, output))
    return found


@pytest.fixture(scope="module")
def lab(accounts, go_bin):
    """Real caches made once by Go as the attacker: golden/build (with a fuzz corpus) and golden/mod.

    Five build entries and one corpus file are 40 days old; the module cache
    holds example.com/greet v1.0.0, v1.1.0 (.mod only), v1.2.0, v1.3.0 and a
    toolchain module of 2 x 2 MiB.
    """
    root = Path(tempfile.mkdtemp(prefix="gofleet-hostile-", dir="/var/tmp"))
    os.chmod(str(root), 0o755)
    mallory = accounts.mallory
    try:
        golden = root / "golden"
        gohome = root / "gohome"
        for directory in (golden, gohome):
            directory.mkdir()
            os.chown(str(directory), mallory.pw_uid, mallory.pw_gid)
        goproxy.write_proxy(root / "proxy", goproxy.default_modules(toolchain_size=TOOLCHAIN_SIZE))
        goproxy.write_project(root / "project")
        env = gorun.go_env(gohome, golden / "build", golden / "mod", go=go_bin)
        gorun.populate_caches(MALLORY, env, root / "proxy", root / "project", run=False, go=go_bin,
                              downloads=["example.com/greet@v1.0.0", "example.com/greet@v1.3.0",
                                         "%s@%s" % (goproxy.TOOLCHAIN_MODULE, goproxy.TOOLCHAIN_VERSION)])
        actions = _action_files(golden / "build")
        named = {}
        for _action, output in actions:
            named[output] = named.get(output, 0) + 1
        # Entries whose output no other entry names (a shared -d stays while any entry naming it stays).
        pairs = [(a, d) for a, d in actions if d.is_file() and named[d] == 1]
        assert len(pairs) >= 10, pairs
        for action, output in pairs[:5]:
            for path in (action, output):
                os.utime(str(path), (OLD, OLD))
        corpus = golden / "build" / "fuzz" / "example.com" / "consumer" / "FuzzName"
        hostile.write_as(mallory, str(corpus / ("%064x" % 1)), b"go test fuzz v1\n[]byte(\"old\")\n")
        hostile.write_as(mallory, str(corpus / ("%064x" % 2)), b"go test fuzz v1\n[]byte(\"new\")\n")
        os.utime(str(corpus / ("%064x" % 1)), (OLD, OLD))
        yield SimpleNamespace(root=root, build=golden / "build", mod=golden / "mod",
                              aged=[(str(a), str(d)) for a, d in pairs[:5]])
    finally:
        hostile.remove_tree(root)


def _reset_home(pw):
    for name in (".config", ".cache", "go"):
        hostile.remove_tree(os.path.join(pw.pw_dir, name))


@pytest.fixture
def scene(lab, accounts, request):
    """A fresh directory for one test: ``dir`` (root, 0755) with ``m`` (the attacker's, 0755).

    The attacker's home is reset before and after (no go env file, no caches);
    everything below ``dir`` (mounts included) is removed afterwards.
    """
    name = request.node.name
    for char in "[]/ ":
        name = name.replace(char, "-")
    directory = lab.root / name[:80]
    directory.mkdir()
    m = directory / "m"
    m.mkdir()
    os.chown(str(m), accounts.mallory.pw_uid, accounts.mallory.pw_gid)
    _reset_home(accounts.mallory)
    try:
        yield SimpleNamespace(dir=directory, m=m, lab=lab, acc=accounts,
                              goenv=Path(accounts.mallory.pw_dir) / ".config" / "go" / "env")
    finally:
        _reset_home(accounts.mallory)
        hostile.remove_tree(directory)


# =========================================================================== helpers


def as_mallory(scene, func, *args):
    return hostile.as_user(scene.acc.mallory, func, *args)


def set_goenv(scene, **values):
    """The attacker writes its own go env file (what `go env -w` would)."""
    text = "".join("%s=%s\n" % item for item in sorted(values.items()))
    hostile.write_as(scene.acc.mallory, str(scene.goenv), text)


def attacker_caches(scene, where=None, goenv=True):
    """Copies of the golden caches owned by the attacker at where/build and where/mod (default scene.m)."""
    where = Path(where or scene.m)
    hostile.mkdirs_as(scene.acc.mallory, str(where))
    build, mod = where / "build", where / "mod"
    hostile.copy_tree(scene.lab.build, build)
    hostile.copy_tree(scene.lab.mod, mod)
    if goenv:
        set_goenv(scene, GOCACHE=str(build), GOMODCACHE=str(mod))
    return build, mod


def victim_caches(scene, owner, name="victim"):
    """Real caches (build with fuzz corpus, module) owned by ``owner`` below scene.dir/name."""
    base = scene.dir / name
    base.mkdir()
    os.chown(str(base), owner.pw_uid, owner.pw_gid)
    build, mod = base / "build", base / "mod"
    hostile.copy_tree(scene.lab.build, build, owner)
    hostile.copy_tree(scene.lab.mod, mod, owner)
    return base, build, mod


def facts_task(name, **args):
    args.setdefault("users", [MALLORY])
    args.setdefault("go", "none")
    return {"name": name, FACTS: args}


def prune_task(name, check=False, **args):
    if "path" not in args:
        args.setdefault("user", MALLORY)
        args.setdefault("go", "none")
    args.setdefault("if_busy", "proceed")
    task = {"name": name, PRUNE: args}
    if check:
        task["check_mode"] = True
    return task


def dir_task(name, **args):
    args.setdefault("owner", MALLORY)
    args.setdefault("if_busy", "proceed")
    return {"name": name, CACHE_DIR: args}


def run(playbook, tasks, label, fifos=(), timeout=None):
    """playbook(tasks) in a thread; a run longer than ``timeout`` fails the test as a hang.

    On a hang, the FIFOs are opened from the other side (which releases a
    reader blocked on them) and, failing that, the ansible-playbook started
    here is killed, so that the next test starts clean.
    """
    timeout = timeout or HANG_S
    box = {}

    def target():
        try:
            box["result"] = playbook(tasks, label)
        except BaseException as exc:  # pylint: disable=broad-except
            box["error"] = exc

    thread = threading.Thread(target=target, name="playbook-" + label, daemon=True)
    thread.start()
    thread.join(timeout)
    if thread.is_alive():
        deadline = time.monotonic() + 30
        while thread.is_alive() and time.monotonic() < deadline:
            hostile.unjam(fifos)
            thread.join(1)
        if thread.is_alive():
            hostile.kill_descendants("ansible-playbook")
            thread.join(30)
        pytest.fail("%s: ansible-playbook still running after %d s: a module hangs" % (label, timeout))
    if "error" in box:
        raise box["error"]
    return box["result"]


def no_traceback(result, what=""):
    text = json.dumps(result)
    assert "MODULE FAILURE" not in text and "Traceback (most recent call last)" not in text, \
        "%s: the module crashed instead of reporting:\n%s" % (what, text[:4000])


def ok(result, what=""):
    no_traceback(result, what)
    assert not result.get("failed"), "%s failed: %s" % (what, json.dumps(result)[:4000])
    return result


def failed_naming(result, *needles):
    """The task failed cleanly, and its message names one of ``needles`` (an option or a path)."""
    no_traceback(result)
    assert result.get("failed"), "expected a refusal, got: %s" % json.dumps(result)[:3000]
    msg = str(result.get("msg", ""))
    assert any(needle in msg for needle in needles), "message names none of %s: %r" % (needles, msg)


def unchanged(before, root):
    after = hostile.snapshot(root)
    assert after == before, "victim %s changed:\n%s" % (root, "\n".join(hostile.snapshot_diff(before, after)))


def go_cache(result):
    ok(result, "go_cache_facts")
    return result["ansible_facts"]["go_cache"]


def cache_item(result, kind, user=MALLORY):
    items = [item for item in go_cache(result)["caches"] if item.get("user") == user and item["kind"] == kind]
    assert len(items) == 1, go_cache(result)["caches"]
    return items[0]


def assert_skipped_item(item, owner_name):
    """go_cache_facts: a location not owned by the account is reported and not scanned."""
    assert item.get("skipped"), "%s cache %s was not skipped: %s" % (item["kind"], item.get("path"), item)
    assert owner_name in item["skipped"], item["skipped"]
    assert item["exists"] is True and item["files"] == 0 and item["bytes"] == 0, item


def skipped_entries(result, kind=None):
    entries = result.get("skipped_caches")
    assert isinstance(entries, list), result
    return [e for e in entries if kind is None or e.get("kind") == kind]


def assert_prune_skipped(result, kinds, paths=None):
    """go_cache_prune with user: those caches are listed in `skipped_caches` ({user, kind, path, reason}), with a
    warning each; the task does not fail (`skipped` itself is Ansible's bool, so the module's list has this name)."""
    ok(result, "go_cache_prune")
    for kind in kinds:
        entries = skipped_entries(result, kind)
        assert entries, "%s cache not reported as skipped: %s" % (kind, json.dumps(result)[:3000])
        entry = entries[0]
        assert entry.get("user") == MALLORY and entry.get("reason"), entry
        if paths and kind in paths:
            assert entry.get("path") == str(paths[kind]), entry
        assert any(entry["path"] in str(w) and MALLORY in str(w) for w in result.get("warnings") or []), result


def reported(result, *needles):
    """Whether a problem naming one of ``needles`` is in the result's errors, skipped caches or failure message."""
    parts = [result.get("errors"), result.get("skipped_caches"), result.get("msg") if result.get("failed") else None]
    for item in result.get("caches") or []:
        parts += [item.get("errors"), item.get("skipped")]
    text = json.dumps(parts)
    return any(needle in text for needle in needles)


def errors_total(item):
    return max(item.get("errors_total") or 0, len(item.get("errors") or []))


# =========================================================================== 1. checked, then used by name


@pytest.mark.parametrize("target", ["existing", "missing"])
def test_cache_dir_path_through_attacker_symlink_is_refused(playbook, scene, target):
    """Class 1: go_cache_dir `path` goes through a symlink the attacker owns to a root-owned directory.

    Attack: ~m/link -> a root-owned directory; ask for path=~m/link/cache with
    owner=attacker. Resolving the path and then chowning (or creating) by name
    gives the attacker a root-owned directory, or a new one in a place only
    root may write. Nothing below the root-owned directory may change.
    """
    rootdir = scene.dir / "rootdir"
    rootdir.mkdir()
    (rootdir / "cache").mkdir(mode=0o750)
    (rootdir / "cache" / "data").write_bytes(b"root's data\n")
    name = "cache" if target == "existing" else "newcache"
    as_mallory(scene, os.symlink, str(rootdir), str(scene.m / "link"))
    before = hostile.snapshot(rootdir)
    path = str(scene.m / "link" / name)
    res = run(playbook, [dir_task("dir", path=path, kind="build", mode="0700")], "dir-symlink-" + target)["dir"]
    unchanged(before, rootdir)
    failed_naming(res, "path", path)


def test_cache_root_behind_attacker_symlink_component_is_skipped(playbook, scene):
    """Class 1: GOCACHE=~m/link/build where the attacker's link points into a root-owned tree holding a cache.

    Every check on the final path (README marker, not a system directory) passes;
    only whose directory it is tells it apart. Facts must skip it, prune
    (state absent and a max_age policy) must leave it alone and say so.
    """
    base, _build, _mod = victim_caches(scene, scene.acc.root, "rootside")
    as_mallory(scene, os.symlink, str(base), str(scene.m / "link"))
    set_goenv(scene, GOCACHE=str(scene.m / "link" / "build"), GOMODCACHE=str(scene.m / "link" / "mod"))
    before = hostile.snapshot(base)
    results = run(playbook, [
        facts_task("facts"),
        prune_task("absent", kinds=["build", "fuzz", "module"], state="absent"),
        prune_task("age", kinds=["build", "fuzz", "module"], max_age="1d", keep_recent="0s"),
    ], "symlink-component")
    unchanged(before, base)
    for kind in ("build", "fuzz", "module"):
        assert_skipped_item(cache_item(results["facts"], kind), "root")
    for name in ("absent", "age"):
        assert_prune_skipped(results[name], ["build", "fuzz", "module"])


FLIPPER = r"""
import os, random, sys, time
base, victim, stop = sys.argv[1], sys.argv[2], sys.argv[-1]
flip, real = os.path.join(base, 'flip'), os.path.join(base, 'real')
MARK = b'This directory holds cached build artifacts from the Go build system.\n'

def ensure(d):
    # The attacker's own caches, put back after gofleet emptied or removed them.
    try:
        os.makedirs(os.path.join(d, 'build', 'fuzz', 'x'), exist_ok=True)
        readme = os.path.join(d, 'build', 'README')
        if not os.path.exists(readme):
            with open(readme, 'wb') as handle:
                handle.write(MARK)
        os.makedirs(os.path.join(d, 'mod', 'cache', 'download'), exist_ok=True)
    except OSError:
        pass

flips = 0
while not os.path.exists(stop):
    try:
        os.rename(flip, real)            # flip: real directory -> gone
    except OSError:
        pass
    ensure(real)
    try:
        os.symlink(victim, flip)         # flip -> the victim's tree
        flips += 1
    except OSError:
        pass
    time.sleep(random.random() * 0.002)
    if os.path.islink(flip):
        os.unlink(flip)
    try:
        os.rename(real, flip)            # flip: the attacker's real directory again
    except OSError:
        pass
    time.sleep(random.random() * 0.002)
print('flips', flips)
"""


@pytest.mark.parametrize("owner", ["root", "victim"])
def test_race_component_flipped_to_victim_tree_never_changes_it(playbook, scene, owner):
    """Class 1 (race): the attacker flips a path component of its caches between a real directory and a
    symlink to the victim's tree while facts, prune (state absent) and go_cache_dir (migrate clean, and a
    new directory below the flipped component) run three times in a row.

    GOCACHE=~m/flip/build, GOMODCACHE=~m/flip/mod; ~m/flip is the attacker's
    directory at one instant and a link to a tree holding a cache of root
    (or of gofleet-victim) the next. A check done on one resolution and an
    action on the next empties the victim's cache or chowns it.
    """
    pw = scene.acc.root if owner == "root" else scene.acc.victim
    base, _build, _mod = victim_caches(scene, pw, "victim")
    attacker_caches(scene, scene.m / "flip", goenv=False)
    set_goenv(scene, GOCACHE=str(scene.m / "flip" / "build"), GOMODCACHE=str(scene.m / "flip" / "mod"))
    new = scene.dir / "new"
    new.mkdir()
    before = hostile.snapshot(base)
    tasks = []
    for round_ in range(3):
        tasks += [
            facts_task("facts %d" % round_),
            prune_task("absent %d" % round_, kinds=["build", "fuzz", "module"], state="absent"),
            dir_task("migrate %d" % round_, path=str(new / ("build-%d" % round_)), kind="build",
                     migrate_from=str(scene.m / "flip" / "build"), migrate="clean"),
            dir_task("mkdir %d" % round_, path=str(scene.m / "flip" / ("made-%d" % round_)), mode="0700"),
        ]
    with hostile.Loop(scene.acc.mallory, FLIPPER, scene.m, base) as loop:
        results = run(playbook, tasks, "race-" + owner)
    assert "flips" in loop.output, loop.output
    unchanged(before, base)
    for name, result in results.items():
        if name != "_meta":
            no_traceback(result, name)


# =========================================================================== 2. locations the account chooses


@pytest.mark.parametrize("owner", ["root", "victim"])
def test_facts_skip_caches_the_go_env_file_points_at_but_the_account_does_not_own(playbook, scene, owner):
    """Class 2: the attacker's go env file names real caches of root or of gofleet-victim.

    GOCACHE/GOMODCACHE in ~/.config/go/env are the attacker's to write. The
    caches there are valid Go caches, so only their owner says they are not
    the attacker's: each item is `skipped` naming the owner, never scanned.
    """
    pw = scene.acc.root if owner == "root" else scene.acc.victim
    base, build, mod = victim_caches(scene, pw)
    set_goenv(scene, GOCACHE=str(build), GOMODCACHE=str(mod))
    before = hostile.snapshot(base)
    res = run(playbook, [facts_task("facts")], "facts-goenv-" + owner)["facts"]
    unchanged(before, base)
    for kind in ("build", "fuzz", "module"):
        assert_skipped_item(cache_item(res, kind), pw.pw_name)


@pytest.mark.parametrize("owner", ["root", "victim"])
def test_prune_skips_caches_the_go_env_file_points_at_but_the_account_does_not_own(playbook, scene, owner):
    """Class 2: go_cache_prune user=attacker, state absent and max_age, on caches its go env file points at
    (root's, or gofleet-victim's real caches). Nothing there may go; each is in `skipped`; no failure."""
    pw = scene.acc.root if owner == "root" else scene.acc.victim
    base, build, mod = victim_caches(scene, pw)
    set_goenv(scene, GOCACHE=str(build), GOMODCACHE=str(mod))
    before = hostile.snapshot(base)
    results = run(playbook, [
        prune_task("absent", kinds=["build", "fuzz", "module"], state="absent"),
        prune_task("age", kinds=["build", "fuzz", "module"], max_age="1d", keep_recent="0s", keep_versions=1),
    ], "prune-goenv-" + owner)
    unchanged(before, base)
    paths = {"build": build, "module": mod, "fuzz": build / "fuzz"}
    for name in ("absent", "age"):
        assert_prune_skipped(results[name], ["build", "fuzz", "module"], paths)


def test_default_locations_symlinked_to_victim_caches_are_skipped(playbook, scene):
    """Class 2: no go env file; the attacker makes ~/.cache/go-build and ~/go symlinks to gofleet-victim's
    caches, so Go's *default* locations lead there. Facts skip them, prune (state absent) leaves them."""
    base, build, mod = victim_caches(scene, scene.acc.victim)
    gopath = base / "gopath"
    gopath.mkdir()
    (gopath / "pkg").mkdir()
    os.rename(str(mod), str(gopath / "pkg" / "mod"))
    for path in (gopath, gopath / "pkg"):
        os.chown(str(path), scene.acc.victim.pw_uid, scene.acc.victim.pw_gid)
    home = Path(scene.acc.mallory.pw_dir)
    hostile.mkdirs_as(scene.acc.mallory, str(home / ".cache"))
    as_mallory(scene, os.symlink, str(build), str(home / ".cache" / "go-build"))
    as_mallory(scene, os.symlink, str(gopath), str(home / "go"))
    before = hostile.snapshot(base)
    results = run(playbook, [
        facts_task("facts"),
        prune_task("absent", kinds=["build", "fuzz", "module"], state="absent"),
    ], "default-symlinks")
    unchanged(before, base)
    for kind in ("build", "fuzz", "module"):
        item = cache_item(results["facts"], kind)
        assert item["source"] == "default", item
        assert_skipped_item(item, VICTIM)
    assert_prune_skipped(results["absent"], ["build", "fuzz", "module"])


@pytest.mark.parametrize("owner,method", [("victim", "clean"), ("victim", "move"), ("root", "clean")])
def test_cache_dir_migrate_from_a_cache_the_owner_does_not_own_is_left_alone(playbook, scene, owner, method):
    """Class 2: go_cache_dir owner=attacker, migrate_from=another account's (or root's) real cache.

    The go_environment role passes the account's old location (which the
    account chose) as migrate_from: `clean` would wipe someone else's cache,
    `move` would hand its files to the attacker. It must be left alone:
    action none, with a reason.
    """
    pw = scene.acc.root if owner == "root" else scene.acc.victim
    base, build, _mod = victim_caches(scene, pw)
    new = scene.dir / "new"
    new.mkdir()
    before = hostile.snapshot(base)
    res = run(playbook, [dir_task("dir", path=str(new / "build"), kind="build", migrate_from=str(build),
                                  migrate=method)], "migrate-%s-%s" % (owner, method))["dir"]
    unchanged(before, base)
    ok(res, "go_cache_dir")
    assert res["action"] == "none" and res.get("reason"), res
    leftovers = list((new / "build").rglob("*")) if (new / "build").exists() else []
    assert not leftovers, "files of %s's cache landed in the attacker's new cache: %s" % (pw.pw_name, leftovers[:5])


# =========================================================================== 3. hard links


@pytest.mark.parametrize("linked", ["list", "v1.0.0.lock"])
def test_hard_link_in_module_cache_to_root_file_is_never_written(playbook, scene, linked):
    """Class 3: the attacker replaces greet's @v/list (or v1.0.0.lock) by a hard link to a root-owned file.

    protected_hardlinks lets it link a file it may read and write (root's,
    mode 0666). A prune that removes greet versions then rewrites @v/list
    and takes v1.0.0.lock: writing, truncating or chowning through the link
    changes root's file (a chown gives it to the attacker).
    """
    _build, mod = attacker_caches(scene)
    victim = scene.dir / "root-file"
    victim.write_bytes(b"root's configuration\nkeep=me\n")
    os.chmod(str(victim), 0o666)
    link = mod / GREET_AT_V / linked

    def plant():
        if os.path.lexists(str(link)):
            os.unlink(str(link))
        os.link(str(victim), str(link))
    as_mallory(scene, plant)
    assert os.stat(str(victim)).st_nlink == 2
    before = hostile.snapshot(victim)
    res = run(playbook, [prune_task("prune", kinds=["module"], keep_versions=1, keep_recent="0s")],
              "hardlink-" + linked)["prune"]
    unchanged(before, victim)
    ok(res, "go_cache_prune")
    assert res["removed_entries"] >= 1 or reported(res, "greet"), \
        "the prune neither removed greet versions nor reported why: %s" % json.dumps(res)[:3000]


# =========================================================================== 4. bind mounts


def _mount_victim_tree(scene, kind, build, mod):
    """(victim directory, mount point inside the attacker's cache, relative name a report uses) for one kind."""
    victim = scene.dir / "mounted-victim"
    if kind == "hexdir":
        hexdir = Path(scene.lab.aged[0][0]).parent.name
        hostile.copy_tree(scene.lab.build / hexdir, victim, scene.acc.root)
        return victim, build / hexdir, hexdir
    if kind == "version":
        hostile.copy_tree(scene.lab.mod / "example.com" / "greet@v1.0.0", victim, scene.acc.root)
        return victim, mod / "example.com" / "greet@v1.0.0", "example.com/greet@v1.0.0"
    hostile.copy_tree(scene.lab.build / "fuzz", victim, scene.acc.root)
    return victim, build / "fuzz", "fuzz"


@pytest.mark.parametrize("kind", ["hexdir", "version", "fuzz"])
def test_bind_mount_inside_cache_is_never_entered(playbook, scene, kind):
    """Class 4: a root-owned tree bind-mounted (same file system, same st_dev) inside the attacker's cache:
    over a build cache hex directory, over a module version's extracted tree, over GOCACHE/fuzz.

    Only root can mount, so the mount is root's here, as a container
    runtime's or an admin's would be; what the attacker controls is the cache
    it lands in, which a prune (state absent) empties. st_dev alone does not
    see such a mount. Facts count it in mounts_skipped; prune reports it.
    """
    build, mod = attacker_caches(scene)
    victim, point, name = _mount_victim_tree(scene, kind, build, mod)
    needles = ('"%s"' % name, '/%s"' % name, str(point))
    hostile.bind_mount(victim, point)
    try:
        before = hostile.snapshot(victim)
        results = run(playbook, [
            facts_task("facts"),
            prune_task("absent", kinds=["build", "fuzz", "module"], state="absent"),
        ], "bind-" + kind)
        unchanged(before, victim)
        ok(results["absent"], "go_cache_prune")
        assert reported(results["absent"], *needles), \
            "prune did not report the mount point %s: %s" % (name, json.dumps(results["absent"])[:3000])
        if kind == "fuzz":
            item = cache_item(results["facts"], "fuzz")
            assert item.get("skipped") or item.get("mounts_skipped") or errors_total(item), item
        else:
            item = cache_item(results["facts"], "build" if kind == "hexdir" else "module")
            assert item.get("mounts_skipped", 0) >= 1, item
    finally:
        hostile.umount(point)


# =========================================================================== 5. special files


def _fifo(scene, path):
    as_mallory(scene, os.mkfifo, str(path))


def _replace_by_fifo(scene, path):
    def work():
        if os.path.lexists(str(path)):
            os.unlink(str(path))
        os.mkfifo(str(path))
    as_mallory(scene, work)


def test_fifo_as_build_cache_readme_does_not_hang(playbook, scene):
    """Class 5: the attacker replaces its build cache README (Go's marker, read to recognise a cache) by a FIFO.
    Opening it blocks forever without O_NONBLOCK. Facts and prune must finish and report it."""
    build, _mod = attacker_caches(scene)
    readme = build / "README"
    _replace_by_fifo(scene, readme)
    results = run(playbook, [
        facts_task("facts", kinds=["build"]),
        prune_task("prune", kinds=["build"], state="absent"),
    ], "fifo-readme", fifos=[readme])
    item = cache_item(results["facts"], "build")
    assert item["valid"] is False or errors_total(item) or item.get("skipped"), item
    no_traceback(results["prune"], "prune")
    assert results["prune"].get("failed") or reported(results["prune"], "README", str(build)), results["prune"]


@pytest.mark.parametrize("name", ["list", "v1.0.0.lock"])
def test_fifo_in_module_at_v_does_not_hang(playbook, scene, name):
    """Class 5: greet's @v/list (rewritten after a removal) or v1.0.0.lock (flock'ed before it) is a FIFO.
    A blocking open or read hangs root's prune. It must finish and report the file."""
    _build, mod = attacker_caches(scene)
    fifo = mod / GREET_AT_V / name
    _replace_by_fifo(scene, fifo)
    results = run(playbook, [
        facts_task("facts", kinds=["module"]),
        prune_task("prune", kinds=["module"], keep_versions=1, keep_recent="0s"),
    ], "fifo-" + name, fifos=[fifo])
    go_cache(results["facts"])
    ok(results["prune"], "go_cache_prune")
    assert reported(results["prune"], name if name == "list" else "lock"), \
        "the FIFO %s was not reported: %s" % (name, json.dumps(results["prune"])[:3000])
    assert stat.S_ISFIFO(os.lstat(str(fifo)).st_mode)


@pytest.mark.parametrize("special", ["fifo", "dev-zero"])
def test_special_go_env_file_is_reported_not_read(playbook, scene, special):
    """Class 5: the attacker's go env file is a FIFO, or a symlink to /dev/zero (an endless file).
    Facts and prune (which locate the caches through it) must finish; facts report it in
    accounts[user].errors."""
    hostile.mkdirs_as(scene.acc.mallory, str(scene.goenv.parent))
    if special == "fifo":
        _fifo(scene, scene.goenv)
    else:
        as_mallory(scene, os.symlink, "/dev/zero", str(scene.goenv))
    results = run(playbook, [
        facts_task("facts"),
        prune_task("prune", kinds=["build", "module"], max_age="30d"),
    ], "goenv-" + special, fifos=[scene.goenv] if special == "fifo" else ())
    account = go_cache(results["facts"])["accounts"][MALLORY]
    assert account.get("errors"), "the unreadable go env file is not reported: %s" % account
    no_traceback(results["prune"], "prune")


@pytest.mark.parametrize("special", ["fifo", "dev-zero"])
def test_go_env_module_on_special_file_fails_cleanly(playbook, scene, special):
    """Class 5: go_env user=attacker when its go env file is a FIFO or a symlink to /dev/zero: a clean
    failure with a message, no hang, the special file left as it is."""
    hostile.mkdirs_as(scene.acc.mallory, str(scene.goenv.parent))
    if special == "fifo":
        _fifo(scene, scene.goenv)
    else:
        as_mallory(scene, os.symlink, "/dev/zero", str(scene.goenv))
    before = hostile.snapshot(scene.goenv.parent)
    res = run(playbook, [{"name": "env", GO_ENV: {"user": MALLORY, "vars": {"GOPROXY": "off"}}}],
              "go-env-" + special, fifos=[scene.goenv] if special == "fifo" else ())["env"]
    failed_naming(res, str(scene.goenv), "/dev/zero", "go env file", "regular file")
    unchanged(before, scene.goenv.parent)


def test_fifo_go_sum_under_keep_referenced_does_not_hang(playbook, scene):
    """Class 5: keep_referenced names a checkout directory the attacker writes; its go.sum is a FIFO.
    Collecting the references must not block; the problem is reported (a failure naming it, or an error)."""
    attacker_caches(scene)
    checkout = scene.m / "checkout"
    hostile.write_as(scene.acc.mallory, str(checkout / "go.mod"), "module example.com/x\n\ngo 1.22\n")
    _fifo(scene, checkout / "go.sum")
    res = run(playbook, [prune_task("prune", kinds=["module"], keep_versions=1, keep_recent="0s",
                                    keep_referenced=[str(checkout)])],
              "fifo-go-sum", fifos=[checkout / "go.sum"])["prune"]
    no_traceback(res, "prune")
    assert reported(res, "go.sum", "keep_referenced"), \
        "the FIFO go.sum was not reported: %s" % json.dumps(res)[:3000]


SECRET = "s3cr3t-token-2f9a7c"


def test_go_env_file_linked_to_root_only_file_does_not_leak(playbook, scene):
    """Class 5: the attacker's go env file is a symlink to a root-only (0600) file holding a secret.
    Root reading it on the account's behalf would publish the secret in the facts (or in go_env's diff)."""
    secret = scene.dir / "root-only.env"
    secret.write_text("GOPROXY=https://ci:%s@proxy.corp.example.com\nGOFLAGS=-ldflags=-X=main.key=%s\n"
                      % (SECRET, SECRET))
    os.chmod(str(secret), 0o600)
    hostile.mkdirs_as(scene.acc.mallory, str(scene.goenv.parent))
    as_mallory(scene, os.symlink, str(secret), str(scene.goenv))
    before = hostile.snapshot(secret)
    results = run(playbook, [
        facts_task("facts"),
        {"name": "env", GO_ENV: {"user": MALLORY, "vars": {"GOPRIVATE": "example.com"}}, "diff": True},
    ], "goenv-secret")
    unchanged(before, secret)
    cache = go_cache(results["facts"])
    assert SECRET not in json.dumps(results), "the root-only file's content leaked into a result"
    assert cache["accounts"][MALLORY].get("errors"), cache["accounts"][MALLORY]
    failed_naming(results["env"], "ermission denied", "not permitted")


@pytest.mark.parametrize("target", ["root-0644", "root-0600", "sticky-dir"])
def test_go_env_through_symlink_to_unwritable_file_is_refused(playbook, scene, target):
    """Class 5/1: go_env user=attacker writes the go env file, which the attacker made a symlink to a
    root-owned file (0644, 0600, or 0644 in a world-writable sticky directory where the attacker may create
    files). Permission denied; the target unchanged, nothing left beside it."""
    directory = scene.dir / "etc"
    directory.mkdir(mode=0o1777 if target == "sticky-dir" else 0o755)
    os.chmod(str(directory), 0o1777 if target == "sticky-dir" else 0o755)
    file = directory / "go.env"
    file.write_text("GOPROXY=https://proxy.corp.example.com\n")
    os.chmod(str(file), 0o600 if target == "root-0600" else 0o644)
    hostile.mkdirs_as(scene.acc.mallory, str(scene.goenv.parent))
    as_mallory(scene, os.symlink, str(file), str(scene.goenv))
    before, listing = hostile.snapshot(file), sorted(os.listdir(str(directory)))
    res = run(playbook, [{"name": "env", GO_ENV: {"user": MALLORY, "vars": {"GOPROXY": "https://evil.example"}}}],
              "go-env-link-" + target)["env"]
    unchanged(before, file)
    # (In the sticky directory the account may itself create and remove a temporary file: only leftovers count.)
    assert sorted(os.listdir(str(directory))) == listing, "files left in %s" % directory
    failed_naming(res, "ermission denied", "not permitted")


# =========================================================================== 9. robustness


DEPTH = 2000


def _deep_caches(scene):
    """The attacker's caches with a 2000-level tree in each kind: an output directory (-d) of the build cache,
    cache/vcs of the module cache, and the fuzz corpus."""
    build, mod = attacker_caches(scene)
    pw = scene.acc.mallory
    deep_d = build / "ff" / ("f" * 64 + "-d")
    vcs = mod / "cache" / "vcs" / ("0" * 64)
    fuzz = build / "fuzz" / "example.com" / "deep" / "FuzzDeep"
    for directory in (deep_d, vcs, fuzz):
        hostile.mkdirs_as(pw, str(directory))
        hostile.make_deep_as(pw, str(directory), "d", DEPTH)
    return build, mod


def _alive_entries(build):
    return sum(1 for _a, d in _action_files(build) if d.exists())


def test_deep_tree_facts_finish_and_report(playbook, scene):
    """Class 9: a 2000-level-deep directory tree in each of the attacker's caches made the recursive scan
    raise RecursionError. Facts must finish, report an error in each cache, and still count the rest."""
    build, mod = _deep_caches(scene)
    alive = _alive_entries(build)
    ziphashes = len(list((mod / "cache" / "download").rglob("*.ziphash")))
    res = run(playbook, [facts_task("facts")], "deep-facts")["facts"]
    items = {kind: cache_item(res, kind) for kind in ("build", "module", "fuzz")}
    for kind, item in items.items():
        assert not item.get("skipped"), item
        assert errors_total(item) >= 1, "%s: no error about the deep tree: %s" % (kind, item)
    assert items["build"]["entries"] >= alive, items["build"]
    assert items["module"]["complete"] >= ziphashes, items["module"]
    assert items["fuzz"]["files"] >= 2, items["fuzz"]


def test_deep_tree_prune_finishes_and_handles_the_rest(playbook, scene):
    """Class 9: the same deep trees under a prune by max_age: no crash, an error reported, and the 40-day-old
    build entries and corpus file (outside the deep trees) are removed all the same."""
    build, _mod = _deep_caches(scene)
    res = run(playbook, [prune_task("prune", kinds=["build", "module", "fuzz"], max_age="30d", keep_recent="0s")],
              "deep-prune")["prune"]
    ok(res, "go_cache_prune")
    assert errors_total(res) >= 1, "no error about the deep trees: %s" % json.dumps(res)[:3000]
    aged = [path.replace(str(scene.lab.build), str(build)) for pair in scene.lab.aged for path in pair]
    left = [path for path in aged if os.path.lexists(path)]
    assert not left, "old entries outside the deep tree stayed: %s" % left
    assert not (build / "fuzz" / "example.com" / "consumer" / "FuzzName" / ("%064x" % 1)).exists()


BAD = b"\xff\xfe"


def test_non_utf8_names_prune_reports_them_escaped(playbook, scene):
    """Class 9: a fuzz corpus file whose name is not UTF-8 (b'corpus-\\xff\\xfe'), 40 days old. The prune
    removed it and then failed the whole task serialising the name. It must succeed and name it with
    backslash escapes."""
    build, _mod = attacker_caches(scene)
    corpus = os.path.join(str(build), "fuzz", "example.com", "consumer", "FuzzName").encode()
    bad = os.path.join(corpus, b"corpus-" + BAD)
    hostile.as_user(scene.acc.mallory, hostile.write_file, bad, b"go test fuzz v1\n[]byte(\"x\")\n")
    os.utime(bad, (OLD, OLD))
    res = run(playbook, [prune_task("prune", kinds=["fuzz"], max_age="30d", keep_recent="0s")],
              "non-utf8-prune")["prune"]
    ok(res, "go_cache_prune")
    assert not os.path.lexists(bad)
    assert any("\\xff" in name for name in res["sample"]), res["sample"]


def test_non_utf8_names_facts_do_not_fail(playbook, scene):
    """Class 9: non-UTF-8 names in all three caches (a module path, a file in a build hex dir, a corpus file).
    Facts must not fail; a module named with such bytes appears only with backslash escapes."""
    build, mod = attacker_caches(scene)
    pw = scene.acc.mallory
    src_at_v = mod / GREET_AT_V
    bad_module = b"bad" + BAD

    def plant():
        at_v = os.path.join(str(mod).encode(), b"cache/download/example.com", bad_module, b"@v")
        os.makedirs(at_v)
        for suffix in (".info", ".mod", ".zip", ".ziphash"):
            with open(str(src_at_v / ("v1.0.0" + suffix)), "rb") as src:
                hostile.write_file(os.path.join(at_v, b"v1.0.0" + suffix.encode()), src.read())
        tree = os.path.join(str(mod).encode(), b"example.com", bad_module + b"@v1.0.0")
        os.makedirs(tree)
        hostile.write_file(os.path.join(tree, b"go.mod"), b"module example.com/bad\n")
        hostile.write_file(os.path.join(str(build).encode(), b"ab", b"junk-" + BAD), b"x")
        hostile.write_file(os.path.join(str(build).encode(), b"fuzz", b"corpus-" + BAD), b"x")
    hostile.as_user(pw, plant)
    res = run(playbook, [facts_task("facts", top=50)], "non-utf8-facts")["facts"]
    module = cache_item(res, "module")
    for top in module.get("top_modules") or []:
        if "bad" in top["module"]:
            assert "\\xff" in top["module"] and "\udcff" not in top["module"], top


HUGE_CASES = [
    ("prune", "max_age", HUGE), ("prune", "max_size", HUGE), ("prune", "keep_versions", int(HUGE)),
    ("prune", "busy_timeout", HUGE), ("facts", "top", int(HUGE)), ("facts", "age_buckets", [HUGE]),
]


@pytest.fixture(scope="module")
def huge_results(lab, accounts, playbook):
    """One playbook: every option of HUGE_CASES with a 300-digit number, on the attacker's caches."""
    directory = lab.root / "huge"
    directory.mkdir()
    m = directory / "m"
    m.mkdir()
    os.chown(str(m), accounts.mallory.pw_uid, accounts.mallory.pw_gid)
    _reset_home(accounts.mallory)
    scene_ = SimpleNamespace(dir=directory, m=m, lab=lab, acc=accounts,
                             goenv=Path(accounts.mallory.pw_dir) / ".config" / "go" / "env")
    try:
        attacker_caches(scene_)
        before = hostile.snapshot(m)
        tasks = []
        for module, option, value in HUGE_CASES:
            if module == "prune":
                tasks.append(prune_task(option, kinds=["build", "module", "fuzz"], keep_recent="0s",
                                        **{option: value}))
            else:
                tasks.append(facts_task(option, **{option: value}))
        results = run(playbook, tasks, "huge-numbers")
        diff = hostile.snapshot_diff(before, hostile.snapshot(m))
        yield results, diff
    finally:
        _reset_home(accounts.mallory)
        hostile.remove_tree(directory)


@pytest.mark.parametrize("module,option,value", HUGE_CASES, ids=[case[1] for case in HUGE_CASES])
def test_300_digit_numbers_fail_cleanly_and_change_nothing(huge_results, module, option, value):
    """Class 9: a 300-digit number for max_age, max_size, keep_versions, busy_timeout (prune), top or
    age_buckets (facts) gave tracebacks (OverflowError) or silently meant "forever". Each must fail with a
    message naming the option and the value, and nothing in the cache may change."""
    results, diff = huge_results
    res = results[option]
    failed_naming(res, option)
    assert HUGE[:30] in json.dumps(res.get("msg", "")) + json.dumps(res.get("value")), \
        "the value is not named: %s" % res.get("msg")
    assert not diff, "the cache changed:\n%s" % "\n".join(diff)


RENAMER = r"""
import os, shutil, sys
build, mod, stop = sys.argv[1], sys.argv[2], sys.argv[-1]
hexes = sorted(n for n in os.listdir(build) if len(n) == 2)[::4]
pairs = [(os.path.join(build, h), os.path.join(build, h + '.away')) for h in hexes]
pairs.append((os.path.join(mod, 'example.com', 'greet@v1.3.0'), os.path.join(mod, 'example.com', 'moved@v1.3.0')))
pairs.append((os.path.join(mod, 'cache', 'download', 'example.com', 'greet', '@v'),
              os.path.join(mod, 'cache', 'download', 'example.com', 'greet', '@v.away')))
pairs.append((os.path.join(build, 'fuzz', 'example.com'), os.path.join(build, 'fuzz', 'away')))
churn = os.path.join(build, 'fuzz', 'churn')
# Directories where short-lived files appear and vanish between a listing and the stat of its entries.
flicker = [build, mod, os.path.join(mod, 'example.com'), os.path.join(mod, 'cache', 'download', 'example.com'),
           os.path.join(build, 'fuzz')]
count = 0
while not os.path.exists(stop):
    for a, b in pairs:
        for src, dst in ((a, b), (b, a)):
            try:
                os.rename(src, dst)
            except OSError:
                pass
    for directory in flicker:
        names = [os.path.join(directory, 'flicker-%d' % i) for i in range(10)]
        for name in names:
            try:
                os.mkdir(name)
            except OSError:
                pass
        for name in names:
            try:
                os.rmdir(name)
            except OSError:
                pass
    try:
        os.makedirs(os.path.join(churn, 'x', 'y'), exist_ok=True)
        for i in range(20):
            with open(os.path.join(churn, 'x', 'y', str(i)), 'w') as handle:
                handle.write('x')
        shutil.rmtree(churn)
    except OSError:
        pass
    count += 1
print('rounds', count)
"""


def test_directories_renamed_during_scans_never_crash(playbook, scene):
    """Class 9: while facts and prune (check mode, then real, max_age) run five times, the attacker keeps
    renaming directories of its caches back and forth and making and removing directories and a tree. A vanished directory
    gave an unhandled ENOENT; every task must finish without a traceback or a failure."""
    build, mod = attacker_caches(scene)
    tasks = []
    for round_ in range(5):
        tasks += [facts_task("facts %d" % round_),
                  prune_task("check %d" % round_, check=True, kinds=["build", "module", "fuzz"], max_age="30d",
                             keep_recent="0s"),
                  prune_task("prune %d" % round_, kinds=["build", "module", "fuzz"], max_age="30d",
                             keep_recent="0s")]
    with hostile.Loop(scene.acc.mallory, RENAMER, build, mod) as loop:
        results = run(playbook, tasks, "renames")
    assert "rounds" in loop.output, loop.output
    for name, result in results.items():
        if name != "_meta":
            ok(result, name)


def test_unreadable_at_v_never_removes_versions(playbook, scene):
    """Class 9: the attacker makes greet's @v directory unreadable (chmod 000). Acting as the account, the
    scan cannot see .ziphash files, so complete versions look like broken downloads, which
    remove_incomplete removes. Their extracted trees must stay."""
    _build, mod = attacker_caches(scene)
    trees = [mod / "example.com" / ("greet@" + v) for v in ("v1.0.0", "v1.2.0", "v1.3.0")]
    as_mallory(scene, os.chmod, str(mod / GREET_AT_V), 0)
    before = {str(t): hostile.snapshot(t) for t in trees}
    res = run(playbook, [prune_task("prune", kinds=["module"], keep_recent="0s")], "unreadable-at-v")["prune"]
    no_traceback(res, "prune")
    for tree in trees:
        unchanged(before[str(tree)], tree)


def test_state_absent_reports_changed_when_it_removed_files_and_check_mode_agrees(playbook, scene):
    """Class 9: caches holding only files that are not units (build: log.txt, testexpire.txt, a stray
    directory; module: cache/vcs and sumdb data). state absent removed them and said changed: false. It must
    say changed: true whenever anything went, and check mode must report what the real run does."""
    build, mod = scene.m / "build", scene.m / "mod"
    pw = scene.acc.mallory

    def plant():
        os.makedirs(str(build / "tmp-stray"))
        with open(str(build / "README"), "wb") as handle:
            handle.write(hostile.GO_MARKER + b"\nSee golang.org to learn more about Go.\n")
        for name, data in (("log.txt", b"old log\n" * 100), ("testexpire.txt", b"1700000000000000000\n"),
                           ("tmp-stray/file", b"stray\n" * 50)):
            with open(str(build / name), "wb") as handle:
                handle.write(data)
        for rel in ("cache/vcs/" + "1" * 64 + "/objects/pack", "cache/download/sumdb/sum.golang.org/lookup"):
            os.makedirs(str(mod / rel))
        with open(str(mod / "cache/vcs" / ("1" * 64) / "objects/pack/pack-1.pack"), "wb") as handle:
            handle.write(b"P" * 4096)
        with open(str(mod / "cache/download/sumdb/sum.golang.org/lookup/example.com@v1.0.0"), "wb") as handle:
            handle.write(b"sum\n")
    hostile.as_user(pw, plant)
    set_goenv(scene, GOCACHE=str(build), GOMODCACHE=str(mod))
    before = {"build": hostile.snapshot(build), "module": hostile.snapshot(mod)}
    tasks = []
    for kind in ("build", "module"):
        tasks += [prune_task("check " + kind, check=True, kinds=[kind], state="absent"),
                  prune_task("real " + kind, kinds=[kind], state="absent")]
    results = run(playbook, tasks, "absent-changed")
    for kind, root in (("build", build), ("module", mod)):
        check, real = ok(results["check " + kind], kind), ok(results["real " + kind], kind)
        gone = sorted(set(before[kind]) - set(hostile.snapshot(root)))
        if gone:
            assert real["changed"] is True, "%s: removed %s but changed is false" % (kind, gone[:5])
        for key in ("changed", "removed_entries", "removed_bytes"):
            assert check[key] == real[key], "%s: check mode %s=%r, real run %r" % (kind, key, check[key], real[key])


def test_migration_hitting_enospc_leaves_no_trusted_incomplete_version(playbook, scene):
    """Class 9: go_cache_dir moves the attacker's module cache to a tmpfs too small for it (3 MiB for ~4.3 MB:
    one of the toolchain's two 2 MiB files cannot be copied). Every .ziphash copied last regardless made Go
    trust versions with missing files. In the destination, a version with a .ziphash must have all its files;
    the old cache stays as it was."""
    _build, mod = attacker_caches(scene, goenv=False)
    small = scene.dir / "small"
    small.mkdir()
    hostile.tmpfs_mount(small, 3 << 20)
    try:
        before = hostile.snapshot(mod)
        res = run(playbook, [dir_task("move", path=str(small / "mod"), kind="module", migrate_from=str(mod))],
                  "enospc")["move"]
        no_traceback(res, "go_cache_dir")
        assert res.get("failed") or errors_total(res) >= 1, "ENOSPC not reported: %s" % json.dumps(res)[:3000]
        unchanged(before, mod)
        dest = small / "mod"
        trusted_but_incomplete = []
        for ziphash in (dest / "cache" / "download").rglob("*.ziphash") if dest.exists() else []:
            at_v = ziphash.parent
            rel_module = at_v.parent.relative_to(dest / "cache" / "download")
            version = ziphash.name[:-len(".ziphash")]
            src_tree = mod / ("%s@%s" % (rel_module, version))
            wanted = [Path(str(at_v).replace(str(dest), str(mod))) / (version + s) for s in (".zip", ".mod", ".info")]
            wanted += [p for p in src_tree.rglob("*") if p.is_file()] if src_tree.is_dir() else []
            for src in wanted:
                if not src.exists():
                    continue
                copied = Path(str(src).replace(str(mod), str(dest)))
                if not copied.is_file() or copied.stat().st_size != src.stat().st_size:
                    trusted_but_incomplete.append("%s@%s: %s" % (rel_module, version, copied))
        assert not trusted_but_incomplete, "versions with a .ziphash but missing files: %s" % trusted_but_incomplete
    finally:
        hostile.umount(small)


# =========================================================================== found in an attacker's review
# Engine-level where the attack is a race that a playbook cannot time: the engine runs as root in a child of
# this test (ENGINE_SCRIPT), and the attacker acts between its steps with only its own rights.

PYPATH = str(Path(__file__).resolve().parents[2] / ".cache" / "pypath")
RENAME_EXCHANGE = 2


def _exchange(a, b):
    """renameat2(RENAME_EXCHANGE): swap two names atomically (what a racing account does)."""
    import ctypes  # pylint: disable=import-outside-toplevel
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.renameat2(-100, str(a).encode(), -100, str(b).encode(), RENAME_EXCHANGE) != 0:
        raise OSError(ctypes.get_errno(), "renameat2", str(a))


def _engine():
    import sys  # pylint: disable=import-outside-toplevel
    if PYPATH not in sys.path:
        sys.path.insert(0, PYPATH)
    from ansible_collections.gofleet.cache.plugins.module_utils import (  # pylint: disable=import-outside-toplevel
        _agent, _cachedir, _prune, _users)
    return SimpleNamespace(agent=_agent, cachedir=_cachedir, prune=_prune, users=_users)


def test_settle_acts_on_the_directory_it_holds_never_a_name_swapped_since(scene):
    """Class 1: in a directory other accounts may write (not sticky), the attacker swaps its new cache
    directory with root's sibling between go_cache_dir's walk and its chown. Root must chown the directory it
    walked to (the attacker's), never root's directory that now has the name."""
    engine = _engine()
    caches = scene.dir / "caches"
    caches.mkdir()
    os.chmod(str(caches), 0o777)
    shared = caches / "shared"
    shared.mkdir(mode=0o750)
    (shared / "root-file").write_text("root's\n")
    mine = caches / "mine"
    as_mallory(scene, os.mkdir, str(mine), 0o755)
    before = hostile.snapshot(shared)
    mallory = scene.acc.mallory
    prepared = engine.cachedir.prepare(str(mine), mallory)
    try:
        as_mallory(scene, _exchange, mine, shared)  # now "mine" is root's directory
        engine.cachedir.settle(prepared, mallory, mallory.pw_gid, 0o700)
    finally:
        prepared.close()
    unchanged(before, mine)  # root's directory, under the swapped name: owner, mode, content as they were
    st = os.stat(str(shared))
    assert (st.st_uid, stat.S_IMODE(st.st_mode)) == (mallory.pw_uid, 0o700)


def test_root_never_renames_out_of_a_directory_the_account_may_change(playbook, scene):
    """Class 1: root renaming the old cache by name out of the attacker's own directory can be made to move
    a root-owned directory planted there instead. On one file system, with a new place only root may write,
    the move must then be a copy made as the account, and root's planted directory must stay root's."""
    build, _mod = attacker_caches(scene, goenv=False)
    planted = scene.m / "rootdir"
    planted.mkdir(mode=0o700)
    (planted / "secret").write_text("root only\n")
    os.chmod(str(planted / "secret"), 0o600)
    before = hostile.snapshot(planted)
    new = scene.dir / "new"
    new.mkdir()
    res = run(playbook, [dir_task("move", path=str(new / "build"), kind="build", migrate_from=str(build))],
              "no-root-rename")["move"]
    ok(res, "go_cache_dir")
    assert res["action"] == "copy" and res["files"] > 0, res
    unchanged(before, planted)
    assert os.stat(str(new / "build")).st_uid == scene.acc.mallory.pw_uid


def test_go_env_query_never_outlives_its_timeout(scene, go_bin):
    """Class 5: the attacker's go env file is a FIFO (go blocks opening it) and the attacker keeps go's stdout
    pipe open through /proc. Root's query must return after its timeout instead of waiting for that pipe."""
    engine = _engine()
    fifo = scene.dir / "m" / "env"
    as_mallory(scene, os.mkfifo, str(fifo), 0o644)
    mallory = scene.acc.mallory
    env = {"PATH": "/usr/bin:/bin", "HOME": mallory.pw_dir, "GOENV": str(fifo), "GOTOOLCHAIN": "local"}
    holder = hostile.Loop(mallory, r"""
import glob, os, sys, time
stop = sys.argv[-1]
held = []
while not os.path.exists(stop):
    for fd in glob.glob('/proc/[0-9]*/fd/1'):
        pid = fd.split('/')[2]
        try:
            if open('/proc/%s/comm' % pid).read().strip() == 'go' and pid not in [h[0] for h in held]:
                held.append((pid, os.open(fd, os.O_WRONLY)))
        except OSError:
            pass
    time.sleep(0.05)
""")
    with holder:
        started = time.monotonic()
        rc, _out, err = engine.users.run_as(mallory, [str(go_bin), "env", "-json", "GOCACHE"], env, timeout=3)
        elapsed = time.monotonic() - started
    assert rc == -1 and "timed out" in err
    assert elapsed < 15, "the query took %.1f s" % elapsed


def test_an_account_cannot_hold_another_jobs_lock(scene, accounts):
    """Class 6: the attacker names its cache with a path whose text normalises to the victim's cache
    (`~/l/../../../home/victim/...`, l a link into its own home) and keeps its own agent job waiting with the
    lock held (a process of its own named `go`). The victim's job must prune all the same."""
    engine = _engine()
    victim, mallory = accounts.victim, accounts.mallory
    victim_home = Path(victim.pw_dir)
    v_build = victim_home / ".cache" / "go-build"
    hostile.remove_tree(str(victim_home / ".cache"))
    hostile.mkdirs_as(victim, str(victim_home / ".cache"))
    hostile.copy_tree(scene.lab.build, v_build, victim)
    home = Path(mallory.pw_dir)
    for leftover in (home / "d", home / "home"):
        hostile.remove_tree(str(leftover))
    if os.path.lexists(str(home / "l")):
        os.unlink(str(home / "l"))
    depth = len(victim_home.parts) - 1  # components of the victim's home below /
    chain = home / "d"
    hostile.mkdirs_as(mallory, str(chain / "/".join(["x"] * depth)))
    as_mallory(scene, os.symlink, str(chain / "/".join(["x"] * depth)), str(home / "l"))
    text = str(home / "l") + "/.." * (depth + 1) + str(v_build)
    assert os.path.normpath(text) == str(v_build)
    real = home / str(v_build).lstrip("/")  # where the text really leads: the attacker's own directory
    hostile.mkdirs_as(mallory, str(real.parent))
    hostile.copy_tree(scene.lab.build, real, mallory)
    set_goenv(scene, GOCACHE=text)
    sleeper = scene.dir / "go"  # comm "go": the attacker's job sees a running build and waits, lock held
    sleeper.write_bytes(Path("/bin/sleep").read_bytes())
    os.chmod(str(sleeper), 0o755)
    config = scene.dir / "agent.json"
    config.write_text(json.dumps({"max_age": "30d", "if_busy": "wait", "busy_timeout": "5m", "go": "none",
                                  "lock_dir": str(scene.dir / "locks")}))
    script = "import sys; sys.path.insert(0, %r); from ansible_collections.gofleet.cache.plugins.module_utils " \
             "import _agent; sys.exit(_agent.main(sys.argv[1:], use_syslog=False, idle=False))" % PYPATH
    go = hostile.spawn_as(mallory, [str(sleeper), "120"])
    attacker_job = None
    try:
        attacker_job = hostile.spawn([os.sys.executable, "-c", script, "--config", str(config), "--user", MALLORY])
        time.sleep(3)
        assert attacker_job.poll() is None, "the attacker's job did not wait"
        victim_job = hostile.run_cmd([os.sys.executable, "-c", script, "--config", str(config), "--user", VICTIM,
                                      "--dry-run"], timeout=120)
        assert "held" not in victim_job.stdout, victim_job.stdout
        assert victim_job.returncode == 0, (victim_job.stdout, victim_job.stderr)
        assert "gofleet-victim build %s" % v_build in victim_job.stdout
    finally:
        go.kill()
        go.wait()
        if attacker_job is not None:
            attacker_job.kill()
            attacker_job.wait()
        hostile.remove_tree(str(victim_home / ".cache"))
        for leftover in (home / "d", home / "home"):
            hostile.remove_tree(str(leftover))
        if os.path.lexists(str(home / "l")):
            os.unlink(str(home / "l"))


def test_keep_referenced_reads_as_the_cache_owner(playbook, scene, accounts):
    """Class 5: a go.sum the attacker cannot read (the victim's private checkout) must not protect anything
    in the attacker's cache (that would tell it, version by version, what the file holds); one it can read
    still does."""
    _build, mod = attacker_caches(scene)
    checkouts = scene.dir / "checkouts"
    private = checkouts / "private"
    public = checkouts / "public"
    for directory in (private, public):
        directory.mkdir(parents=True)
    (private / "go.sum").write_text("example.com/greet v1.2.0 h1:x=\n")
    os.chown(str(private), accounts.victim.pw_uid, accounts.victim.pw_gid)
    os.chown(str(private / "go.sum"), accounts.victim.pw_uid, accounts.victim.pw_gid)
    os.chmod(str(private), 0o700)
    (public / "go.sum").write_text("example.com/greet v1.0.0 h1:x=\n")
    res = run(playbook, [prune_task("prune", kinds=["module"], keep_versions=1, keep_recent="0s",
                                    keep_referenced=[str(checkouts)])], "refs-as-owner")["prune"]
    ok(res, "go_cache_prune")
    greet = mod / "example.com"
    assert (greet / "greet@v1.0.0").is_dir(), "a readable reference stopped protecting"
    assert not (greet / "greet@v1.2.0").exists(), "a reference the owner cannot read protected a version"
    assert reported(res, str(private)), json.dumps(res)[:3000]


def test_locks_held_by_another_account_cost_a_bounded_wait(scene):
    """Class 6: an account holds flocks on the world-readable .lock files of a root-owned module cache; each
    version used to cost seconds of waiting, one after the other. The waits of a run are bounded as a whole
    (here patched down to 2 s), and the versions stay as `locked`."""
    mod = scene.dir / "shared-mod"
    hostile.copy_tree(scene.lab.mod, mod, scene.acc.root)
    versions = sorted((mod / "cache" / "download").rglob("v*.ziphash"))
    locks = [str(v)[:-len(".ziphash")] + ".lock" for v in versions]
    for lock in locks:
        Path(lock).touch()
        os.chmod(lock, 0o644)
    holder = hostile.Loop(scene.acc.mallory, r"""
import fcntl, os, sys, time
stop, paths = sys.argv[-1], sys.argv[1:-1]
fds = [os.open(p, os.O_RDONLY) for p in paths]
for fd in fds:
    fcntl.flock(fd, fcntl.LOCK_SH)
while not os.path.exists(stop):
    time.sleep(0.05)
""", *locks)
    script = ("import json, sys, time; sys.path.insert(0, %r); "
              "from ansible_collections.gofleet.cache.plugins.module_utils import _prune; "
              "_prune.LOCK_BUDGET_S = 2.0; _prune.LOCK_WAIT_S = 1.5; t = time.monotonic(); "
              "r = _prune.prune_cache(%r, 'module', _prune.Policy(state='absent', if_busy='proceed')); "
              "print(json.dumps([time.monotonic() - t, r['kept']]))" % (PYPATH, str(mod)))
    with holder:
        time.sleep(1)
        done = hostile.run_cmd([os.sys.executable, "-c", script], timeout=120)
    assert done.returncode == 0, done.stderr
    elapsed, kept = json.loads(done.stdout.splitlines()[-1])
    assert kept.get("locked") == len(versions) and len(versions) >= 3, kept
    assert elapsed < 2.0 + len(versions) * 0.5, elapsed
