"""gofleet.cache.go_cache_dir on real caches made by Go: prepare, move, resume, clean.

The proof of a move is Go's: as the owner, with GOPROXY=off, the project still
builds from the new location without compiling the standard library again, and
`go mod verify` passes.  The same file system gives a rename, /dev/shm (tmpfs)
a copy across file systems.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from tests.support import gorun

MODULE = "gofleet.cache.go_cache_dir"
CI = "gofleet-ci"
REPO_ROOT = Path(__file__).resolve().parents[2]
OTHER_FS = Path("/dev/shm")


def files_of(root):
    """{relative path: (size, mtime_ns, mode)} of every file and link below root."""
    found = {}
    for dirpath, dirnames, filenames in os.walk(str(root)):
        for name in filenames + [d for d in dirnames if os.path.islink(os.path.join(dirpath, d))]:
            path = os.path.join(dirpath, name)
            st = os.lstat(path)
            found[os.path.relpath(path, str(root))] = (st.st_size, st.st_mtime_ns, st.st_mode)
    return found


def cp_a(src, dest):
    """cp -a, then the source's access times put back from the copy.

    Reading a file refreshes its atime on relatime mounts, and the source is the
    session's shared cache whose module ages other tests check by atime.
    """
    copy_root = Path(dest) / Path(src).name if Path(dest).is_dir() else Path(dest)
    subprocess.run(["cp", "-a", str(src), str(dest)], check=True)
    for dirpath, dirnames, filenames in os.walk(str(copy_root)):
        for name in dirnames + filenames:
            copied = os.path.join(dirpath, name)
            st = os.lstat(copied)
            original = os.path.join(str(src), os.path.relpath(copied, str(copy_root)))
            os.utime(original, ns=(st.st_atime_ns, st.st_mtime_ns), follow_symlinks=False)
    st = os.lstat(str(copy_root))
    os.utime(str(src), ns=(st.st_atime_ns, st.st_mtime_ns))


@pytest.fixture(scope="module")
def places(go_caches):
    """Scratch directories on the root file system and on a tmpfs, for copies of ci's real caches."""
    if os.stat("/var/tmp").st_dev == os.stat(str(OTHER_FS)).st_dev:
        pytest.skip("/dev/shm is on the same file system as /var/tmp")
    roots = [Path(tempfile.mkdtemp(prefix="gofleet-dir-it-", dir="/var/tmp")),
             Path(tempfile.mkdtemp(prefix="gofleet-dir-it-", dir=str(OTHER_FS)))]
    for root in roots:
        os.chmod(str(root), 0o755)
    yield roots
    for root in roots:
        subprocess.run(["chmod", "-R", "u+w", str(root)], check=False)
        shutil.rmtree(str(root), ignore_errors=True)


def old_caches(go_caches, base, name):
    """cp -a of ci's real caches: (gocache, gomodcache) under base/name."""
    directory = base / name
    directory.mkdir()
    cp_a(go_caches.gocache, directory / "build")
    cp_a(go_caches.gomodcache, directory / "mod")
    return directory / "build", directory / "mod"


def builds_offline(go_bin, go_caches, gocache, gomodcache):
    """As ci: the project builds with GOPROXY=off, without compiling runtime again, and verifies."""
    env = gorun.go_env(go_caches.home, gocache, gomodcache, go=go_bin, GOPROXY="off", GOFLAGS="-mod=mod",
                       GOSUMDB="off")
    build = gorun.run_go(["build", "-x", "-o", os.devnull, "."], env, user=CI, cwd=go_caches.project, go=go_bin)
    assert " -p runtime " not in build.stderr
    verify = gorun.run_go(["mod", "verify"], env, user=CI, cwd=go_caches.project, go=go_bin)
    assert "all modules verified" in verify.stdout + verify.stderr


def task(name, **args):
    return {"name": name, MODULE: args}


@pytest.mark.parametrize("where", ["same-fs", "other-fs"])
def test_move_is_exact_and_go_builds_from_the_new_place(go_bin, go_caches, places, playbook, where):
    old_build, old_mod = old_caches(go_caches, places[0], "move-" + where)
    before = {"build": files_of(old_build), "module": files_of(old_mod)}
    target = (places[0] if where == "same-fs" else places[1]) / ("new-" + where) / CI
    new = {"build": target / "build", "module": target / "mod"}
    old = {"build": old_build, "module": old_mod}
    tasks = []
    for kind in ("build", "module"):
        args = dict(path=str(new[kind]), kind=kind, owner=CI, migrate_from=str(old[kind]))
        tasks += [dict(task("check " + kind, **args), check_mode=True), task("move " + kind, **args),
                  task("again " + kind, **args)]
    results = playbook(tasks, "cache-dir-move-" + where)
    for kind in ("build", "module"):
        check, move, again = (results["%s %s" % (step, kind)] for step in ("check", "move", "again"))
        assert not move.get("failed"), move
        action = "rename" if where == "same-fs" else "copy"
        assert check["action"] == move["action"] == action
        assert (check["files"], check["bytes"]) == (move["files"], move["bytes"])
        if action == "copy":
            assert move["files"] == len(before[kind])
            assert move["bytes"] == sum(size for size, _mtime, _mode in before[kind].values())
        assert again["changed"] is False and again["action"] == "none"
        assert not old[kind].exists()
        # Every file with its size, time and mode; the prepared root keeps owner and 0700.
        assert files_of(new[kind]) == before[kind]
        st = new[kind].stat()
        assert (st.st_uid, oct(st.st_mode & 0o7777)) == (go_caches.uid, oct(0o700))
    builds_offline(go_bin, go_caches, new["build"], new["module"])


CRASH_SCRIPT = r"""
import os, pwd, sys
sys.path.insert(0, sys.argv[1])
from ansible_collections.gofleet.cache.plugins.module_utils import _cachedir
limit = int(sys.argv[5])
real_rename = os.rename
count = [0]
def rename(src, dst, **kwargs):
    count[0] += 1
    if count[0] > limit:
        os._exit(9)  # as if killed: no cleanup, no exception handling
    real_rename(src, dst, **kwargs)
os.rename = rename
ci = pwd.getpwnam('gofleet-ci')
try:
    _cachedir.prepare_and_migrate(sys.argv[3], ci, ci.pw_gid, 0o700, sys.argv[4], sys.argv[2], 'move')
except OSError:
    os._exit(9)  # the copy runs in a child as the account: its death reaches root as a failure
"""


def test_killed_copy_never_shows_go_a_half_version_and_resumes(go_bin, go_caches, places, playbook):
    old_build, old_mod = old_caches(go_caches, places[0], "resume")
    new_mod = places[1] / "resume" / "mod"
    total = len(files_of(old_mod))
    for _run in range(3):  # three killed runs, each a quarter of the files further
        limit = total // 4
        proc = subprocess.run([sys.executable, "-c", CRASH_SCRIPT, str(REPO_ROOT / ".cache" / "pypath"),
                               str(old_mod), str(new_mod), "module", str(limit)], check=False)
        assert proc.returncode == 9
        # Go trusts a version once its .ziphash exists: each such version must be whole already.
        partial = files_of(new_mod)
        source = files_of(old_mod)
        for rel in partial:
            if rel.endswith(".ziphash"):
                at_v, name = os.path.split(rel)
                version = name[:-len(".ziphash")]
                module = os.path.dirname(at_v)[len("cache/download/"):]
                extracted = "%s@%s" % (module, version)
                wanted = {path for path in source if path.startswith(extracted + "/")}
                assert wanted <= set(partial), "%s has its .ziphash but misses files" % extracted
    results = playbook([task("resume", path=str(new_mod), kind="module", owner=CI, migrate_from=str(old_mod))],
                       "cache-dir-resume")
    resume = results["resume"]
    assert resume["action"] == "copy" and resume["already_there"] > 0, resume
    assert not old_mod.exists()
    leftovers = [rel for rel in files_of(new_mod) if os.path.basename(rel).startswith(".gofleet-migrate-")]
    assert not leftovers
    assert {rel: item for rel, item in files_of(new_mod).items() if not rel.endswith("/list")} == \
        {rel: item for rel, item in source.items() if not rel.endswith("/list")}
    env = gorun.go_env(go_caches.home, old_build, new_mod, go=go_bin, GOPROXY="off",
                       GOFLAGS="-mod=mod", GOSUMDB="off")
    gorun.run_go(["build", "-o", os.devnull, "."], env, user=CI, cwd=go_caches.project, go=go_bin)
    verify = gorun.run_go(["mod", "verify"], env, user=CI, cwd=go_caches.project, go=go_bin)
    assert "all modules verified" in verify.stdout + verify.stderr


def test_clean_removes_the_old_cache_only(go_caches, places, playbook):
    old_build, _old_mod = old_caches(go_caches, places[0], "clean")
    new_build = places[0] / "clean-new" / "build"
    results = playbook([task("clean", path=str(new_build), kind="build", owner=CI, migrate_from=str(old_build),
                             migrate="clean")], "cache-dir-clean")
    assert results["clean"]["action"] == "clean" and results["clean"]["removed_bytes"] > 0
    assert not old_build.exists() and new_build.is_dir() and not os.listdir(str(new_build))


def test_parents_inside_the_account_tree_belong_to_it(ci_user, places, playbook):
    home_cache = Path(ci_user.pw_dir) / "gofleet-it-parents" / "deep" / "build"
    outside = places[0] / "parents" / CI / "build"
    try:
        results = playbook([task("in home", path=str(home_cache), owner=CI),
                            task("outside", path=str(outside), owner=CI, mode="0750")], "cache-dir-parents")
        assert results["in home"]["created"] == [str(home_cache.parent.parent), str(home_cache.parent),
                                                 str(home_cache)]
        for path in (home_cache.parent.parent, home_cache.parent, home_cache):
            assert path.stat().st_uid == ci_user.pw_uid, path
        assert outside.stat().st_uid == ci_user.pw_uid and oct(outside.stat().st_mode & 0o777) == oct(0o750)
        assert outside.parent.stat().st_uid == 0
    finally:
        shutil.rmtree(str(Path(ci_user.pw_dir) / "gofleet-it-parents"), ignore_errors=True)


def test_refusals_name_the_option_and_change_nothing(ci_user, go_caches, places, playbook):
    old_build, _old_mod = old_caches(go_caches, places[0], "refuse")
    snapshot = files_of(old_build)
    results = playbook([
        task("home", path=ci_user.pw_dir, owner=CI),
        task("root", path="/", owner=CI),
        task("inside the old cache", path=str(old_build / "sub"), kind="build", owner=CI,
             migrate_from=str(old_build)),
        task("bad mode", path=str(places[0] / "refuse-new"), owner=CI, mode="rwx"),
        task("no kind", path=str(places[0] / "refuse-new"), owner=CI, migrate_from=str(old_build)),
    ], "cache-dir-refusals")
    for name, option in (("home", "path"), ("root", "path"), ("inside the old cache", "path"),
                         ("bad mode", "mode"), ("no kind", "kind")):
        assert results[name].get("failed"), (name, results[name])
        assert option in results[name]["msg"], (name, results[name]["msg"])
    assert files_of(old_build) == snapshot
    assert not (places[0] / "refuse-new").exists()
    assert json.dumps(results["bad mode"]).count("rwx") >= 1
