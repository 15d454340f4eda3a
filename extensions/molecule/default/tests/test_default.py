# -*- coding: utf-8 -*-
# Copyright: gofleet.cache contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Check go_cache_facts' report of builder's build cache against the instance itself.

converge.yml built a hello-world program as ``builder`` and saved the module's
result to /tmp/go_cache_facts.json; the numbers here are recounted with find(1)
and a few lines of Python inside the instance.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json

import pytest

FACTS_FILE = '/tmp/go_cache_facts.json'
GOCACHE = '/home/builder/.cache/go-build'

# Counts the build cache like Go sees it, skipping fuzz/ (not build entries):
# every file, its bytes, the -a (action) and -d (output) entries, and the -a
# files whose named -d is missing / the -d files no -a names.
COUNT_SCRIPT = r'''
import json, os, re, sys
root = sys.argv[1]
entry = re.compile(r"^[0-9a-f]{64}-[ad]$")
files = size = 0
actions, outputs = {}, set()
for dirpath, dirnames, filenames in os.walk(root):
    if dirpath == root and "fuzz" in dirnames:
        dirnames.remove("fuzz")
    for name in filenames:
        path = os.path.join(dirpath, name)
        if os.path.islink(path):
            continue
        files += 1
        size += os.path.getsize(path)
        if os.path.dirname(dirpath) == root and entry.match(name):
            if name.endswith("-a"):
                with open(path) as f:
                    actions[name[:64]] = f.read().split()[2]
            else:
                outputs.add(name[:64])
    if os.path.dirname(dirpath) == root:
        outputs.update(d[:64] for d in dirnames if entry.match(d) and d.endswith("-d"))
print(json.dumps({
    "files": files, "bytes": size, "actions": len(actions), "outputs": len(outputs),
    "actions_without_output": sum(1 for o in actions.values() if o not in outputs),
    "outputs_without_action": len(outputs - set(actions.values())),
}))
'''


@pytest.fixture(scope='module')
def result(host):
    return json.loads(host.file(FACTS_FILE).content_string)


@pytest.fixture(scope='module')
def build_cache(result):
    caches = [c for c in result['go_cache']['caches'] if c['user'] == 'builder' and c['kind'] == 'build']
    assert len(caches) == 1, result['go_cache']['caches']
    return caches[0]


@pytest.fixture(scope='module')
def counted(host):
    host.check_output('test -d %s', GOCACHE)
    return json.loads(host.check_output('python3 -c %s %s', COUNT_SCRIPT, GOCACHE))


def test_go_build_worked(host):
    out = host.check_output('runuser -u builder -- /home/builder/hello/hello')
    assert out == 'hello from gofleet'


def test_module_reported_no_change(result):
    assert result['changed'] is False


def test_build_cache_location(build_cache):
    assert build_cache['path'] == GOCACHE
    assert build_cache['real_path'] == GOCACHE
    assert build_cache['source'] == 'default'
    assert build_cache['exists'] is True


def test_find_sees_a_real_cache(host, counted):
    # a hello world needs the runtime and fmt: hundreds of actions
    assert counted['actions'] > 50
    assert host.file(GOCACHE + '/README').content_string.startswith(
        'This directory holds cached build artifacts from the Go build system.')


def test_entries_equal_action_files(build_cache, counted):
    assert build_cache['entries'] == counted['actions']


def test_files_and_bytes(build_cache, counted):
    assert build_cache['files'] == counted['files']
    assert build_cache['bytes'] == counted['bytes']
    assert build_cache['disk_bytes'] >= build_cache['bytes'] // 2


def test_no_orphans_after_a_clean_build(build_cache, counted):
    assert counted['actions_without_output'] == 0
    assert counted['outputs_without_action'] == 0
    orphans = build_cache.get('orphans')
    if isinstance(orphans, dict):
        assert orphans.get('actions_without_output', 0) == 0
        assert orphans.get('outputs_without_action', 0) == 0
