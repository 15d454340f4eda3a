#!/usr/bin/env python
# Copyright: (c) 2026, gofleet.cache contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Time the fleet report for a large fleet: the report code alone, and the audit playbook on a fact cache.

Generated go_cache facts (tests/unit/plugins/plugin_utils/fleetfacts.py: 2 accounts x build, module and fuzz
caches per host) for --hosts hosts:

* ``render``: collect_hosts + build_report (with one JMESPath selection) and every format (JSON, CSV,
  Markdown, HTML), in this process, median of --repeat runs. Goal: under 10 s for 1,000 hosts.
* ``playbook`` (with --playbook): the same facts written to a jsonfile fact cache, then the real
  ``ansible-playbook gofleet.cache.audit -e gofleet_from_cache=true`` (no host is contacted), wall time.

Prints the figures, never asserts them; exits non-zero only when a run fails.

    python benchmarks/fleet_report.py                  # 1,000 hosts, render only
    python benchmarks/fleet_report.py --playbook       # and the playbook end to end
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
PYPATH = os.path.join(REPO, '.cache', 'pypath')
if PYPATH not in sys.path:
    sys.path.insert(0, PYPATH)

from ansible_collections.gofleet.cache.plugins.plugin_utils import _fleet_report  # noqa: E402
from ansible_collections.gofleet.cache.plugins.plugin_utils import _fleet_report_render  # noqa: E402
from ansible_collections.gofleet.cache.tests.unit.plugins.plugin_utils import fleetfacts  # noqa: E402

GOAL_SECONDS = 10.0
SELECT = {'inode_heavy': 'hosts[?max_inodes_used_pct > `80`].host'}


def time_render(hosts, repeat):
    hostvars = fleetfacts.hostvars_for(hosts)
    runs, sizes = [], {}
    for _run in range(repeat):
        started = time.perf_counter()
        report = _fleet_report.build_report(_fleet_report.collect_hosts(hostvars), select=SELECT)
        sizes = {
            'json': len(_fleet_report.render_json(report)),
            'csv': len(_fleet_report_render.render_csv(report)),
            'markdown': len(_fleet_report_render.render_markdown(report)),
            'html': len(_fleet_report_render.render_html(report)),
        }
        runs.append(time.perf_counter() - started)
    return statistics.median(runs), runs, sizes


def time_playbook(hosts, workdir):
    cache_dir = os.path.join(workdir, 'facts')
    os.makedirs(cache_dir)
    inventory = os.path.join(workdir, 'inventory.ini')
    with open(inventory, 'w') as handle:
        handle.write('[builders]\n')
        for index in range(hosts):
            name = 'build-%04d' % index
            # unreachable on purpose: the report must come from the cache alone
            handle.write('%s ansible_host=127.0.0.1 ansible_port=1\n' % name)
            # the jsonfile cache plugin's layout (ansible-core 2.19+: "s1_" key prefix, __payload__ envelope)
            with open(os.path.join(cache_dir, 's1_' + name), 'w') as facts:
                json.dump({'__payload__': json.dumps({'go_cache': fleetfacts.host_facts(index)})}, facts)
    env = dict(os.environ, ANSIBLE_CACHE_PLUGIN='jsonfile', ANSIBLE_CACHE_PLUGIN_CONNECTION=cache_dir,
               ANSIBLE_CACHE_PLUGIN_TIMEOUT='0', ANSIBLE_NOCOLOR='1')
    command = ['ansible-playbook', '-i', inventory, 'gofleet.cache.audit', '-e', 'gofleet_from_cache=true',
               '-e', 'fleet_report_dir=%s' % os.path.join(workdir, 'report')]
    started = time.perf_counter()
    result = subprocess.run(command, env=env, cwd=workdir, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            universal_newlines=True, check=False)
    seconds = time.perf_counter() - started
    if result.returncode != 0:
        sys.stdout.write(result.stdout[-4000:])
        raise SystemExit('ansible-playbook failed (rc %d)' % result.returncode)
    with open(os.path.join(workdir, 'report', 'report.json')) as handle:
        totals = json.load(handle)['totals']
    if totals['hosts_ok'] != hosts:
        raise SystemExit('the report has %d hosts with facts, expected %d' % (totals['hosts_ok'], hosts))
    return seconds


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--hosts', type=int, default=1000)
    parser.add_argument('--repeat', type=int, default=3)
    parser.add_argument('--playbook', action='store_true', help='also time the audit playbook on a fact cache')
    args = parser.parse_args(argv)

    median, runs, sizes = time_render(args.hosts, args.repeat)
    print('render: %d hosts, build + JSON, CSV, Markdown, HTML: median %.2f s (runs %s); goal < %.0f s: %s'
          % (args.hosts, median, ', '.join('%.2f' % run for run in runs), GOAL_SECONDS,
             'holds' if median < GOAL_SECONDS else 'MISSED'))
    print('        output sizes: %s' % ', '.join('%s %.1f MB' % (name, size / 1e6) for name, size in sizes.items()))
    if args.playbook:
        workdir = tempfile.mkdtemp(prefix='gofleet-fleet-bench-')
        try:
            seconds = time_playbook(args.hosts, workdir)
        finally:
            shutil.rmtree(workdir, ignore_errors=True)
        print('playbook: ansible-playbook gofleet.cache.audit -e gofleet_from_cache=true, %d hosts: %.1f s wall'
              % (args.hosts, seconds))
    return 0


if __name__ == '__main__':
    sys.exit(main())
