"""SLURM jobs beyond a plain end: arrays, pingch inside sbatch, requeues, lost nodes, preemption,
a watcher that was down past MinJobAge, a controller that hangs, a host without SLURM.

Each test runs a real watcher as the lab's test user against the lab's
controller and reads the words at the local webhook.
"""

from __future__ import annotations

import re
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import needs
import pytest
from harness import Receiver, wait_until
from slurmlab import DeadController, Partition, SlurmLab
from slurmuser import SlurmUser

pytestmark = needs.slurm

ENDED = ("COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "OUT_OF_MEMORY", "NODE_FAIL", "PREEMPTED",
         "DEADLINE")
# A MinJobAge short enough to outlast in a test; slurmctld purges on its own
# timer (about once a minute), so a finished job is gone within ~70 s.
SHORT_MIN_JOB_AGE = 10


@pytest.fixture
def user(slurm_lab: SlurmLab, receiver: Receiver) -> Iterator[SlurmUser]:
    u = SlurmUser(slurm_lab, receiver)
    yield u
    u.stop_watcher()


def _lab(lab: SlurmLab, **config: object) -> SlurmLab:
    """The lab in the config a test needs (restarted only when it differs), its node up."""
    config.setdefault("accounting", False)
    config.setdefault("min_job_age", 600)
    config.setdefault("partitions", (Partition("debug", default=True),))
    config.setdefault("extra", ())
    lab.ensure(**config)
    lab.resume_node()
    return lab


# -- arrays -----------------------------------------------------------------------------------
ARRAY = ('#!/bin/bash\n#SBATCH -J sweep\n#SBATCH --array=1-5\n'
         '[ "$SLURM_ARRAY_TASK_ID" = 3 ] && exit 1\nexit 0\n')


def test_an_array_is_told_in_one_summary_with_its_failed_task(slurm_lab: SlurmLab, user: SlurmUser) -> None:
    lab = _lab(slurm_lab)
    user.configure().start_watcher()
    array = lab.submit(ARRAY, env=user.env)
    body = user.message_for(array, timeout=90)
    assert body["title"] == f"❌ array {array} (sweep) done: 5 tasks: 4 completed, 1 failed"
    assert "task 3 · failed: exit 1" in body["message"]
    assert "longest: task " in body["message"]
    time.sleep(3)
    # (Jobs of earlier tests stay in squeue for MinJobAge: this watcher tells them too, as any
    # first watcher tells the ends it finds; only this array's messages count here.)
    assert user.messages_about(array) == [body], "an array's tasks are told in its summary only"


def test_an_array_tells_each_failed_task_alone_when_asked(slurm_lab: SlurmLab, user: SlurmUser) -> None:
    lab = _lab(slurm_lab)
    user.configure(array_failures="yes").start_watcher()
    array = lab.submit(ARRAY, env=user.env)
    user.message_for(array, timeout=90)
    alone = user.messages_for(f"{array}_3")
    assert [b["title"] for b in alone] == [f"❌ sweep (job {array}_3) failed: exit 1"]
    assert len(user.messages_about(array)) == 2, [b["title"] for b in user.messages_about(array)]


# -- pingch inside sbatch -------------------------------------------------------------------------
def test_pingch_inside_a_batch_job_and_the_scheduler_are_told_once(slurm_lab: SlurmLab,
                                                                   user: SlurmUser) -> None:
    lab = _lab(slurm_lab, accounting=True)
    user.configure().start_watcher()
    script = ("#!/bin/bash\n#SBATCH -J inner\n#SBATCH --mem=600M\n"
              "pingch -t inner python3 -c 'x = bytearray(200 * 2**20); import time; time.sleep(1)'\n")
    job = lab.submit(script, env=user.env)
    body = user.message_for(job, timeout=60)
    assert body["title"] == f"✅ inner (job {job}) completed"
    assert "(told once for pingch inside the job and the scheduler)" in body["message"]
    # pingch's peak from wait4, not SLURM's 2 s sample of a 1 s job.
    peak = re.search(r"memory peak ([\d.]+) MiB of 600(?:\.0)? MiB requested([^\n]*)", body["message"])
    assert peak is not None, body["message"]
    assert 200 <= float(peak.group(1)) < 600 and "sampled by SLURM" not in peak.group(2), peak.group(0)
    time.sleep(3)
    assert len(user.messages_about(job)) == 1, user.messages_about(job)


# -- a node lost, a requeue, preemption, a deadline --------------------------------------------------
def test_a_job_whose_node_fails_is_told_as_node_fail(slurm_lab: SlurmLab, user: SlurmUser) -> None:
    lab = _lab(slurm_lab)
    user.configure().start_watcher()
    job = lab.submit("sleep 60", "-J", "stranded", "--no-requeue", env=user.env)
    lab.wait_state(job, "RUNNING")
    try:
        lab.set_node_state("down")
        assert lab.wait_state(job, ENDED) == "NODE_FAIL"
        body = user.message_for(job)
    finally:
        lab.resume_node()
    assert body["title"] == f"❌ stranded (job {job}) lost its node (NODE_FAIL)"


def test_a_job_requeued_after_its_node_failed_is_told_requeued_then_how_it_ended(
        slurm_lab: SlurmLab, user: SlurmUser) -> None:
    lab = _lab(slurm_lab)
    user.configure().start_watcher()
    job = lab.submit("sleep 4", "-J", "phoenix", "--requeue", env=user.env)
    lab.wait_state(job, "RUNNING")
    try:
        lab.set_node_state("down")
        wait_until(lambda: lab.job_info(job).get("Restarts") == "1", 30, "the job to be requeued")
    finally:
        lab.resume_node()
    # A requeued job waits ~2 min (BeginTime) before it may run again; the test need not.
    # Its first run's step must be gone first, or slurmd refuses a second copy and SLURM
    # holds the job (launch_failed_requeued_held).
    wait_until(lambda: not _stepds(lab), 30, "the first run's slurmstepd to end")
    lab.admin(["scontrol", "update", f"jobid={job}", "StartTime=now"])
    assert lab.wait_state(job, ("COMPLETED",), timeout=60) == "COMPLETED"
    wait_until(lambda: len(user.messages_for(job)) >= 2, 30, "the requeue and the end")
    titles = [b["title"] for b in user.messages_for(job)]
    assert titles == [f"🔁 phoenix (job {job}) was requeued", f"✅ phoenix (job {job}) completed"]
    requeued = user.messages_for(job)[0]["message"]
    assert "after a node failure or a preemption it is pending again (restart 1)" in requeued


def _stepds(lab: SlurmLab) -> list[int]:
    return [pid for pid in lab.job_processes()
            if Path(f"/proc/{pid}/comm").read_text().strip() == "slurmstepd"]


def test_a_preempted_job_is_told_as_preempted(slurm_lab: SlurmLab, user: SlurmUser) -> None:
    lab = _lab(slurm_lab, partitions=(Partition("debug", default=True, options="PriorityTier=1"),
                                      Partition("high", options="PriorityTier=2")),
               extra=("PreemptType=preempt/partition_prio", "PreemptMode=CANCEL"))
    user.configure().start_watcher()
    cpus = str(lab.node.cpus)
    low = lab.submit("sleep 120", "-J", "humble", "-c", cpus, env=user.env)
    lab.wait_state(low, "RUNNING")
    high = lab.submit("sleep 1", "-J", "urgent", "-p", "high", "-c", cpus, env=user.env)
    assert lab.wait_state(low, ENDED) == "PREEMPTED"
    body = user.message_for(low)
    assert body["title"] == f"❌ humble (job {low}) was preempted"
    assert user.message_for(high)["title"] == f"✅ urgent (job {high}) completed"


# -- the watcher down for longer than MinJobAge ---------------------------------------------------
def _down_past_min_job_age(lab: SlurmLab, user: SlurmUser) -> tuple[int, int]:
    """A job seen running, then the watcher stops; that job and a new one end and are purged."""
    user.configure().start_watcher()
    seen = lab.submit("sleep 3", "-J", "seen", env=user.env)
    wait_until(lambda: any(r.get("slurm_job") == str(seen) for r in user.jobs_json()["running"]), 30,
               "the watcher to see the job running")
    user.stop_watcher()
    unseen = lab.submit("exit 4", "-J", "unseen", env=user.env)
    for job in (seen, unseen):
        wait_until(lambda job=job: lab.state(job) == "", 150, f"slurmctld to purge job {job}")
    return seen, unseen


def test_down_past_min_job_age_with_accounting_every_end_is_caught_up(slurm_lab: SlurmLab,
                                                                     user: SlurmUser) -> None:
    lab = _lab(slurm_lab, accounting=True, min_job_age=SHORT_MIN_JOB_AGE)
    seen, unseen = _down_past_min_job_age(lab, user)
    user.start_watcher()
    assert user.message_for(seen)["title"] == f"✅ seen (job {seen}) completed"
    assert user.message_for(unseen)["title"] == f"❌ unseen (job {unseen}) failed: exit 4"
    assert user.status_json()["slurm"]["gap"] is None


def test_down_past_min_job_age_without_accounting_the_gap_is_said(slurm_lab: SlurmLab,
                                                                 user: SlurmUser) -> None:
    lab = _lab(slurm_lab, min_job_age=SHORT_MIN_JOB_AGE)
    seen, unseen = _down_past_min_job_age(lab, user)
    user.start_watcher()
    body = user.message_for(seen)
    assert body["title"] == f"🏁 seen (job {seen}) ended, details no longer available"
    wait_until(lambda: any("could not be checked" in b["title"] for b in user.messages()), 30,
               "the message naming the window")
    gap = [b for b in user.messages() if "could not be checked" in b["title"]]
    assert len(gap) == 1 and "MinJobAge" in gap[0]["message"]
    assert user.messages_for(unseen) == []
    since, until = user.status_json()["slurm"]["gap"]
    assert until - since > SHORT_MIN_JOB_AGE
    status = user.notifyd("status")
    assert "not checked: jobs that ended" in status.stdout


# -- a controller that hangs, a host without SLURM --------------------------------------------------
def test_a_hanging_controller_holds_back_no_other_job(slurm_lab: SlurmLab, user: SlurmUser,
                                                      dead_controller: DeadController) -> None:
    # Failures back off like idleness does, up to idle_interval.
    user.configure(timeout="1s", idle_interval="30s").start_watcher(env=dead_controller.env())
    wait_until(lambda: (user.status_json().get("slurm") or {}).get("error"), 30, "a failed SLURM poll")
    assert "did not answer within 1 s" in user.status_json()["slurm"]["error"]
    p = user.lab.as_user(["pingch", "-t", "local", "true"], user.env)
    assert p.returncode == 0, p.stderr
    wait_until(lambda: any(b["title"].startswith("✅ local") for b in user.messages()), 10,
               "the local job's message while squeue hangs")
    failed = [x for x in user.watcher_log().splitlines() if "SLURM poll failed" in x]
    assert failed and "squeue did not answer within 1 s" in failed[0]
    wait_until(lambda: user.status_json()["slurm"]["interval"] >= 4, 30,
               "polls that failed again to back off")
    said = [x for x in user.watcher_log().splitlines() if "SLURM poll failed" in x]
    assert len(said) == 1, "the same failure is said once (and hourly), not at every poll"


def test_a_lease_holder_without_slurm_tools_still_tells_pingch_jobs_from_slurm(
        slurm_lab: SlurmLab, user: SlurmUser) -> None:
    bin_dir = Path(sys.executable).parent  # notifyd, pingch and python; no squeue
    user.configure(slurm="enabled = yes\n").start_watcher(env={"PATH": str(bin_dir)})
    # pingch as inside a SLURM job on a compute node; only the watcher's host lacks squeue.
    p = user.lab.as_user(["pingch", "-t", "from-the-cluster", "true"], {**user.env, "SLURM_JOB_ID": "77"})
    assert p.returncode == 0, p.stderr
    wait_until(lambda: any("from-the-cluster" in b["title"] for b in user.messages()), 15,
               "the job's message from a watcher that cannot ask SLURM")
    assert "has no squeue: SLURM jobs are not followed" in user.watcher_log()


def test_one_squeue_per_poll_however_many_jobs(slurm_lab: SlurmLab, user: SlurmUser) -> None:
    lab = _lab(slurm_lab)
    user.configure(interval="2s").start_watcher()
    started = time.monotonic()
    jobs = [lab.submit("sleep 5", "-J", f"many{i}", env=user.env) for i in range(8)]
    for job in jobs:
        lab.wait_state(job, ENDED, timeout=90)
    wait_until(lambda: all(user.messages_for(j) for j in jobs), 30, "every job's message")
    calls = user.status_json()["slurm"]["calls"]
    polls = (time.monotonic() - started) / 2
    assert calls["squeue"] <= polls + 3, f"{calls} in {polls:.0f} polls of 2 s"
    assert "sacct" not in calls, "no accounting here: the config says so and sacct is never asked"


def test_the_last_lines_of_the_jobs_output_come_with_its_end_when_asked(slurm_lab: SlurmLab,
                                                                        user: SlurmUser) -> None:
    lab = _lab(slurm_lab)
    user.configure(tail="2").start_watcher()
    job = lab.submit("echo first; echo converged; echo 'E = -76.4 Ha'; exit 2", "-J", "scf", env=user.env)
    body = user.message_for(job)
    assert body["title"] == f"❌ scf (job {job}) failed: exit 2"
    assert f"last lines of `{lab.home}/slurm-{job}.out`:" in body["message"]
    assert "converged\nE = -76.4 Ha" in body["message"] and "first" not in body["message"]
