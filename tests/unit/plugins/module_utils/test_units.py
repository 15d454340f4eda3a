# -*- coding: utf-8 -*-
# Copyright (c) gofleet.cache contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

import pytest

from ansible_collections.gofleet.cache.plugins.module_utils._units import (
    OptionError, format_bytes, iso_utc, parse_duration, parse_size, parse_size_or_percent)


@pytest.mark.parametrize('text, seconds', [
    ('45s', 45), ('90m', 5400), ('12h', 43200), ('30d', 2592000), ('2w', 1209600), ('1.5h', 5400), (3600, 3600),
    ('0d', 0), ('10', 10),
])
def test_durations(text, seconds):
    assert parse_duration(text, 'max_age') == seconds


@pytest.mark.parametrize('text', ['7x', '-1d', 'd', '', 'forever', True, -5])
def test_bad_duration_names_option_and_value(text):
    with pytest.raises(OptionError) as info:
        parse_duration(text, 'max_age')
    assert info.value.option == 'max_age'
    assert 'max_age' in str(info.value) and repr(text) in str(info.value)


@pytest.mark.parametrize('text, size', [
    ('500MB', 500 * 10 ** 6), ('10GiB', 10 * 2 ** 30), ('1.5G', 1500 * 10 ** 6), ('2KiB', 2048), ('7', 7),
    ('3 tb', 3 * 10 ** 12), (1024, 1024), ('0', 0),
])
def test_sizes(text, size):
    assert parse_size(text, 'max_size') == size


@pytest.mark.parametrize('text', ['-5GB', '10XB', 'GB', '1e3', False, -1])
def test_bad_size(text):
    with pytest.raises(OptionError, match='max_size'):
        parse_size(text, 'max_size')


def test_size_or_percent():
    assert parse_size_or_percent('15%', 'min_free') == ('percent', 15.0)
    assert parse_size_or_percent('20GB', 'min_free') == ('bytes', 20 * 10 ** 9)
    for bad in ('101%', '-1%', 'x%'):
        with pytest.raises(OptionError, match='min_free'):
            parse_size_or_percent(bad, 'min_free')


def test_formatting():
    assert format_bytes(512) == '512 B'
    assert format_bytes(3 * 2 ** 30 // 2) == '1.5 GiB'
    assert iso_utc(0) == '1970-01-01T00:00:00Z'
    assert iso_utc(None) is None
