#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) gofleet.cache contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: go_env
short_description: Manage a user's go env file, the file C(go env -w) writes, without Go installed
version_added: 0.1.0
description:
  - Sets and removes variables in an account's go env file exactly as C(go env -w) and C(go env -u) do. The file
    written is byte for byte what Go writes for the same values; keys the task does not name stay as they are.
  - 'The file is found like Go finds it for that account: C($GOENV) in its environment, else
    C($XDG_CONFIG_HOME/go/env), else C(~/.config/go/env) (C(%AppData%\go\env) on Windows). O(path) names a file
    directly, for example C($GOROOT/go.env) of a toolchain.'
  - 'Values are checked as C(go env -w) checks them, and stricter where Go''s check lets a broken value through:
    C(GOENV) and C(GODEBUG) live only in the OS environment; C(GOROOT), C(GOVERSION), C(GOWORK), C(GOTOOLDIR),
    C(GOEXE), C(GOHOSTOS), C(GOHOSTARCH), C(GOMOD), C(GOTELEMETRY) are computed by Go; unknown names, newlines and
    NUL are refused; C(GOCACHE), C(GOMODCACHE), C(GOPATH) and C(GOTMPDIR) must be absolute (Go accepts a relative
    C(GOCACHE) and then every build fails); C(GOCACHE=off) is refused (every build fails since Go 1.12).'
  - The file is replaced atomically (a temporary file renamed over it), written with LF line ends only (Go keeps a
    CR in the value), and owned by the account; parent directories it creates belong to the account too.
  - Go's precedence is the OS environment first, then this file, then C($GOROOT/go.env). The module warns when a
    non-empty environment variable of the account would override a value it writes (as C(go env -w) does).
author:
  - gofleet.cache maintainers (@gofleet)
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - gofleet.cache.shared_hosts
attributes:
  check_mode:
    support: full
    details: Reports the change without writing.
  diff_mode:
    support: full
    details: The file before and after.
  platform:
    platforms: [posix, windows]
    details: Linux and other POSIX hosts run this Python module; Windows hosts run its PowerShell twin (go_env.ps1) with the
      same options and results, which has not run on Windows in this collection's CI.
seealso:
  - module: gofleet.cache.go_cache_facts
    description: Reports each account's effective Go variables and which source each came from.
  - name: go env
    description: Go's documentation of C(go env -w) and the go env file.
    link: https://pkg.go.dev/cmd/go#hdr-Print_Go_environment_information
options:
  user:
    description:
      - Account whose go env file is managed, and who owns the file written. Defaults to the account the module
        runs as. Managing another account's file needs root (C(become)); the file operations then run with that
        account's rights, so links it planted in its home are never followed with root's.
    type: str
  path:
    description:
      - Go env file to manage instead of the account's own, for example C(/usr/local/go/go.env) (the toolchain's
        defaults, below the user file in Go's precedence; a Go upgrade replaces it).
    type: path
  vars:
    description:
      - Variables to set, as C(NAME=value) strings. A null value removes the variable.
      - With O(state=absent), the variables named are removed whatever their value.
      - Numbers are written as they are; quote other non-string values.
    type: dict
    default: {}
  state:
    description:
      - V(present) sets (and, for null values, removes) the variables in O(vars).
      - V(absent) removes the variables in O(vars); with no O(vars) it removes the whole file.
    type: str
    choices: [present, absent]
    default: present
notes:
  - A variable set in the OS environment (C(/etc/environment), a profile script, a systemd unit, a CI runner) wins
    over the go env file. Use M(gofleet.cache.go_cache_facts) or C(go env) as the account to see the effective value.
"""

EXAMPLES = r"""
- name: Point the build account's caches at the data disk
  gofleet.cache.go_env:
    user: builder
    vars:
      GOCACHE: /data/go/builder/build
      GOMODCACHE: /data/go/builder/mod
  become: true

- name: Use the corporate module proxy; internal modules skip the public checksum database
  gofleet.cache.go_env:
    user: builder
    vars:
      GOPROXY: https://goproxy.corp.example.com,direct
      GONOSUMDB: git.corp.example.com
      GOPRIVATE: git.corp.example.com
  become: true

- name: Stop setting GOFLAGS (like go env -u GOFLAGS)
  gofleet.cache.go_env:
    user: builder
    vars:
      GOFLAGS: null
  become: true

- name: Remove the account's go env file entirely
  gofleet.cache.go_env:
    user: builder
    state: absent
  become: true

- name: Default every account of one toolchain to the corporate proxy ($GOROOT/go.env)
  gofleet.cache.go_env:
    path: /usr/local/go/go.env
    vars:
      GOPROXY: https://goproxy.corp.example.com,direct
  become: true
"""

RETURN = r"""
path:
  description: The go env file managed.
  returned: success
  type: str
  sample: /home/builder/.config/go/env
user:
  description: The account that owns the file.
  returned: success
  type: str
  sample: builder
vars:
  description: Every variable in the file after the task (in check mode, what the file would hold).
  returned: success
  type: dict
  sample: {GOCACHE: /data/go/builder/build, GOPROXY: 'https://goproxy.corp.example.com,direct'}
set:
  description: Names whose value the task set (changed or not).
  returned: success
  type: list
  elements: str
  sample: [GOCACHE, GOPROXY]
removed:
  description: Names the task removed (present before or not).
  returned: success
  type: list
  elements: str
  sample: [GOFLAGS]
overridden:
  description: Variables written to the file that a non-empty OS environment variable of the account overrides.
  returned: success
  type: list
  elements: dict
  sample: [{var: GOCACHE, value: /data/go/builder/build, env_value: /tmp/gocache}]
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.gofleet.cache.plugins.module_utils import _fs
from ansible_collections.gofleet.cache.plugins.module_utils import _goenv
from ansible_collections.gofleet.cache.plugins.module_utils import _users
from ansible_collections.gofleet.cache.plugins.module_utils._units import OptionError


def main():
    module = AnsibleModule(
        argument_spec=dict(
            user=dict(type='str'),
            path=dict(type='path'),
            vars=dict(type='dict', default={}),
            state=dict(type='str', choices=['present', 'absent'], default='present'),
        ),
        supports_check_mode=True,
    )
    params = module.params
    path = params['path']
    try:
        account = _users.current_account() if params['user'] is None else _users.lookup(params['user'], 'user')
        environment = _users.account_environment(account)
        path, before, after, added, removed, changed = _goenv.edit_file(
            account, environment, params['vars'], params['state'], params['path'], module.check_mode)
    except OptionError as exc:
        module.fail_json(msg=str(exc), option=exc.option, value=exc.value)
    except OSError as exc:
        module.fail_json(msg='%s: %s' % (_fs.printable(exc.filename or path), exc.strerror or exc))

    overridden = []
    for name, value in sorted(added.items()):
        env_value = environment.get(name, '')
        if env_value and env_value != value:
            overridden.append({'var': name, 'value': value, 'env_value': env_value})
            module.warn('%s=%s written to %s does not take effect for %s: the OS environment sets %s=%s, which wins'
                        % (name, value, path, account.pw_name, name, env_value))
    result = {'changed': changed, 'path': path, 'user': account.pw_name, 'set': sorted(added),
              'removed': removed, 'overridden': overridden,
              'vars': _goenv.parse_env_file(after)}
    if module._diff:
        result['diff'] = {'before': before or '', 'after': after or '',
                          'before_header': path, 'after_header': path}
    module.exit_json(**result)


if __name__ == '__main__':
    main()
