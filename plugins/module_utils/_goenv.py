# -*- coding: utf-8 -*-
# Copyright (c) gofleet.cache contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

"""Go's configuration as the go command resolves it (src/cmd/go/internal/cfg).

Precedence for every variable: a non-empty OS environment variable, then the
user's go env file (GOENV, else <user config dir>/go/env), then
$GOROOT/go.env (Go 1.21+), then Go's built-in default.  An empty OS variable
counts as unset.
"""

from __future__ import annotations

import errno
import json
import os
import posixpath
import re

from ansible_collections.gofleet.cache.plugins.module_utils import _fs
from ansible_collections.gofleet.cache.plugins.module_utils import _privsep
from ansible_collections.gofleet.cache.plugins.module_utils import _users
from ansible_collections.gofleet.cache.plugins.module_utils._units import OptionError

# The variables that decide where caches live and how modules are fetched.
CACHE_VARS = ('GOCACHE', 'GOMODCACHE', 'GOPATH', 'GOENV', 'GOPROXY', 'GOSUMDB', 'GONOSUMDB',
              'GONOPROXY', 'GOPRIVATE', 'GOFLAGS', 'GOTOOLCHAIN')
GO_BINARY_CANDIDATES = ('/usr/local/go/bin/go', '/usr/lib/go/bin/go', '/usr/bin/go', '/snap/bin/go')


# Every variable `go env -w` accepts (internal/cfg.KnownEnv of go1.27.3) ...
KNOWN_VARS = frozenset((
    'AR', 'CC', 'CGO_CFLAGS', 'CGO_CFLAGS_ALLOW', 'CGO_CFLAGS_DISALLOW', 'CGO_CPPFLAGS', 'CGO_CPPFLAGS_ALLOW',
    'CGO_CPPFLAGS_DISALLOW', 'CGO_CXXFLAGS', 'CGO_CXXFLAGS_ALLOW', 'CGO_CXXFLAGS_DISALLOW', 'CGO_ENABLED',
    'CGO_FFLAGS', 'CGO_FFLAGS_ALLOW', 'CGO_FFLAGS_DISALLOW', 'CGO_LDFLAGS', 'CGO_LDFLAGS_ALLOW',
    'CGO_LDFLAGS_DISALLOW', 'CXX', 'FC', 'GCCGO', 'GO111MODULE', 'GO386', 'GOAMD64', 'GOARCH', 'GOARM', 'GOARM64',
    'GOAUTH', 'GOBIN', 'GOCACHE', 'GOCACHEPROG', 'GOENV', 'GOEXE', 'GOEXPERIMENT', 'GOFIPS140', 'GOFLAGS',
    'GOGCCFLAGS', 'GOHOSTARCH', 'GOHOSTOS', 'GOINSECURE', 'GOMIPS', 'GOMIPS64', 'GOMODCACHE', 'GONOPROXY',
    'GONOSUMDB', 'GOOS', 'GOPATH', 'GOPPC64', 'GOPRIVATE', 'GOPROXY', 'GORISCV64', 'GOROOT', 'GOSUMDB', 'GOTMPDIR',
    'GOTOOLCHAIN', 'GOTOOLDIR', 'GOVCS', 'GOWASM', 'GOWORK', 'GO_EXTLINK_ENABLED', 'PKG_CONFIG'))
# ... except these (cmd/go/internal/envcmd checkEnvWrite): computed by Go, or OS environment only.
READ_ONLY_VARS = frozenset(('GOEXE', 'GOGCCFLAGS', 'GOHOSTARCH', 'GOHOSTOS', 'GOMOD', 'GOROOT', 'GOTELEMETRY',
                            'GOTELEMETRYDIR', 'GOTOOLDIR', 'GOVERSION', 'GOWORK'))
OS_ONLY_VARS = frozenset(('GOENV', 'GODEBUG'))
# Go refuses relative GOPATH/GOMODCACHE/GOTMPDIR; it accepts a relative GOCACHE and then every build
# fails with "GOCACHE is not an absolute path", so that one is refused here too.
ABSOLUTE_PATH_VARS = ('GOCACHE', 'GOMODCACHE', 'GOPATH', 'GOTMPDIR')


# Go's filepath.IsAbs on Windows: a drive letter with a separator, or a UNC path (ntpath.isabs also
# takes a rooted "\\x" and changed its mind in Python 3.13).
_WINDOWS_ABSOLUTE = re.compile(r'^([A-Za-z]:[\\/]|[\\/]{2}[^\\/])')


def check_var(name, value, option='vars', existing=(), windows=False):
    """Refuse what `go env -w NAME=VALUE` refuses (and a relative GOCACHE); OptionError names the variable.

    `existing` are the names already in the file: Go lets those be written
    even when it does not know them.  `value` None is a removal (`go env -u`).
    """
    where = '%s.%s' % (option, name)
    if name in OS_ONLY_VARS:
        raise OptionError(where, value, '%s can only be set in the OS environment, not in a go env file' % name)
    if name in READ_ONLY_VARS:
        raise OptionError(where, value, '%s is computed by Go and cannot be modified' % name)
    if value is None:
        # Removing a name the file does not hold is done already: unlike `go env -u`, which calls an
        # unknown name an error even after it removed it itself, a second run must succeed.
        return
    if name not in KNOWN_VARS and name not in existing:
        raise OptionError(option, name, 'unknown go command variable %s' % name)
    if '\0' in value:
        raise OptionError(where, value, 'invalid NUL in the value')
    if any(char in value for char in '\v\r\n'):
        raise OptionError(where, value, 'invalid newline in the value (a go env file holds one line per variable)')
    if name == 'GO111MODULE' and value not in ('', 'auto', 'on', 'off'):
        raise OptionError(where, value, 'expected one of auto, on, off')
    if name == 'GOCACHE' and value == 'off':
        raise OptionError(where, value, 'GOCACHE=off makes every go build fail since Go 1.12')
    if name in ABSOLUTE_PATH_VARS and value:
        is_abs = _WINDOWS_ABSOLUTE.match if windows else posixpath.isabs
        entries = value.split(';' if windows else ':') if name == 'GOPATH' else [value]
        for entry in entries:
            if entry.startswith('~'):
                raise OptionError(where, value, "entry %r starts with the shell metacharacter '~'" % entry)
            if not is_abs(entry):
                raise OptionError(where, value, 'entry %r is relative; must be an absolute path' % entry)


def _line_key(line):
    """KEY of a KEY=VALUE line, '' for comments, blank and other lines (envcmd lineToKey)."""
    key, sep, _value = line.partition('=')
    return key if sep and '#' not in key else ''


def update_env_file(text, add=None, remove=()):
    """The go env file `go env -w` (add) and `go env -u` (remove) leave behind, byte for byte.

    envcmd updateEnvFile: keep only the last copy of a duplicated key, set
    existing keys in place and append new ones, blank removed keys, then sort
    each run of KEY=VALUE lines by key; comments, blank and invalid lines
    (and the places of dropped lines) separate the runs and stay where they are.
    """
    lines = text.split('\n')
    lines = [line + '\n' for line in lines[:-1]] + ([lines[-1] + '\n'] if lines[-1] else [])
    last = {}
    for index, line in enumerate(lines):
        key = _line_key(line)
        if key:
            if key in last:
                lines[last[key]] = ''
            last[key] = index
    for key, value in sorted((add or {}).items()):
        line = '%s=%s\n' % (key, value)
        if key in last:
            lines[last[key]] = line
        else:
            lines.append(line)
    for key in remove:
        if key in last:
            lines[last[key]] = ''
    start = 0
    for index in range(len(lines) + 1):
        if index == len(lines) or not _line_key(lines[index]):
            lines[start:index] = sorted(lines[start:index], key=_line_key)
            start = index + 1
    return ''.join(lines)


def edit_env_file(text, values, state='present', option='vars'):
    """(new text, {name: value} set, [names] removed) for a go env file holding `text`.

    state present: a None value removes its variable, any other sets it;
    state absent: every named variable is removed.  Values are checked as
    `go env -w` checks them before anything is decided.
    """
    existing = parse_env_file(text)
    add = {}
    remove = []
    for name in sorted(values):
        value = values[name]
        if state == 'absent' or value is None:
            check_var(name, None, option, existing)
            remove.append(name)
            continue
        if isinstance(value, bool) or not isinstance(value, (str, int)):
            raise OptionError('%s.%s' % (option, name), value, 'expected a string (quote numbers and booleans)')
        value = str(value)
        check_var(name, value, option, existing)
        add[name] = value
    return update_env_file(text, add, remove), add, remove


def parse_env_file(text):
    """KEY=VALUE pairs exactly as Go reads a go env file (cfg.go readEnvFile).

    Lines end at LF only: a CR stays in the value, as it does for Go.  Lines
    without '=' or not starting with an uppercase letter are ignored; a later
    duplicate wins.
    """
    values = {}
    for line in (text or '').split('\n'):
        key, sep, value = line.partition('=')
        if not sep or not line or not 'A' <= line[0] <= 'Z':
            continue
        values[key] = value
    return values


def edit_file(account, environment, values, state='present', path=None, check_mode=False):
    """Edit a go env file as `go env -w`/`-u` would; (path, before, after, added, removed, changed).

    Without `path`: the account's own file, found, read and written by a
    child running as the account, which follows the account's links as Go
    does (a dotfiles checkout), with the account's rights only.  With `path`
    (root's configuration, e.g. $GOROOT/go.env): done as the owner of the
    deepest existing directory on the way; root itself works only through
    descriptors (no link followed, nothing resolved twice) and edits only a
    file it owns.  Only a regular file of at most 1 MiB is read.
    """
    if path is None:
        path, _source, error = goenv_file(environment)
        if path is None:
            raise OptionError('user', account.pw_name, 'Go finds no go env file for this account (%s)'
                              % (error or 'GOENV=off in its environment'))
        outcome = _privsep.call_as(_privsep.Identity.of_account(account), _edit_by_path, path, values, state,
                                   check_mode)
        return (path,) + tuple(outcome)
    dir_fd, missing = _fs.nearest_trusted_dir(os.path.dirname(os.path.normpath(path)))
    try:
        identity = _privsep.Identity.of_owner(os.fstat(dir_fd))
        if _privsep.needs_child(identity):
            outcome = _privsep.call_as(identity, _edit_by_path, path, values, state, check_mode)
        else:
            outcome = _edit_at(dir_fd, missing, os.path.basename(path), values, state, check_mode)
    finally:
        os.close(dir_fd)
    return (path,) + tuple(outcome)


def _edited(before, values, state):
    after, added, removed = edit_env_file(before or '', values, state)
    if state == 'absent' and not values:
        after = None  # the whole file goes
    elif before is None and not added:
        after = None  # removing from a file that does not exist: nothing to write
    return after, added, removed


def _edit_by_path(path, values, state, check_mode):
    """(As the file's account.)  [before, after, added, removed, changed] of the file at path."""
    target = os.path.realpath(path)
    before = _fs.read_text_file(target)
    after, added, removed = _edited(before, values, state)
    changed = after != before
    if changed and not check_mode:
        if after is None:
            os.unlink(target)
        else:
            directory = os.path.dirname(target)
            if not os.path.isdir(directory):
                os.makedirs(directory, 0o777)  # Go's MkdirAll mode; the umask applies
            _fs.write_file_atomic(target, after.encode('utf-8', 'surrogateescape'))
    return [before, after, added, removed, changed]


def _edit_at(dir_fd, missing, name, values, state, check_mode):
    """(As root, on descriptors.)  The same for the file `name` below dir_fd/missing..."""
    fd = os.dup(dir_fd)
    try:
        for part in missing:
            if check_mode:
                return _outcome_of(None, values, state)
            next_fd = _fs.make_dir(fd, part, 0o755)
            os.close(fd)
            fd = next_fd
        try:
            file_fd = _fs.open_file(name, fd)
        except OSError as exc:
            if exc.errno != errno.ENOENT:
                raise
            before = None
        else:
            try:
                if os.fstat(file_fd).st_uid != os.geteuid():
                    raise OSError(errno.EPERM, 'owned by another account: not edited', name)
                before = _fs.read_fd(file_fd, 1 << 20, name).decode('utf-8', 'surrogateescape')
            finally:
                os.close(file_fd)
        outcome = _outcome_of(before, values, state)
        after, changed = outcome[1], outcome[4]
        if changed and not check_mode:
            if after is None:
                os.unlink(name, dir_fd=fd)
            else:
                _fs.write_file_atomic(name, after.encode('utf-8', 'surrogateescape'), dir_fd=fd)
        return outcome
    finally:
        os.close(fd)


def _outcome_of(before, values, state):
    after, added, removed = _edited(before, values, state)
    return [before, after, added, removed, after != before]


def _xdg_dir(env, xdg_var, fallback):
    """os.UserConfigDir / os.UserCacheDir on Unix: (path, error)."""
    value = env.get(xdg_var, '')
    if value:
        if not os.path.isabs(value):
            return None, 'path in $%s is relative' % xdg_var
        return value, None
    home = env.get('HOME', '')
    if not home:
        return None, 'neither $%s nor $HOME are defined' % xdg_var
    return os.path.join(home, fallback), None


def goenv_file(env):
    """(path of the user's go env file or None, source, error)."""
    value = env.get('GOENV', '')
    if value:
        return (None if value == 'off' else value), 'env', None
    config, error = _xdg_dir(env, 'XDG_CONFIG_HOME', '.config')
    if config is None:
        return None, 'default', error
    return go_clean(os.path.join(config, 'go', 'env')), 'default', None


def goroot_of(go_binary):
    """GOROOT of a go binary: the directory above its bin/ (Go's own findGOROOT rule)."""
    if not go_binary:
        return None
    return os.path.dirname(os.path.dirname(os.path.realpath(go_binary)))


def find_go(env, explicit=None):
    """Path of the go binary to ask: `explicit`, else PATH, else the usual install places."""
    if explicit:
        return explicit if os.access(explicit, os.X_OK) else None
    for directory in env.get('PATH', _users.DEFAULT_PATH).split(os.pathsep):
        candidate = os.path.join(directory or '.', 'go')
        if directory and os.path.isfile(candidate) and os.access(candidate, os.X_OK):
            return candidate
    for candidate in GO_BINARY_CANDIDATES:
        if os.access(candidate, os.X_OK):
            return candidate
    return None


def go_clean(path):
    """filepath.Clean on Unix: what Go makes of a path it joins (GOPATH/pkg/mod)."""
    if not path:
        return '.'
    cleaned = posixpath.normpath(path)
    # normpath keeps a leading '//' (POSIX leaves it to the system); Go makes it '/'.
    return '/' + cleaned.lstrip('/') if cleaned.startswith('//') else cleaned


class Setting(object):
    """One variable's effective value, where it came from and what it hides.

    Go's lookup (cmd/go/internal/cfg Getenv, EnvOrAndChanged): a non-empty OS
    variable; else the key of the user's go env file, even an empty one, which
    then hides $GOROOT/go.env's (Go does not even read it); else
    $GOROOT/go.env's; and when what was found is empty, the variable's
    built-in default.
    """

    __slots__ = ('name', 'value', 'source', 'shadowed', 'derived_from')

    def __init__(self, name, candidates, default='', derived_from=None):
        # candidates: [(source, value)] in precedence order, None values skipped
        present = [(source, value) for source, value in candidates if value is not None]
        self.name = name
        self.source, self.value = present[0] if present else ('default', default)
        if not self.value and default:
            self.source, self.value = 'default', default
        self.shadowed = present[1:]
        self.derived_from = derived_from

    def as_dict(self):
        result = {'value': self.value, 'source': self.source,
                  'shadowed': [{'source': source, 'value': value} for source, value in self.shadowed]}
        if self.derived_from:
            result['derived_from'] = self.derived_from
        return result


class GoEnvironment(object):
    """Go's view of one account: settings for CACHE_VARS plus the cache locations."""

    def __init__(self, env, goroot=None, isabs=os.path.isabs):
        """`isabs`: the platform's absolute-path rule (ntpath.isabs for the shared vectors' Windows paths)."""
        self.errors = []
        self.goenv_path, goenv_source, error = goenv_file(env)
        if error:
            self.errors.append('GOENV: %s' % error)
        file_values = {}
        if self.goenv_path:
            try:
                file_values = parse_env_file(_fs.read_text_file(self.goenv_path))
            except OSError as exc:
                self.errors.append('GOENV: cannot read %s: %s' % (self.goenv_path, exc.strerror))
        goroot_values = {}
        # Go's findGOROOT: the go env file's GOROOT, then the environment's, then the binary's.
        found_goroot = file_values.get('GOROOT') or env.get('GOROOT') or goroot
        self.goroot = go_clean(found_goroot) if found_goroot else None
        if self.goroot:
            try:
                goroot_values = parse_env_file(_fs.read_text_file(os.path.join(self.goroot, 'go.env')))
            except OSError:
                goroot_values = {}

        def candidates(name):
            found = [('env', env.get(name) or None)]
            if name in file_values:
                found.append(('goenv_file', file_values[name]))
            else:
                found.append(('goroot_env', goroot_values.get(name)))
            return found

        # `go env GOENV` prints the file Go reads, "" when there is none (GOENV=off).
        settings = {'GOENV': Setting('GOENV', [(goenv_source, self.goenv_path or '')])}
        # Go's cache.DefaultDir: no default directory, or a relative GOCACHE, means the cache is off.
        cache_default, cache_error = _xdg_dir(env, 'XDG_CACHE_HOME', '.cache')
        gocache = Setting('GOCACHE', candidates('GOCACHE'),
                          go_clean(os.path.join(cache_default, 'go-build')) if cache_default else 'off')
        if cache_error and gocache.source == 'default':
            self.errors.append('GOCACHE: %s' % cache_error)
        elif gocache.value != 'off' and not isabs(gocache.value):
            self.errors.append('GOCACHE: %r is not an absolute path, so Go does not use a cache' % gocache.value)
            gocache.value = 'off'
        settings['GOCACHE'] = gocache
        home = env.get('HOME', '')
        default_gopath = go_clean(os.path.join(home, 'go')) if home else ''
        if env.get('GOROOT') and default_gopath == go_clean(env['GOROOT']):
            default_gopath = ''  # go/build's defaultGOPATH: never GOROOT
        settings['GOPATH'] = Setting('GOPATH', candidates('GOPATH'), default_gopath)
        gopath = settings['GOPATH']
        first_gopath = gopath.value.split(os.pathsep)[0] if gopath.value else ''
        modcache = Setting('GOMODCACHE', candidates('GOMODCACHE'))
        if not modcache.value:
            # Derived: the first GOPATH entry joined with pkg/mod (filepath.Join cleans it), with GOPATH's provenance.
            modcache = Setting('GOMODCACHE', [(gopath.source, go_clean(os.path.join(first_gopath, 'pkg', 'mod'))
                                               if first_gopath else '')], derived_from='GOPATH')
        settings['GOMODCACHE'] = modcache
        for name in ('GOPROXY', 'GOSUMDB', 'GOPRIVATE', 'GOFLAGS', 'GOTOOLCHAIN'):
            settings[name] = Setting(name, candidates(name))
        for name in ('GONOSUMDB', 'GONOPROXY'):
            setting = Setting(name, candidates(name))
            if not setting.value:  # Go defaults both to GOPRIVATE
                setting = Setting(name, [(settings['GOPRIVATE'].source, settings['GOPRIVATE'].value)],
                                  derived_from='GOPRIVATE')
            settings[name] = setting
        self.settings = settings

    def apply_go_env_json(self, reported):
        """Let `go env -json` overrule the computed values (it is the authority when it runs).

        GOTOOLCHAIN and GOENV are excluded: the query pins both so that it can
        neither download a toolchain nor write into the account's config dir.
        """
        disagreements = []
        for name, setting in self.settings.items():
            if name in ('GOTOOLCHAIN', 'GOENV') or name not in reported:
                continue
            if reported[name] != setting.value:
                disagreements.append({'var': name, 'computed': setting.value, 'computed_source': setting.source,
                                      'go_env_json': reported[name]})
                setting.shadowed = [(setting.source, setting.value)] + setting.shadowed
                setting.value = reported[name]
                setting.source = 'go_env_json'
        return disagreements

    def conflicts(self):
        """Variables whose OS environment value hides a different go env file value."""
        found = []
        for name, setting in sorted(self.settings.items()):
            if setting.source != 'env':
                continue
            for source, value in setting.shadowed:
                if source == 'goenv_file' and value != setting.value:
                    found.append({'var': name, 'value': setting.value, 'source': 'env',
                                  'shadowed_source': source, 'shadowed_value': value})
        return found

    def as_dict(self):
        return dict((name, self.settings[name].as_dict()) for name in CACHE_VARS)


def query_go_env(go_binary, account, env, goenv_path, timeout=60):
    """`go env -json` as `account`; returns (dict or None, error or None).

    GOTOOLCHAIN=local keeps Go from downloading a toolchain; GOENV is pinned
    to the resolved file and XDG_CONFIG_HOME pointed at an uncreatable path
    so that Go's telemetry cannot create files in the account's home.
    """
    child_env = dict(env)
    child_env['GOTOOLCHAIN'] = 'local'
    child_env['GOENV'] = goenv_path or 'off'
    child_env['XDG_CONFIG_HOME'] = '/dev/null/gofleet-no-telemetry'
    argv = [go_binary, 'env', '-json'] + [name for name in CACHE_VARS if name not in ('GOENV', 'GOTOOLCHAIN')]
    argv += ['GOROOT', 'GOVERSION']
    try:
        rc, out, err = _users.run_as(account, argv, child_env, timeout=timeout)
    except OSError as exc:
        return None, 'cannot run %s as %s: %s' % (go_binary, account.pw_name, exc)
    if rc != 0:
        return None, '%s env -json failed as %s (rc=%s): %s' % (go_binary, account.pw_name, rc, err.strip()[:500])
    try:
        return json.loads(out), None
    except ValueError:
        return None, '%s env -json returned no JSON: %s' % (go_binary, out.strip()[:200])
