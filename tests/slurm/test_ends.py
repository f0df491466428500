"""Every way a SLURM job ends, told by a real watcher of the test user, with and without accounting.

One batch of jobs per mode (a module fixture): each ends in its own way on
the lab's node, the watcher (as the test user, polling `squeue --me -t all`
every second) tells them, and each test below reads one job's message at
the local webhook. Without accounting the words come from squeue alone;
with slurmdbd they also carry what only sacct knows (who cancelled, CPU
time, peak memory over the steps).
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import needs
import pytest
from harness import serve_receiver, wait_until
from slurmlab import TEST_USER, SlurmLab
from slurmuser import SlurmUser

pytestmark = needs.slurm

ENDED = ("COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "OUT_OF_MEMORY", "NODE_FAIL", "PREEMPTED",
         "DEADLINE")
OOM_SCRIPT = "python3 -c 'x = bytearray(400 * 2**20); import time; time.sleep(5)'"


@dataclass
class Batch:
    """The jobs of one mode, by what each is meant to do; the user whose watcher told them."""

    user: SlurmUser
    accounting: bool
    jobs: dict[str, int] = field(default_factory=dict)
    ends: dict[str, str] = field(default_factory=dict)  # the state squeue showed at the end

    def told(self, name: str) -> dict[str, Any]:
        return self.user.message_for(self.jobs[name], timeout=120)


def _submit_all(lab: SlurmLab, user: SlurmUser) -> dict[str, int]:
    """One job per way of ending; the short ones before the two that hold a core for their minute."""
    env = user.env
    jobs = {"cancelled": lab.submit("sleep 300", "-J", "stopped", env=env)}
    lab.wait_state(jobs["cancelled"], "RUNNING", timeout=60)
    lab.cancel(jobs["cancelled"])
    jobs["pending"] = lab.submit("true", "-J", "waiting", "--hold", env=env)
    lab.wait_state(jobs["pending"], "PENDING", timeout=30)
    lab.cancel(jobs["pending"])
    jobs.update(
        completed=lab.submit("sleep 2", "-J", "fine", env=env),
        exit3=lab.submit("exit 3", "-J", "three", env=env),
        killed=lab.submit("#!/bin/bash\n#SBATCH -J killed\nkill -9 $$\n", env=env),
        # Five minutes asked, twenty seconds left before its deadline: no end is possible in
        # time, so the controller removes it (DEADLINE) within seconds, before it starts.
        deadline=lab.submit("true", "-J", "late", "-t", "5", "--deadline=now+20", env=env),
    )
    if lab.uses_cgroup:
        jobs["oom"] = lab.submit(OOM_SCRIPT, "-J", "hungry", "--mem=100M", env=env)
    jobs.update(
        timeout=lab.submit("sleep 300", "-J", "slow", "-t", "1", env=env),
        # pingch inside a job its limit kills: pingch dies with it and the scheduler tells it.
        capped=lab.submit("#!/bin/bash\n#SBATCH -J capped\n#SBATCH -t 1\npingch -t capped sleep 300\n",
                          env=env),
    )
    return jobs


@pytest.fixture(scope="module", params=[False, True], ids=["squeue only", "with accounting"])
def batch(request: pytest.FixtureRequest, slurm_lab: SlurmLab, tmp_path_factory: pytest.TempPathFactory
          ) -> Iterator[Batch]:
    accounting = bool(request.param)
    slurm_lab.ensure(accounting=accounting, min_job_age=600)
    with serve_receiver() as receiver:
        user = SlurmUser(slurm_lab, receiver).configure()
        user.start_watcher()
        try:
            b = Batch(user, accounting, _submit_all(slurm_lab, user))
            for name, job in b.jobs.items():
                b.ends[name] = slurm_lab.wait_state(job, ENDED, timeout=150)
            wait_until(lambda: all(user.messages_for(j) for j in b.jobs.values()), 60,
                       "a message about every job of the batch")
            yield b
        finally:
            user.stop_watcher()


def test_a_completed_job_is_told_as_completed_with_its_run_time(batch: Batch) -> None:
    body = batch.told("completed")
    assert body["title"].startswith(f"✅ fine (job {batch.jobs['completed']}) completed")
    assert "**COMPLETED**" in body["message"]
    assert re.search(r"\bran [23](\.\d)? s ", body["message"]), body["message"]
    assert body["type"] == "success"


def test_a_failed_job_says_its_exit_code(batch: Batch) -> None:
    body = batch.told("exit3")
    assert body["title"] == f"❌ three (job {batch.jobs['exit3']}) failed: exit 3"
    assert body["type"] == "failure"


def test_a_job_killed_by_a_signal_says_which_whatever_the_reason_text(batch: Batch) -> None:
    assert batch.ends["killed"] == "FAILED"
    body = batch.told("killed")
    assert body["title"] == f"❌ killed (job {batch.jobs['killed']}) failed: killed by SIGKILL"


def test_a_job_over_its_time_limit_is_told_with_the_limit(batch: Batch) -> None:
    assert batch.ends["timeout"] == "TIMEOUT"
    body = batch.told("timeout")
    assert body["title"] == f"❌ slow (job {batch.jobs['timeout']}) hit its time limit"
    assert "**TIMEOUT**" in body["message"]
    assert "ask for more time (sbatch -t): the limit was 1 min" in body["message"]
    assert "of its 1 min 00 s limit" in body["message"]


def test_pingch_inside_a_job_its_limit_kills_is_told_once_by_the_scheduler(batch: Batch) -> None:
    assert batch.ends["capped"] == "TIMEOUT"
    body = batch.told("capped")
    assert body["title"] == f"❌ capped (job {batch.jobs['capped']}) hit its time limit"
    assert "(told once for pingch inside the job and the scheduler)" in body["message"]


def test_a_job_that_missed_its_deadline_is_told_so(batch: Batch) -> None:
    assert batch.ends["deadline"] == "DEADLINE"
    body = batch.told("deadline")
    assert body["title"] == f"❌ late (job {batch.jobs['deadline']}) missed its deadline before it started"


def test_a_running_job_cancelled_is_told_as_cancelled(batch: Batch) -> None:
    body = batch.told("cancelled")
    title = f"❌ stopped (job {batch.jobs['cancelled']}) was cancelled"
    # Who cancelled is in accounting only (sacct's "CANCELLED by UID").
    assert body["title"] == (f"{title} by {TEST_USER}" if batch.accounting else title)
    assert "ran " in body["message"]


def test_a_pending_job_cancelled_is_told_as_never_having_run(batch: Batch) -> None:
    body = batch.told("pending")
    assert body["title"].startswith(f"❌ waiting (job {batch.jobs['pending']}) was cancelled")
    assert body["title"].endswith(" before it started")
    assert "it was still pending (waiting: JobHeldUser); it never ran" in body["message"]


def test_a_job_over_its_memory_is_told_as_out_of_memory_with_a_hint(batch: Batch) -> None:
    if "oom" not in batch.jobs:
        pytest.skip(f"OUT_OF_MEMORY needs task/cgroup, which cannot run here: {batch.user.lab.cgroup_note}")
    assert batch.ends["oom"] == "OUT_OF_MEMORY"
    body = batch.told("oom")
    assert body["title"] == f"❌ hungry (job {batch.jobs['oom']}) ran out of memory"
    assert re.search(r"ask for more memory than the 100(\.0)? MiB asked \(sbatch --mem\)", body["message"])


def test_accounting_adds_cpu_time_and_memory_against_what_was_asked(batch: Batch) -> None:
    body = batch.told("completed")
    if batch.accounting:
        assert "CPU efficiency" in body["message"]
        assert "requested" in body["message"]
    else:
        assert "CPU efficiency" not in body["message"]


def test_without_accounting_sacct_is_asked_once_and_never_again(batch: Batch) -> None:
    calls = batch.user.status_json()["slurm"]["calls"]
    if batch.accounting:
        assert calls.get("sacct", 0) >= 1
    else:
        assert calls.get("sacct", 0) <= 1, calls


def test_the_whole_batch_is_told_once_per_job_and_never_one_squeue_per_job(batch: Batch) -> None:
    time.sleep(3)  # three more polls: nothing told twice meanwhile
    for job in batch.jobs.values():
        assert len(batch.user.messages_for(job)) == 1, batch.user.messages_for(job)
    status = batch.user.status_json()["slurm"]
    polls = status["calls"]["squeue"]
    ran_for = time.time() - Path(batch.user.log).stat().st_ctime
    assert polls <= ran_for + 5, f"{polls} squeue calls in {ran_for:.0f} s: more than one a second"


def test_notifyd_jobs_lists_each_slurm_job_with_its_state(batch: Batch) -> None:
    finished = {f["slurm_job"]: f for f in batch.user.jobs_json()["finished"] if f.get("slurm_job")}
    for name, job in batch.jobs.items():
        assert str(job) in finished, f"{name} ({job}) is not in notifyd jobs: {sorted(finished)}"
        assert finished[str(job)]["slurm_state"] == batch.ends[name]
