# -*- coding: utf-8 -*-
# Copyright: gofleet.cache contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""testinfra checks shared by the schedule_* scenarios: the caches against what age_caches.py wrote
down, Go building offline as the owner, the metrics files (official parser) and the agent's log lines."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import re
import time

from prometheus_client.parser import text_string_to_metric_families

METRICS_DIR = '/var/lib/prometheus/node-exporter'
# Lists what is in the caches now: -a files of the build cache, versions with files other than .lock.
STATE_SCRIPT = r'''
import json, os, sys
gocache, gomodcache = sys.argv[1:3]
actions = sorted(n[:-2] for b in os.listdir(gocache) if len(b) == 2 and os.path.isdir(os.path.join(gocache, b))
                 for n in os.listdir(os.path.join(gocache, b)) if n.endswith("-a"))
versions = set()
download = os.path.join(gomodcache, "cache", "download")
for dirpath, _dirs, files in os.walk(download):
    if os.path.basename(dirpath) == "@v":
        module = os.path.relpath(os.path.dirname(dirpath), download)
        versions.update("%s@%s" % (module, f.rsplit(".", 1)[0]) for f in files
                        if f.endswith((".mod", ".info", ".zip", ".ziphash")))
print(json.dumps({"actions": actions, "versions": sorted(versions)}))
'''


def expectation(host, user):
    return json.loads(host.file('/var/lib/gofleet-test/%s.json' % user).content_string)


def cache_state(host, user):
    """(expectation, state now): -a files of the build cache and versions with files other than .lock."""
    expect = expectation(host, user)
    state = json.loads(host.check_output('python3 -c %s %s %s', STATE_SCRIPT, expect['gocache'],
                                         expect['gomodcache']))
    return expect, state


def assert_pruned_by_policy(expect, state):
    """Aged build entries gone, fresh ones there; module versions: exactly those go.sum references."""
    assert expect['aged_actions'] and expect['removed_versions'], expect
    assert set(expect['aged_actions']).isdisjoint(state['actions'])
    assert set(expect['fresh_actions']) <= set(state['actions'])
    assert set(state['versions']) == set(expect['kept_versions'])


def assert_go_builds_offline(host, user):
    """GOPROXY=off go build and go mod verify as the owner, against the pruned caches."""
    cmd = host.run("runuser -u %s -- env HOME=/home/%s PATH=/usr/local/go/bin:/usr/bin:/bin GOTOOLCHAIN=local "
                   "GOPROXY=off GOFLAGS=-mod=mod sh -ec 'cd /srv/projects/%s && go build -o /dev/null . && "
                   "go mod verify'" % (user, user, user))
    assert cmd.rc == 0, cmd.stderr
    assert 'all modules verified' in cmd.stdout + cmd.stderr


def metrics(host, job):
    """{metric name: {kind: sample}} of a job's .prom file, read with prometheus_client's parser."""
    text = host.file('%s/gofleet_cache_%s.prom' % (METRICS_DIR, job)).content_string
    families = dict((family.name, family) for family in text_string_to_metric_families(text))
    for family in families.values():
        assert family.type == 'gauge' and family.documentation
    return dict((name, dict((s.labels['kind'], s) for s in family.samples)) for name, family in families.items())


def assert_metrics(host, job, user, kinds, removed, started):
    """The job's metrics: one series per kind, labels, what the run removed, success, a recent timestamp."""
    found = metrics(host, job)
    assert sorted(found['gofleet_cache_size_bytes']) == sorted(kinds)
    for kind in kinds:
        labels = found['gofleet_cache_size_bytes'][kind].labels
        assert labels['user'] == user and labels['scope'] == ('shared' if job == 'shared' else 'user')
        assert found['gofleet_cache_last_run_success'][kind].value == 1
        assert started - 5 <= found['gofleet_cache_last_run_timestamp_seconds'][kind].value <= time.time() + 5
        assert found['gofleet_cache_filesystem_free_bytes'][kind].value > 0
    for kind, count in removed.items():
        assert found['gofleet_cache_last_run_removed_entries'][kind].value == count, (kind, found)
    return found


def log_lines(host, job):
    """The agent's lines about one job in the journal (syslog ident gofleet-cache-agent)."""
    out = host.check_output('journalctl -t gofleet-cache-agent --no-pager -o cat')
    return [line for line in out.splitlines() if line.startswith(job + ' ')]


def removed_entries(line):
    match = re.search(r': removed (\d+) entries \(', line)
    assert match, line
    return int(match.group(1))
