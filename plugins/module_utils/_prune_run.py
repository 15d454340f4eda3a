# -*- coding: utf-8 -*-
# Copyright (c) gofleet.cache contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

"""One prune run over several caches: targets, validation up front, totals.

Shared by the go_cache_prune module and the on-host agent.
"""

from __future__ import annotations

import os
import time

from ansible_collections.gofleet.cache.plugins.module_utils import _facts
from ansible_collections.gofleet.cache.plugins.module_utils import _prune
from ansible_collections.gofleet.cache.plugins.module_utils import _users
from ansible_collections.gofleet.cache.plugins.module_utils._units import OptionError, format_bytes

SAMPLE_SIZE = _prune.SAMPLE_SIZE
MAX_ERRORS = 20


def resolve_targets(user=None, kinds=None, path=None, kind=None, go='auto'):
    """[(path, kind, busy_uid, label)] to prune; OptionError for contradictory or bad targets."""
    if path is not None:
        if kinds is not None:
            raise OptionError('kinds', kinds, 'give either path with kind, or user with kinds, not path with kinds')
        if user is not None:
            raise OptionError('user', user, 'give either path with kind, or user with kinds, not both')
        if kind is None:
            raise OptionError('kind', kind, 'path needs kind (build, module or fuzz)')
        if kind not in _prune.KINDS:
            raise OptionError('kind', kind, 'expected one of %s' % ', '.join(_prune.KINDS))
        return [(path, kind, None, 'explicit')]
    if kind is not None:
        raise OptionError('kind', kind, 'kind goes with path; for a user use kinds')
    kinds = ['build'] if kinds is None else list(kinds)
    for item in kinds:
        if item not in _prune.KINDS:
            raise OptionError('kinds', item, 'expected one of %s' % ', '.join(_prune.KINDS))
    account = _users.current_account() if user is None else _users.lookup(user, 'user')
    goenv, _binary, _disagreements, _errors = _facts.account_locations(account, go)
    targets = []
    for item in kinds:
        setting = goenv.settings['GOMODCACHE' if item == 'module' else 'GOCACHE']
        location = setting.value
        if location and os.path.isabs(location) and item == 'fuzz':
            location = os.path.join(location, 'fuzz')
        targets.append((location, item, account.pw_uid, account.pw_name))
    return targets


def check_targets(targets):
    """(targets to prune, missing caches): OptionError for any root that is not a safe Go cache.

    Everything is checked before anything is removed, here and in the agent,
    which prunes its targets one at a time under a lock each.
    """
    checked = []
    missing = []
    for path, kind, uid, label in targets:
        if label != 'explicit' and (not path or not os.path.isdir(path)):
            # A user without that cache yet has nothing to prune.
            missing.append({'path': path or None, 'kind': kind, 'user': label})
            continue
        _prune.check_root(path, kind, 'path' if label == 'explicit' else 'user')
        checked.append((path, kind, uid, label))
    return checked, missing


def run(targets, policy, check_mode=False, now=None, freed_on_device=None):
    """Validate every target, then prune each; returns the module's result dict (without changed/diff).

    `freed_on_device` ({st_dev: bytes}) carries min_free's check-mode accounting
    across calls that prune one target each.
    """
    now = time.time() if now is None else now
    checked, missing = check_targets(targets)
    results = []
    freed_on_device = {} if freed_on_device is None else freed_on_device
    for path, kind, uid, label in checked:
        result = _prune.prune_cache(path, kind, policy, check_mode, now, uid, freed_on_device)
        result['user'] = None if label == 'explicit' else label
        results.append(result)
    totals = {'removed_entries': 0, 'removed_bytes': 0, 'before_bytes': 0, 'after_bytes': 0, 'kept': {},
              'errors': [], 'errors_total': 0, 'sample': []}
    for result in results:
        for key in ('removed_entries', 'removed_bytes', 'before_bytes', 'after_bytes', 'errors_total'):
            totals[key] += result[key]
        for reason, count in result['kept'].items():
            totals['kept'][reason] = totals['kept'].get(reason, 0) + count
        for error in result['errors']:
            if len(totals['errors']) < MAX_ERRORS:
                totals['errors'].append(dict(error, cache=result['real_path']))
        for name in result['sample']:
            if len(totals['sample']) < SAMPLE_SIZE:
                totals['sample'].append('%s %s' % (result['kind'], name))
    totals['caches'] = results
    totals['missing'] = missing
    totals['busy'] = [result['real_path'] for result in results if result['busy']]
    return totals


def summary_lines(result, removed=True):
    """One line per cache for diffs and logs: size before/after and what went."""
    lines = []
    for item in result['caches']:
        size = item['after_bytes'] if removed else item['before_bytes']
        line = '%s cache %s: %s' % (item['kind'], item['real_path'], format_bytes(size))
        if removed:
            line += ', %d entries removed (%s)' % (item['removed_entries'], format_bytes(item['removed_bytes']))
        lines.append(line)
    return '\n'.join(lines) + ('\n' if lines else '')
