# -*- coding: utf-8 -*-
# Copyright (c) gofleet.cache contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

"""Local accounts: which ones have caches, what environment they see, running a command as one."""

from __future__ import annotations

import os
import pwd
import signal
import subprocess

from ansible_collections.gofleet.cache.plugins.module_utils import _fs
from ansible_collections.gofleet.cache.plugins.module_utils import _privsep
from ansible_collections.gofleet.cache.plugins.module_utils._units import OptionError

# PATH for commands run on behalf of another account (what login(1) gives).
DEFAULT_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'
PAM_ENVIRONMENT = '/etc/environment'


def current_account():
    return pwd.getpwuid(os.geteuid())


def lookup(name, option='users'):
    """The passwd entry of an account name or numeric uid; OptionError if there is none."""
    try:
        if isinstance(name, int) or str(name).isdigit():
            return pwd.getpwuid(int(name))
        return pwd.getpwnam(str(name))
    except KeyError:
        raise OptionError(option, name, 'no such local account')


def accounts_with_home():
    """Every account whose home directory exists and belongs to it (what `users: '*'` means).

    System accounts point their home at shared directories they do not own
    (daemon: /usr/sbin, nobody: /nonexistent); those never hold Go caches.
    """
    seen = set()
    found = []
    for entry in sorted(pwd.getpwall(), key=lambda item: item.pw_uid):
        if entry.pw_name in seen or not entry.pw_dir or entry.pw_dir == '/':
            continue
        try:
            st = os.stat(entry.pw_dir)
        except OSError:
            continue
        if st.st_uid == entry.pw_uid:
            seen.add(entry.pw_name)
            found.append(entry)
    return found


def parse_pam_environment(text):
    """Variables of /etc/environment (pam_env's simple KEY=VALUE form, optional quotes)."""
    values = {}
    for line in (text or '').splitlines():
        line = line.strip()
        if not line or line.startswith('#'):
            continue
        if line.startswith('export '):
            line = line[len('export '):].lstrip()
        key, sep, value = line.partition('=')
        if not sep or not key.strip():
            continue
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in '"\'':
            value = value[1:-1]
        values[key.strip()] = value
    return values


def account_environment(account):
    """The environment a non-interactive session of `account` starts with.

    For the account the module runs as this is its real environment.  For
    any other account it is what pam gives every session (/etc/environment)
    plus HOME, USER, LOGNAME, SHELL and a default PATH; shell profile scripts
    are not sourced because cron, systemd units and CI runners do not run them.
    """
    if account.pw_uid == os.geteuid():
        return dict(os.environ)
    env = {'PATH': DEFAULT_PATH}
    env.update(parse_pam_environment(_fs.read_text_file(PAM_ENVIRONMENT)))
    env.update(HOME=account.pw_dir, USER=account.pw_name, LOGNAME=account.pw_name,
               SHELL=account.pw_shell or '/bin/sh')
    return env


def _drop_privileges(account):
    identity = _privsep.Identity.of_account(account)

    def demote():
        os.setgroups(list(identity.groups))
        os.setresgid(identity.gid, identity.gid, identity.gid)
        os.setresuid(identity.uid, identity.uid, identity.uid)
    return demote


def run_as(account, argv, env, timeout=60, cwd='/'):
    """Run argv as `account` with exactly `env`; returns (rc, stdout, stderr) as text.

    Root switches to the account; any other caller can only run as itself.
    """
    preexec = None
    if account.pw_uid != os.geteuid():
        if os.geteuid() != 0:
            raise PermissionError('running as %s needs root (the module runs as %s)'
                                  % (account.pw_name, current_account().pw_name))
        preexec = _drop_privileges(account)
    # The engine runs outside Ansible too (the on-host agent): no AnsibleModule.run_command here.
    # Its own session: on a timeout the whole group goes, whatever the account did to it meanwhile.
    proc = subprocess.Popen(  # pylint: disable=ansible-bad-function
        argv, env=env, cwd=cwd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        preexec_fn=preexec, close_fds=True, start_new_session=True)
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        for kill in (lambda: os.killpg(proc.pid, signal.SIGKILL), proc.kill):
            try:
                kill()
            except OSError:
                pass
        # Not communicate(): the account may hold the pipes open (through /proc) long after the kill.
        proc.stdout.close()
        proc.stderr.close()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            pass
        return -1, '', 'timed out after %ss' % timeout
    return proc.returncode, out.decode('utf-8', 'replace'), err.decode('utf-8', 'replace')
