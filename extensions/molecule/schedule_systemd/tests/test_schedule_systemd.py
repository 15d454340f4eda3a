# -*- coding: utf-8 -*-
# Copyright: gofleet.cache contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""cleanup_schedule with systemd: the timers, the units (every service root's, --user ACCOUNT), runs by hand
and by the timer, the result on the caches, the metrics, the journal, Go still building offline, an attacker
account against the lock and metrics directories, injected values refused; state=absent on the second
instance removes what the role made and nothing else.

Each run happens once, in a module fixture that also records the caches right after it (later Go
builds in these tests refill them).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import os
import sys
import time

import pytest
import testinfra

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', '..', 'resources', 'schedule'))
import checks  # noqa: E402  pylint: disable=wrong-import-position

UNIT = 'gofleet-cache-cleanup'
SHARED_CACHE = '/srv/shared/go-build'
ABSENT_HOST = 'podman://gofleet-schedule_systemd-absent'
TIMER_WAIT_S = 90


def show(host, unit, *properties):
    out = host.check_output('systemctl show %s' + ' -p %s' * len(properties), unit, *properties)
    return dict(line.split('=', 1) for line in out.splitlines() if '=' in line)


def run_by_hand(host, unit):
    started = time.time()
    cmd = host.run('systemctl start %s', unit)
    return {'started': started, 'rc': cmd.rc, 'stderr': cmd.stderr,
            'status': show(host, unit, 'Result', 'ExecMainStatus')}


@pytest.fixture(scope='module')
def alice(host):
    """alice's service started by hand (systemctl start waits for a oneshot service to end)."""
    run = run_by_hand(host, '%s@alice.service' % UNIT)
    run['expect'], run['state'] = checks.cache_state(host, 'alice')
    return run


@pytest.fixture(scope='module')
def bob(host):
    """bob's service started by its timer: a run missed while the host was down (the stamp says the timer
    last fired three days ago), which Persistent=true catches up as soon as the timer starts."""
    service = '%s@bob.service' % UNIT
    assert show(host, service, 'ExecMainStartTimestampMonotonic')['ExecMainStartTimestampMonotonic'] == '0'
    started = time.time()
    host.check_output("touch -d '3 days ago' /var/lib/systemd/timers/stamp-%s@bob.timer && "
                      "systemctl restart %s@bob.timer", UNIT, UNIT)
    deadline = time.time() + TIMER_WAIT_S
    status = {}
    while time.time() < deadline:
        status = show(host, service, 'ExecMainExitTimestampMonotonic', 'ActiveState', 'Result', 'ExecMainStatus')
        if status['ExecMainExitTimestampMonotonic'] != '0' and status['ActiveState'] in ('inactive', 'failed'):
            break
        time.sleep(1)
    else:
        pytest.fail('the timer did not run %s within %ds: %s' % (service, TIMER_WAIT_S, status))
    run = {'started': started, 'status': status,
           'timer': show(host, '%s@bob.timer' % UNIT, 'LastTriggerUSec', 'Persistent')}
    run['expect'], run['state'] = checks.cache_state(host, 'bob')
    return run


@pytest.fixture(scope='module')
def shared(host):
    run = run_by_hand(host, '%s-shared.service' % UNIT)
    run['actions'] = host.check_output("find %s -name '*-a' | wc -l", SHARED_CACHE)
    return run


def test_timers_are_listed(host):
    timers = host.check_output('systemctl list-timers --all --no-pager')
    for name in ('%s@alice' % UNIT, '%s@bob' % UNIT, '%s-shared' % UNIT):
        assert any(line.split()[-2:] == [name + '.timer', name + '.service'] for line in timers.splitlines()), timers


def test_systemd_analyze_verify_is_clean(host):
    units = ['%s@alice.service' % UNIT, '%s@bob.timer' % UNIT, '%s-shared.service' % UNIT, '%s-shared.timer' % UNIT]
    cmd = host.run('systemd-analyze verify' + ' %s' * len(units), *units)
    assert cmd.rc == 0, cmd.stderr
    assert UNIT not in cmd.stderr, cmd.stderr


def test_units_run_idle_as_root_for_the_account(host):
    service = show(host, '%s@alice.service' % UNIT, 'User', 'Nice', 'IOSchedulingClass', 'Type', 'SyslogIdentifier')
    # root: the agent drops to each cache's owner itself, and keeps locks and metrics where only root writes
    assert service == {'User': '', 'Nice': '19', 'IOSchedulingClass': '3', 'Type': 'oneshot',
                       'SyslogIdentifier': 'gofleet-cache-agent'}
    exec_start = show(host, '%s@alice.service' % UNIT, 'ExecStart')['ExecStart']
    assert ' --user alice --quiet ' in exec_start, exec_start
    assert 'User=' not in host.file('/etc/systemd/system/%s@.service' % UNIT).content_string
    assert show(host, '%s-shared.service' % UNIT, 'User')['User'] in ('', 'root')
    assert ' --shared --quiet ' in show(host, '%s-shared.service' % UNIT, 'ExecStart')['ExecStart']
    timer = show(host, '%s@alice.timer' % UNIT, 'Persistent', 'RandomizedDelayUSec', 'UnitFileState')
    assert timer == {'Persistent': 'yes', 'RandomizedDelayUSec': '5s', 'UnitFileState': 'enabled'}


def test_service_started_by_hand_prunes_by_policy(alice):
    assert alice['rc'] == 0, alice['stderr']
    assert alice['status'] == {'Result': 'success', 'ExecMainStatus': '0'}
    checks.assert_pruned_by_policy(alice['expect'], alice['state'])


def test_timer_runs_the_service(bob):
    assert bob['status']['Result'] == 'success' and bob['status']['ExecMainStatus'] == '0', bob
    assert bob['timer']['Persistent'] == 'yes'
    assert bob['timer']['LastTriggerUSec'] not in ('', 'n/a', '0'), bob['timer']
    checks.assert_pruned_by_policy(bob['expect'], bob['state'])


def test_shared_service_prunes_the_shared_cache_as_root(shared):
    assert shared['rc'] == 0, shared['stderr']
    assert shared['status'] == {'Result': 'success', 'ExecMainStatus': '0'}
    assert shared['actions'].strip() == '0'  # all of it was last used 40 days ago


def test_metrics_files(host, alice, bob, shared):
    for job, user, run in (('user_alice', 'alice', alice), ('user_bob', 'bob', bob)):
        checks.assert_metrics(host, job, user, ['build', 'module'], started=run['started'], removed={
            'build': len(run['expect']['aged_actions']), 'module': len(run['expect']['removed_versions'])})
        prom = host.file('%s/gofleet_cache_%s.prom' % (checks.METRICS_DIR, job))
        assert (prom.user, prom.group, prom.mode) == ('root', 'root', 0o644)
    # the shared cache is a copy of alice's (cp -a): its owner is alice
    checks.assert_metrics(host, 'shared', 'alice', ['build'], started=shared['started'], removed={})


def test_journal_has_a_line_per_cache_and_run(host, alice, bob, shared):
    for user, run in (('alice', alice), ('bob', bob)):
        lines = checks.log_lines(host, user)
        assert len(lines) == 2, lines
        assert checks.removed_entries(lines[0]) == len(run['expect']['aged_actions'])
        assert checks.removed_entries(lines[1]) == len(run['expect']['removed_versions'])
    assert len(checks.log_lines(host, 'shared')) == 1
    # bob's lines came from the unit the timer started
    units = host.check_output('journalctl -t gofleet-cache-agent --no-pager -o verbose | grep _SYSTEMD_UNIT= | sort -u')
    assert '_SYSTEMD_UNIT=%s@bob.service' % UNIT in units


def test_go_still_builds_offline(host, alice, bob):
    for user in ('alice', 'bob'):
        checks.assert_go_builds_offline(host, user)


def test_an_attacker_cannot_take_a_lock_nor_fake_metrics(host, alice, bob, shared):
    """mallory, an account of the host, against the lock and metrics directories after real runs; then
    alice's next run writes her metrics file again, fresh and successful. (Runs alice's service a second
    time: after the tests that count her journal lines.)"""
    checks.assert_lock_dir_is_roots_alone(host)
    tried = checks.attack_metrics(host, 'alice')
    run = run_by_hand(host, '%s@alice.service' % UNIT)
    assert run['status'] == {'Result': 'success', 'ExecMainStatus': '0'}, run
    checks.assert_fresh_metrics(host, 'user_alice', 'alice', ['build', 'module'], tried)


def test_injected_values_are_refused_and_change_nothing(host, alice):
    # alice's service ran after the injections: an ExecStartPre= that got in would have run
    checks.assert_injections_refused(host, ['/etc/systemd/system/%s@.service' % UNIT, '/etc/systemd/system/%s@.timer' % UNIT,
                                            '/etc/systemd/system/%s-shared.service' % UNIT,
                                            '/etc/systemd/system/%s-shared.timer' % UNIT,
                                            '/etc/gofleet-cache/agent.json', '/etc/gofleet-cache/manifest.json'])


# What the listings themselves and systemd's own bookkeeping write, whether or not the role ran.
NOISE = ('/root/fs-before.txt ', '/root/fs-after.txt ', '/root/fs-after-2.txt ', '/root/manifest-after.json ',
         '/root/agent-files.txt ',
         '/var/lib/systemd/timers/stamp-apt',
         '/var/lib/systemd/timers/stamp-dpkg', '/var/lib/systemd/timers/stamp-e2scrub',
         '/var/lib/systemd/timers/stamp-fstrim')


def fs_difference(absent, listing):
    before = absent.file('/root/fs-before.txt').content_string.splitlines()
    after = absent.file(listing).content_string.splitlines()
    added = sorted(line for line in set(after) - set(before) if not line.startswith(NOISE))
    return added, sorted(set(before) - set(after))


def test_state_absent_removes_what_the_role_made_and_nothing_else():
    """The metrics and lock directories existed before the role, each with a file that is not the role's:
    they stay with those files (the agent's metrics and lock files go). Everything the role created goes,
    but for its config directory, which holds an administrator's file: it stays with that file and the
    manifest, which still lists the directory."""
    absent = testinfra.get_host(ABSENT_HOST)
    added, removed = fs_difference(absent, '/root/fs-after.txt')
    assert removed == []
    assert added == ['/etc/gofleet-cache drwxr-xr-x root', '/etc/gofleet-cache/local.conf -rw-r--r-- root',
                     '/etc/gofleet-cache/manifest.json -rw-r--r-- root']
    manifest = json.loads(absent.file('/root/manifest-after.json').content_string)
    assert manifest['dirs'] == ['/etc/gofleet-cache']
    # in the directories that existed before: their files, none of the agent's (lock and metrics files, which
    # alice's run had made)
    made = absent.file('/root/agent-files.txt').content_string.split()
    assert 'gofleet_cache_user_alice.prom' in made and [name for name in made if name.endswith('.lock')], made
    inside = sorted(line.split()[0] for line in absent.file('/root/fs-after.txt').content_string.splitlines()
                    if line.startswith(('/var/lib/gofleet-cache/', '/var/lib/prometheus/node-exporter/')))
    assert inside == ['/var/lib/gofleet-cache/admin-note.txt', '/var/lib/prometheus/node-exporter/node_other.prom']
    assert 'gofleet' not in absent.check_output('systemctl list-unit-files --no-pager')
    assert 'gofleet' not in absent.check_output('systemctl list-timers --all --no-pager')


def test_state_absent_again_finishes_once_the_foreign_file_is_gone():
    absent = testinfra.get_host(ABSENT_HOST)
    assert fs_difference(absent, '/root/fs-after-2.txt') == ([], [])
