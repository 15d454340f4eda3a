# -*- coding: utf-8 -*-
# Copyright (c) gofleet.cache contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

"""Filters fail the Ansible way: the engine's OptionError becomes AnsibleFilterError, message unchanged."""

from __future__ import annotations

import functools

from ansible.errors import AnsibleFilterError

from ansible_collections.gofleet.cache.plugins.module_utils._units import OptionError


def option_errors_fail_filter(function, name=None):
    """function as a filter (called name) whose bad option values fail the task naming the option and the value."""
    name = name or function.__name__

    @functools.wraps(function)
    def wrapper(*args, **kwargs):
        try:
            return function(*args, **kwargs)
        except OptionError as exc:
            raise AnsibleFilterError('%s: %s' % (name, exc)) from exc

    return wrapper
