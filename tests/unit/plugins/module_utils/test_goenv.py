# -*- coding: utf-8 -*-
# Copyright (c) gofleet.cache contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

import os

from ansible_collections.gofleet.cache.plugins.module_utils._goenv import GoEnvironment, goenv_file, parse_env_file
from ansible_collections.gofleet.cache.plugins.module_utils._users import parse_pam_environment


def test_env_file_parsed_like_go():
    text = '# comment\nGOCACHE=/a\r\nlower=x\n=nokey\nGOPROXY=https://p\nNOEQUALS\nGOPROXY=https://q\nGOFLAGS=-mod=mod'
    assert parse_env_file(text) == {
        # Go splits on LF only: the CR stays in the value, as it does for Go.
        'GOCACHE': '/a\r', 'GOPROXY': 'https://q', 'GOFLAGS': '-mod=mod'}


def test_goenv_location():
    assert goenv_file({'HOME': '/h'}) == ('/h/.config/go/env', 'default', None)
    assert goenv_file({'HOME': '/h', 'XDG_CONFIG_HOME': '/x'}) == ('/x/go/env', 'default', None)
    assert goenv_file({'GOENV': '/etc/go.env'}) == ('/etc/go.env', 'env', None)
    assert goenv_file({'GOENV': 'off', 'HOME': '/h'}) == (None, 'env', None)
    path, _source, error = goenv_file({'HOME': '/h', 'XDG_CONFIG_HOME': 'rel'})
    assert path is None and 'relative' in error


def write(path, text):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, 'w') as handle:
        handle.write(text)


def test_precedence_env_over_file_over_goroot(tmp_path):
    home, goroot = str(tmp_path / 'home'), str(tmp_path / 'goroot')
    write(home + '/.config/go/env', 'GOCACHE=/file/cache\nGOPROXY=https://corp\nGOPRIVATE=corp.example\n')
    write(goroot + '/go.env', 'GOPROXY=https://proxy.golang.org,direct\nGOSUMDB=sum.golang.org\nGOTOOLCHAIN=auto\n')
    goenv = GoEnvironment({'HOME': home, 'GOCACHE': '/env/cache', 'GOFLAGS': ''}, goroot)
    s = goenv.settings
    assert (s['GOCACHE'].value, s['GOCACHE'].source) == ('/env/cache', 'env')
    assert s['GOCACHE'].shadowed == [('goenv_file', '/file/cache')]
    assert (s['GOPROXY'].value, s['GOPROXY'].source) == ('https://corp', 'goenv_file')
    # A key in the go env file hides $GOROOT/go.env's: Go does not read that one (it is not "shadowed").
    assert s['GOPROXY'].shadowed == []
    assert (s['GOSUMDB'].value, s['GOSUMDB'].source) == ('sum.golang.org', 'goroot_env')
    # An empty OS variable counts as unset.
    assert (s['GOFLAGS'].value, s['GOFLAGS'].source) == ('', 'default')
    # GONOSUMDB and GONOPROXY default to GOPRIVATE.
    assert s['GONOSUMDB'].value == 'corp.example' and s['GONOSUMDB'].derived_from == 'GOPRIVATE'
    assert goenv.conflicts() == [{'var': 'GOCACHE', 'value': '/env/cache', 'source': 'env',
                                  'shadowed_source': 'goenv_file', 'shadowed_value': '/file/cache'}]


def test_empty_values_are_gos_defaults_and_hide_goroot(tmp_path):
    """`go env -w GOCACHE= GOMODCACHE= GOPATH= GOPROXY=`: Go uses its defaults for the first three, and the
    empty GOPROXY hides $GOROOT/go.env's (go env GOPROXY prints ""); compared with the real go env in
    tests/integration/test_go_cache_facts.py."""
    home, goroot = str(tmp_path / 'home'), str(tmp_path / 'goroot')
    write(home + '/.config/go/env', 'GOCACHE=\nGOMODCACHE=\nGOPATH=\nGOPROXY=\nGONOSUMDB=\nGOPRIVATE=corp\n')
    write(goroot + '/go.env', 'GOPROXY=https://proxy.golang.org,direct\nGOSUMDB=sum.golang.org\n')
    s = GoEnvironment({'HOME': home}, goroot).settings
    assert (s['GOCACHE'].value, s['GOCACHE'].source) == (home + '/.cache/go-build', 'default')
    assert (s['GOPATH'].value, s['GOPATH'].source) == (home + '/go', 'default')
    assert (s['GOMODCACHE'].value, s['GOMODCACHE'].derived_from) == (home + '/go/pkg/mod', 'GOPATH')
    assert (s['GOPROXY'].value, s['GOPROXY'].source, s['GOPROXY'].shadowed) == ('', 'goenv_file', [])
    assert (s['GOSUMDB'].value, s['GOSUMDB'].source) == ('sum.golang.org', 'goroot_env')
    assert (s['GONOSUMDB'].value, s['GONOSUMDB'].derived_from) == ('corp', 'GOPRIVATE')


def test_gomodcache_derived_from_gopath_is_cleaned_like_filepath_join(tmp_path):
    s = GoEnvironment({'HOME': '/home/u', 'GOPATH': '//a//b/:/c', 'GOENV': 'off'}).settings
    assert s['GOPATH'].value == '//a//b/:/c'  # reported as set
    assert s['GOMODCACHE'].value == '/a/b/pkg/mod'
    assert (s['GOENV'].value, s['GOENV'].source) == ('', 'env')  # go env GOENV prints "" for GOENV=off


def test_defaults_follow_xdg_and_gopath(tmp_path):
    goenv = GoEnvironment({'HOME': '/home/u', 'XDG_CACHE_HOME': '/xdg/cache', 'GOPATH': '/gp1:/gp2'})
    s = goenv.settings
    assert (s['GOCACHE'].value, s['GOCACHE'].source) == ('/xdg/cache/go-build', 'default')
    assert (s['GOMODCACHE'].value, s['GOMODCACHE'].source) == ('/gp1/pkg/mod', 'env')
    assert s['GOMODCACHE'].derived_from == 'GOPATH'
    plain = GoEnvironment({'HOME': '/home/u'}).settings
    assert plain['GOCACHE'].value == '/home/u/.cache/go-build'
    assert plain['GOMODCACHE'].value == '/home/u/go/pkg/mod'
    assert plain['GOENV'].value == '/home/u/.config/go/env'


def test_no_home_means_no_module_cache_and_no_build_cache():
    goenv = GoEnvironment({})
    assert goenv.settings['GOMODCACHE'].value == ''
    assert goenv.settings['GOCACHE'].value == 'off'  # cache.DefaultDir without a default directory
    assert any(error.startswith('GOCACHE') for error in goenv.errors)


def test_relative_gocache_is_off_and_defaults_are_cleaned():
    """cache.DefaultDir turns a relative GOCACHE into off; Go joins its defaults with filepath.Join, which
    cleans them; compared with the real go env in tests/integration/test_go_peer.py."""
    goenv = GoEnvironment({'HOME': '//srv/./home//u/', 'GOCACHE': 'rel/cache', 'GOENV': ''})
    s = goenv.settings
    assert (s['GOCACHE'].value, s['GOCACHE'].source) == ('off', 'env')
    assert any('not an absolute path' in error for error in goenv.errors)
    assert s['GOPATH'].value == '/srv/home/u/go'
    assert s['GOMODCACHE'].value == '/srv/home/u/go/pkg/mod'
    assert s['GOENV'].value == '/srv/home/u/.config/go/env'
    assert GoEnvironment({'HOME': '/h', 'XDG_CACHE_HOME': '/x//c/'}).settings['GOCACHE'].value == '/x/c/go-build'


def test_gopath_default_is_never_goroot(tmp_path):
    """go/build's defaultGOPATH: $HOME/go is no default when it is the GOROOT (Go installed in ~/go)."""
    s = GoEnvironment({'HOME': '/home/u', 'GOROOT': '/home/u/go/', 'GOENV': 'off'}).settings
    assert s['GOPATH'].value == '' and s['GOMODCACHE'].value == ''


def test_go_env_file_goroot_chooses_the_go_env_read(tmp_path):
    """findGOROOT takes the go env file's GOROOT before the environment's: its go.env is the one Go reads."""
    home, chosen, other = str(tmp_path / 'home'), str(tmp_path / 'chosen'), str(tmp_path / 'other')
    write(home + '/.config/go/env', 'GOROOT=%s\n' % chosen)
    write(chosen + '/go.env', 'GOPROXY=https://chosen.example\n')
    write(other + '/go.env', 'GOPROXY=https://other.example\n')
    goenv = GoEnvironment({'HOME': home, 'GOROOT': other}, other)
    assert goenv.goroot == chosen
    assert goenv.settings['GOPROXY'].value == 'https://chosen.example'


def test_go_env_json_overrules_and_reports():
    goenv = GoEnvironment({'HOME': '/home/u'})
    disagreements = goenv.apply_go_env_json({'GOCACHE': '/home/u/.cache/go-build', 'GOPATH': '/elsewhere',
                                             'GOTOOLCHAIN': 'local'})
    assert disagreements == [{'var': 'GOPATH', 'computed': '/home/u/go', 'computed_source': 'default',
                              'go_env_json': '/elsewhere'}]
    assert goenv.settings['GOPATH'].source == 'go_env_json'
    assert goenv.settings['GOCACHE'].source == 'default'
    # The query pins GOTOOLCHAIN=local, so Go's answer for it is not evidence.
    assert goenv.settings['GOTOOLCHAIN'].source == 'default'


def test_pam_environment():
    text = '# c\nGOCACHE="/srv/cache"\nexport GOPROXY=https://corp\nBROKEN\nGOFLAGS=\'-mod=mod\'\n'
    assert parse_pam_environment(text) == {'GOCACHE': '/srv/cache', 'GOPROXY': 'https://corp', 'GOFLAGS': '-mod=mod'}


# `go env -w` / `go env -u` results, checked against go1.27.3 by tests/integration/test_go_env.py.
def test_update_env_file_like_go_env_w():
    from ansible_collections.gofleet.cache.plugins.module_utils._goenv import update_env_file
    assert update_env_file('', {'GOPROXY': 'p', 'GOCACHE': '/c'}) == 'GOCACHE=/c\nGOPROXY=p\n'
    # set in place, keep unknown keys, add the final newline
    assert update_env_file('ZZ=1\nGOCACHE=/old', {'GOCACHE': '/new'}) == 'GOCACHE=/new\nZZ=1\n'
    # comments and blank lines separate sorted runs and stay where they are
    assert update_env_file('# c\nZZ=1\nGOPATH=/p\n\nGOPROXY=a\n', {'GOFLAGS': '-x'}) == \
        '# c\nGOPATH=/p\nZZ=1\n\nGOFLAGS=-x\nGOPROXY=a\n'
    # the place of a dropped duplicate separates runs as well
    assert update_env_file('GOSUMDB=off\nGOPROXY=a\nGOCACHE=/c\nGOPROXY=b\n', {'GOFLAGS': '-x'}) == \
        'GOSUMDB=off\nGOCACHE=/c\nGOFLAGS=-x\nGOPROXY=b\n'
    # CR stays part of the line; removal of an absent key only normalizes
    assert update_env_file('GOCACHE=/c\r\n', {'GOFLAGS': '-x'}) == 'GOCACHE=/c\r\nGOFLAGS=-x\n'
    assert update_env_file('GOCACHE=/c', remove=['GOPRIVATE']) == 'GOCACHE=/c\n'
    assert update_env_file('GOCACHE=/c\nGOFLAGS=-x\n', remove=['GOFLAGS']) == 'GOCACHE=/c\n'


def test_check_var_refuses_what_go_refuses():
    import pytest
    from ansible_collections.gofleet.cache.plugins.module_utils._goenv import check_var
    from ansible_collections.gofleet.cache.plugins.module_utils._units import OptionError
    for name, value in [('GOENV', '/x'), ('GODEBUG', 'x=1'), ('GOROOT', '/go'), ('GOVERSION', 'go1'),
                        ('NOT_A_GO_VAR', '1'), ('GOPATH', 'rel'), ('GOPATH', '/a:~/b'), ('GOMODCACHE', 'm'),
                        ('GOCACHE', 'rel'), ('GOCACHE', 'off'), ('GOPROXY', 'a\nb'), ('GOFLAGS', 'a\x00'),
                        ('GO111MODULE', 'yes'), ('GOTMPDIR', 't')]:
        with pytest.raises(OptionError) as info:
            check_var(name, value)
        assert name in str(info.value)
    check_var('GOPATH', '/a:/b')
    check_var('GOCACHE', 'C:\\go\\build', windows=True)
    check_var('MY_OLD_TYPO', '1', existing={'MY_OLD_TYPO'})
    check_var('MY_OLD_TYPO', None)  # removing what is not there: done already
    with pytest.raises(OptionError):
        check_var('GOCACHE', '/c', windows=True)
