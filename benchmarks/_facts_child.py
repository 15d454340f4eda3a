# Copyright: (c) 2025, gofleet.cache contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Run one engine call in its own process, so run.py measures its time and peak RSS alone.

Usage (run.py spawns these; imports are kept minimal on purpose)::

    python benchmarks/_facts_child.py runner                 # measuring process (see below)
    python benchmarks/_facts_child.py probe                  # which engine entry points import
    python benchmarks/_facts_child.py noop                   # interpreter baseline
    python benchmarks/_facts_child.py facts PATH KIND        # gather_cache_facts(PATH, KIND)
    python benchmarks/_facts_child.py facts-stat PATH KIND   # the same with link_entries=False
    python benchmarks/_facts_child.py facts-owner PATH KIND  # the same, in a child dropped to nobody
    python benchmarks/_facts_child.py prune-lru PATH KIND SIZE  # check-mode LRU plan down to SIZE
    python benchmarks/_facts_child.py prune PATH KIND DAYS   # prune_cache(PATH, KIND, ...)

Prints one JSON line on stdout. Exit status: 0 ok, 2 engine raised, 3 engine not
importable. The engine is imported from ``<repo>/.cache/pypath``
(``ansible_collections/gofleet/cache`` links to the repo), or from
``$GOFLEET_BENCH_PYPATH``.

``runner`` mode is the small process that run.py starts first and that spawns
every measured command: on Linux a child's ru_maxrss starts at the resident
size of the process it was forked from (the kernel carries the old image's
high-water mark across exec), so measuring from the big run.py process would
report at least its size for every command. The runner reads one JSON request
per line ``{"argv": [...], "stdout": PATH, "stderr": PATH}``, forks, execs,
os.wait4()s, and answers ``{"wall_s", "maxrss_kb", "user_s", "sys_s", "rc"}``.
Its own small image (~9 MB) is the floor of every RSS figure; run.py prints it.
"""

from __future__ import annotations

import json
import os
import sys
import time

FACTS_MODULE = "ansible_collections.gofleet.cache.plugins.module_utils._facts"
PRUNE_MODULE = "ansible_collections.gofleet.cache.plugins.module_utils._prune"

# Facts keys worth echoing back to run.py for cross-checks (the full result stays here).
SUMMARY_KEYS = ("exists", "files", "bytes", "disk_bytes", "entries", "orphans", "modules",
                "versions", "incomplete", "toolchains", "oldest_used", "newest_used", "age_basis",
                "last_trim")
PRUNE_KEYS = ("removed_entries", "removed_bytes", "before_bytes", "after_bytes", "errors")


def prune_policy(days):
    """Policy options of the prune hook (issue #3): remove what was not used for DAYS days.

    ``if_busy=proceed``: the copy is private to the benchmark, so Go processes
    elsewhere on the host (other jobs) must not make the engine wait or skip.
    """
    return {"max_age": f"{int(days)}d", "if_busy": "proceed"}


def _pypath():
    """Directory holding ansible_collections/gofleet/cache."""
    env = os.environ.get("GOFLEET_BENCH_PYPATH")
    if env:
        return env
    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    return os.path.join(repo, ".cache", "pypath")


def _import(module, name):
    """Return ``module.name`` or raise ImportError."""
    sys.path.insert(0, _pypath())
    mod = __import__(module, fromlist=[name])
    return getattr(mod, name)


def _emit(payload, code=0):
    """Print one JSON line and return the exit code."""
    sys.stdout.write(json.dumps(payload, default=str, sort_keys=True) + "\n")
    sys.stdout.flush()
    return code


def _spawn(request):
    """Fork/exec one measured command; return its wall time and rusage."""
    out = os.open(request.get("stdout", os.devnull), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    err = os.open(request.get("stderr", os.devnull), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    null = os.open(os.devnull, os.O_RDONLY)
    start = time.perf_counter()
    pid = os.fork()
    if pid == 0:  # child: no Python-level cleanup, exec or die
        try:
            os.dup2(null, 0)
            os.dup2(out, 1)
            os.dup2(err, 2)
            os.execvp(request["argv"][0], request["argv"])
        finally:
            os._exit(127)  # pylint: disable=protected-access
    _pid, status, usage = os.wait4(pid, 0)
    wall = time.perf_counter() - start
    for fd in (out, err, null):
        os.close(fd)
    code = -os.WTERMSIG(status) if os.WIFSIGNALED(status) else os.WEXITSTATUS(status)
    return {"wall_s": wall, "maxrss_kb": usage.ru_maxrss, "user_s": usage.ru_utime,
            "sys_s": usage.ru_stime, "rc": code}


def _runner():
    """Serve spawn requests from stdin until EOF."""
    for line in sys.stdin:
        if line.strip():
            _emit(_spawn(json.loads(line)))
    return 0


def _probe():
    """Report which engine entry points import."""
    found = {}
    for key, module, name in (("facts", FACTS_MODULE, "gather_cache_facts"),
                              ("prune", PRUNE_MODULE, "prune_cache")):
        try:
            _import(module, name)
            found[key] = True
        except Exception as exc:  # noqa: BLE001  # pylint: disable=broad-except
            found[key] = False
            found[key + "_error"] = f"{type(exc).__name__}: {exc}"
    return _emit(found)


def _call(module, name, args, kwargs, keys):
    """Import and call module.name(*args, **kwargs); emit timing and a summary of ``keys``.

    A dict argument is turned into the module's ``Policy`` object when it has one.
    """
    try:
        func = _import(module, name)
    except (ImportError, AttributeError) as exc:
        return _emit({"ok": False, "error": f"not importable: {exc}"}, 3)
    policy_class = getattr(sys.modules[module], "Policy", None)
    start = time.perf_counter()
    try:
        if policy_class is not None:
            args = [policy_class(**arg) if isinstance(arg, dict) else arg for arg in args]
        result = func(*args, **kwargs)
    except Exception as exc:  # noqa: BLE001  # pylint: disable=broad-except
        return _emit({"ok": False, "error": f"{type(exc).__name__}: {exc}"}, 2)
    inner = time.perf_counter() - start
    summary = {key: result.get(key) for key in keys if key in result}
    if isinstance(summary.get("errors"), list):
        summary["errors"] = len(summary["errors"])
    return _emit({"ok": True, "inner_s": inner, "summary": summary,
                  "result_json_bytes": len(json.dumps(result, default=str))})


def _facts_as_owner(path, kind):
    """gather_cache_facts run as root does it for an account's cache: in a child that dropped to the account.

    The tree is root's and world-readable, so the child (nobody) reads all of it: the difference with
    ``facts`` is the privilege separation alone (fork, dropping, the JSON answer).
    """
    import pwd  # pylint: disable=import-outside-toplevel
    privsep = _import("ansible_collections.gofleet.cache.plugins.module_utils._privsep", "call_as")
    identity_class = sys.modules["ansible_collections.gofleet.cache.plugins.module_utils._privsep"].Identity
    scan = _import(FACTS_MODULE, "gather_cache_facts")
    identity = identity_class.of_account(pwd.getpwnam("nobody"))
    start = time.perf_counter()
    result = privsep(identity, scan, path, kind)
    inner = time.perf_counter() - start
    summary = {key: result.get(key) for key in SUMMARY_KEYS if key in result}
    return _emit({"ok": True, "inner_s": inner, "summary": summary,
                  "result_json_bytes": len(json.dumps(result, default=str))})


def main(argv):
    """Dispatch one child mode."""
    mode = argv[0] if argv else ""
    if mode == "runner":
        return _runner()
    if mode == "noop":
        return _emit({"ok": True})
    if mode == "probe":
        return _probe()
    if mode == "facts" and len(argv) == 3:
        return _call(FACTS_MODULE, "gather_cache_facts", argv[1:3], {}, SUMMARY_KEYS)
    if mode == "facts-stat" and len(argv) == 3:
        # go_cache_facts link_entries=false: stat only, -a files not read
        return _call(FACTS_MODULE, "gather_cache_facts", argv[1:3], {"link_entries": False}, SUMMARY_KEYS)
    if mode == "facts-owner" and len(argv) == 3:
        return _facts_as_owner(argv[1], argv[2])
    if mode == "prune-lru" and len(argv) == 4:
        # LRU max_size to half the cache, planned in full (check mode): the memory of the biggest plan.
        policy = {"max_size": argv[3], "keep_recent": "0s", "remove_incomplete": False, "if_busy": "proceed"}
        return _call(PRUNE_MODULE, "prune_cache", [argv[1], argv[2], policy], {"check_mode": True}, PRUNE_KEYS)
    if mode == "prune" and len(argv) == 4:
        return _call(PRUNE_MODULE, "prune_cache", [argv[1], argv[2], prune_policy(argv[3])],
                     {"check_mode": False}, PRUNE_KEYS)
    sys.stderr.write(__doc__)
    return 64


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
