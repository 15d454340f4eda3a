#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) gofleet.cache contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: go_cache_prune
short_description: Prune Go build, module and fuzz caches by retention policy without breaking builds
version_added: 0.1.0
description:
  - Removes what a retention policy selects from an account's Go caches (O(user) with O(kinds)) or from one cache
    directory (O(path) with O(kind)), unit by unit as Go lays them out, so that a pruned cache still builds offline
    and passes C(go mod verify).
  - 'Policies are applied in this order: O(remove_incomplete), O(max_age), O(keep_versions), O(max_size),
    O(min_free). Protections win over every policy: O(keep_recent), O(keep), O(keep_referenced).'
  - The plan is made in full before anything is removed, so check mode reports exactly what the real run removes
    (unless Go uses the cache in between). A second run with the same policy changes nothing.
  - 'Units of deletion are the ones Go uses: a build cache entry (its C(-a) action file, then the C(-d) output it
    names once no kept entry names it), a module version (extracted tree, C(.zip), C(.ziphash), C(.mod), C(.info),
    C(.partial), all under the version''s C(.lock) as Go takes it, C(.ziphash) first, C(@v/list) rewritten), a fuzz
    corpus file. Each unit''s last use is checked again right before it is removed; a unit used since the scan stays.'
author:
  - gofleet.cache maintainers (@gofleet)
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - gofleet.cache.shared_hosts
attributes:
  check_mode:
    support: full
    details: Nothing is removed; the result reports what the real run would remove.
  diff_mode:
    support: full
    details: A before/after summary of each cache's size.
  platform:
    platforms: [posix, windows]
    details: Linux and other POSIX hosts run this Python module; Windows hosts run its PowerShell twin (go_cache_prune.ps1) with the
      same options and results, which has not run on Windows in this collection's CI.
options:
  user:
    description:
      - Account whose caches are pruned, located the way C(go) locates them for that account (see
        M(gofleet.cache.go_cache_facts)). Defaults to the account the module runs as.
      - Go processes of this account make its caches busy (see O(if_busy)).
      - Mutually exclusive with O(path).
    type: str
  kinds:
    description:
      - Which of the account's caches to prune. The default is only the build cache, because removing module
        versions means downloading them again; the module cache is pruned only when asked.
      - Mutually exclusive with O(path). Default V([build]).
    type: list
    elements: str
    choices: [build, module, fuzz]
  path:
    description:
      - One cache directory to prune, for example a build cache shared by CI runners. Needs O(kind).
      - Go processes of any account make it busy.
      - 'It must be a Go cache of that O(kind): a build cache''s C(README) starts with Go''s marker line (without a
        C(README), which Go writes again on its next use, the directory must hold Go''s 256 entry directories
        C(00) to C(ff) and nothing else but Go''s own files and C(fuzz)), a module cache has C(cache/download), a
        fuzz cache is the C(fuzz) directory of a build cache. An empty directory is an empty cache of either kind
        (Go lays it out on first use; nothing is removed). C(/), system directories and home directories are
        always refused.'
    type: path
  kind:
    description: What O(path) is.
    type: str
    choices: [build, module, fuzz]
  state:
    description:
      - V(present) applies the retention policy.
      - V(absent) empties each cache like C(go clean -cache), C(go clean -modcache) or C(go clean -fuzzcache).
        Retention options and protections do not apply; O(if_busy) does.
      - 'Where it differs from C(go clean): it removes unit by unit (a build entry, a module version under its
        C(.lock), a corpus file), so a unit Go holds or that could not be read whole stays and is reported in
        RV(kept); it waits for running builds (O(if_busy)), which C(go clean) does not, and never crosses a mount
        point or follows a link.'
      - 'C(go clean -cache) removes the 256 entry directories and C(log.txt); V(absent) with V(build) removes every
        entry, what else is in those directories, and C(log.txt), and keeps the directories themselves. Both keep
        the root, C(README), C(trim.txt), C(testexpire.txt) and C(fuzz/).'
      - 'C(go clean -modcache) makes every directory writable and removes the whole module cache, root included;
        V(absent) with V(module) keeps the root with its owner and mode and an empty C(cache/download), so the
        directory stays recognisably a module cache.'
      - C(go clean -fuzzcache) removes the C(fuzz) directory; V(absent) with V(fuzz) empties it and keeps it.
    type: str
    choices: [present, absent]
    default: present
  remove_incomplete:
    description:
      - Remove dead weight that Go never uses, that is build cache entries Go would count as a miss, outputs no
        other entry names, and broken or partial module downloads (a C(.partial) file, an extracted tree or zip
        without C(.ziphash), leftover temporary files). A module version with only C(.info) and C(.mod) is
        complete for the module graph and is never treated as incomplete.
      - 'Go counts a build entry as a hit when its C(-a) file reads as Go reads it (175 bytes, C(v1), hexadecimal
        IDs, its own action ID, size and time fields that are non-negative integers) and the output it names exists
        with the size the C(-a) records; an executable output is a directory whose only entry is a file of that
        size; an entry naming the empty output with size 0 is a hit even when that output is gone. Any other
        entry is a miss: Go rebuilds and overwrites it, so it is dead weight. A directory output whose only entry
        is a symbolic link is never followed and its entry is kept.'
    type: bool
    default: true
  max_age:
    description:
      - Remove units not used for longer than this duration (V(90m), V(12h), V(30d), V(2w)).
      - 'Build cache: Go ages every file on its own. An entry''s last use is its C(-a) file''s modification time,
        which Go moves forward on a hit only once it is an hour old, so it may lag the last use by up to
        an hour. O(max_age) therefore removes only entries older than the duration plus that hour, as Go''s own
        trim removes what is older than 5 days plus the hour: V(5d) removes the C(-a) files Go''s trim removes.
        Dead weight (see O(remove_incomplete)) ages like everything else. An output goes once no kept entry
        names it.'
      - 'In a cache shared by several accounts, Go can move a file''s modification time only as the file''s owner
        (C(os.Chtimes)): another account''s hits leave no trace, and age-based policies, like Go''s own trim, see
        the owner''s last use only.'
      - A module version's last use is the access time of its C(.ziphash), C(.mod) and C(.info) on mounts that
        update access times, else its download time (on C(noatime) mounts O(max_age) of the module cache means
        download age).
    type: str
  keep_versions:
    description: Module caches. Keep only the N newest versions (Go's semantic version order) of every module.
    type: int
  max_size:
    description:
      - After the policies above, remove least recently used units until each cache is at most this size
        (V(500MB), V(10GiB)). Every cache has its own cap.
    type: str
  min_free:
    description:
      - Last, remove least recently used units until the file system holding the cache has this much free space,
        as a size (V(20GB)) or a percentage of the file system (V(15%)).
      - A bare number other than V(0) is refused (V(15) would be 15 bytes, never what was meant).
    type: str
  keep_recent:
    description:
      - Never remove a unit that may have been used within this duration. It protects what running and recent
        builds use.
      - 'Build cache: an entry a build hit a minute ago can carry a modification time 59 minutes old (Go refreshes
        it only when it is an hour old), so the protection covers this duration plus that hour: the default V(1h)
        keeps every entry whose C(-a) file is less than two hours old, which includes everything a build in the
        last hour used.'
    type: str
    default: 1h
  keep:
    description:
      - Module path globs (C(fnmatch)) whose versions are never removed, for example V(example.com/internal/*); a
        pattern with C(@) matches C(module@version).
    type: list
    elements: str
    default: []
  keep_referenced:
    description:
      - C(go.sum) and C(go.mod) files, or directories searched for them (skipping C(.git), C(vendor), C(testdata)
        and C(module@version) directories), whose module versions are never removed.
      - A C(go.sum) line C(module version h1:...) keeps the whole version; a line C(module version/go.mod h1:...) keeps
        at least its C(.mod) and C(.info), which the module graph needs even when the source is never extracted. A
        C(go.mod) C(require) keeps the whole version.
      - The files are read with the rights of the module cache's owner, as its builds would read them; a file that
        owner cannot read protects nothing in its cache, and is listed in RV(errors). Each path must exist.
    type: list
    elements: path
    default: []
  if_busy:
    description:
      - What to do while Go toolchain processes (C(go), C(compile), C(link), C(asm), C(cgo), C(vet)...) of the cache's
        account, or of anyone for O(path), are running. Deleting entries under a running build breaks it
        (L(golang/go#31948,https://github.com/golang/go/issues/31948)).
      - V(wait) waits until none runs, up to O(busy_timeout) over the whole run, and keeps watching while it removes;
        what it could not remove in time is reported in RV(kept) as C(busy) and RV(busy).
      - V(skip) changes nothing in a busy cache. V(proceed) ignores running builds.
    type: str
    choices: [wait, skip, proceed]
    default: wait
  busy_timeout:
    description: How long O(if_busy=wait) waits for Go processes to end, over the whole run.
    type: str
    default: 15m
  go:
    description:
      - How to locate O(user)'s caches. V(auto) asks C(go env -json) as that account when a C(go) binary is found,
        V(none) resolves them without running Go, an absolute path names the C(go) binary.
    type: str
    default: auto
notes:
  - Symbolic links in a cache are never followed and mount points inside it never entered; files are removed
    relative to directory file descriptors.
  - A failure on one path (permissions, a file that vanished) is reported in RV(errors) and the run goes on.
  - Module versions are locked with C(flock) on their C(.lock) file, as the Go command does, so a concurrent
    C(go mod download) of the same version waits or makes the prune skip that version.
seealso:
  - module: gofleet.cache.go_cache_facts
  - name: golang/go#28835
    description: Go's open issue on removing module versions from the module cache.
    link: https://github.com/golang/go/issues/28835
"""

EXAMPLES = r"""
- name: Nightly - build cache entries unused for 2 weeks, then cap it at 20 GiB
  gofleet.cache.go_cache_prune:
    max_age: 2w
    max_size: 20GiB

- name: Pre-release disk emergency - free the disk to 15% on every CI account's build and module caches
  become: true
  gofleet.cache.go_cache_prune:
    user: "{{ item }}"
    kinds: [build, module]
    min_free: 15%
    keep_recent: 30m
  loop: [runner, builder]

- name: Module cache - keep what the CI projects reference and the 3 newest versions of everything else
  become: true
  gofleet.cache.go_cache_prune:
    user: runner
    kinds: [module]
    keep_versions: 3
    max_age: 90d
    keep_referenced:
      - /srv/ci/checkouts
    keep:
      - corp.example.com/*

- name: Shared runner build cache, previewed first
  gofleet.cache.go_cache_prune:
    path: /srv/ci/go-build
    kind: build
    max_size: 50GB
  check_mode: true
  register: preview

- name: Empty a user's fuzz corpus cache (like go clean -fuzzcache), waiting for running builds
  gofleet.cache.go_cache_prune:
    user: builder
    kinds: [fuzz]
    state: absent
    busy_timeout: 30m
"""

RETURN = r"""
removed_entries:
  description: Units removed (in check mode, that would be removed) in all caches.
  returned: always
  type: int
  sample: 1520
removed_bytes:
  description: Sum of the sizes of the removed units' files.
  returned: always
  type: int
  sample: 734003200
before_bytes:
  description: Size of the caches before the run.
  returned: always
  type: int
after_bytes:
  description: RV(before_bytes) minus RV(removed_bytes).
  returned: always
  type: int
kept:
  description:
    - Units left, by reason. V(recent) O(keep_recent), V(keep) O(keep), V(referenced) O(keep_referenced),
      V(retained) no policy selected it, V(used_since_scan) Go used it between the scan and its removal,
      V(locked) Go held its lock, V(busy) a running build stopped the run first, V(error) its removal failed,
      V(unreadable) part of it could not be read, so what it is stays unknown (it is never removed).
  returned: always
  type: dict
  sample: {recent: 210, retained: 9000, referenced: 12}
errors:
  description:
    - Paths whose removal failed without stopping the run (at most 20; RV(errors_total) counts all), and files
      under O(keep_referenced) that could not be read (with C(option)); the references they hold are unknown.
  returned: always
  type: list
  elements: dict
  sample: [{cache: /home/runner/go/pkg/mod, path: example.com/x@v1.0.0/a.go, error: Permission denied}]
errors_total:
  description: Number of failed paths.
  returned: always
  type: int
sample:
  description: At most 20 removed units (C(build entry <hash>), C(module <module>@<version>), C(fuzz <file>)).
  returned: always
  type: list
  elements: str
  sample: [module example.com/greet@v1.0.0, build entry 3f2a...]
busy:
  description: Caches where running Go processes stopped or prevented removal.
  returned: always
  type: list
  elements: str
missing:
  description: Caches of O(user) that do not exist yet, or that Go has no place for (C(reason)); nothing to prune.
  returned: always
  type: list
  elements: dict
skipped_caches:
  description:
    - Caches of O(user) left alone, with C(user), C(kind), C(path) and the C(reason). The account's settings name a
      directory it does not own or that is not a Go cache of that kind, or the account stopped the process acting
      for it. The module warns for each; the other caches are pruned.
  returned: always
  type: list
  elements: dict
  sample: [{user: builder, kind: build, path: /srv/shared/go-build, reason: 'owned by root, not by builder'}]
caches:
  description:
    - The same figures per cache, with C(path), C(real_path), C(kind), C(user), C(target_met) (whether O(max_size)
      and O(min_free) could be met) and C(busy) (the Go processes seen).
    - C(cleared_other), with O(state=absent), tells whether anything besides the units (stray files, lock files,
      empty directories) was or would be removed; it counts as a change.
  returned: always
  type: list
  elements: dict
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.gofleet.cache.plugins.module_utils import _prune, _prune_run
from ansible_collections.gofleet.cache.plugins.module_utils._units import OptionError

POLICY_OPTIONS = ('state', 'remove_incomplete', 'max_age', 'keep_versions', 'max_size', 'min_free', 'keep_recent',
                  'keep', 'keep_referenced', 'if_busy', 'busy_timeout')


def main():
    module = AnsibleModule(
        argument_spec=dict(
            user=dict(type='str'),
            kinds=dict(type='list', elements='str', choices=list(_prune.KINDS)),
            path=dict(type='path'),
            kind=dict(type='str', choices=list(_prune.KINDS)),
            state=dict(type='str', choices=list(_prune.STATES), default='present'),
            remove_incomplete=dict(type='bool', default=True),
            max_age=dict(type='str'),
            keep_versions=dict(type='int'),
            max_size=dict(type='str'),
            min_free=dict(type='str'),
            keep_recent=dict(type='str', default='1h'),
            keep=dict(type='list', elements='str', default=[]),
            keep_referenced=dict(type='list', elements='path', default=[]),
            if_busy=dict(type='str', choices=list(_prune.IF_BUSY), default='wait'),
            busy_timeout=dict(type='str', default='15m'),
            go=dict(type='str', default='auto'),
        ),
        mutually_exclusive=[('path', 'user'), ('path', 'kinds')],
        required_together=[('path', 'kind')],
        supports_check_mode=True,
    )
    params = module.params
    try:
        policy = _prune.Policy(**dict((name, params[name]) for name in POLICY_OPTIONS))
        targets, unlocated = _prune_run.resolve_targets(params['user'], params['kinds'], params['path'],
                                                        params['kind'], params['go'])
        result = _prune_run.run(targets, policy, check_mode=module.check_mode, unlocated=unlocated)
    except OptionError as exc:
        module.fail_json(msg=str(exc), option=exc.option, value=exc.value)
    for item in result['skipped_caches']:
        module.warn('%s cache %s of %s left alone: %s' % (item['kind'], item['path'], item['user'], item['reason']))
    if module._diff:
        result['diff'] = {'before': _prune_run.summary_lines(result, removed=False),
                          'after': _prune_run.summary_lines(result, removed=True)}
    if result['busy']:
        module.warn('Go builds were running: %d units left in %s' % (result['kept'].get('busy', 0),
                                                                     ', '.join(result['busy'])))
    module.exit_json(**result)


if __name__ == '__main__':
    main()
