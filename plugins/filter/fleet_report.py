# -*- coding: utf-8 -*-
# Copyright (c) gofleet.cache contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

"""Filters of the fleet report; each is documented in fleet_report_<name>.yml (ansible-doc -t filter)."""

from __future__ import annotations

from ansible_collections.gofleet.cache.plugins.plugin_utils import _fleet_report
from ansible_collections.gofleet.cache.plugins.plugin_utils import _fleet_report_render
from ansible_collections.gofleet.cache.plugins.plugin_utils._filter_errors import option_errors_fail_filter


@option_errors_fail_filter
def fleet_report_data(hostvars, hosts=None, reachable=None, facts_result_var=_fleet_report.DEFAULT_FACTS_RESULT_VAR,
                      prune_var=_fleet_report.DEFAULT_PRUNE_VAR, prune_check_mode=False, min_free='10%',
                      max_inodes_used_pct=90, top=10, desired_env=None, env_users=None, previous=None, select=None,
                      title=_fleet_report.DEFAULT_TITLE, generated_at=None):
    desired = _fleet_report.desired_env_option(desired_env)
    # Only the desired variables are read from each account's environment: reading hostvars costs per value.
    collected = _fleet_report.collect_hosts(hostvars, hosts, reachable, facts_result_var, prune_var,
                                            env_vars=sorted(desired))
    return _fleet_report.build_report(collected, min_free=min_free, max_inodes_used_pct=max_inodes_used_pct, top=top,
                                      desired_env=desired, env_users=env_users, previous=previous, select=select,
                                      prune_check_mode=bool(prune_check_mode), title=title, generated_at=generated_at)


# The formats: the report built by fleet_report_data in, text (or the summary's lines) out.
RENDERERS = {
    'fleet_report_json': _fleet_report.render_json,
    'fleet_report_csv': _fleet_report_render.render_csv,
    'fleet_report_markdown': _fleet_report_render.render_markdown,
    'fleet_report_html': _fleet_report_render.render_html,
    'fleet_report_summary': _fleet_report.summary_lines,
}


class FilterModule(object):
    """gofleet.cache.fleet_report_* filters."""

    def filters(self):
        filters = dict((name, option_errors_fail_filter(function, name)) for name, function in RENDERERS.items())
        filters['fleet_report_data'] = fleet_report_data
        return filters
