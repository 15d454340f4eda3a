#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) gofleet.cache contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: go_cache_facts
short_description: Gather facts about Go build, module and fuzz caches
version_added: 0.1.0
description:
  - Finds where each account's Go caches really are, and why (an environment variable, the go env file,
    C($GOROOT/go.env) or Go's default), the way the C(go) command resolves them.
  - Scans each cache once (C(stat) of every file, and in build caches the 175-byte line of each action file with
    O(link_entries)) and reports its size, files, entries, age distribution, module versions,
    incomplete downloads, the file system's free space and inodes, and the effective Go environment with conflicts
    between its sources.
  - Gathering never changes access times, which on C(relatime) mounts are the only record of when a module version
    was last used, and never writes anything. The result stays small however big the caches are.
  - Returns RV(ansible_facts.go_cache).
author:
  - gofleet.cache maintainers (@gofleet)
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - gofleet.cache.shared_hosts
  - ansible.builtin.action_common_attributes.facts
attributes:
  check_mode:
    support: full
    details: The module never changes anything; check mode returns the same facts.
  diff_mode:
    support: none
  facts:
    support: full
  platform:
    platforms: [posix, windows]
    details: Linux and other POSIX hosts run this Python module; Windows hosts run its PowerShell twin (go_cache_facts.ps1) with the
      same options and results, which has not run on Windows in this collection's CI.
options:
  users:
    description:
      - Accounts whose caches and Go environment are reported.
      - Defaults to the account the module runs as.
      - V('*') means every local account whose home directory exists and is owned by it.
      - For an account other than the one the module runs as, the environment is the one a non-interactive session
        gets (C(/etc/environment), C(HOME), a default C(PATH)); shell profile scripts are not sourced. Reading
        other accounts' caches and running C(go env) as them needs root.
    type: list
    elements: str
  caches:
    description:
      - Caches outside the accounts' default locations, for example a build cache shared by CI runners.
    type: list
    elements: dict
    default: []
    suboptions:
      path:
        description: Absolute path of the cache root (for V(fuzz), the C(fuzz) directory itself).
        type: path
        required: true
      kind:
        description: What the directory is.
        type: str
        required: true
        choices: [build, module, fuzz]
  kinds:
    description:
      - Which caches to report for each account. V(build) is GOCACHE, V(module) is GOMODCACHE,
        V(fuzz) is the fuzz corpus under GOCACHE/fuzz (Go never trims it).
    type: list
    elements: str
    choices: [build, module, fuzz]
    default: [build, module, fuzz]
  go:
    description:
      - V(auto) finds a C(go) binary in the account's C(PATH) or the usual install places and, when there is one, asks
        C(go env -json) as that account; Go's answer wins over the computed one and any difference is reported.
      - An absolute path uses that binary. V(none) never runs Go.
      - The query pins C(GOTOOLCHAIN=local) and keeps Go's telemetry from writing into the account's home, so it
        neither downloads nor writes anything.
    type: str
    default: auto
  age_buckets:
    description:
      - Durations (V(90m), V(12h), V(30d), V(2w)) for which to count the entries and bytes not used for longer.
        The counts are cumulative, so each bucket is what O(gofleet.cache.go_cache_prune#module:max_age) with that
        duration would consider.
      - Build caches count an entry in a bucket only when its C(-a) file is older than the duration plus Go's
        one-hour refresh interval (Go moves a file's modification time forward only when it is an hour old), as
        that prune decides.
    type: list
    elements: str
    default: [7d, 30d, 90d]
  top:
    description: How many of the largest modules to list per module cache.
    type: int
    default: 10
  link_entries:
    description:
      - Build caches. V(true) reads each C(-a) action file (175 bytes, with C(O_NOATIME)) to join it with the C(-d)
        output it names, which gives exact entries (the ones Go would count as hits), orphans, and age buckets
        equal to what a C(max_age) prune frees.
      - V(false) scans with C(stat) only, like C(du). Entries are counted as C(-a) files, every file is aged by its
        own modification time, and RV(ansible_facts.go_cache.caches[].orphans) is null. On a cold cache of a
        million files this is several times faster, because the reads are random I/O.
    type: bool
    default: true
notes:
  - Build cache entries are Go's C(-a) action files; each names a C(-d) output, which several entries may share
    (one per Go version, and a third or more of a real cache's entries name the one empty output). Go ages every file on
    its own, so an entry's last use is its C(-a) file's modification time, which Go moves forward on a hit only
    once it is an hour old. A shared output counts with the most recently used entry naming it.
  - An entry counts only when Go would count it as a hit (see
    O(gofleet.cache.go_cache_prune#module:remove_incomplete)); the others are
    RV(ansible_facts.go_cache.caches[].orphans).
  - A build cache whose C(README) was deleted (Go writes it again on its next use) is still recognised by its 256
    entry directories; a directory with anything else at the top is not a build cache.
  - 'Empty settings are Go''s: an empty environment variable is as good as unset, C(go env -w GOCACHE=) means the
    default, an empty key in the go env file hides C($GOROOT/go.env)''s value (Go does not read it then), a
    GOMODCACHE derived from GOPATH is cleaned as Go cleans paths (GOPATH itself is not), and GOENV is empty when
    the go env file is off, as C(go env) prints them.'
  - A module version is complete when its extracted directory and C(.ziphash) exist and no C(.partial) does, as Go
    decides. A version with only C(.info) and C(.mod) was fetched for the module graph and is reported as
    C(download_only), not as broken.
  - The last use of a module version is the access time of its C(.ziphash), C(.mod) and C(.info) files when the
    mount updates access times (C(relatime), C(strictatime)), else their download time; RV(ansible_facts.go_cache.caches[].age_basis)
    says which.
  - Symbolic links inside a cache are never followed and other file systems mounted inside it are never entered;
    both are counted.
seealso:
  - module: gofleet.cache.go_cache_prune
  - name: Go build cache
    description: Go's documentation of GOCACHE.
    link: https://pkg.go.dev/cmd/go#hdr-Build_and_test_caching
  - name: Module cache
    description: Go's reference for GOMODCACHE.
    link: https://go.dev/ref/mod#module-cache
"""

EXAMPLES = r"""
- name: Gather the caches of the account Ansible connects as
  gofleet.cache.go_cache_facts:

- name: Gather every account's caches and a shared runner cache
  become: true
  gofleet.cache.go_cache_facts:
    users: '*'
    caches:
      - path: /srv/ci/go-build
        kind: build
      - path: /srv/ci/gomod
        kind: module

- name: Only the module caches of two CI accounts, with a longer age scale and the 5 largest modules
  become: true
  gofleet.cache.go_cache_facts:
    users: [runner, builder]
    kinds: [module]
    age_buckets: [30d, 90d, 180d]
    top: 5

- name: Show how much of each cache has not been used for 30 days
  ansible.builtin.debug:
    msg: >-
      {{ item.user }} {{ item.kind }} {{ item.path }}:
      {{ item.bytes | human_readable }} in all,
      {{ (item.age_buckets | selectattr('older_than', '==', '30d') | first).bytes | default(0) | human_readable }} unused for 30 days
  loop: "{{ ansible_facts.go_cache.caches }}"

- name: Fail when an environment variable hides a go env file value
  ansible.builtin.assert:
    that: ansible_facts.go_cache.conflicts | length == 0
    fail_msg: "{{ ansible_facts.go_cache.conflicts }}"
"""

RETURN = r"""
ansible_facts:
  description: Facts added to the host.
  returned: always
  type: complex
  contains:
    go_cache:
      description: Go cache facts.
      returned: always
      type: complex
      contains:
        caches:
          description: One item per account and kind, then one per O(caches) item.
          returned: always
          type: list
          elements: dict
          contains:
            user:
              description: Account the cache belongs to (for O(caches), the owner of the directory).
              type: str
              sample: builder
            kind:
              description: V(build), V(module) or V(fuzz).
              type: str
              sample: build
            path:
              description: Where Go looks for the cache.
              type: str
              sample: /home/builder/.cache/go-build
            real_path:
              description: O(caches[].path) with symbolic links resolved.
              type: str
              sample: /data/go-build
            source:
              description:
                - Why the cache is there. V(env) an environment variable, V(goenv_file) the go env file,
                  V(goroot_env) C($GOROOT/go.env), V(default) Go's default, V(explicit) O(caches),
                  V(go_env_json) C(go env -json) disagreed with the computed location.
                - For the module cache without GOMODCACHE set, the source of GOPATH.
              type: str
              sample: default
            exists:
              description: Whether the directory exists.
              type: bool
            valid:
              description:
                - Whether the directory is a Go cache of that kind (README marker or, without a README, Go's 256
                  entry directories; C(cache/download) layout). An empty directory is a valid, empty cache (Go lays
                  it out on first use).
              type: bool
            owner:
              description: Owner of the cache root.
              type: str
            skipped:
              description:
                - Why the cache was not scanned although it exists, or null.
                - An account's settings named a directory the account does not own (another account's, or root's).
                  It is not credited to the account, and M(gofleet.cache.go_cache_prune) leaves it alone. Audit a
                  shared cache through O(caches).
              type: str
              sample: 'owned by root, not by builder: an account is only credited with (and pruned in) caches it owns; list
                a shared cache under caches/path'
            mode:
              description: Permissions of the cache root.
              type: str
              sample: '0700'
            bytes:
              description: Sum of the sizes of the regular files in the cache (a build cache excludes C(fuzz/)).
              type: int
            disk_bytes:
              description: Space allocated to those files.
              type: int
            files:
              description: Number of regular files.
              type: int
            entries:
              description:
                - Build cache entries Go would count as hits (the output exists with the size the C(-a) records);
                  complete module versions; fuzz corpus files.
              type: int
            oldest_used:
              description: Last use of the least recently used entry, ISO-8601 UTC; C(oldest_used_age_s) is its age in seconds.
              type: str
              sample: '2026-08-01T10:00:00Z'
            newest_used:
              description: Last use of the most recently used entry; C(newest_used_age_s) is its age in seconds.
              type: str
            age_buckets:
              description: Entries and bytes not used for longer than each of O(age_buckets) (cumulative).
              type: list
              elements: dict
              sample: [{older_than: 30d, older_than_s: 2592000, entries: 120, bytes: 52428800}]
            filesystem:
              description: The file system holding the cache.
              type: dict
              sample:
                mount: /
                fstype: ext4
                size_bytes: 270553174016
                free_bytes: 84718682112
                inodes_total: 16777216
                inodes_free: 16333531
                inodes_used_pct: 2.6
                atime_mode: relatime
                atime_updates: true
            last_trim:
              description: Build caches. When Go last trimmed the cache (C(trim.txt)); C(last_trim_age_s) in seconds.
              type: str
            entries_linked:
              description: Build caches. Whether O(link_entries) joined each action with its output.
              type: bool
            orphans:
              description:
                - Build caches. Dead weight Go will never use. C(actions_without_output) counts C(-a) files Go would
                  miss (content Go does not parse, the C(-d) they name gone or of another size than recorded);
                  C(outputs_without_action) counts C(-d) outputs no hit names; C(bytes) is their size. Null when
                  O(link_entries=false).
              type: dict
              sample: {actions_without_output: 2, outputs_without_action: 5, bytes: 81920}
            modules:
              description: Module caches. Distinct module paths (unescaped) with at least one version.
              type: int
            versions:
              description: Module caches. Complete plus download-only versions.
              type: int
            complete:
              description: Module caches. Versions Go considers present (extracted, C(.ziphash), no C(.partial)).
              type: int
            download_only:
              description: Module caches. Versions with C(.mod) but no extracted tree (module graph only, or a zip not yet extracted).
              type: int
            graph_only:
              description: Module caches. Of RV(ansible_facts.go_cache.caches[].download_only), those without a zip, fetched only for the module graph.
              type: int
            incomplete:
              description: Module caches. Partial or broken downloads; C(incomplete_bytes) is their size with leftover temporary files.
              type: int
            toolchains:
              description: Module caches. Versions of C(golang.org/toolchain) (Go toolchains downloaded by GOTOOLCHAIN).
              type: int
            top_modules:
              description: Module caches. The O(top) largest modules.
              type: list
              elements: dict
              sample: [{module: golang.org/toolchain, versions: 2, bytes: 530000000}]
            age_basis:
              description: Module caches. V(atime) when the mount updates access times, else V(mtime) (download time).
              type: str
            errors:
              description: Paths that could not be read (at most 20; C(errors_total) counts all).
              type: list
              elements: dict
        env:
          description:
            - Per account, every Go variable that governs caches and downloads (GOCACHE, GOMODCACHE, GOPATH, GOENV,
              GOPROXY, GOSUMDB, GONOSUMDB, GONOPROXY, GOPRIVATE, GOFLAGS, GOTOOLCHAIN) with its effective C(value), its
              C(source) and the values it C(shadowed) in lower-precedence sources.
          returned: always
          type: dict
          sample:
            builder:
              GOCACHE: {value: /data/go-build, source: env, shadowed: [{source: goenv_file, value: /srv/go-build}]}
              GOPROXY: {value: 'https://proxy.golang.org,direct', source: goroot_env, shadowed: []}
        accounts:
          description:
            - Per account, how its environment was read. C(uid), C(home), C(go_binary) (the go found, if any),
              C(goroot), C(go_env_json) (whether C(go env -json) was asked and answered), C(go_env_json_disagreements)
              (variables where Go's answer differed from the computed one) and C(errors).
          returned: always
          type: dict
          sample:
            builder: {uid: 1001, home: /home/builder, go_binary: /usr/local/go/bin/go, goroot: /usr/local/go,
                      go_env_json: true, go_env_json_disagreements: [], errors: []}
        conflicts:
          description: Variables whose non-empty environment value hides a different go env file value.
          returned: always
          type: list
          elements: dict
          sample: [{user: builder, var: GOCACHE, value: /data/go-build, source: env, shadowed_source: goenv_file,
                    shadowed_value: /srv/go-build}]
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.gofleet.cache.plugins.module_utils._facts import KINDS, gather
from ansible_collections.gofleet.cache.plugins.module_utils._units import OptionError


def main():
    module = AnsibleModule(
        argument_spec=dict(
            users=dict(type='list', elements='str'),
            caches=dict(type='list', elements='dict', default=[], options=dict(
                path=dict(type='path', required=True),
                kind=dict(type='str', required=True, choices=list(KINDS)),
            )),
            kinds=dict(type='list', elements='str', choices=list(KINDS), default=list(KINDS)),
            go=dict(type='str', default='auto'),
            age_buckets=dict(type='list', elements='str', default=['7d', '30d', '90d']),
            top=dict(type='int', default=10),
            link_entries=dict(type='bool', default=True),
        ),
        supports_check_mode=True,
    )
    params = module.params
    try:
        facts = gather(users=params['users'], caches=params['caches'], kinds=params['kinds'], go=params['go'],
                       age_buckets=params['age_buckets'], top=params['top'], link_entries=params['link_entries'])
    except OptionError as exc:
        module.fail_json(msg=str(exc), option=exc.option, value=exc.value)
    module.exit_json(changed=False, ansible_facts={'go_cache': facts})


if __name__ == '__main__':
    main()
