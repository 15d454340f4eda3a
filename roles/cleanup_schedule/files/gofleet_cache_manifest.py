# -*- coding: utf-8 -*-
# Copyright (c) gofleet.cache contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

"""What the role cleanup_schedule made on a host, and taking exactly that away again (runs on the host as root).

    python3 gofleet_cache_manifest.py plan|tidy|absent

The request is JSON in the environment variable GOFLEET_CACHE_MANIFEST_REQUEST;
the answer is one JSON object on stdout ({changed, ...}, or {failed, msg} with
exit status 1). Standard library only, Python 3.6 or newer.

The manifest (JSON, in the role's config directory) records:

- dirs: every directory the role created, parents first. A directory that
  existed before the role first needed it is never recorded, so it is never
  removed.
- files: the files the role wrote in them (agent, engine, policy file, the
  manifest itself).
- links: symbolic links the role made, with their targets.
- lock_dirs, metrics_dirs: every directory the agent was told to keep its lock
  files (*.lock) and metrics files (gofleet_cache_*.prom and their
  .gofleet_cache_*.tmp temporaries) in.

plan (before anything is created): adds the directories that do not exist yet
(and their missing parents) to the manifest, creates the config directory and
writes the manifest there, so that a run that fails half way still knows what
it made; reports owner and mode of the paths in `probe` as they were. A host installed by an earlier version of the role (a policy file but
no manifest) adopts that version's directories.

tidy (after the lock and metrics directories were made root's): removes lock and
metrics files that an account could have made or still holds open: anything
under those names not a root-owned regular file with one link, every lock file
when the lock directory was writable by others before, and metrics files of jobs
no longer scheduled.

absent: removes the recorded files, the agent's lock and metrics files, the
manifest, then each recorded directory that is empty (rmdir, deepest first; never
a recursive removal). Directories still holding something the role did not make
stay, and are reported. Nothing here follows a symbolic link in the last
component: entries are examined and removed relative to their directory's fd,
and a directory is never unlinked as if it were a file.
"""

import errno
import fnmatch
import json
import os
import stat
import sys

FORMAT = 1
REQUEST_VAR = 'GOFLEET_CACHE_MANIFEST_REQUEST'
LOCK_PATTERNS = ('*.lock',)
METRICS_PATTERNS = ('gofleet_cache_*.prom', '.gofleet_cache_*.tmp')
ABOUT = ('Written by gofleet.cache.cleanup_schedule. state=absent removes the files and links listed here, the '
         "agent's lock and metrics files in lock_dirs and metrics_dirs, then each directory of dirs that is empty.")


class Failure(Exception):
    pass


def _open_dir(path):
    return os.open(path, os.O_RDONLY | os.O_DIRECTORY | getattr(os, 'O_CLOEXEC', 0))


def _lstat(path):
    try:
        return os.lstat(path)
    except OSError as exc:
        if exc.errno in (errno.ENOENT, errno.ENOTDIR):
            return None
        raise


def _ancestors(path):
    """'/a/b/c' -> ['/a', '/a/b', '/a/b/c']."""
    parts = [part for part in path.split('/') if part]
    return ['/' + '/'.join(parts[:i]) for i in range(1, len(parts) + 1)]


def _merge(into, items):
    for item in items:
        if item not in into:
            into.append(item)


def _empty_manifest():
    return {'format': FORMAT, 'about': ABOUT, 'dirs': [], 'files': [], 'links': {}, 'lock_dirs': [],
            'metrics_dirs': []}


def read_manifest(path):
    """The manifest at `path`, or None when there is none. Only a root-owned regular file in a directory only
    root may write is trusted: it names what root removes."""
    directory, name = os.path.split(path)
    try:
        dir_fd = _open_dir(directory)
    except OSError as exc:
        if exc.errno in (errno.ENOENT, errno.ENOTDIR):
            return None
        raise
    try:
        try:
            fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | getattr(os, 'O_CLOEXEC', 0),
                         dir_fd=dir_fd)
        except OSError as exc:
            if exc.errno == errno.ENOENT:
                return None
            raise Failure('%s: %s' % (path, exc.strerror))
        try:
            dst, st = os.fstat(dir_fd), os.fstat(fd)
            for what, info in (('directory ' + directory, dst), (path, st)):
                if info.st_uid != 0 or info.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
                    raise Failure('%s: owned by uid %d with mode %04o; the manifest is trusted only in a directory '
                                  'and file that root alone may write' % (what, info.st_uid,
                                                                          stat.S_IMODE(info.st_mode)))
            if not stat.S_ISREG(st.st_mode) or st.st_nlink != 1 or st.st_size > 4 * 1024 * 1024:
                raise Failure('%s: not a regular file of its own' % path)
            chunks = []
            while True:
                chunk = os.read(fd, 65536)
                if not chunk:
                    break
                chunks.append(chunk)
        finally:
            os.close(fd)
    finally:
        os.close(dir_fd)
    try:
        data = json.loads(b''.join(chunks).decode('utf-8'))
    except ValueError as exc:
        raise Failure('%s: not a manifest of this role: %s' % (path, exc))
    found = data.get('format') if isinstance(data, dict) else None
    if found != FORMAT:
        raise Failure('%s: not a manifest of this role (format %r)' % (path, found))
    manifest = _empty_manifest()
    for key in ('dirs', 'files', 'lock_dirs', 'metrics_dirs'):
        values = data.get(key) or []
        if not isinstance(values, list) or not all(_absolute(value) for value in values):
            raise Failure('%s: %s must be a list of absolute paths' % (path, key))
        manifest[key] = values
    links = data.get('links') or {}
    if not isinstance(links, dict) or not all(_absolute(key) for key in links):
        raise Failure('%s: links must map absolute paths to targets' % path)
    manifest['links'] = links
    return manifest


def _absolute(value):
    return isinstance(value, str) and value.startswith('/') and '\0' not in value


def write_manifest(path, manifest):
    """Replace the manifest in one rename (mode 0644, root's)."""
    directory, name = os.path.split(path)
    dir_fd = _open_dir(directory)
    temporary = '.%s.%d.tmp' % (name, os.getpid())
    try:
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | getattr(os, 'O_CLOEXEC', 0),
                     0o644, dir_fd=dir_fd)
        try:
            os.write(fd, (json.dumps(manifest, indent=1, sort_keys=True) + '\n').encode('utf-8'))
            os.fchmod(fd, 0o644)
            os.fsync(fd)
        finally:
            os.close(fd)
        os.rename(temporary, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
        os.fsync(dir_fd)
    except BaseException:
        try:
            os.unlink(temporary, dir_fd=dir_fd)
        except OSError:
            pass
        raise
    finally:
        os.close(dir_fd)


def legacy_manifest(request):
    """What an earlier version of the role (no manifest; it removed these directories whole) made: its
    directories as they are now, its files, and a metrics directory it marked as its own."""
    legacy = request.get('legacy') or {}
    policy = legacy.get('policy')
    st = _lstat(policy) if policy else None
    if st is None or not stat.S_ISREG(st.st_mode):
        return None
    manifest = _empty_manifest()
    for path in legacy.get('dirs') or []:
        st = _lstat(path)
        if st is not None and stat.S_ISDIR(st.st_mode):
            _merge(manifest['dirs'], [path])
    _merge(manifest['files'], legacy.get('files') or [])
    manifest['links'].update(legacy.get('links') or {})
    marker = legacy.get('metrics_marker')
    for path in request.get('metrics_dirs') or []:
        if marker and _lstat(os.path.join(path, marker)) is not None:
            _merge(manifest['dirs'], [path])
            _merge(manifest['files'], [os.path.join(path, marker)])
    return manifest


# --------------------------------------------------------------------------- plan


def _check_parent(parent, directory, option, nearest):
    """The role creates missing directories (parents too) as root: only where every existing directory on the way
    is root's and no account can replace what follows it (writable by root alone, or sticky, as /tmp, when the
    next directory is root's), and the one it creates them in is writable by root alone; else an account could put
    a link in the path between the role's check and its mkdir."""
    st = _lstat(parent)
    if st is None or not stat.S_ISDIR(st.st_mode):
        raise Failure('%s: invalid value %s: %s is not a directory' % (option, json.dumps(directory), parent))
    open_to_others = st.st_mode & 0o022
    if st.st_uid != 0 or open_to_others and (nearest or not st.st_mode & stat.S_ISVTX):
        raise Failure('%s: invalid value %s: the role would create it under %s (owner uid %d, mode %04o), which '
                      'others than root can change; create it first, or name a place under directories only root '
                      'writes' % (option, json.dumps(directory), parent, st.st_uid, stat.S_IMODE(st.st_mode)))


def plan(request):
    path = request['manifest']
    probed = {}
    for name in request.get('probe') or []:
        st = _lstat(name)
        probed[name] = None if st is None else {'uid': st.st_uid, 'mode': '%04o' % stat.S_IMODE(st.st_mode),
                                                'isdir': stat.S_ISDIR(st.st_mode)}
    existing = read_manifest(path)
    adopted = legacy_manifest(request) if existing is None else None
    manifest = existing or adopted or _empty_manifest()
    before = json.dumps(manifest, sort_keys=True) if existing is not None else None
    manifest = json.loads(json.dumps(manifest))
    if adopted is not None:
        manifest['about'] = ABOUT
    created = []
    option_of = dict((value, key) for key, value in (request.get('options') or {}).items() if value)
    for directory in request.get('dirs') or []:
        missing = False
        existing = ['/']
        for ancestor in _ancestors(directory):
            missing = missing or _lstat(ancestor) is None
            if not missing:
                existing.append(ancestor)
            elif ancestor not in manifest['dirs']:
                manifest['dirs'].append(ancestor)
                created.append(ancestor)
        if missing:
            for index, parent in enumerate(existing):
                _check_parent(parent, directory, option_of.get(directory, 'directory'), index == len(existing) - 1)
    _merge(manifest['files'], list(request.get('files') or []) + [path])
    manifest['links'].update(request.get('links') or {})
    _merge(manifest['lock_dirs'], request.get('lock_dirs') or [])
    _merge(manifest['metrics_dirs'], request.get('metrics_dirs') or [])
    changed = json.dumps(manifest, sort_keys=True) != before
    if changed and not request.get('check'):
        config_dir = os.path.dirname(path)
        for ancestor in _ancestors(config_dir):
            if _lstat(ancestor) is None:
                os.mkdir(ancestor, 0o755)
                os.chown(ancestor, 0, 0)
                os.chmod(ancestor, 0o755)
        write_manifest(path, manifest)
    return {'changed': changed, 'manifest': manifest, 'created_dirs': created,
            'adopted': adopted is not None, 'probed': probed}


# --------------------------------------------------------------------------- removal


class Remover(object):
    """Removes entries relative to their directory's fd, recording what went and what stayed."""

    def __init__(self, check, last=()):
        self.check = check
        self.removed = []
        self.kept = []
        # files removed only together with their directory (the manifest)
        self.last = set(last)

    def keep(self, path, reason):
        self.kept.append({'path': path, 'reason': reason})

    def entries(self, directory):
        """[(name, lstat)] of a directory, or None when it is not there."""
        try:
            dir_fd = _open_dir(directory)
        except OSError as exc:
            if exc.errno in (errno.ENOENT, errno.ENOTDIR):
                return None
            raise
        try:
            found = []
            for name in os.listdir(dir_fd):
                try:
                    found.append((name, os.lstat(name, dir_fd=dir_fd)))
                except OSError as exc:
                    if exc.errno != errno.ENOENT:
                        raise
            return found
        finally:
            os.close(dir_fd)

    def unlink(self, path, link_to=None, accept=None):
        """Remove a file or symbolic link (never a directory). `link_to`: only a link with that target.
        `accept(st)`: only what it approves."""
        directory, name = os.path.split(path)
        try:
            dir_fd = _open_dir(directory)
        except OSError as exc:
            if exc.errno in (errno.ENOENT, errno.ENOTDIR):
                return
            raise
        try:
            try:
                st = os.lstat(name, dir_fd=dir_fd)
            except OSError as exc:
                if exc.errno == errno.ENOENT:
                    return
                raise
            if stat.S_ISDIR(st.st_mode):
                self.keep(path, 'a directory where the role put a file')
                return
            if link_to is not None and not (stat.S_ISLNK(st.st_mode)
                                            and os.readlink(name, dir_fd=dir_fd) == link_to):
                self.keep(path, 'not the link to %s the role made' % link_to)
                return
            if accept is not None and not accept(st):
                return
            if not self.check:
                try:
                    os.unlink(name, dir_fd=dir_fd)
                except OSError as exc:
                    if exc.errno != errno.ENOENT:
                        raise
                    return
            self.removed.append(path)
        finally:
            os.close(dir_fd)

    def agent_files(self, directory, patterns, accept=None):
        for name, st in sorted(self.entries(directory) or []):
            if any(fnmatch.fnmatchcase(name, pattern) for pattern in patterns):
                if stat.S_ISDIR(st.st_mode):
                    self.keep(os.path.join(directory, name), 'a directory, not a file of the agent')
                else:
                    self.unlink(os.path.join(directory, name), accept=accept)

    def rmdir(self, path):
        """Remove a directory only when it is empty (in check mode: would be, after the removals)."""
        entries = self.entries(path)
        if entries is None:
            return
        gone = set(self.removed) | self.last
        left = sorted(name for name, _st in entries if os.path.join(path, name) not in gone)
        if left:
            self.keep(path, 'not empty: %d entries the role did not make (%s)' % (
                len(left), ', '.join(left[:5]) + (', ...' if len(left) > 5 else '')))
            return
        directory, name = os.path.split(path)
        st = _lstat(path)
        if st is None or not stat.S_ISDIR(st.st_mode):
            return
        for entry, _st in entries:
            if os.path.join(path, entry) in self.last:
                self.unlink(os.path.join(path, entry))
        if not self.check:
            dir_fd = _open_dir(directory)
            try:
                os.rmdir(name, dir_fd=dir_fd)
            except OSError as exc:
                if exc.errno in (errno.ENOTEMPTY, errno.EEXIST, errno.EBUSY):
                    self.keep(path, 'not empty: %s' % exc.strerror)
                    return
                if exc.errno != errno.ENOENT:
                    raise
                return
            finally:
                os.close(dir_fd)
        self.removed.append(path)

    def result(self):
        return {'changed': bool(self.removed), 'removed': self.removed, 'kept': self.kept}


def _root_file(st):
    return stat.S_ISREG(st.st_mode) and st.st_uid == 0 and st.st_nlink == 1


def tidy(request):
    remover = Remover(request.get('check'))
    lock_dir = request.get('lock_dir')
    if lock_dir:
        reset = bool(request.get('reset_locks'))
        remover.agent_files(lock_dir, LOCK_PATTERNS, accept=lambda st: reset or not _root_file(st))
    metrics_dir = request.get('metrics_dir')
    if metrics_dir:
        scheduled = set(request.get('scheduled_metrics') or [])

        def stale(name):
            return lambda st: (not _root_file(st) if name.endswith('.tmp')
                               else not _root_file(st) or name not in scheduled)

        for name, st in sorted(remover.entries(metrics_dir) or []):
            if any(fnmatch.fnmatchcase(name, pattern) for pattern in METRICS_PATTERNS):
                if stat.S_ISDIR(st.st_mode):
                    remover.keep(os.path.join(metrics_dir, name), 'a directory, not a file of the agent')
                else:
                    remover.unlink(os.path.join(metrics_dir, name), accept=stale(name))
    return remover.result()


def _sweep(remover, dirs):
    """rmdir each directory once empty: deepest first; among equals, the later-created first."""
    for _index, directory in sorted(enumerate(dirs), key=lambda item: (-item[1].count('/'), -item[0])):
        remover.rmdir(directory)


def absent(request):
    path = request['manifest']
    manifest = read_manifest(path)
    adopted = False
    if manifest is None:
        manifest = legacy_manifest(request)
        adopted = manifest is not None
        manifest = manifest or _empty_manifest()
    # The agent's files also where the current variables say, as state=absent has always done.
    _merge(manifest['lock_dirs'], request.get('lock_dirs') or [])
    _merge(manifest['metrics_dirs'], request.get('metrics_dirs') or [])
    remover = Remover(request.get('check'), last=[path])
    for link, target in sorted(manifest['links'].items()):
        remover.unlink(link, link_to=target)
    for name in manifest['files']:
        if name != path:
            remover.unlink(name)
    for directory in manifest['lock_dirs']:
        remover.agent_files(directory, LOCK_PATTERNS)
    for directory in manifest['metrics_dirs']:
        remover.agent_files(directory, METRICS_PATTERNS)
    dirs = manifest['dirs']
    # What would stay if the manifest went too (a dry sweep over what is left now).
    dry = Remover(True, last=[path])
    dry.removed = list(remover.removed)
    _sweep(dry, dirs)
    kept_dirs = set(item['path'] for item in dry.kept) & set(dirs)
    if not kept_dirs:
        _sweep(remover, dirs)
        if path not in remover.removed:
            remover.unlink(path)
    else:
        # Directories that stay because they hold what the role did not make stay in the manifest, so that
        # state=absent finishes the job once they are emptied; the manifest's directory (and those above it)
        # stay with it.
        keep = set(_ancestors(os.path.dirname(path))) & set(dirs)
        _sweep(remover, [directory for directory in dirs if directory not in keep])
        for directory in sorted(keep):
            remover.keep(directory, 'holds the manifest of the directories that stay')
        kept_paths = set(item['path'] for item in remover.kept)
        rest = _empty_manifest()
        rest.update(dirs=[directory for directory in dirs if directory in kept_paths], files=[path],
                    lock_dirs=manifest['lock_dirs'], metrics_dirs=manifest['metrics_dirs'])
        if rest != manifest:
            if not remover.check:
                write_manifest(path, rest)
            remover.removed.append('%s (rewritten: %d directories stay)' % (path, len(rest['dirs'])))
    result = remover.result()
    result['adopted'] = adopted
    return result


ACTIONS = {'plan': plan, 'tidy': tidy, 'absent': absent}


def main(argv):
    if len(argv) != 2 or argv[1] not in ACTIONS:
        sys.stdout.write(json.dumps({'failed': True, 'msg': 'usage: %s plan|tidy|absent' % argv[0]}) + '\n')
        return 2
    try:
        request = json.loads(os.environ.get(REQUEST_VAR) or '{}')
        if os.geteuid() != 0:
            raise Failure('runs as root (become: true)')
        result = ACTIONS[argv[1]](request)
    except Failure as exc:
        result = {'failed': True, 'msg': str(exc)}
    except OSError as exc:
        result = {'failed': True, 'msg': '%s: %s' % (exc.filename or argv[1], exc.strerror or exc)}
    sys.stdout.write(json.dumps(result, sort_keys=True) + '\n')
    return 1 if result.get('failed') else 0


if __name__ == '__main__':
    sys.exit(main(sys.argv))
