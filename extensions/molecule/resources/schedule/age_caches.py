# -*- coding: utf-8 -*-
# Copyright (c) gofleet.cache contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

"""Age an account's real Go caches in a molecule instance and write down what a prune must do.

    python3 age_caches.py GOCACHE GOMODCACHE GO_SUM EXPECT_JSON

Run as root after Go filled the caches. Every second build entry (its -a and the -d it names) and
every module file get atime and mtime 40 days back; with the scenarios' policy (max_age 30d,
keep_referenced the projects), the aged entries must go, the fresh ones stay, and the module
versions go.sum references stay (h1 line: the version; /go.mod line: its .mod and .info) while
every other version goes. EXPECT_JSON gets {gocache, gomodcache, aged_actions, fresh_actions,
kept_versions, removed_versions}, versions as escaped "module@version" keys as on disk.
"""

import json
import os
import sys
import time

OLD = time.time() - 40 * 86400


def escape(path):
    """Go's case escaping of module paths and versions in the module cache (A -> !a)."""
    return ''.join('!' + char.lower() if char.isupper() else char for char in path)


def age(path):
    os.utime(path, (OLD, OLD), follow_symlinks=False)


def age_tree(root):
    for dirpath, dirnames, filenames in os.walk(root, topdown=False):
        for name in dirnames + filenames:
            age(os.path.join(dirpath, name))
    age(root)


def build_entries(gocache):
    """[(action id, output path)] of the build cache, sorted."""
    entries = []
    for bucket in sorted(os.listdir(gocache)):
        bucket_dir = os.path.join(gocache, bucket)
        if len(bucket) != 2 or not os.path.isdir(bucket_dir):
            continue
        for name in sorted(os.listdir(bucket_dir)):
            if name.endswith('-a'):
                with open(os.path.join(bucket_dir, name), 'rb') as handle:
                    output_id = handle.read().split()[2].decode()
                entries.append((name[:-2], os.path.join(gocache, output_id[:2], output_id + '-d')))
    return entries


def versions(gomodcache):
    """Escaped module@version keys of every version with a download file."""
    found = set()
    download = os.path.join(gomodcache, 'cache', 'download')
    for dirpath, _dirnames, filenames in os.walk(download):
        if os.path.basename(dirpath) != '@v' or '/sumdb/' in dirpath:
            continue
        module = os.path.relpath(os.path.dirname(dirpath), download)
        for name in filenames:
            if name.endswith(('.mod', '.info', '.zip')):
                found.add('%s@%s' % (module, name.rsplit('.', 1)[0]))
    return found


def referenced(go_sum):
    keys = set()
    with open(go_sum) as handle:
        for line in handle:
            fields = line.split()
            if len(fields) == 3:
                keys.add('%s@%s' % (escape(fields[0]), escape(fields[1].replace('/go.mod', ''))))
    return keys


def main(gocache, gomodcache, go_sum, expect_json):
    entries = build_entries(gocache)
    aged = entries[1::2]
    for _action_id, output in aged:
        if os.path.isdir(output):
            age_tree(output)
        elif os.path.exists(output):
            age(output)
    for action_id, _output in aged:
        age(os.path.join(gocache, action_id[:2], action_id + '-a'))
    all_versions = versions(gomodcache)
    kept = all_versions & referenced(go_sum)
    age_tree(gomodcache)
    expect = {'gocache': gocache, 'gomodcache': gomodcache,
              'aged_actions': sorted(a for a, _o in aged), 'fresh_actions': sorted(a for a, _o in entries[0::2]),
              'kept_versions': sorted(kept), 'removed_versions': sorted(all_versions - kept)}
    with open(expect_json, 'w') as handle:
        json.dump(expect, handle, indent=1)


if __name__ == '__main__':
    main(*sys.argv[1:5])
