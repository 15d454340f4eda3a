# -*- coding: utf-8 -*-
# Copyright (c) gofleet.cache contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

"""The fleet report filters: registered names and docs, hostvars in, formats out, errors as AnsibleFilterError."""

from __future__ import annotations

import csv
import io
import json
import os

import pytest
import yaml

from ansible.errors import AnsibleFilterError

from ansible_collections.gofleet.cache.plugins.filter import fleet_report
from ansible_collections.gofleet.cache.tests.unit.plugins.plugin_utils.fleetfacts import (
    expected_host_bytes, hostvars_for)

FILTERS = fleet_report.FilterModule().filters()
NAMES = ['fleet_report_csv', 'fleet_report_data', 'fleet_report_html', 'fleet_report_json', 'fleet_report_markdown',
         'fleet_report_summary']


def test_every_filter_is_registered():
    assert sorted(FILTERS) == NAMES


@pytest.mark.parametrize('name', NAMES)
def test_every_filter_has_its_documentation(name):
    path = os.path.join(os.path.dirname(fleet_report.__file__), name + '.yml')
    with open(path) as handle:
        docs = yaml.safe_load(handle)
    assert docs['DOCUMENTATION']['name'] == name and '_input' in docs['DOCUMENTATION']['options']
    assert name in docs['EXAMPLES'] and '_value' in docs['RETURN']


@pytest.fixture
def hostvars():
    hostvars = hostvars_for(4)
    hostvars['build-0003']['gofleet_facts_result'] = {'failed': True, 'msg': 'Permission denied'}
    hostvars['build-0002']['gofleet_prune_results'] = {'results': [{
        'item': 'runner', 'removed_bytes': 2048, 'removed_entries': 3, 'before_bytes': 9000, 'after_bytes': 6952,
        'errors_total': 0, 'busy': [], 'caches': []}]}
    return hostvars


def test_the_data_filter_reads_hostvars_of_the_play(hostvars):
    report = FILTERS['fleet_report_data'](
        hostvars, hosts=['build-0000', 'build-0001', 'build-0002', 'build-0003'],
        reachable=['build-0000', 'build-0002', 'build-0003'], prune_check_mode=True,
        desired_env={'GOTOOLCHAIN': 'auto', 'GOFLAGS': None}, select={'ok': "hosts[?status=='ok'].host"},
        generated_at='2026-11-22T00:00:00Z')
    assert report['generated_at'] == '2026-11-22T00:00:00Z'
    assert [(item['host'], item['status']) for item in report['failed']] == [
        ('build-0001', 'failed'), ('build-0003', 'failed')]
    assert report['totals']['bytes'] == expected_host_bytes(0) + expected_host_bytes(2)
    assert report['reclaim']['mode'] == 'check' and report['reclaim']['bytes'] == 2048
    assert report['selections']['ok']['result'] == ['build-0000', 'build-0002']
    # only the desired variables were read, and compared
    assert set(item['var'] for item in report['env_drift']) == {'GOTOOLCHAIN'} and len(report['env_drift']) == 4


def test_every_format_filter_renders_the_report(hostvars):
    report = FILTERS['fleet_report_data'](hostvars, select={'n': 'totals.hosts'})
    assert json.loads(FILTERS['fleet_report_json'](report)) == report
    rows = list(csv.DictReader(io.StringIO(FILTERS['fleet_report_csv'](report), newline='')))
    assert len(rows) == 3 * 6 + 1
    hosts = list(csv.DictReader(io.StringIO(FILTERS['fleet_report_csv'](report, 'hosts'), newline='')))
    assert [row['status'] for row in hosts] == ['ok', 'ok', 'ok', 'failed']
    assert FILTERS['fleet_report_markdown'](report).startswith('# Go cache fleet report\n')
    assert '</html>' in FILTERS['fleet_report_html'](report)
    assert FILTERS['fleet_report_summary'](report)[-1] == 'Selection n: 4'


@pytest.mark.parametrize('kwargs, message', [
    ({'min_free': 'plenty'}, "fleet_report_data: fleet_report_min_free: invalid value 'plenty'"),
    ({'select': {'bad': 'hosts[?'}}, "fleet_report_data: fleet_report_select: invalid value 'hosts[?': selection 'bad'"),
    ({'desired_env': 'GOCACHE=/x'}, "fleet_report_data: fleet_report_desired_env: invalid value 'GOCACHE=/x'"),
    ({'previous': '/nonexistent/report.json'},
     "fleet_report_data: fleet_report_previous: invalid value '/nonexistent/report.json': cannot read it"),
])
def test_bad_values_fail_the_task_with_the_option_and_value(hostvars, kwargs, message):
    with pytest.raises(AnsibleFilterError) as caught:
        FILTERS['fleet_report_data'](hostvars, **kwargs)
    assert str(caught.value).startswith(message)


@pytest.mark.parametrize('name', [name for name in NAMES if name != 'fleet_report_data'])
def test_format_filters_want_the_report(name):
    with pytest.raises(AnsibleFilterError) as caught:
        FILTERS[name](['not', 'a', 'report'])
    assert str(caught.value).startswith(name + ': report: invalid value')
    assert 'expected the report built by gofleet.cache.fleet_report_data' in str(caught.value)


def test_csv_table_choice_is_checked(hostvars):
    report = FILTERS['fleet_report_data'](hostvars)
    with pytest.raises(AnsibleFilterError, match="fleet_report_csv: table: invalid value 'everything'"):
        FILTERS['fleet_report_csv'](report, 'everything')
