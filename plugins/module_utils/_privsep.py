# -*- coding: utf-8 -*-
# Copyright (c) gofleet.cache contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

"""Doing a job with the rights of the account that owns what it touches.

gofleet runs as root on hosts where no account is trusted, cache owners
included (SECURITY.md).  Whatever root does inside a tree an account controls,
the account can redirect with links, mounts and races.  So a job on such a
tree runs in a child process that has dropped to the owner, as su and cron do
(supplementary groups, then gid, then uid, real, effective and saved), and
the kernel, not our checks, decides what the job can touch.

The child gets the job as a function and its arguments (fork copies them)
and sends back one JSON document, plus the file descriptors the job hands
over (a directory root must finish, e.g. chown to a group the account is not
in).  The parent treats both as the account's word: data to check, never code
to run or a path to trust; received descriptors are checked with fstat before
root uses them.  The account can stop or kill the child: a child stopped for
STOP_LIMIT_S is killed and the job reported as failed, so that no account can
hold root's run.
"""

from __future__ import annotations

import array
import collections
import ctypes
import errno
import grp
import json
import os
import pwd
import select
import signal
import socket
import struct
import time

from ansible_collections.gofleet.cache.plugins.module_utils._units import OptionError

MAX_RESULT_BYTES = 64 << 20
MAX_FDS = 16
STOP_LIMIT_S = 10.0
POLL_S = 1.0
PR_SET_PDEATHSIG = 1
PR_SET_DUMPABLE = 4
_HEADER = struct.Struct('<Q')


class Identity(collections.namedtuple('Identity', 'uid gid groups name')):
    """Who a job runs as: uid, primary gid, supplementary groups, and a name for messages."""

    __slots__ = ()

    @classmethod
    def of_account(cls, account):
        """An account from the passwd database with the groups login would give it."""
        try:
            groups = tuple(os.getgrouplist(account.pw_name, account.pw_gid))
        except OSError:
            groups = (account.pw_gid,)
        return cls(account.pw_uid, account.pw_gid, groups, account.pw_name)

    @classmethod
    def of_owner(cls, st):
        """The owner of a file: its account when there is one, else the bare uid with the file's group."""
        try:
            return cls.of_account(pwd.getpwuid(st.st_uid))
        except KeyError:
            return cls(st.st_uid, st.st_gid, (st.st_gid,), str(st.st_uid))

    @classmethod
    def current(cls):
        return cls(os.geteuid(), os.getegid(), tuple(os.getgroups()), _name(os.geteuid()))


def _name(uid):
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return str(uid)


def group_id(name, option='group'):
    """gid of a group name or number; OptionError when there is none."""
    try:
        return int(name) if str(name).isdigit() else grp.getgrnam(str(name)).gr_gid
    except KeyError:
        raise OptionError(option, name, 'no such group')


class WithFds(object):
    """A job's result together with open file descriptors handed to the caller, who closes them."""

    __slots__ = ('value', 'fds')

    def __init__(self, value, fds=()):
        self.value = value
        self.fds = list(fds)

    def close(self):
        for fd in self.fds:
            try:
                os.close(fd)
            except OSError:
                pass
        self.fds = []


class ChildFailed(OSError):
    """The process acting as an account ended without a result (killed, stopped too long, or it lied)."""


def needs_child(identity):
    """Only root can drop to another account, and only another account needs it."""
    return os.geteuid() == 0 and identity.uid != 0


def call_as(identity, func, *args, **kwargs):
    """func(*args, **kwargs) with the rights of `identity`; returns its result (JSON data, or WithFds).

    Runs in this process when nothing needs dropping (see needs_child), so
    results and exceptions are the same either way.  `keep_fds` (keyword):
    descriptors the child keeps (every other one is closed in the child).
    OptionError and OSError raised by the job are raised again here.
    """
    keep_fds = kwargs.pop('keep_fds', ())
    if not needs_child(identity):
        return func(*args, **kwargs)
    parent_end, child_end = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    parent = os.getpid()
    try:
        pid = os.fork()
    except BaseException:
        parent_end.close()
        child_end.close()
        raise
    if pid == 0:  # pragma: no cover - runs in the child, which leaves through os._exit
        parent_end.close()
        _child(identity, child_end, keep_fds, func, args, kwargs, parent)
    child_end.close()
    try:
        payload, fds = _receive(parent_end, pid, identity)
    finally:
        parent_end.close()
    return _result(payload, fds, identity)


def _child(identity, channel, keep_fds, func, args, kwargs, parent):  # pragma: no cover - forked child
    status = 1
    try:
        keep = set(keep_fds) | {channel.fileno()}
        _detach(keep)
        _drop(identity, parent)
        try:
            value = func(*args, **kwargs)
            fds = []
            message = {'value': value}
            if isinstance(value, WithFds):
                message = {'value': value.value, 'with_fds': True}
                fds = value.fds
        except OptionError as exc:
            message, fds = {'error': {'kind': 'option', 'option': exc.option, 'value': exc.value,
                                      'reason': exc.reason}}, []
        except OSError as exc:
            message, fds = {'error': {'kind': 'os', 'errno': exc.errno, 'strerror': exc.strerror or str(exc),
                                      'filename': exc.filename}}, []
        except Exception as exc:  # pylint: disable=broad-except
            message, fds = {'error': {'kind': 'other', 'type': type(exc).__name__, 'message': str(exc)}}, []
        data = json.dumps(message, default=repr).encode('utf-8', 'surrogatepass')
        _send(channel, data, fds[:MAX_FDS])
        status = 0
    except BaseException:  # pylint: disable=broad-except
        status = 1
    finally:
        os._exit(status)  # pylint: disable=protected-access


def _detach(keep):  # pragma: no cover - forked child
    """Leave root's descriptors and output channel behind before becoming the account."""
    devnull = os.open(os.devnull, os.O_RDWR)
    os.dup2(devnull, 0)
    os.dup2(devnull, 1)
    os.close(devnull)
    for name in os.listdir('/proc/self/fd'):
        fd = int(name)
        if fd > 2 and fd not in keep:
            try:
                os.close(fd)
            except OSError:
                pass


def _drop(identity, parent):  # pragma: no cover - forked child
    os.setgroups(list(identity.groups))
    os.setresgid(identity.gid, identity.gid, identity.gid)
    os.setresuid(identity.uid, identity.uid, identity.uid)
    if os.getresuid() != (identity.uid,) * 3 or os.getresgid() != (identity.gid,) * 3:
        raise OSError(errno.EPERM, 'could not drop to %s' % identity.name)
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        # Not dumpable: the account cannot ptrace the child, which was forked from root's memory.
        libc.prctl(PR_SET_DUMPABLE, 0, 0, 0, 0)
        # Killed with root's run (a timeout, an interrupted play), never left to go on unsupervised; set after
        # the credentials changed, which clears it.
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    except (AttributeError, OSError):
        pass
    if os.getppid() != parent:
        raise OSError(errno.ECHILD, 'root\'s run ended before the job began')
    os.chdir('/')


def _send(channel, data, fds):  # pragma: no cover - forked child
    header = _HEADER.pack(len(data))
    if fds:
        channel.sendmsg([header], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array('i', fds).tobytes())])
    else:
        channel.sendall(header)
    channel.sendall(data)
    channel.shutdown(socket.SHUT_WR)


def _stopped(pid):
    try:
        with open('/proc/%d/stat' % pid, 'rb') as handle:
            text = handle.read()
    except OSError:
        return False
    state = text[text.rfind(b')') + 2:text.rfind(b')') + 3]
    return state in (b'T', b't')


def _receive(channel, pid, identity):
    """(payload bytes or None, fds) from the child, then reap it; kills it when stopped too long or lying."""
    fds = []
    chunks = []
    size = 0
    expected = None
    stopped_since = None
    failure = None
    buffered = b''
    try:
        while True:
            ready, _w, _x = select.select([channel], [], [], POLL_S)
            if not ready:
                if _stopped(pid):
                    stopped_since = stopped_since or time.monotonic()
                    if time.monotonic() - stopped_since > STOP_LIMIT_S:
                        failure = 'stopped by a signal for more than %ds' % STOP_LIMIT_S
                        break
                else:
                    stopped_since = None
                continue
            if expected is None:
                data, ancillary, _flags, _addr = channel.recvmsg(
                    _HEADER.size - len(buffered), socket.CMSG_SPACE(MAX_FDS * array.array('i').itemsize))
                for level, kind, raw in ancillary:
                    if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                        received = array.array('i')
                        received.frombytes(raw[:len(raw) - len(raw) % received.itemsize])
                        fds.extend(received)
                if not data:
                    break
                buffered += data
                if len(buffered) == _HEADER.size:
                    expected = _HEADER.unpack(buffered)[0]
                    if expected > MAX_RESULT_BYTES:
                        failure = 'result larger than %d bytes' % MAX_RESULT_BYTES
                        break
                continue
            data = channel.recv(min(1 << 20, expected - size + 1))
            if not data:
                break
            chunks.append(data)
            size += len(data)
            if size > expected:
                failure = 'result longer than announced'
                break
    finally:
        if failure is not None:
            _kill(pid)
        status = _reap(pid)
    if failure is None and (expected is None or size != expected):
        failure = 'ended without a result (%s)' % _describe(status)
    if failure is not None:
        for fd in fds:
            os.close(fd)
        raise ChildFailed(errno.ECHILD, 'the process acting as %s %s' % (identity.name, failure))
    return b''.join(chunks), fds


def _kill(pid):
    try:
        os.kill(pid, signal.SIGKILL)
    except OSError:
        pass


def _reap(pid):
    while True:
        try:
            return os.waitpid(pid, 0)[1]
        except InterruptedError:
            continue
        except ChildProcessError:
            return None


def _describe(status):
    if status is None:
        return 'not reaped'
    if os.WIFSIGNALED(status):
        return 'killed by signal %d' % os.WTERMSIG(status)
    return 'exit status %d' % os.WEXITSTATUS(status)


def _result(payload, fds, identity):
    try:
        message = json.loads(payload.decode('utf-8', 'surrogatepass'))
    except ValueError:
        message = None
    if not isinstance(message, dict) or not ('value' in message or isinstance(message.get('error'), dict)):
        for fd in fds:
            os.close(fd)
        raise ChildFailed(errno.ECHILD, 'the process acting as %s sent no valid result' % identity.name)
    error = message.get('error')
    if error is None and fds and not message.get('with_fds'):
        error = {'kind': 'other', 'type': 'ChildFailed', 'message': 'descriptors nobody asked for'}
    if error is None:
        return WithFds(message['value'], fds) if message.get('with_fds') else message['value']
    for fd in fds:
        os.close(fd)
    if error.get('kind') == 'option':
        raise OptionError(error.get('option'), error.get('value'), error.get('reason'))
    if error.get('kind') == 'os':
        raise OSError(error.get('errno') or errno.EIO, error.get('strerror'), error.get('filename'))
    raise ChildFailed(errno.ECHILD, 'the process acting as %s failed: %s: %s'
                      % (identity.name, error.get('type'), error.get('message')))
