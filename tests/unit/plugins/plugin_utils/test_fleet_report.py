# -*- coding: utf-8 -*-
# Copyright (c) gofleet.cache contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

"""The fleet report's data: host statuses, totals, largest lists, reclaim, space, env, growth, selections."""

from __future__ import annotations

import json

import pytest

from ansible_collections.gofleet.cache.plugins.module_utils._units import OptionError
from ansible_collections.gofleet.cache.plugins.plugin_utils import _fleet_report
from ansible_collections.gofleet.cache.plugins.plugin_utils._fleet_report import build_report, collect_hosts
from ansible_collections.gofleet.cache.tests.unit.plugins.plugin_utils.fleetfacts import (
    GIB, cache, env, expected_host_bytes, filesystem, host_facts, hostvars_for)

MIB = 1024 * 1024
NOW = '2026-11-22T00:00:00Z'


def report_of(hostvars, reachable=None, env_vars=(), hosts=None, **options):
    options.setdefault('generated_at', NOW)
    return build_report(collect_hosts(hostvars, hosts=hosts, reachable=reachable, env_vars=env_vars), **options)


def prune_item(user, removed, entries, caches=(), before=10 * MIB, busy=()):
    return {'changed': bool(removed), 'item': user, 'removed_bytes': removed, 'removed_entries': entries,
            'before_bytes': before, 'after_bytes': before - removed, 'errors_total': 0, 'busy': list(busy),
            'kept': {}, 'sample': [], 'errors': [], 'missing': [],
            'caches': [{'kind': kind, 'real_path': path, 'removed_bytes': size} for kind, path, size in caches]}


# --------------------------------------------------------------------------- statuses


def test_every_host_gets_a_status_and_none_is_dropped():
    hostvars = hostvars_for(2)
    hostvars['failed-1'] = {'ansible_facts': {'go_cache': host_facts(7)},  # stale cached facts: not used
                            'gofleet_facts_result': {'failed': True, 'msg': 'users: invalid value'}}
    hostvars['dark-1'] = {'gofleet_facts_result': {'unreachable': True, 'msg': 'ssh: connect to host: timed out'}}
    hostvars['gone-1'] = {'ansible_facts': {'go_cache': host_facts(8)}}  # not in the play any more
    hostvars['empty-1'] = {'gofleet_facts_result': {'skipped': True}}  # report from a cache without it
    hostvars['cached-1'] = {'ansible_facts': {'go_cache': host_facts(3)}, 'gofleet_facts_result': {'skipped': True}}
    reachable = [host for host in hostvars if host != 'gone-1']
    report = report_of(hostvars, reachable=reachable)

    status = dict((row['host'], (row['status'], row['reason'])) for row in report['hosts'])
    assert status['build-0000'] == ('ok', None) and status['cached-1'] == ('ok', None)
    assert status['failed-1'] == ('failed', 'users: invalid value')
    assert status['dark-1'] == ('unreachable', 'ssh: connect to host: timed out')
    assert status['gone-1'] == ('failed', 'failed or unreachable earlier in the play')
    assert status['empty-1'][0] == 'missing' and 'fact cache' in status['empty-1'][1]
    assert sorted(item['host'] for item in report['failed']) == ['dark-1', 'empty-1', 'failed-1', 'gone-1']
    assert report['totals']['hosts'] == 7 and report['totals']['hosts_ok'] == 3
    assert report['totals']['hosts_failed'] == 4
    # the stale facts of failed hosts are not counted
    assert report['totals']['bytes'] == sum(expected_host_bytes(index) for index in (0, 1, 3))
    assert set(cache['host'] for cache in report['caches']) == {'build-0000', 'build-0001', 'cached-1'}


def test_a_failed_loop_item_gives_the_reason():
    hostvars = hostvars_for(1)
    hostvars['build-0000']['gofleet_prune_results'] = {
        'failed': True, 'msg': 'One or more items failed',
        'results': [prune_item('runner', 0, 0), {'failed': True, 'item': 'ghost', 'msg': 'user: invalid value'}]}
    report = report_of(hostvars)
    assert report['failed'] == [{'host': 'build-0000', 'status': 'failed', 'reason': 'user: invalid value'}]
    assert report['reclaim']['mode'] is None
    hostvars['build-0000']['gofleet_prune_results'] = {
        'unreachable': True, 'msg': 'All items completed',
        'results': [{'unreachable': True, 'item': 'runner', 'msg': 'ssh: Connection refused'}]}
    assert report_of(hostvars)['failed'][0]['reason'] == 'ssh: Connection refused'


def test_a_host_unknown_to_hostvars_is_missing():
    class Undefined(object):
        pass

    class HostVars(dict):
        def __missing__(self, key):
            return Undefined()

    report = report_of(HostVars(hostvars_for(1)), hosts=['build-0000', 'typo-host'])
    assert [(item['host'], item['status']) for item in report['failed']] == [('typo-host', 'missing')]


def test_hosts_default_to_every_host_and_must_be_a_list():
    assert [row['host'] for row in report_of(hostvars_for(3))['hosts']] == ['build-0000', 'build-0001', 'build-0002']
    with pytest.raises(OptionError, match='fleet_report_hosts'):
        collect_hosts(hostvars_for(1), hosts='build-0000')


def test_groups_come_from_group_names():
    report = report_of(hostvars_for(2))
    assert [row['groups'] for row in report['hosts']] == [['ci'], ['linux_builders']]


# --------------------------------------------------------------------------- totals and largest


def test_totals_per_kind_add_up():
    report = report_of(hostvars_for(3))
    totals = report['totals']
    assert totals['bytes'] == sum(expected_host_bytes(index) for index in range(3))
    assert totals['caches'] == 18 and totals['users'] == 6
    assert totals['by_kind']['build']['bytes'] == sum((i + 1) * (u + 1) * MIB for i in range(3) for u in range(2))
    assert totals['by_kind']['module']['bytes'] == 2 * totals['by_kind']['build']['bytes']
    assert totals['by_kind']['fuzz'] == {'caches': 6, 'bytes': 6 * 1024, 'disk_bytes': 6 * (1024 + 3 * 4096),
                                         'files': 18, 'entries': 18}
    assert sum(kind['files'] for kind in totals['by_kind'].values()) == totals['files']
    assert sum(row['bytes'] for row in report['hosts']) == totals['bytes']
    assert sum(cache['bytes'] for cache in report['caches'] if cache['counted']) == totals['bytes']


def test_a_cache_shared_by_two_accounts_counts_once():
    facts = host_facts(0, users=('alice',))
    shared = cache('bob', 'build', '/srv/go-build', 5 * MIB, 10, 5)
    facts['caches'] += [dict(shared), dict(shared, user='carol'), dict(shared, user='root', source='explicit')]
    report = report_of({'h': {'ansible_facts': {'go_cache': facts}}})
    rows = [row for row in report['caches'] if row['path'] == '/srv/go-build']
    assert [row['counted'] for row in rows] == [True, False, False]
    assert report['hosts'][0]['bytes'] == expected_host_bytes(0, users=1) + 5 * MIB
    assert report['totals']['by_kind']['build']['caches'] == 2


def test_largest_hosts_users_and_modules():
    report = report_of(hostvars_for(12), top=3)
    assert [item['host'] for item in report['largest']['hosts']] == ['build-0011', 'build-0010', 'build-0009']
    assert report['largest']['hosts'][0]['bytes'] == expected_host_bytes(11)
    users = report['largest']['users']
    assert [(item['host'], item['user']) for item in users] == [
        ('build-0011', 'builder'), ('build-0010', 'builder'), ('build-0009', 'builder')]
    assert users[0]['by_kind'] == {'build': 24 * MIB, 'module': 48 * MIB, 'fuzz': 1024}
    modules = report['largest']['modules']
    assert modules[0]['module'] == 'golang.org/toolchain'
    assert modules[0]['hosts'] == 12 and modules[0]['versions'] == 24
    assert modules[0]['bytes'] == sum((i + 1) * (u + 1) * MIB for i in range(12) for u in range(2))
    assert len(modules) == 3


def test_ties_are_ordered_by_name():
    hostvars = dict(('h%d' % index, {'ansible_facts': {'go_cache': host_facts(0)}}) for index in (3, 1, 2))
    assert [item['host'] for item in report_of(hostvars)['largest']['hosts']] == ['h1', 'h2', 'h3']


# --------------------------------------------------------------------------- reclaim


def test_reclaim_from_registered_prune_loops():
    hostvars = hostvars_for(3)
    hostvars['build-0000']['gofleet_prune_results'] = {'changed': True, 'results': [
        prune_item('runner', 3 * MIB, 30, caches=[('build', '/home/runner/.cache/go-build', 3 * MIB)]),
        {'skipped': True, 'item': 'builder'}]}
    hostvars['build-0001']['gofleet_prune_results'] = prune_item(
        'builder', 5 * MIB, 7, caches=[('module', '/home/builder/go/pkg/mod', 5 * MIB)], busy=['/home/builder/x'])
    report = report_of(hostvars, prune_check_mode=True)
    reclaim = report['reclaim']
    assert reclaim['mode'] == 'check' and reclaim['hosts_with_result'] == 2
    assert reclaim['bytes'] == 8 * MIB and reclaim['entries'] == 37
    assert [item['host'] for item in reclaim['hosts']] == ['build-0001', 'build-0000']
    assert reclaim['busy_hosts'] == ['build-0001']
    assert report['totals']['reclaim_bytes'] == 8 * MIB
    by_row = dict(((row['host'], row['user'], row['kind']), row['reclaim_bytes']) for row in report['caches'])
    assert by_row[('build-0000', 'runner', 'build')] == 3 * MIB
    assert by_row[('build-0001', 'builder', 'module')] == 5 * MIB
    assert by_row[('build-0000', 'builder', 'build')] is None
    assert report['hosts'][2]['reclaim'] is None
    assert report_of(hostvars, prune_check_mode=False)['reclaim']['mode'] == 'applied'


def test_no_prune_results_no_reclaim():
    report = report_of(hostvars_for(2))
    assert report['reclaim']['mode'] is None and report['reclaim']['hosts'] == []
    assert report['totals']['reclaim_bytes'] is None


# --------------------------------------------------------------------------- space and inodes


def test_hosts_short_of_free_space_or_inodes():
    hostvars = {
        'roomy': {'ansible_facts': {'go_cache': host_facts(0, fs=filesystem(100 * GIB, 50 * GIB, 10.0))}},
        'full': {'ansible_facts': {'go_cache': host_facts(0, fs=filesystem(100 * GIB, 5 * GIB, 10.0))}},
        'inodes': {'ansible_facts': {'go_cache': host_facts(0, fs=filesystem(100 * GIB, 50 * GIB, 95.5))}},
    }
    report = report_of(hostvars)
    short = dict((item['host'], item) for item in report['short_of_space'])
    assert sorted(short) == ['full', 'inodes']  # one entry per mount, not per cache
    assert short['full']['free_pct'] == 5.0 and short['full']['short'] == ['free space 5.0% < 10%']
    assert short['inodes']['short'] == ['inodes used 95.5% > 90%']
    assert report['totals']['short_hosts'] == 2
    rows = dict((row['host'], row) for row in report['hosts'])
    assert rows['full']['min_free_pct'] == 5.0 and rows['inodes']['max_inodes_used_pct'] == 95.5
    assert rows['full']['short'] == ['/: free space 5.0% < 10%'] and rows['roomy']['short'] == []

    by_size = report_of(hostvars, min_free='60GiB', max_inodes_used_pct='99%')
    assert sorted(item['host'] for item in by_size['short_of_space']) == ['full', 'inodes', 'roomy']
    assert by_size['short_of_space'][0]['short'] == ['free space 5.0 GiB < 60.0 GiB']


def test_each_mount_is_checked():
    facts = host_facts(0)
    facts['caches'][0]['filesystem'] = filesystem(100 * GIB, 1 * GIB, 10.0, mount='/var/cache')
    report = report_of({'h': {'ansible_facts': {'go_cache': facts}}})
    assert [(item['mount'], item['free_pct']) for item in report['short_of_space']] == [('/var/cache', 1.0)]
    assert [fs['mount'] for fs in report['hosts'][0]['filesystems']] == ['/', '/var/cache']


# --------------------------------------------------------------------------- Go environment


def test_env_differing_from_the_desired_one():
    facts = host_facts(0, users=('alice', 'bob'))
    facts['env']['bob'] = env('bob', '/home/bob', GOMODCACHE='/tmp/mod', GOPROXY='off')
    hostvars = {'h': {'ansible_facts': {'go_cache': facts}}}
    desired = {'GOMODCACHE': '{home}/go/pkg/mod', 'GOPROXY': 'https://proxy.golang.org,direct',
               'GOCACHE': '/home/{user}/.cache/go-build', 'GOFLAGS': None}
    env_vars = sorted(_fleet_report.desired_env_option(desired))
    report = report_of(hostvars, env_vars=env_vars, desired_env=desired)
    assert report['desired_env'] == {'GOMODCACHE': '{home}/go/pkg/mod', 'GOPROXY': 'https://proxy.golang.org,direct',
                                     'GOCACHE': '/home/{user}/.cache/go-build'}
    assert report['env_drift'] == [
        {'host': 'h', 'user': 'bob', 'var': 'GOMODCACHE', 'value': '/tmp/mod', 'desired': '/home/bob/go/pkg/mod',
         'source': 'goenv_file'},
        {'host': 'h', 'user': 'bob', 'var': 'GOPROXY', 'value': 'off', 'desired': 'https://proxy.golang.org,direct',
         'source': 'goenv_file'}]
    assert report['hosts'][0]['env_drift'] == 2 and report['totals']['env_drift_hosts'] == 1
    only_alice = report_of(hostvars, env_vars=env_vars, desired_env=desired, env_users=['alice'])
    assert only_alice['env_drift'] == []
    everyone = report_of(hostvars, env_vars=env_vars, desired_env=desired, env_users=['*'])
    assert len(everyone['env_drift']) == 2
    named = report_of(hostvars, env_vars=env_vars, desired_env=desired, env_users=[{'name': 'bob'}])
    assert len(named['env_drift']) == 2


def test_home_placeholder_needs_a_known_home():
    assert _fleet_report.desired_value('{home}/go', 'bob', None) is None
    assert _fleet_report.desired_value('/srv/{user}/{user}', 'bob', None) == '/srv/bob/bob'
    assert _fleet_report.desired_value('C:\\go\\{user}', 'bob', None) == 'C:\\go\\bob'


def test_conflicts_are_listed_per_host():
    facts = host_facts(0)
    facts['conflicts'] = [{'user': 'runner', 'var': 'GOCACHE', 'value': '/a', 'source': 'env',
                           'shadowed_source': 'goenv_file', 'shadowed_value': '/b'}]
    report = report_of({'h': {'ansible_facts': {'go_cache': facts}}})
    assert report['conflicts'] == [dict(facts['conflicts'][0], host='h')]
    assert report['hosts'][0]['conflicts'] == 1


# --------------------------------------------------------------------------- growth


def test_growth_against_a_previous_report(tmp_path):
    before = report_of(hostvars_for(3), generated_at='2026-11-01T00:00:00Z')
    path = tmp_path / 'report.json'
    path.write_text(json.dumps(before))
    now = hostvars_for(4)
    del now['build-0001']
    now['build-0000']['ansible_facts']['go_cache']['caches'][0]['bytes'] += 7 * MIB
    now['build-0002']['ansible_facts']['go_cache']['caches'][0]['bytes'] -= MIB
    report = report_of(now, previous=str(path))
    growth = report['growth']
    assert growth['previous_generated_at'] == '2026-11-01T00:00:00Z'
    assert growth['hosts'] == [
        {'host': 'build-0000', 'bytes': expected_host_bytes(0) + 7 * MIB, 'previous_bytes': expected_host_bytes(0),
         'growth_bytes': 7 * MIB},
        {'host': 'build-0002', 'bytes': expected_host_bytes(2) - MIB, 'previous_bytes': expected_host_bytes(2),
         'growth_bytes': -MIB}]
    assert growth['bytes'] == 6 * MIB
    assert growth['new_hosts'] == ['build-0003'] and growth['no_longer_reported'] == ['build-0001']
    rows = dict((row['host'], row) for row in report['hosts'])
    assert rows['build-0000']['growth_bytes'] == 7 * MIB and rows['build-0003']['growth_bytes'] is None
    # the same from the dict itself
    assert report_of(now, previous=before)['growth'] == growth
    assert report_of(now)['growth'] is None


@pytest.mark.parametrize('content, reason', [
    (None, 'cannot read it'),
    ('{"report_version": 1, "hosts": [', 'not JSON'),
    ('{"hosts": []}', 'not a report.json written by gofleet.cache.fleet_report'),
    ('{"report_version": 1, "hosts": [{"bytes": 1}]}', 'not a report.json'),
    ('{"report_version": 99, "hosts": []}', 'report_version 99 is newer'),
])
def test_a_bad_previous_report_names_the_option_and_the_file(tmp_path, content, reason):
    path = tmp_path / 'old.json'
    if content is not None:
        path.write_text(content)
    with pytest.raises(OptionError) as caught:
        report_of(hostvars_for(1), previous=str(path))
    assert caught.value.option == 'fleet_report_previous' and caught.value.value == str(path)
    assert reason in str(caught.value) and str(path) in str(caught.value)


# --------------------------------------------------------------------------- selections


def test_selections_are_jmespath_over_the_report():
    hostvars = hostvars_for(3)
    hostvars['build-0002']['ansible_facts']['go_cache']['caches'][0]['filesystem'] = filesystem(inodes_used_pct=85.0)
    hostvars['dark'] = {'gofleet_facts_result': {'unreachable': True, 'msg': 'timeout'}}
    report = report_of(hostvars, select={
        'inode_heavy': 'hosts[?max_inodes_used_pct > `80`].host',
        'big_module_caches': "caches[?kind=='module' && bytes > `4194304`].[host, user]",
        'unreachable': "failed[?status=='unreachable'].host | [0]",
        'total': 'totals.bytes',
    })
    selections = report['selections']
    assert list(selections) == ['inode_heavy', 'big_module_caches', 'unreachable', 'total']
    assert selections['inode_heavy'] == {'expression': 'hosts[?max_inodes_used_pct > `80`].host',
                                         'result': ['build-0002']}
    assert selections['big_module_caches']['result'] == [['build-0001', 'builder'], ['build-0002', 'runner'],
                                                         ['build-0002', 'builder']]
    assert selections['unreachable']['result'] == 'dark'
    assert selections['total']['result'] == report['totals']['bytes']


@pytest.mark.parametrize('expression, reason', [
    ('hosts[?bytes >', 'selection \'broken\''),
    ('abs(totals)', "selection 'broken'"),  # a type error found while evaluating
    ('', 'expected a JMESPath expression'),
    (42, 'expected a JMESPath expression'),
])
def test_a_bad_selection_names_the_selection_and_the_expression(expression, reason):
    with pytest.raises(OptionError) as caught:
        report_of(hostvars_for(1), select={'fine': 'totals.hosts', 'broken': expression})
    assert caught.value.option == 'fleet_report_select' and caught.value.value == expression
    message = str(caught.value)
    assert reason in message and 'broken' in message and repr(expression) in message


def test_selections_need_jmespath(monkeypatch):
    monkeypatch.setattr(_fleet_report, 'jmespath', None)
    with pytest.raises(OptionError, match='jmespath is needed'):
        report_of(hostvars_for(1), select={'hosts': 'hosts[].host'})
    assert report_of(hostvars_for(1))['selections'] == {}


# --------------------------------------------------------------------------- options


@pytest.mark.parametrize('options, option, value', [
    ({'min_free': '10x'}, 'fleet_report_min_free', '10x'),
    ({'min_free': '120%'}, 'fleet_report_min_free', '120%'),
    ({'max_inodes_used_pct': 120}, 'fleet_report_max_inodes_used_pct', 120),
    ({'max_inodes_used_pct': 'lots'}, 'fleet_report_max_inodes_used_pct', 'lots'),
    ({'top': 0}, 'fleet_report_top', 0),
    ({'top': '3.5'}, 'fleet_report_top', '3.5'),
    ({'top': True}, 'fleet_report_top', True),
    ({'desired_env': ['GOCACHE']}, 'fleet_report_desired_env', ['GOCACHE']),
    ({'desired_env': {'gocache': '/x'}}, 'fleet_report_desired_env', 'gocache'),
    ({'desired_env': {'GOCACHE': ['/x']}}, 'fleet_report_desired_env', ['/x']),
    ({'env_users': 'runner'}, 'fleet_report_env_users', 'runner'),
    ({'select': ['hosts']}, 'fleet_report_select', ['hosts']),
])
def test_bad_options_name_the_variable_and_the_value(options, option, value):
    with pytest.raises(OptionError) as caught:
        report_of(hostvars_for(1), **options)
    assert caught.value.option == option and caught.value.value == value
    assert str(caught.value).startswith('%s: invalid value %r' % (option, value))


def test_numbers_may_come_as_strings():
    report = report_of(hostvars_for(2), top='1', max_inodes_used_pct='85')
    assert report['thresholds'] == {'min_free': '10%', 'max_inodes_used_pct': 85.0, 'top': 1}
    assert len(report['largest']['hosts']) == 1


# --------------------------------------------------------------------------- plain data


class _TaggedStr(str):
    pass


class _LazyDict(dict):
    """Stands in for ansible-core's lazy containers: reading through it would template."""

    def __init__(self, raw):
        super(_LazyDict, self).__init__()
        self.raw = raw

    def _non_lazy_copy(self):
        return dict(self.raw)


def test_values_from_ansible_become_plain_types():
    facts = host_facts(0, users=('alice',))
    facts['caches'][0]['user'] = _TaggedStr('alice')
    hostvars = {'h': {'ansible_facts': {'go_cache': _LazyDict(facts)}}}
    report = report_of(hostvars, select={'users': 'caches[].user'})
    assert type(report['caches'][0]['user']) is str  # pylint: disable=unidiomatic-typecheck
    assert report['selections']['users']['result'] == ['alice', 'alice', 'alice']
    assert _fleet_report.plain({'a': (1, 2.5, True, None, _TaggedStr('x'))}) == {'a': [1, 2.5, True, None, 'x']}


def test_the_report_is_json_and_round_trips():
    report = report_of(hostvars_for(2), select={'n': 'totals.hosts'})
    assert json.loads(_fleet_report.render_json(report)) == report
    assert _fleet_report.render_json(report).endswith('}\n')


def test_a_thousand_hosts():
    """The scale of a large fleet (timing: benchmarks/fleet_report.py); here only the numbers are checked."""
    hostvars = hostvars_for(1000)
    hostvars['build-0500'] = {'gofleet_facts_result': {'unreachable': True, 'msg': 'timeout'}}
    report = report_of(hostvars, select={'biggest': "max_by(hosts[?status=='ok'], &bytes).host"})
    totals = report['totals']
    ok = [index for index in range(1000) if index != 500]
    assert totals['hosts'] == 1000 and totals['hosts_ok'] == 999
    assert totals['bytes'] == sum(expected_host_bytes(index) for index in ok)
    assert totals['caches'] == 999 * 6 and len(report['caches']) == 999 * 6
    assert totals['files'] == sum(2 * (100 + i + 200 + i + 3) for i in ok)
    assert totals['entries'] == sum(2 * (50 + i) + (10 + 3) + (11 + 3) for i in ok)
    assert report['failed'] == [{'host': 'build-0500', 'status': 'unreachable', 'reason': 'timeout'}]
    assert report['largest']['hosts'][0] == {'host': 'build-0999', 'bytes': expected_host_bytes(999), 'caches': 6,
                                             'files': 2 * (1099 + 1199 + 3), 'entries': 2 * 1049 + 27}
    assert report['selections']['biggest']['result'] == 'build-0999'
    assert json.loads(_fleet_report.render_json(report))['totals'] == totals


def test_summary_lines():
    hostvars = hostvars_for(3)
    hostvars['build-0000']['gofleet_prune_results'] = prune_item('runner', 3 * MIB, 30)
    hostvars['dark'] = {'gofleet_facts_result': {'unreachable': True, 'msg': 'timeout'}}
    lines = _fleet_report.summary_lines(report_of(hostvars, prune_check_mode=True, select={'n': 'totals.hosts'}))
    assert lines[0] == '4 hosts: 3 with facts, 1 failed, unreachable or without facts'
    assert lines[1].startswith('18 caches (6 build, 6 module, 6 fuzz): ')
    assert 'Largest host: build-0002' in lines[2]
    assert lines[3] == 'Reclaimable under the policy (dry run): 3.0 MiB in 30 units on 1 host'
    assert lines[4] == 'Without facts: dark (unreachable: timeout)'
    assert lines[5] == 'Selection n: 4'


def test_renderers_reject_anything_but_a_report():
    with pytest.raises(OptionError, match='fleet_report_data'):
        _fleet_report.summary_lines({'hosts': []})
