# -*- coding: utf-8 -*-
# Copyright (c) gofleet.cache contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

"""gofleet.cache.format_size: bytes in the binary units of the fleet report, for play output."""

from __future__ import annotations

DOCUMENTATION = r"""
name: format_size
short_description: A byte count in binary units (KiB, MiB, GiB), as the fleet report writes it
version_added: 1.0.0
author:
  - gofleet.cache maintainers (@gofleet)
description:
  - Formats a number of bytes the way the fleet report and the agent's log do, so that a play's output and the report
    say the same thing for the same bytes (C(16.9 MiB); whole bytes below 1 KiB, one decimal above, at most TiB).
  - Unlike P(ansible.builtin.human_readable#filter), whose units are powers of 1024 written as C(KB), C(MB) and
    C(GB), the units are named for what they are.
options:
  _input:
    description: A number of bytes.
    type: int
    required: true
"""

EXAMPLES = r"""
- name: Show the size of each cache
  ansible.builtin.debug:
    msg: "{{ item.path }}: {{ item.bytes | gofleet.cache.format_size }}"
  loop: "{{ ansible_facts.go_cache.caches | selectattr('exists') }}"
"""

RETURN = r"""
_value:
  description: The size, such as C(512 B), C(16.9 MiB) or C(1.2 TiB).
  type: str
"""

from ansible.errors import AnsibleFilterError
from ansible.module_utils.common.text.converters import to_text

from ansible_collections.gofleet.cache.plugins.module_utils._units import format_bytes


def format_size(count):
    """count bytes as '16.9 MiB'."""
    if isinstance(count, bool):
        raise AnsibleFilterError('format_size: invalid value %s: expected a number of bytes' % to_text(count))
    try:
        return format_bytes(int(count))
    except (TypeError, ValueError) as exc:
        raise AnsibleFilterError('format_size: invalid value %r: expected a number of bytes' % (count,)) from exc


class FilterModule(object):
    """gofleet.cache.format_size."""

    def filters(self):
        return {'format_size': format_size}
