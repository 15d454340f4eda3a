# -*- coding: utf-8 -*-
# Copyright (c) gofleet.cache contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

"""gofleet-cache-agent: prune Go caches by policy; `gofleet-cache-agent --help` tells how.

The role gofleet.cache.cleanup_schedule installs this launcher with a shebang
naming the host's Python, next to a copy of the collection's module_utils
(ansible_collections/gofleet/cache/plugins/module_utils/), so the host runs the
very engine go_cache_prune runs.  That copy goes first on sys.path and its
packages are regular ones (with __init__.py), so no other gofleet.cache
installed for Ansible on the host can shadow it.
"""

import os
import sys

# The role installs the engine with one fixed mtime per file: a .pyc could then outlive its source.
sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.realpath(__file__)))

from ansible_collections.gofleet.cache.plugins.module_utils import _agent  # noqa: E402 pylint: disable=wrong-import-position

if __name__ == '__main__':
    sys.exit(_agent.main())
