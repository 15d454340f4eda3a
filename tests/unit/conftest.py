# -*- coding: utf-8 -*-
# Copyright (c) gofleet.cache contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

"""What every unit test sees: a host where no Go builds run.

The engine waits for, or skips a cache beside, running Go processes (if_busy); shared caches count every
account's. A unit test must not depend on what other accounts run on the host, so _procs.go_processes reads an
empty process table here (the real function, over an empty /proc). Tests of the busy rules give their own
processes; the integration tests run real Go builds beside real prunes.
"""

from __future__ import annotations

import functools

import pytest

from ansible_collections.gofleet.cache.plugins.module_utils import _procs


@pytest.fixture(autouse=True)
def no_go_builds_on_the_host(tmp_path_factory, monkeypatch):
    empty_proc = tmp_path_factory.mktemp('proc')
    monkeypatch.setattr(_procs, 'go_processes', functools.partial(_procs.go_processes, proc=str(empty_proc)))
