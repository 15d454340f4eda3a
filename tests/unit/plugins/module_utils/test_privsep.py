# -*- coding: utf-8 -*-
# Copyright (c) gofleet.cache contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

"""_privsep: a job runs with an account's rights, its answer is data, and the account cannot hold root."""

from __future__ import annotations

import errno
import os
import pwd
import signal
import time

import pytest

from ansible_collections.gofleet.cache.plugins.module_utils import _privsep
from ansible_collections.gofleet.cache.plugins.module_utils._units import OptionError

as_root = pytest.mark.skipif(os.geteuid() != 0, reason='needs root (dropping to another account)')


@pytest.fixture
def nobody():
    return _privsep.Identity.of_account(pwd.getpwnam('nobody'))


def _credentials():
    return [list(os.getresuid()), list(os.getresgid()), sorted(os.getgroups())]


@as_root
def test_the_job_runs_with_every_id_of_the_account(nobody):
    uids, gids, groups = _privsep.call_as(nobody, _credentials)
    assert uids == [nobody.uid] * 3 and gids == [nobody.gid] * 3
    assert groups == sorted(nobody.groups)


@as_root
def test_the_kernel_judges_the_job(nobody, tmp_path):
    secret = tmp_path / 'secret'
    secret.write_text('root only\n')
    os.chmod(str(secret), 0o600)
    with pytest.raises(OSError) as raised:
        _privsep.call_as(nobody, lambda: open(str(secret)).read())
    assert raised.value.errno == errno.EACCES


@as_root
def test_option_errors_come_back_as_they_were_raised(nobody):
    def refuse():
        raise OptionError('max_age', 'x' * 3, 'bad')
    with pytest.raises(OptionError) as raised:
        _privsep.call_as(nobody, refuse)
    assert (raised.value.option, raised.value.value, raised.value.reason) == ('max_age', 'xxx', 'bad')


@as_root
def test_root_descriptors_are_closed_in_the_child(nobody, tmp_path):
    kept = os.open(str(tmp_path), os.O_RDONLY)
    dropped = os.open(str(tmp_path), os.O_RDONLY)
    try:
        seen = _privsep.call_as(nobody, lambda: sorted(int(name) for name in os.listdir('/proc/self/fd')),
                                keep_fds=[kept])
    finally:
        os.close(kept)
        os.close(dropped)
    assert kept in seen and dropped not in seen


@as_root
def test_descriptors_handed_back_are_the_ones_the_job_opened(nobody):
    def hand_over():
        return _privsep.WithFds({'note': 'tmp'}, [os.open('/tmp', os.O_RDONLY | os.O_DIRECTORY)])
    result = _privsep.call_as(nobody, hand_over)
    try:
        assert result.value == {'note': 'tmp'}
        assert os.path.samestat(os.fstat(result.fds[0]), os.stat('/tmp'))
    finally:
        result.close()


@as_root
def test_a_child_the_account_kills_is_a_reported_failure(nobody):
    with pytest.raises(_privsep.ChildFailed) as raised:
        _privsep.call_as(nobody, lambda: os.kill(os.getpid(), signal.SIGKILL))
    assert 'killed by signal 9' in str(raised.value)


@as_root
def test_a_child_the_account_stops_is_killed_after_the_limit(nobody, monkeypatch):
    monkeypatch.setattr(_privsep, 'STOP_LIMIT_S', 1.0)
    started = time.monotonic()
    with pytest.raises(_privsep.ChildFailed) as raised:
        _privsep.call_as(nobody, lambda: os.kill(os.getpid(), signal.SIGSTOP))
    assert 'stopped' in str(raised.value)
    assert time.monotonic() - started < 10


@as_root
def test_a_result_larger_than_the_bound_is_refused(nobody, monkeypatch):
    monkeypatch.setattr(_privsep, 'MAX_RESULT_BYTES', 1000)
    with pytest.raises(_privsep.ChildFailed):
        _privsep.call_as(nobody, lambda: 'x' * 5000)


def test_nothing_to_drop_runs_in_this_process():
    me = _privsep.Identity.current()
    if os.geteuid() == 0:
        assert _privsep.call_as(me, os.getpid) == os.getpid()
    else:
        assert _privsep.call_as(_privsep.Identity(0, 0, (0,), 'root'), os.getpid) == os.getpid()


def test_text_that_is_not_utf8_survives_the_trip():
    name = b'caf\xe9'.decode('utf-8', 'surrogateescape')
    identity = _privsep.Identity.of_account(pwd.getpwnam('nobody')) if os.geteuid() == 0 else \
        _privsep.Identity.current()
    assert _privsep.call_as(identity, lambda: name) == name
