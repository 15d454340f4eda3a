"""An unprivileged account against the roles cleanup_schedule and go_environment, run as root (issue 11).

Classes 6 (locks and metrics), 7 (templates) and 8 (``state: absent``); test_hostile.py has the modules'.
Everything goes through the real ``ansible-playbook`` against localhost, as root, with every directory of
the role in a temporary directory: nothing is installed in this machine's /etc (a run that got past the
validation could only write the cron file, and ``no_change_to_the_system`` would say so and remove it).

- Validation: every value that reaches the cron file, a unit, a profile script, /etc/environment or a
  command line, with a newline and the other characters that would change those files. Each case fails
  naming the option and the value, before anything changes on the host (the role's directories, /etc/cron.d,
  /etc/systemd/system, the go environment files are compared before and after). One case is the policy
  check with no accounts, which ansible-core 2.19 skipped when its loop was ``[omit]``.
- Locks and metrics: the earlier design's directories (``1777``), with a lock file the attacker holds with
  flock and metrics files it planted (a link to a root file, a directory, a fake one): after the role's run
  both are root's, the attacker's files are gone (the victim file the link named intact, the directory left
  alone), and the attacker can create nothing there; the installed agent then writes its metrics itself.
- ``state: absent`` goes by the manifest: a check run changes nothing and announces exactly what the real
  run removes; directories that existed before, a directory holding a file of someone else's and the
  attacker's directory stay; a second run after that file is gone removes the rest. A manifest the attacker
  could have written is refused. A host installed by the earlier version (no manifest) is taken as it made it.

Run as root:

    . scripts/env.sh && .venv/bin/python -m pytest tests/integration/test_hostile_roles.py -q -p no:cacheprovider
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from tests.support import hostile

REPO_ROOT = Path(__file__).resolve().parents[2]
COLLECTIONS_PATH = os.pathsep.join([str(REPO_ROOT / ".cache" / "pypath"), str(REPO_ROOT / ".cache" / "collections")])
PYTHON = "/usr/bin/python3"
MALLORY = "gofleet-mallory"
VICTIM = "gofleet-victim"
CRON_FILE = "/etc/cron.d/gofleet-cache"
# What a role run that got past its validation could write outside the temporary directories.
SYSTEM_PATHS = ("/etc/cron.d", "/etc/systemd/system", "/etc/profile.d", "/etc/environment")
MARKER = "/tmp/gofleet-pwned"


# =========================================================================== running the roles


def run_playbook(plays, workdir, label, check=False):
    """ansible-playbook on ``plays`` (a list of plays) against localhost; (rc, output)."""
    workdir.mkdir(parents=True, exist_ok=True)
    path = workdir / ("%s.yml" % label)
    path.write_text(json.dumps(plays, indent=1))
    home = workdir / "home"
    home.mkdir(exist_ok=True)
    env = {
        "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        "HOME": str(home),
        "LANG": "C.UTF-8",
        "ANSIBLE_HOME": str(workdir / "ansible-home"),
        "ANSIBLE_LOCAL_TEMP": str(workdir / "ansible-local-tmp"),
        "ANSIBLE_COLLECTIONS_PATH": os.environ.get("ANSIBLE_COLLECTIONS_PATH") or COLLECTIONS_PATH,
        "ANSIBLE_PIPELINING": "1",
        "ANSIBLE_PYTHON_INTERPRETER": PYTHON,
        "ANSIBLE_LOCALHOST_WARNING": "0",
        "ANSIBLE_INVENTORY_UNPARSED_WARNING": "0",
        "ANSIBLE_NOCOLOR": "1",
        "ANSIBLE_RETRY_FILES_ENABLED": "0",
        "ANSIBLE_DEPRECATION_WARNINGS": "0",
    }
    argv = [str(Path(sys.executable).parent / "ansible-playbook"), "-i", "localhost,", str(path)]
    if check:
        argv.append("--check")
    res = subprocess.run(argv, env=env, cwd="/", stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                         universal_newlines=True, timeout=900, check=False)
    (workdir / ("%s.out" % label)).write_text(res.stdout)
    return res.returncode, res.stdout


def play(tasks, **keywords):
    return dict({"name": "gofleet.cache roles against an attacker", "hosts": "localhost", "connection": "local",
                 "gather_facts": False, "tasks": tasks}, **keywords)


def failing_cases(role, cases, results_file):
    """Tasks that apply ``role`` once per case ({id, vars}), each in a block whose rescue records the first
    failed result's message, then write {id: {failed, msg}} to ``results_file``."""
    tasks = []
    for case in cases:
        tasks.append({"name": "case %s" % case["id"], "block": [
            {"name": "apply %s (%s)" % (role, case["id"]), "ansible.builtin.include_role": {"name": role},
             "vars": case["vars"]},
            {"name": "record that %s went through" % case["id"], "ansible.builtin.set_fact": {
                "outcomes": "{{ outcomes | default({}) | combine({%s: {'failed': false, 'msg': ''}}) }}"
                            % json.dumps(case["id"])}},
        ], "rescue": [
            {"name": "record the failure of %s" % case["id"], "ansible.builtin.set_fact": {
                "outcomes": "{{ outcomes | default({}) | combine({%s: {'failed': true, 'msg': "
                            "(ansible_failed_result.results | default([ansible_failed_result]) "
                            "| selectattr('failed', 'defined') | selectattr('failed') | map(attribute='msg') "
                            "| first) | default(ansible_failed_result.msg)}}) }}" % json.dumps(case["id"])}},
        ]})
    tasks.append({"name": "write the outcomes", "ansible.builtin.copy": {
        "content": "{{ outcomes | default({}) | to_json }}", "dest": str(results_file), "mode": "0600"}})
    return tasks


def system_snapshot():
    return dict((path, hostile.snapshot(path)) for path in SYSTEM_PATHS)


def pwned():
    return sorted(name for name in os.listdir("/tmp") if name.startswith(os.path.basename(MARKER)))


@pytest.fixture(scope="module")
def accounts():
    if os.geteuid() != 0:
        pytest.skip("runs as root: the roles run as root against the account %s" % MALLORY)
    return {"mallory": hostile.ensure_account(MALLORY), "victim": hostile.ensure_account(VICTIM)}


@pytest.fixture
def base(accounts):
    """A temporary directory for the role's directories; every account may traverse it."""
    path = Path(tempfile.mkdtemp(prefix="gofleet-roles-it-"))
    os.chmod(str(path), 0o755)
    yield path
    shutil.rmtree(str(path), ignore_errors=True)
    shutil.rmtree(str(path.parent / (path.name + "-ansible")), ignore_errors=True)


@pytest.fixture
def no_change_to_the_system():
    """The roles' runs here must not write the cron file, units, profile scripts or /etc/environment of this
    machine (a run that got past the validation would): compared, and undone, after the test."""
    if os.path.lexists(CRON_FILE):
        pytest.skip("%s exists on this machine: these tests would not tell theirs from it" % CRON_FILE)
    before = system_snapshot()
    environment = Path("/etc/environment").read_bytes() if os.path.exists("/etc/environment") else None
    yield
    after = system_snapshot()
    if os.path.lexists(CRON_FILE):
        os.unlink(CRON_FILE)
    if environment is not None:
        Path("/etc/environment").write_bytes(environment)
    for name in pwned():
        os.unlink(os.path.join("/tmp", name))
    for path in SYSTEM_PATHS:
        assert after[path] == before[path], hostile.snapshot_diff(before[path], after[path])


def schedule_vars(base, **overrides):
    values = {
        "cleanup_schedule_method": "cron",
        "cleanup_schedule_users": [VICTIM],
        "cleanup_schedule_caches": [],
        "cleanup_schedule_policy": {"max_age": "30d"},
        "cleanup_schedule_install_dir": str(base / "lib"),
        "cleanup_schedule_config_dir": str(base / "etc"),
        "cleanup_schedule_lock_dir": str(base / "locks"),
        "cleanup_schedule_metrics_dir": str(base / "metrics"),
        "cleanup_schedule_command": "",
        "cleanup_schedule_python": PYTHON,
        "cleanup_schedule_randomized_delay": "0",
        "cleanup_schedule_cron": {"minute": "*"},
    }
    values.update(overrides)
    return values


# =========================================================================== class 7: templates

INJECT = "* * * * * root touch " + MARKER

SCHEDULE_CASES = [
    # (id, option named in the message, overrides)
    ("users-cron-line", "cleanup_schedule_users", {"cleanup_schedule_users": [VICTIM + "\n" + INJECT + "-users"]}),
    # re.match and `$`: "name\n" passes ^[a-z]+$; the role's patterns end in \Z
    ("users-trailing-newline", "cleanup_schedule_users", {"cleanup_schedule_users": [VICTIM + "\n"]}),
    ("users-option-like", "cleanup_schedule_users", {"cleanup_schedule_users": ["--shared"]}),
    ("users-space", "cleanup_schedule_users", {"cleanup_schedule_users": [VICTIM + " --config /tmp/x"]}),
    ("environment-value-newline", "cleanup_schedule_environment",
     {"cleanup_schedule_environment": {"MAILTO": "root\n" + INJECT + "-env"}}),
    ("environment-value-cr", "cleanup_schedule_environment", {"cleanup_schedule_environment": {"MAILTO": "root\r"}}),
    ("environment-value-nel", "cleanup_schedule_environment",
     {"cleanup_schedule_environment": {"MAILTO": "root\u0085" + INJECT}}),
    ("environment-name-newline", "cleanup_schedule_environment",
     {"cleanup_schedule_environment": {"X\n" + INJECT + "-name #": "1"}}),
    ("environment-name-space", "cleanup_schedule_environment", {"cleanup_schedule_environment": {"A B": "1"}}),
    ("environment-path", "cleanup_schedule_environment", {"cleanup_schedule_environment": {"PATH": "/tmp"}}),
    ("environment-null", "cleanup_schedule_environment", {"cleanup_schedule_environment": {"GOCACHE": None}}),
    ("cron-field-space", "cleanup_schedule_cron", {"cleanup_schedule_cron": {"minute": INJECT + "-cron #"}}),
    ("cron-field-newline", "cleanup_schedule_cron", {"cleanup_schedule_cron": {"hour": "1\n" + INJECT}}),
    ("calendar-newline", "cleanup_schedule_on_calendar",
     {"cleanup_schedule_on_calendar": "daily\n" + INJECT + "-calendar"}),
    ("calendar-trailing-newline", "cleanup_schedule_on_calendar", {"cleanup_schedule_on_calendar": "daily\n"}),
    ("calendar-specifier", "cleanup_schedule_on_calendar", {"cleanup_schedule_on_calendar": "daily %n"}),
    ("path-newline", "cleanup_schedule_path", {"cleanup_schedule_path": "/usr/bin:/bin\n" + INJECT + "-path"}),
    ("path-relative", "cleanup_schedule_path", {"cleanup_schedule_path": ".:/usr/bin:/bin"}),
    ("python-space", "cleanup_schedule_python", {"cleanup_schedule_python": "/bin/touch %s-python /usr/bin/python3" % MARKER}),
    ("python-relative", "cleanup_schedule_python", {"cleanup_schedule_python": "python3"}),
    ("python-dollar", "cleanup_schedule_python", {"cleanup_schedule_python": "/usr/bin/python$X"}),
    ("install-dir-newline", "cleanup_schedule_install_dir", {"cleanup_schedule_install_dir": "/opt/gofleet\n" + INJECT}),
    ("install-dir-dotdot", "cleanup_schedule_install_dir", {"cleanup_schedule_install_dir": "/opt/x/../../usr"}),
    ("config-dir-space", "cleanup_schedule_config_dir", {"cleanup_schedule_config_dir": "/etc/gofleet cache"}),
    ("lock-dir-newline", "cleanup_schedule_lock_dir", {"cleanup_schedule_lock_dir": "/var/lib/gofleet\n"}),
    ("lock-dir-system", "cleanup_schedule_lock_dir", {"cleanup_schedule_lock_dir": "/var/lib"}),
    ("lock-dir-is-metrics-dir", "cleanup_schedule_lock_dir", {"cleanup_schedule_lock_dir": "/var/lib/prom"}),
    ("metrics-dir-newline", "cleanup_schedule_metrics_dir", {"cleanup_schedule_metrics_dir": "/var/lib/prom\nx"}),
    ("metrics-dir-relative", "cleanup_schedule_metrics_dir", {"cleanup_schedule_metrics_dir": "prom"}),
    ("metrics-dir-system", "cleanup_schedule_metrics_dir", {"cleanup_schedule_metrics_dir": "/tmp"}),
    # missing, to be made under a directory every account can write (an account could plant a link there first)
    ("metrics-dir-under-tmp", "cleanup_schedule_metrics_dir",
     {"cleanup_schedule_metrics_dir": "/tmp/gofleet-roles-it-absent/prom"}),
    ("metrics-mode-1777", "cleanup_schedule_metrics_dir_mode", {"cleanup_schedule_metrics_dir_mode": "1777"}),
    ("metrics-mode-group", "cleanup_schedule_metrics_dir_mode", {"cleanup_schedule_metrics_dir_mode": "0775"}),
    ("metrics-mode-other", "cleanup_schedule_metrics_dir_mode", {"cleanup_schedule_metrics_dir_mode": "0757"}),
    ("metrics-mode-not-octal", "cleanup_schedule_metrics_dir_mode", {"cleanup_schedule_metrics_dir_mode": "0755\n"}),
    ("command-newline", "cleanup_schedule_command", {"cleanup_schedule_command": "/usr/local/bin/x\ny"}),
    ("cache-path-newline", "cleanup_schedule_caches",
     {"cleanup_schedule_caches": [{"path": "/srv/go-build\n" + INJECT, "kind": "build"}]}),
    # the policy check must run without accounts too (ansible-core >= 2.19 skipped a loop over [omit])
    ("policy-without-accounts", "cleanup_schedule_policy",
     {"cleanup_schedule_users": [], "cleanup_schedule_policy": {"max_age": "forever"}}),
]


def test_injected_schedule_values_fail_validation_before_any_change(accounts, base, no_change_to_the_system):
    cases = []
    for case_id, _option, overrides in SCHEDULE_CASES:
        values = schedule_vars(base, **overrides)
        if case_id == "lock-dir-is-metrics-dir":
            values["cleanup_schedule_metrics_dir"] = "/var/lib/prom"
        cases.append({"id": case_id, "vars": values})
    results_file = base.parent / (base.name + "-ansible") / "outcomes.json"
    before = hostile.snapshot(base)
    rc, out = run_playbook([play(failing_cases("gofleet.cache.cleanup_schedule", cases, results_file))],
                           base.parent / (base.name + "-ansible"), "schedule-injections")
    assert rc == 0 and results_file.exists(), out[-4000:]
    outcomes = json.loads(results_file.read_text())
    for case_id, option, overrides in SCHEDULE_CASES:
        outcome = outcomes[case_id]
        assert outcome["failed"], "%s: the role went through" % case_id
        # the option, then the value (JSON: a newline shows as \n) or the policy check's own message
        assert outcome["msg"].startswith(option + ": "), (case_id, outcome["msg"])
        assert "invalid value" in outcome["msg"], (case_id, outcome["msg"])
    assert hostile.snapshot(base) == before, "the role created something before failing"
    assert pwned() == []


def test_directories_of_an_account_are_refused(accounts, base, no_change_to_the_system):
    """The role makes its lock directory root's alone: it must not take over an account's directory; and a
    metrics directory belonging to a scheduled account would let it replace every job's metrics."""
    mallory = accounts["mallory"]
    (base / "mine").mkdir()
    os.chown(str(base / "mine"), mallory.pw_uid, mallory.pw_gid)
    # root's directory inside mallory's: she can rename it and put a link in its place before the role's mkdir
    (base / "mine" / "roots").mkdir()
    cases = [
        {"id": "metrics-dir-below-hers", "vars": schedule_vars(
            base, cleanup_schedule_metrics_dir=str(base / "mine" / "roots" / "prom"))},
        {"id": "lock-dir", "vars": schedule_vars(base, cleanup_schedule_lock_dir=str(base / "mine"))},
        {"id": "install-dir", "vars": schedule_vars(base, cleanup_schedule_install_dir=str(base / "mine"))},
        {"id": "metrics-dir", "vars": schedule_vars(base, cleanup_schedule_metrics_dir=str(base / "mine"),
                                                    cleanup_schedule_users=[MALLORY])},
    ]
    results_file = base.parent / (base.name + "-ansible") / "outcomes.json"
    before = hostile.snapshot(base)
    rc, out = run_playbook([play(failing_cases("gofleet.cache.cleanup_schedule", cases, results_file))],
                           base.parent / (base.name + "-ansible"), "owned-dirs")
    assert rc == 0 and results_file.exists(), out[-4000:]
    outcomes = json.loads(results_file.read_text())
    for case, option in (("lock-dir", "cleanup_schedule_lock_dir"), ("install-dir", "cleanup_schedule_install_dir"),
                         ("metrics-dir", "cleanup_schedule_metrics_dir")):
        assert outcomes[case]["failed"] and outcomes[case]["msg"].startswith(option + ":"), outcomes[case]
        assert "belongs to %s" % MALLORY in outcomes[case]["msg"], outcomes[case]
    below = outcomes["metrics-dir-below-hers"]
    assert below["failed"] and below["msg"].startswith("cleanup_schedule_metrics_dir: invalid value"), below
    assert "%s (owner uid %d" % (base / "mine", mallory.pw_uid) in below["msg"], below
    assert hostile.snapshot(base) == before


GO_ENVIRONMENT_CASES = [
    ("value-newline-pam", "go_environment_vars",
     {"go_environment_scopes": ["pam"], "go_environment_vars": {"GOPROXY": "off\nLD_PRELOAD=%s.so" % MARKER}}),
    ("value-newline-profile", "go_environment_vars",
     {"go_environment_scopes": ["profile"], "go_environment_vars": {"GOFLAGS": "-x\ntouch %s" % MARKER}}),
    ("value-newline-go-env-file", "go_environment_vars",
     {"go_environment_vars": {"GOPROXY": "off\nGOFLAGS=-toolexec=/tmp/x"}}),
    ("value-per-account-newline", "go_environment_vars",
     {"go_environment_vars": {"GOCACHE": "/srv/go/{user}\nGOFLAGS=-toolexec=/tmp/x"}}),
    ("pam-comment", "go_environment_vars",
     {"go_environment_scopes": ["pam"], "go_environment_vars": {"GOPROXY": "https://proxy#LD_PRELOAD"}}),
    ("pam-continuation", "go_environment_vars",
     {"go_environment_scopes": ["pam"], "go_environment_vars": {"GOPRIVATE": "corp.example.com\\"}}),
    ("pam-quote", "go_environment_vars",
     {"go_environment_scopes": ["pam"], "go_environment_vars": {"GOPROXY": "\"off\" LD_PRELOAD=/tmp/x"}}),
    ("users-newline", "go_environment_users", {"go_environment_users": [VICTIM + "\n"]}),
    ("users-shell", "go_environment_users", {"go_environment_users": [VICTIM + ");; *) touch " + MARKER + ";;"]}),
    ("shared-group-newline", "go_environment_shared_group",
     {"go_environment_users": [VICTIM, MALLORY], "go_environment_shared_group": "users\n",
      "go_environment_vars": {"GOCACHE": "/srv/go/shared"}}),
    ("goroot-newline", "go_environment_goroot",
     {"go_environment_scopes": ["goroot"], "go_environment_goroot": "/usr/local/go\n"}),
    ("profile-path-newline", "go_environment_profile_path", {"go_environment_profile_path": "/etc/profile.d/x\n.sh"}),
    ("pam-path-relative", "go_environment_pam_path", {"go_environment_pam_path": "environment"}),
    ("go-newline", "go_environment_go", {"go_environment_go": "/usr/bin/go\n"}),
]


def test_injected_go_environment_values_fail_validation_before_any_change(accounts, base, no_change_to_the_system):
    home = Path(accounts["victim"].pw_dir)
    env_file = home / ".config" / "go" / "env"
    env_before = env_file.read_bytes() if env_file.exists() else None
    cases = []
    for case_id, _option, overrides in GO_ENVIRONMENT_CASES:
        values = {"go_environment_users": [VICTIM], "go_environment_scopes": ["go_env_file"],
                  "go_environment_vars": {"GOPROXY": "off"}, "go_environment_verify": [],
                  "go_environment_profile_path": str(base / "profile.sh"),
                  "go_environment_pam_path": str(base / "environment")}
        values.update(overrides)
        cases.append({"id": case_id, "vars": values})
    results_file = base.parent / (base.name + "-ansible") / "outcomes.json"
    before = hostile.snapshot(base)
    rc, out = run_playbook([play(failing_cases("gofleet.cache.go_environment", cases, results_file))],
                           base.parent / (base.name + "-ansible"), "go-environment-injections")
    assert rc == 0 and results_file.exists(), out[-4000:]
    outcomes = json.loads(results_file.read_text())
    for case_id, option, _overrides in GO_ENVIRONMENT_CASES:
        outcome = outcomes[case_id]
        assert outcome["failed"], "%s: the role went through" % case_id
        assert outcome["msg"].startswith(option + ": invalid value "), (case_id, outcome["msg"])
    assert hostile.snapshot(base) == before
    assert (env_file.read_bytes() if env_file.exists() else None) == env_before
    assert pwned() == []


# =========================================================================== class 6: locks and metrics


def install_tasks(base, **overrides):
    """The role's install tasks alone (tasks_from: install), as test_agent.py installs the agent: no cron
    file or unit is written on this machine."""
    return [{"name": "install the agent", "ansible.builtin.include_role": {
        "name": "gofleet.cache.cleanup_schedule", "tasks_from": "install"}, "vars": schedule_vars(base, **overrides)}]


def absent_tasks(base, report, **overrides):
    """state=absent through the role's entry point (the cron file it removes does not exist here), then the
    manifest script's report written to ``report``."""
    return [
        {"name": "remove the agent", "ansible.builtin.include_role": {"name": "gofleet.cache.cleanup_schedule"},
         "vars": schedule_vars(base, cleanup_schedule_state="absent", **overrides)},
        {"name": "write the report", "check_mode": False, "ansible.builtin.copy": {
            "content": "{{ _cleanup_schedule_absent.stdout }}", "dest": str(report), "mode": "0600"}},
    ]


def hold_lock_as(pw, path):
    """A process of ``pw`` that holds an exclusive flock on ``path`` (creating it) until killed."""
    script = ("import fcntl, os, sys, time\n"
              "fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT, 0o644)\n"
              "fcntl.flock(fd, fcntl.LOCK_EX)\n"
              "print('held', flush=True)\n"
              "time.sleep(3600)\n")
    proc = subprocess.Popen([PYTHON, "-c", script, path], user=pw.pw_uid, group=pw.pw_gid, extra_groups=[],
                            stdout=subprocess.PIPE, stdin=subprocess.DEVNULL, universal_newlines=True)
    assert proc.stdout.readline().strip() == "held"
    return proc


def attempt_as(pw, func, *args):
    """True when ``func(*args)`` succeeded as ``pw``; False when the kernel refused it (EACCES, EPERM)."""
    def work():
        try:
            func(*args)
        except PermissionError:
            return False
        return True
    return hostile.as_user(pw, work)


def _create(path):
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW, 0o644)
    os.close(fd)


def _flock(path):
    import fcntl  # pylint: disable=import-outside-toplevel
    fd = os.open(path, os.O_RDONLY)
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)


def _replace(path):
    temporary = os.path.join("/tmp", "gofleet-roles-it-fake-%d" % os.getpid())
    with open(temporary, "w") as handle:
        handle.write("gofleet_cache_last_run_success 1\n")
    try:
        os.rename(temporary, path)
    finally:
        if os.path.exists(temporary):
            os.unlink(temporary)


def _symlink(path):
    os.symlink("/etc/shadow", path)


def test_earlier_designs_lock_and_metrics_directories_are_taken_back(accounts, base):
    mallory = accounts["mallory"]
    locks, metrics = base / "locks", base / "metrics"
    for directory in (locks, metrics):
        directory.mkdir()
        os.chmod(str(directory), 0o1777)  # what the earlier version of the role made
    (locks / "keep.txt").write_text("root's, not a lock\n")
    victim_file = base / "victim.txt"
    victim_file.write_text("root's\n")
    os.chmod(str(victim_file), 0o600)
    held = str(locks / "srv_shared_go-build-0123456789abcdef.lock")
    holder = hold_lock_as(mallory, held)
    try:
        hostile.write_as(mallory, str(metrics / ("gofleet_cache_user_%s.prom" % VICTIM)),
                         "gofleet_cache_last_run_success 1\n")
        hostile.as_user(mallory, os.symlink, str(victim_file), str(metrics / "gofleet_cache_shared.prom"))
        hostile.mkdirs_as(mallory, str(metrics / "gofleet_cache_dir.prom"))
        hostile.write_as(mallory, str(metrics / "gofleet_cache_dir.prom" / "inside"), "mallory's\n")
        hostile.write_as(mallory, str(metrics / ".gofleet_cache_user_x.prom.1.tmp"), "half\n")
        (metrics / "node_other.prom").write_text("node_textfile_other 1\n")
        planted_dir = hostile.snapshot(metrics / "gofleet_cache_dir.prom")
        victim_before = hostile.snapshot(victim_file)

        rc, out = run_playbook([play(install_tasks(base))], base.parent / (base.name + "-ansible"), "install")
        assert rc == 0, out[-4000:]

        for directory, mode in ((locks, 0o700), (metrics, 0o755)):
            st = os.lstat(str(directory))
            assert (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)) == (0, 0, mode), directory
        # every lock file of the earlier design may be held open by an account: all gone, root's note kept
        assert sorted(os.listdir(str(locks))) == ["keep.txt"]
        assert holder.poll() is None, "the attacker's flock holder is gone; the test proves nothing"
        # mallory's files went; her directory stayed as it was (never a recursive removal); the link went, not
        # the file it named; another exporter's file stayed
        assert sorted(os.listdir(str(metrics))) == ["gofleet_cache_dir.prom", "node_other.prom"]
        assert hostile.snapshot(metrics / "gofleet_cache_dir.prom") == planted_dir
        assert hostile.snapshot(victim_file) == victim_before

        # nothing of the attacker's can get in any more
        for what, func, path in (("create a lock", _create, locks / "new.lock"),
                                 ("flock a lock", _flock, locks / "keep.txt"),
                                 ("pre-create a metrics file", _create, metrics / "gofleet_cache_user_root.prom"),
                                 ("squat a temporary name", _create, metrics / ".gofleet_cache_shared.prom.2.tmp"),
                                 ("plant a link", _symlink, metrics / ("gofleet_cache_user_%s.prom" % VICTIM)),
                                 ("rename over a metrics file", _replace, metrics / "node_other.prom")):
            assert not attempt_as(mallory, func, str(path)), "the attacker could %s" % what

        # the installed agent, as root, writes the victim's metrics itself; the lock it takes is a fresh one
        started = time.time()
        agent = subprocess.run([PYTHON, str(base / "lib" / "gofleet-cache-agent"), "--config", str(base / "etc" / "agent.json"),
                                "--user", VICTIM, "--quiet"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               universal_newlines=True, timeout=300, check=False)
        assert agent.returncode == 0, agent.stdout
        prom = metrics / ("gofleet_cache_user_%s.prom" % VICTIM)
        st = os.lstat(str(prom))
        assert stat.S_ISREG(st.st_mode) and (st.st_uid, stat.S_IMODE(st.st_mode)) == (0, 0o644)
        assert st.st_mtime >= started - 1
        assert 'gofleet_cache_last_run_success{user="%s"' % VICTIM in prom.read_text()
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()


# =========================================================================== class 8: state absent


def test_state_absent_removes_what_the_role_made_and_nothing_else(accounts, base, no_change_to_the_system):
    mallory = accounts["mallory"]
    work = base.parent / (base.name + "-ansible")
    # made before the role: the metrics directory (with another exporter's file) and the parent of its dirs
    metrics = base / "metrics"
    metrics.mkdir()
    (metrics / "node_other.prom").write_text("node_textfile_other 1\n")
    rc, out = run_playbook([play(install_tasks(base, cleanup_schedule_install_dir=str(base / "opt" / "lib"),
                                               cleanup_schedule_command=str(base / "agent")))], work, "install")
    assert rc == 0, out[-4000:]
    manifest = json.loads((base / "etc" / "manifest.json").read_text())
    assert str(metrics) not in manifest["dirs"] and str(base) not in manifest["dirs"]
    assert manifest["dirs"][:2] == [str(base / "opt"), str(base / "opt" / "lib")]
    # the agent's own files, as a run leaves them
    agent = subprocess.run([PYTHON, str(base / "agent"), "--config", str(base / "etc" / "agent.json"), "--user", VICTIM,
                            "--quiet"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, universal_newlines=True,
                           timeout=300, check=False)
    assert agent.returncode == 0, agent.stdout
    (base / "locks" / "home_x-0123456789abcdef.lock").write_text("")
    # what others put there: an administrator's file in a directory the role created, and, in the metrics
    # directory (the attacker is given write access to it, as the earlier design did), her directory under
    # a metrics file's name and her link under another's
    admin_file = base / "opt" / "lib" / "local.txt"
    admin_file.write_text("the administrator's\n")
    os.chmod(str(metrics), 0o1777)
    victim_file = base / "victim.txt"
    victim_file.write_text("root's\n")
    hostile.mkdirs_as(mallory, str(metrics / "gofleet_cache_trap.prom" / "sub"))
    hostile.write_as(mallory, str(metrics / "gofleet_cache_trap.prom" / "sub" / "file"), "mallory's\n")
    hostile.as_user(mallory, os.symlink, str(victim_file), str(metrics / "gofleet_cache_link.prom"))
    kept_before = {"trap": hostile.snapshot(metrics / "gofleet_cache_trap.prom"), "victim": hostile.snapshot(victim_file),
                   "node": hostile.snapshot(metrics / "node_other.prom")}

    # check mode: nothing changes, and it announces what the real run then removes
    everything = hostile.snapshot(base)
    rc, out = run_playbook([play(absent_tasks(base, work / "check.json"))], work, "absent-check", check=True)
    assert rc == 0, out[-4000:]
    assert hostile.snapshot(base) == everything
    would = json.loads((work / "check.json").read_text())
    rc, out = run_playbook([play(absent_tasks(base, work / "real.json"))], work, "absent")
    assert rc == 0, out[-4000:]
    did = json.loads((work / "real.json").read_text())
    assert did["changed"] and did["removed"] == would["removed"] and did["kept"] == would["kept"]

    # left: what existed before and what others made, untouched; the role's config directory with the
    # manifest (still listing the directories that stay); its install directory with the administrator's file
    assert hostile.snapshot(metrics / "gofleet_cache_trap.prom") == kept_before["trap"]
    assert hostile.snapshot(victim_file) == kept_before["victim"]
    assert hostile.snapshot(metrics / "node_other.prom") == kept_before["node"]
    assert sorted(os.listdir(str(metrics))) == ["gofleet_cache_trap.prom", "node_other.prom"]
    assert not (base / "locks").exists() and not (base / "agent").exists()
    assert sorted(os.listdir(str(base / "opt" / "lib"))) == ["local.txt"]
    assert sorted(os.listdir(str(base / "etc"))) == ["manifest.json"]
    kept = dict((item["path"], item["reason"]) for item in did["kept"])
    assert set(kept) == {str(base / "opt" / "lib"), str(base / "opt"), str(base / "etc"),
                         str(metrics / "gofleet_cache_trap.prom")}, kept
    assert json.loads((base / "etc" / "manifest.json").read_text())["dirs"] == [
        str(base / "opt"), str(base / "opt" / "lib"), str(base / "etc")]

    # once the administrator's file is gone, state=absent finishes: only what existed before is left
    admin_file.unlink()
    rc, out = run_playbook([play(absent_tasks(base, work / "again.json"))], work, "absent-again")
    assert rc == 0, out[-4000:]
    assert sorted(os.listdir(str(base))) == ["metrics", "victim.txt"]
    rc, out = run_playbook([play(absent_tasks(base, work / "third.json"))], work, "absent-third")
    assert rc == 0 and not json.loads((work / "third.json").read_text())["changed"], out[-4000:]


def test_a_manifest_others_could_write_is_refused(accounts, base, no_change_to_the_system):
    """The manifest names what root removes: one the attacker owns (or could have written) is not read."""
    work = base.parent / (base.name + "-ansible")
    rc, out = run_playbook([play(install_tasks(base))], work, "install")
    assert rc == 0, out[-4000:]
    victim_file = base / "victim.txt"
    victim_file.write_text("root's\n")
    manifest_path = base / "etc" / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    manifest["files"].append(str(victim_file))
    manifest_path.write_text(json.dumps(manifest))
    os.chown(str(manifest_path), accounts["mallory"].pw_uid, accounts["mallory"].pw_gid)
    before = hostile.snapshot(base)
    rc, out = run_playbook([play(absent_tasks(base, work / "report.json"))], work, "absent")
    assert rc != 0 and "the manifest is trusted only" in out, out[-4000:]
    assert hostile.snapshot(base) == before


def test_a_host_of_the_earlier_version_is_taken_as_it_made_it(accounts, base, no_change_to_the_system):
    """No manifest, a policy file: the earlier version's directories are the role's (it removed them whole);
    state=absent now removes them only once emptied of the role's and the agent's files."""
    work = base.parent / (base.name + "-ansible")
    (base / "metrics").mkdir()
    rc, out = run_playbook([play(install_tasks(base))], work, "install")
    assert rc == 0, out[-4000:]
    (base / "etc" / "manifest.json").unlink()
    (base / "metrics" / ".gofleet-cache-created").write_text("Created by gofleet.cache.cleanup_schedule\n")
    (base / "metrics" / "gofleet_cache_user_x.prom").write_text("")
    rc, out = run_playbook([play(absent_tasks(base, work / "report.json"))], work, "absent")
    assert rc == 0, out[-4000:]
    report = json.loads((work / "report.json").read_text())
    assert report["adopted"] and report["kept"] == [], report
    assert os.listdir(str(base)) == []
