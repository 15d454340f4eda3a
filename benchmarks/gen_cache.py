#!/usr/bin/env python
# Copyright: (c) 2025, gofleet.cache contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Generate synthetic Go build caches (GOCACHE) and module caches (GOMODCACHE).

The trees follow the Go toolchain's real on-disk formats (see
docs/go-cache-facts.md and cmd/go/internal/cache, cmd/go/internal/modfetch),
so that the collection's engine and plain tools such as ``du`` see what they
would see on a build server. File contents are deterministic junk: output IDs
are not the SHA-256 of the ``-d`` files and zips are not valid zips, which is
fine for scanning and pruning benchmarks (nothing here is built or unzipped).

Everything is deterministic for a given ``seed`` and ``now``.

Library use::

    from gen_cache import generate_build_cache, generate_module_cache, remove_tree
    stats = generate_build_cache("/tmp/gocache", entries=20000, seed=1)

Command line::

    python benchmarks/gen_cache.py build --root DIR --entries 250000
    python benchmarks/gen_cache.py build --root DIR --files 1000000
    python benchmarks/gen_cache.py module --root DIR --versions 3000
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import math
import os
import random
import shutil
import stat
import sys
import time

README_TEXT = (
    "This directory holds cached build artifacts from the Go build system.\n"
    'Run "go clean -cache" if the directory is getting too large.\n'
    'Run "go clean -fuzzcache" to delete the fuzz cache.\n'
    "See go.dev to learn more about Go.\n"
)

NS = 1_000_000_000
HOUR = 3600
DAY = 86400

# Last-use age mixture: (weight, min age s, max age s).
AGE_MIX = (
    (0.05, 0, HOUR),              # used within the last hour (keep_recent window)
    (0.25, HOUR, 7 * DAY),
    (0.25, 7 * DAY, 30 * DAY),
    (0.25, 30 * DAY, 90 * DAY),
    (0.20, 90 * DAY, 365 * DAY),
)

PAYLOAD_SIZE = 16 << 20

_WFLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0)
_DFLAGS = os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) | getattr(os, "O_CLOEXEC", 0)

EXEC_NAMES = ("stringer", "gopls", "goimports", "mockgen", "protoc-gen-go", "golangci-lint",
              "staticcheck", "dlv", "cover", "vet")


class _Writer:
    """Writes files fast (os.open/os.write/futimens) from a shared junk payload."""

    def __init__(self, rng):
        self.payload = memoryview(
            rng.getrandbits(PAYLOAD_SIZE * 8).to_bytes(PAYLOAD_SIZE, "little"))
        self.files = 0
        self.bytes = 0

    def write(self, name, size, times, dir_fd=None, **how):
        """Create ``name`` (relative to dir_fd) holding ``size`` junk bytes.

        ``times`` is (atime_ns, mtime_ns); keywords: ``mode`` (default 0o666,
        before the umask), ``data`` (exact content instead of junk), ``offset``
        (where in the payload the junk starts).
        """
        data = how.get("data")
        fd = os.open(name, _WFLAGS, how.get("mode", 0o666), dir_fd=dir_fd)
        try:
            if data is not None:
                if data:
                    os.write(fd, data)
                size = len(data)
            else:
                left = size
                pos = how.get("offset", 0) % (PAYLOAD_SIZE - min(size, PAYLOAD_SIZE - 1))
                while left > 0:
                    chunk = min(left, PAYLOAD_SIZE - pos)
                    left -= os.write(fd, self.payload[pos:pos + chunk])
                    pos = 0
            os.utime(fd, ns=times)
        finally:
            os.close(fd)
        self.files += 1
        self.bytes += size
        return size

    def text(self, name, data, times, mode=0o666):
        """Create ``name`` with exact content ``data`` (bytes or str)."""
        if isinstance(data, str):
            data = data.encode()
        return self.write(name, 0, times, data=data, mode=mode)


def _age(rng):
    """Draw a last-use age in seconds from AGE_MIX."""
    r = rng.random()
    for weight, low, high in AGE_MIX:
        if r < weight:
            return rng.uniform(low, high)
        r -= weight
    return rng.uniform(AGE_MIX[-1][1], AGE_MIX[-1][2])


def _d_size(rng):
    """Skewed output size: mostly a few KB, ~3% tens of KB, a rare few MB, some empty."""
    r = rng.random()
    if r < 0.005:
        return 0
    if r < 0.0052:
        return int(math.exp(rng.uniform(math.log(1 << 20), math.log(8 << 20))))
    if r < 0.035:
        return int(rng.lognormvariate(math.log(30000), 1.0))
    return max(1, int(rng.lognormvariate(math.log(1500), 1.1)))


def _check_root(root):
    """Create ``root`` or accept it only when it is an empty directory."""
    if os.path.lexists(root):
        if not os.path.isdir(root) or os.listdir(root):
            raise FileExistsError(f"refusing to generate into non-empty {root}")
    else:
        os.makedirs(root)


def _now(now):
    """Reference time in whole unix seconds."""
    return int(time.time()) if now is None else int(now)


# ---------------------------------------------------------------------------
# Build cache
# ---------------------------------------------------------------------------

BUILD_DEFAULTS = {
    "entries": None,                 # number of -a action entries, or ...
    "files": None,                   # ... total number of regular files
    "seed": 1,
    "now": None,                     # reference unix time for ages (default: now)
    "total_bytes": None,             # scale -d sizes (executables excluded) to about this
    "shared_fraction": 0.12,         # -d named by 2-3 -a (several Go versions)
    "orphan_action_fraction": 0.003,  # -a whose -d is missing
    "orphan_output_fraction": 0.003,  # -d that no -a names
    "exec_every": 2000,              # about one -d in N is a directory holding an executable
    "fuzz_files": None,              # fuzz corpus files (default scales with the tree)
    "corrupt": 3,                    # truncated -a files
}


def _build_options(options):
    """BUILD_DEFAULTS updated with ``options``; unknown names are an error."""
    unknown = set(options) - set(BUILD_DEFAULTS)
    if unknown:
        raise TypeError(f"unknown build cache option(s): {', '.join(sorted(unknown))}")
    merged = dict(BUILD_DEFAULTS, **options)
    if (merged["entries"] is None) == (merged["files"] is None):
        raise ValueError("give exactly one of entries or files")
    return merged


class _Output:  # pylint: disable=too-few-public-methods
    """One planned ``-d`` output and the ``-a`` entries that name it."""

    __slots__ = ("is_exec", "missing", "refs", "size")

    def __init__(self, refs, missing, is_exec, size):
        self.refs = refs          # how many -a name it (0 = orphan -d)
        self.missing = missing    # -d not written: its -a are orphans
        self.is_exec = is_exec    # Go 1.24+ executable: a directory holding one file
        self.size = size


def plan_build_cache(**options):
    """Plan the outputs of a build cache (options as in BUILD_DEFAULTS).

    Returns (outputs, fuzz_files): a list of _Output and the fuzz file count.
    Deterministic for a given seed.
    """
    opts = _build_options(options)
    rng = random.Random(f"plan-{opts['seed']}")
    entries, files = opts["entries"], opts["files"]
    fuzz_files = opts["fuzz_files"]
    if fuzz_files is None:
        fuzz_files = max(20, min(2000, (entries if entries is not None else files // 2) // 500))
    budget = None if files is None else files - 3 - fuzz_files  # README, trim.txt, testexpire.txt
    if budget is not None and budget < 2:
        raise ValueError("files too small")
    outputs = []
    n_actions = n_files = 0
    while (n_actions < entries) if entries is not None else (n_files < budget):
        if rng.random() < opts["orphan_output_fraction"]:
            refs, missing = 0, False
        else:
            refs = 1
            if rng.random() < opts["shared_fraction"]:
                refs = 2 if rng.random() < 0.6 else 3
            missing = rng.random() < opts["orphan_action_fraction"]
        if entries is not None:
            refs = min(refs, entries - n_actions)
        elif budget - n_files == 1:
            refs, missing = 0, False
        else:
            refs = min(refs, budget - n_files - (0 if missing else 1))
        is_exec = bool(refs and not missing and opts["exec_every"]
                       and rng.random() < 1.0 / opts["exec_every"])
        size = int(rng.uniform(1 << 20, 4 << 20)) if is_exec else _d_size(rng)
        outputs.append(_Output(refs, missing, is_exec, size))
        n_actions += refs
        n_files += refs + (0 if missing else 1)
    if opts["total_bytes"] is not None:
        _scale_sizes(outputs, opts["total_bytes"])
    return outputs, fuzz_files


def _scale_sizes(outputs, total_bytes):
    """Scale non-executable written outputs so that all -d bytes come to about total_bytes."""
    natural = sum(o.size for o in outputs if not o.missing and not o.is_exec)
    fixed = sum(o.size for o in outputs if not o.missing and o.is_exec)
    factor = max(0, total_bytes - fixed) / natural if natural else 0.0
    for out in outputs:
        if not out.is_exec:
            out.size = int(out.size * factor)


class _BuildCacheWriter:
    """Writes a planned build cache."""

    def __init__(self, root, opts):
        self.root = root
        self.opts = opts
        self.now_ns = _now(opts["now"]) * NS
        self.rng = random.Random(f"build-{opts['seed']}")
        self.writer = _Writer(self.rng)
        self.stats = {"kind": "build", "root": os.path.abspath(root), "seed": opts["seed"],
                      "now": _now(opts["now"]), "actions": 0, "outputs": 0, "shared_outputs": 0,
                      "orphan_actions": 0, "orphan_outputs": 0, "exec_outputs": 0,
                      "corrupt_actions": 0, "d_bytes": 0, "a_bytes": 0}
        self.shard_fds = []

    def write_top(self):
        """README, trim.txt (last trim, unix seconds, no newline), testexpire.txt."""
        now_ns, rng = self.now_ns, self.rng
        self.writer.text(os.path.join(self.root, "README"), README_TEXT,
                         (now_ns, now_ns - 200 * DAY * NS), mode=0o644)
        last_trim = now_ns // NS - int(rng.uniform(HOUR, 20 * HOUR))
        self.writer.text(os.path.join(self.root, "trim.txt"), str(last_trim),
                         (now_ns, last_trim * NS), mode=0o644)
        expire = now_ns - int(rng.uniform(2 * DAY, 40 * DAY) * NS)
        self.writer.text(os.path.join(self.root, "testexpire.txt"), f"{expire}\n",
                         (expire, expire), mode=0o644)

    def write_outputs(self, outputs):
        """The 256 shard directories with every -d and -a."""
        try:
            for i in range(256):
                path = os.path.join(self.root, f"{i:02x}")
                os.mkdir(path)
                self.shard_fds.append(os.open(path, _DFLAGS))
            corrupt = self.opts["corrupt"]
            corrupt_every = max(1, len(outputs) // corrupt) if corrupt else 0
            for idx, out in enumerate(outputs):
                self._write_output(idx, out, corrupt_every)
        finally:
            for fd in self.shard_fds:
                os.close(fd)
            self.shard_fds = []

    def _write_output(self, idx, out, corrupt_every):
        """One -d (unless missing) and the -a entries naming it."""
        rng, now_ns = self.rng, self.now_ns
        out_id = f"{rng.getrandbits(256):064x}"
        # Last use of each action entry (several Go versions share a -d: ages differ).
        a_times = [now_ns - int(_age(rng) * NS) for _ref in range(out.refs)]
        if a_times:
            d_time = max(a_times) + int(rng.uniform(-HOUR, HOUR) * NS)
            if rng.random() < 0.03:
                d_time -= int(rng.uniform(1, 20) * DAY * NS)  # -a read, output not opened
        else:
            d_time = now_ns - int(_age(rng) * NS)
        d_time = min(d_time, now_ns)
        if not out.missing:
            self._write_d(idx, out, out_id, d_time)
        stats = self.stats
        for a_time in a_times:
            action_id = f"{rng.getrandbits(256):064x}"
            created = a_time - int(rng.uniform(0, 30 * DAY) * NS)
            line = f"v1 {action_id} {out_id} {out.size:20d} {created:20d}\n".encode()
            stats["actions"] += 1
            if (corrupt_every and stats["corrupt_actions"] < self.opts["corrupt"]
                    and idx % corrupt_every == 7):
                line = line[:90]  # truncated write: Go treats it as a miss
                stats["corrupt_actions"] += 1
            elif out.missing:
                stats["orphan_actions"] += 1
            self.writer.write(action_id + "-a", 0, (a_time, a_time),
                              dir_fd=self.shard_fds[int(action_id[:2], 16)], data=line)
            stats["a_bytes"] += len(line)

    def _write_d(self, idx, out, out_id, d_time):
        """The -d file, or (Go 1.24+ executables) the -d directory holding one file."""
        dfd = self.shard_fds[int(out_id[:2], 16)]
        name = out_id + "-d"
        if out.is_exec:
            os.mkdir(name, 0o777, dir_fd=dfd)
            sub = os.open(name, _DFLAGS, dir_fd=dfd)
            try:
                created = d_time - int(self.rng.uniform(0, 5 * DAY) * NS)
                self.writer.write(EXEC_NAMES[idx % len(EXEC_NAMES)], out.size, (d_time, created),
                                  dir_fd=sub, mode=0o777, offset=idx * 4099)
            finally:
                os.close(sub)
            os.utime(name, ns=(d_time, d_time), dir_fd=dfd)
            self.stats["exec_outputs"] += 1
        else:
            self.writer.write(name, out.size, (d_time, d_time), dir_fd=dfd, offset=idx * 4099)
        self.stats["outputs"] += 1
        self.stats["d_bytes"] += out.size
        if out.refs > 1:
            self.stats["shared_outputs"] += 1
        if out.refs == 0:
            self.stats["orphan_outputs"] += 1

    def write_fuzz(self, count):
        """``count`` fuzz corpus files under fuzz/<importpath>/<FuzzName>/<16hex>."""
        if count <= 0:
            return
        targets = []
        for i in range(max(1, min(40, count // 25))):
            pkg = f"example.com/svc{i % 7}/internal/{('parser', 'codec', 'lexer', 'wire')[i % 4]}"
            func = f"Fuzz{('Decode', 'Parse', 'Roundtrip')[i % 3]}{i}"
            targets.append(os.path.join(self.root, "fuzz", pkg, func))
        for target in targets:
            os.makedirs(target)
        rng = self.rng
        for i in range(count):
            raw = rng.getrandbits(8 * rng.randint(4, 600)).to_bytes(600, "little").rstrip(b"\0")
            data = f"go test fuzz v1\n[]byte({raw!r})\n".encode()
            name = hashlib.sha256(data + str(i).encode()).hexdigest()[:16]
            when = self.now_ns - int(_age(rng) * NS)
            self.writer.write(os.path.join(targets[i % len(targets)], name), 0, (when, when),
                              data=data)


def generate_build_cache(root, **options):
    """Write a GOCACHE tree at ``root``; return a stats dict.

    Options are those of BUILD_DEFAULTS: exactly one of ``entries`` (number of
    ``-a`` entries) or ``files`` (total regular files); ``total_bytes`` scales
    ``-d`` sizes (default: the natural distribution, about 5 KB mean).
    """
    started = time.monotonic()
    os.umask(0o022)
    opts = _build_options(options)
    outputs, fuzz_files = plan_build_cache(**opts)
    _check_root(root)
    tree = _BuildCacheWriter(root, opts)
    tree.write_top()
    tree.write_outputs(outputs)
    tree.write_fuzz(fuzz_files)
    stats = tree.stats
    stats.update(fuzz_files=fuzz_files, files=tree.writer.files, bytes=tree.writer.bytes,
                 seconds=round(time.monotonic() - started, 3))
    return stats


# ---------------------------------------------------------------------------
# Module cache
# ---------------------------------------------------------------------------

WORDS = ("api", "auth", "aws", "bolt", "cache", "chi", "cli", "cloud", "cobra", "color", "config",
         "cron", "crypto", "db", "dns", "echo", "errors", "fiber", "flag", "fs", "gin", "glob",
         "grpc", "http", "json", "jwt", "kafka", "log", "lru", "metrics", "mock", "mux", "nats",
         "oauth", "otel", "pgx", "pool", "prom", "proto", "queue", "redis", "retry", "rpc", "s3",
         "sql", "ssh", "stats", "sync", "tar", "term", "toml", "trace", "uuid", "viper", "web",
         "xml", "yaml", "zap", "zip")
OWNERS = ("acme", "corp", "devtools", "infra", "labs", "oss", "platform", "tools", "team", "dev")
CAPS_OWNERS = ("Azure", "BurntSushi", "DataDog", "GoogleCloudPlatform", "IBM", "Masterminds",
               "Microsoft", "NYTimes", "ProtonMail", "PuerkitoBio", "RoaringBitmap", "Shopify")
GOLANG_X = ("crypto", "exp", "mod", "net", "oauth2", "sync", "sys", "term", "text", "time",
            "tools")
TOOL_FILES = (("bin/go", 3 << 20), ("bin/gofmt", 1 << 20),
              ("pkg/tool/linux_amd64/compile", 2 << 20), ("pkg/tool/linux_amd64/link", 2 << 20),
              ("pkg/tool/linux_amd64/asm", 1 << 20), ("pkg/tool/linux_amd64/vet", 1 << 20),
              ("VERSION", 0), ("go.env", 0), ("LICENSE", 0))


def escape_path(path):
    """Escape a module path or version like Go (uppercase -> '!' + lowercase)."""
    return "".join("!" + c.lower() if "A" <= c <= "Z" else c for c in path)


def semver_key(version):
    """Sort key following golang.org/x/mod/semver.Compare (build suffix ignored)."""
    core = version[1:].split("+", 1)[0]
    release, _dash, pre = core.partition("-")
    nums = tuple(int(x) for x in (release.split(".") + ["0", "0"])[:3])
    if not pre:
        return (nums, 1, (), version)
    ids = tuple((0, int(p), "") if p.isdigit() else (1, 0, p) for p in pre.split("."))
    return (nums, 0, ids, version)


def _host_path(rng, major):
    """A module path without major suffix: (path, major)."""
    r = rng.random()
    if r < 0.03:
        return f"golang.org/x/{rng.choice(GOLANG_X)}", major
    if r < 0.06:
        major = max(1, major)
        return f"gopkg.in/{rng.choice(WORDS)}.v{major}", major
    if r < 0.09:
        return f"k8s.io/{rng.choice(WORDS)}", major
    if r < 0.12:
        return f"cloud.google.com/go/{rng.choice(WORDS)}", major
    if r < 0.14:
        return (f"example.com/Mixed{rng.choice(WORDS).capitalize()}/{rng.choice(WORDS)}Lib",
                major)
    host = "gitlab.com" if rng.random() < 0.06 else "github.com"
    if rng.random() < 0.12:
        owner = rng.choice(CAPS_OWNERS)
    else:
        owner = f"{rng.choice(OWNERS)}-{rng.choice(WORDS)}"
    repo = f"{rng.choice(WORDS)}-{rng.choice(WORDS)}"
    if rng.random() < 0.05:
        repo = repo.capitalize()
    return f"{host}/{owner}/{repo}", major


def _module_path(rng, used):
    """Invent a new, unique module path (some mixed-case, some /vN, some +incompatible)."""
    while True:
        r = rng.random()
        major = 0 if r < 0.4 else 1 if r < 0.85 else rng.randint(2, 5)
        path, major = _host_path(rng, major)
        suffix = ""
        if major >= 2 and not path.startswith("gopkg.in/"):
            if rng.random() < 0.6:
                path += f"/v{major}"
            else:
                suffix = "+incompatible"
        if path not in used:
            used.add(path)
            return path, major, suffix


def _versions(rng, count, major, suffix, now):
    """Ascending list of (version, commit unix time) for one module."""
    out = []
    when = now - rng.uniform(60 * DAY, 5 * 365 * DAY)
    step = max(DAY, (now - when) / (count + 1))
    minor, patch = rng.randint(0, 9), rng.randint(0, 5)
    pseudo_only = major == 0 and rng.random() < 0.1
    while len(out) < count:
        when += rng.uniform(0.3, 1.0) * step
        # pseudo-version tail: commit time and 12 hex digits of the commit hash
        rev = f"{time.strftime('%Y%m%d%H%M%S', time.gmtime(when))}-{rng.getrandbits(48):012x}"
        if pseudo_only:
            out.append((f"v0.0.0-{rev}", when))
            continue
        r = rng.random()
        if rng.random() < 0.3:
            minor, patch = minor + 1, 0
        else:
            patch += 1
        base = f"v{major}.{minor}.{patch}"
        if r < 0.08:
            out.append((f"{base}-0.{rev}{suffix}", when))
        elif r < 0.13:
            pre = rng.choice(("rc.1", "beta.1", "alpha.2", "RC1", "Beta2"))
            out.append((f"{base}-{pre}{suffix}", when))
            if len(out) < count:
                out.append((base + suffix, when + 3600))
        else:
            out.append((base + suffix, when))
    out = out[:count]
    out.sort(key=lambda item: semver_key(item[0]))
    return out


def _layout(rng, big=False):
    """File layout [(relative path, size)] of one module's source tree."""
    if big:
        count = int(rng.uniform(600, 2000))
    else:
        count = min(1500, max(1, int(rng.lognormvariate(math.log(12), 1.0))))
    pkgs = [""] + ["/".join(rng.choice(WORDS) for _part in range(rng.randint(1, 3))) + "/"
                   for _pkg in range(max(1, count // 8))]
    files = [("go.mod", 0), ("LICENSE", 11357), ("README.md", int(rng.uniform(500, 9000)))]
    seen = {f[0] for f in files}
    for i in range(count):
        name = f"{rng.choice(pkgs)}{rng.choice(WORDS)}{'_test' if i % 4 == 3 else ''}.go"
        if name in seen:
            name = f"{name[:-3]}{i}.go"
        seen.add(name)
        files.append((name, max(40, int(rng.lognormvariate(math.log(2500), 1.0)))))
    return files


def _plan_modules(rng, versions):
    """[(module path, major, version suffix, version count)] adding up to ``versions``."""
    used = set()
    plan = []
    left = versions
    while left > 0:
        r = rng.random()
        if r < 0.5:
            count = 1
        elif r < 0.75:
            count = rng.randint(2, 3)
        elif r < 0.93:
            count = rng.randint(4, 10)
        else:
            count = rng.randint(11, 40)
        count = min(count, left)
        plan.append(_module_path(rng, used) + (count,))
        left -= count
    return plan


def _toolchain_layout(rng):
    """Files of a (miniature) extracted golang.org/toolchain version."""
    return list(TOOL_FILES) + [(f"src/{rng.choice(WORDS)}/{rng.choice(WORDS)}{j}.go",
                                max(40, int(rng.lognormvariate(math.log(6000), 1.0))))
                               for j in range(300)]


def _readonly_tree(top, when_ns):
    """Make every directory under ``top`` 0555 (children first) and set its times."""
    dirs = [walked[0] for walked in os.walk(top)]
    for dirpath in reversed(dirs):
        os.utime(dirpath, ns=(when_ns, when_ns))
        os.chmod(dirpath, 0o555)


class _ModuleCacheWriter:
    """Writes a GOMODCACHE tree."""

    def __init__(self, root, seed, now, zip_ratio):
        self.root = root
        self.download = os.path.join(root, "cache", "download")
        self.now_ns = now * NS
        self.zip_ratio = zip_ratio
        self.rng = random.Random(f"module-{seed}")
        self.writer = _Writer(self.rng)
        self.stats = {"kind": "module", "root": os.path.abspath(root), "seed": seed, "now": now}

    def bump(self, key, amount=1):
        """Add ``amount`` to counter ``key``."""
        self.stats[key] = self.stats.get(key, 0) + amount

    def write_modules(self, versions, toolchains):
        """cache/lock and ``versions - toolchains`` versions of invented modules."""
        os.makedirs(self.download)
        self.writer.text(os.path.join(self.root, "cache", "lock"), b"",
                         (self.now_ns, self.now_ns - 90 * DAY * NS))
        partial_every = max(1, versions // max(2, versions // 500))
        for module in _plan_modules(self.rng, versions - toolchains):
            self._write_module(module, partial_every)

    def _write_module(self, module, partial_every):
        """All versions of one module and its @v/list."""
        path, major, suffix, count = module
        layout = _layout(self.rng, big=self.rng.random() < 0.004)
        vdir = os.path.join(self.download, escape_path(path), "@v")
        os.makedirs(vdir)
        listed = []
        for version, commit_time in _versions(self.rng, count, major, suffix, self.now_ns // NS):
            seq = self.stats.get("versions", 0) + 1
            r = self.rng.random()
            if seq % partial_every == 1:
                state = "partial"
            elif seq % (partial_every + 3) == 2:
                state = "ziptmp"
            else:
                state = "graph" if r < 0.20 else "complete"
            self._write_version(vdir, (path, version, commit_time), state, layout)
            listed.append(version)
        self._write_list(vdir, listed, self.now_ns - int(_age(self.rng) * NS))
        self.bump("modules")

    def _write_list(self, vdir, listed, when):
        """@v/list: the versions whose .mod exists, semver order, one per line."""
        listed = sorted(listed, key=semver_key)
        self.writer.text(os.path.join(vdir, "list"), "".join(v + "\n" for v in listed),
                         (self.now_ns, when))

    def _extract(self, top, module, layout, when_ns):
        """Write extracted files (0444) of ``module`` under ``top`` (dirs stay writable)."""
        made = set()
        for rel, size in layout:
            full = os.path.join(top, os.path.dirname(rel))
            if full not in made:
                os.makedirs(full, exist_ok=True)
                made.add(full)
            if rel == "go.mod":
                self.writer.text(os.path.join(top, rel), f"module {module}\n\ngo 1.21\n",
                                 (when_ns, when_ns), mode=0o444)
            else:
                self.writer.write(os.path.join(top, rel), size, (when_ns, when_ns), mode=0o444,
                                  offset=self.rng.getrandbits(24))

    def _write_meta(self, base, ver):
        """V.info and V.mod; returns (last used, downloaded) in ns (atime, mtime)."""
        path, version, commit_time = ver
        rng, now_ns = self.rng, self.now_ns
        downloaded = max(int(commit_time * NS), now_ns - int(rng.uniform(0, 700) * DAY * NS))
        downloaded = min(downloaded + int(rng.uniform(0, 30) * DAY * NS), now_ns)
        times = (downloaded + int(rng.random() * (now_ns - downloaded)), downloaded)
        info = {"Version": version,
                "Time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(commit_time))}
        if rng.random() < 0.5 and path.startswith("github.com/"):
            info["Origin"] = {"VCS": "git", "URL": "https://" + path,
                              "Hash": f"{rng.getrandbits(160):040x}", "Ref": "refs/tags/" + version}
        self.writer.text(base + ".info", json.dumps(info), times)
        self.writer.text(base + ".mod", f"module {path}\n\ngo 1.{rng.randint(13, 24)}\n\n"
                         f"require (\n\tgolang.org/x/sys v0.{rng.randint(1, 30)}.0\n)\n", times)
        self.bump("versions")
        return times

    def _write_version(self, vdir, ver, state, layout):
        """One module version's download files (and extracted dir) in ``state``."""
        path, version = ver[:2]
        rng, writer = self.rng, self.writer
        base = os.path.join(vdir, escape_path(version))
        times = self._write_meta(base, ver)
        if state == "graph":
            self.bump("graph_only")
            return
        stamp = (times[1], times[1])  # download time
        writer.text(base + ".lock", b"", stamp)
        zip_size = max(200, int(sum(item[1] for item in layout) * self.zip_ratio))
        if state == "ziptmp":
            writer.write(f"{base}.zip{rng.randint(10 ** 8, 10 ** 9)}.tmp", zip_size // 3, stamp,
                         offset=rng.getrandbits(24))
            self.bump("zip_tmp")
            return
        writer.write(base + ".zip", zip_size, stamp, offset=rng.getrandbits(24))
        top = os.path.join(self.root, escape_path(path) + "@" + escape_path(version))
        if state == "partial":
            writer.text(base + ".partial", b"", stamp)
            self._extract(top, path, layout[:max(1, len(layout) // 2)], times[1])
            self.bump("partial")
            return
        self._extract(top, path, layout, times[1])
        _readonly_tree(top, times[1])
        writer.text(base + ".ziphash", b"h1:" + base64.b64encode(
            hashlib.sha256(f"{path}@{version}".encode()).digest()), times)
        self.bump("complete")
        self.bump("extracted_files", len(layout))

    def write_toolchains(self, count):
        """golang.org/toolchain versions (small stand-ins for the ~250 MB real ones)."""
        if count <= 0:
            return
        vdir = os.path.join(self.download, "golang.org", "toolchain", "@v")
        os.makedirs(vdir)
        listed = [self._write_toolchain(vdir, i) for i in range(count)]
        self._write_list(vdir, listed, self.now_ns)
        self.bump("modules")

    def _write_toolchain(self, vdir, i):
        """One golang.org/toolchain version; returns the version."""
        version = f"v0.0.1-go1.{21 + i // 2}.{3 + (i % 2) * 4}.linux-amd64"
        layout = _toolchain_layout(self.rng)
        when = self.now_ns - int(self.rng.uniform(1, 300) * DAY * NS)
        base = os.path.join(vdir, version)
        info = {"Version": version, "Time": "2024-01-01T00:00:00Z"}
        self.writer.text(base + ".info", json.dumps(info), (when, when))
        self.writer.text(base + ".mod", "module golang.org/toolchain\n", (when, when))
        self.writer.text(base + ".lock", b"", (when, when))
        self.writer.write(base + ".zip", 6 << 20, (when, when), offset=i * 7919)
        top = os.path.join(self.root, "golang.org", "toolchain@" + version)
        self._extract(top, "golang.org/toolchain", layout, when)
        for rel, _size in TOOL_FILES:
            if rel.startswith(("bin/", "pkg/tool/")):
                os.chmod(os.path.join(top, rel), 0o555)
        _readonly_tree(top, when)
        digest = base64.b64encode(hashlib.sha256(version.encode()).digest())
        self.writer.text(base + ".ziphash", b"h1:" + digest, (when, when))
        for key in ("versions", "complete", "toolchains"):
            self.bump(key)
        return version

    def write_sumdb(self, versions):
        """cache/download/sumdb/sum.golang.org tiles and lookups."""
        rng = self.rng
        base = os.path.join(self.download, "sumdb", "sum.golang.org")
        for level in range(3):
            for _tile in range(max(4, versions // (20 * (level + 1) ** 3))):
                tile = os.path.join(base, "tile", "8", str(level),
                                    _tile_path(rng.randint(0, 4000 >> level)))
                if os.path.exists(tile):
                    continue
                os.makedirs(os.path.dirname(tile), exist_ok=True)
                when = self.now_ns - int(_age(rng) * NS)
                self.writer.write(tile, 8192, (when, when), offset=rng.getrandbits(24))
                self.bump("sumdb_files")
        for i in range(max(4, versions // 50)):
            mod = f"github.com/{rng.choice(OWNERS)}/{rng.choice(WORDS)}"
            lookup = os.path.join(base, "lookup", f"{escape_path(mod)}@v1.{i}.0")
            os.makedirs(os.path.dirname(lookup), exist_ok=True)
            when = self.now_ns - int(_age(rng) * NS)
            body = (f"{rng.randint(1, 10 ** 7)}\n{mod} v1.{i}.0 h1:{'A' * 43}=\n\n"
                    f"go.sum database tree\n{rng.randint(10 ** 7, 10 ** 8)}\n")
            self.writer.text(lookup, body, (when, when))
            self.bump("sumdb_files")

    def write_vcs(self, count):
        """cache/vcs/<sha256>/ bare git skeletons with their .info and .lock."""
        rng = self.rng
        vcs = os.path.join(self.root, "cache", "vcs")
        os.makedirs(vcs)
        for i in range(count):
            key = f"git3:https://git.example.com/private/repo{i}"
            top = os.path.join(vcs, hashlib.sha256(key.encode()).hexdigest())
            when = self.now_ns - int(_age(rng) * NS)
            self.writer.text(top + ".info", key, (when, when))
            self.writer.text(top + ".lock", b"", (when, when))
            pack = f"pack-{rng.getrandbits(160):040x}"
            for rel, size in (("HEAD", 0), ("config", 0), ("description", 0), ("FETCH_HEAD", 0),
                              ("shallow", 0),
                              (f"objects/pack/{pack}.pack", int(rng.uniform(1e5, 4e6))),
                              (f"objects/pack/{pack}.idx", 4096), ("refs/tags/.keep", 0),
                              ("refs/heads/.keep", 0)):
                full = os.path.join(top, rel)
                os.makedirs(os.path.dirname(full), exist_ok=True)
                data = b"ref: refs/heads/main\n" if rel == "HEAD" else (b"" if size == 0 else None)
                self.writer.write(full, size, (when, when), data=data, mode=0o644,
                                  offset=rng.getrandbits(24))
            self.bump("vcs_dirs")


def _tile_path(index):
    """Tile index as Go's tlog path elements: 1234067 -> x001/x234/067."""
    parts = [f"{index % 1000:03d}"]
    index //= 1000
    while index:
        parts.append(f"x{index % 1000:03d}")
        index //= 1000
    return "/".join(reversed(parts))


MODULE_DEFAULTS = {
    "seed": 1,
    "now": None,          # reference unix time for ages (default: now)
    "toolchains": None,   # golang.org/toolchain versions, counted in ``versions``
    "zip_ratio": 0.35,    # .zip size / extracted size
}


def generate_module_cache(root, versions, **options):
    """Write a GOMODCACHE tree with ``versions`` module versions at ``root``; return stats.

    Options are those of MODULE_DEFAULTS.

    Mix: ~76% complete versions (info, mod, zip, ziphash, lock and a read-only
    extracted dir), ~20% graph-only (.info + .mod), a few interrupted
    extractions (.partial + partial dir, no .ziphash), a few zip download
    leftovers (``V.zip123.tmp``), golang.org/toolchain versions,
    cache/download/sumdb tiles and lookups, cache/vcs work dirs and cache/lock.
    """
    started = time.monotonic()
    unknown = set(options) - set(MODULE_DEFAULTS)
    if unknown:
        raise TypeError(f"unknown module cache option(s): {', '.join(sorted(unknown))}")
    opts = dict(MODULE_DEFAULTS, **options)
    toolchains = opts["toolchains"]
    if toolchains is None:
        toolchains = max(2, min(6, versions // 600))
    os.umask(0o022)
    _check_root(root)
    tree = _ModuleCacheWriter(root, opts["seed"], _now(opts["now"]), opts["zip_ratio"])
    tree.write_modules(versions, toolchains)
    tree.write_toolchains(toolchains)
    tree.write_sumdb(versions)
    tree.write_vcs(max(2, versions // 400))
    stats = tree.stats
    stats.update(files=tree.writer.files, bytes=tree.writer.bytes,
                 seconds=round(time.monotonic() - started, 3))
    return stats


# ---------------------------------------------------------------------------
# Removal
# ---------------------------------------------------------------------------

def remove_tree(path):
    """Remove a generated tree, first making read-only directories writable."""
    if not os.path.lexists(path):
        return
    if os.path.isdir(path) and not os.path.islink(path):
        for dirpath, dirnames, _files in os.walk(path):
            for name in dirnames:
                full = os.path.join(dirpath, name)
                mode = os.lstat(full).st_mode
                if stat.S_ISDIR(mode) and not mode & stat.S_IWUSR:
                    os.chmod(full, stat.S_IMODE(mode) | stat.S_IRWXU)
        os.chmod(path, stat.S_IMODE(os.stat(path).st_mode) | stat.S_IRWXU)
        shutil.rmtree(path)
    else:
        os.unlink(path)


# ---------------------------------------------------------------------------
# Command line
# ---------------------------------------------------------------------------

def _size(text):
    """Parse a byte size such as 2GB, 500MiB or 123456."""
    units = {"": 1, "B": 1, "KB": 10 ** 3, "MB": 10 ** 6, "GB": 10 ** 9, "TB": 10 ** 12,
             "KIB": 1 << 10, "MIB": 1 << 20, "GIB": 1 << 30, "TIB": 1 << 40}
    text = text.strip().upper()
    num = text.rstrip("KMGTIB")
    unit = text[len(num):]
    if unit not in units:
        raise argparse.ArgumentTypeError(f"bad size {text!r}")
    return int(float(num) * units[unit])


def _parser():
    """The command line parser."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    sub = parser.add_subparsers(dest="command", required=True)
    build = sub.add_parser("build", help="generate a GOCACHE tree")
    count = build.add_mutually_exclusive_group(required=True)
    count.add_argument("--entries", type=int, help="number of -a action entries")
    count.add_argument("--files", type=int, help="total number of regular files")
    build.add_argument("--bytes", type=_size, dest="total_bytes",
                       help="scale -d sizes to about this total (e.g. 2GB); "
                            "default: natural distribution (~5 KB mean)")
    build.add_argument("--shared-fraction", type=float, default=0.12,
                       help="fraction of -d named by 2-3 -a (several Go versions)")
    build.add_argument("--fuzz-files", type=int, default=None, help="fuzz corpus files")
    module = sub.add_parser("module", help="generate a GOMODCACHE tree")
    module.add_argument("--versions", type=int, required=True, help="number of module versions")
    module.add_argument("--toolchains", type=int, default=None,
                        help="golang.org/toolchain versions (counted in --versions)")
    for each in (build, module):
        each.add_argument("--root", required=True,
                          help="directory to create (must be absent or empty)")
        each.add_argument("--seed", type=int, default=1, help="random seed (default 1)")
        each.add_argument("--now", type=int, default=None,
                          help="reference unix time for ages (default: current time)")
    return parser


def main(argv=None):
    """Command line entry point: prints the generator's stats as JSON."""
    args = _parser().parse_args(argv)
    try:
        if args.command == "build":
            stats = generate_build_cache(args.root, entries=args.entries, files=args.files,
                                         seed=args.seed, now=args.now,
                                         total_bytes=args.total_bytes,
                                         shared_fraction=args.shared_fraction,
                                         fuzz_files=args.fuzz_files)
        else:
            stats = generate_module_cache(args.root, args.versions, seed=args.seed, now=args.now,
                                          toolchains=args.toolchains)
    except (OSError, ValueError) as exc:
        print(f"gen_cache: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(stats, indent=1, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
