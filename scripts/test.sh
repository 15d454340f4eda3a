#!/usr/bin/env bash
# Run gofleet.cache's test stages.
#
#   scripts/test.sh                  setup, then every stage
#   scripts/test.sh sanity units     setup, then only these stages
#   scripts/test.sh --list           list the stages
#   scripts/test.sh --no-setup ...   skip scripts/setup.sh (environment already built)
#
# One line per stage: `stage <name>: ok|FAILED (<seconds>s) <counts>`; full logs in
# tests/output/logs/<stage>.log (the tail of a failed stage's log is shown). All
# selected stages run; the exit status is non-zero if any failed. The last line,
# `N passed, N failed`, sums the pytest results (junit xml in tests/output/junit)
# of the stages that ran.
#
# Environment: GOFLEET_STAGE_TIMEOUT (seconds per stage, default 1800),
# GOFLEET_TAIL_LINES (lines of a failed stage's log shown, default 40).
set -uo pipefail
exec </dev/null

# shellcheck source=scripts/env.sh
. "$(dirname "${BASH_SOURCE[0]}")/env.sh"
cd "$GOFLEET_ROOT" || exit 2
SELF="$GOFLEET_ROOT/scripts/test.sh"

ALL_STAGES=(sanity units engine-py3.8 engine-py3.13 lint changelog release integration integration-oldest-core
            molecule benchmarks-smoke)
LOG_DIR="$GOFLEET_OUTPUT/logs"
JUNIT_DIR="$GOFLEET_OUTPUT/junit"
STAGE_TIMEOUT=${GOFLEET_STAGE_TIMEOUT:-1800}
TAIL_LINES=${GOFLEET_TAIL_LINES:-40}
PY="$GOFLEET_VENV/bin/python"
# plain logs
export NO_COLOR=1 ANSIBLE_NOCOLOR=1 ANSIBLE_FORCE_COLOR=0 PY_COLORS=0 TERM=dumb

# ============================================================ helpers (stage side)
# Each stage runs in its own process (this script with --run-stage NAME) with its
# output going to the stage log. It reports a short counts text by writing it to
# $STAGE_COUNTS and fails by exiting non-zero.

counts() { printf '%s' "$*" >"$STAGE_COUNTS"; }
note() { printf '\n### %s\n' "$*"; }

# junit_counts FILE...: "P passed, F failed[, S skipped]" of pytest junit files.
junit_counts() {
    "$PY" - "$@" <<'EOF'
import sys
import xml.etree.ElementTree as ET
p = f = s = 0
for path in sys.argv[1:]:
    try:
        root = ET.parse(path).getroot()
    except (OSError, ET.ParseError):
        continue
    suites = [root] if root.tag == "testsuite" else root.iter("testsuite")
    for su in suites:
        t, fl, er, sk = (int(su.get(k, 0)) for k in ("tests", "failures", "errors", "skipped"))
        p += t - fl - er - sk
        f += fl + er
        s += sk
print(f"{p} passed, {f} failed" + (f", {s} skipped" if s else ""))
EOF
}

# run_pytest LABEL JUNIT PYTHON ARGS...: pytest with junit; exit 5 (nothing
# collected) is a failure because every caller expects tests.
run_pytest() {
    local label=$1 junit=$2 python=$3 rc
    shift 3
    rm -f "$junit"
    note "$python -m pytest $*"
    "$python" -m pytest -p no:cacheprovider --junit-xml="$junit" -o junit_family=xunit2 "$@"
    rc=$?
    if [ $rc -eq 5 ]; then
        counts "no tests collected in $label (pytest exit 5)"
        return 1
    fi
    counts "$(junit_counts "$junit")"
    return $rc
}

# has_tests DIR: true if DIR holds any test_*.py / *_test.py
has_tests() {
    [ -d "$1" ] && [ -n "$(find "$1" \( -name 'test_*.py' -o -name '*_test.py' \) -print -quit)" ]
}

# ============================================================ stages
stage_sanity() {
    local ps1=() excl=() f rc=0 rc2=0 ran failed
    gofleet_sync_build
    cd "$GOFLEET_BUILD_COLLECTION" || return 1
    rm -rf tests/output
    mapfile -t ps1 < <(find plugins -type f -name '*.ps1' 2>/dev/null | sort)
    local base=(ansible-test sanity --local --python 3.12 --color no --junit -v)
    if [ ${#ps1[@]} -eq 0 ]; then
        note "${base[*]}"
        "${base[@]}" || rc=$?
    else
        # No pwsh here: validate-modules crashes on .ps1 modules (pslint only skips).
        # Run it separately without them.
        for f in "${ps1[@]}"; do excl+=(--exclude "$f"); done
        note "${base[*]} --skip-test validate-modules"
        "${base[@]}" --skip-test validate-modules || rc=$?
        note "${base[*]} --test validate-modules ${excl[*]}"
        "${base[@]}" --test validate-modules "${excl[@]}" || rc2=$?
    fi
    mkdir -p "$JUNIT_DIR/sanity"
    rm -f "$JUNIT_DIR"/sanity/*.xml
    cp tests/output/junit/*.xml "$JUNIT_DIR/sanity/" 2>/dev/null
    # ansible-test prints 'Running sanity test "X"' per test and, when some fail,
    # 'FATAL: The N sanity test(s) listed below (out of M) failed.'
    ran=$(grep -c '^Running sanity test "' "$STAGE_LOG")
    failed=$(sed -n 's/^FATAL: The \([0-9]*\) sanity test.*/\1/p' "$STAGE_LOG" | awk '{s += $1} END {print s + 0}')
    counts "$ran tests run, $failed failed${excl:+ (validate-modules ran without ${#ps1[@]} .ps1)}"
    [ $rc -eq 0 ] && [ $rc2 -eq 0 ]
}

stage_units() {
    local rc=0
    gofleet_sync_build
    cd "$GOFLEET_BUILD_COLLECTION" || return 1
    if ! has_tests tests/unit; then counts "no unit tests in tests/unit"; return 1; fi
    rm -rf tests/output
    note "ansible-test units --local --python 3.12"
    ansible-test units --local --python 3.12 --color no -v || rc=$?
    rm -f "$JUNIT_DIR"/units*.xml
    for f in tests/output/junit/*.xml; do
        [ -e "$f" ] && cp "$f" "$JUNIT_DIR/units-$(basename "$f")"
    done
    if compgen -G "$JUNIT_DIR/units-*.xml" >/dev/null; then
        counts "$(junit_counts "$JUNIT_DIR"/units-*.xml)"
    else
        counts "no junit output (see log)"
        [ "$rc" -ne 0 ] || rc=1
    fi
    return "$rc"
}

stage_engine() { # stage_engine 3.8
    local v=$1 dir=tests/unit/plugins/module_utils
    if ! has_tests "$dir"; then counts "no tests in $dir"; return 1; fi
    # The engine is pure standard library: no ansible in these venvs. Imports go
    # through .cache/pypath (tests/conftest.py).
    run_pytest "$dir" "$JUNIT_DIR/engine-py$v.xml" "$GOFLEET_CACHE/py/$v/bin/python" -q -rfEs "$dir"
}

stage_lint() {
    local rc=0 line
    note "ansible-lint --profile production"
    ansible-lint --profile production --nocolor \
        --exclude .venv --exclude .cache --exclude .build --exclude .ansible \
        --exclude tests/output --exclude benchmarks/results || rc=$?
    # "Passed: 0 failure(s), 0 warning(s) in 42 files processed of 53 encountered. ..."
    line=$(grep -E '^(Passed|Failed): ' "$STAGE_LOG" | tail -n 1 |
        sed -E 's/^[A-Za-z]+: ([0-9]+ failure\(s\), [0-9]+ warning\(s\)) in ([0-9]+) files.*/\1, \2 files/')
    counts "${line:-no summary (see log)}"
    # A warning still exits 0 but means the production profile was not met.
    grep -q "Profile 'production' was required, and it passed" "$STAGE_LOG" || rc=1
    return $rc
}

stage_changelog() {
    local rc=0
    note "antsibull-changelog lint"
    antsibull-changelog lint || rc=$?
    if [ $rc -eq 0 ]; then
        counts "$(find changelogs/fragments -type f -name '*.y*ml' 2>/dev/null | wc -l) fragments"
    else
        counts "$(grep -cE ':[0-9]+:[0-9]+: ' "$STAGE_LOG") problems"
    fi
    return $rc
}

stage_integration() {
    if ! has_tests tests/integration; then counts "no tests in tests/integration"; return 1; fi
    run_pytest tests/integration "$JUNIT_DIR/integration.xml" "$PY" -rfEs tests/integration
}

# The playbooks and roles on the oldest ansible-core that meta/runtime.yml claims (the integration stage
# runs them on the newest): a second controller venv, the same targets and collection.
OLDEST_CORE_TESTS=(tests/integration/test_fleet_report.py tests/integration/test_agent.py
                   tests/integration/test_hostile_roles.py)
stage_integration_oldest_core() {
    local bin="$GOFLEET_CACHE/core-oldest/bin"
    [ -x "$bin/ansible-playbook" ] || { counts "no $bin/ansible-playbook (scripts/setup.sh)"; return 1; }
    note "controller: $("$bin/ansible" --version | head -n 1)"
    GOFLEET_CONTROLLER_BIN=$bin run_pytest integration-oldest-core "$JUNIT_DIR/integration-oldest-core.xml" "$PY" \
        -rfEs "${OLDEST_CORE_TESTS[@]}"
}

molecule_scenarios() {
    find extensions/molecule -name molecule.yml -printf '%h\n' 2>/dev/null |
        sed 's|^extensions/molecule/||' | sort
}

stage_molecule() {
    local s ok=0 bad=() scenarios
    mapfile -t scenarios < <(molecule_scenarios)
    if [ ${#scenarios[@]} -eq 0 ]; then counts "no scenarios in extensions/molecule"; return 1; fi
    rm -rf "$JUNIT_DIR/molecule"
    for s in "${scenarios[@]}"; do
        note "molecule test -s $s"
        if molecule test -s "$s"; then ok=$((ok + 1)); else bad+=("$s"); fi
    done
    local c="no verifier junit"
    compgen -G "$JUNIT_DIR/molecule/*.xml" >/dev/null && c=$(junit_counts "$JUNIT_DIR"/molecule/*.xml)
    counts "$ok/${#scenarios[@]} scenarios ok${bad:+ (failed: ${bad[*]})}; verifier $c"
    [ ${#bad[@]} -eq 0 ]
}

# What Galaxy and Automation Hub run on the built tarball, the docs lint and a docsite build with warnings as
# errors (scripts/release_checks.sh; its own venv, no network needed).
stage_release() {
    local rc=0
    note "scripts/release_checks.sh"
    "$GOFLEET_ROOT/scripts/release_checks.sh" || rc=$?
    counts "$(sed -n 's/^release checks: //p' "$STAGE_LOG" | tail -n 1)"
    return $rc
}

stage_benchmarks_smoke() {
    note "benchmarks/run_smoke"
    local rc=0
    benchmarks/run_smoke || rc=$?
    counts "benchmarks/run_smoke rc=$rc"
    return $rc
}

run_stage_body() { # in the stage process
    case $1 in
        sanity) stage_sanity ;;
        units) stage_units ;;
        engine-py3.8) stage_engine 3.8 ;;
        engine-py3.13) stage_engine 3.13 ;;
        lint) stage_lint ;;
        changelog) stage_changelog ;;
        integration) stage_integration ;;
        integration-oldest-core) stage_integration_oldest_core ;;
        molecule) stage_molecule ;;
        release) stage_release ;;
        benchmarks-smoke) stage_benchmarks_smoke ;;
        *) echo "unknown stage $1"; return 2 ;;
    esac
}

# ============================================================ driver side
if [ "${1:-}" = "--run-stage" ]; then
    run_stage_body "$2"
    exit $?
fi

stage_enabled() { # stages that exist only when their inputs do
    case $1 in
        benchmarks-smoke) [ -e benchmarks/run_smoke ] ;;
        *) return 0 ;;
    esac
}

# show_failure STAGE LOG: the useful part of a failed stage's log
show_failure() {
    local rel=${2#"$GOFLEET_ROOT"/}
    if [ "$1" = sanity ] && grep -qE '^(ERROR|FATAL): ' "$2"; then
        echo "---- failed: $(awk '/^FATAL: The [0-9]+ sanity test/ {f = 1; next}
            f && /^[a-z0-9-]+$/ {printf "%s ", $0; next} {f = 0}' "$2")"
        echo "---- ERROR lines of $rel (first $TAIL_LINES)"
        grep -E '^ERROR: ' "$2" | grep -v '^ERROR: Found [0-9]* ' | head -n "$TAIL_LINES"
    else
        echo "---- last $TAIL_LINES lines of $rel"
        tail -n "$TAIL_LINES" "$2"
    fi
}

do_setup=1
stages=()
for a in "$@"; do
    case $a in
        --no-setup) do_setup=0 ;;
        --list) printf '%s\n' "${ALL_STAGES[@]}"; exit 0 ;;
        -h | --help) sed -n '2,/^set -uo/p' "$SELF" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
        *)
            if [[ " ${ALL_STAGES[*]} " == *" $a "* ]]; then stages+=("$a")
            else echo "unknown stage '$a' (stages: ${ALL_STAGES[*]})" >&2; exit 2; fi ;;
    esac
done
explicit=${#stages[@]}
[ "$explicit" -gt 0 ] || stages=("${ALL_STAGES[@]}")

mkdir -p "$LOG_DIR" "$JUNIT_DIR"

if [ $do_setup -eq 1 ]; then
    t0=$SECONDS
    if "$GOFLEET_ROOT/scripts/setup.sh" >"$LOG_DIR/setup.log" 2>&1; then
        echo "setup: ok ($((SECONDS - t0))s)"
    else
        echo "setup: FAILED ($((SECONDS - t0))s)"
        tail -n "$TAIL_LINES" "$LOG_DIR/setup.log" | sed 's/^/    /'
        echo "0 passed, 0 failed"
        exit 1
    fi
fi

failed_stages=()
junit_this_run=()
for st in "${stages[@]}"; do
    if ! stage_enabled "$st"; then
        [ "$explicit" -gt 0 ] && echo "stage $st: FAILED (0s) not available here" && failed_stages+=("$st")
        continue
    fi
    log="$LOG_DIR/$st.log"
    cfile="$LOG_DIR/.$st.counts"
    : >"$cfile"
    t0=$SECONDS
    export STAGE_LOG=$log STAGE_COUNTS=$cfile
    timeout --kill-after=30 "$STAGE_TIMEOUT" "$SELF" --run-stage "$st" >"$log" 2>&1
    rc=$?
    secs=$((SECONDS - t0))
    c=$(cat "$cfile" 2>/dev/null)
    rm -f "$cfile"
    if [ $rc -eq 124 ] || [ $rc -eq 137 ]; then c="timed out after ${STAGE_TIMEOUT}s${c:+; $c}"; fi
    case $st in
        units) junit_this_run+=("$JUNIT_DIR"/units-*.xml) ;;
        engine-py*) junit_this_run+=("$JUNIT_DIR/$st.xml") ;;
        integration) junit_this_run+=("$JUNIT_DIR/integration.xml") ;;
        molecule) junit_this_run+=("$JUNIT_DIR"/molecule/*.xml) ;;
    esac
    if [ $rc -eq 0 ]; then
        echo "stage $st: ok (${secs}s) $c"
    else
        echo "stage $st: FAILED (${secs}s) $c"
        failed_stages+=("$st")
        show_failure "$st" "$log" | sed 's/^/    /'
        if [ "$st" = molecule ] && { [ $rc -eq 124 ] || [ $rc -eq 137 ]; }; then
            while read -r s; do molecule destroy -s "$s" >>"$log" 2>&1; done < <(molecule_scenarios)
        fi
    fi
done

existing=()
for f in "${junit_this_run[@]}"; do [ -f "$f" ] && existing+=("$f"); done
total="0 passed, 0 failed"
[ ${#existing[@]} -gt 0 ] && total=$(junit_counts "${existing[@]}")
total=${total%, * skipped}
if [ ${#failed_stages[@]} -gt 0 ]; then
    echo "FAILED stages: ${failed_stages[*]} (logs: ${LOG_DIR#"$GOFLEET_ROOT"/}/)"
else
    echo "all ${#stages[@]} stages ok"
fi
echo "$total"
[ ${#failed_stages[@]} -eq 0 ]
