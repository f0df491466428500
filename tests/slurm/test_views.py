"""`notifyd nodes`, `jobs` and `status` on a host with SLURM: the scheduler's view beside notifyd's own."""

from __future__ import annotations

import json
from collections.abc import Iterator

import needs
import pytest
from harness import Receiver, wait_until
from slurmlab import SlurmLab
from slurmuser import SlurmUser

pytestmark = needs.slurm


@pytest.fixture
def user(slurm_lab: SlurmLab, receiver: Receiver) -> Iterator[SlurmUser]:
    slurm_lab.resume_node()
    u = SlurmUser(slurm_lab, receiver).configure()
    yield u
    u.stop_watcher()


def test_nodes_shows_the_slurm_node_with_what_is_allocated(slurm_lab: SlurmLab, user: SlurmUser) -> None:
    job = slurm_lab.submit("sleep 30", "-J", "holder", "-c", "1", "--mem=100M", env=user.env)
    slurm_lab.wait_state(job, "RUNNING")
    try:
        p = user.notifyd("nodes")
    finally:
        slurm_lab.cancel(job)
    assert p.returncode == 0, p.stderr
    row = next(line for line in p.stdout.splitlines() if line.startswith(slurm_lab.node.name))
    assert f" 1/{slurm_lab.node.cpus} " in row and "100M/" in row and "debug" in row
    assert "mixed" in row or "allocated" in row, row


def test_nodes_json_has_the_slurm_node_with_its_drain_reason(slurm_lab: SlurmLab, user: SlurmUser) -> None:
    slurm_lab.set_node_state("drain", reason="new fans")
    try:
        p = user.notifyd("nodes", "--json")
    finally:
        slurm_lab.resume_node()
    assert p.returncode == 0, p.stderr
    (node,) = [n for n in json.loads(p.stdout) if n["source"] == "slurm"]
    assert set(node) == {"source", "name", "state", "cpus_alloc", "cpus_total", "mem_total_mb",
                         "mem_alloc_mb", "mem_free_mb", "load", "partitions", "reason"}  # as README says
    assert node["name"] == slurm_lab.node.name and node["reason"] == "new fans"
    assert "drain" in node["state"].lower()


def test_nodes_free_leaves_out_a_drained_slurm_node(slurm_lab: SlurmLab, user: SlurmUser) -> None:
    slurm_lab.set_node_state("drain", reason="new fans")
    try:
        p = user.notifyd("nodes", "--free", "--json")
    finally:
        slurm_lab.resume_node()
    assert [n for n in json.loads(p.stdout) if n["source"] == "slurm"] == []
    assert p.returncode == 1


def test_jobs_lists_a_pending_job_with_its_reason_and_a_running_one_with_its_node(
        slurm_lab: SlurmLab, user: SlurmUser) -> None:
    user.start_watcher()
    running = slurm_lab.submit("sleep 30", "-J", "busy", env=user.env)
    held = slurm_lab.submit("true", "-J", "held", "--hold", env=user.env)
    slurm_lab.wait_state(running, "RUNNING")
    try:
        def both() -> dict[str, dict[str, object]]:
            rows = {str(r.get("slurm_job")): r for r in user.jobs_json()["running"]}
            # The watcher may first have seen the job pending: wait for its next poll.
            listed = {str(running), str(held)} <= set(rows)
            return rows if listed and rows[str(running)]["state"] == "RUNNING" else {}
        rows = wait_until(both, 20, "notifyd jobs to list both jobs")
        table = user.notifyd("jobs").stdout
    finally:
        slurm_lab.cancel(running)
        slurm_lab.cancel(held)
    assert rows[str(running)]["state"] == "RUNNING" and rows[str(running)]["host"] == slurm_lab.node.name
    assert rows[str(held)]["state"] == "PENDING" and rows[str(held)]["reason"] == "JobHeldUser"
    assert f"busy ({running})" in table and f"held ({held})" in table


def test_status_says_the_slurm_source_polls_and_whether_accounting_answers(
        slurm_lab: SlurmLab, user: SlurmUser) -> None:
    user.start_watcher()
    wait_until(lambda: user.status_json().get("slurm"), 20, "the first SLURM poll")
    report = user.status_json()["slurm"]
    assert report["active"] and report["cluster"] == "lab" and report["error"] is None
    if not slurm_lab.accounting:  # with accounting: None until sacct first answers
        assert report["accounting"] is False
    line = next(x for x in user.notifyd("status").stdout.splitlines() if x.startswith("slurm:"))
    assert line.startswith("slurm:      polling on ") and "cluster lab" in line
