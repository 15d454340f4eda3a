#!/usr/bin/env bash
# Release checks for gofleet.cache: what Ansible Galaxy / Automation Hub check when the collection is imported,
# and its documentation, run offline (no Galaxy, no containers; PyPI only to make the tools' venv).
#
#   scripts/release_checks.sh           every check
#   scripts/release_checks.sh --keep    keep the work directory (tarball, extracted collection, docsite)
#
# One line per check: `check <name>: ok|FAILED (<seconds>s) <detail>`; full logs in
# tests/output/release/<name>.log (the tail of a failed check's log is shown). All checks run; the exit status
# is non-zero if any failed.
#
#   build     ansible-galaxy collection build of the checkout (galaxy.yml build_ignore applies) into a temp dir
#   contents  the tarball holds no scripts/, benchmarks/, gofleet-report/, dotfiles, caches or test output,
#             and holds what Galaxy shows (README, LICENSE, changelog, each role's README.md)
#   importer  galaxy-importer on the tarball, as Galaxy runs it but without containers: metadata, ansible-doc of
#             every plugin, role READMEs and argument specs, changelog, execution environment files, ansible-lint
#             (production profile, offline). ansible-test is not run (galaxy-importer needs --docker for it; the
#             sanity stage of scripts/test.sh runs it). Its warnings are listed and fail the check
#             (GOFLEET_RELEASE_STRICT=0 lists them only).
#   docs-lint antsibull-docs lint-collection-docs --plugin-docs on the tarball's collection: markup, references
#             to this collection and to the collections it depends on, role entry points, docs/docsite/*.yml
#   docsite   antsibull-docs sphinx-init + its build.sh on the tarball's collection: antsibull-docs
#             --fail-on-error, then sphinx-build -W (every warning an error). Offline: no intersphinx inventories,
#             so references that only they resolve (other collections' plugins, the Ansible docsite's labels)
#             are not reported; everything else (EXAMPLES that cannot be highlighted, bad RST, references into
#             this collection) is.
#
# Tools: .cache/release-venv from tests/requirements-release.txt (scripts/setup.sh makes it, step release-venv),
# first on PATH; nothing is installed into .venv.
set -euo pipefail
exec </dev/null

# shellcheck source=scripts/env.sh
. "$(dirname "${BASH_SOURCE[0]}")/env.sh"
cd "$GOFLEET_ROOT"

RELEASE_VENV="$GOFLEET_CACHE/release-venv"
LOG_DIR="$GOFLEET_OUTPUT/release"
TAIL_LINES=${GOFLEET_TAIL_LINES:-40}
STRICT=${GOFLEET_RELEASE_STRICT:-1}
CHECKS=(build contents importer docs-lint docsite)
export NO_COLOR=1 ANSIBLE_NOCOLOR=1 ANSIBLE_FORCE_COLOR=0 PY_COLORS=0 TERM=dumb

keep=0
for a in "$@"; do
    case $a in
        --keep) keep=1 ;;
        -h | --help) sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
        *) echo "unknown argument '$a' (--keep, --help)" >&2; exit 2 ;;
    esac
done

WORK=$(mktemp -d "${TMPDIR:-/tmp}/gofleet-release.XXXXXX")
if [ $keep -eq 1 ]; then
    trap 'echo "work directory kept: $WORK"' EXIT
else
    trap 'rm -rf "$WORK"' EXIT
fi
DIST="$WORK/dist"                                       # the tarball
COLLECTIONS="$WORK/collections"                         # the tarball, extracted as an installed collection
COLLECTION="$COLLECTIONS/ansible_collections/gofleet/cache"

# ============================================================ helpers
# detail TEXT: the short text after ok/FAILED on the check's line
detail() { printf '%s' "$*" >"$CHECK_DETAIL"; }
note() { printf '\n### %s\n' "$*"; }

need_tarball() {
    TARBALL=$(find "$DIST" -maxdepth 1 -name 'gofleet-cache-*.tar.gz' -print -quit 2>/dev/null)
    [ -n "$TARBALL" ] || { detail "no tarball (build failed)"; return 1; }
}

# The collection as Galaxy would install it; the bundled dependencies (ansible.posix, ansible.windows,
# community.windows) after it. Not the checkout (.cache/pypath): what is checked is what is published.
use_extracted_collection() {
    export ANSIBLE_COLLECTIONS_PATH="$COLLECTIONS:$GOFLEET_CACHE/collections"
    # antsibull-docs copies a collection that lies inside a git work tree with git's file list: the
    # dependencies under the checkout's ignored .cache/ would arrive empty. Git must not look above them.
    export GIT_CEILING_DIRECTORIES="$GOFLEET_ROOT"
}

# ============================================================ checks
check_build() {
    local tarball
    mkdir -p "$DIST"
    note "ansible-galaxy collection build --output-path $DIST $GOFLEET_ROOT"
    ansible-galaxy collection build --output-path "$DIST" "$GOFLEET_ROOT"
    need_tarball
    tarball=$TARBALL
    mkdir -p "$COLLECTION"
    tar -xzf "$tarball" -C "$COLLECTION"
    detail "$(basename "$tarball"), $(du -k "$tarball" | cut -f1) KiB, $(tar -tzf "$tarball" | grep -vc '/$') files"
}

check_contents() {
    local files bad missing=() roles=() role f
    need_tarball
    files=$(tar -tzf "$TARBALL" | sed 's|^\./||')
    note "unwanted paths"
    # development tooling, benchmarks, the demo's report, dotfiles and dot-directories anywhere (.git, .venv,
    # .cache, .build, .ansible, .ci, .gitignore, .ansible-lint, .pytest_cache, .plugin-cache.yaml), bytecode,
    # test output, nested tarballs
    bad=$(grep -E '^(scripts|benchmarks|gofleet-report)(/|$)|(^|/)\.|(^|/)__pycache__(/|$)|\.py[co]$|^tests/output(/|$)|\.tar\.gz$' \
        <<<"$files" || true)
    if [ -n "$bad" ]; then echo "$bad"; else echo "none"; fi
    note "required files"
    for f in MANIFEST.json FILES.json README.md LICENSE meta/runtime.yml changelogs/changelog.yaml; do
        grep -qxF "$f" <<<"$files" || missing+=("$f")
    done
    mapfile -t roles < <(sed -n 's|^roles/\([^/]*\)/.*|\1|p' <<<"$files" | sort -u)
    for role in "${roles[@]}"; do
        grep -qxF "roles/$role/README.md" <<<"$files" || missing+=("roles/$role/README.md")
    done
    if [ ${#missing[@]} -gt 0 ]; then printf '%s\n' "${missing[@]}"; else echo "all present"; fi
    if [ -n "$bad" ] || [ ${#missing[@]} -gt 0 ]; then
        detail "$(grep -c . <<<"$bad" || true) unwanted path(s)${bad:+ (first: $(head -n 1 <<<"$bad"))}, ${#missing[@]} missing${missing:+ (${missing[*]})}"
        return 1
    fi
    detail "no scripts/, benchmarks/, gofleet-report/, dotfiles or build output; READMEs present"
}

check_importer() {
    local dir="$WORK/importer" rc=0 warnings errors
    need_tarball
    mkdir -p "$dir/tmp"
    # Galaxy's settings, less what needs containers (ansible-test runs with --docker). CHECK_REQUIRED_TAGS is
    # Automation Hub's (one tag of a fixed list). Not set: REQUIRE_V1_OR_GREATER (certified content; the
    # collection is 0.x) and RUN_FLAKE8 (it lints .yml and .ps1 plugin files as Python).
    cat >"$dir/galaxy-importer.cfg" <<EOF
[galaxy-importer]
LOG_LEVEL_MAIN = INFO
RUN_ANSIBLE_TEST = False
RUN_ANSIBLE_DOC = True
RUN_ANSIBLE_LINT = True
OFFLINE_ANSIBLE_LINT = True
CHECK_CHANGELOG = True
CHECK_REQUIRED_TAGS = True
RUN_FLAKE8 = False
ANSIBLE_LOCAL_TMP = $dir/tmp
TMP_ROOT_DIR = $dir/tmp
EOF
    cp "$TARBALL" "$dir/"
    note "GALAXY_IMPORTER_CONFIG=$dir/galaxy-importer.cfg python -m galaxy_importer.main $(basename "$TARBALL")"
    # (it writes importer_result.json into the current directory)
    (cd "$dir" && GALAXY_IMPORTER_CONFIG="$dir/galaxy-importer.cfg" \
        python -m galaxy_importer.main "$(basename "$TARBALL")") >"$dir/out.txt" 2>&1 || rc=$?
    cat "$dir/out.txt"
    warnings=$(grep -c '^WARNING: ' "$dir/out.txt" || true)
    errors=$(grep -c '^ERROR: ' "$dir/out.txt" || true)
    if [ "$rc" -ne 0 ] || [ "$errors" -gt 0 ] ||
        ! grep -q '^Importer processing completed successfully' "$dir/out.txt"; then
        detail "rc=$rc, $errors error(s): $(grep -m 1 '^ERROR: ' "$dir/out.txt" | cut -c1-160)"
        return 1
    fi
    if [ "$warnings" -gt 0 ]; then
        detail "imported, $warnings warning(s): $(grep -m 1 '^WARNING: ' "$dir/out.txt" | sed 's/  */ /g' | cut -c1-160)"
        [ "$STRICT" = 1 ] && return 1
        return 0
    fi
    detail "imported, no warnings"
}

check_docs_lint() {
    local rc=0 n
    need_tarball
    use_extracted_collection
    note "antsibull-docs lint-collection-docs --plugin-docs --validate-collection-refs dependent --disallow-unknown-collection-refs --check-extra-docs-refs $COLLECTION"
    antsibull-docs lint-collection-docs --plugin-docs --validate-collection-refs dependent \
        --disallow-unknown-collection-refs --check-extra-docs-refs "$COLLECTION" >"$WORK/docs-lint.txt" 2>&1 || rc=$?
    cat "$WORK/docs-lint.txt"
    n=$(grep -c . "$WORK/docs-lint.txt" || true)
    if [ "$rc" -ne 0 ]; then detail "rc=$rc, $n problem(s)"; return 1; fi
    detail "0 problems"
}

check_docsite() {
    local site="$WORK/docsite" rc=0 pages
    need_tarball
    use_extracted_collection
    mkdir -m 0755 "$site"   # antsibull-docs wants it to exist, writable by its owner only
    detail "sphinx-init failed"
    note "antsibull-docs sphinx-init --use-current --squash-hierarchy --fail-on-error --dest-dir $site gofleet.cache"
    antsibull-docs sphinx-init --use-current --squash-hierarchy --fail-on-error --no-add-antsibull-docs-version \
        --project gofleet.cache --title "gofleet.cache" --dest-dir "$site" gofleet.cache
    cat >>"$site/conf.py" <<'EOF'

# Added by scripts/release_checks.sh: an offline build. No intersphinx inventories (their hosts are not
# reachable), so references that only they resolve are not this collection's warnings: other collections'
# plugins, and the Ansible docsite's labels that antsibull-docs' templates link to. Any other unresolved
# reference, references into gofleet.cache included, still fails the build (-W).
intersphinx_mapping = {}
nitpick_ignore_regex = [
    ('std:ref', r'ansible_collections\.(?!gofleet\.cache\.).*'),
    ('std:ref', r'action_plugins|ansible_configuration_settings|callback_plugins|collections_keyword'
                r'|common_return_values|list_of_callback_plugins|list_of_collections'),
]
EOF
    note "$site/build.sh (antsibull-docs collection --fail-on-error; sphinx-build -W --keep-going)"
    "$site/build.sh" || rc=$?
    if [ "$rc" -ne 0 ]; then
        detail "rc=$rc, $(grep -cE 'WARNING|ERROR' "$CHECK_LOG" || true) warning/error line(s)"
        return 1
    fi
    pages=$(find "$site/build/html" -name '*.html' | wc -l)
    detail "$pages pages, no warnings"
}

# ============================================================ driver
mkdir -p "$LOG_DIR"
if ! [ -x "$RELEASE_VENV/bin/antsibull-docs" ]; then
    echo "setup release-venv: FAILED: no $RELEASE_VENV (scripts/setup.sh makes it)"
    exit 1
fi
# The release venv's tools first: galaxy-importer runs ansible-doc and ansible-lint from PATH.
PATH="$RELEASE_VENV/bin:$PATH"
export PATH

failed=()
for name in "${CHECKS[@]}"; do
    CHECK_LOG="$LOG_DIR/$name.log"
    CHECK_DETAIL="$WORK/.detail"
    : >"$CHECK_DETAIL"
    t0=$SECONDS
    set +e
    (set -e; "check_${name//-/_}") >"$CHECK_LOG" 2>&1
    rc=$?
    set -e
    d=$(cat "$CHECK_DETAIL")
    if [ $rc -eq 0 ]; then
        echo "check $name: ok ($((SECONDS - t0))s) $d"
    else
        echo "check $name: FAILED ($((SECONDS - t0))s) $d"
        failed+=("$name")
        echo "---- last $TAIL_LINES lines of ${CHECK_LOG#"$GOFLEET_ROOT"/}" | sed 's/^/    /'
        tail -n "$TAIL_LINES" "$CHECK_LOG" | sed 's/^/    /'
    fi
done

if [ ${#failed[@]} -gt 0 ]; then
    echo "release checks: ${#failed[@]} of ${#CHECKS[@]} FAILED: ${failed[*]} (logs: ${LOG_DIR#"$GOFLEET_ROOT"/}/)"
    exit 1
fi
echo "release checks: all ${#CHECKS[@]} ok"
