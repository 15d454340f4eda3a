# -*- coding: utf-8 -*-
# Copyright (c) gofleet.cache contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

"""Durations, sizes and the error every bad option value raises.

Pure standard library: the modules, the on-host agent and the tests share it.
"""

from __future__ import annotations

import datetime
import fractions
import math
import re

DURATION_UNITS = {
    's': 1,
    'm': 60,
    'h': 3600,
    'd': 86400,
    'w': 7 * 86400,
}

# Decimal and binary units (docs/design.md); a bare number is bytes (min_free refuses one: ambiguous there).
SIZE_UNITS = {
    '': 1, 'b': 1,
    'k': 1000, 'kb': 1000, 'm': 1000 ** 2, 'mb': 1000 ** 2,
    'g': 1000 ** 3, 'gb': 1000 ** 3, 't': 1000 ** 4, 'tb': 1000 ** 4,
    'kib': 1024, 'mib': 1024 ** 2, 'gib': 1024 ** 3, 'tib': 1024 ** 4,
}

_DURATION_RE = re.compile(r'^\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*$')
_SIZE_RE = re.compile(r'^\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*$')
# Upper bounds: a value past them is a typo or an attack, and the arithmetic stays exact below them.
MAX_DURATION_S = 100 * 366 * 86400
MAX_SIZE_BYTES = 2 ** 62
MAX_COUNT = 1000000


class OptionError(ValueError):
    """A bad value for a named option; the message names both."""

    def __init__(self, option, value, reason):
        self.option = option
        self.value = value
        self.reason = reason
        super(OptionError, self).__init__('%s: invalid value %r: %s' % (option, value, reason))


def parse_duration(value, option):
    """Return seconds (int) for '90m', '12h', '30d', '2w', '45s' or a bare number of seconds."""
    if isinstance(value, bool):
        raise OptionError(option, value, 'expected a duration such as 90m, 12h, 30d or 2w')
    if isinstance(value, (int, float)):
        if value < 0:
            raise OptionError(option, value, 'a duration cannot be negative')
        return _bounded(value, MAX_DURATION_S, option, value, 'a duration')
    match = _DURATION_RE.match(str(value))
    unit = match.group(2).lower() if match else None
    if not match or unit not in DURATION_UNITS and unit != '':
        raise OptionError(option, value, 'expected a duration such as 90m, 12h, 30d or 2w (units s, m, h, d, w)')
    return _bounded(fractions.Fraction(match.group(1)) * DURATION_UNITS.get(unit, 1), MAX_DURATION_S, option, value,
                    'a duration')


def _bounded(number, limit, option, value, what):
    """int(number), or OptionError when it is larger than `limit` (or not a finite number)."""
    if isinstance(number, float) and not math.isfinite(number) or number > limit:
        raise OptionError(option, value, '%s larger than %d is not accepted' % (what, limit))
    return int(number)


def parse_count(value, option, minimum=0):
    """An integer from `minimum` to MAX_COUNT (keep_versions, top); OptionError naming the option otherwise."""
    if isinstance(value, bool) or not isinstance(value, int) or not minimum <= value <= MAX_COUNT:
        raise OptionError(option, value, 'expected an integer from %d to %d' % (minimum, MAX_COUNT))
    return value


def parse_size(value, option):
    """Return bytes (int) for '500MB', '10GiB', '1.5G' or a bare number of bytes."""
    if isinstance(value, bool):
        raise OptionError(option, value, 'expected a size such as 500MB or 10GiB')
    if isinstance(value, (int, float)):
        if value < 0:
            raise OptionError(option, value, 'a size cannot be negative')
        return _bounded(value, MAX_SIZE_BYTES, option, value, 'a size')
    text = str(value)
    if text.strip().startswith('-'):
        raise OptionError(option, value, 'a size cannot be negative')
    match = _SIZE_RE.match(text)
    if not match or match.group(2).lower() not in SIZE_UNITS:
        raise OptionError(option, value, 'expected a size such as 500MB or 10GiB (units B, KB, MB, GB, TB, KiB, MiB, GiB, TiB)')
    return _bounded(fractions.Fraction(match.group(1)) * SIZE_UNITS[match.group(2).lower()], MAX_SIZE_BYTES, option,
                    value, 'a size')


def parse_size_or_percent(value, option):
    """Return ('bytes', n) or ('percent', p) for '20GB' or '15%'."""
    text = str(value).strip()
    if text.endswith('%'):
        try:
            percent = float(text[:-1])
            if math.isnan(percent):
                raise ValueError(text)
        except ValueError:
            raise OptionError(option, value, 'expected a percentage such as 15% or a size such as 20GB')
        if not 0 <= percent <= 100:
            raise OptionError(option, value, 'a percentage must be between 0% and 100%')
        return ('percent', percent)
    bare = _SIZE_RE.match(text)
    if bare and not bare.group(2) and float(bare.group(1)) != 0:
        # "min_free: 15" means 15% to some readers and 15 GB to others; 15 bytes is never what was meant.
        raise OptionError(option, value, 'a bare number is ambiguous here: write a percentage such as 15% or a size '
                                         'with its unit such as 15GB')
    return ('bytes', parse_size(value, option))


def format_bytes(count):
    """Human-readable binary size for logs and summaries ('1.5 GiB')."""
    size = float(count)
    for unit in ('B', 'KiB', 'MiB', 'GiB', 'TiB'):
        if abs(size) < 1024 or unit == 'TiB':
            return ('%d %s' % (size, unit)) if unit == 'B' else ('%.1f %s' % (size, unit))
        size /= 1024
    return '%d B' % count  # pragma: no cover - loop always returns


def iso_utc(seconds):
    """ISO-8601 UTC timestamp ('2026-11-21T22:27:17Z') for a Unix time, or None."""
    if seconds is None:
        return None
    moment = datetime.datetime(1970, 1, 1) + datetime.timedelta(seconds=int(seconds))
    return moment.strftime('%Y-%m-%dT%H:%M:%SZ')
