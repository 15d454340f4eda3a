"""gofleet.cache.go_cache_facts against caches made by the real go command.

Every expected number is computed here from the disk (os.walk / lstat),
never with the collection's engine. The caches are made once per session by
the ``go_caches`` fixture (conftest.py); see ``_plant`` there for the states
planted on top of what Go made.
"""

from __future__ import annotations

import copy
import json
import os
import re
import stat
import time
from datetime import datetime, timezone
from pathlib import Path

import pytest

from tests.support import goproxy, gorun

CI = "gofleet-ci"
HEX2 = {"%02x" % i for i in range(256)}
ACTION = re.compile(r"^[0-9a-f]{64}-a$")
OUTPUT = re.compile(r"^[0-9a-f]{64}-d$")
GOVERNED = ("GOCACHE", "GOMODCACHE", "GOPATH", "GOENV", "GOPROXY", "GOSUMDB", "GONOSUMDB",
            "GONOPROXY", "GOPRIVATE", "GOFLAGS", "GOTOOLCHAIN")
DAY = 86400


# --------------------------------------------------------------------------- independent disk counts


def _regular_files(root):
    """(path, lstat) of every regular file under root; symlinks are not followed."""
    for dirpath, _dirnames, filenames in os.walk(root):
        for n in filenames:
            p = os.path.join(dirpath, n)
            st = os.lstat(p)
            if stat.S_ISREG(st.st_mode):
                yield p, st


def _tree_size(path):
    if os.path.isdir(path) and not os.path.islink(path):
        return sum(st.st_size for _path, st in _regular_files(path))
    return os.lstat(path).st_size


def build_disk(root):
    """Counts of a build cache the way the contract defines them."""
    d = {"files": 0, "bytes": 0, "blocks": 0, "dir_blocks": 0, "entries": 0}
    actions, outputs = {}, {}
    for hx in sorted(os.listdir(root)):
        hdir = os.path.join(root, hx)
        if hx not in HEX2 or os.path.islink(hdir) or not os.path.isdir(hdir):
            continue
        for name in os.listdir(hdir):
            if ACTION.match(name) and os.path.isfile(os.path.join(hdir, name)):
                actions[name[:-2]] = os.path.join(hdir, name)
            elif OUTPUT.match(name):
                outputs[name[:-2]] = os.path.join(hdir, name)
        for dirpath, dirnames, _files in os.walk(hdir):
            for n in dirnames + [""]:
                d["dir_blocks"] += os.lstat(os.path.join(dirpath, n)).st_blocks * 512
        for _path, st in _regular_files(hdir):
            d["files"] += 1
            d["bytes"] += st.st_size
            d["blocks"] += st.st_blocks * 512
    for name in os.listdir(root):
        st = os.lstat(os.path.join(root, name))
        if stat.S_ISREG(st.st_mode):
            d["files"] += 1
            d["bytes"] += st.st_size
            d["blocks"] += st.st_blocks * 512
    named, last_used, dead_actions = set(), {}, []
    for aid, apath in actions.items():
        parts = Path(apath).read_bytes().split()
        out = parts[2].decode() if len(parts) >= 3 else None
        named.add(out)
        times = [os.lstat(apath).st_mtime]
        if out in outputs:
            times.append(os.lstat(outputs[out]).st_mtime)
        else:
            dead_actions.append(apath)
        last_used[aid] = max(times)
    dead_outputs = [p for oid, p in outputs.items() if oid not in named]
    # An entry is an -a whose -d exists: Go treats the others as misses (dead weight, reported as orphans).
    d["entries"] = len(actions) - len(dead_actions)
    d["orphans"] = {
        "actions_without_output": len(dead_actions),
        "outputs_without_action": len(dead_outputs),
        "bytes": sum(_tree_size(p) for p in dead_actions + dead_outputs),
    }
    d["last_used"] = last_used
    # Last use is reported over entries: an -a whose -d is gone is dead weight, not a use.
    live = [used for aid, used in last_used.items() if actions[aid] not in dead_actions]
    d["oldest"] = min(live)
    d["newest"] = max(live)
    return d


def unescape(s):
    return re.sub(r"!([a-z])", lambda m: m.group(1).upper(), s)


def module_disk(root):
    """Counts of a module cache the way docs/go-cache-facts.md defines presence."""
    root = str(root)
    d = {"files": 0, "bytes": 0, "blocks": 0}
    for _path, st in _regular_files(root):
        d["files"] += 1
        d["bytes"] += st.st_size
        d["blocks"] += st.st_blocks * 512
    extracted = set()
    for dirpath, dirnames, _files in os.walk(root):
        if dirpath == root and "cache" in dirnames:
            dirnames.remove("cache")
        for n in list(dirnames):
            if "@" in n:
                rel = os.path.relpath(os.path.join(dirpath, n), root)
                mod, ver = rel.rsplit("@", 1)
                extracted.add((mod, ver))
                dirnames.remove(n)
    dl = os.path.join(root, "cache", "download")
    kinds = {"ziphash": set(), "partial": set(), "zip": set(), "mod": set()}
    for dirpath, _dirnames, filenames in os.walk(dl):
        if os.path.basename(dirpath) != "@v":
            continue
        mod = os.path.relpath(os.path.dirname(dirpath), dl)
        for n in filenames:
            ver, _dot, ext = n.rpartition(".")
            if ext in kinds:
                kinds[ext].add((mod, ver))
    complete = {v for v in extracted if v in kinds["ziphash"] and v not in kinds["partial"]}
    # Not extracted but usable: a zip with its .ziphash, or only the .mod Go fetched for the module graph.
    download_only = {v for v in kinds["mod"] - extracted - kinds["partial"]
                     if v in kinds["ziphash"] or v not in kinds["zip"]}
    graph_only = {v for v in download_only if v not in kinds["zip"]}
    stored = complete | download_only
    d.update(
        complete=len(complete),
        download_only=len(download_only),
        graph_only=len(graph_only),
        incomplete=len(kinds["partial"]),
        modules=len({unescape(m) for m, _ver in stored}),
        toolchains=sum(1 for m, _ver in complete if m == goproxy.TOOLCHAIN_MODULE),
        per_module={},
        escaped_dirs=sorted("%s@%s" % v for v in extracted),
    )
    for m, _ver in stored:
        d["per_module"][unescape(m)] = d["per_module"].get(unescape(m), 0) + 1
    return d


def mount_of(path):
    """(mount point, fstype, per-mount options) from /proc/self/mountinfo."""
    real = os.path.realpath(path)
    best = None
    with open("/proc/self/mountinfo") as f:
        for line in f:
            left, _sep, right = line.partition(" - ")
            fields = left.split()
            mnt = fields[4].replace("\\040", " ")
            if real == mnt or real.startswith(mnt.rstrip("/") + "/"):
                if best is None or len(mnt) >= len(best[0]):
                    best = (mnt, right.split()[0], fields[5].split(","))
    return best


def ts(value):
    """Unix seconds from an ISO-8601 string the module returns (UTC)."""
    assert isinstance(value, str), "expected an ISO-8601 string, got %r" % (value,)
    dt = datetime.fromisoformat(value.replace("Z", "+00:00"))
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=timezone.utc)
    assert dt.utcoffset().total_seconds() == 0, "not UTC: %r" % value
    return dt.timestamp()


def caches_of(result):
    assert not result.get("failed"), "module failed: %s" % result.get("msg", result)
    return result["ansible_facts"]["go_cache"]["caches"]


def item(result, user, kind, **match):
    found = [c for c in caches_of(result) if c.get("user") == user and c.get("kind") == kind
             and all(c.get(k) == v for k, v in match.items())]
    assert len(found) == 1, "expected one %s cache of %s %s, got %d in %s" % (
        kind, user, match, len(found), json.dumps(caches_of(result), indent=1)[:3000])
    return found[0]


def bucket(buckets, i, label):
    b = buckets[i]
    assert str(b["older_than"]) in (label, str(int(label[:-1]) * DAY)), b
    return b


def itemize(disk):
    return disk["bytes"], disk["files"]


def env_of(result, user):
    return result["ansible_facts"]["go_cache"]["env"][user]


# --------------------------------------------------------------------------- playbook runs


def facts_task(name, args=None, become=False, **kw):
    t = {"name": name, "gofleet.cache.go_cache_facts": dict(args or {})}
    if become:
        t["become_user"] = CI
    t.update(kw)
    return t


@pytest.fixture(scope="session")
def facts(playbook, go_caches, go_bin):
    """One playbook run covering the read-only checks (as root and as the user)."""
    w = go_caches.work
    tasks = [
        facts_task("root_for_ci", {"users": [CI], "top": 50}),
        facts_task("as_user", {"top": 50}, become=True),
        facts_task("as_user_check", {"top": 50}, become=True, check_mode=True),
        facts_task("kinds_module", {"users": [CI], "kinds": ["module"]}),
        facts_task("top2", {"users": [CI], "kinds": ["module"], "top": 2}),
        facts_task("explicit", {"users": [CI], "caches": [
            {"path": go_caches.link_build, "kind": "build"}, {"path": go_caches.link_mod, "kind": "module"}]}),
        facts_task("nonexistent", {"users": [CI], "kinds": ["build"], "caches": [
            {"path": w + "/no-such-cache", "kind": "build"}]}),
        facts_task("all_users", {"users": "*"}),
        facts_task("with_go", {"go": str(go_bin)}, become=True),
        facts_task("bad_kinds", {"kinds": ["bogus"]}),
        facts_task("bad_relpath", {"caches": [{"path": "relative/go-build", "kind": "build"}]}),
        facts_task("bad_user", {"users": ["no-such-user-gofleet"]}),
        facts_task("bad_age", {"age_buckets": ["7x"]}),
    ]
    before = os.statvfs(go_caches.gocache)
    out = playbook(tasks, "facts")
    out["_statvfs"] = (before, os.statvfs(go_caches.gocache))
    return out


# --------------------------------------------------------------------------- fixture sanity (no module)


def test_fixture_caches_are_real_go_caches(go_caches):
    mod = Path(go_caches.gomodcache)
    assert (mod / "example.com" / "!mixed!case" / "lib@v1.0.0" / "lib.go").is_file()
    assert (mod / "example.com" / "!mixed!case" / "lib@v1.1.0-!r!c.1").is_dir()
    assert not (mod / "example.com" / "MixedCase").exists()
    assert (mod / "cache" / "download" / "example.com" / "!mixed!case" / "lib" / "@v" / "v1.0.0.ziphash").is_file()
    assert (mod / "cache" / "download" / "example.com" / "greet" / "@v" / "v1.1.0.mod").is_file()
    assert not (mod / "cache" / "download" / "example.com" / "greet" / "@v" / "v1.1.0.zip").exists()
    readme = (Path(go_caches.gocache) / "README").read_text().splitlines()[0]
    assert readme == "This directory holds cached build artifacts from the Go build system."
    assert os.lstat(go_caches.gocache).st_uid == go_caches.uid
    # the Go 1.24+ directory output of go run
    assert any(p.is_dir() for p in Path(go_caches.gocache).glob("??/*-d"))
    m = module_disk(mod)
    assert (m["complete"], m["download_only"], m["graph_only"], m["incomplete"], m["toolchains"]) == (11, 2, 1, 1, 1), m


# --------------------------------------------------------------------------- build cache


@pytest.mark.parametrize("run", ["root_for_ci", "as_user"])
def test_build_cache_counts(facts, go_caches, run):
    b = item(facts[run], CI, "build")
    disk = build_disk(go_caches.gocache)
    assert b["path"] == go_caches.gocache
    assert b["real_path"] == os.path.realpath(go_caches.gocache)
    assert b["source"] == "default"
    assert b["exists"] is True
    assert b["bytes"] == disk["bytes"], "bytes must exclude fuzz/ (%d bytes there)" % sum(
        os.path.getsize(f) for f in go_caches.fuzz_files)
    assert b["files"] == disk["files"]
    assert b["disk_bytes"] in (disk["blocks"], disk["blocks"] + disk["dir_blocks"]), (b["disk_bytes"], disk)
    trim = int(Path(go_caches.gocache, "trim.txt").read_text())
    assert abs(ts(b["last_trim"]) - trim) <= 1
    assert b["orphans"] == disk["orphans"]
    assert disk["orphans"]["actions_without_output"] >= 1 and disk["orphans"]["outputs_without_action"] >= 1
    assert abs(ts(b["oldest_used"]) - go_caches.t40) <= 1
    assert abs(ts(b["newest_used"]) - disk["newest"]) <= 1


def test_build_cache_entries_count_live_action_files(facts, go_caches):
    """entries == -a files whose -d exists; the planted -a whose -d is gone is an orphan, not an entry."""
    disk = build_disk(go_caches.gocache)
    assert disk["orphans"]["actions_without_output"] >= 1
    for run in ("root_for_ci", "as_user"):
        got = item(facts[run], CI, "build")
        assert got["entries"] == disk["entries"], run
        assert got["orphans"]["actions_without_output"] == disk["orphans"]["actions_without_output"], run


def test_build_cache_age_buckets(facts, go_caches):
    b = item(facts["root_for_ci"], CI, "build")
    buckets = b["age_buckets"]
    assert len(buckets) == 3, buckets

    def size(pairs):
        return sum(os.path.getsize(str(a)) + os.path.getsize(str(d)) for a, d in pairs)

    old40, old10 = go_caches.aged40, go_caches.aged10
    assert (bucket(buckets, 0, "7d")["entries"], bucket(buckets, 0, "7d")["bytes"]) == (8, size(old40 + old10))
    assert (bucket(buckets, 1, "30d")["entries"], bucket(buckets, 1, "30d")["bytes"]) == (5, size(old40))
    assert (bucket(buckets, 2, "90d")["entries"], bucket(buckets, 2, "90d")["bytes"]) == (0, 0)


def test_fuzz_cache_is_its_own_kind(facts, go_caches):
    f = item(facts["root_for_ci"], CI, "fuzz")
    assert f["exists"] is True
    assert os.path.realpath(f["path"]) == os.path.join(os.path.realpath(go_caches.gocache), "fuzz")
    assert f["entries"] == len(go_caches.fuzz_files)
    assert f["bytes"] == sum(os.path.getsize(str(p)) for p in go_caches.fuzz_files)


# --------------------------------------------------------------------------- module cache


@pytest.mark.parametrize("run", ["root_for_ci", "as_user"])
def test_module_cache_counts(facts, go_caches, run):
    m = item(facts[run], CI, "module")
    disk = module_disk(go_caches.gomodcache)
    assert m["path"] == go_caches.gomodcache
    assert m["real_path"] == os.path.realpath(go_caches.gomodcache)
    assert m["source"] == "default"
    assert m["exists"] is True
    assert m["bytes"] == disk["bytes"]
    assert m["files"] == disk["files"]
    assert m["disk_bytes"] >= disk["blocks"]
    got = {k: m[k] for k in ("complete", "incomplete", "modules", "toolchains", "entries")}
    want = {"complete": disk["complete"], "incomplete": disk["incomplete"], "modules": disk["modules"],
            "toolchains": disk["toolchains"], "entries": disk["complete"]}
    assert got == want


def test_module_versions_are_stored_versions(facts, go_caches):
    """versions = complete + download-only; download-only = not extracted but usable: depender@v1.1.0
    (.zip + .ziphash kept, tree gone) and greet@v1.1.0 (only the .mod Go fetched for the module graph,
    a complete state for the graph, counted as graph_only)."""
    disk = module_disk(go_caches.gomodcache)
    assert (disk["download_only"], disk["graph_only"]) == (2, 1)
    m = item(facts["root_for_ci"], CI, "module")
    got = {k: m[k] for k in ("complete", "download_only", "graph_only", "versions", "modules")}
    assert got == {"complete": disk["complete"], "download_only": disk["download_only"],
                   "graph_only": disk["graph_only"], "versions": disk["complete"] + disk["download_only"],
                   "modules": disk["modules"]}
    greet = [t for t in m["top_modules"] if t["module"] == "example.com/greet"]
    assert greet and greet[0]["versions"] == disk["per_module"]["example.com/greet"] == 3


def test_module_cache_top_modules(facts, go_caches):
    m = item(facts["root_for_ci"], CI, "module")
    disk = module_disk(go_caches.gomodcache)
    top = m["top_modules"]
    assert top[0]["module"] == goproxy.TOOLCHAIN_MODULE
    assert top[0]["versions"] == 1
    blob = Path(go_caches.gomodcache, "%s@%s" % (goproxy.TOOLCHAIN_MODULE, goproxy.TOOLCHAIN_VERSION), "bin", "go")
    assert blob.stat().st_size <= top[0]["bytes"] <= m["bytes"]
    assert [t["bytes"] for t in top] == sorted((t["bytes"] for t in top), reverse=True)
    by_name = {t["module"]: t for t in top}
    assert goproxy.MIXED_CASE_MODULE in by_name, sorted(by_name)
    assert by_name[goproxy.MIXED_CASE_MODULE]["versions"] == disk["per_module"][goproxy.MIXED_CASE_MODULE] == 3
    assert by_name["example.com/greet/v2"]["versions"] == disk["per_module"]["example.com/greet/v2"] == 1
    assert by_name["example.com/nested/outer/inner"]["versions"] == 2
    assert by_name["example.com/nested/outer"]["versions"] == 1
    assert not [t["module"] for t in top if "!" in t["module"]]
    assert len(item(facts["top2"], CI, "module")["top_modules"]) == 2


def test_module_cache_age(facts, go_caches):
    m = item(facts["root_for_ci"], CI, "module")
    mnt = mount_of(go_caches.gomodcache)
    assert "noatime" not in mnt[2], "this test expects a relatime/strictatime mount: %s" % (mnt,)
    assert m["age_basis"] == "atime"
    assert abs(ts(m["oldest_used"]) - go_caches.t40) <= 1
    assert go_caches.started - 2 <= ts(m["newest_used"]) <= time.time() + 1
    buckets = m["age_buckets"]
    assert [bucket(buckets, i, lbl)["entries"] for i, lbl in enumerate(["7d", "30d", "90d"])] == [1, 1, 0]
    blob = Path(go_caches.gomodcache, "%s@%s" % (goproxy.TOOLCHAIN_MODULE, goproxy.TOOLCHAIN_VERSION), "bin", "go")
    assert blob.stat().st_size <= buckets[1]["bytes"] <= m["bytes"]
    assert buckets[2]["bytes"] == 0


def test_filesystem_facts(facts, go_caches):
    for kind, path in (("build", go_caches.gocache), ("module", go_caches.gomodcache)):
        fs = item(facts["root_for_ci"], CI, kind)["filesystem"]
        mnt, fstype, opts = mount_of(path)
        svs = facts["_statvfs"]  # taken just before and after the playbook; others write meanwhile
        sv = svs[0]
        assert fs["mount"] == mnt
        assert fs["fstype"] == fstype
        assert fs["size_bytes"] == sv.f_blocks * sv.f_frsize
        slack = 256 * 1024 * 1024
        low = min(s.f_bavail for s in svs) * sv.f_frsize - slack
        high = max(s.f_bfree for s in svs) * sv.f_frsize + slack
        assert low <= fs["free_bytes"] <= high
        assert fs["inodes_total"] == sv.f_files
        assert min(s.f_ffree for s in svs) - 5000 <= fs["inodes_free"] <= max(s.f_ffree for s in svs) + 5000
        assert abs(fs["inodes_used_pct"] - 100.0 * (sv.f_files - fs["inodes_free"]) / sv.f_files) <= 0.1
        mode = "noatime" if "noatime" in opts else "relatime" if "relatime" in opts else "strictatime"
        assert fs["atime_mode"] == mode
        assert fs["atime_updates"] is (mode != "noatime")


def test_env_facts_default_locations(facts, go_caches):
    for run in ("root_for_ci", "as_user"):
        env = env_of(facts[run], CI)
        for var, want in (("GOCACHE", go_caches.gocache), ("GOMODCACHE", go_caches.gomodcache),
                          ("GOPATH", os.path.join(go_caches.home, "go"))):
            assert env[var]["value"] == want, (run, var, env[var])
            assert env[var]["source"] == "default", (run, var, env[var])
            assert not env[var]["shadowed"], (run, var, env[var])
        assert not [c for c in facts[run]["ansible_facts"]["go_cache"]["conflicts"] if CI in json.dumps(c)]


def test_with_go_binary_effective_values(facts, go_caches, go_bin):
    r = facts["with_go"]
    b = item(r, CI, "build")
    assert b["real_path"] == os.path.realpath(go_caches.gocache)
    assert (b["bytes"], b["files"]) == itemize(build_disk(go_caches.gocache))
    assert b["entries"] == item(facts["root_for_ci"], CI, "build")["entries"]
    goroot_env = {}
    for line in (go_bin.parent.parent / "go.env").read_text().splitlines():
        if "=" in line and not line.startswith("#"):
            k, v = line.split("=", 1)
            goroot_env[k.strip()] = v.strip()
    env = env_of(r, CI)
    checked = 0
    for var in GOVERNED:
        if var in goroot_env:
            assert env[var]["value"] == goroot_env[var], (var, env[var])
            checked += 1
    assert checked >= 2, goroot_env


def _sanitize(result):
    gc = copy.deepcopy(result["ansible_facts"]["go_cache"])

    def strip(o):
        if isinstance(o, dict):
            for k in list(o):
                if k.endswith("_age_s") or k in ("free_bytes", "inodes_free", "inodes_used_pct"):
                    del o[k]
                else:
                    strip(o[k])
        elif isinstance(o, list):
            for x in o:
                strip(x)
    strip(gc)
    return {"caches": gc["caches"], "env": gc["env"], "conflicts": gc.get("conflicts")}


def test_check_mode_returns_same_facts(facts):
    normal, check = facts["as_user"], facts["as_user_check"]
    assert not check.get("failed"), check.get("msg")
    assert normal.get("changed") is False and check.get("changed") is False
    assert _sanitize(check) == _sanitize(normal)


def test_kinds_subset(facts):
    kinds = sorted((c["user"], c["kind"]) for c in caches_of(facts["kinds_module"]))
    assert kinds == [(CI, "module")]


def test_symlinked_roots_report_real_path(facts, go_caches):
    r = facts["explicit"]
    links = [c for c in caches_of(r) if c.get("path") in (go_caches.link_build, go_caches.link_mod)]
    assert sorted(c["kind"] for c in links) == ["build", "module"], links
    for c in links:
        assert c["source"] == "explicit"
        assert c["exists"] is True
        if c["kind"] == "build":
            assert c["real_path"] == os.path.realpath(go_caches.gocache) != c["path"]
            assert (c["bytes"], c["files"]) == itemize(build_disk(go_caches.gocache))
        else:
            assert c["real_path"] == os.path.realpath(go_caches.gomodcache) != c["path"]
            assert (c["bytes"], c["files"]) == itemize(module_disk(go_caches.gomodcache))
        default = item(r, CI, c["kind"], source="default")
        assert (c["entries"], c.get("versions")) == (default["entries"], default.get("versions"))


def test_nonexistent_explicit_cache(facts, go_caches):
    path = go_caches.work + "/no-such-cache"
    found = [c for c in caches_of(facts["nonexistent"]) if c.get("path") == path]
    assert len(found) == 1, caches_of(facts["nonexistent"])
    c = found[0]
    assert c["exists"] is False
    assert (c["bytes"], c["files"], c["entries"]) == (0, 0, 0)


def test_all_users_includes_ci_user(facts, go_caches):
    r = facts["all_users"]
    users = {c["user"] for c in caches_of(r)}
    assert {CI, "root"} <= users, users
    assert (item(r, CI, "build")["bytes"], item(r, CI, "build")["files"]) == itemize(build_disk(go_caches.gocache))
    assert item(r, CI, "module")["entries"] == module_disk(go_caches.gomodcache)["complete"]
    assert CI in r["ansible_facts"]["go_cache"]["env"]


@pytest.mark.parametrize("task,option,value", [
    ("bad_kinds", "kinds", "bogus"),
    ("bad_relpath", "caches", "relative/go-build"),
    ("bad_user", "users", "no-such-user-gofleet"),
    ("bad_age", "age_buckets", "7x"),
])
def test_bad_input_fails_naming_option_and_value(facts, task, option, value):
    r = facts[task]
    assert r.get("failed") is True, r
    msg = r.get("msg", "")
    assert value in msg, msg
    assert option in msg or (option == "caches" and "path" in msg), msg


# --------------------------------------------------------------------------- where locations come from


@pytest.fixture(scope="module")
def goenv_file_set(go_caches, go_bin):
    """``go env -w GOCACHE=<symlink to the cache>`` as the user, undone afterwards."""
    env = gorun.go_env(go_caches.home, go=go_bin)  # no GOCACHE in the OS environment
    gorun.run_go(["env", "-w", "GOCACHE=" + go_caches.link_build], env, user=CI, cwd="/", go=go_bin)
    try:
        assert Path(go_caches.goenv_file).read_text() == "GOCACHE=%s\n" % go_caches.link_build
        yield go_caches.link_build
    finally:
        gorun.run_go(["env", "-u", "GOCACHE"], env, user=CI, cwd="/", go=go_bin, check=False)
        if os.path.lexists(go_caches.goenv_file):
            os.unlink(go_caches.goenv_file)


@pytest.fixture(scope="module")
def env_runs(playbook, go_caches, goenv_file_set):
    return playbook([
        facts_task("file_as_user", {}, become=True),
        facts_task("file_as_root", {"users": [CI]}),
        facts_task("osenv_as_user", {}, become=True,
                   environment={"GOCACHE": go_caches.gocache, "GOMODCACHE": go_caches.link_mod}),
    ], "env")


def test_goenv_file_source(env_runs, go_caches):
    for run in ("file_as_user", "file_as_root"):
        b = item(env_runs[run], CI, "build")
        assert b["source"] == "goenv_file", (run, b["source"])
        assert b["path"] == go_caches.link_build
        assert b["real_path"] == os.path.realpath(go_caches.gocache)
        assert (b["bytes"], b["files"]) == itemize(build_disk(go_caches.gocache))
        v = env_of(env_runs[run], CI)["GOCACHE"]
        assert (v["value"], v["source"], v["shadowed"]) == (go_caches.link_build, "goenv_file", []), (run, v)
        assert item(env_runs[run], CI, "module")["source"] == "default"
        conflicts = env_runs[run]["ansible_facts"]["go_cache"]["conflicts"]
        assert not [c for c in conflicts if "GOCACHE" in json.dumps(c)], conflicts


def test_os_env_source_and_conflict(env_runs, go_caches):
    r = env_runs["osenv_as_user"]
    b = item(r, CI, "build")
    assert (b["source"], b["path"]) == ("env", go_caches.gocache)
    m = item(r, CI, "module")
    assert (m["source"], m["path"], m["real_path"]) == ("env", go_caches.link_mod, os.path.realpath(go_caches.gomodcache))
    assert m["bytes"] == module_disk(go_caches.gomodcache)["bytes"]
    env = env_of(r, CI)
    assert (env["GOCACHE"]["value"], env["GOCACHE"]["source"]) == (go_caches.gocache, "env")
    assert {"source": "goenv_file", "value": go_caches.link_build} in env["GOCACHE"]["shadowed"], env["GOCACHE"]
    assert all(s["source"] != "env" for s in env["GOCACHE"]["shadowed"])
    assert (env["GOMODCACHE"]["value"], env["GOMODCACHE"]["source"]) == (go_caches.link_mod, "env")
    assert not [s for s in env["GOMODCACHE"]["shadowed"] if s["source"] == "goenv_file"]
    conflicts = r["ansible_facts"]["go_cache"]["conflicts"]
    hits = [c for c in conflicts if "GOCACHE" in json.dumps(c)]
    assert hits, conflicts
    assert CI in json.dumps(hits)
    assert not [c for c in conflicts if "GOMODCACHE" in json.dumps(c)], conflicts


# --------------------------------------------------------------------------- gathering is read-only


def test_gathering_keeps_module_cache_atimes(playbook, go_caches):
    past = time.time_ns() - 2 * DAY * 10**9
    # control: on this mount a read of a file with an old atime does update it
    probe = Path(go_caches.home, ".atime-probe")
    probe.write_bytes(b"x")
    try:
        os.utime(str(probe), ns=(past, time.time_ns()))
        before = os.stat(str(probe)).st_atime_ns
        probe.read_bytes()
        if os.stat(str(probe)).st_atime_ns == before:
            pytest.skip("this filesystem does not update atime on read (noatime?)")
    finally:
        probe.unlink()

    saved = {p: (st.st_atime_ns, st.st_mtime_ns) for p, st in _regular_files(go_caches.gomodcache)}
    try:
        for p, (a, m) in saved.items():
            os.utime(p, ns=(min(a, past), m), follow_symlinks=False)
        before = {p: os.lstat(p).st_atime_ns for p in saved}
        out = playbook([
            facts_task("gather_as_user", {}, become=True),
            facts_task("gather_as_root", {"users": [CI]}),
        ], "atime")
        assert item(out["gather_as_user"], CI, "module")["exists"] is True
        assert item(out["gather_as_root"], CI, "module")["exists"] is True
        changed = sorted(os.path.relpath(p, go_caches.gomodcache) for p in saved
                         if os.lstat(p).st_atime_ns != before[p])
        assert not changed, "gathering read %d module cache files, e.g. %s" % (len(changed), changed[:10])
    finally:
        for p, (a, m) in saved.items():
            if os.path.lexists(p):
                os.utime(p, ns=(a, m), follow_symlinks=False)
