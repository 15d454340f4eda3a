#!/usr/bin/env python
# -*- coding: utf-8 -*-
# Copyright (c) gofleet.cache contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

"""Make the demo's real Go caches: an account, a local module proxy, a real build.

As the account `gofleet-demo` (created if missing), with Go's default cache
locations in its home: write a file:// GOPROXY with the test suite's demo
modules, `go mod download` them and `go build` a program that uses them.
Then age part of the caches to look like two months of use (old module
versions and half of the build entries backdated), so that the audit and the
dry-run prune have something to show.  Re-running starts from scratch.
"""

from __future__ import annotations

import os
import pwd
import random
import subprocess
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

from tests.support import goproxy, gorun  # noqa: E402  pylint: disable=wrong-import-position

DEMO_USER = 'gofleet-demo'
DAY = 86400


def ensure_account(name):
    try:
        return pwd.getpwnam(name)
    except KeyError:
        subprocess.check_call(['useradd', '--create-home', '--shell', '/bin/bash', name])
        return pwd.getpwnam(name)


def backdate(path, seconds):
    os.utime(path, (seconds, seconds), follow_symlinks=False)


def age_caches(gocache, gomodcache, now):
    """Backdate the versions the project does not build with (45-75 days) and half of the build entries."""
    rng = random.Random(42)
    aged_versions = 0
    for spec in goproxy.DEFAULT_DOWNLOADS:
        module, _at, version = spec.partition('@')
        at_v = os.path.join(gomodcache, 'cache', 'download', goproxy.escape_path(module), '@v')
        prefix = goproxy.escape_version(version) + '.'
        when = now - rng.randint(45, 75) * DAY
        for name in os.listdir(at_v):
            if name.startswith(prefix):
                backdate(os.path.join(at_v, name), when)
        aged_versions += 1
    aged_entries = 0
    for index in range(256):
        subdir = os.path.join(gocache, '%02x' % index)
        for name in sorted(os.listdir(subdir)):
            if name.endswith('-a') and rng.random() < 0.5:
                # An entry's last use is the newer of its -a and -d: age both.
                when = now - rng.randint(2, 60) * DAY
                action = os.path.join(subdir, name)
                with open(action, 'rb') as handle:
                    output_id = handle.read()[68:132].decode('ascii', 'replace')
                output = os.path.join(gocache, output_id[:2], output_id + '-d')
                backdate(action, when)
                if os.path.lexists(output):
                    backdate(output, when)
                aged_entries += 1
    return aged_versions, aged_entries


def main():
    now = time.time()
    user = ensure_account(DEMO_USER)
    home = user.pw_dir
    gocache = os.path.join(home, '.cache', 'go-build')
    gomodcache = os.path.join(home, 'go', 'pkg', 'mod')
    env = gorun.go_env(home)
    gorun.reset_caches(DEMO_USER, dict(env, GOCACHE=gocache, GOMODCACHE=gomodcache))
    work = os.path.join(home, 'demo')
    subprocess.check_call(['rm', '-rf', work])
    proxy, project = os.path.join(work, 'proxy'), os.path.join(work, 'app')
    goproxy.write_proxy(proxy)
    goproxy.write_project(project)
    os.chown(work, user.pw_uid, user.pw_gid)
    started = time.time()
    gorun.populate_caches(DEMO_USER, env, proxy, project, downloads=goproxy.DEFAULT_DOWNLOADS)
    versions, entries = age_caches(gocache, gomodcache, now)
    print('demo caches of %s: real go mod download + go build in %.0fs; backdated %d old module versions '
          'and %d build entries to look like two months of use' % (DEMO_USER, time.time() - started, versions, entries))


if __name__ == '__main__':
    main()
