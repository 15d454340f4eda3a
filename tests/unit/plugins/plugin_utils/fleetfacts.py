# -*- coding: utf-8 -*-
# Copyright (c) gofleet.cache contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

"""Generated go_cache facts (the shape go_cache_facts returns) for fleet report tests and benchmarks.

Sizes are derived from the host and account index, so every test knows the expected sums.
"""

from __future__ import annotations

GIB = 1024 ** 3
ENV_VARS = ('GOCACHE', 'GOMODCACHE', 'GOPATH', 'GOENV', 'GOPROXY', 'GOSUMDB', 'GONOSUMDB', 'GONOPROXY', 'GOPRIVATE',
            'GOFLAGS', 'GOTOOLCHAIN')


def filesystem(size=500 * GIB, free=200 * GIB, inodes_used_pct=12.5, mount='/'):
    return {'mount': mount, 'fstype': 'ext4', 'size_bytes': size, 'free_bytes': free, 'inodes_total': 32000000,
            'inodes_free': int(32000000 * (100 - inodes_used_pct) / 100), 'inodes_used_pct': inodes_used_pct,
            'atime_mode': 'relatime', 'atime_updates': True}


def cache(user, kind, path, size, files, entries, fs=None, top_modules=None, real_path=None):
    item = {
        'user': user, 'kind': kind, 'path': path, 'real_path': real_path or path, 'source': 'default',
        'exists': True, 'valid': True, 'owner': user, 'mode': '0755', 'bytes': size, 'disk_bytes': size + 4096 * files,
        'files': files, 'entries': entries, 'oldest_used': '2026-08-01T10:00:00Z', 'oldest_used_age_s': 9000000,
        'newest_used': '2026-11-20T10:00:00Z', 'newest_used_age_s': 3600,
        'age_buckets': [{'older_than': '30d', 'older_than_s': 2592000, 'entries': entries // 2, 'bytes': size // 2}],
        'filesystem': fs or filesystem(), 'errors': [], 'errors_total': 0,
    }
    if kind == 'build':
        item.update(last_trim='2026-11-19T00:00:00Z', entries_linked=True,
                    orphans={'actions_without_output': 0, 'outputs_without_action': 0, 'bytes': 0})
    if kind == 'module':
        item.update(modules=len(top_modules or []), versions=entries, complete=entries, download_only=0, graph_only=0,
                    incomplete=0, toolchains=0, top_modules=top_modules or [], age_basis='atime')
    return item


def env(user, home, **overrides):
    values = {'GOCACHE': home + '/.cache/go-build', 'GOMODCACHE': home + '/go/pkg/mod', 'GOPATH': home + '/go',
              'GOENV': home + '/.config/go/env', 'GOPROXY': 'https://proxy.golang.org,direct',
              'GOSUMDB': 'sum.golang.org', 'GONOSUMDB': '', 'GONOPROXY': '', 'GOPRIVATE': '', 'GOFLAGS': '',
              'GOTOOLCHAIN': 'local'}
    values.update(overrides)
    return dict((var, {'value': values[var], 'source': 'goenv_file' if var in overrides else 'default',
                       'shadowed': []}) for var in ENV_VARS)


def host_facts(index, users=('runner', 'builder'), fs=None):
    """Facts of generated host number index: per account a build, a module and a fuzz cache.

    Account number u on host i has build = (i + 1) * (u + 1) MiB, module = 2x that, fuzz = 1 KiB.
    """
    facts = {'caches': [], 'env': {}, 'accounts': {}, 'conflicts': []}
    for number, user in enumerate(users):
        home = '/home/' + user
        unit = (index + 1) * (number + 1) * 1024 * 1024
        top = [{'module': 'golang.org/toolchain', 'versions': 1, 'bytes': unit},
               {'module': 'example.com/mod%d' % (index % 7), 'versions': 2, 'bytes': unit // 2}]
        facts['caches'].append(cache(user, 'build', home + '/.cache/go-build', unit, 100 + index, 50 + index, fs))
        facts['caches'].append(cache(user, 'module', home + '/go/pkg/mod', 2 * unit, 200 + index, 10 + number, fs,
                                     top_modules=top))
        facts['caches'].append(cache(user, 'fuzz', home + '/.cache/go-build/fuzz', 1024, 3, 3, fs))
        facts['env'][user] = env(user, home)
        facts['accounts'][user] = {'uid': 1000 + number, 'home': home, 'go_binary': '/usr/local/go/bin/go',
                                   'goroot': '/usr/local/go', 'go_env_json': True, 'go_env_json_disagreements': [],
                                   'errors': []}
    return facts


def expected_host_bytes(index, users=2):
    return sum((index + 1) * (number + 1) * 1024 * 1024 * 3 + 1024 for number in range(users))


def hostvars_for(count, users=('runner', 'builder'), name='build-%04d'):
    """{host: host vars} with ansible_facts.go_cache and group_names, like Ansible's hostvars."""
    return dict((name % index, {'ansible_facts': {'go_cache': host_facts(index, users)},
                                'group_names': ['linux_builders' if index % 2 else 'ci']})
                for index in range(count))
