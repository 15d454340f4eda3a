# -*- coding: utf-8 -*-
# Copyright (c) gofleet.cache contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

"""Facts about Go caches: locate them per account, scan each once, summarise.

The result is bounded whatever the size of the caches: counts, a fixed set of
age buckets, the `top` largest modules and at most a few errors per cache.
"""

from __future__ import annotations

import bisect
import heapq
import os
import stat
import time

from ansible_collections.gofleet.cache.plugins.module_utils import _buildcache
from ansible_collections.gofleet.cache.plugins.module_utils import _fs
from ansible_collections.gofleet.cache.plugins.module_utils import _locate
from ansible_collections.gofleet.cache.plugins.module_utils import _modcache
from ansible_collections.gofleet.cache.plugins.module_utils import _privsep
from ansible_collections.gofleet.cache.plugins.module_utils import _users
from ansible_collections.gofleet.cache.plugins.module_utils._units import OptionError, iso_utc, parse_duration

KINDS = _locate.KINDS
# The largest modules listed per module cache: enough for any report, small enough for any result.
MAX_TOP = 1000
DEFAULT_AGE_BUCKETS = ('7d', '30d', '90d')
NS = 1000000000


class AgeHistogram(object):
    """Cumulative counts of units not used for longer than each threshold.

    Called once per file on a stat-only scan: one bisect per call, the sums
    are made cumulative only at the end.
    """

    def __init__(self, buckets, now, lag_s=0):
        """`lag_s`: how much a recorded last use may lag the real one (_prune's USE_LAG_S): a unit counts as
        unused for longer than a threshold only when it surely was, as max_age of the same length decides."""
        self.now = now
        self.lag_s = lag_s
        self.thresholds = [(label, parse_duration(label, 'age_buckets')) for label in buckets]
        # Unit i is older than threshold k iff last_used < cutoff_k; bins count units between cutoffs.
        self.cutoffs = sorted(set(int((now - seconds - lag_s) * NS) for _label, seconds in self.thresholds))
        self.bins = [[0, 0] for _item in range(len(self.cutoffs) + 1)]
        self.oldest_ns = None
        self.newest_ns = None

    def add(self, last_used_ns, size, count=1):
        if self.oldest_ns is None:
            self.oldest_ns = self.newest_ns = last_used_ns
        elif last_used_ns < self.oldest_ns:
            self.oldest_ns = last_used_ns
        elif last_used_ns > self.newest_ns:
            self.newest_ns = last_used_ns
        counts = self.bins[bisect.bisect_right(self.cutoffs, last_used_ns)]
        counts[0] += count
        counts[1] += size

    @property
    def counts(self):
        """[entries, bytes] per threshold, in the order the thresholds were given."""
        result = []
        for _label, seconds in self.thresholds:
            limit = self.cutoffs.index(int((self.now - seconds - self.lag_s) * NS))
            result.append([sum(self.bins[i][0] for i in range(limit + 1)),
                           sum(self.bins[i][1] for i in range(limit + 1))])
        return result

    def as_facts(self):
        facts = {'age_buckets': [{'older_than': label, 'older_than_s': seconds, 'entries': counts[0],
                                  'bytes': counts[1]}
                                 for (label, seconds), counts in zip(self.thresholds, self.counts)]}
        for key, value in (('oldest_used', self.oldest_ns), ('newest_used', self.newest_ns)):
            seconds = None if value is None else value // NS
            facts[key] = iso_utc(seconds)
            facts[key + '_age_s'] = None if seconds is None else max(0, int(self.now - seconds))
        return facts


def _scan_common(scan):
    facts = {'files': scan.files, 'bytes': scan.bytes, 'disk_bytes': scan.disk_bytes,
             'symlinks_skipped': scan.symlinks_skipped, 'mounts_skipped': scan.mounts_skipped}
    facts.update(scan.errors.as_result())
    return facts


def build_cache_facts(root_fd, buckets, now, link=True):
    scan = _buildcache.BuildCacheScan(root_fd, link=link).run()
    ages = AgeHistogram(buckets, now, _buildcache.MTIME_INTERVAL_S)
    entries = dead_actions = orphan_outputs = dead_bytes = 0
    if link:
        for entry in scan.join():
            if entry.alive:
                entries += 1
                ages.add(entry.last_used_ns, entry.bytes)
            elif entry.action_id is None:
                orphan_outputs += 1
                dead_bytes += entry.bytes
            else:
                dead_actions += 1
                dead_bytes += entry.bytes
        orphans = {'actions_without_output': dead_actions, 'outputs_without_action': orphan_outputs,
                   'bytes': dead_bytes}
    else:
        # Stat only: every file ages on its own; an entry is an -a file.
        for mtime_ns, size, is_action in _buildcache.FILE_RECORD.iter_unpack(scan.unlinked):
            entries += is_action
            ages.add(mtime_ns, size, 1 if is_action else 0)
        orphans = None
    facts = _scan_common(scan)
    facts.update(ages.as_facts())
    facts.update(entries=entries, other_files=scan.other_files, other_bytes=scan.other_bytes, orphans=orphans,
                 entries_linked=link, last_trim=iso_utc(scan.last_trim),
                 last_trim_age_s=None if scan.last_trim is None else max(0, int(now - scan.last_trim)))
    return facts


def module_cache_facts(root_fd, buckets, now, top, use_atime):
    scan = _modcache.ModuleCacheScan(root_fd).run()
    ages = AgeHistogram(buckets, now)
    states = {'complete': 0, 'download_only': 0, 'incomplete': 0}
    incomplete_bytes = scan.tmp_bytes
    per_module = {}
    toolchains = graph_only = 0
    for version in scan.versions.values():
        state = version.state
        if state == 'removed':
            continue
        states[state] += 1
        size = version.bytes
        if state == 'incomplete':
            incomplete_bytes += size
            continue
        if state == 'download_only' and '.zip' not in version.download:
            graph_only += 1
        ages.add(version.last_used_ns(use_atime), size)
        module = version.module
        totals = per_module.setdefault(module, [0, 0])
        totals[0] += 1
        totals[1] += size
        if module == _modcache.TOOLCHAIN_MODULE:
            toolchains += 1
    largest = heapq.nlargest(top, per_module.items(), key=lambda item: (item[1][1], item[0]))
    facts = _scan_common(scan)
    facts.update(ages.as_facts())
    facts.update(entries=states['complete'], modules=len(per_module),
                 versions=states['complete'] + states['download_only'], complete=states['complete'],
                 download_only=states['download_only'], graph_only=graph_only, incomplete=states['incomplete'],
                 incomplete_bytes=incomplete_bytes, tmp_files=scan.tmp_files, toolchains=toolchains,
                 top_modules=[{'module': _fs.printable(name), 'versions': totals[0], 'bytes': totals[1]} for name, totals in largest],
                 sumdb_bytes=scan.sumdb_bytes, vcs_bytes=scan.vcs_bytes,
                 age_basis='atime' if use_atime else 'mtime')
    return facts


def fuzz_cache_facts(root_fd, buckets, now):
    """Fuzz corpora (GOCACHE/fuzz/<package>/<FuzzTest>/<file>): Go never trims them; age = mtime."""
    errors = _fs.ErrorLog()
    ages = AgeHistogram(buckets, now)
    totals = _fs.TreeTotals()

    def on_symlink(_path):
        totals.symlinks_skipped += 1

    def on_mount(_path):
        totals.mounts_skipped += 1

    for _parent, _rel, _name, st in _fs.walk_files(root_fd, '', _fs.Boundary(root_fd), errors,
                                                   on_symlink, on_mount):
        totals.add_file(st)
        ages.add(st.st_mtime_ns, st.st_size)
    facts = {'files': totals.files, 'bytes': totals.bytes, 'disk_bytes': totals.disk_bytes,
             'entries': totals.files, 'symlinks_skipped': totals.symlinks_skipped,
             'mounts_skipped': totals.mounts_skipped}
    facts.update(errors.as_result())
    facts.update(ages.as_facts())
    return facts


def _empty_counts(kind):
    facts = {'files': 0, 'bytes': 0, 'disk_bytes': 0, 'entries': 0, 'age_buckets': [],
             'oldest_used': None, 'newest_used': None, 'oldest_used_age_s': None, 'newest_used_age_s': None,
             'errors': [], 'errors_total': 0}
    if kind == 'module':
        facts.update(modules=0, versions=0, complete=0, download_only=0, graph_only=0, incomplete=0, toolchains=0,
                     top_modules=[])
    return facts


def _scan_job(root_fd, real_path, target, age_buckets, top, now, mountinfo, link_entries):
    """Facts of one open cache root (run as its owner by _locate.on_root)."""
    kind = target.kind
    root_stat = os.fstat(root_fd)
    facts = {'real_path': _fs.printable(real_path), 'exists': True,
             'mode': '%04o' % stat.S_IMODE(root_stat.st_mode),
             'filesystem': _fs.filesystem_facts(mountinfo_text=mountinfo, fd=root_fd)}
    if kind == 'build':
        facts['valid'] = _locate.is_cache_layout(root_fd, kind)
        scanned = build_cache_facts(root_fd, age_buckets, now, link_entries) if facts['valid'] else None
    elif kind == 'module':
        facts['valid'] = _locate.is_cache_layout(root_fd, kind)
        use_atime = bool(facts['filesystem'].get('atime_updates'))
        scanned = module_cache_facts(root_fd, age_buckets, now, top, use_atime) if facts['valid'] else None
    else:
        facts['valid'] = True
        scanned = fuzz_cache_facts(root_fd, age_buckets, now)
    if scanned is None:
        facts['errors'] = [{'path': facts['real_path'], 'error': 'not a Go %s cache (%s); not scanned' % (
            kind, _locate.NOT_A_CACHE[kind])}]
        facts['errors_total'] = 1
    else:
        facts.update(scanned)
    return facts


def _cache_item(target, outcome, mountinfo):
    """The facts of one cache from on_root's [state, value, owner]."""
    state, value, owner = outcome
    item = {'kind': target.kind, 'path': _fs.printable(target.path), 'real_path': None, 'exists': False,
            'valid': False, 'owner': owner, 'skipped': None, 'filesystem': None}
    item.update(_empty_counts(target.kind))
    if state == _locate.OK:
        item.update(value)
    elif state == _locate.SKIPPED:
        item.update(exists=True, skipped=value)
        item['errors'] = [{'path': item['path'], 'error': value}]
        item['errors_total'] = 1
    return item


def _missing_item(target, mountinfo, error=None):
    item = _cache_item(target, [_locate.MISSING, None, None], mountinfo)
    item['filesystem'] = _fs.filesystem_facts(_existing_parent(target.path), mountinfo)
    if error:
        item['errors'] = [{'path': item['path'], 'error': error}]
        item['errors_total'] = 1
    return item


def _existing_parent(path):
    while path and path != '/' and not os.path.exists(path):
        path = os.path.dirname(path)
    return path or '/'


def scan_target(target, age_buckets=DEFAULT_AGE_BUCKETS, top=10, now=None, mountinfo=None, link_entries=True):
    """Facts of one cache, scanned as its owner (see _locate): what go_cache_facts reports per cache."""
    now = time.time() if now is None else now
    try:
        outcome = _locate.on_root(target, _scan_job, age_buckets, top, now, mountinfo, link_entries, check=False)
    except _locate.NoSuchCache:
        return _missing_item(target, mountinfo)
    except OptionError as exc:
        return _missing_item(target, mountinfo, exc.reason)
    except OSError as exc:
        item = _missing_item(target, mountinfo, exc.strerror or str(exc))
        item['exists'] = None
        return item
    if outcome[0] == _locate.MISSING:
        return _missing_item(target, mountinfo)
    return _cache_item(target, outcome, mountinfo)


def scan_cache(path, kind, age_buckets=DEFAULT_AGE_BUCKETS, top=10, now=None, mountinfo=None, link_entries=True):
    """Facts of the cache directory `path` (an explicit cache: no user, no source)."""
    return scan_target(_locate.Target(path, kind), age_buckets, top, now, mountinfo, link_entries)


# The name benchmarks and the agent use.
gather_cache_facts = scan_cache


def normalize_options(users=None, caches=None, kinds=None, go='auto', age_buckets=None, top=10):
    """Validate every option before anything is scanned; raises OptionError naming option and value."""
    kinds = list(KINDS) if kinds is None else list(kinds)
    for kind in kinds:
        if kind not in KINDS:
            raise OptionError('kinds', kind, 'expected one of %s' % ', '.join(KINDS))
    age_buckets = list(DEFAULT_AGE_BUCKETS) if age_buckets is None else [str(item) for item in age_buckets]
    for label in age_buckets:
        parse_duration(label, 'age_buckets')
    if isinstance(top, bool) or not isinstance(top, int) or not 0 <= top <= MAX_TOP:
        raise OptionError('top', top, 'expected an integer from 0 to %d' % MAX_TOP)
    explicit = []
    for item in caches or []:
        if not isinstance(item, dict) or 'path' not in item:
            raise OptionError('caches', item, 'each item needs path and kind')
        path, kind = item.get('path'), item.get('kind')
        if not isinstance(path, str) or not os.path.isabs(path):
            raise OptionError('caches', path, 'path must be absolute')
        if kind not in KINDS:
            raise OptionError('caches', kind, 'kind must be one of %s' % ', '.join(KINDS))
        explicit.append((os.path.normpath(path), kind))
    if users is None:
        accounts = [_users.current_account()]
    elif users == '*' or (isinstance(users, list) and '*' in users):
        accounts = _users.accounts_with_home()
    else:
        names = users if isinstance(users, list) else [users]
        accounts = [_users.lookup(name) for name in names]
    if go not in (None, 'auto', 'none') and not (isinstance(go, str) and os.path.isabs(go)):
        raise OptionError('go', go, "expected 'auto', 'none' or an absolute path to a go binary")
    if isinstance(go, str) and os.path.isabs(go) and not os.access(go, os.X_OK):
        raise OptionError('go', go, 'not an executable file')
    return accounts, explicit, kinds, go, age_buckets, top


def _account_facts(account, environment, kinds, go, age_buckets, top, now, mountinfo, link_entries):
    """One account's environment and caches, worked out by one child running as the account."""
    view = _locate.account_view(account, go, environment)
    caches = []
    for kind in kinds:
        location = view['locations'][kind]
        target = _locate.Target(location['path'], kind, account, location['source'])
        problem = _locate.location_problem(location)
        if problem:
            item = _cache_item(target, [_locate.MISSING, None, None], mountinfo)
            item['path'] = location['path'] or None
            item['errors'] = [{'path': location['path'], 'error': problem}]
            item['errors_total'] = 1
        else:
            item = scan_target(target, age_buckets, top, now, mountinfo, link_entries)
        item.update(user=account.pw_name, source=location['source'])
        caches.append(item)
    view['caches'] = caches
    return view


def gather(users=None, caches=None, kinds=None, go='auto', age_buckets=None, top=10, now=None, link_entries=True):
    """ansible_facts.go_cache for the requested accounts and explicit caches."""
    accounts, explicit, kinds, go, age_buckets, top = normalize_options(users, caches, kinds, go, age_buckets, top)
    now = time.time() if now is None else now
    mountinfo = _fs.read_text_file(_fs.MOUNTINFO, 64 << 20) or ''
    _locate.protected_dirs()  # once, before the children are forked
    result = {'caches': [], 'env': {}, 'accounts': {}, 'conflicts': []}
    for account in accounts:
        try:
            view = _privsep.call_as(_privsep.Identity.of_account(account), _account_facts, account,
                                    _users.account_environment(account), kinds, go, age_buckets, top, now, mountinfo,
                                    link_entries)
        except OSError as exc:
            view = _failed_view(account, kinds, exc)
        result['env'][account.pw_name] = view['env']
        result['accounts'][account.pw_name] = {
            'uid': account.pw_uid, 'home': account.pw_dir, 'go_binary': view['go_binary'], 'goroot': view['goroot'],
            'go_env_json': view['go_env_json'], 'go_env_json_disagreements': view['disagreements'],
            'errors': [_fs.printable(error) for error in view['errors']]}
        for conflict in view['conflicts']:
            result['conflicts'].append(dict(conflict, user=account.pw_name))
        result['caches'].extend(view['caches'])
    for path, kind in explicit:
        item = scan_target(_locate.Target(path, kind), age_buckets, top, now, mountinfo, link_entries)
        item.update(user=item.get('owner'), source='explicit')
        result['caches'].append(item)
    return result


def _failed_view(account, kinds, error):
    """What is reported for an account whose child failed (killed or stopped by the account)."""
    message = _fs.printable(error.strerror or str(error))
    caches = []
    for kind in kinds:
        item = {'user': account.pw_name, 'kind': kind, 'source': None, 'path': None, 'real_path': None,
                'exists': None, 'valid': False, 'owner': None, 'skipped': None, 'filesystem': None}
        item.update(_empty_counts(kind))
        item['errors'] = [{'path': None, 'error': message}]
        item['errors_total'] = 1
        caches.append(item)
    return {'env': {}, 'go_binary': None, 'goroot': None, 'go_env_json': False, 'disagreements': [],
            'errors': [message], 'conflicts': [], 'caches': caches}
