# -*- coding: utf-8 -*-
# Copyright (c) gofleet.cache contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

"""Where an account's Go caches are, and acting on a cache root as its owner.

Two kinds of cache location, two rules (SECURITY.md):

- An account's cache (from its environment, its go env file, Go's default
  under its home) is a location the account chooses.  It is located and opened
  by a child running as the account (_privsep), and it counts as the
  account's cache only when the account owns its root directory: a location
  it names but does not own (root's, another account's) is reported and
  skipped, never scanned, pruned or wiped.
- An explicit cache (`caches`, `path`: root's own configuration) is opened by
  root once, one component at a time without following links an account
  controls (_fs.open_trusted_path), and the job runs as the owner of the
  directory it got.

Either way the job gets the open root directory: nothing below is looked up
again by name from outside it.
"""

from __future__ import annotations

import errno
import os
import pwd

from ansible_collections.gofleet.cache.plugins.module_utils import _buildcache
from ansible_collections.gofleet.cache.plugins.module_utils import _fs
from ansible_collections.gofleet.cache.plugins.module_utils import _goenv
from ansible_collections.gofleet.cache.plugins.module_utils import _modcache
from ansible_collections.gofleet.cache.plugins.module_utils import _privsep
from ansible_collections.gofleet.cache.plugins.module_utils import _users
from ansible_collections.gofleet.cache.plugins.module_utils._units import OptionError

KINDS = ('build', 'module', 'fuzz')
# The setting that places each kind (the fuzz cache is GOCACHE/fuzz).
KIND_SETTINGS = {'build': 'GOCACHE', 'module': 'GOMODCACHE', 'fuzz': 'GOCACHE'}
# Directories that are never a cache root, whatever they contain.
SYSTEM_DIRS = frozenset(('/', '/bin', '/boot', '/dev', '/etc', '/home', '/lib', '/lib64', '/opt', '/proc',
                         '/root', '/run', '/sbin', '/srv', '/sys', '/tmp', '/usr', '/usr/local', '/var',
                         '/var/cache', '/var/lib', '/var/tmp', '/mnt', '/media'))
NOT_A_CACHE = {'build': "it is not empty and has neither Go's README nor Go's 256 entry directories",
               'module': 'it is not empty and has no cache/download directory',
               'fuzz': 'it is not the fuzz directory of a Go build cache'}
# Opening an account's cache as the account: links are followed, as Go follows them.
_O_DIR_FOLLOW = os.O_RDONLY | os.O_DIRECTORY | getattr(os, 'O_CLOEXEC', 0)

# Outcomes of on_root besides the job's own result.
OK, MISSING, SKIPPED = 'ok', 'missing', 'skipped'


class NoSuchCache(OptionError):
    """An explicit cache path where there is nothing (facts report it as not existing)."""


class Target(object):
    """One cache to act on: an account's (account set) or an explicit one (account None)."""

    __slots__ = ('path', 'kind', 'account', 'source', 'real')

    def __init__(self, path, kind, account=None, source='explicit'):
        self.path = path
        self.kind = kind
        self.account = account
        self.source = source
        # The path the kernel gave for the opened root, once checked (for locks and reports, never to open).
        self.real = None

    @property
    def user(self):
        return None if self.account is None else self.account.pw_name

    @property
    def option(self):
        """The option a problem with this target is reported against."""
        return 'path' if self.account is None else 'user'

    def __repr__(self):
        return 'Target(%r, %r, %r)' % (self.path, self.kind, self.user)


_protected = {}


def protected_dirs():
    """{(st_dev, st_ino): reason} of the system directories and every account's home directory.

    Compared by identity, not by name: whatever path leads there.  Worked out
    once per process (before any child is forked, by the callers that fork).
    """
    if not _protected:
        found = {}
        for path in sorted(SYSTEM_DIRS):
            _remember(found, path, 'a system directory (%s)' % path)
        for entry in pwd.getpwall():
            if entry.pw_dir and entry.pw_dir != '/':
                _remember(found, entry.pw_dir, 'a home directory (%s)' % entry.pw_dir)
        _protected.update(found)
        _protected[None] = None  # marks the work as done, even when nothing was found
    return _protected


def _remember(found, path, reason):
    try:
        st = os.stat(path)
    except OSError:
        return
    found.setdefault((st.st_dev, st.st_ino), reason)


def check_cache_path(path, option='path'):
    """Refuse a path that can never hold a cache: relative, or naming a system or home directory."""
    if not path or not isinstance(path, str) or not os.path.isabs(path):
        raise OptionError(option, path, 'a cache path must be absolute')
    normal = os.path.normpath(path)
    if normal in SYSTEM_DIRS:
        raise OptionError(option, path, 'refusing a system directory (%s)' % normal)
    return normal


def check_root_fd(fd, kind, path, option='path'):
    """The real path of an open directory that is a Go cache of `kind`; OptionError naming the reason otherwise."""
    if kind not in KINDS:
        raise OptionError('kind', kind, 'expected one of %s' % ', '.join(KINDS))
    st = os.fstat(fd)
    real = _fs.fd_path(fd) or path
    reason = protected_dirs().get((st.st_dev, st.st_ino))
    if reason:
        raise OptionError(option, path, 'refusing %s' % reason)
    if kind == 'fuzz':
        valid = os.path.basename(real) == _buildcache.FUZZ_DIR and _parent_is_build_cache(fd)
    else:
        valid = is_cache_layout(fd, kind)
    if not valid:
        raise OptionError(option, path, 'not a Go %s cache: %s' % (kind, NOT_A_CACHE[kind]))
    return real


def is_cache_layout(fd, kind):
    """True when the open directory is laid out as a Go build or module cache, or is empty.

    An empty directory is an empty cache: Go makes its layout on first use, and go_environment creates the
    directories before any build. Nothing in it can be removed, so nothing is at stake in accepting it.
    """
    if kind == 'build':
        laid_out = _buildcache.is_build_cache(fd)
    else:
        laid_out = _modcache.is_module_cache(fd)
    return laid_out or _is_empty_dir(fd)


def _is_empty_dir(fd):
    try:
        return not _fs.list_dir(fd)
    except OSError:
        return False


def _parent_is_build_cache(fd):
    try:
        parent = _fs.open_dir('..', fd)
    except OSError:
        return False
    try:
        return _buildcache.is_build_cache(parent)
    finally:
        os.close(parent)


def open_explicit(path, option='path'):
    """Open the directory an explicit path names, as root may (see _fs.open_trusted_path); OptionError otherwise."""
    try:
        if os.geteuid() == 0:
            return _fs.open_trusted_path(path)
        # An account acting for itself may follow its own links: the kernel bounds it.
        return _fs._open(path, _O_DIR_FOLLOW)  # pylint: disable=protected-access
    except OSError as exc:
        if exc.errno in (errno.ENOENT, errno.ENOTDIR):
            raise NoSuchCache(option, path, 'no such cache directory')
        raise OptionError(option, path, '%s: %s' % (_fs.printable(exc.filename or path), exc.strerror or exc))


def owner_name(uid):
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return str(uid)


def on_root(target, job, *args, **options):
    """[state, value, owner]: job(root_fd, real_path, target, *args) run as the cache's owner on its root.

    state OK: value is the job's result.  For an account's cache, MISSING
    when there is none yet, SKIPPED (value: the reason) when its root is not
    the account's or not a Go cache of that kind.  An explicit target that is
    not a cache raises OptionError (the caller's input is wrong).  With
    `check=False` (facts, which report what they find) the job gets any
    directory, and judges it itself.
    """
    check = options.pop('check', True)
    if target.account is None:
        fd = open_explicit(target.path, target.option)
        try:
            st = os.fstat(fd)
            identity = _privsep.Identity.of_owner(st)
            protected_dirs()
            return _privsep.call_as(identity, _run_job, fd, target, job, args, check, keep_fds=[fd])
        finally:
            os.close(fd)
    protected_dirs()
    return _privsep.call_as(_privsep.Identity.of_account(target.account), _open_and_run, target, job, args, check)


def _open_and_run(target, job, args, check):
    try:
        fd = _fs._open(target.path, _O_DIR_FOLLOW)  # pylint: disable=protected-access
    except OSError as exc:
        if exc.errno in (errno.ENOENT, errno.ENOTDIR):
            return [MISSING, None, None]
        return [SKIPPED, 'cannot open it: %s' % exc.strerror, None]
    try:
        st = os.fstat(fd)
        owner = owner_name(st.st_uid)
        if st.st_uid != target.account.pw_uid:
            return [SKIPPED, 'owned by %s, not by %s: an account is only credited with (and pruned in) caches it '
                             'owns; list a shared cache under caches/path' % (owner, target.user), owner]
        return _run_job(fd, target, job, args, check)
    finally:
        os.close(fd)


def _run_job(fd, target, job, args, check):
    owner = owner_name(os.fstat(fd).st_uid)
    if not check:
        return [OK, job(fd, _fs.fd_path(fd) or target.path, target, *args), owner]
    try:
        real = check_root_fd(fd, target.kind, target.path, target.option)
    except OptionError as exc:
        if target.account is None:
            raise
        return [SKIPPED, exc.reason, owner]
    return [OK, job(fd, real, target, *args), owner]


# --------------------------------------------------------------------------- an account's view


def account_view(account, go='auto', environment=None):
    """What Go makes of one account, worked out as the account (it reads the account's go env file).

    {env: {VAR: setting}, goenv_path, goroot, go_binary, go_env_json, disagreements, errors, conflicts,
    locations: {kind: {path, source, var}}}.  `environment`: the account's (_users.account_environment),
    worked out by the caller before it dropped to the account, if it did.
    """
    if environment is None:
        environment = _users.account_environment(account)
    return _privsep.call_as(_privsep.Identity.of_account(account), _view_as_account, account, environment, go)


def _view_as_account(account, environment, go):
    go_binary = _goenv.find_go(environment, go if go not in (None, 'auto', 'none') else None)
    goenv = _goenv.GoEnvironment(environment, _goenv.goroot_of(go_binary))
    errors = list(goenv.errors)
    disagreements = []
    asked = bool(go_binary) and go not in (None, 'none')
    if asked:
        reported, error = _goenv.query_go_env(go_binary, account, environment, goenv.goenv_path)
        if error:
            errors.append(error)
            asked = False
        else:
            disagreements = goenv.apply_go_env_json(reported)
    locations = {}
    for kind in KINDS:
        setting = goenv.settings[KIND_SETTINGS[kind]]
        path = setting.value
        if path and os.path.isabs(path) and kind == 'fuzz':
            path = os.path.join(path, _buildcache.FUZZ_DIR)
        locations[kind] = {'path': path, 'source': setting.source, 'var': setting.name}
    return {'env': goenv.as_dict(), 'goenv_path': goenv.goenv_path, 'goroot': goenv.goroot, 'go_binary': go_binary,
            'go_env_json': asked, 'disagreements': disagreements, 'errors': errors,
            'conflicts': goenv.conflicts(), 'locations': locations}


def location_problem(location):
    """Why an account's setting names no cache to look at (unset, relative, off), or None."""
    path = location['path']
    if not path:
        return '%s is unset' % location['var']
    if path == 'off':
        return '%s is off: Go uses no cache there' % location['var']
    if not os.path.isabs(path):
        return '%s is not an absolute path: %r' % (location['var'], path)
    return None


def account_targets(account, kinds, go='auto'):
    """(targets, unlocated): the account's caches of `kinds`, and [{user, kind, path, reason}] without one."""
    view = account_view(account, go)
    targets, unlocated = [], []
    for kind in kinds:
        location = view['locations'][kind]
        problem = location_problem(location)
        if problem:
            unlocated.append({'user': account.pw_name, 'kind': kind, 'path': location['path'] or None,
                              'reason': problem})
        else:
            targets.append(Target(location['path'], kind, account, location['source']))
    return targets, unlocated
