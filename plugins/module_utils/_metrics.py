# -*- coding: utf-8 -*-
# Copyright (c) gofleet.cache contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

"""Prometheus text-format metrics of agent runs, for node_exporter's textfile collector.

Every metric is a gauge (the value a run left behind, not a running total), so
none carries `_total`.  One file per agent job (`gofleet_cache_user_<name>.prom`,
`gofleet_cache_shared.prom`) so that jobs running as different accounts never
overwrite each other; the collector reads a file while the next run may be
replacing it, so the file is written to a temporary name in the same directory
and renamed over the old one.
"""

from __future__ import annotations

import math
import os
import re

from ansible_collections.gofleet.cache.plugins.module_utils import _fs

FILE_PREFIX = 'gofleet_cache_'
FILE_SUFFIX = '.prom'
LABELS = ('user', 'kind', 'path', 'scope')

# (name, help, key of the per-cache sample dict).  The README's metric table lists the same.
METRICS = (
    ('gofleet_cache_size_bytes', 'Sum of the file sizes in the cache after the last run.', 'size_bytes'),
    ('gofleet_cache_entries', 'Units in the cache after the last run: build action entries, complete module '
     'versions or fuzz corpus files.', 'entries'),
    ('gofleet_cache_last_run_removed_bytes', 'Bytes the last run removed.', 'removed_bytes'),
    ('gofleet_cache_last_run_removed_entries', 'Units the last run removed.', 'removed_entries'),
    ('gofleet_cache_last_run_errors', 'Paths the last run failed to remove.', 'errors'),
    ('gofleet_cache_last_run_busy', '1 when running Go builds or another agent run kept the last run from '
     'applying the policy in full.', 'busy'),
    ('gofleet_cache_last_run_success', '1 when the last run applied the policy in full without errors.', 'success'),
    ('gofleet_cache_last_run_timestamp_seconds', 'Unix time the last run of this cache ended.', 'timestamp'),
    ('gofleet_cache_last_run_duration_seconds', 'How long the last run of this cache took, waiting included.',
     'duration'),
    ('gofleet_cache_filesystem_size_bytes', 'Size of the file system holding the cache.', 'fs_size_bytes'),
    ('gofleet_cache_filesystem_free_bytes', 'Bytes an unprivileged account can still write on the file system '
     'holding the cache.', 'fs_free_bytes'),
    ('gofleet_cache_filesystem_free_inodes', 'Inodes an unprivileged account can still use on the file system '
     'holding the cache.', 'fs_free_inodes'),
)

_UNSAFE_NAME = re.compile(r'[^A-Za-z0-9_.-]+')


def escape_label_value(value):
    """A label value as the exposition format quotes it: backslash, double quote and newline escaped."""
    return str(value).replace('\\', '\\\\').replace('"', '\\"').replace('\n', '\\n')


def escape_help(text):
    """HELP text escaping: only backslash and newline."""
    return text.replace('\\', '\\\\').replace('\n', '\\n')


def format_value(value):
    if isinstance(value, bool):
        return '1' if value else '0'
    if isinstance(value, int):
        return str(value)
    if math.isnan(value):
        return 'NaN'
    return repr(float(value))


def render(samples):
    """The text of a .prom file: every metric's HELP and TYPE once, then one line per cache.

    `samples`: one dict per cache with the LABELS and the keys METRICS name; a
    value of None (unknown, e.g. a file system without inode counts) leaves
    that cache's line out.
    """
    lines = []
    for name, help_text, key in METRICS:
        lines.append('# HELP %s %s' % (name, escape_help(help_text)))
        lines.append('# TYPE %s gauge' % name)
        for sample in samples:
            value = sample.get(key)
            if value is None:
                continue
            labels = ','.join('%s="%s"' % (label, escape_label_value(sample.get(label, ''))) for label in LABELS)
            lines.append('%s{%s} %s' % (name, labels, format_value(value)))
    return '\n'.join(lines) + '\n'


def file_name(job):
    """`gofleet_cache_<job>.prom` with anything but [A-Za-z0-9_.-] replaced (a job is `user_<name>` or `shared`)."""
    return FILE_PREFIX + _UNSAFE_NAME.sub('_', job) + FILE_SUFFIX


def write_atomic(dir_fd, directory, name, text):
    """Replace `name` in the open directory dir_fd (`directory`, for the returned path) with `text` in one rename.

    Mode 0644: node_exporter runs as its own account.  The directory is one
    no other account may write (the agent checks it), so nobody can
    pre-create or swap the file.
    """
    # The format is UTF-8 whatever the locale (cron's is often C); undecodable path bytes become U+FFFD.
    _fs.write_file_atomic(name, text.encode('utf-8', 'replace'), 0o644, dir_fd=dir_fd)
    return os.path.join(directory, name)
