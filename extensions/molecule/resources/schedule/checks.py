# -*- coding: utf-8 -*-
# Copyright: gofleet.cache contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""testinfra checks shared by the schedule_* scenarios: the caches against what age_caches.py wrote
down, Go building offline as the owner, the metrics files (official parser), the agent's log lines, an
attacker account against the lock and metrics directories, and the role runs with injected values."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import re
import shlex
import time

from prometheus_client.parser import text_string_to_metric_families

METRICS_DIR = '/var/lib/prometheus/node-exporter'
LOCK_DIR = '/var/lib/gofleet-cache'
# An account of the instance whose jobs are not scheduled: it tries what any account on a build server could.
ATTACKER = 'mallory'
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


# --------------------------------------------------------------------------- an attacker account


def as_attacker(host, command):
    """`command` run by /bin/sh as the attacker account, as su starts it."""
    return host.run('su -s /bin/sh %s -c %s' % (ATTACKER, shlex.quote(command)))


def assert_refused(result, what):
    assert result.rc != 0, '%s: the attacker succeeded: %s' % (what, result.stdout)
    assert 'Permission denied' in result.stdout + result.stderr, (what, result.stdout, result.stderr)


def assert_lock_dir_is_roots_alone(host):
    """The lock directory and every lock file in it are root's, and the attacker can neither list the
    directory, create a lock file, nor open (and so flock) one of the agent's."""
    directory = host.file(LOCK_DIR)
    assert (directory.user, directory.group, directory.mode) == ('root', 'root', 0o700)
    locks = host.check_output("find %s -mindepth 1 -printf '%%f %%u %%m %%n %%y\\n'", LOCK_DIR).splitlines()
    assert locks, 'the agent made no lock file'
    for line in locks:
        name, user, mode, links, kind = line.split()
        assert name.endswith('.lock') and (user, mode, links, kind) == ('root', '600', '1', 'f'), line
    lock = '%s/%s' % (LOCK_DIR, locks[0].split()[0])
    assert_refused(as_attacker(host, 'ls %s' % LOCK_DIR), 'list the lock directory')
    assert_refused(as_attacker(host, 'touch %s/evil.lock' % LOCK_DIR), 'create a lock file')
    assert_refused(as_attacker(host, 'flock -n %s true' % lock), 'flock an agent lock')
    assert_refused(as_attacker(host, "python3 -c 'import fcntl, os, sys; "
                                     "fcntl.flock(os.open(sys.argv[1], os.O_RDONLY), fcntl.LOCK_EX)' %s" % lock),
                   'open and flock an agent lock')
    assert not host.file('%s/evil.lock' % LOCK_DIR).exists


def attack_metrics(host, victim, unscheduled='gofleet_cache_user_%s.prom' % ATTACKER):
    """The attacker tries to replace the victim's metrics file (write, rename over, link, remove, squat a
    temporary name) and to pre-create another job's file; each must fail. Returns when it tried."""
    directory = host.file(METRICS_DIR)
    assert (directory.user, directory.mode) == ('root', 0o755)
    target = '%s/gofleet_cache_user_%s.prom' % (METRICS_DIR, victim)
    before = host.file(target).content_string
    tried = time.time()
    fake = 'gofleet_cache_last_run_success{user="%s",kind="build",path="/x",scope="user"} 1\n' % victim
    attempts = [
        ('overwrite the victim\'s file', 'printf %s > %s' % (shlex.quote(fake), target)),
        ('rename a file over it', 'printf %s > /tmp/fake.prom && mv -f /tmp/fake.prom %s' % (shlex.quote(fake), target)),
        ('replace it by a link', 'ln -sf /etc/shadow %s' % target),
        ('remove it', 'rm -f %s' % target),
        ('squat a temporary name', 'touch %s/.gofleet_cache_user_%s.prom.1.tmp' % (METRICS_DIR, victim)),
        ('pre-create a file of a job', 'printf %s > %s/%s' % (shlex.quote(fake), METRICS_DIR, unscheduled)),
    ]
    for what, command in attempts:
        assert_refused(as_attacker(host, command), what)
    host.run('rm -f /tmp/fake.prom')
    after = host.file(target)
    assert (after.user, after.mode, after.is_symlink, after.content_string) == ('root', 0o644, False, before)
    assert not host.file('%s/%s' % (METRICS_DIR, unscheduled)).exists
    return tried


def assert_fresh_metrics(host, job, user, kinds, since):
    """The job's metrics file is root's, written by a run that ended after `since`, and says success."""
    prom = host.file('%s/gofleet_cache_%s.prom' % (METRICS_DIR, job))
    assert (prom.user, prom.group, prom.mode, prom.is_symlink) == ('root', 'root', 0o644, False)
    found = metrics(host, job)
    for kind in kinds:
        sample = found['gofleet_cache_last_run_timestamp_seconds'][kind]
        assert sample.value > since, (job, kind, sample.value, since)
        assert sample.labels['user'] == user
        assert found['gofleet_cache_last_run_success'][kind].value == 1, (job, kind)
    assert not host.check_output("find %s -name '.gofleet_cache_*.tmp'", METRICS_DIR)


# --------------------------------------------------------------------------- injected values


def assert_injections_refused(host, protected):
    """resources/schedule/inject.yml ran the role once per injected value (side_effect): every run failed in
    validation, naming the option and the value, and not one of the `protected` files changed, nor did any
    injected cron line or unit line run."""
    report = json.loads(host.file('/root/injection-report.json').content_string)
    assert report['cases'], report
    for case in report['cases']:
        assert case['failed'], case
        assert case['option'] in case['msg'] and 'invalid value' in case['msg'], case
    for path in protected:
        assert report['before'][path] == report['after'][path], (path, report['before'][path], report['after'][path])
        assert report['before'][path], path
    assert not host.check_output('ls /tmp | grep pwned || true'), 'an injected command ran'
