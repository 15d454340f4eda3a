# -*- coding: utf-8 -*-
# Copyright: gofleet.cache contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Make ``ansible_collections.gofleet.cache`` importable under plain pytest.

ansible-test provides the import path itself. Plain pytest (the engine tests on
Python 3.8/3.13, tests/integration) gets it from ``.cache/pypath``, where
``ansible_collections/gofleet/cache`` is a symlink to this checkout (made by
scripts/setup.sh, or here when missing).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import importlib.util
import os
import sys


def _importable():
    try:
        return importlib.util.find_spec('ansible_collections.gofleet.cache') is not None
    except ImportError:
        return False


if not _importable():
    _ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    _PYPATH = os.path.join(_ROOT, '.cache', 'pypath')
    _LINK = os.path.join(_PYPATH, 'ansible_collections', 'gofleet', 'cache')
    if not os.path.lexists(_LINK):
        os.makedirs(os.path.dirname(_LINK), exist_ok=True)
        os.symlink(os.path.join(os.pardir, os.pardir, os.pardir, os.pardir), _LINK)
    sys.path.insert(0, _PYPATH)
    # drop a negative result cached before the path existed
    importlib.invalidate_caches()
