"""The fleet playbooks end to end: real ansible-playbook, real Go caches, a jsonfile fact cache.

One inventory host is this machine (``builder-1``, connection local), one cannot be reached (``dark-1``).

1. ``gofleet.cache.audit`` gathers facts (cached by the jsonfile plugin) and writes the report: the numbers
   equal the cached facts and, for a cache the test made, a walk of the disk; ``dark-1`` is listed, not dropped,
   and fails the run.
2. An entry is added to that cache; audit again with ``fleet_report_previous``: growth is exactly its size.
3. ``-e gofleet_from_cache=true`` with ``builder-1`` now unreachable too: the report comes from the cache alone,
   equal to run 2's, growth zero, ``dark-1`` missing, exit 0.
4. ``gofleet.cache.prune --check``: the report shows what would be reclaimed; nothing was removed.
"""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import time
from pathlib import Path

import pytest

from tests.integration.conftest import TARGET_PYTHON, Playbook, _ensure_collection_link

from ansible_collections.gofleet.cache.tests.unit.plugins.module_utils.cachetree import (
    DAY, add_entry, new_build_cache)

PLAYBOOK_TIMEOUT = 600


class Fleet:
    """Runs the collection's playbooks with a jsonfile fact cache; keeps each run's report."""

    def __init__(self, workdir: Path):
        self.workdir = workdir
        self.facts = workdir / "facts"
        runner = Playbook(workdir)
        self.ansible_playbook = str(runner.ansible_playbook)
        self.env = dict(runner.env(), ANSIBLE_CACHE_PLUGIN="jsonfile",
                        ANSIBLE_CACHE_PLUGIN_CONNECTION=str(self.facts), ANSIBLE_CACHE_PLUGIN_TIMEOUT="0",
                        ANSIBLE_HOST_KEY_CHECKING="0",
                        # HOME is not root's passwd home here: one async directory for the job and its poller
                        ANSIBLE_ASYNC_DIR=str(workdir / "async"))
        self.count = 0

    def inventory(self, builder_reachable: bool) -> Path:
        path = self.workdir / ("inventory-%s.ini" % ("up" if builder_reachable else "down"))
        unreachable = "ansible_host=127.0.0.1 ansible_port=1 ansible_connection=ssh " \
                      "ansible_ssh_common_args='-o ConnectTimeout=5'"
        builder = "ansible_connection=local ansible_python_interpreter=%s" % TARGET_PYTHON \
            if builder_reachable else unreachable
        path.write_text("[linux_builders]\nbuilder-1 %s\n\n[ci]\ndark-1 %s\n" % (builder, unreachable))
        return path

    def run_plain(self, playbook: str, extra: dict, check: bool = False, limit: str = "all"):
        """(returncode, output) of one ansible-playbook run; its report, if any, goes to report-N."""
        self.count += 1
        extra = dict(extra, fleet_report_dir=str(self.workdir / ("report-%d" % self.count)))
        command = [self.ansible_playbook, "-i", str(self.inventory(True)), playbook, "-l", limit, "-e",
                   json.dumps(extra)] + (["--check"] if check else [])
        res = subprocess.run(command, env=self.env, cwd=str(self.workdir), stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, universal_newlines=True, timeout=PLAYBOOK_TIMEOUT, check=False)
        (self.workdir / ("run-%d.log" % self.count)).write_text(res.stdout)
        return res.returncode, res.stdout

    def run(self, playbook: str, extra: dict, builder_reachable: bool = True, check: bool = False):
        """(returncode, output, report dict, report directory)."""
        self.count += 1
        report_dir = self.workdir / ("report-%d" % self.count)
        extra = dict(extra, fleet_report_dir=str(report_dir))
        command = [self.ansible_playbook, "-i", str(self.inventory(builder_reachable)), playbook, "-e",
                   json.dumps(extra)] + (["--check"] if check else [])
        res = subprocess.run(command, env=self.env, cwd=str(self.workdir), stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, universal_newlines=True, timeout=PLAYBOOK_TIMEOUT, check=False)
        (self.workdir / ("run-%d.log" % self.count)).write_text(res.stdout)
        report_json = report_dir / "report.json"
        if not report_json.exists():
            pytest.fail("%s wrote no report (rc %d):\n%s" % (playbook, res.returncode, res.stdout[-6000:]))
        return res.returncode, res.stdout, json.loads(report_json.read_text()), report_dir

    def cached_facts(self, host: str) -> dict:
        """The go_cache facts the jsonfile plugin keeps for host."""
        (path,) = [p for p in self.facts.iterdir() if p.name.endswith(host)]
        data = json.loads(path.read_text())
        if "__payload__" in data:  # ansible-core 2.19+ envelope
            data = json.loads(data["__payload__"])
        return data.get("ansible_facts", data)["go_cache"]


def disk_bytes(root: str) -> int:
    """Sum of regular file sizes under root, the way the facts count a build cache (fuzz/ aside)."""
    total = 0
    for dirpath, dirnames, filenames in os.walk(root):
        if dirpath == root and "fuzz" in dirnames:
            dirnames.remove("fuzz")
        total += sum(os.lstat(os.path.join(dirpath, name)).st_size for name in filenames
                     if not os.path.islink(os.path.join(dirpath, name)))
    return total


def counted_bytes(facts: dict) -> int:
    """A host's bytes from its facts, each (kind, real path) once."""
    seen = {}
    for cache in facts["caches"]:
        seen.setdefault((cache["kind"], cache["real_path"] or cache["path"]), cache["bytes"])
    return sum(seen.values())


@pytest.fixture(scope="module")
def fleet(go_caches, tmp_path_factory):
    _ensure_collection_link()
    workdir = tmp_path_factory.mktemp("fleet")
    shared = new_build_cache(str(workdir / "shared-go-build"))
    now = time.time()
    for index in range(4):
        add_entry(shared, "shared-%d" % index, 20000 + index, now - (index * 20 + 1) * DAY)
    fleet = Fleet(workdir)
    fleet.shared = shared
    fleet.user = go_caches.user
    fleet.vars = {
        "gofleet_users": [go_caches.user],
        "gofleet_caches": [{"path": shared, "kind": "build"}],
        "fleet_report_select": {"big_caches": "caches[?bytes > `50000`].[user, kind]",
                                "unreachable": "failed[?status=='unreachable'].host"},
    }
    return fleet


@pytest.fixture(scope="module")
def first(fleet):
    return fleet.run("gofleet.cache.audit", fleet.vars)


def test_audit_reports_every_host_and_fails_the_unreachable(first):
    rc, output, report, _dir = first
    assert rc == 2, output[-3000:]  # dark-1 is failed at the end, after the report
    status = dict((row["host"], row["status"]) for row in report["hosts"])
    assert status == {"builder-1": "ok", "dark-1": "unreachable"}
    (failed,) = report["failed"]
    assert failed["host"] == "dark-1" and "port 1" in failed["reason"]
    assert report["selections"]["unreachable"]["result"] == ["dark-1"]
    assert "Without facts: dark-1 (unreachable: " in output


def test_report_numbers_are_the_facts_and_the_disk(fleet, first):
    _rc, _output, report, _dir = first
    facts = fleet.cached_facts("builder-1")  # the fact cache has what the module returned
    (host,) = [row for row in report["hosts"] if row["host"] == "builder-1"]
    assert host["bytes"] == counted_bytes(facts) == report["totals"]["bytes"]
    assert host["files"] == sum(cache["files"] for cache in report["caches"] if cache["counted"])
    kinds = sorted((cache["user"], cache["kind"]) for cache in report["caches"])
    assert kinds == sorted([(fleet.user, "build"), (fleet.user, "module"), (fleet.user, "fuzz"), ("root", "build")])
    (shared,) = [cache for cache in report["caches"] if cache["path"] == fleet.shared]
    assert shared["bytes"] == disk_bytes(fleet.shared) and shared["entries"] == 4 and shared["source"] == "explicit"
    assert report["selections"]["big_caches"]["result"] == [
        [cache["user"], cache["kind"]] for cache in report["caches"] if cache["bytes"] > 50000]


def test_every_format_is_written(first):
    _rc, output, report, report_dir = first
    names = sorted(os.listdir(str(report_dir)))
    assert names == ["report.csv", "report.html", "report.json", "report.md", "selections.csv"]
    rows = list(csv.DictReader(io.StringIO((report_dir / "report.csv").read_text(), newline="")))
    assert len(rows) == len(report["caches"]) + 1 and rows[-1]["host"] == "dark-1"
    html = (report_dir / "report.html").read_text()
    assert "<link" not in html and " src=" not in html and "http:" not in html and "https:" not in html
    assert (report_dir / "report.md").read_text().startswith("# Go cache fleet report\n")
    assert "Report: %s/report.html" % report_dir in output


def test_growth_against_the_previous_report(fleet, first):
    _rc, _output, before, before_dir = first
    action_id, output_id = add_entry(fleet.shared, "grown", 123456, time.time())
    added = sum(os.lstat(os.path.join(fleet.shared, name[:2], name)).st_size
                for name in (action_id + "-a", output_id + "-d"))
    rc, output, report, _dir = fleet.run("gofleet.cache.audit", dict(
        fleet.vars, fleet_report_previous=str(before_dir / "report.json")))
    assert rc == 2, output[-3000:]
    growth = report["growth"]
    assert growth["previous_generated_at"] == before["generated_at"]
    assert growth["hosts"] == [{"host": "builder-1", "bytes": before["totals"]["bytes"] + added,
                                "previous_bytes": before["totals"]["bytes"], "growth_bytes": added}]
    fleet.second = report


def test_report_from_the_fact_cache_touches_no_host(fleet, first):
    if not hasattr(fleet, "second"):
        pytest.skip("needs test_growth_against_the_previous_report")
    previous = fleet.workdir / "report-2" / "report.json"
    rc, output, report, _dir = fleet.run("gofleet.cache.audit", dict(
        fleet.vars, gofleet_from_cache=True, fleet_report_previous=str(previous)), builder_reachable=False)
    # builder-1 cannot be reached now: ok means its facts came from the cache and nobody tried to connect
    assert rc == 0, output[-3000:]
    status = dict((row["host"], (row["status"], row["bytes"])) for row in report["hosts"])
    assert status["builder-1"] == ("ok", fleet.second["totals"]["bytes"])
    assert status["dark-1"][0] == "missing"
    assert report["caches"] == fleet.second["caches"]
    assert report["growth"]["hosts"][0]["growth_bytes"] == 0
    assert "unreachable=1" not in output and "Stop here, no host was contacted" in output


def test_prune_check_reports_the_reclaim_and_removes_nothing(fleet, first):
    before = {cache["real_path"]: disk_bytes(cache["real_path"]) for cache in first[2]["caches"]
              if cache["kind"] == "build" and cache["exists"]}
    rc, output, report, _dir = fleet.run("gofleet.cache.prune", dict(
        fleet.vars, gofleet_policy={"kinds": ["build", "module"], "max_age": "30d"}), check=True)
    assert rc == 4, output[-3000:]  # dark-1 cannot be reached by the prune play
    reclaim = report["reclaim"]
    assert reclaim["mode"] == "check" and reclaim["hosts_with_result"] == 1
    # the go_caches fixture aged build entries and the toolchain module 40 days: there is something to reclaim
    assert reclaim["bytes"] > 0 and reclaim["bytes"] == sum(
        cache["reclaim_bytes"] or 0 for cache in report["caches"] if cache["counted"])
    (failed,) = report["failed"]
    assert failed["host"] == "dark-1" and failed["status"] == "unreachable" and "port 1" in failed["reason"]
    assert "Reclaimable under the policy (dry run)" in output
    assert before == {path: disk_bytes(path) for path in before}


def shared_entries(fleet):
    return sorted(name for bucket in os.listdir(fleet.shared) if len(bucket) == 2
                  for name in os.listdir(os.path.join(fleet.shared, bucket)) if name.endswith("-a"))


def test_prune_with_its_documented_defaults_prunes_the_connecting_account(fleet, first):
    """No gofleet_users, no policy: one prune of the connecting account's build cache (ansible-core 2.19 and later
    skipped a loop over [omit] and exited 0 having pruned nothing), here as an async job polled every second."""
    before = shared_entries(fleet)
    rc, output = fleet.run_plain("gofleet.cache.prune", {"gofleet_report": False, "gofleet_async": 120,
                                                         "gofleet_poll": 1}, check=True, limit="builder-1")
    assert rc == 0, output[-3000:]
    assert "ok: [builder-1] => (item=connecting account)" in output, output[-3000:]
    # the connecting account (root, HOME the test's) has no build cache yet: said so, in binary units and words
    assert '"Would remove 0 units, 0 B of 0 B; kept nothing; 0 errors; missing: %s/home/.cache/go-build"' % (
        fleet.workdir) in output, output[-3000:]
    assert shared_entries(fleet) == before  # not asked for: the shared cache is untouched


@pytest.mark.parametrize("policy, words", [
    ({"keep_version": 1}, ["keep_version"]),                      # a typo: named, not dropped
    ({"max_age": "30d", "min_free": "15"}, ["min_free", "'15'", "bare number"]),
    ({"max_age": "30d", "path": "/srv"}, ["gofleet_policy", "gofleet_caches"]),
])
def test_prune_refuses_a_policy_it_does_not_understand(fleet, first, policy, words):
    before = shared_entries(fleet)
    rc, output = fleet.run_plain("gofleet.cache.prune", dict(fleet.vars, gofleet_report=False, gofleet_policy=policy),
                                 limit="builder-1")
    assert rc != 0, output[-3000:]
    for word in words:
        assert word in output, (word, output[-3000:])
    assert shared_entries(fleet) == before


def test_prune_takes_the_schedule_roles_policy_and_shared_caches(fleet, first):
    """The policy dictionary of cleanup_schedule_policy, kinds included, applied to the shared cache only."""
    now = time.time()
    ages = {}
    for bucket in os.listdir(fleet.shared):
        if len(bucket) == 2:
            for name in os.listdir(os.path.join(fleet.shared, bucket)):
                if name.endswith("-a"):
                    ages[name] = (now - os.lstat(os.path.join(fleet.shared, bucket, name)).st_mtime) / DAY
    rc, output = fleet.run_plain("gofleet.cache.prune", {
        "gofleet_users": [], "gofleet_caches": [{"path": fleet.shared, "kind": "build"}], "gofleet_report": False,
        "gofleet_policy": {"kinds": ["build"], "max_age": "30d", "keep_recent": "1h", "if_busy": "proceed"}},
        limit="builder-1")
    assert rc == 0, output[-3000:]
    assert "Prune the shared caches" in output and "ok: [builder-1] => (item=build %s)" % fleet.shared in output \
        or "changed: [builder-1] => (item=build %s)" % fleet.shared in output, output[-3000:]
    assert shared_entries(fleet) == sorted(name for name, age in ages.items() if age < 30)
    assert len(shared_entries(fleet)) < len(ages)
