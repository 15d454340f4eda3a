# -*- coding: utf-8 -*-
# Copyright (c) gofleet.cache contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

"""Go's semantic version order (golang.org/x/mod/semver): `keep_versions` and `@v/list` use it.

Go accepts shorthands (v1, v1.2) and compares numbers by length first, so
there is no integer conversion; invalid versions sort before valid ones.
"""

from __future__ import annotations

import functools
import re

_VERSION = re.compile(r'^v(0|[1-9][0-9]*)(?:\.(0|[1-9][0-9]*)(?:\.(0|[1-9][0-9]*)'
                      r'(-[0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*)?(\+[0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*)?)?)?$')


def parse(version):
    """(major, minor, patch, prerelease) as strings, or None when Go would call it invalid."""
    match = _VERSION.match(version)
    if not match:
        return None
    major, minor, patch, pre, _build = match.groups()
    if pre and any(part.isdigit() and len(part) > 1 and part[0] == '0' for part in pre[1:].split('.')):
        return None  # numeric identifiers with leading zeros are invalid
    return major, minor or '0', patch or '0', pre or ''


def is_valid(version):
    return parse(version) is not None


def _compare_int(left, right):
    if left == right:
        return 0
    if len(left) != len(right):
        return -1 if len(left) < len(right) else 1
    return -1 if left < right else 1


def _compare_prerelease(left, right):
    if left == right:
        return 0
    if not left:
        return 1
    if not right:
        return -1
    left_parts, right_parts = left[1:].split('.'), right[1:].split('.')
    for left_part, right_part in zip(left_parts, right_parts):
        if left_part == right_part:
            continue
        left_num, right_num = left_part.isdigit(), right_part.isdigit()
        if left_num != right_num:
            return -1 if left_num else 1
        if left_num and len(left_part) != len(right_part):
            return -1 if len(left_part) < len(right_part) else 1
        return -1 if left_part < right_part else 1
    return -1 if len(left_parts) < len(right_parts) else 1


def compare(left, right):
    """-1, 0 or 1, as semver.Compare."""
    parsed_left, parsed_right = parse(left), parse(right)
    if parsed_left is None or parsed_right is None:
        if parsed_left is None and parsed_right is None:
            return 0
        return -1 if parsed_left is None else 1
    for left_part, right_part in zip(parsed_left[:3], parsed_right[:3]):
        result = _compare_int(left_part, right_part)
        if result:
            return result
    return _compare_prerelease(parsed_left[3], parsed_right[3])


def _sort_compare(left, right):
    # semver.Sort: by precedence, then by string so that the order is total.
    result = compare(left, right)
    if result:
        return result
    return (left > right) - (left < right)


sort_key = functools.cmp_to_key(_sort_compare)
