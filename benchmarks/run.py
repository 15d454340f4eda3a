#!/usr/bin/env python
# Copyright: (c) 2025, gofleet.cache contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Benchmark the gofleet.cache facts engine against ``du -s`` on generated Go caches.

Generates build and module caches (gen_cache.py) in a work directory, syncs and
warms the page cache, then measures each command in its own child process
(wall time, peak RSS from os.wait4), interleaved, ``--repeat`` times (median):

* ``du -s ROOT`` (baseline) vs ``gather_cache_facts(ROOT, KIND)`` run by
  _facts_child.py. Until the engine imports, ``find ROOT -type f | wc -l``
  stands in for it so that the harness itself is proven.
* prune hook (issue #3): ``find ROOT -type f -mtime +N -delete`` vs
  ``prune_cache(ROOT, KIND, policy)`` on identical regenerated copies; skipped
  while plugins/module_utils/_prune.py does not provide prune_cache.

Prints tables and the goals (facts wall <= 1.5x du -s; facts peak RSS <=
100 MB at 1M files) without asserting them, and writes
benchmarks/results/latest.json. Exit status is non-zero only when a measured
command fails.

    python benchmarks/run.py --quick          # CI smoke run, < 1 min
    python benchmarks/run.py                  # full: 250k entries, 1M files, 3,000 versions
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

import gen_cache

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
RESULTS = os.path.join(HERE, "results")
CHILD = os.path.join(HERE, "_facts_child.py")
MARKER = ".gofleet-bench-workdir"

WALL_GOAL = 1.5           # facts wall time <= 1.5 x du -s
RSS_GOAL = 100 * 10 ** 6  # facts peak RSS <= 100 MB (decimal) ...
RSS_GOAL_FILES = 10 ** 6  # ... on the 1M-file tree
PRIVSEP_GOAL = 1.10       # facts in a child dropped to the owner <= 1.10 x the same scan in-process
PRUNE_DAYS = 30

# (name, kind, generator arguments)
QUICK_TREES = (
    ("build-20k", "build", {"entries": 20000}),
    ("module-500", "module", {"versions": 500}),
)
FULL_TREES = (
    ("build-250k", "build", {"entries": 250000}),
    ("build-1m", "build", {"files": 1000000}),
    ("module-3000", "module", {"versions": 3000}),
)


# ---------------------------------------------------------------------------
# Formatting
# ---------------------------------------------------------------------------

def fmt_s(seconds):
    """Seconds with a unit."""
    if seconds is None:
        return "-"
    return f"{seconds:.3f} s" if seconds < 10 else f"{seconds:.1f} s"


def fmt_mb(kib):
    """ru_maxrss KiB as decimal MB."""
    return "-" if kib is None else f"{kib * 1024 / 1e6:.1f} MB"


def fmt_bytes(num):
    """Bytes in decimal units."""
    if num is None:
        return "-"
    for unit, size in (("GB", 1e9), ("MB", 1e6), ("KB", 1e3)):
        if num >= size:
            return f"{num / size:.2f} {unit}"
    return f"{num} B"


def fmt_ratio(num, den):
    """num/den as 1.23x."""
    if num is None or not den:
        return "-"
    return f"{num / den:.2f}x"


def table(headers, rows):
    """Render rows as an aligned text table (first two columns left-aligned)."""
    widths = [max(len(str(x)) for x in col) for col in zip(headers, *rows)]
    lines = ["  ".join(str(h).ljust(w) for h, w in zip(headers, widths)).rstrip(),
             "  ".join("-" * w for w in widths)]
    for row in rows:
        lines.append("  ".join(str(c).rjust(w) if i > 1 else str(c).ljust(w)
                               for i, (c, w) in enumerate(zip(row, widths))).rstrip())
    return "\n".join(lines)


def log(msg):
    """Progress on stderr (stdout carries the report)."""
    sys.stderr.write(f"[bench {time.strftime('%H:%M:%S')}] {msg}\n")
    sys.stderr.flush()


# ---------------------------------------------------------------------------
# Measuring
# ---------------------------------------------------------------------------

class Runner:
    """The small measuring process (``_facts_child.py runner``).

    On Linux a child's ru_maxrss starts at the resident size of the process it
    was forked from, so commands are spawned by this small process instead of
    by run.py (which grows while generating trees). See _facts_child.py.
    """

    def __init__(self):
        self.proc = subprocess.Popen(  # pylint: disable=consider-using-with
            [sys.executable, "-I", "-S", CHILD, "runner"], stdin=subprocess.PIPE,
            stdout=subprocess.PIPE, text=True, bufsize=1)
        self.tmp = tempfile.mkdtemp(prefix="gofleet-bench-")

    def measure(self, argv):
        """Run argv as the runner's child; return wall, peak RSS (KiB), CPU, rc and output."""
        paths = {"stdout": os.path.join(self.tmp, "out"), "stderr": os.path.join(self.tmp, "err")}
        self.proc.stdin.write(json.dumps(dict(paths, argv=argv)) + "\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError("benchmark runner died")
        result = json.loads(line)
        for key, path in paths.items():
            with open(path, "rb") as handle:
                result[key] = handle.read()[-4000:].decode("utf-8", "replace")
        return result

    def close(self):
        """Stop the runner and remove its scratch files."""
        self.proc.stdin.close()
        self.proc.wait()
        self.proc.stdout.close()
        shutil.rmtree(self.tmp, ignore_errors=True)


def child_json(run):
    """Last JSON line printed by a _facts_child.py run, or None."""
    for line in reversed(run["stdout"].strip().splitlines()):
        try:
            return json.loads(line)
        except ValueError:
            continue
    return None


def summarize(runs):
    """Median wall/RSS/CPU of several runs (plus the raw runs without their output)."""
    keys = ("wall_s", "maxrss_kb", "user_s", "sys_s")
    out = {key: statistics.median(r[key] for r in runs) for key in keys}
    out["ok"] = all(r["rc"] == 0 for r in runs)
    out["runs"] = [{k: r[k] for k in keys + ("rc",)} for r in runs]
    return out


def failures(runs):
    """Output tails of the runs that failed."""
    return [(r["stderr"].strip() or r["stdout"].strip())[-1000:] for r in runs if r["rc"]]


def python_cmd(*args):
    """Command line for the engine child."""
    return [sys.executable, CHILD, *args]


# ---------------------------------------------------------------------------
# Trees
# ---------------------------------------------------------------------------

def ensure_pypath():
    """Create <repo>/.cache/pypath/ansible_collections/gofleet/cache -> <repo> if missing."""
    base = os.path.join(REPO, ".cache", "pypath", "ansible_collections", "gofleet")
    link = os.path.join(base, "cache")
    if not os.path.lexists(link):
        os.makedirs(base, exist_ok=True)
        os.symlink(REPO, link)
    return link


def prepare_workdir(path):
    """Create (or adopt a previous run's) work directory; refuse foreign non-empty ones."""
    if os.path.isdir(path) and os.listdir(path) and not os.path.exists(os.path.join(path, MARKER)):
        raise SystemExit(f"refusing to use non-empty {path} (not a benchmark work directory)")
    os.makedirs(path, exist_ok=True)
    with open(os.path.join(path, MARKER), "w", encoding="utf-8") as handle:
        handle.write("gofleet.cache benchmark work directory; safe to delete\n")


def cleanup_workdir(workdir, specs):
    """Remove the trees of ``specs`` (complete or not), manifests, prune copies, the marker.

    The work directory itself goes too when nothing else is left in it.
    """
    for name, _kind, _params in specs:
        root = os.path.join(workdir, name)
        for path in (root, root + "-prune-copy"):
            gen_cache.remove_tree(path)
        if os.path.exists(root + ".json"):
            os.unlink(root + ".json")
    marker = os.path.join(workdir, MARKER)
    if os.path.exists(marker):
        os.unlink(marker)
    if os.path.isdir(workdir) and not os.listdir(workdir):
        os.rmdir(workdir)


def generate(kind, root, params, seed, now):
    """Generate one tree; return generator stats with wall time (and with the sync after it)."""
    start = time.monotonic()
    if kind == "build":
        stats = gen_cache.generate_build_cache(root, seed=seed, now=now, **params)
    else:
        stats = gen_cache.generate_module_cache(root, seed=seed, now=now, **params)
    stats["generate_s"] = round(time.monotonic() - start, 3)
    os.sync()
    stats["generate_sync_s"] = round(time.monotonic() - start, 3)
    return stats


def get_tree(workdir, spec, seed, now, reuse):
    """Generate a tree (or reuse one kept by --keep with the same parameters)."""
    name, kind, params = spec
    root = os.path.join(workdir, name)
    manifest = root + ".json"
    wanted = {"kind": kind, "params": params, "seed": seed}
    if reuse and os.path.exists(manifest) and os.path.isdir(root):
        with open(manifest, encoding="utf-8") as handle:
            old = json.load(handle)
        if {k: old.get(k) for k in wanted} == wanted:
            made = time.strftime("%Y-%m-%d %H:%M", time.gmtime(old["stats"]["now"]))
            log(f"reusing {name} (generated {made})")
            stats = dict(old["stats"], reused=True)
            return {"name": name, "kind": kind, "root": root, "params": params, "stats": stats}
    gen_cache.remove_tree(root)
    log(f"generating {name}: {kind} {params}")
    stats = generate(kind, root, params, seed, now)
    log(f"  {stats['files']:,} files, {fmt_bytes(stats['bytes'])} in {fmt_s(stats['generate_s'])}"
        f" (+sync {fmt_s(stats['generate_sync_s'])})")
    with open(manifest, "w", encoding="utf-8") as handle:
        json.dump(dict(wanted, stats=stats), handle, indent=1, sort_keys=True)
    return {"name": name, "kind": kind, "root": root, "params": params, "stats": stats}


# ---------------------------------------------------------------------------
# Benchmarks
# ---------------------------------------------------------------------------

def bench_facts(runner, tree, engine, repeat, stat_only=False):
    """du -s vs the engine (or the find|wc placeholder) on one tree."""
    root, label = tree["root"], "engine" if engine else "find|wc"
    baseline = ["du", "-s", root]
    if engine:
        candidate = python_cmd("facts-stat" if stat_only else "facts", root, tree["kind"])
    else:
        candidate = ["sh", "-c", 'find "$1" -type f | wc -l', "sh", root]
    # Root scans an account's cache in a child dropped to the account: the same scan, measured beside.
    owner = python_cmd("facts-owner", root, tree["kind"]) if engine and not stat_only and os.geteuid() == 0 \
        else None
    log(f"warming {tree['name']}")
    warm = [runner.measure(baseline), runner.measure(candidate)]
    du_runs, cand_runs, owner_runs = [], [], []
    for i in range(repeat):
        du_runs.append(runner.measure(baseline))
        cand_runs.append(runner.measure(candidate))
        if owner:
            owner_runs.append(runner.measure(owner))
        log(f"  {tree['name']} run {i + 1}: du {fmt_s(du_runs[-1]['wall_s'])} "
            f"{fmt_mb(du_runs[-1]['maxrss_kb'])} | {label} {fmt_s(cand_runs[-1]['wall_s'])} "
            f"{fmt_mb(cand_runs[-1]['maxrss_kb'])}"
            + (f" | as owner {fmt_s(owner_runs[-1]['wall_s'])}" if owner else ""))
    first = du_runs[0]["stdout"].split()
    entry = {"tree": tree["name"], "kind": tree["kind"], "root": root,
             "files": tree["stats"]["files"], "bytes": tree["stats"]["bytes"],
             "du": summarize(du_runs), "candidate": summarize(cand_runs),
             "warmup_wall_s": [w["wall_s"] for w in warm],
             "du_kib": int(first[0]) if first and first[0].isdigit() else None,
             "errors": failures(du_runs + cand_runs + owner_runs)}
    if owner_runs:
        entry["owner_child"] = summarize(owner_runs)
    if engine:
        entry["engine_output"] = child_json(cand_runs[-1]) or {}
    else:
        text = cand_runs[-1]["stdout"].strip()
        entry["find_files"] = int(text) if text.isdigit() else None
    return entry


def bench_prune(runner, tree, workdir, repeat):
    """Prune hook: find -mtime +N -delete vs prune_cache on identical regenerated copies."""
    copy = os.path.join(workdir, tree["name"] + "-prune-copy")
    stats = tree["stats"]
    commands = {"find": ["find", copy, "-type", "f", "-mtime", f"+{PRUNE_DAYS}", "-delete"],
                "engine": python_cmd("prune", copy, tree["kind"], str(PRUNE_DAYS))}
    runs = {"find": [], "engine": []}
    try:
        for i in range(repeat):
            for tool, argv in commands.items():
                gen_cache.remove_tree(copy)
                generate(tree["kind"], copy, tree["params"], stats["seed"], stats["now"])
                runs[tool].append(runner.measure(argv))
                log(f"  prune {tree['name']} run {i + 1} {tool}: "
                    f"{fmt_s(runs[tool][-1]['wall_s'])} {fmt_mb(runs[tool][-1]['maxrss_kb'])}")
    finally:
        gen_cache.remove_tree(copy)
    # LRU: the largest plan (every unit sorted by last use), planned in check mode on the original tree.
    lru = [runner.measure(python_cmd("prune-lru", tree["root"], tree["kind"], str(stats["bytes"] // 2)))]
    log(f"  prune {tree['name']} LRU max_size plan (check mode): {fmt_s(lru[-1]['wall_s'])} "
        f"{fmt_mb(lru[-1]['maxrss_kb'])}")
    return {"tree": tree["name"], "kind": tree["kind"], "days": PRUNE_DAYS,
            "find": summarize(runs["find"]), "engine": summarize(runs["engine"]),
            "engine_output": child_json(runs["engine"][-1]), "lru": summarize(lru),
            "errors": failures(runs["find"] + runs["engine"] + lru)}


def goals(facts, engine, quick):
    """Evaluate (never assert) the performance goals."""
    out = []
    for entry in facts:
        du_wall = entry["du"]["wall_s"]
        ratio = entry["candidate"]["wall_s"] / du_wall if du_wall else None
        out.append({"goal": f"facts wall <= {WALL_GOAL:.1f}x du -s", "tree": entry["tree"],
                    "value": ratio, "limit": WALL_GOAL, "evaluated": engine, "indicative": False,
                    "holds": (ratio is not None and ratio <= WALL_GOAL) if engine else None})
    for entry in facts:
        if "owner_child" in entry:
            ratio = entry["owner_child"]["wall_s"] / entry["candidate"]["wall_s"]
            out.append({"goal": f"facts as the owner <= {PRIVSEP_GOAL:.2f}x in-process", "tree": entry["tree"],
                        "value": ratio, "limit": PRIVSEP_GOAL, "evaluated": engine, "indicative": False,
                        "holds": ratio <= PRIVSEP_GOAL})
    if facts:
        big = [e for e in facts if e["files"] >= RSS_GOAL_FILES * 0.95]
        target = big[0] if big else max(facts, key=lambda e: e["files"])
        rss = target["candidate"]["maxrss_kb"] * 1024
        out.append({"goal": "facts peak RSS <= 100 MB at 1M files", "tree": target["tree"],
                    "value": rss, "limit": RSS_GOAL, "evaluated": engine,
                    "indicative": not big or quick,
                    "holds": (rss <= RSS_GOAL) if engine else None})
    return out


# ---------------------------------------------------------------------------
# Report
# ---------------------------------------------------------------------------

def report_trees(result):
    """Generated trees with generation times."""
    rows = []
    for tree in result["trees"]:
        stats = tree["stats"]
        reused = stats.get("reused")
        rows.append((tree["name"], tree["kind"], f"{stats['files']:,}", fmt_bytes(stats["bytes"]),
                     "reused" if reused else fmt_s(stats.get("generate_s")),
                     "reused" if reused else fmt_s(stats.get("generate_sync_s"))))
    print("Generated trees")
    print(table(("tree", "kind", "files", "bytes", "generate", "+sync"), rows))


def report_facts(result, label):
    """du -s vs the engine table, baselines and cross-check."""
    rows = []
    for entry in result["facts"]:
        du, other = entry["du"], entry["candidate"]
        rows.append((entry["tree"], entry["kind"], f"{entry['files']:,}",
                     fmt_s(du["wall_s"]), fmt_mb(du["maxrss_kb"]),
                     fmt_s(other["wall_s"]), fmt_mb(other["maxrss_kb"]),
                     fmt_ratio(other["wall_s"], du["wall_s"]),
                     fmt_ratio(other["maxrss_kb"], du["maxrss_kb"]),
                     f"{other['user_s']:.2f}+{other['sys_s']:.2f} s"))
    print(f"Facts: du -s vs {label} (ratio = {label} / du)")
    print(table(("tree", "kind", "files", "du wall", "du RSS", f"{label} wall", f"{label} RSS",
                 "wall ratio", "RSS ratio", f"{label} user+sys"), rows))
    base, floor = result["python_baseline"], result["rss_floor"]
    for entry in result["facts"]:
        if "owner_child" in entry:
            print(f"  {entry['tree']}: as the cache's owner (a child dropped to nobody) "
                  f"{fmt_s(entry['owner_child']['wall_s'])}, "
                  f"{fmt_ratio(entry['owner_child']['wall_s'], entry['candidate']['wall_s'])} the in-process scan")
    print(f"python interpreter baseline (engine child doing nothing): {fmt_s(base['wall_s'])}, "
          f"{fmt_mb(base['maxrss_kb'])}")
    print(f"RSS floor (`true` spawned by the runner; an RSS at the floor means 'at most this'): "
          f"{fmt_mb(floor['maxrss_kb'])}")
    print()
    print("Cross-check")
    for entry in result["facts"]:
        du_bytes = entry["du_kib"] * 1024 if entry.get("du_kib") is not None else None
        head = (f"  {entry['tree']:<12} generated {entry['files']:,} files, "
                f"{fmt_bytes(entry['bytes'])}")
        if "engine_output" in entry:
            summ = entry["engine_output"].get("summary", {})
            print(f"{head} | engine files={summ.get('files')} bytes={fmt_bytes(summ.get('bytes'))}"
                  f" disk_bytes={fmt_bytes(summ.get('disk_bytes'))} entries={summ.get('entries')}"
                  f" | du -s {fmt_bytes(du_bytes)}")
        else:
            print(f"{head} | find counted {entry.get('find_files')} | du -s {fmt_bytes(du_bytes)}")


def report_prune(result):
    """Prune hook table (or why it was skipped)."""
    if not result["prune"]:
        print(f"Prune hook: skipped ({result.get('prune_skipped')})")
        return
    rows = []
    for entry in result["prune"]:
        summ = (entry.get("engine_output") or {}).get("summary", {})
        find, engine = entry["find"], entry["engine"]
        rows.append((entry["tree"], fmt_s(find["wall_s"]), fmt_mb(find["maxrss_kb"]),
                     fmt_s(engine["wall_s"]), fmt_mb(engine["maxrss_kb"]),
                     fmt_ratio(engine["wall_s"], find["wall_s"]),
                     f"{summ.get('removed_entries')}", fmt_bytes(summ.get("removed_bytes"))))
    runs = len(result["prune"][0]["find"]["runs"])
    print(f"Prune hook: find -type f -mtime +{PRUNE_DAYS} -delete vs "
          f"prune_cache(max_age={PRUNE_DAYS}d), each on a fresh identical copy, {runs} run(s)")
    print(table(("tree", "find wall", "find RSS", "engine wall", "engine RSS", "wall ratio",
                 "engine removed", "bytes"), rows))
    for entry in result["prune"]:
        if entry.get("lru"):
            print(f"  LRU max_size plan to half of {entry['tree']} (check mode): "
                  f"{fmt_s(entry['lru']['wall_s'])}, peak RSS {fmt_mb(entry['lru']['maxrss_kb'])}")


def report_goals(result):
    """Goal lines: HOLDS / MISSED / not evaluated."""
    print("Goals (reported, not asserted)")
    for goal in result["goals"]:
        if goal["holds"] is None:
            verdict = "not evaluated (engine missing)"
        else:
            verdict = "HOLDS" if goal["holds"] else "MISSED"
            if goal["indicative"]:
                verdict += " (indicative only: no 1M-file tree at this scale)"
        value = fmt_ratio(goal["value"], 1) if "RSS" not in goal["goal"] else fmt_bytes(goal["value"])
        print(f"  {goal['goal']:<40} {goal['tree']:<12} {value:<9} {verdict}")


def report(result):
    """Print the human-readable report."""
    engine = result["engine"].get("facts")
    host = result["host"]
    print()
    print(f"gofleet.cache benchmark: {result['mode']} scale, {result['repeat']} runs per command "
          f"(median), {result['date']}")
    print(f"host: {host['kernel']}, {host['cpus']} CPUs, {fmt_bytes(host['mem_bytes'])} RAM, "
          f"load {host['loadavg']}, {host['fstype']} {result['workdir']}, Python {host['python']}")
    if not engine:
        print(f"engine: NOT IMPORTABLE ({result['engine'].get('facts_error', '?')})")
        print("        measuring the placeholder `find ROOT -type f | wc -l` instead")
    print()
    report_trees(result)
    print()
    report_facts(result, "engine" if engine else "find|wc")
    print()
    report_prune(result)
    print()
    report_goals(result)
    print()
    print(f"JSON: {result['json_path']}")
    print(f"total {fmt_s(result['total_s'])}")


def engine_sources():
    """Short SHA-256 of each engine source file, to tell which engine a result measured."""
    base = os.path.join(REPO, "plugins", "module_utils")
    out = {}
    if os.path.isdir(base):
        for name in sorted(os.listdir(base)):
            if name.endswith(".py"):
                with open(os.path.join(base, name), "rb") as handle:
                    out[name] = hashlib.sha256(handle.read()).hexdigest()[:12]
    return out


def host_info(path):
    """Machine facts recorded with the results."""
    mem = 0
    try:
        with open("/proc/meminfo", encoding="utf-8") as handle:
            for line in handle:
                if line.startswith("MemTotal:"):
                    mem = int(line.split()[1]) * 1024
    except OSError:
        pass
    fstype = "?"
    try:
        out = subprocess.run(["df", "--output=fstype", path], capture_output=True, text=True,
                             check=False)
        fstype = out.stdout.split()[-1]
    except (OSError, IndexError):
        pass
    return {"kernel": platform.platform(), "cpus": os.cpu_count(), "mem_bytes": mem,
            "fstype": fstype, "python": platform.python_version(),
            "loadavg": " ".join(f"{x:.2f}" for x in os.getloadavg()),
            "free_bytes": shutil.disk_usage(path).free}


# ---------------------------------------------------------------------------
# Main
# ---------------------------------------------------------------------------

def parse_args(argv):
    """Command line options."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--quick", action="store_true",
                        help="CI smoke scale: 20k entries, 500 module versions")
    parser.add_argument("--keep", action="store_true", help="keep the generated trees")
    parser.add_argument("--stat-only", action="store_true",
                        help="measure go_cache_facts with link_entries=false (stat only, -a files not read)")
    parser.add_argument("--reuse", action="store_true",
                        help="reuse trees kept by an earlier --keep run with the same parameters")
    parser.add_argument("--workdir",
                        help="where to generate (default benchmarks/results/work-<scale>)")
    parser.add_argument("--repeat", type=int, default=3, help="measurements per command (median)")
    parser.add_argument("--seed", type=int, default=1, help="generator seed")
    parser.add_argument("--no-prune", action="store_true",
                        help="skip the prune hook even when prune_cache imports")
    parser.add_argument("--prune-repeat", type=int, default=None,
                        help="prune measurements per command (default: 1 with --quick, "
                             "else --repeat); each needs a freshly generated copy")
    parser.add_argument("--json", default=os.path.join(RESULTS, "latest.json"),
                        help="results file (default benchmarks/results/latest.json)")
    return parser.parse_args(argv)


def run_benchmark(args, runner):
    """Generate, measure, report; returns the result dict."""
    mode = "quick" if args.quick else "full"
    workdir = os.path.abspath(args.workdir or os.path.join(RESULTS, "work-" + mode))
    prepare_workdir(workdir)
    ensure_pypath()
    started = time.monotonic()
    probe = child_json(runner.measure(python_cmd("probe"))) or {}
    log(f"engine facts: {bool(probe.get('facts'))}, prune: {bool(probe.get('prune'))}")
    result = {"mode": mode, "repeat": args.repeat, "seed": args.seed, "workdir": workdir,
              "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "engine": probe,
              "candidate": ("gather_cache_facts" + (" link_entries=False" if args.stat_only else "")) if probe.get("facts") else "find -type f | wc -l",
              "host": host_info(workdir), "engine_sources": engine_sources(), "trees": [],
              "prune": [], "prune_skipped": None}
    now = int(time.time())
    specs = QUICK_TREES if args.quick else FULL_TREES
    try:
        for spec in specs:
            result["trees"].append(get_tree(workdir, spec, args.seed, now, args.reuse))
        os.sync()
        result["facts"] = [bench_facts(runner, tree, bool(probe.get("facts")), args.repeat, args.stat_only)
                           for tree in result["trees"]]
        result["python_baseline"] = summarize([runner.measure(python_cmd("noop"))
                                               for _run in range(args.repeat)])
        result["rss_floor"] = summarize([runner.measure(["true"]) for _run in range(args.repeat)])
        if args.no_prune:
            result["prune_skipped"] = "--no-prune"
        elif not probe.get("prune"):
            result["prune_skipped"] = f"prune_cache not importable: {probe.get('prune_error')}"
        else:
            prune_repeat = args.prune_repeat or (1 if args.quick else args.repeat)
            result["prune"] = [bench_prune(runner, tree, workdir, prune_repeat)
                               for tree in result["trees"] if tree["kind"] == "build"]
    finally:
        if not args.keep:
            log("removing generated trees")
            cleanup_workdir(workdir, specs)
    result["goals"] = goals(result["facts"], bool(probe.get("facts")), args.quick)
    result["total_s"] = round(time.monotonic() - started, 1)
    result["json_path"] = os.path.abspath(args.json)
    return result


def main(argv=None):
    """Command line entry point."""
    args = parse_args(argv)
    runner = Runner()  # first, while this process is still small
    try:
        result = run_benchmark(args, runner)
    finally:
        runner.close()
    os.makedirs(os.path.dirname(result["json_path"]), exist_ok=True)
    with open(result["json_path"], "w", encoding="utf-8") as handle:
        json.dump(result, handle, indent=1, sort_keys=True, default=str)
    report(result)
    failed = [e["tree"] for e in result["facts"] + result["prune"] if e["errors"]]
    if failed:
        print(f"FAILED commands on: {', '.join(failed)} (see {result['json_path']})")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
