# -*- coding: utf-8 -*-
# Copyright (c) gofleet.cache contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

"""go_cache_facts runs as go_cache_facts.py on POSIX hosts and as go_cache_facts.ps1 on Windows hosts (see _twin_module)."""

from __future__ import annotations

from ansible_collections.gofleet.cache.plugins.plugin_utils._twin_module import TwinModuleAction as ActionModule

__all__ = ['ActionModule']
