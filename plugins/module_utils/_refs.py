# -*- coding: utf-8 -*-
# Copyright (c) gofleet.cache contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

"""Module versions that projects reference (`keep_referenced`): go.sum and go.mod files.

A go.sum line `module version h1:...` means the build needs the version's
source: the whole version is kept.  A line `module version/go.mod h1:...`
means the module graph needs its go.mod: at least .mod and .info are kept.
A go.mod `require` (or `replace` target) keeps the whole version.
"""

from __future__ import annotations

import os
import re

from ansible_collections.gofleet.cache.plugins.module_utils._units import OptionError

# Directories never searched for go.sum/go.mod: VCS metadata, vendored copies,
# test data and extracted module versions (`name@version`: a module cache
# under a searched directory would otherwise reference all of itself).
SKIP_DIRS = frozenset(('.git', '.hg', '.svn', 'node_modules', 'vendor', 'testdata'))
MAX_FILES = 100000

_REQUIRE_LINE = re.compile(r'^\s*(?:require\s+)?(\S+)\s+(v\S+?)(?:\s*//.*)?$')
_REPLACE_LINE = re.compile(r'=>\s*(\S+)\s+(v\S+)\s*(?://.*)?$')


def parse_go_sum(text, full, graph):
    for line in text.splitlines():
        fields = line.split()
        if len(fields) != 3:
            continue
        module, version = fields[0], fields[1]
        if version.endswith('/go.mod'):
            graph.add((module, version[:-len('/go.mod')]))
        else:
            full.add((module, version))


def parse_go_mod(text, full):
    in_block = None
    for raw in text.splitlines():
        line = raw.split('//', 1)[0].strip() if '=>' not in raw else raw.strip()
        if not line:
            continue
        if line.endswith('(') and line.split()[0] in ('require', 'replace', 'exclude', 'retract', 'tool', 'godebug', 'ignore'):
            in_block = line.split()[0]
            continue
        if line == ')':
            in_block = None
            continue
        directive = in_block or line.split()[0]
        if directive == 'require':
            match = _REQUIRE_LINE.match(line)
            if match:
                full.add((match.group(1), match.group(2)))
        elif directive == 'replace':
            match = _REPLACE_LINE.search(line)
            if match:
                full.add((match.group(1), match.group(2)))


def collect(paths, option='keep_referenced'):
    """(full, graph): sets of (module, version) referenced by the files or directory trees in `paths`."""
    full, graph = set(), set()
    files = []
    for path in paths or []:
        if not os.path.isabs(path):
            raise OptionError(option, path, 'path must be absolute')
        if os.path.isfile(path):
            files.append(path)
        elif os.path.isdir(path):
            for dirpath, dirnames, filenames in os.walk(path):
                dirnames[:] = [name for name in dirnames
                               if name not in SKIP_DIRS and not name.startswith('.') and '@' not in name]
                files.extend(os.path.join(dirpath, name) for name in filenames if name in ('go.sum', 'go.mod', 'go.work.sum'))
                if len(files) > MAX_FILES:
                    raise OptionError(option, path, 'more than %d go.sum/go.mod files; name narrower directories'
                                      % MAX_FILES)
        else:
            raise OptionError(option, path, 'no such file or directory')
    for path in files:
        try:
            with open(path, encoding='utf-8', errors='replace') as handle:
                text = handle.read()
        except OSError as exc:
            raise OptionError(option, path, 'cannot read: %s' % exc.strerror)
        if os.path.basename(path) == 'go.mod' or path.endswith('.mod'):
            parse_go_mod(text, full)
        else:
            parse_go_sum(text, full, graph)
    return full, graph
