# -*- coding: utf-8 -*-
# Copyright (c) gofleet.cache contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

"""Prometheus text rendering and the atomic metrics file write."""

from __future__ import annotations

import os
import re
import stat

import pytest

from ansible_collections.gofleet.cache.plugins.module_utils import _metrics

try:
    from prometheus_client.parser import text_string_to_metric_families
except ImportError:  # the Python 3.8 engine venv has no prometheus_client
    text_string_to_metric_families = None

needs_parser = pytest.mark.skipif(text_string_to_metric_families is None, reason='prometheus_client not installed')

UNIT_SUFFIXES = ('_bytes', '_seconds', '_entries', '_errors', '_busy', '_success', '_inodes')


def sample(**overrides):
    values = {
        'user': 'runner', 'kind': 'build', 'path': '/home/runner/.cache/go-build', 'scope': 'user',
        'size_bytes': 1234567, 'entries': 42, 'removed_bytes': 1000, 'removed_entries': 3, 'errors': 0, 'busy': 0,
        'success': 1, 'timestamp': 1795310274.338, 'duration': 0.25, 'fs_size_bytes': 270553174016,
        'fs_free_bytes': 84111900672, 'fs_free_inodes': 16290069,
    }
    values.update(overrides)
    return values


def parse(text):
    return dict((family.name, family) for family in text_string_to_metric_families(text))


def test_every_metric_has_help_and_gauge_type_once():
    text = _metrics.render([sample(), sample(kind='module', path='/home/runner/go/pkg/mod')])
    for name, _help, _key in _metrics.METRICS:
        assert text.count('# HELP %s ' % name) == 1
        assert text.count('# TYPE %s gauge\n' % name) == 1
        assert len(re.findall(r'^%s\{' % name, text, re.M)) == 2
    assert text.endswith('\n')


def test_names_follow_prometheus_conventions():
    names = [name for name, _help, _key in _metrics.METRICS]
    assert len(set(names)) == len(names)
    for name in names:
        assert re.match(r'^gofleet_cache_[a-z_]+$', name), name
        # Gauges: never _total, which marks counters.
        assert not name.endswith('_total'), name
        assert name.endswith(UNIT_SUFFIXES), name


@needs_parser
def test_official_parser_reads_every_sample_with_its_labels_and_value():
    families = parse(_metrics.render([sample(), sample(kind='module', path='/home/runner/go/pkg/mod', entries=7)]))
    assert sorted(families) == sorted(name for name, _help, _key in _metrics.METRICS)
    for family in families.values():
        assert family.type == 'gauge'
        assert family.documentation
    entries = dict((s.labels['kind'], s.value) for s in families['gofleet_cache_entries'].samples)
    assert entries == {'build': 42, 'module': 7}
    timestamp = families['gofleet_cache_last_run_timestamp_seconds'].samples[0]
    assert timestamp.value == pytest.approx(1795310274.338)
    assert timestamp.labels == {'user': 'runner', 'kind': 'build', 'path': '/home/runner/.cache/go-build',
                                'scope': 'user'}


@needs_parser
def test_label_values_are_escaped_and_read_back_unchanged():
    odd = '/srv/ci/"quoted" back\\slash\nnew line/ünï'
    families = parse(_metrics.render([sample(path=odd, user='o"dd')]))
    labels = families['gofleet_cache_size_bytes'].samples[0].labels
    assert labels['path'] == odd
    assert labels['user'] == 'o"dd'


def test_escaping_by_hand():
    assert _metrics.escape_label_value('a\\b"c\nd') == 'a\\\\b\\"c\\nd'
    assert _metrics.escape_help('x\\y\nz') == 'x\\\\y\\nz'


def test_unknown_values_leave_their_line_out():
    text = _metrics.render([sample(fs_free_inodes=None)])
    assert '# TYPE gofleet_cache_filesystem_free_inodes gauge' in text
    assert not re.search(r'^gofleet_cache_filesystem_free_inodes\{', text, re.M)


def test_values_are_exposition_numbers():
    assert _metrics.format_value(True) == '1'
    assert _metrics.format_value(12) == '12'
    assert _metrics.format_value(0.5) == '0.5'
    assert _metrics.format_value(float('nan')) == 'NaN'


def test_file_names_per_job():
    assert _metrics.file_name('user_runner') == 'gofleet_cache_user_runner.prom'
    assert _metrics.file_name('shared') == 'gofleet_cache_shared.prom'
    assert _metrics.file_name('user_a/b c') == 'gofleet_cache_user_a_b_c.prom'


def write_atomic(directory, name, text):
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        return _metrics.write_atomic(fd, directory, name, text)
    finally:
        os.close(fd)


def test_write_replaces_the_file_in_one_rename(tmp_path):
    directory = str(tmp_path)
    first = write_atomic(directory, 'gofleet_cache_shared.prom', 'old\n')
    # A reader that opened the old file (node_exporter mid-scrape) keeps reading all of it.
    with open(first) as reader:
        old_inode = os.fstat(reader.fileno()).st_ino
        path = write_atomic(directory, 'gofleet_cache_shared.prom', 'new ü\n')
        assert reader.read() == 'old\n'
    assert path == first
    st = os.stat(path)
    assert st.st_ino != old_inode
    assert stat.S_IMODE(st.st_mode) == 0o644
    with open(path, 'rb') as handle:
        assert handle.read() == 'new ü\n'.encode('utf-8')
    assert os.listdir(directory) == ['gofleet_cache_shared.prom']


def test_failed_write_keeps_the_old_file_and_leaves_no_temporary(tmp_path):
    directory = str(tmp_path)
    write_atomic(directory, 'gofleet_cache_user_a.prom', 'old\n')
    os.mkdir(os.path.join(directory, 'gofleet_cache_user_b.prom'))
    with pytest.raises(OSError):
        write_atomic(directory, 'gofleet_cache_user_b.prom', 'new\n')
    assert sorted(os.listdir(directory)) == ['gofleet_cache_user_a.prom', 'gofleet_cache_user_b.prom']
    with open(os.path.join(directory, 'gofleet_cache_user_a.prom')) as handle:
        assert handle.read() == 'old\n'


def test_temporary_names_are_not_read_by_the_textfile_collector(tmp_path, monkeypatch):
    seen = []
    real_rename = os.rename

    def rename(source, destination, **kwargs):
        seen.append(os.path.basename(source))
        real_rename(source, destination, **kwargs)

    monkeypatch.setattr(os, 'rename', rename)
    write_atomic(str(tmp_path), 'gofleet_cache_shared.prom', 'x\n')
    assert seen and seen[0].startswith('.') and not seen[0].endswith('.prom')
