#!/usr/bin/env bash
# Bootstrap (idempotently) everything gofleet.cache's tests need on a fresh
# Debian 12 machine that has pyenv's Pythons 3.8-3.13 and nothing else:
# apt packages, .venv (Python 3.12), engine venvs (3.8, 3.13), collections from
# the ansible bundle wheel, ansible-test's offline pip bootstrap, podman config,
# the local test image and a non-root test account.
#
# Prints one line per step; details go to .cache/logs/setup.log. Needs root for
# apt, useradd and podman. Re-running only does what is missing or stale.
set -euo pipefail
exec </dev/null

# shellcheck source=scripts/env.sh
. "$(dirname "${BASH_SOURCE[0]}")/env.sh"
cd "$GOFLEET_ROOT"

APT_PACKAGES=(podman runc netavark aardvark-dns iptables catatonit uidmap fuse-overlayfs
    debootstrap shellcheck cron rsync unzip git)
ANSIBLE_BUNDLE_VERSION=14.5.0
BUNDLE_COLLECTIONS=(ansible/windows community/windows community/general ansible/posix containers/podman)
IMAGE_PACKAGES=python3,cron,systemd,systemd-sysv,sudo,procps

mkdir -p "$GOFLEET_CACHE/logs"
LOG="$GOFLEET_CACHE/logs/setup.log"
: >"$LOG"
SETUP_START=$SECONDS

# step NAME FUNCTION: run FUNCTION (errexit on) with its output in the log and
# print one line; FUNCTION reports its result ("present", "installed ...") on fd 3.
step() {
    local name=$1 fn=$2 t0=$SECONDS rc result
    printf '\n== %s\n' "$name" >>"$LOG"
    set +e
    (set -e; "$fn") 3>"$GOFLEET_CACHE/logs/.step-result" >>"$LOG" 2>&1
    rc=$?
    set -e
    result=$(tr '\n' ' ' <"$GOFLEET_CACHE/logs/.step-result")
    rm -f "$GOFLEET_CACHE/logs/.step-result"
    if [ "$rc" -ne 0 ]; then
        printf 'setup %-22s FAILED rc=%s (%ss) %s\n' "$name:" "$rc" "$((SECONDS - t0))" "$result"
        echo "---- tail of ${LOG#"$GOFLEET_ROOT"/}" >&2
        tail -n 25 "$LOG" >&2
        exit 1
    fi
    printf 'setup %-22s %s (%ss)\n' "$name:" "${result:-ok}" "$((SECONDS - t0))"
}
say() { printf '%s' "$*" >&3; }

first_existing() { local f; for f in "$@"; do [ -e "$f" ] && { echo "$f"; return 0; }; done; return 0; }
sha_of() { cat "$@" | sha256sum | cut -c1-16; }

pyenv_python() { # pyenv_python 3.12 -> full path of the newest installed 3.12.x
    local root
    root=$(pyenv root 2>/dev/null || echo "${PYENV_ROOT:-$HOME/.pyenv}")
    find "$root/versions" -mindepth 3 -maxdepth 3 -path "*/versions/$1.*/bin/python$1" 2>/dev/null |
        sort -V | tail -n 1
}

# ---------------------------------------------------------------- apt
do_apt() {
    local missing=() p
    for p in "${APT_PACKAGES[@]}"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed' || missing+=("$p")
    done
    if [ ${#missing[@]} -eq 0 ]; then say "present (${#APT_PACKAGES[@]} packages)"; return; fi
    [ "$(id -u)" -eq 0 ] || { echo "need root to apt-get install ${missing[*]}"; return 1; }
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}"
    say "installed ${missing[*]}"
}

# ---------------------------------------------------------------- venvs
# make_venv DIR PYTHON REQUIREMENTS [INCLUDED...]: (re)create DIR from PYTHON unless it is
# already built from the same interpreter and requirements (hash stamp over REQUIREMENTS and
# the files it includes with -r).
make_venv() {
    local dir=$1 py=$2 req=$3 stamp want
    stamp="$dir/.gofleet-requirements.stamp"
    want="$("$py" -c 'import sys; print(sys.version.split()[0])') $(sha_of "${@:3}")"
    if [ -x "$dir/bin/python" ] && [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
        say "up to date (${want%% *})"; return
    fi
    if [ -x "$dir/bin/python" ] &&
        [ "$("$dir/bin/python" -c 'import sys; print(sys.version.split()[0])' 2>/dev/null)" = "${want%% *}" ]; then
        :   # same interpreter: just sync the requirements
    else
        rm -rf "$dir"
        "$py" -m venv "$dir"
    fi
    "$dir/bin/python" -m pip install -q --disable-pip-version-check -r "$req"
    echo "$want" >"$stamp"
    say "installed (${want%% *})"
}

do_venv() {
    local py
    py=$(pyenv_python 3.12)
    [ -n "$py" ] || { echo "no pyenv python 3.12 found"; return 1; }
    make_venv "$GOFLEET_VENV" "$py" tests/requirements.txt tests/unit/requirements.txt
}

do_engine_venvs() {
    local v py sep=""
    for v in 3.8 3.13; do
        py=$(pyenv_python "$v")
        [ -n "$py" ] || { echo "no pyenv python $v found"; return 1; }
        say "$sep.cache/py/$v "
        make_venv "$GOFLEET_CACHE/py/$v" "$py" tests/requirements-engine.txt
        sep="; "
    done
}

# The oldest ansible-core meta/runtime.yml claims, for the playbook and role tests (stage
# integration-oldest-core); the modules run on the same targets.
do_oldest_core_venv() {
    local py
    py=$(pyenv_python 3.12)
    [ -n "$py" ] || { echo "no pyenv python 3.12 found"; return 1; }
    make_venv "$GOFLEET_CACHE/core-oldest" "$py" tests/requirements-oldest-core.txt
}

# The tools of scripts/release_checks.sh (galaxy-importer, antsibull-docs, Sphinx), apart from .venv: they pin
# their own dependencies.
do_release_venv() {
    local py
    py=$(pyenv_python 3.12)
    [ -n "$py" ] || { echo "no pyenv python 3.12 found"; return 1; }
    make_venv "$GOFLEET_CACHE/release-venv" "$py" tests/requirements-release.txt
}

# ---------------------------------------------------------------- collections
do_collections() {
    local dest="$GOFLEET_CACHE/collections" wheel stamp want pats=() c
    stamp="$dest/.gofleet-bundle.stamp"
    want="ansible==$ANSIBLE_BUNDLE_VERSION ${BUNDLE_COLLECTIONS[*]}"
    if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then say "up to date (ansible $ANSIBLE_BUNDLE_VERSION)"; return; fi
    mkdir -p "$GOFLEET_CACHE/downloads"
    wheel=$(first_existing "$GOFLEET_CACHE/downloads/ansible-$ANSIBLE_BUNDLE_VERSION-"*.whl)
    if [ -z "$wheel" ]; then
        "$GOFLEET_VENV/bin/pip" download -q --no-deps --disable-pip-version-check \
            -d "$GOFLEET_CACHE/downloads" "ansible==$ANSIBLE_BUNDLE_VERSION"
        wheel=$(first_existing "$GOFLEET_CACHE/downloads/ansible-$ANSIBLE_BUNDLE_VERSION-"*.whl)
        [ -n "$wheel" ] || { echo "pip download left no ansible wheel"; return 1; }
    fi
    for c in "${BUNDLE_COLLECTIONS[@]}"; do pats+=("ansible_collections/$c/*"); done
    rm -rf "$dest"
    mkdir -p "$dest"
    unzip -q -o "$wheel" "${pats[@]}" -d "$dest"
    echo "$want" >"$stamp"
    say "unpacked ${#BUNDLE_COLLECTIONS[@]} collections from ansible $ANSIBLE_BUNDLE_VERSION"
}

do_pypath() {
    local link="$GOFLEET_CACHE/pypath/ansible_collections/gofleet/cache"
    if [ -L "$link" ] && [ "$(cd "$link" && pwd -P)" = "$GOFLEET_ROOT" ]; then say "present"; return; fi
    mkdir -p "$(dirname "$link")"
    rm -rf "$link"
    ln -s ../../../.. "$link"
    say "linked .cache/pypath/ansible_collections/gofleet/cache -> repo"
}

do_build_copy() {
    gofleet_sync_build
    say "synced .build/ansible_collections/gofleet/cache"
}

# ---------------------------------------------------------------- ansible-test
# ansible-test bootstraps pip in each sanity venv with get-pip.py from a host that
# is unreachable here, reading ~/.ansible/test/cache/get_pip_<ver>.py first.
do_get_pip() {
    local ver file content
    ver=$(sed -n "s/^ *pip='\([0-9.]*\)',*$/\1/p" \
        "$GOFLEET_VENV"/lib/python3.*/site-packages/ansible_test/_internal/python_requirements.py | head -n 1)
    [ -n "$ver" ] || { echo "cannot find ansible-test's pip version"; return 1; }
    file="$HOME/.ansible/test/cache/get_pip_${ver//./_}.py"
    content=$(cat <<'EOF'
"""Offline stand-in for get-pip.py, written by gofleet.cache scripts/setup.sh.

ansible-test runs it as `python get_pip_X.py [pip options] pip==X --no-setuptools
--no-wheel` inside a fresh venv: bootstrap pip from ensurepip, then let pip
install what was asked for (from the configured index).
"""
import subprocess
import sys

args = [a for a in sys.argv[1:] if a not in ("--no-setuptools", "--no-wheel")]
subprocess.check_call([sys.executable, "-m", "ensurepip", "--upgrade", "--default-pip"],
                      stdout=subprocess.DEVNULL)
sys.exit(subprocess.call([sys.executable, "-m", "pip", "install", "-q"] + args))
EOF
)
    if [ -f "$file" ] && [ "$(cat "$file")" = "$content" ]; then say "present ($(basename "$file"))"; return; fi
    mkdir -p "$(dirname "$file")"
    printf '%s\n' "$content" >"$file"
    say "wrote $file"
}

# ---------------------------------------------------------------- podman
do_containers_conf() {
    local content
    content=$(cat <<'EOF'
# Written by scripts/setup.sh; loaded through CONTAINERS_CONF (scripts/env.sh).
[containers]
default_ulimits = ["nofile=1024:1024", "nproc=4096:4096"]

[network]
network_backend = "netavark"

[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
EOF
)
    if [ -f "$CONTAINERS_CONF" ] && [ "$(cat "$CONTAINERS_CONF")" = "$content" ]; then say "present"; return; fi
    printf '%s\n' "$content" >"$CONTAINERS_CONF"
    say "wrote .cache/containers.conf"
}

do_image() {
    local rootfs mirror
    if podman image exists "$GOFLEET_TEST_IMAGE"; then say "present ($GOFLEET_TEST_IMAGE)"; return; fi
    mirror=$(sed -n 's/^URIs:[[:space:]]*//p' /etc/apt/sources.list.d/debian.sources 2>/dev/null | head -n 1 | awk '{print $1}')
    mirror=${mirror:-http://deb.debian.org/debian}
    rootfs="$GOFLEET_CACHE/rootfs.tmp"
    rm -rf "$rootfs"
    debootstrap --variant=minbase --include="$IMAGE_PACKAGES" bookworm "$rootfs" "$mirror"
    rm -rf "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/cache/apt/*.bin \
        "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/log/*.log \
        "$rootfs"/usr/share/doc/* "$rootfs"/usr/share/man/* "$rootfs"/usr/share/info/* \
        "$rootfs"/usr/share/locale/* "$rootfs"/usr/share/lintian/*
    tar -C "$rootfs" -c . |
        podman import --change 'CMD ["/bin/sleep","infinity"]' - "$GOFLEET_TEST_IMAGE"
    rm -rf "$rootfs"
    say "built $GOFLEET_TEST_IMAGE ($(podman image inspect -f '{{.Size}}' "$GOFLEET_TEST_IMAGE" | awk '{printf "%d MB", $1/1e6}'))"
}

do_user() {
    if ! id "$GOFLEET_CI_USER" >/dev/null 2>&1; then
        useradd -m -s /bin/bash "$GOFLEET_CI_USER"
        say "created $GOFLEET_CI_USER"; return
    fi
    if [ "$(getent passwd "$GOFLEET_CI_USER" | cut -d: -f7)" != /bin/bash ]; then
        usermod -s /bin/bash "$GOFLEET_CI_USER"
        say "present ($GOFLEET_CI_USER), shell set to /bin/bash"; return
    fi
    say "present ($GOFLEET_CI_USER)"
}

step apt do_apt
step venv do_venv
step engine-venvs do_engine_venvs
step collections do_collections
step pypath-link do_pypath
step build-copy do_build_copy
step ansible-test-get-pip do_get_pip
# The demo needs neither podman, the test image nor the test-only tools (GOFLEET_SETUP_SKIP_IMAGE=1).
if [ "${GOFLEET_SETUP_SKIP_IMAGE:-0}" != 1 ]; then
    step oldest-core-venv do_oldest_core_venv
    step release-venv do_release_venv
    step containers.conf do_containers_conf
    step test-image do_image
fi
step test-user do_user
printf 'setup done (%ss), log: %s\n' "$((SECONDS - SETUP_START))" "${LOG#"$GOFLEET_ROOT"/}"
