#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) gofleet.cache contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: go_cache_dir
short_description: Prepare a Go cache directory for an account and move the old cache into it
version_added: 0.1.0
description:
  - Makes O(path) the account's Go build cache (GOCACHE) or module cache (GOMODCACHE) directory with the owner, group
    and mode asked for, and optionally moves the account's old cache there (O(migrate=move)) or removes the old one
    (O(migrate=clean), caches being reproducible). The role P(gofleet.cache.go_environment#role) uses it for every
    account; it is usable on its own.
  - 'The path is walked from C(/) one directory at a time. Missing directories in root''s own space are made by root
    (mode 0755); from the first directory O(owner) owns (its home, its GOPATH) a process running as O(owner) goes on,
    following only its own links and making what is missing as O(owner), so that a new C(~/.cache) or
    C(GOPATH/pkg) never belongs to root. A directory of any other account on the way is refused, and so is a
    directory reached that belongs to another account. Owner, group and mode are set on the directory held open.'
  - On one mount the old cache is renamed into the new directory (atomic). Otherwise every file is copied, as
    O(migrate_owner), to a fresh temporary name and renamed into place, mode and times kept; in a module cache the
    C(.ziphash) files (what makes Go consider a version present) are copied last, and only by a run in which
    everything else was copied without an error, so a killed or failing run (a full disk) never leaves a version Go
    would trust half copied. A second run skips what is already there and goes on (resumable).
    Into an existing cache the copy merges (files already there are kept) and rewrites the C(@v/list) files it
    touched. The build cache may be moved freely (Go content-addresses it); a moved module cache costs build cache
    misses, never errors.
  - The old cache is removed only after every file is across, unit by unit as M(gofleet.cache.go_cache_prune) with
    C(state=absent) removes it, then its root directory. While Go processes of its owner run, O(if_busy) decides.
  - Nothing is moved when O(migrate_from) does not exist, is not a Go cache of that O(kind), or is not owned by
    O(migrate_owner) (RV(reason) says why), so a run after a completed move changes nothing, and a location an
    account pointed at another account's directory never gets that directory moved or wiped.
  - Symbolic links in the cache are copied as links, never followed; mount points inside it are not entered.
author:
  - gofleet.cache maintainers (@gofleet)
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - gofleet.cache.shared_hosts
attributes:
  check_mode:
    support: full
    details: Reports what would be created, renamed, copied and removed.
  diff_mode:
    support: none
  platform:
    platforms: posix
options:
  path:
    description:
      - The cache directory. Refused when it is C(/), a system directory or a home directory.
    type: path
    required: true
  kind:
    description:
      - V(build) for GOCACHE (its C(fuzz/) corpus moves with it), V(module) for GOMODCACHE.
      - Required with O(migrate_from). Without it the module only prepares the directory (for example GOPATH).
    type: str
    choices: [build, module]
  owner:
    description: Account that owns the directory. Defaults to the account the module runs as.
    type: str
  group:
    description:
      - Group of the directory. Defaults to the primary group of O(owner).
      - For a module cache shared by several accounts, a group they all belong to with O(mode=2775) and Go's
        C(-modcacherw) flag in GOFLAGS (see P(gofleet.cache.go_environment#role)).
    type: str
  mode:
    description: Permissions of the directory, as an octal string. V(0700) keeps a per-account cache private.
    type: str
    default: '0700'
  migrate_from:
    description: Where the account's cache was until now. Nothing happens when it is O(path) itself.
    type: path
  migrate_owner:
    description:
      - The account whose cache O(migrate_from) is; the move runs as that account. Defaults to O(owner).
      - The old location comes from the account's own settings, so it is moved or cleaned only when it is that
        account's Go cache (its root directory owned by it); anything else is left alone and RV(reason) says why.
      - For a directory several accounts share (O(owner=root)), name the account whose old cache moves in.
    type: str
  migrate:
    description:
      - V(move) the old cache's content into O(path), V(clean) remove the old cache, V(keep) leave it alone.
    type: str
    choices: [move, clean, keep]
    default: move
  if_busy:
    description: What to do when Go processes of the old cache's owner run before the old cache is removed, as for
      M(gofleet.cache.go_cache_prune).
    type: str
    choices: [wait, skip, proceed]
    default: wait
  busy_timeout:
    description: How long O(if_busy=wait) waits.
    type: str
    default: 15m
notes:
  - Run it while the account's builds are idle; builds that start meanwhile keep using the old location until the
    new one is configured.
seealso:
  - module: gofleet.cache.go_env
    description: Points the account's go env file at the new directory.
"""

EXAMPLES = r"""
- name: Move the build account's build cache to the data disk
  gofleet.cache.go_cache_dir:
    path: /data/go/builder/build
    kind: build
    owner: builder
    migrate_from: /home/builder/.cache/go-build
  become: true

- name: A module cache shared by the CI accounts; the old one of builder is dropped, not copied
  gofleet.cache.go_cache_dir:
    path: /data/go/mod
    kind: module
    owner: root
    group: gobuilders
    mode: '2775'
    migrate_from: /home/builder/go/pkg/mod
    migrate: clean
  become: true
"""

RETURN = r"""
created:
  description: Directories created (would be created, in check mode), parents first.
  returned: always
  type: list
  elements: str
  sample: [/data/go/builder, /data/go/builder/build]
action:
  description: What happened to the old cache. V(rename), V(copy), V(clean), or V(none).
  returned: always
  type: str
  sample: copy
files:
  description: Files copied (would be copied, in check mode).
  returned: always
  type: int
bytes:
  description: Bytes copied.
  returned: always
  type: int
already_there:
  description: Files already at O(path) (a resumed or merging copy).
  returned: always
  type: int
removed_bytes:
  description: Bytes removed from the old cache.
  returned: always
  type: int
reason:
  description: Why nothing (or not everything) was done, or null.
  returned: always
  type: str
  sample: nothing at the old location
errors:
  description: Paths that could not be copied or removed (at most 20; C(errors_total) counts all). The old cache
    stays while any file could not be copied.
  returned: always
  type: list
  elements: dict
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.gofleet.cache.plugins.module_utils import _cachedir
from ansible_collections.gofleet.cache.plugins.module_utils import _fs
from ansible_collections.gofleet.cache.plugins.module_utils import _privsep
from ansible_collections.gofleet.cache.plugins.module_utils import _prune
from ansible_collections.gofleet.cache.plugins.module_utils import _users
from ansible_collections.gofleet.cache.plugins.module_utils._units import OptionError


def main():
    module = AnsibleModule(
        argument_spec=dict(
            path=dict(type='path', required=True),
            kind=dict(type='str', choices=list(_cachedir.KINDS)),
            owner=dict(type='str'),
            group=dict(type='str'),
            mode=dict(type='str', default='0700'),
            migrate_from=dict(type='path'),
            migrate_owner=dict(type='str'),
            migrate=dict(type='str', choices=list(_cachedir.METHODS) + ['keep'], default='move'),
            if_busy=dict(type='str', choices=list(_prune.IF_BUSY), default='wait'),
            busy_timeout=dict(type='str', default='15m'),
        ),
        required_by={'migrate_from': ('kind',)},
        supports_check_mode=True,
    )
    params = module.params
    try:
        account = _users.current_account() if params['owner'] is None else _users.lookup(params['owner'], 'owner')
        old_owner = account if params['migrate_owner'] is None else _users.lookup(params['migrate_owner'],
                                                                                  'migrate_owner')
        gid = account.pw_gid if params['group'] is None else _privsep.group_id(params['group'])
        mode = _cachedir.parse_mode(params['mode'])
        _prune.Policy(if_busy=params['if_busy'], busy_timeout=params['busy_timeout'])  # validate before any change
        changed, created, result = _cachedir.prepare_and_migrate(
            params['path'], account, gid, mode, params['kind'], params['migrate_from'], params['migrate'], old_owner,
            module.check_mode, params['if_busy'], params['busy_timeout'])
    except OptionError as exc:
        module.fail_json(msg=str(exc), option=exc.option, value=exc.value)
    except OSError as exc:
        module.fail_json(msg='%s: %s' % (_fs.printable(exc.filename or params['path']), exc.strerror or exc))
    result['changed'] = changed
    result['created'] = created
    result['path'] = params['path']
    if result['errors_total']:
        module.warn('%d paths could not be moved or removed; see errors' % result['errors_total'])
    module.exit_json(**result)


if __name__ == '__main__':
    main()
