# -*- coding: utf-8 -*-
# Copyright: gofleet.cache contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""What gofleet.cache.go_environment left on the instance, and what Go sees as each account.

converge.yml applied the role for alice and bob with the profile, pam and go_env_file scopes,
GOCACHE=/data/go/{user}/build (a tmpfs: the old cache was copied across file systems) and
GOMODCACHE=/srv/go/{user}/mod (same file system as /home: renamed), migrate=move.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import time

import pytest

GO = '/usr/local/go/bin/go'
USERS = ('alice', 'bob')
CHECKED = ('GOCACHE', 'GOMODCACHE', 'GOPROXY', 'GOSUMDB', 'GOFLAGS')


def wanted(user):
    return {'GOCACHE': '/data/go/%s/build' % user, 'GOMODCACHE': '/srv/go/%s/mod' % user,
            'GOPROXY': 'file:///srv/proxy', 'GOSUMDB': 'off', 'GOFLAGS': '-mod=mod'}


def go_env_json(host, command):
    result = host.run(command)
    assert result.rc == 0, result.stderr
    return json.loads(result.stdout)


@pytest.mark.parametrize('user', USERS)
def test_go_env_file_is_what_go_env_w_writes(host, user):
    env_file = host.file('/home/%s/.config/go/env' % user)
    assert env_file.user == user
    assert env_file.mode == 0o644
    expected = ''.join('%s=%s\n' % item for item in sorted(wanted(user).items()))
    assert env_file.content_string == expected


def test_profile_script(host):
    script = host.file('/etc/profile.d/gofleet-go-environment.sh')
    assert script.user == 'root' and script.mode == 0o644
    content = script.content_string
    assert "export GOPROXY=file:///srv/proxy" in content
    assert "export GOSUMDB=off" in content
    for user in USERS:
        assert "export GOCACHE=/data/go/%s/build" % user in content
    assert host.run('sh -n /etc/profile.d/gofleet-go-environment.sh').rc == 0


def test_pam_environment_holds_only_shared_values(host):
    lines = host.file('/etc/environment').content_string.splitlines()
    assert 'GOPROXY=file:///srv/proxy' in lines
    assert 'GOSUMDB=off' in lines
    assert 'GOFLAGS=-mod=mod' in lines
    assert not [line for line in lines if line.startswith(('GOCACHE', 'GOMODCACHE'))]


@pytest.mark.parametrize('user', USERS)
def test_cache_directories_owner_and_mode(host, user):
    for path in ('/data/go/%s/build' % user, '/srv/go/%s/mod' % user):
        directory = host.file(path)
        assert directory.is_directory
        assert directory.user == user and directory.group == user
        assert directory.mode == 0o700
    for parent in ('/data/go', '/srv/go'):
        assert host.file(parent).user == 'root'


@pytest.mark.parametrize('user', USERS)
def test_old_caches_moved_whole(host, user):
    assert not host.file('/home/%s/.cache/go-build' % user).exists
    assert not host.file('/home/%s/go/pkg/mod' % user).exists
    before = dict((line.split()[0], line.split()[1:]) for line in
                  host.file('/root/caches-before.txt').content_string.splitlines())
    actions = host.run("find /data/go/%s/build -type f -name '*-a' | wc -l" % user).stdout.strip()
    ziphashes = host.run("find /srv/go/%s/mod/cache/download -name '*.ziphash' | wc -l" % user).stdout.strip()
    assert [actions, ziphashes] == before[user]
    assert int(actions) > 100


@pytest.mark.parametrize('user', USERS)
def test_login_shell_sees_the_values(host, user):
    reported = go_env_json(host, "su -l %s -c '%s env -json %s'" % (user, GO, ' '.join(CHECKED)))
    assert reported == wanted(user)


@pytest.mark.parametrize('user', USERS)
def test_non_login_shell_sees_the_values(host, user):
    # No profile, no pam: only the go env file reaches this shell.
    command = ("runuser -u %s -- env -i HOME=/home/%s PATH=/usr/bin:/bin sh -c '%s env -json %s'"
               % (user, user, GO, ' '.join(CHECKED)))
    assert go_env_json(host, command) == wanted(user)


def test_cron_jobs_see_the_values(host):
    """A real cron job per account (cron reads /etc/environment through pam_env, never a profile)."""
    outputs = dict((user, '/tmp/cron-go-env-%s.json' % user) for user in USERS)
    host.run('rm -f %s' % ' '.join(outputs.values()))
    job = ''.join('* * * * * %s %s env -json %s > %s 2>&1\n' % (user, GO, ' '.join(CHECKED), outputs[user])
                  for user in USERS)
    host.run("printf '%%s' '%s' > /etc/cron.d/gofleet-go-env-probe && chmod 0644 /etc/cron.d/gofleet-go-env-probe"
             % job)
    try:
        deadline = time.time() + 130

        def written():
            return all(host.file(path).exists and host.file(path).size for path in outputs.values())

        while time.time() < deadline and not written():
            time.sleep(3)
        time.sleep(1)
        for user, path in outputs.items():
            assert json.loads(host.file(path).content_string) == wanted(user)
    finally:
        host.run('rm -f /etc/cron.d/gofleet-go-env-probe')


@pytest.mark.parametrize('user', USERS)
def test_moved_caches_build_offline_and_verify(host, user):
    env = 'GOPROXY=off GOTOOLCHAIN=local'
    build = host.run("su -l %s -c 'cd ~/project && env %s %s build -x -o /dev/null . 2>&1'" % (user, env, GO))
    assert build.rc == 0, build.stdout
    # The build cache came along: the standard library is not compiled again.
    assert ' -p runtime ' not in build.stdout
    verify = host.run("su -l %s -c 'cd ~/project && env %s %s mod verify'" % (user, env, GO))
    assert verify.rc == 0 and 'all modules verified' in verify.stdout, verify.stdout + verify.stderr


def test_shared_cache_old_caches_moved_as_their_accounts_and_roots_directory_left_alone(host):
    """side_effect.yml: carol's own old cache was cleaned; root's directory, which mallory's go env file
    named as her GOCACHE, is exactly as it was (the removal ran as mallory, who does not own it)."""
    after = host.check_output("find /srv/rootcache -printf '%p %U %G %m %s %T@\\n' | sort")
    assert after.splitlines() == host.file('/root/rootcache-before.txt').content_string.splitlines()
    assert host.file('/srv/rootcache/cd/cd01-d').content_string == "root's\n"
    assert not host.file('/home/carol/.cache/go-build/ab/ab01-d').exists
    shared = host.file('/srv/shared/build')
    assert (shared.user, shared.group, shared.mode) == ('root', 'gobuilders', 0o2775)
    for user in ('carol', 'mallory'):
        assert host.file('/home/%s/.config/go/env' % user).content_string == 'GOCACHE=/srv/shared/build\n'
