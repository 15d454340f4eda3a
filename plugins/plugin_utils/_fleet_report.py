# -*- coding: utf-8 -*-
# Copyright (c) gofleet.cache contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

"""The fleet report's data: many hosts' go_cache facts in, one JSON-ready dict out.

Controller side only, pure functions over plain data: the filters in
plugins/filter/ adapt Ansible's hostvars to them, _fleet_report_render turns
the result into CSV, Markdown and HTML. Every value a user gives is checked
here and a bad one raises OptionError naming the fleet_report role variable.

Counting rules, so that the report adds up:

- A cache shared by several accounts (or listed again in ``caches``) appears
  once per account in ``caches`` (CSV rows) but is counted once per host, by
  (kind, real_path): the first row has ``counted: true``.
- A host is ``ok`` (facts used), ``failed`` or ``unreachable`` (the facts or
  prune task did not succeed this run: cached facts of such a host are stale
  and not used), or ``missing`` (reachable but no go_cache facts, e.g. a
  report rebuilt from a fact cache that does not have the host). Every host
  that is not ``ok`` is listed in ``failed``.
"""

from __future__ import annotations

import datetime
import json
from collections.abc import Mapping

from ansible_collections.gofleet.cache.plugins.module_utils._facts import KINDS
from ansible_collections.gofleet.cache.plugins.module_utils._units import (
    OptionError, format_bytes, parse_size_or_percent)

try:
    import jmespath
    import jmespath.exceptions
except ImportError:  # only needed for fleet_report_select
    jmespath = None

REPORT_VERSION = 1
DEFAULT_TITLE = 'Go cache fleet report'
OK, FAILED, UNREACHABLE, MISSING = 'ok', 'failed', 'unreachable', 'missing'
DEFAULT_FACTS_RESULT_VAR = 'gofleet_facts_result'
DEFAULT_PRUNE_VAR = 'gofleet_prune_results'
# Placeholders go_environment_vars values may carry, replaced per account (as the go_environment role does).
USER_PLACEHOLDER, HOME_PLACEHOLDER = '{user}', '{home}'

# Counters summed per kind, per host and per fleet.
COUNTERS = ('bytes', 'disk_bytes', 'files', 'entries')
# What the report reads of each go_cache_facts cache and go_cache_prune result.
CACHE_FIELDS = COUNTERS + ('user', 'kind', 'path', 'real_path', 'source', 'exists', 'valid', 'oldest_used',
                           'newest_used', 'oldest_used_age_s', 'errors_total')
FILESYSTEM_FIELDS = ('mount', 'fstype', 'size_bytes', 'free_bytes', 'inodes_used_pct')
MODULE_FIELDS = ('module', 'versions', 'bytes')
PRUNE_FIELDS = ('removed_bytes', 'removed_entries', 'before_bytes', 'after_bytes', 'errors_total', 'busy', 'skipped')


# --------------------------------------------------------------------------- input from Ansible


def plain(value):
    """Deep copy into plain JSON types (Ansible hands tagged/lazy subclasses that jmespath does not know)."""
    if isinstance(value, Mapping):
        return dict((str(key), plain(item)) for key, item in value.items())
    if isinstance(value, (list, tuple)):
        return [plain(item) for item in value]
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return float(value)
    return str(value)


def _untemplated(value):
    """value without Ansible's per-access templating, when Ansible offers that (ansible-core 2.19+).

    Facts are data a module returned: Ansible never renders them as templates, yet it checks every value read
    from hostvars, which costs seconds for a thousand hosts. The lazy containers of ansible-core 2.19+ can hand
    their contents over unprocessed; older versions pass plain dicts, and without the method nothing changes.
    """
    copy = getattr(value, '_non_lazy_copy', None)
    return copy() if callable(copy) else value


def _pick(mapping, fields):
    """Plain copies of only these fields: Ansible templates every value read from hostvars, so read few."""
    return dict((field, plain(mapping.get(field))) for field in fields if field in mapping)


def _facts_used(facts, env_vars):
    """The part of ansible_facts.go_cache the report uses (env: only env_vars), as plain data."""
    caches = []
    for cache in facts.get('caches') or []:
        if not isinstance(cache, Mapping):
            continue
        item = _pick(cache, CACHE_FIELDS)
        if isinstance(cache.get('filesystem'), Mapping):
            item['filesystem'] = _pick(cache['filesystem'], FILESYSTEM_FIELDS)
        if cache.get('top_modules'):
            item['top_modules'] = [_pick(module, MODULE_FIELDS) for module in cache['top_modules']
                                   if isinstance(module, Mapping)]
        caches.append(item)
    used = {'caches': caches, 'env': {}, 'accounts': {}, 'conflicts': plain(facts.get('conflicts') or [])}
    if env_vars:
        for user, settings in (facts.get('env') or {}).items():
            settings = settings if isinstance(settings, Mapping) else {}
            used['env'][str(user)] = dict((var, _pick(settings[var], ('value', 'source')))
                                          for var in env_vars if isinstance(settings.get(var), Mapping))
        for user, account in (facts.get('accounts') or {}).items():
            if isinstance(account, Mapping):
                used['accounts'][str(user)] = _pick(account, ('home',))
    return used


def _result_failure(result):
    """(status, reason) of a registered task result that failed or could not reach the host, else None."""
    if not isinstance(result, Mapping) or not (result.get('failed') or result.get('unreachable')):
        return None
    # A loop's own msg only says that an item failed: the first failed item says why.
    for item in result.get('results') or []:
        if isinstance(item, Mapping) and (item.get('failed') or item.get('unreachable')):
            result = item
            break
    status = UNREACHABLE if result.get('unreachable') else FAILED
    return status, str(result.get('msg') or ('host unreachable' if status == UNREACHABLE else 'task failed'))


def _prune_used(result):
    """The totals and per-cache removals of a successful registered go_cache_prune result (single or loop)."""
    if not isinstance(result, Mapping) or _result_failure(result):
        return None
    items = result.get('results') if isinstance(result.get('results'), list) else [result]
    used = []
    for item in items:
        if isinstance(item, Mapping):
            entry = _pick(item, PRUNE_FIELDS)
            entry['caches'] = [_pick(cache, ('kind', 'real_path', 'removed_bytes')) for cache in item.get('caches') or []
                               if isinstance(cache, Mapping)]
            used.append(entry)
    return {'results': used}


def collect_hosts(hostvars, hosts=None, reachable=None, facts_result_var=DEFAULT_FACTS_RESULT_VAR,
                  prune_var=DEFAULT_PRUNE_VAR, env_vars=()):
    """{host: {status, reason, facts, prune, groups}} read from Ansible's hostvars (or any mapping like it).

    hosts: whom to report (default every host in hostvars); reachable: the hosts still in the play
    (ansible_play_hosts), the others failed or were unreachable earlier; facts_result_var and
    prune_var: names of the registered go_cache_facts and go_cache_prune results, read for failure
    reasons and reclaimable bytes; env_vars: the Go variables whose effective values are compared
    (the keys of the desired environment). Only what the report uses is copied from the facts.
    """
    if hosts is None:
        hosts = list(hostvars)
    if isinstance(hosts, (str, bytes)) or not isinstance(hosts, (list, tuple)):
        raise OptionError('fleet_report_hosts', hosts, 'expected a list of inventory host names')
    reachable = None if reachable is None else set(str(host) for host in reachable)
    collected = {}
    for host in hosts:
        host = str(host)
        try:
            host_vars = hostvars[host]
        except KeyError:
            host_vars = {}
        if not isinstance(host_vars, Mapping):  # Ansible's hostvars answer an unknown host with Undefined
            host_vars = {}
        facts_result = host_vars.get(facts_result_var) if facts_result_var else None
        prune_result = host_vars.get(prune_var) if prune_var else None
        facts = _untemplated((host_vars.get('ansible_facts') or {}).get('go_cache'))
        failure = _result_failure(facts_result) or _result_failure(prune_result)
        if reachable is not None and host not in reachable:
            status, reason = failure or (FAILED, 'failed or unreachable earlier in the play')
        elif failure:
            status, reason = failure
        elif isinstance(facts, Mapping) and isinstance(facts.get('caches'), list):
            status, reason = OK, None
        else:
            status, reason = MISSING, 'no go_cache facts: not gathered on this host, or not in the fact cache'
        collected[host] = {
            'status': status,
            'reason': reason,
            'facts': _facts_used(facts, env_vars) if status == OK else None,
            'prune': _prune_used(prune_result),
            'groups': sorted(str(group) for group in host_vars.get('group_names') or []),
        }
    return collected


# --------------------------------------------------------------------------- options


def _int_option(value, option, minimum):
    if isinstance(value, bool):
        raise OptionError(option, value, 'expected an integer')
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise OptionError(option, value, 'expected an integer')
    if number != value and str(number) != str(value).strip():
        raise OptionError(option, value, 'expected an integer')
    if number < minimum:
        raise OptionError(option, value, 'must be at least %d' % minimum)
    return number


def _percent_option(value, option):
    if isinstance(value, bool):
        raise OptionError(option, value, 'expected a percentage between 0 and 100')
    try:
        number = float(str(value).strip().rstrip('%'))
    except ValueError:
        raise OptionError(option, value, 'expected a percentage between 0 and 100')
    if not 0 <= number <= 100:
        raise OptionError(option, value, 'expected a percentage between 0 and 100')
    return number


def desired_env_option(desired_env):
    """{GOVAR: value} to compare (null values dropped); OptionError for anything else."""
    if desired_env is None:
        return {}
    if not isinstance(desired_env, Mapping):
        raise OptionError('fleet_report_desired_env', desired_env, 'expected a dict of Go variables to values')
    desired = {}
    for name, value in desired_env.items():
        if not isinstance(name, str) or not name or name != name.upper():
            raise OptionError('fleet_report_desired_env', name, 'expected an upper-case Go variable name such as GOCACHE')
        if isinstance(value, (Mapping, list, tuple)):
            raise OptionError('fleet_report_desired_env', value, '%s: expected a string (or null: not compared)' % name)
        # null removes a key in go_environment: nothing to compare against.
        if value is not None:
            desired[name] = str(value)
    return desired


def _env_users_option(env_users):
    if env_users is None:
        return None
    if isinstance(env_users, str) or not isinstance(env_users, (list, tuple)):
        raise OptionError('fleet_report_env_users', env_users, 'expected a list of account names')
    # Account entries may be dicts with a name (as role user lists often are).
    users = set(str(user.get('name')) if isinstance(user, Mapping) else str(user) for user in env_users)
    # Empty or '*' (like go_cache_facts' users): every account the facts cover.
    return None if not users or '*' in users else users


def _select_option(select):
    if select is None:
        return {}
    if not isinstance(select, Mapping):
        raise OptionError('fleet_report_select', select, 'expected a dict of names to JMESPath expressions')
    for name, expression in select.items():
        if not isinstance(expression, str) or not expression.strip():
            raise OptionError('fleet_report_select', expression,
                              'selection %r: expected a JMESPath expression string' % str(name))
    if select and jmespath is None:
        raise OptionError('fleet_report_select', dict(select),
                          'the Python library jmespath is needed on the controller (pip install jmespath)')
    return dict((str(name), str(expression)) for name, expression in select.items())


def load_previous(previous):
    """A previous report (dict, or the path of its report.json) validated; None when not given."""
    if previous is None or previous == '':
        return None
    source = previous
    if isinstance(previous, str):
        try:
            with open(previous, 'rb') as handle:
                previous = json.loads(handle.read().decode('utf-8'))
        except (IOError, OSError) as exc:
            raise OptionError('fleet_report_previous', source, 'cannot read it: %s' % exc)
        except ValueError as exc:
            raise OptionError('fleet_report_previous', source, 'not JSON: %s' % exc)
    if not (isinstance(previous, Mapping) and isinstance(previous.get('report_version'), int)
            and isinstance(previous.get('hosts'), list)
            and all(isinstance(item, Mapping) and 'host' in item for item in previous['hosts'])):
        raise OptionError('fleet_report_previous', source if isinstance(source, str) else '(a dict)',
                          'not a report.json written by gofleet.cache.fleet_report')
    if previous['report_version'] > REPORT_VERSION:
        raise OptionError('fleet_report_previous', source if isinstance(source, str) else '(a dict)',
                          'report_version %d is newer than this collection understands (%d)'
                          % (previous['report_version'], REPORT_VERSION))
    return previous


# --------------------------------------------------------------------------- building blocks


def _pct(part, whole):
    return round(100.0 * part / whole, 1) if whole else None


def _zero_counts():
    return dict((name, 0) for name in COUNTERS)


def _add_counts(into, cache):
    for name in COUNTERS:
        into[name] += int(cache.get(name) or 0)


def _ranked(rows, key, top):
    """The top rows by key (largest first), ties by the rows' names for a stable report."""
    return sorted(rows, key=lambda row: (-(row[key] or 0), row.get('host') or '', row.get('user') or '',
                                         row.get('module') or ''))[:top]


def _prune_summary(prune):
    """Totals and per-cache removals of a registered go_cache_prune result (single or loop)."""
    items = prune.get('results') if isinstance(prune.get('results'), list) else [prune]
    summary = dict((name, 0) for name in ('bytes', 'entries', 'before_bytes', 'after_bytes', 'errors_total'))
    per_cache = {}
    busy = []
    counted = False
    for item in items:
        if not isinstance(item, Mapping) or item.get('skipped') or 'removed_bytes' not in item:
            continue
        counted = True
        summary['bytes'] += int(item.get('removed_bytes') or 0)
        summary['entries'] += int(item.get('removed_entries') or 0)
        summary['before_bytes'] += int(item.get('before_bytes') or 0)
        summary['after_bytes'] += int(item.get('after_bytes') or 0)
        summary['errors_total'] += int(item.get('errors_total') or 0)
        busy.extend(str(path) for path in item.get('busy') or [])
        for cache in item.get('caches') or []:
            key = (cache.get('kind'), cache.get('real_path'))
            per_cache[key] = per_cache.get(key, 0) + int(cache.get('removed_bytes') or 0)
    if not counted:
        return None, {}
    summary['busy'] = busy
    return summary, per_cache


def _filesystems(caches, min_free, max_inodes_used_pct):
    """One entry per mount the host's caches live on, with why it is short (if it is)."""
    mounts = {}
    for cache in caches:
        fs = cache.get('filesystem')
        if not isinstance(fs, Mapping) or not fs.get('mount') or fs['mount'] in mounts:
            continue
        size, free = fs.get('size_bytes'), fs.get('free_bytes')
        entry = {'mount': fs['mount'], 'fstype': fs.get('fstype'), 'size_bytes': size, 'free_bytes': free,
                 'free_pct': _pct(free, size) if size and free is not None else None,
                 'inodes_used_pct': fs.get('inodes_used_pct'), 'short': []}
        kind, threshold = min_free
        if kind == 'percent' and entry['free_pct'] is not None and entry['free_pct'] < threshold:
            entry['short'].append('free space %s%% < %s%%' % (entry['free_pct'], number_text(threshold)))
        elif kind == 'bytes' and free is not None and free < threshold:
            entry['short'].append('free space %s < %s' % (format_bytes(free), format_bytes(threshold)))
        inodes = entry['inodes_used_pct']
        if isinstance(inodes, (int, float)) and inodes > max_inodes_used_pct:
            entry['short'].append('inodes used %s%% > %s%%' % (number_text(inodes), number_text(max_inodes_used_pct)))
        mounts[fs['mount']] = entry
    return [mounts[mount] for mount in sorted(mounts)]


def number_text(value):
    """90.0 -> '90', 92.5 -> '92.5'."""
    return ('%d' % value) if float(value).is_integer() else ('%s' % value)


def desired_value(template, user, home):
    """A desired go env value for one account: {user} and {home} replaced; None if {home} is unknown."""
    value = template.replace(USER_PLACEHOLDER, user)
    if HOME_PLACEHOLDER in value:
        if not home:
            return None
        value = value.replace(HOME_PLACEHOLDER, home)
    return value


def _env_drift(host, facts, desired, env_users):
    drift = []
    env = facts.get('env') or {}
    accounts = facts.get('accounts') or {}
    for user in sorted(env):
        if env_users is not None and user not in env_users:
            continue
        account = accounts.get(user) or {}
        for var in sorted(desired):
            want = desired_value(desired[var], user, account.get('home'))
            if want is None:
                continue
            setting = (env[user] or {}).get(var) or {}
            have = setting.get('value')
            if have != want:
                drift.append({'host': host, 'user': user, 'var': var, 'value': have, 'desired': want,
                              'source': setting.get('source')})
    return drift


def _cache_row(host, cache, counted, reclaim_bytes):
    fs = cache.get('filesystem') if isinstance(cache.get('filesystem'), Mapping) else {}
    size, free = fs.get('size_bytes'), fs.get('free_bytes')
    row = {'host': host, 'user': cache.get('user'), 'kind': cache.get('kind'), 'path': cache.get('path'),
           'real_path': cache.get('real_path'), 'source': cache.get('source'), 'exists': bool(cache.get('exists')),
           'valid': bool(cache.get('valid')), 'counted': counted}
    for name in COUNTERS:
        row[name] = int(cache.get(name) or 0)
    row.update({
        'oldest_used': cache.get('oldest_used'), 'newest_used': cache.get('newest_used'),
        'oldest_used_age_s': cache.get('oldest_used_age_s'),
        'mount': fs.get('mount'), 'free_bytes': free, 'free_pct': _pct(free, size) if size and free is not None else None,
        'inodes_used_pct': fs.get('inodes_used_pct'), 'reclaim_bytes': reclaim_bytes,
        'errors_total': int(cache.get('errors_total') or 0),
    })
    return row


def _host_report(host, item, min_free, max_inodes_used_pct, desired, env_users):
    """(host row, cache rows, env drift, conflicts, module sizes) of one host."""
    row = {'host': host, 'status': item['status'], 'reason': item['reason'], 'groups': item['groups'],
           'caches': 0, 'missing_caches': 0, 'users': [], 'by_kind': {}, 'filesystems': [], 'min_free_pct': None,
           'max_inodes_used_pct': None, 'short': [], 'reclaim': None, 'previous_bytes': None, 'growth_bytes': None,
           'env_drift': 0, 'conflicts': 0, 'errors_total': 0}
    row.update(_zero_counts())
    if item['prune'] is not None:
        row['reclaim'], per_cache_reclaim = _prune_summary(item['prune'])
    else:
        per_cache_reclaim = {}
    if item['status'] != OK:
        return row, [], [], [], []
    facts = item['facts']
    caches = [cache for cache in facts.get('caches') or [] if isinstance(cache, Mapping)]
    rows, seen, users, modules = [], set(), set(), []
    for cache in caches:
        key = (cache.get('kind'), cache.get('real_path') or cache.get('path'))
        counted = key not in seen
        seen.add(key)
        rows.append(_cache_row(host, cache, counted, per_cache_reclaim.get((cache.get('kind'), cache.get('real_path')))))
        if cache.get('user'):
            users.add(str(cache['user']))
        if not counted:
            continue
        if not cache.get('exists'):
            # located but not there (yet): listed among the caches, counted apart from those that exist
            row['missing_caches'] += 1
            continue
        row['caches'] += 1
        _add_counts(row, cache)
        kind = row['by_kind'].setdefault(str(cache.get('kind')), dict(_zero_counts(), caches=0))
        kind['caches'] += 1
        _add_counts(kind, cache)
        row['errors_total'] += int(cache.get('errors_total') or 0)
        for module in cache.get('top_modules') or []:
            if isinstance(module, Mapping) and module.get('module'):
                modules.append(module)
    row['users'] = sorted(users)
    row['filesystems'] = _filesystems(caches, min_free, max_inodes_used_pct)
    free_pcts = [fs['free_pct'] for fs in row['filesystems'] if fs['free_pct'] is not None]
    inodes = [fs['inodes_used_pct'] for fs in row['filesystems'] if isinstance(fs['inodes_used_pct'], (int, float))]
    row['min_free_pct'] = min(free_pcts) if free_pcts else None
    row['max_inodes_used_pct'] = max(inodes) if inodes else None
    row['short'] = ['%s: %s' % (fs['mount'], reason) for fs in row['filesystems'] for reason in fs['short']]
    drift = _env_drift(host, facts, desired, env_users)
    row['env_drift'] = len(drift)
    conflicts = [dict(conflict, host=host) for conflict in facts.get('conflicts') or [] if isinstance(conflict, Mapping)]
    row['conflicts'] = len(conflicts)
    return row, rows, drift, conflicts, modules


def _largest_users(cache_rows, top):
    users = {}
    for cache in cache_rows:
        if not cache['counted']:
            continue
        key = (cache['host'], cache['user'])
        entry = users.setdefault(key, {'host': cache['host'], 'user': cache['user'], 'bytes': 0, 'caches': 0,
                                       'by_kind': {}})
        entry['bytes'] += cache['bytes']
        entry['caches'] += 1
        entry['by_kind'][cache['kind']] = entry['by_kind'].get(cache['kind'], 0) + cache['bytes']
    return _ranked(list(users.values()), 'bytes', top)


def _largest_modules(module_items, top):
    modules = {}
    for host, module in module_items:
        entry = modules.setdefault(module['module'], {'module': module['module'], 'bytes': 0, 'versions': 0,
                                                      'hosts': set()})
        entry['bytes'] += int(module.get('bytes') or 0)
        entry['versions'] += int(module.get('versions') or 0)
        entry['hosts'].add(host)
    ranked = _ranked(list(modules.values()), 'bytes', top)
    for entry in ranked:
        entry['hosts'] = len(entry['hosts'])
    return ranked


def _growth(previous, host_rows):
    if previous is None:
        return None
    before = dict((str(item['host']), item) for item in previous['hosts'])
    compared, new_hosts = [], []
    for row in host_rows:
        old = before.get(row['host'])
        if row['status'] != OK:
            continue
        if old is None or old.get('status') != OK or not isinstance(old.get('bytes'), int):
            new_hosts.append(row['host'])
            continue
        row['previous_bytes'] = old['bytes']
        row['growth_bytes'] = row['bytes'] - old['bytes']
        compared.append({'host': row['host'], 'bytes': row['bytes'], 'previous_bytes': old['bytes'],
                         'growth_bytes': row['growth_bytes']})
    ok_now = set(row['host'] for row in host_rows if row['status'] == OK)
    no_longer = sorted(host for host, item in before.items() if item.get('status') == OK and host not in ok_now)
    compared.sort(key=lambda item: (-item['growth_bytes'], item['host']))
    return {'previous_generated_at': previous.get('generated_at'),
            'bytes': sum(item['growth_bytes'] for item in compared),
            'hosts': compared, 'new_hosts': new_hosts, 'no_longer_reported': no_longer}


def _evaluate_selections(select, report):
    selections = {}
    for name, expression in select.items():
        try:
            result = jmespath.search(expression, report)
        except jmespath.exceptions.JMESPathError as exc:
            raise OptionError('fleet_report_select', expression, 'selection %r: %s' % (
                name, str(exc).replace('\n', ' ')))
        selections[name] = {'expression': expression, 'result': result}
    return selections


# --------------------------------------------------------------------------- the report


def build_report(hosts, min_free='10%', max_inodes_used_pct=90, top=10, desired_env=None, env_users=None,
                 previous=None, select=None, prune_check_mode=False, title=DEFAULT_TITLE, generated_at=None):
    """The report data (JSON-ready) from collect_hosts()'s {host: {status, reason, facts, prune, groups}}.

    min_free: a host is short of space when a cache's file system has less free ('10%' or '20GiB');
    max_inodes_used_pct: ... or more inodes used than this; top: rows in the largest-* lists;
    desired_env: {GOVAR: value with {user}/{home} placeholders} compared with each account's effective
    value (null values are not compared); env_users: accounts compared (empty or '*': all);
    previous: an earlier report (dict, or the path of its report.json) for growth per host;
    select: {name: JMESPath expression} evaluated over the report; prune_check_mode: whether the
    prune results were a dry run.
    """
    min_free_parsed = parse_size_or_percent(min_free, 'fleet_report_min_free')
    max_inodes = _percent_option(max_inodes_used_pct, 'fleet_report_max_inodes_used_pct')
    top = _int_option(top, 'fleet_report_top', 1)
    desired = desired_env_option(desired_env)
    users_filter = _env_users_option(env_users)
    selections = _select_option(select)
    previous = load_previous(previous)
    if not isinstance(hosts, Mapping):
        raise OptionError('hosts', type(hosts).__name__, 'expected the {host: ...} mapping collect_hosts() returns')
    if generated_at is None:
        generated_at = datetime.datetime.now(datetime.timezone.utc).strftime('%Y-%m-%dT%H:%M:%SZ')

    host_rows, cache_rows, drift, conflicts, module_items = [], [], [], [], []
    for host in sorted(hosts):
        row, rows, host_drift, host_conflicts, modules = _host_report(
            host, hosts[host], min_free_parsed, max_inodes, desired, users_filter)
        host_rows.append(row)
        cache_rows.extend(rows)
        drift.extend(host_drift)
        conflicts.extend(host_conflicts)
        module_items.extend((host, module) for module in modules)

    ok_rows = [row for row in host_rows if row['status'] == OK]
    totals = dict(_zero_counts(), hosts=len(host_rows), hosts_ok=len(ok_rows),
                  hosts_failed=len(host_rows) - len(ok_rows), caches=0, missing_caches=0,
                  users=len(set((cache['host'], cache['user']) for cache in cache_rows if cache['user'])),
                  by_kind=dict((kind, dict(_zero_counts(), caches=0)) for kind in KINDS))
    for row in ok_rows:
        totals['caches'] += row['caches']
        totals['missing_caches'] += row['missing_caches']
        _add_counts(totals, row)
        for kind, counts in row['by_kind'].items():
            into = totals['by_kind'].setdefault(kind, dict(_zero_counts(), caches=0))
            into['caches'] += counts['caches']
            _add_counts(into, counts)

    pruned = [row for row in host_rows if row['reclaim'] is not None]
    reclaim = {'mode': None if not pruned else ('check' if prune_check_mode else 'applied'),
               'hosts_with_result': len(pruned), 'bytes': 0, 'entries': 0, 'before_bytes': 0, 'after_bytes': 0,
               'errors_total': 0, 'busy_hosts': [], 'hosts': []}
    for row in pruned:
        for name in ('bytes', 'entries', 'before_bytes', 'after_bytes', 'errors_total'):
            reclaim[name] += row['reclaim'][name]
        if row['reclaim']['busy']:
            reclaim['busy_hosts'].append(row['host'])
        reclaim['hosts'].append(dict(host=row['host'], **dict((name, row['reclaim'][name]) for name in (
            'bytes', 'entries', 'before_bytes', 'after_bytes', 'errors_total'))))
    reclaim['hosts'] = _ranked(reclaim['hosts'], 'bytes', len(reclaim['hosts']))
    totals['reclaim_bytes'] = reclaim['bytes'] if pruned else None

    report = {
        'report_version': REPORT_VERSION,
        'title': str(title),
        'generated_at': str(generated_at),
        'thresholds': {'min_free': str(min_free), 'max_inodes_used_pct': max_inodes, 'top': top},
        'desired_env': desired,
        'totals': totals,
        'hosts': host_rows,
        'caches': cache_rows,
        'largest': {
            'hosts': [dict((name, row[name]) for name in ('host', 'bytes', 'caches', 'files', 'entries'))
                      for row in _ranked(ok_rows, 'bytes', top)],
            'users': _largest_users(cache_rows, top),
            'modules': _largest_modules(module_items, top),
        },
        'reclaim': reclaim,
        'short_of_space': [dict(host=row['host'], **fs) for row in ok_rows for fs in row['filesystems'] if fs['short']],
        'env_drift': drift,
        'conflicts': conflicts,
        'failed': [{'host': row['host'], 'status': row['status'], 'reason': row['reason']}
                   for row in host_rows if row['status'] != OK],
        'growth': _growth(previous, host_rows),
    }
    totals['short_hosts'] = len(set(item['host'] for item in report['short_of_space']))
    totals['env_drift_hosts'] = len(set(item['host'] for item in drift))
    # Selections see everything above (not each other's results).
    report['selections'] = _evaluate_selections(selections, report)
    return report


def check_report(report, option='report'):
    """report, untemplated, if it is what build_report() returns (renderers' input check); else OptionError."""
    report = _untemplated(report)
    if not (isinstance(report, Mapping) and report.get('report_version') == REPORT_VERSION
            and isinstance(report.get('hosts'), list) and isinstance(report.get('totals'), Mapping)):
        raise OptionError(option, type(report).__name__,
                          'expected the report built by gofleet.cache.fleet_report_data (report_version %d)'
                          % REPORT_VERSION)
    return report


def _count(number, noun, plural=None):
    """'1 host', '1,000 hosts'."""
    return '{:,} {}'.format(number, noun if number == 1 else (plural or noun + 's'))


def kinds_in_order(by_kind):
    """by_kind's items, Go's kinds first in their usual order (build, module, fuzz)."""
    return sorted(by_kind.items(), key=lambda item: (KINDS.index(item[0]) if item[0] in KINDS else len(KINDS), item[0]))


def render_json(report):
    """report.json: the full data, keys sorted, two-space indent, newline-terminated."""
    return json.dumps(check_report(report), indent=2, sort_keys=True) + '\n'


def summary_lines(report):
    """A few lines saying what matters, for the play output and the top of the Markdown report."""
    report = check_report(report)
    totals = report['totals']
    lines = ['%s: %d with facts, %d failed, unreachable or without facts' % (
        _count(totals['hosts'], 'host'), totals['hosts_ok'], totals['hosts_failed'])]
    kinds = ', '.join('%d %s' % (counts['caches'], kind) for kind, counts in kinds_in_order(totals['by_kind'])
                      if counts['caches'])
    lines.append('%s%s: %s in %s, %s%s' % (
        _count(totals['caches'], 'cache'), (' (%s)' % kinds) if kinds else '', format_bytes(totals['bytes']),
        _count(totals['files'], 'file'), _count(totals['entries'], 'entry', 'entries'),
        ('; %s located but not created yet' % _count(totals['missing_caches'], 'cache'))
        if totals.get('missing_caches') else ''))
    if report['largest']['hosts']:
        largest = report['largest']['hosts'][0]
        lines.append('Largest host: %s (%s)' % (largest['host'], format_bytes(largest['bytes'])))
    reclaim = report['reclaim']
    if reclaim['mode']:
        lines.append('%s: %s in %s on %s%s' % (
            'Reclaimable under the policy (dry run)' if reclaim['mode'] == 'check' else 'Removed by the prune',
            format_bytes(reclaim['bytes']), _count(reclaim['entries'], 'unit'), _count(reclaim['hosts_with_result'], 'host'),
            ('; Go builds were running on %s' % ', '.join(reclaim['busy_hosts'])) if reclaim['busy_hosts'] else ''))
    if report['short_of_space']:
        lines.append('Short of space or inodes: %s' % ', '.join(
            '%s %s (%s)' % (item['host'], item['mount'], '; '.join(item['short'])) for item in report['short_of_space'][:5])
            + (' and %d more' % (len(report['short_of_space']) - 5) if len(report['short_of_space']) > 5 else ''))
    if report['env_drift']:
        lines.append('Go environment differs from the desired one: %s on %s' % (
            _count(len(report['env_drift']), 'setting'), _count(totals['env_drift_hosts'], 'host')))
    if report['failed']:
        lines.append('Without facts: %s' % ', '.join(
            '%s (%s: %s)' % (item['host'], item['status'], item['reason']) for item in report['failed'][:5])
            + (' and %d more' % (len(report['failed']) - 5) if len(report['failed']) > 5 else ''))
    growth = report['growth']
    if growth is not None:
        lines.append('Growth since %s: %s%s on %s' % (
            growth['previous_generated_at'], '+' if growth['bytes'] >= 0 else '-', format_bytes(abs(growth['bytes'])),
            _count(len(growth['hosts']), 'host')))
    for name, selection in report['selections'].items():
        result = selection['result']
        lines.append('Selection %s: %s' % (name, _count(len(result), 'result') if isinstance(result, list)
                                           else json.dumps(result, sort_keys=True)[:200]))
    return lines
