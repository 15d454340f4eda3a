"""Write a real ``file://`` GOPROXY and a consumer project, offline, stdlib only.

The proxy layout is the one the go command reads (``GOPROXY=file:///DIR``)::

    DIR/<escaped module path>/@v/list          versions, one a line
    DIR/<escaped module path>/@v/<ev>.info     {"Version": ..., "Time": ...}
    DIR/<escaped module path>/@v/<ev>.mod      the module's go.mod
    DIR/<escaped module path>/@v/<ev>.zip      entries "<module>@<version>/<file>"

Paths and versions are case-escaped like Go (``A`` -> ``!a``); zip entries
carry the *unescaped* ``module@version/`` prefix and include ``go.mod``.

Library API (all paths may be ``str`` or ``pathlib.Path``):

- ``Module(path, version, files={}, requires={}, go="1.21", time=None)``
- ``escape_path(s)``, ``escape_version(s)``, ``unescape(s)``
- ``write_module(proxy_dir, module)`` / ``write_proxy(proxy_dir, modules=None)``
- ``default_modules(toolchain_size=...)``: the demo set (see below)
- ``write_project(project_dir, requires=None, imports=None, ...)``: a consumer
  module whose ``main.go`` imports packages of the required modules, so that
  ``go build`` compiles them
- ``proxy_url(proxy_dir)``: the ``file://`` URL for GOPROXY
- ``DEFAULT_REQUIRES``, ``DEFAULT_IMPORTS``, ``DEFAULT_DOWNLOADS``: what the
  default consumer requires/imports, and the extra ``path@version`` arguments
  for ``go mod download`` that put the remaining demo versions (older
  versions, the toolchain) in the module cache.

Demo set (``default_modules()``)::

    example.com/greet                 v1.0.0 v1.1.0 v1.2.0 v1.3.0
    example.com/greet/v2              v2.0.0            (major-version suffix)
    example.com/MixedCase/lib         v0.1.0 v1.0.0 v1.1.0-RC.1
                                      (escaped: example.com/!mixed!case/lib,
                                       v1.1.0-!r!c.1)
    example.com/depender              v1.0.0 (requires greet v1.1.0; go 1.16, so
                                      consumers fetch greet v1.1.0's go.mod only)
                                      v1.1.0 (requires greet v1.2.0)
    example.com/nested/outer          v1.0.0
    example.com/nested/outer/inner    v1.0.0 v1.1.0    (module nested in another's path)
    golang.org/toolchain              v0.0.1-go1.99.0.linux-amd64
                                      (toolchain-like; a bin/go file of
                                       incompressible bytes, 6 MiB by default,
                                       so it is the largest module)

Every demo package is the module's root package and exports
``func Name() string``; ``write_project`` relies on that convention.

CLI::

    python -m tests.support.goproxy --proxy DIR [--project DIR] [--toolchain-size BYTES]

writes the default proxy (and a consumer project) and prints a JSON summary,
including the GOPROXY URL and the extra ``go mod download`` arguments.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import random
import re
import sys
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, Iterable, List, Mapping, Optional, Sequence, Union

__all__ = [
    "Module",
    "escape_path",
    "escape_version",
    "unescape",
    "write_module",
    "write_proxy",
    "default_modules",
    "write_project",
    "proxy_url",
    "DEFAULT_REQUIRES",
    "DEFAULT_IMPORTS",
    "DEFAULT_DOWNLOADS",
    "TOOLCHAIN_MODULE",
    "TOOLCHAIN_VERSION",
    "MIXED_CASE_MODULE",
]

FileData = Union[str, bytes]

# Fixed zip timestamp: zips are byte-for-byte reproducible.
_ZIP_DATE = (2024, 1, 2, 3, 4, 6)

TOOLCHAIN_MODULE = "golang.org/toolchain"
TOOLCHAIN_VERSION = "v0.0.1-go1.99.0.linux-amd64"
MIXED_CASE_MODULE = "example.com/MixedCase/lib"
DEFAULT_TOOLCHAIN_SIZE = 6 * 1024 * 1024

# What the default consumer project requires (go build compiles these).
DEFAULT_REQUIRES: Dict[str, str] = {
    "example.com/greet": "v1.2.0",
    "example.com/greet/v2": "v2.0.0",
    MIXED_CASE_MODULE: "v1.0.0",
    "example.com/depender": "v1.0.0",
    "example.com/nested/outer": "v1.0.0",
    "example.com/nested/outer/inner": "v1.1.0",
}
# Packages main.go imports (each exports Name() string).
DEFAULT_IMPORTS: List[str] = list(DEFAULT_REQUIRES)
# Extra "go mod download" arguments: older versions and the toolchain.
# example.com/greet@v1.1.0 is deliberately absent (only its go.mod may be
# fetched, through depender's requirement) and v1.3.0 is left for tests
# (e.g. to plant an interrupted extraction).
DEFAULT_DOWNLOADS: List[str] = [
    "example.com/greet@v1.0.0",
    MIXED_CASE_MODULE + "@v0.1.0",
    MIXED_CASE_MODULE + "@v1.1.0-RC.1",
    "example.com/nested/outer/inner@v1.0.0",
    "example.com/depender@v1.1.0",
    TOOLCHAIN_MODULE + "@" + TOOLCHAIN_VERSION,
]


def _escape(s: str, what: str) -> str:
    out = []
    for ch in s:
        if ch == "!":
            raise ValueError("%s %r contains '!', which Go does not allow" % (what, s))
        if "A" <= ch <= "Z":
            out.append("!" + ch.lower())
        else:
            out.append(ch)
    return "".join(out)


def escape_path(path: str) -> str:
    """Escape a module path like Go's module.EscapePath (``A`` -> ``!a``)."""
    return _escape(path, "module path")


def escape_version(version: str) -> str:
    """Escape a version like Go's module.EscapeVersion (``A`` -> ``!a``)."""
    return _escape(version, "version")


def unescape(s: str) -> str:
    """Reverse of escape_path/escape_version (``!a`` -> ``A``); rejects bad escapes."""
    if re.search(r"[A-Z]|![^a-z]|!$", s):
        raise ValueError("invalid escaped module path or version %r" % (s,))
    return re.sub(r"!([a-z])", lambda m: m.group(1).upper(), s)


@dataclass
class Module:
    """One module version served by the proxy.

    ``files`` maps slash-separated paths inside the module to contents;
    ``go.mod`` is generated from ``path``/``go``/``requires`` unless given.
    ``time`` is the RFC 3339 time in ``.info`` (a fixed default when None).
    """

    path: str
    version: str
    files: Dict[str, FileData] = field(default_factory=dict)
    requires: Dict[str, str] = field(default_factory=dict)
    go: str = "1.21"
    time: Optional[str] = None

    def gomod(self) -> str:
        """The go.mod text (the ``files['go.mod']`` override if present)."""
        if "go.mod" in self.files:
            data = self.files["go.mod"]
            return data.decode() if isinstance(data, bytes) else data
        text = "module %s\n\ngo %s\n" % (self.path, self.go)
        if self.requires:
            text += "\nrequire (\n"
            for mod, ver in sorted(self.requires.items()):
                text += "\t%s %s\n" % (mod, ver)
            text += ")\n"
        return text

    def info(self) -> dict:
        """The ``.info`` object: Version and Time."""
        return {"Version": self.version, "Time": self.time or "2024-01-02T03:04:05Z"}

    def zip_bytes(self) -> bytes:
        """The module zip: ``<path>@<version>/<file>`` entries, go.mod included."""
        buf = io.BytesIO()
        prefix = "%s@%s/" % (self.path, self.version)
        files = dict(self.files)
        files["go.mod"] = self.gomod()
        with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
            for name in sorted(files):
                data = files[name]
                if isinstance(data, str):
                    data = data.encode()
                zi = zipfile.ZipInfo(prefix + name, date_time=_ZIP_DATE)
                zi.compress_type = zipfile.ZIP_DEFLATED
                zi.external_attr = 0o644 << 16
                zf.writestr(zi, data)
        return buf.getvalue()


def proxy_url(proxy_dir: Union[str, Path]) -> str:
    """The GOPROXY value for a proxy directory: ``file:///abs/dir``."""
    return Path(proxy_dir).resolve().as_uri()


def _write(path: Path, data: FileData) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(data, str):
        data = data.encode()
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    os.replace(str(tmp), str(path))


def _version_key(v: str):
    # Good-enough semver ordering for @v/list (Go does not require it sorted).
    core, _sep, pre = v.lstrip("v").partition("-")
    nums = tuple(int(x) if x.isdigit() else 0 for x in core.split("."))
    return (nums, pre == "", pre)


def write_module(proxy_dir: Union[str, Path], module: Module) -> Path:
    """Write one module version (.info, .mod, .zip) and add it to ``@v/list``.

    Returns the module's ``@v`` directory.
    """
    vdir = Path(proxy_dir) / escape_path(module.path) / "@v"
    ev = escape_version(module.version)
    _write(vdir / (ev + ".info"), json.dumps(module.info()) + "\n")
    _write(vdir / (ev + ".mod"), module.gomod())
    _write(vdir / (ev + ".zip"), module.zip_bytes())
    listed = set()
    lst = vdir / "list"
    if lst.exists():
        listed = {line.strip() for line in lst.read_text().splitlines() if line.strip()}
    listed.add(module.version)
    _write(lst, "".join(v + "\n" for v in sorted(listed, key=_version_key)))
    return vdir


def write_proxy(proxy_dir: Union[str, Path], modules: Optional[Iterable[Module]] = None) -> List[Module]:
    """Write ``modules`` (default: ``default_modules()``) into ``proxy_dir``.

    Returns the list of modules written.
    """
    mods = list(default_modules() if modules is None else modules)
    Path(proxy_dir).mkdir(parents=True, exist_ok=True)
    for m in mods:
        write_module(proxy_dir, m)
    return mods


def _pkg(module_path: str, version: str, body: str = "", imports: Sequence[str] = ()) -> str:
    name = _package_name(module_path)
    text = "package %s\n\n" % name
    for i, imp in enumerate(imports):
        text += 'import dep%d "%s"\n' % (i, imp)
    if imports:
        text += "\n"
    text += "// Name identifies this module version.\n"
    text += 'func Name() string { return "%s@%s"%s }\n' % (module_path, version, body)
    return text


def _package_name(module_path: str) -> str:
    parts = module_path.split("/")
    last = parts[-1]
    if re.fullmatch(r"v[0-9]+", last) and len(parts) > 1:
        last = parts[-2]
    name = re.sub(r"[^a-z0-9_]", "", last.lower())
    return name or "pkg"


def default_modules(toolchain_size: int = DEFAULT_TOOLCHAIN_SIZE) -> List[Module]:
    """The demo module set (see the module docstring); deterministic content."""
    mods: List[Module] = []

    def simple(path: str, version: str, t: str, requires: Optional[Dict[str, str]] = None,
               imports: Sequence[str] = (), extra: Optional[Dict[str, FileData]] = None,
               go: str = "1.21") -> None:
        body = "".join(' + " " + dep%d.Name()' % i for i in range(len(imports)))
        files: Dict[str, FileData] = {
            _package_name(path) + ".go": _pkg(path, version, body, imports),
            "README.md": "# %s %s\n\nDemo module for gofleet.cache tests.\n" % (path, version),
        }
        files.update(extra or {})
        mods.append(Module(path, version, files, dict(requires or {}), go=go, time=t))

    for i, v in enumerate(["v1.0.0", "v1.1.0", "v1.2.0", "v1.3.0"]):
        simple("example.com/greet", v, "2024-0%d-01T00:00:00Z" % (i + 1))
    simple("example.com/greet/v2", "v2.0.0", "2024-06-01T00:00:00Z")
    for i, v in enumerate(["v0.1.0", "v1.0.0", "v1.1.0-RC.1"]):
        simple(MIXED_CASE_MODULE, v, "2024-0%d-15T00:00:00Z" % (i + 1),
               extra={"internal/Doc.txt": "Mixed case file names survive too.\n"})
    # go 1.16 (unpruned module graph): consumers also fetch greet v1.1.0's
    # go.mod, leaving a realistic .mod/.info-only version in the cache.
    simple("example.com/depender", "v1.0.0", "2024-03-01T00:00:00Z",
           requires={"example.com/greet": "v1.1.0"}, imports=["example.com/greet"], go="1.16")
    simple("example.com/depender", "v1.1.0", "2024-04-01T00:00:00Z",
           requires={"example.com/greet": "v1.2.0"}, imports=["example.com/greet"])
    simple("example.com/nested/outer", "v1.0.0", "2024-02-01T00:00:00Z")
    for i, v in enumerate(["v1.0.0", "v1.1.0"]):
        simple("example.com/nested/outer/inner", v, "2024-0%d-10T00:00:00Z" % (i + 2))

    rng = random.Random(20241102)
    blob = rng.getrandbits(8 * toolchain_size).to_bytes(toolchain_size, "little") if toolchain_size > 0 else b""
    mods.append(Module(
        TOOLCHAIN_MODULE, TOOLCHAIN_VERSION,
        files={
            "go.mod": "module golang.org/toolchain\n",
            "VERSION": "go1.99.0\ntime 2024-01-02T03:04:05Z\n",
            "bin/go": blob,
            "README.md": "Toolchain-like module for gofleet.cache tests (not a real Go).\n",
        },
        time="2024-01-02T03:04:05Z",
    ))
    return mods


def write_project(project_dir: Union[str, Path], requires: Optional[Mapping[str, str]] = None,
                  imports: Optional[Sequence[str]] = None, module: str = "example.com/consumer",
                  go: str = "1.22") -> Path:
    """Write a consumer module: ``go.mod`` requiring ``requires`` and ``main.go``.

    ``requires`` defaults to DEFAULT_REQUIRES, ``imports`` (package import paths,
    each exporting ``Name() string``) to the required module paths. Any old
    ``go.sum`` is removed. Returns the project directory.
    """
    reqs = dict(DEFAULT_REQUIRES if requires is None else requires)
    imps = list(reqs if imports is None else imports)
    pdir = Path(project_dir)
    pdir.mkdir(parents=True, exist_ok=True)
    gomod = "module %s\n\ngo %s\n" % (module, go)
    if reqs:
        gomod += "\nrequire (\n" + "".join("\t%s %s\n" % kv for kv in sorted(reqs.items())) + ")\n"
    _write(pdir / "go.mod", gomod)
    main = "package main\n\n"
    if imps:
        main += "import (\n" + "".join('\tm%d "%s"\n' % (i, p) for i, p in enumerate(imps)) + ")\n\n"
    main += "func main() {\n"
    for i in range(len(imps)):
        main += "\tprintln(m%d.Name())\n" % i
    main += "}\n"
    _write(pdir / "main.go", main)
    try:
        (pdir / "go.sum").unlink()
    except FileNotFoundError:
        pass
    return pdir


def main(argv: Optional[Sequence[str]] = None) -> int:
    """CLI entry point (see the module docstring)."""
    ap = argparse.ArgumentParser(prog="python -m tests.support.goproxy",
                                 description="Write a file:// GOPROXY with the demo module set.")
    ap.add_argument("--proxy", required=True, help="directory to write the proxy into")
    ap.add_argument("--project", help="also write a consumer project here")
    ap.add_argument("--toolchain-size", type=int, default=DEFAULT_TOOLCHAIN_SIZE,
                    help="bytes of incompressible data in the toolchain module (default %(default)s)")
    args = ap.parse_args(argv)
    mods = write_proxy(args.proxy, default_modules(args.toolchain_size))
    out = {
        "proxy": str(Path(args.proxy).resolve()),
        "GOPROXY": proxy_url(args.proxy),
        "modules": ["%s@%s" % (m.path, m.version) for m in mods],
        "downloads": DEFAULT_DOWNLOADS,
    }
    if args.project:
        out["project"] = str(write_project(args.project).resolve())
    json.dump(out, sys.stdout, indent=2)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
