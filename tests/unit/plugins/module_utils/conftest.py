# -*- coding: utf-8 -*-
# Copyright (c) gofleet.cache contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

"""Fixtures shared by the engine tests."""

from __future__ import annotations

import os

import pytest

from ansible_collections.gofleet.cache.tests.unit.plugins.module_utils.cachetree import make_writable


@pytest.fixture
def modcache(tmp_path):
    """An empty module cache root; Go's read-only trees are made removable afterwards."""
    root = str(tmp_path / 'mod')
    os.makedirs(root)
    yield root
    make_writable(root)
