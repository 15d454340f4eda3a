"""gofleet.cache.audit as AWX and Ansible Automation Platform run it: through ansible-runner, in a job's private
data directory, with the job's jsonfile fact cache.

AWX lays out each job as ansible-runner's private data directory: the project copy in ``project/``, the inventory
in ``inventory/``, extra vars and environment in ``env/``, and a fact cache in ``artifacts/<job>/fact_cache``
(``ANSIBLE_CACHE_PLUGIN=jsonfile``) that it fills from its database before the job and reads back after it.
The project directory is a throw-away copy: the report goes to an absolute ``fleet_report_dir``.

1. Job 1 audits this machine: the report is in the absolute directory, the job's artifacts carry the fleet totals
   (``set_stats``), equal to the report's, and the fact cache holds the host's facts.
2. Job 2 gets job 1's facts in its own fact cache, as AWX restores them, and runs the audit with
   ``gofleet_from_cache=true`` on an inventory whose host cannot be reached: the report is rebuilt from the
   cache alone, with the same totals, and no host is contacted.
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import pytest

from tests.integration.conftest import TARGET_PYTHON, Playbook, _ensure_collection_link

ansible_runner = pytest.importorskip("ansible_runner")

HOST = "builder-1"


def private_data_dir(base: Path, name: str, reachable: bool, extravars: dict) -> Path:
    pdd = base / name
    (pdd / "project").mkdir(parents=True)
    (pdd / "inventory").mkdir()
    (pdd / "env").mkdir()
    (pdd / "project" / "audit.yml").write_text("---\n- name: Audit Go caches\n"
                                               "  ansible.builtin.import_playbook: gofleet.cache.audit\n")
    host = "%s ansible_connection=local ansible_python_interpreter=%s" % (HOST, TARGET_PYTHON) if reachable else \
        "%s ansible_host=127.0.0.1 ansible_port=1 ansible_connection=ssh " \
        "ansible_ssh_common_args='-o ConnectTimeout=5'" % HOST
    (pdd / "inventory" / "hosts").write_text("[linux_builders]\n%s\n" % host)
    (pdd / "env" / "extravars").write_text(json.dumps(extravars))
    return pdd


def run_job(base: Path, name: str, reachable: bool, extravars: dict, facts_from=None):
    pdd = private_data_dir(base, name, reachable, extravars)
    fact_cache = pdd / "artifacts" / name / "fact_cache"
    fact_cache.mkdir(parents=True)
    if facts_from is not None:
        for path in facts_from.iterdir():  # AWX writes the facts it kept before the job starts
            shutil.copy(str(path), str(fact_cache / path.name))
    env = Playbook(base).env()
    env.update(PATH="%s:%s" % (Path(sys.executable).parent, env["PATH"]), ANSIBLE_CACHE_PLUGIN="jsonfile",
               ANSIBLE_CACHE_PLUGIN_CONNECTION=str(fact_cache), ANSIBLE_CACHE_PLUGIN_TIMEOUT="0",
               ANSIBLE_ASYNC_DIR=str(base / "async"))
    runner = ansible_runner.run(private_data_dir=str(pdd), playbook="audit.yml", ident=name, envvars=env,
                                quiet=True, timeout=600)
    stats = [event["event_data"].get("artifact_data", {}) for event in runner.events
             if event.get("event") == "playbook_on_stats"]
    output = runner.stdout.read()
    return runner, (stats[-1] if stats else {}), output, fact_cache


@pytest.fixture(scope="module")
def jobs(go_caches, tmp_path_factory):
    _ensure_collection_link()
    base = tmp_path_factory.mktemp("awx")
    report_dir = base / "reports"
    first = run_job(base, "job1", True,
                    {"gofleet_users": [go_caches.user], "fleet_report_dir": str(report_dir / "job1")})
    second = run_job(base, "job2", False, {"gofleet_users": [go_caches.user], "gofleet_from_cache": True,
                                           "fleet_report_dir": str(report_dir / "job2")}, facts_from=first[3])
    return base, report_dir, first, second


def test_the_job_writes_its_report_where_it_was_told_and_its_totals_as_artifacts(jobs, go_caches):
    base, report_dir, (runner, stats, output, fact_cache), _second = jobs
    assert runner.rc == 0 and runner.status == "successful", output[-3000:]
    report = json.loads((report_dir / "job1" / "report.json").read_text())
    assert not (base / "job1" / "project" / "gofleet-report").exists()  # nothing in the throw-away project copy
    totals = stats["gofleet_fleet_report"]
    assert totals["hosts"] == totals["hosts_ok"] == 1 and totals["hosts_failed"] == 0
    for key in ("caches", "missing_caches", "bytes", "files", "entries"):
        assert totals[key] == report["totals"][key], key
    assert totals["bytes"] > 0 and totals["report_dir"] == str(report_dir / "job1")
    assert [path.name for path in fact_cache.iterdir() if path.name.endswith(HOST)]  # the host's facts, kept


def test_a_later_job_rebuilds_the_report_from_the_fact_cache_alone(jobs):
    _base, report_dir, (_r1, stats1, _o1, _f1), (runner, stats, output, _fact_cache) = jobs
    assert runner.rc == 0 and runner.status == "successful", output[-3000:]
    assert "UNREACHABLE" not in output and "Stop here, no host was contacted" in output
    first = json.loads((report_dir / "job1" / "report.json").read_text())
    again = json.loads((report_dir / "job2" / "report.json").read_text())
    assert again["totals"] == first["totals"] and again["caches"] == first["caches"]
    assert stats["gofleet_fleet_report"]["bytes"] == stats1["gofleet_fleet_report"]["bytes"]
