#!/usr/bin/env bash
# The main job on an embedded default: set this machine up, make a real Go
# cache on it (real Go toolchain, local module proxy, real build) and audit it
# with the collection, the way a platform team runs it on a fleet.
set -euo pipefail
exec </dev/null
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)"
GOFLEET_SETUP_SKIP_IMAGE=1 "$here/setup.sh"
# shellcheck source=scripts/env.sh
. "$here/env.sh"
cd "$GOFLEET_ROOT"
python scripts/demo_cache.py
ANSIBLE_DISPLAY_SKIPPED_HOSTS=false ansible-playbook -i tests/demo/inventory.ini gofleet.cache.audit \
    -e '{"gofleet_users": ["gofleet-demo"]}'
# Dry run: what a 30-day retention would remove, keeping what the demo project references; then the
# fleet report of this one-host fleet (with what the policy would reclaim) in gofleet-report/.
report_dir="$GOFLEET_ROOT/gofleet-report"
ANSIBLE_DISPLAY_SKIPPED_HOSTS=false ansible-playbook -i tests/demo/inventory.ini gofleet.cache.prune --check \
    -e '{"gofleet_users": ["gofleet-demo"],
         "gofleet_policy": {"kinds": ["build", "module"], "max_age": "30d",
                            "keep_referenced": ["/home/gofleet-demo/demo/app"]}}' \
    -e "fleet_report_dir=$report_dir"
echo
cat "$report_dir/report.md"
echo
echo "HTML report: $report_dir/report.html"
