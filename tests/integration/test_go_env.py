"""gofleet.cache.go_env against the real `go env -w`, `go env -u` and `go env`.

Each scenario starts two copies of one go env file: the real go command edits
one (GOENV pointing at it), the module the other; the files must be equal byte
for byte.  Then what `go env -w` refuses, the module refuses too, without
touching the file; and the module's handling of an account's own file
(location, owner, mode, links, check mode, diff, the override warning).
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

import pytest

from tests.support import gorun

MODULE = "gofleet.cache.go_env"
CI = "gofleet-ci"

# (name, initial file content or None, variables to set, variables to remove)
SCENARIOS = [
    ("new-file", None, {"GOCACHE": "/data/go/build", "GOPROXY": "https://goproxy.corp.example.com,direct"}, []),
    ("unsorted-file-gets-sorted", "GOPROXY=direct\nGOCACHE=/old\n", {"GOFLAGS": "-mod=mod"}, []),
    ("replace-in-place", "GOCACHE=/old\nGOPROXY=direct\n", {"GOCACHE": "/new"}, []),
    ("comments-blank-lines-duplicates-no-final-newline",
     "# managed by hand\nZZ_LOCAL=1\nGOPATH=/p1\n\nGOPROXY=a\nGOPATH=/p2\nGOCACHE=/c",
     {"GOPRIVATE": "corp.example.com", "GOPATH": "/p3"}, []),
    # A dropped duplicate splits the sorted runs: Go's output is not globally sorted here.
    ("dropped-duplicate-splits-runs", "GOSUMDB=off\nGOPROXY=a\nGOCACHE=/c\nGOPROXY=b\n", {"GOFLAGS": "-x"}, []),
    ("crlf-lines-keep-their-cr", "GOCACHE=/c\r\nGOPROXY=p\r\n", {"GOFLAGS": "-mod=mod"}, []),
    ("unset", "GOCACHE=/c\nGOFLAGS=-x\nGOPROXY=p\n", {}, ["GOFLAGS"]),
    ("unset-absent-key-adds-final-newline", "GOCACHE=/c", {}, ["GOPRIVATE"]),
    ("unset-unknown-key-present-in-file", "GOCACHE=/c\nMY_OLD_TYPO=1\n", {}, ["MY_OLD_TYPO"]),
    ("unicode-value-and-spaces", "GOCACHE=/c\n", {"GOFLAGS": "-ldflags=-X=main.who=Zoë -trimpath"}, []),
    ("empty-value", "GOFLAGS=-x\n", {"GOFLAGS": ""}, []),
]

# What `go env -w` refuses; the module must refuse it too and name the variable.
REFUSED_BY_GO = [
    ("GOENV", "/tmp/x"), ("GODEBUG", "gocachehash=1"), ("GOROOT", "/usr/local/go"), ("GOVERSION", "go1.0"),
    ("GOWORK", "/w/go.work"), ("GOTOOLDIR", "/t"), ("GOEXE", ".exe"), ("GOHOSTOS", "linux"),
    ("GOHOSTARCH", "amd64"), ("GOMOD", "/m/go.mod"), ("GOTELEMETRY", "off"), ("GONOTAVARIABLE", "1"),
    ("GOPATH", "relative/go"), ("GOPATH", "~/go"), ("GOMODCACHE", "mod"), ("GOPROXY", "a\nb"),
    ("GOFLAGS", "-x\r"), ("GO111MODULE", "maybe"), ("GOTMPDIR", "tmp"),
]
# What Go accepts although every build then fails: the module refuses it.
REFUSED_BY_MODULE_ONLY = [("GOCACHE", "relative/cache"), ("GOCACHE", "off")]


@pytest.fixture(scope="module")
def work():
    path = Path(tempfile.mkdtemp(prefix="gofleet-go-env-it-"))
    os.chmod(str(path), 0o755)
    yield path
    shutil.rmtree(str(path), ignore_errors=True)


def go_env_cmd(go_bin, work, env_file, args):
    """`go env <args>` with GOENV=env_file; telemetry kept out of any real home."""
    env = gorun.go_env(work / "home", go=go_bin, GOENV=str(env_file), XDG_CONFIG_HOME=str(work / "xdg"))
    return gorun.run_go(["env"] + args, env, go=go_bin, check=False, timeout=60)


def write(path, content):
    if content is not None:
        path.write_bytes(content.encode())


def go_task(name, args, **extra):
    task = {"name": name, MODULE: args}
    task.update(extra)
    return task


def go_edit(go_bin, work, env_file, add, remove):
    if add:
        result = go_env_cmd(go_bin, work, env_file, ["-w"] + ["%s=%s" % item for item in add.items()])
        assert result.returncode == 0, result.stderr
    if remove:
        result = go_env_cmd(go_bin, work, env_file, ["-u"] + remove)
        # Go calls a name it does not know an error once it is no longer in the file (a second
        # `go env -u MY_OLD_TYPO`); the module succeeds without a change there (idempotence).
        unknown_and_gone = "unknown go command variable" in result.stderr
        assert result.returncode == 0 or unknown_and_gone, result.stderr


def test_files_equal_what_go_env_w_and_u_write(go_bin, work, playbook):
    """Twice: Go's result after each round is the module's, and the module changes what Go changes.

    (Go is not idempotent on a file with a duplicated key: the first round keeps
    the runs the dropped line separated, the second sorts them together.)
    """
    for round_ in (1, 2):
        tasks, before = [], {}
        for name, initial, add, remove in SCENARIOS:
            directory = work / "same" / name
            if round_ == 1:
                directory.mkdir(parents=True)
                write(directory / "by-go", initial)
                write(directory / "by-module", initial)
            before[name] = (directory / "by-go").read_bytes() if (directory / "by-go").exists() else None
            go_edit(go_bin, work, directory / "by-go", add, remove)
            values = dict(add)
            values.update((key, None) for key in remove)
            tasks.append(go_task(name, {"path": str(directory / "by-module"), "vars": values}))
        results = playbook(tasks, "go-env-same-bytes-%d" % round_)
        for name, _initial, _add, _remove in SCENARIOS:
            directory = work / "same" / name
            assert not results[name].get("failed"), results[name]
            by_go = (directory / "by-go").read_bytes()
            assert (directory / "by-module").read_bytes() == by_go, (round_, name)
            assert results[name]["changed"] == (by_go != before[name]), (round_, name)
    # Go reads back what the module wrote (the CR stays in the value, as Go's own reader keeps it).
    crlf = go_env_cmd(go_bin, work, work / "same" / "crlf-lines-keep-their-cr" / "by-module",
                      ["-json", "GOPROXY", "GOFLAGS"])
    assert json.loads(crlf.stdout) == {"GOPROXY": "p\r", "GOFLAGS": "-mod=mod"}


@pytest.mark.parametrize("var,value", REFUSED_BY_GO + REFUSED_BY_MODULE_ONLY)
def test_go_env_w_verdicts(go_bin, work, var, value):
    """Go's verdict on each value the module refuses (the module side runs in the next test)."""
    env_file = work / "verdict" / ("%s-%d" % (var, abs(hash(value))))
    env_file.parent.mkdir(parents=True, exist_ok=True)
    env_file.write_text("GOPROXY=direct\n")
    result = go_env_cmd(go_bin, work, env_file, ["-w", "%s=%s" % (var, value)])
    refused_by_go = (var, value) in REFUSED_BY_GO
    assert (result.returncode != 0) == refused_by_go, (var, value, result.stderr)
    if refused_by_go:
        assert env_file.read_text() == "GOPROXY=direct\n"


def test_module_refuses_and_leaves_the_file(work, playbook):
    cases = REFUSED_BY_GO + REFUSED_BY_MODULE_ONLY
    env_file = work / "refused-env"
    env_file.write_text("GOPROXY=direct\n")
    before = env_file.stat()
    tasks = [go_task("refuse %d" % i, {"path": str(env_file), "vars": {var: value}})
             for i, (var, value) in enumerate(cases)]
    tasks.append(go_task("refuse a boolean", {"path": str(env_file), "vars": {"GOFLAGS": True}}))
    results = playbook(tasks, "go-env-refusals")
    for i, (var, value) in enumerate(cases):
        result = results["refuse %d" % i]
        assert result.get("failed"), (var, value, result)
        assert var in result["msg"], result["msg"]
        assert result["value"] in (value, var), result
    assert results["refuse a boolean"].get("failed") and "GOFLAGS" in results["refuse a boolean"]["msg"]
    after = env_file.stat()
    assert env_file.read_text() == "GOPROXY=direct\n"
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)


@pytest.fixture()
def ci_home(ci_user):
    """gofleet-ci's home with no go env file (and no ~/.config/go) before and after the test."""
    home = Path(ci_user.pw_dir)
    config_go = home / ".config" / "go"

    def clean():
        for name in ("env", "env-target"):
            if os.path.lexists(str(config_go / name)):
                os.unlink(str(config_go / name))
        if (home / "dotfiles").exists():
            shutil.rmtree(str(home / "dotfiles"))

    clean()
    yield home
    clean()


def test_account_file_location_owner_check_mode_and_go_reads_it(go_bin, ci_user, ci_home, playbook):
    env_file = ci_home / ".config" / "go" / "env"
    config = ci_home / ".config"
    if config.exists():
        shutil.rmtree(str(config))
    values = {"GOCACHE": "/var/tmp/gofleet-it/%s/build" % CI, "GOPROXY": "off"}
    results = playbook([
        go_task("check", {"user": CI, "vars": values}, check_mode=True, diff=True),
        go_task("write", {"user": CI, "vars": values}, diff=True),
        go_task("again", {"user": CI, "vars": values}),
        go_task("remove one", {"user": CI, "vars": {"GOPROXY": None}}),
    ], "go-env-account")
    check = results["check"]
    assert check["changed"] and check["path"] == str(env_file)
    assert check["diff"]["after"] == "GOCACHE=%s\nGOPROXY=off\n" % values["GOCACHE"]
    assert results["write"]["changed"] and not results["again"]["changed"]
    assert results["remove one"]["changed"]
    assert env_file.read_text() == "GOCACHE=%s\n" % values["GOCACHE"]
    # Owned by the account, like everything the module created on the way (~/.config, ~/.config/go).
    for path in (config, config / "go", env_file):
        st = path.stat()
        assert (st.st_uid, st.st_gid) == (ci_user.pw_uid, ci_user.pw_gid), path
    assert oct(env_file.stat().st_mode & 0o777) == oct(0o644)
    # Go, as the account, reads the file the module wrote.
    env = gorun.go_env(ci_home, go=go_bin, XDG_CONFIG_HOME=None)
    reported = gorun.run_go(["env", "GOCACHE"], env, user=CI, go=go_bin, cwd=ci_home)
    assert reported.stdout.strip() == values["GOCACHE"]


def test_os_environment_override_is_warned(work, playbook):
    env_file = work / "override-env"
    results = playbook([go_task("write", {"path": str(env_file), "vars": {"GOPROXY": "https://proxy.example.com"}},
                                environment={"GOPROXY": "off"})], "go-env-override")
    result = results["write"]
    assert result["overridden"] == [{"var": "GOPROXY", "value": "https://proxy.example.com", "env_value": "off"}]
    assert any("GOPROXY" in warning for warning in result.get("warnings", []))


def test_links_followed_only_with_the_accounts_rights(ci_user, ci_home, playbook):
    config_go = ci_home / ".config" / "go"
    config_go.mkdir(parents=True, exist_ok=True)
    dotfiles = ci_home / "dotfiles"
    dotfiles.mkdir()
    (dotfiles / "goenv").write_text("GOPROXY=direct\n")
    for path in (dotfiles, dotfiles / "goenv", config_go):
        os.chown(str(path), ci_user.pw_uid, ci_user.pw_gid)
    os.symlink(str(dotfiles / "goenv"), str(config_go / "env"))
    secret = Path(tempfile.mkdtemp(prefix="gofleet-root-only-"))
    os.chmod(str(secret), 0o700)
    (secret / "file").write_text("ROOT=1\n")
    try:
        results = playbook([go_task("through a dotfiles link", {"user": CI, "vars": {"GOFLAGS": "-x"}})],
                           "go-env-link")
        assert results["through a dotfiles link"]["changed"]
        assert os.path.islink(str(config_go / "env"))
        assert (dotfiles / "goenv").read_text() == "GOFLAGS=-x\nGOPROXY=direct\n"
        assert (dotfiles / "goenv").stat().st_uid == ci_user.pw_uid
        os.unlink(str(config_go / "env"))
        os.symlink(str(secret / "file"), str(config_go / "env"))
        results = playbook([go_task("into root's file", {"user": CI, "vars": {"GOFLAGS": "-x"}})], "go-env-evil")
        assert results["into root's file"].get("failed")
        assert "Permission denied" in results["into root's file"]["msg"]
        assert (secret / "file").read_text() == "ROOT=1\n"
    finally:
        shutil.rmtree(str(secret))


def test_state_absent(work, playbook):
    env_file = work / "absent-env"
    env_file.write_text("GOCACHE=/c\nGOFLAGS=-x\n")
    results = playbook([
        go_task("remove named", {"path": str(env_file), "vars": {"GOFLAGS": "anything"}, "state": "absent"}),
        go_task("remove file", {"path": str(env_file), "state": "absent"}),
        go_task("remove file again", {"path": str(env_file), "state": "absent"}),
    ], "go-env-absent")
    assert results["remove named"]["changed"] and results["remove named"]["removed"] == ["GOFLAGS"]
    assert results["remove file"]["changed"] and not results["remove file again"]["changed"]
    assert not env_file.exists()


def test_unknown_account_is_named(playbook):
    results = playbook([go_task("nobody", {"user": "gofleet-no-such-user", "vars": {"GOFLAGS": "-x"}})], "go-env-user")
    assert results["nobody"].get("failed") and "gofleet-no-such-user" in results["nobody"]["msg"]
