# -*- coding: utf-8 -*-
# Copyright: gofleet.cache contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""cleanup_schedule with cron: the cron file, cron really running every job as root (--user, --shared), the
result on the caches, the metrics, the log lines, Go still building offline; an attacker account against the
lock and metrics directories (also as the earlier design left them); injected values refused."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import os
import sys
import time

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', '..', 'resources', 'schedule'))
import checks  # noqa: E402  pylint: disable=wrong-import-position

CRON_FILE = '/etc/cron.d/gofleet-cache'
SHARED_CACHE = '/srv/shared/go-build'
AGENT = '/usr/bin/python3 /usr/local/lib/gofleet-cache/gofleet-cache-agent --config /etc/gofleet-cache/agent.json'
# cron starts jobs at the top of each minute: two minutes cover the next run and the agent's work
CRON_WAIT_S = 130


@pytest.fixture(scope='module')
def first_run(host):
    """Waits until cron has run carol's job and the shared job once (their metrics files exist), then
    records the caches (cron goes on every minute; later Go builds in these tests refill them)."""
    deadline = time.time() + CRON_WAIT_S
    files = ['%s/gofleet_cache_%s.prom' % (checks.METRICS_DIR, job) for job in ('user_carol', 'shared')]
    while not all(host.file(path).exists for path in files):
        if time.time() > deadline:
            pytest.fail('cron did not run the jobs within %ds: %s' % (
                CRON_WAIT_S, host.run('journalctl -u cron --no-pager | tail -20').stdout))
        time.sleep(2)
    expect, state = checks.cache_state(host, 'carol')
    return {'expect': expect, 'state': state,
            'shared_actions': host.check_output("find %s -name '*-a' | wc -l", SHARED_CACHE)}


def test_cron_file(host):
    cron = host.file(CRON_FILE)
    assert (cron.user, cron.group, cron.mode) == ('root', 'root', 0o644)
    lines = cron.content_string.splitlines()
    assert 'PATH=/usr/local/go/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' in lines
    assert 'SHELL=/bin/sh' in lines
    # every job runs as root; the agent drops to each cache's owner for that cache's work
    jobs = [line for line in lines if line and not line.startswith('#') and '=' not in line.split()[0]]
    assert jobs == ['* * * * * root timeout -k 60 14400 %s --user carol --quiet' % AGENT,
                    '* * * * * root timeout -k 60 14400 %s --shared --quiet' % AGENT]


def test_cron_ran_the_jobs_as_root(host, first_run):
    log = host.check_output('journalctl -u cron --no-pager -o cat')
    assert '(root) CMD (timeout -k 60 14400 %s --user carol --quiet)' % AGENT in log
    assert '(root) CMD (timeout -k 60 14400 %s --shared --quiet)' % AGENT in log
    assert '(carol) CMD' not in log
    uids = set()
    for line in host.check_output('journalctl -t gofleet-cache-agent --no-pager -o json').splitlines():
        entry = json.loads(line)
        if entry['MESSAGE'].startswith('carol '):
            uids.add(entry['_UID'])
    assert uids == {'0'}


def test_the_cache_is_pruned_by_policy(first_run):
    checks.assert_pruned_by_policy(first_run['expect'], first_run['state'])
    assert first_run['shared_actions'].strip() == '0'


def test_log_lines(host, first_run):
    lines = checks.log_lines(host, 'carol')
    # the first run removed what the policy selects; every later one (each minute) finds nothing more
    assert checks.removed_entries(lines[0]) == len(first_run['expect']['aged_actions'])
    assert checks.removed_entries(lines[1]) == len(first_run['expect']['removed_versions'])
    assert all(checks.removed_entries(line) == 0 for line in lines[2:]), lines
    assert checks.log_lines(host, 'shared')


def test_metrics(host, first_run):
    for job, user, kinds in (('user_carol', 'carol', ['build', 'module']), ('shared', 'carol', ['build'])):
        found = checks.assert_metrics(host, job, user, kinds, removed={}, started=time.time() - 600)
        assert found['gofleet_cache_last_run_busy']['build'].value == 0
        prom = host.file('%s/gofleet_cache_%s.prom' % (checks.METRICS_DIR, job))
        assert (prom.user, prom.group, prom.mode) == ('root', 'root', 0o644)
    # only root's files: what mallory made in the earlier design's directories went with the role's run
    assert host.check_output('find %s %s ! -user root', checks.METRICS_DIR, checks.LOCK_DIR) == ''


def test_go_still_builds_offline(host, first_run):
    checks.assert_go_builds_offline(host, 'carol')


def wait_for_a_cron_run(host, since):
    """Waits until cron ran carol's and the shared job again after `since` (their metrics say so)."""
    deadline = time.time() + CRON_WAIT_S
    while True:
        try:
            checks.assert_fresh_metrics(host, 'user_carol', 'carol', ['build', 'module'], since)
            checks.assert_fresh_metrics(host, 'shared', 'carol', ['build'], since)
            return
        except AssertionError:
            if time.time() > deadline:
                raise
        time.sleep(2)


def test_the_earlier_designs_directories_became_roots_and_a_held_lock_blocks_nothing(host, first_run):
    """prepare.yml left the lock and metrics directories writable by everyone, mallory holding the shared
    cache's lock file with flock and a fake metrics file of carol's; the role's run made both directories
    root's and removed mallory's files: the shared job ran all the same, and carol's metrics are real."""
    held = host.file('/root/held-lock').content_string.strip()
    assert host.run('pgrep -u %s -f %s', checks.ATTACKER, 'flock -n ' + held).rc == 0, 'mallory stopped holding'
    assert (host.file(held).exists and host.file(held).user) in (False, 'root')
    checks.assert_metrics(host, 'user_carol', 'carol', ['build', 'module'], removed={}, started=time.time() - 600)
    checks.assert_metrics(host, 'shared', 'carol', ['build'], removed={}, started=time.time() - 600)
    assert 'skipped: another gofleet-cache-agent run held its lock' not in ''.join(checks.log_lines(host, 'shared'))


def test_an_attacker_cannot_take_a_lock_nor_fake_metrics(host, first_run):
    checks.assert_lock_dir_is_roots_alone(host)
    tried = checks.attack_metrics(host, 'carol', unscheduled='gofleet_cache_user_root.prom')
    wait_for_a_cron_run(host, tried)


def test_injected_values_are_refused_and_change_nothing(host, first_run):
    # a cron line that got in would have run within a minute: wait for a cron run after the injections
    wait_for_a_cron_run(host, host.file('/root/injection-report.json').mtime.timestamp())
    checks.assert_injections_refused(host, ['/etc/cron.d/gofleet-cache', '/etc/gofleet-cache/agent.json',
                                            '/etc/gofleet-cache/manifest.json'])
