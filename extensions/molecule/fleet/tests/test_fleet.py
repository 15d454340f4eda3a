# -*- coding: utf-8 -*-
# Copyright: gofleet.cache contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The fleet after converge.yml ran audit, prune --check, prune, audit and an audit from the fact cache.

On each host: every cache row of the last report is what the disk holds, what the policy had to remove is
gone and the rest is there (as age_caches.py wrote down in prepare), Go still builds offline as each account.
On the controller: the fleet totals are the sum of the hosts' disks, the dry run predicted the real run to the
byte, the second audit's growth is what the prune removed, and the report from the fact cache is the last
audit's. Tests run in file order: the disk is compared before Go builds into the caches again.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import os
import sys

import testinfra
import yaml

SCENARIO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(SCENARIO, '..', 'resources', 'schedule'))
import checks  # noqa: E402  pylint: disable=wrong-import-position

with open(os.path.join(SCENARIO, 'molecule.yml')) as _handle:
    HOST_VARS = yaml.safe_load(_handle)['provisioner']['inventory']['host_vars']
RUNS = ('audit', 'check', 'prune', 'audit-after', 'cached')
FORMATS = ('report.json', 'report.csv', 'report.md', 'report.html')

# Regular files and their bytes under each cache root, as go_cache_facts counts them: symbolic links
# skipped, a build cache without its fuzz/ directory. argv: JSON list of [path, kind].
DISK_SCRIPT = r'''
import json, os, sys
counts = []
for root, kind in json.loads(sys.argv[1]):
    files = size = 0
    for dirpath, dirnames, filenames in os.walk(root):
        if kind == "build" and dirpath == root and "fuzz" in dirnames:
            dirnames.remove("fuzz")
        for name in filenames:
            path = os.path.join(dirpath, name)
            if not os.path.islink(path) and os.path.isfile(path):
                files += 1
                size += os.lstat(path).st_size
    counts.append({"files": files, "bytes": size})
print(json.dumps(counts))
'''


def fleet_dir():
    return os.path.join(os.environ['MOLECULE_EPHEMERAL_DIRECTORY'], 'fleet')


def report(run):
    with open(os.path.join(fleet_dir(), 'reports', run, 'report.json')) as handle:
        return json.load(handle)


def by_host(rows):
    return dict((row['host'], row) for row in rows)


def host_name(host):
    return host.backend.name


def disk(host, caches):
    """[{files, bytes}] of each cache row, counted in the instance."""
    spec = json.dumps([[cache['path'], cache['kind']] for cache in caches])
    return json.loads(host.check_output('python3 -c %s %s', DISK_SCRIPT, spec))


# --------------------------------------------------------------------------- controller


def test_every_run_wrote_every_format():
    for run in RUNS:
        written = os.listdir(os.path.join(fleet_dir(), 'reports', run))
        assert set(FORMATS) <= set(written), (run, written)
        assert report(run)['totals']['hosts'] == len(HOST_VARS), run
    assert report('audit')['selections']['builders']['result'] == ['gofleet-fleet-b1', 'gofleet-fleet-b2']


def test_every_account_kind_and_shared_cache_is_reported():
    rows = sorted((row['host'], row['path'] if row['source'] == 'explicit' else row['user'], row['kind'])
                  for row in report('cached')['caches'])
    assert rows == sorted([(name, user, kind) for name, host_vars in HOST_VARS.items()
                           for user in host_vars['gofleet_users'] for kind in ('build', 'module', 'fuzz')]
                          + [(name, cache['path'], cache['kind']) for name, host_vars in HOST_VARS.items()
                             for cache in host_vars.get('gofleet_caches', [])])
    assert report('cached')['failed'] == []


def test_the_prune_left_the_shared_cache_alone():
    for run in ('check', 'prune'):
        shared = [row for row in report(run)['caches'] if row['source'] == 'explicit']
        assert shared and all(row['reclaim_bytes'] is None for row in shared), run
    before = [row for row in report('audit')['caches'] if row['source'] == 'explicit']
    after = [row for row in report('audit-after')['caches'] if row['source'] == 'explicit']
    assert [(row['bytes'], row['entries']) for row in before] == [(row['bytes'], row['entries']) for row in after]
    assert before[0]['entries'] > 0 and before[0]['oldest_used_age_s'] < 86400


def test_fleet_totals_are_the_sum_of_the_hosts_disks():
    last = report('cached')
    disk_bytes = disk_files = 0
    for name, row in by_host(last['hosts']).items():
        counted = [cache for cache in last['caches'] if cache['host'] == name and cache['counted']]
        found = disk(testinfra.get_host('podman://' + name), counted)
        assert row['bytes'] == sum(item['bytes'] for item in found), name
        disk_bytes += sum(item['bytes'] for item in found)
        disk_files += sum(item['files'] for item in found)
    assert last['totals']['bytes'] == disk_bytes and last['totals']['files'] == disk_files
    by_kind = last['totals']['by_kind']
    assert sum(kind['bytes'] for kind in by_kind.values()) == disk_bytes


def test_the_dry_run_predicted_the_prune_to_the_byte():
    check, prune = report('check'), report('prune')
    assert check['reclaim']['mode'] == 'check' and prune['reclaim']['mode'] == 'applied'
    assert by_host(check['reclaim']['hosts']) == by_host(prune['reclaim']['hosts'])
    assert sorted(check['selections']['pruned']['result']) == sorted(HOST_VARS)
    # check mode changed nothing: its facts (gathered after the dry run, every kind) are the first audit's
    sizes = dict(((cache['host'], cache['path']), cache['bytes']) for cache in report('audit')['caches'])
    assert dict(((cache['host'], cache['path']), cache['bytes']) for cache in check['caches']) == sizes


def test_the_second_audit_shows_what_the_prune_removed():
    before, after, prune = by_host(report('audit')['hosts']), report('audit-after'), report('prune')
    reclaim = by_host(prune['reclaim']['hosts'])
    growth = by_host(after['growth']['hosts'])
    assert after['growth']['previous_generated_at'] == report('audit')['generated_at']
    for name in HOST_VARS:
        assert growth[name]['growth_bytes'] == by_host(after['hosts'])[name]['bytes'] - before[name]['bytes']
        shrink = -growth[name]['growth_bytes']
        # what the prune removed, plus the few bytes of @v/list lines Go no longer needs
        assert 0 <= shrink - reclaim[name]['bytes'] < 1024, (name, shrink, reclaim[name])
        assert reclaim[name]['bytes'] > 0 and reclaim[name]['errors_total'] == 0


def test_the_report_from_the_fact_cache_is_the_last_audit():
    cached, after = report('cached'), report('audit-after')
    assert cached['caches'] == after['caches'] and cached['totals'] == after['totals']
    assert all(item['growth_bytes'] == 0 for item in cached['growth']['hosts'])
    with open(os.path.join(fleet_dir(), 'cached.log')) as handle:
        log = handle.read()
    assert 'Gather Go cache facts' not in log and 'Skip gathering, the report comes from the fact cache' in log


# --------------------------------------------------------------------------- each host


def test_report_rows_are_the_disk(host):
    name = host_name(host)
    rows = [cache for cache in report('cached')['caches'] if cache['host'] == name]
    assert rows
    for cache, found in zip(rows, disk(host, rows)):
        assert (cache['files'], cache['bytes']) == (found['files'], found['bytes']), cache['path']


def test_the_policy_removed_what_it_had_to(host):
    for user in HOST_VARS[host_name(host)]['gofleet_users']:
        expect, state = checks.cache_state(host, user)
        checks.assert_pruned_by_policy(expect, state)
        assert len(expect['removed_versions']) >= HOST_VARS[host_name(host)]['fleet_test_downloads']


def test_go_still_builds_offline(host):
    for user in HOST_VARS[host_name(host)]['gofleet_users']:
        checks.assert_go_builds_offline(host, user)
