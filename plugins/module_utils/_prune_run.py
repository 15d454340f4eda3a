# -*- coding: utf-8 -*-
# Copyright (c) gofleet.cache contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

"""One prune run over several caches: targets, validation up front, totals.

Shared by the go_cache_prune module and the on-host agent.
"""

from __future__ import annotations

import time

from ansible_collections.gofleet.cache.plugins.module_utils import _fs
from ansible_collections.gofleet.cache.plugins.module_utils import _locate
from ansible_collections.gofleet.cache.plugins.module_utils import _privsep
from ansible_collections.gofleet.cache.plugins.module_utils import _prune
from ansible_collections.gofleet.cache.plugins.module_utils import _users
from ansible_collections.gofleet.cache.plugins.module_utils._units import OptionError, format_bytes

SAMPLE_SIZE = _prune.SAMPLE_SIZE
MAX_ERRORS = 20


def resolve_targets(user=None, kinds=None, path=None, kind=None, go='auto'):
    """(targets, unlocated) to prune: _locate.Targets, and [{user, kind, path, reason}] of caches Go has no place for.

    OptionError for contradictory or bad options.  An account's locations are
    worked out as the account (see _locate).
    """
    if path is not None:
        if kinds is not None:
            raise OptionError('kinds', kinds, 'give either path with kind, or user with kinds, not path with kinds')
        if user is not None:
            raise OptionError('user', user, 'give either path with kind, or user with kinds, not both')
        if kind is None:
            raise OptionError('kind', kind, 'path needs kind (build, module or fuzz)')
        if kind not in _prune.KINDS:
            raise OptionError('kind', kind, 'expected one of %s' % ', '.join(_prune.KINDS))
        _locate.check_cache_path(path)
        return [_locate.Target(path, kind)], []
    if kind is not None:
        raise OptionError('kind', kind, 'kind goes with path; for a user use kinds')
    kinds = ['build'] if kinds is None else list(kinds)
    for item in kinds:
        if item not in _prune.KINDS:
            raise OptionError('kinds', item, 'expected one of %s' % ', '.join(_prune.KINDS))
    account = _users.current_account() if user is None else _users.lookup(user, 'user')
    return _locate.account_targets(account, kinds, go)


def _found(root_fd, real_path, target):  # pylint: disable=unused-argument
    return real_path


def _entry(target, reason=None):
    item = {'path': _fs.printable(target.path), 'kind': target.kind, 'user': target.user}
    if reason is not None:
        item['reason'] = _fs.printable(reason)
    return item


def check_targets(targets):
    """(targets to prune, missing, skipped): every root is checked before anything is removed.

    An explicit path that is not a safe Go cache raises OptionError (nothing
    is touched).  An account's cache that is not there yet is `missing`; one
    that is not the account's, or not a Go cache, is `skipped` with the
    reason: the account chose the location, so it may not stop the others.
    The agent checks the same way, then prunes one target at a time.
    """
    checked, missing, skipped = [], [], []
    for target in targets:
        try:
            state, value, _owner = _locate.on_root(target, _found)
        except _privsep.ChildFailed as exc:
            skipped.append(_entry(target, exc.strerror))
            continue
        if state == _locate.MISSING:
            missing.append(_entry(target))
        elif state == _locate.SKIPPED:
            skipped.append(_entry(target, value))
        else:
            target.real = value
            checked.append(target)
    return checked, missing, skipped


def prune_checked(target, policy, check_mode, now, freed_on_device):
    """[state, result or reason] of one target that check_targets accepted (it may have changed since)."""
    busy_uid = None if target.account is None else target.account.pw_uid
    try:
        state, value, _owner = _prune.prune_target(target, policy, check_mode, now, busy_uid, freed_on_device)
    except _privsep.ChildFailed as exc:
        return [_locate.SKIPPED, exc.strerror]
    return [state, value]


def run(targets, policy, check_mode=False, now=None, freed_on_device=None, unlocated=()):
    """Check every target, then prune each; returns the module's result dict (without changed/diff).

    `freed_on_device` ({st_dev: bytes}) carries min_free's check-mode accounting
    across calls that prune one target each.
    """
    now = time.time() if now is None else now
    checked, missing, skipped = check_targets(targets)
    missing = [dict(item) for item in unlocated] + missing
    results = []
    freed_on_device = {} if freed_on_device is None else freed_on_device
    for target in checked:
        state, value = prune_checked(target, policy, check_mode, now, freed_on_device)
        if state == _locate.OK:
            value['user'] = target.user
            results.append(value)
        elif state == _locate.MISSING:
            missing.append(_entry(target))
        else:
            skipped.append(_entry(target, value))
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
    # Not `skipped`: Ansible reserves that key of a task result for a bool.
    totals['skipped_caches'] = skipped
    totals['busy'] = [result['real_path'] for result in results if result['busy']]
    totals['changed'] = bool(totals['removed_entries'] or any(result['cleared_other'] for result in results))
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
