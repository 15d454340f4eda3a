"""gofleet-cache-agent on caches made by the real go command, run as their owner through the real launcher.

The agent is installed by the role's own install tasks (gofleet.cache.cleanup_schedule, tasks_from
install) into a temporary directory, then run as gofleet-ci the way the systemd unit and the cron line run
it: ``/usr/bin/python3 <install_dir>/gofleet-cache-agent --config FILE [--dry-run]``, with the
environment a job has (HOME, PATH reaching go, GOCACHE/GOMODCACHE of the clone under test).

Caches and expectations come from test_go_cache_prune's golden caches and disk model (real Go from a
``file://`` proxy, ``cp -a`` clones aged with ``os.utime``); after every real run the consumer project
must still build offline and pass ``go mod verify`` as gofleet-ci.
"""

from __future__ import annotations

import fcntl
import json
import os
import random
import re
import shutil
import socket
import stat
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from ansible_collections.gofleet.cache.plugins.module_utils import _agent
from tests.integration import test_go_cache_prune as prune_it
from tests.support import gorun

try:
    from prometheus_client.parser import text_string_to_metric_families
except ImportError:  # pragma: no cover - prometheus-client is in tests/requirements.txt
    text_string_to_metric_families = None

# Real Go caches, cloned per test (test_go_cache_prune's fixture, built again for this module).
golden = prune_it.golden

CI = prune_it.CI
DAY = prune_it.DAY
REPO_ROOT = Path(__file__).resolve().parents[2]
PYTHON = "/usr/bin/python3"  # what the role puts in the units on Debian; readable by every account
REFERENCED = prune_it.PROJECT_FULL | prune_it.PROJECT_GRAPH
LINE = re.compile(r"^(?P<job>\S+) (?P<kind>build|module|fuzz) (?P<path>\S+): (?P<verb>would remove|removed) "
                  r"(?P<entries>\d+) entries \((?P<freed>[^)]*)\) of (?P<before>[^,]*), (?P<left>.*) left; "
                  r"kept (?P<kept>[^;]*)(?P<rest>.*); [0-9.]+s$")


# =========================================================================== installation and running


@pytest.fixture(scope="module")
def agent(playbook, golden):
    """The agent as the role installs it, in a directory every account can read."""
    base = Path(tempfile.mkdtemp(prefix="gofleet-agent-it-"))
    os.chmod(str(base), 0o755)
    inst = {"install_dir": str(base / "lib"), "config_dir": str(base / "etc"), "lock_dir": str(base / "locks")}
    result = playbook([{
        "name": "install",
        "ansible.builtin.include_role": {"name": "gofleet.cache.cleanup_schedule", "tasks_from": "install"},
        "vars": {
            "cleanup_schedule_install_dir": inst["install_dir"],
            "cleanup_schedule_config_dir": inst["config_dir"],
            "cleanup_schedule_lock_dir": inst["lock_dir"],
            "cleanup_schedule_command": "",
            "cleanup_schedule_python": PYTHON,
            "cleanup_schedule_caches": [],
            "cleanup_schedule_users": [CI],
            "cleanup_schedule_policy": {"max_age": "30d"},
        },
    }], "install-agent")
    launcher = Path(inst["install_dir"]) / "gofleet-cache-agent"
    if not launcher.exists():
        pytest.fail("the role did not install the agent:\n%s" % (Path(result["_meta"]["dir"]) / "output.txt").read_text())
    inst.update(base=str(base), launcher=str(launcher), configs=str(base / "configs"))
    os.mkdir(inst["configs"])
    os.chmod(inst["configs"], 0o755)
    yield inst
    env_file = Path(gorun.account(CI).pw_dir) / ".config" / "go" / "env"
    if env_file.exists():
        env_file.unlink()
    shutil.rmtree(str(base), ignore_errors=True)


class Agent(object):
    """Runs the installed agent as the role schedules it: as root, for gofleet-ci (--user), whose go env file
    points it at the test's caches."""

    def __init__(self, inst, golden, name, **policy):
        self.inst, self.golden = inst, golden
        self.config = os.path.join(inst["configs"], name + ".json")
        # Each job its own metrics directory, root's alone as the role makes it.
        self.metrics_dir = os.path.join(inst["base"], "metrics-" + name)
        os.mkdir(self.metrics_dir, 0o755)
        options = dict(policy)
        options.setdefault("lock_dir", inst["lock_dir"])
        options.setdefault("metrics_dir", self.metrics_dir)
        with open(self.config, "w") as handle:
            json.dump(options, handle)
        os.chmod(self.config, 0o644)

    def point_go_env_file(self, gocache, gomod):
        """The account's go env file names the test's caches: what the agent (as root) locates for it."""
        path = Path(gorun.account(CI).pw_dir) / ".config" / "go" / "env"
        gorun.run_as_account(CI, ["mkdir", "-p", str(path.parent)])
        text = "GOCACHE=%s\nGOMODCACHE=%s\n" % (gocache, gomod)
        gorun.run_as_account(CI, ["sh", "-c", 'printf "%s" "$1" > "$2"', "sh", text, str(path)])

    def argv(self, *args):
        return [PYTHON, self.inst["launcher"], "--config", self.config, "--user", CI] + list(args)

    def start(self, gocache, gomod, *args):
        self.point_go_env_file(gocache, gomod)
        env = {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "GOTOOLCHAIN": "local",
               "LANG": "C.UTF-8"}
        return subprocess.Popen(self.argv(*args), env=env, cwd="/", stdin=subprocess.DEVNULL,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True)

    def run(self, gocache, gomod, *args):
        proc = self.start(gocache, gomod, *args)
        out, err = proc.communicate(timeout=300)
        return proc.returncode, out.splitlines(), err


def parsed(lines):
    """{kind: match dict} of the agent's summary lines; every line must be one."""
    found = {}
    for line in lines:
        match = LINE.match(line)
        assert match, "not an agent summary line: %r" % line
        found[match.group("kind")] = match.groupdict()
    return found


def metrics(job):
    """{metric name: {kind: sample}} of the job's .prom file, read with the official parser."""
    path = os.path.join(job.metrics_dir, "gofleet_cache_user_%s.prom" % CI)
    with open(path) as handle:
        text = handle.read()
    assert os.stat(path).st_uid == 0  # root's file: no account can replace it
    families = dict((f.name, f) for f in text_string_to_metric_families(text))
    return dict((name, dict((s.labels["kind"], s) for s in family.samples)) for name, family in families.items())


@pytest.fixture
def syslog_socket():
    """The datagrams sent to /dev/log during the test, when no syslog daemon owns it here; else None."""
    if os.path.exists("/dev/log") or os.geteuid() != 0:
        yield None
        return
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    try:
        sock.bind("/dev/log")
    except OSError:  # another run made it meanwhile
        sock.close()
        yield None
        return
    os.chmod("/dev/log", 0o666)
    sock.setblocking(False)
    messages = []

    def drain():
        while True:
            try:
                messages.append(sock.recv(65536).decode("utf-8", "replace"))
            except BlockingIOError:
                return messages

    try:
        yield drain
    finally:
        sock.close()
        os.unlink("/dev/log")


def all_old(c, now):
    """Every build entry and module version last used 40 days ago."""
    prune_it.age_tree(c.gocache, now - 40 * DAY)
    prune_it.age_tree(c.gomod, now - 40 * DAY)
    c.refresh()


# =========================================================================== the tests


def test_dry_run_predicts_the_real_run_which_prunes_by_policy(agent, golden, syslog_socket):
    """max_age 30d over both caches with keep_referenced: the dry run changes nothing and reports exactly
    what the real run then removes; the project still builds offline; metrics and log lines tell it."""
    now = time.time()
    c = prune_it.Case(golden, "agent-policy")
    prune_it._baseline(c, now)  # pylint: disable=protected-access
    rng = random.Random(5)
    aids = prune_it._unshared(c)  # pylint: disable=protected-access
    rng.shuffle(aids)
    old = set(aids[:15])
    for aid in old:
        prune_it.age_entry(c.actions, c.outputs, aid, now - 40 * DAY)
    for version in c.versions.values():
        prune_it.age_version(version, now - 40 * DAY)
    c.refresh()
    kept_versions = {key for key in c.versions if tuple(prune_it.unesc(key).split("@")) in REFERENCED}
    assert kept_versions and len(kept_versions) < len(c.versions)
    job = Agent(agent, golden, "policy", kinds=["build", "module"], max_age="30d",
                keep_referenced=[golden.project], if_busy="proceed")

    before = prune_it.snapshot(c.gocache, c.gomod)
    code, dry_lines, err = job.run(c.gocache, c.gomod, "--dry-run")
    assert code == 0, err
    assert prune_it.diff(before, prune_it.snapshot(c.gocache, c.gomod)) == []
    assert os.listdir(job.metrics_dir) == []
    dry = parsed(dry_lines)

    code, real_lines, err = job.run(c.gocache, c.gomod)
    assert code == 0, err
    real = parsed(real_lines)
    assert sorted(real) == ["build", "module"]
    for kind in real:
        assert dry[kind]["verb"] == "would remove" and real[kind]["verb"] == "removed"
        for field in ("job", "path", "entries", "freed", "before", "left", "kept", "rest"):
            assert dry[kind][field] == real[kind][field], (kind, field, dry_lines, real_lines)
        assert real[kind]["job"] == CI

    actions, _outputs = prune_it.build_on_disk(c.gocache)
    assert set(actions) == set(c.actions) - old
    assert int(real["build"]["entries"]) == len(old)
    # Go's .lock files stay where a version went.
    after_versions = {key for key, version in prune_it.versions_on_disk(c.gomod).items()
                      if version.tree or set(version.dl.values()) - {".lock"}}
    assert after_versions == kept_versions
    assert int(real["module"]["entries"]) == len(c.versions) - len(kept_versions)
    assert prune_it.list_problems(c.gomod) == []
    golden.go.verify_project(c.gocache, c.gomod, run=True)

    if text_string_to_metric_families is not None:
        m = metrics(job)
        assert m["gofleet_cache_last_run_removed_entries"]["build"].value == len(old)
        assert m["gofleet_cache_last_run_removed_entries"]["module"].value == len(c.versions) - len(kept_versions)
        assert m["gofleet_cache_last_run_success"]["build"].value == 1
        assert m["gofleet_cache_last_run_busy"]["module"].value == 0
        assert now < m["gofleet_cache_last_run_timestamp_seconds"]["build"].value <= time.time()
        assert m["gofleet_cache_size_bytes"]["build"].labels == {
            "user": CI, "kind": "build", "path": c.gocache, "scope": "user"}
    if syslog_socket is not None:
        logged = syslog_socket()
        for line in real_lines:
            assert any(re.search(r"gofleet-cache-agent\[\d+\]: " + re.escape(line) + r"$", m) for m in logged), \
                (line, logged)


def test_metrics_count_what_is_on_disk(agent, golden):
    """After a run, the entries and bytes gauges are the disk's own counts (build cache) and Go's rule of a
    present version (module cache)."""
    if text_string_to_metric_families is None:
        pytest.skip("prometheus_client not installed")
    now = time.time()
    c = prune_it.Case(golden, "agent-metrics")
    all_old(c, now)
    job = Agent(agent, golden, "metrics", kinds=["build", "module"], keep_versions=1,
                keep_referenced=[golden.project], if_busy="proceed")
    code, _lines, err = job.run(c.gocache, c.gomod)
    assert code == 0, err
    m = metrics(job)
    actions, _outputs = prune_it.build_on_disk(c.gocache)
    assert m["gofleet_cache_entries"]["build"].value == len(actions)
    build_bytes = prune_it.file_bytes(prune_it.snapshot(c.gocache), c.gocache,
                                      exclude=(os.path.join(c.gocache, "fuzz"),))
    assert m["gofleet_cache_size_bytes"]["build"].value == build_bytes
    present = [v for v in prune_it.versions_on_disk(c.gomod).values() if v.present]
    assert m["gofleet_cache_entries"]["module"].value == len(present)
    vfs = os.statvfs(c.gomod)
    assert m["gofleet_cache_filesystem_free_bytes"]["module"].value == pytest.approx(vfs.f_bavail * vfs.f_frsize,
                                                                                     rel=0.01)
    assert m["gofleet_cache_filesystem_free_inodes"]["module"].value == pytest.approx(vfs.f_favail, rel=0.01)
    golden.go.verify_project(c.gocache, c.gomod)


def test_bad_config_exits_2_and_changes_nothing(agent, golden):
    now = time.time()
    c = prune_it.Case(golden, "agent-bad")
    all_old(c, now)
    before = prune_it.snapshot(c.gocache, c.gomod)
    job = Agent(agent, golden, "bad", kinds=["build", "module"], max_age="30 days please")
    code, out, err = job.run(c.gocache, c.gomod)
    assert code == 2
    assert out == []
    assert "gofleet-cache-agent: error: max_age: invalid value '30 days please'" in err
    assert prune_it.diff(before, prune_it.snapshot(c.gocache, c.gomod)) == []
    # the job's metrics say it failed (the "last run failed" alert fires), with nothing about the caches
    assert os.listdir(job.metrics_dir) == ["gofleet_cache_user_%s.prom" % CI]
    if text_string_to_metric_families is not None:
        m = metrics(job)
        assert m["gofleet_cache_last_run_success"][""].value == 0
        assert m["gofleet_cache_last_run_timestamp_seconds"][""].value >= now
        assert "gofleet_cache_size_bytes" not in m or not m["gofleet_cache_size_bytes"]


def test_a_path_the_owner_cannot_remove_exits_1_and_the_rest_is_pruned(agent, golden):
    """A bucket left owned by root (a build once run with sudo): its entries fail, every other old entry goes."""
    now = time.time()
    c = prune_it.Case(golden, "agent-failing")
    all_old(c, now)
    bucket = os.path.dirname(next(iter(c.actions.values()))[0])
    stuck = {aid for aid, (path, _oid) in c.actions.items() if os.path.dirname(path) == bucket}
    os.chown(bucket, 0, 0)
    os.chmod(bucket, 0o755)
    job = Agent(agent, golden, "failing", max_age="30d", if_busy="proceed")
    code, lines, err = job.run(c.gocache, c.gomod)
    assert code == 1, (lines, err)
    assert re.search(r"; \d+ paths failed, first \S+: Permission denied", lines[0]), lines
    actions, _outputs = prune_it.build_on_disk(c.gocache)
    assert set(actions) == stuck
    if text_string_to_metric_families is not None:
        m = metrics(job)
        assert m["gofleet_cache_last_run_errors"]["build"].value >= len(stuck)
        assert m["gofleet_cache_last_run_success"]["build"].value == 0
    os.chown(bucket, golden.uid, golden.gid)
    golden.go.verify_project(c.gocache, c.gomod)


def test_two_agents_started_at_once_prune_once(agent, golden):
    now = time.time()
    c = prune_it.Case(golden, "agent-twice")
    all_old(c, now)
    job = Agent(agent, golden, "twice", max_age="30d", if_busy="proceed")
    procs = [job.start(c.gocache, c.gomod) for _i in range(2)]
    results = []
    for proc in procs:
        out, err = proc.communicate(timeout=300)
        results.append((proc.returncode, out.splitlines(), err))
    assert [code for code, _lines, _err in results] == [0, 0], results
    removed = sorted(int(parsed(lines)["build"]["entries"]) for _code, lines, _err in results)
    assert removed == [0, len(c.actions)], results
    assert prune_it.build_on_disk(c.gocache)[0] == {}
    golden.go.verify_project(c.gocache, c.gomod)


def _holds_lock(path):
    """Whether another process holds an exclusive flock on path."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        return False
    except BlockingIOError:
        return True
    finally:
        os.close(fd)


def _wait_for(condition, seconds, what):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.1)
    pytest.fail("timed out waiting for %s" % what)


def test_a_second_agent_waits_or_skips_while_the_first_holds_the_cache(agent, golden):
    """A real `go` process of gofleet-ci (blocked reading a FIFO) keeps agent A waiting with the cache locked:
    agent B (if_busy skip) skips at once with exit 3, agent C (wait) waits for the lock. Once go ends, A
    prunes and C finds nothing left; nothing breaks."""
    now = time.time()
    c = prune_it.Case(golden, "agent-lock")
    all_old(c, now)
    fifo = os.path.join(c.dir, "go.mod.fifo")
    os.mkfifo(fifo, 0o644)
    env = golden.go.env(c.gocache, c.gomod)
    go = subprocess.Popen([str(golden.go.go_bin), "mod", "edit", "-json", fifo], env=env, cwd=c.dir,
                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, user=golden.uid, group=golden.gid,
                          extra_groups=[])
    waiting = Agent(agent, golden, "lock-wait", max_age="30d", if_busy="wait", busy_timeout="5m")
    skipping = Agent(agent, golden, "lock-skip", max_age="30d", if_busy="skip")
    lock_path = os.path.join(agent["lock_dir"], _agent.lock_name(_agent.lock_key(CI, os.path.realpath(c.gocache))))
    first = second = None
    try:
        time.sleep(0.5)
        assert go.poll() is None, "go mod edit did not block on the FIFO"
        first = waiting.start(c.gocache, c.gomod)
        _wait_for(lambda: _holds_lock(lock_path), 60, "agent A to lock the cache")
        time.sleep(1.5)
        assert first.poll() is None, "agent A did not wait for the running go command"
        code, lines, err = skipping.run(c.gocache, c.gomod)
        assert code == 3, (lines, err)
        assert "skipped: another gofleet-cache-agent run held %s" % lock_path in lines[0]
        second = waiting.start(c.gocache, c.gomod)
        time.sleep(1.5)
        assert second.poll() is None, "agent C did not wait for the lock"
        assert set(prune_it.build_on_disk(c.gocache)[0]) == set(c.actions)
    finally:
        with open(fifo, "w") as writer:  # ends the go command
            writer.write("module example.com/fifo\n")
        go.wait(timeout=60)
    out_a, err_a = first.communicate(timeout=300)
    out_c, err_c = second.communicate(timeout=300)
    assert (first.returncode, second.returncode) == (0, 0), (out_a, err_a, out_c, err_c)
    assert int(parsed(out_a.splitlines())["build"]["entries"]) == len(c.actions)
    assert int(parsed(out_c.splitlines())["build"]["entries"]) == 0
    assert prune_it.build_on_disk(c.gocache)[0] == {}
    golden.go.verify_project(c.gocache, c.gomod)


def test_installed_launcher_runs_the_collections_engine(agent):
    """The role installed the collection's module_utils byte for byte, as regular packages, and the launcher
    imports that copy first."""
    engine = Path(agent["install_dir"]) / "ansible_collections" / "gofleet" / "cache" / "plugins" / "module_utils"
    sources = sorted(p.name for p in (REPO_ROOT / "plugins" / "module_utils").glob("*.py"))
    assert sorted(p.name for p in engine.glob("*.py")) == sorted(sources + ["__init__.py"])
    for name in sources:
        assert (engine / name).read_bytes() == (REPO_ROOT / "plugins" / "module_utils" / name).read_bytes(), name
    for level in engine.parents:
        if level == Path(agent["install_dir"]):
            break
        assert (level / "__init__.py").exists(), level
    first_line = Path(agent["launcher"]).read_text().splitlines()[0]
    assert first_line == "#!" + PYTHON
    assert stat.S_IMODE(os.stat(agent["launcher"]).st_mode) == 0o755
    # No PYTHONPATH, another working directory: the launcher finds its own copy.
    probe = subprocess.run([agent["launcher"], "--help"], stdout=subprocess.PIPE, universal_newlines=True,
                           check=True, cwd="/", env={"PATH": "/usr/bin:/bin"})
    assert "exit status:" in probe.stdout
