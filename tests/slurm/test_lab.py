"""The SLURM lab works, and what notifyd's SLURM source will rely on (SLURM 22.05, Debian 12).

Each test is one fact the source is built on, checked on a real cluster
with jobs submitted by a non-root user: what `squeue --me -t all` shows
after a job ends, how an exit status reads in `scontrol`, where MinJobAge
is read, what `sacct` says with and without slurmdbd, what a dead
controller does to a client. shared/design/slurm-facts.md has the rest.
"""

from __future__ import annotations

import os
import pwd
import re
import subprocess
import time

import needs
import pytest
from harness import REPO, wait_until
from slurmlab import TEST_USER, DeadController, SlurmLab

pytestmark = needs.slurm

ENDED = ("COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "OUT_OF_MEMORY", "NODE_FAIL", "PREEMPTED")


@pytest.fixture(autouse=True)
def _lab_is_up(slurm_lab: SlurmLab) -> None:
    """A test that stopped or broke the lab must not fail the next ones for that."""
    if not {"munged", "slurmctld", "slurmd"} <= set(slurm_lab.running):
        slurm_lab.start()


def _config(lab: SlurmLab) -> str:
    p = lab.as_user(["scontrol", "show", "config"], timeout=30)
    assert p.returncode == 0, p.stderr
    return p.stdout


# -- the lab itself ---------------------------------------------------------------------------
def test_a_job_submitted_as_the_test_user_runs_as_that_user(slurm_lab: SlurmLab) -> None:
    job = slurm_lab.submit("#!/bin/bash\n#SBATCH --job-name=whoami\nid -un; echo $HOME\n")
    assert slurm_lab.wait_state(job, ENDED) == "COMPLETED"
    assert slurm_lab.job_output(job).split() == [TEST_USER, str(slurm_lab.home)]
    assert slurm_lab.job_info(job)["JobName"] == "whoami"


def test_a_process_started_as_the_test_user_has_its_home_path_and_slurm_conf(slurm_lab: SlurmLab) -> None:
    code = "import os; print(os.getuid(), os.environ['HOME'], os.environ['SLURM_CONF'])"
    proc = slurm_lab.popen_as_user(["python", "-c", code], stdout=subprocess.PIPE)
    out, _ = proc.communicate(timeout=30)
    uid, home, conf = out.decode().split()
    assert (int(uid), home, conf) == (pwd.getpwnam(TEST_USER).pw_uid, str(slurm_lab.home),
                                      str(slurm_lab.conf))


def test_the_test_user_runs_notifyd_from_this_checkout_with_the_venvs_python(slurm_lab: SlurmLab) -> None:
    p = slurm_lab.as_user(["python", "-c", "import notifyd, os; print(os.getuid(), notifyd.__file__)"])
    assert p.returncode == 0, p.stderr
    uid, path = p.stdout.split()
    assert int(uid) != 0
    assert path.startswith(str(REPO))
    assert slurm_lab.as_user(["notifyd", "--help"]).returncode == 0


def test_the_test_users_clients_find_the_labs_config_through_slurm_conf(slurm_lab: SlurmLab) -> None:
    for argv in (["sinfo", "-h", "-o", "%P"], ["scontrol", "show", "partition"], ["squeue", "--me"]):
        p = slurm_lab.as_user(argv, timeout=30)
        assert p.returncode == 0, f"{argv}: {p.stderr}"
    assert "ClusterName             = lab" in _config(slurm_lab)


def test_cgroups_confine_jobs_only_where_the_memory_controller_is_usable(slurm_lab: SlurmLab) -> None:
    config = _config(slurm_lab)
    if slurm_lab.uses_cgroup:
        assert re.search(r"ProctrackType\s+= proctrack/cgroup", config)
        assert re.search(r"TaskPlugin\s+= task/cgroup,task/affinity", config)
    else:
        assert re.search(r"ProctrackType\s+= proctrack/linuxproc", config)
    print(f"cgroup detection: {slurm_lab.cgroup_note or 'memory controller usable'}")


def test_the_start_and_stop_times_are_recorded(slurm_lab: SlurmLab) -> None:
    assert slurm_lab.timings.history
    print(f"last start, by stage: {slurm_lab.timings.stages}; all: {slurm_lab.timings.summary()}")


# -- what the SLURM source relies on ----------------------------------------------------------
def test_a_finished_job_is_completed_in_the_users_squeue_me_all_states(slurm_lab: SlurmLab) -> None:
    job = slurm_lab.submit("true")
    slurm_lab.wait_state(job, ENDED)
    rows = {row.job_id: row for row in slurm_lab.squeue()}
    assert rows[str(job)].state == "COMPLETED"
    assert rows[str(job)].reason == "None"
    assert rows[str(job)].name == "wrap"


def test_exit_3_is_failed_with_exit_code_3_0_in_scontrol(slurm_lab: SlurmLab) -> None:
    job = slurm_lab.submit("exit 3")
    assert slurm_lab.wait_state(job, ENDED) == "FAILED"
    info = slurm_lab.job_info(job)
    assert (info["JobState"], info["Reason"], info["ExitCode"]) == ("FAILED", "NonZeroExitCode", "3:0")


def test_a_job_the_user_cancels_is_cancelled(slurm_lab: SlurmLab) -> None:
    job = slurm_lab.submit("sleep 300")
    slurm_lab.wait_state(job, "RUNNING")
    slurm_lab.cancel(job)
    assert slurm_lab.wait_state(job, ENDED) == "CANCELLED"


def test_a_node_set_down_ends_a_no_requeue_job_with_node_fail(slurm_lab: SlurmLab) -> None:
    job = slurm_lab.submit("sleep 300", "--no-requeue")
    slurm_lab.wait_state(job, "RUNNING")
    slurm_lab.set_node_state("down", "notifyd test: NODE_FAIL")
    try:
        assert slurm_lab.wait_state(job, ENDED) == "NODE_FAIL"
    finally:
        slurm_lab.resume_node()


def test_any_user_reads_min_job_age_from_scontrol_show_config(slurm_lab: SlurmLab) -> None:
    assert f"MinJobAge               = {slurm_lab.min_job_age} sec" in _config(slurm_lab)


def test_sacct_says_accounting_storage_is_disabled_without_slurmdbd(slurm_lab: SlurmLab) -> None:
    slurm_lab.ensure(accounting=False)
    p = slurm_lab.as_user(["sacct", "-X"], timeout=30)
    assert p.returncode == 1
    assert "Slurm accounting storage is disabled" in p.stdout + p.stderr


def test_squeue_against_a_dead_controller_fails_after_its_message_timeout(
        slurm_lab: SlurmLab, dead_controller: DeadController) -> None:
    t0 = time.monotonic()
    p = slurm_lab.as_user(["squeue", "--me", "-t", "all"], env=dead_controller.env(), timeout=120)
    took = time.monotonic() - t0
    print(f"squeue against a dead controller (MessageTimeout={dead_controller.message_timeout}): "
          f"exit {p.returncode} after {took:.1f} s: {p.stderr.strip()}")
    assert p.returncode != 0
    assert took >= dead_controller.message_timeout
    assert p.stdout == ""


# -- with another config: restarts ------------------------------------------------------------
def test_a_restart_applies_a_new_min_job_age(slurm_lab: SlurmLab) -> None:
    slurm_lab.ensure(min_job_age=30)
    assert slurm_lab.min_job_age == 30
    assert "MinJobAge               = 30 sec" in _config(slurm_lab)


def test_with_accounting_sacct_shows_the_job_and_its_batch_step(slurm_lab: SlurmLab) -> None:
    slurm_lab.ensure(accounting=True)
    job = slurm_lab.submit("exit 3")
    slurm_lab.wait_state(job, ENDED)

    def rows() -> dict[str, tuple[str, str]]:
        p = slurm_lab.as_user(["sacct", "-j", str(job), "-P", "-n", "-o", "JobID,State,ExitCode"])
        assert p.returncode == 0, p.stderr
        found = {}
        for line in p.stdout.splitlines():
            job_id, state, exit_code = line.split("|")
            found[job_id] = (state, exit_code)
        # slurmdbd may write the batch step's row before it updates the job's own row
        # from PENDING, so wait for both to be final.
        settled = f"{job}.batch" in found and found.get(str(job), ("PENDING",))[0] not in (
            "PENDING", "RUNNING")
        return found if settled else {}

    assert wait_until(rows, 20, "sacct to list the job's batch step") == {
        str(job): ("FAILED", "3:0"), f"{job}.batch": ("FAILED", "3:0")}


# -- last: the lab stops everything it started ------------------------------------------------
def test_stop_leaves_no_daemon_the_lab_started(slurm_lab: SlurmLab) -> None:
    config = slurm_lab.config
    started = slurm_lab.running
    assert {"munged", "slurmctld", "slurmd"} <= set(started)
    job = slurm_lab.submit("sleep 300")  # a running job's slurmstepd must not outlive the lab either
    slurm_lab.wait_state(job, "RUNNING")
    slurm_lab.stop()
    print(f"stop, by daemon: {slurm_lab.timings.stops}")
    try:
        assert slurm_lab.running == {}
        left = {name: pid for name, pid in started.items() if os.path.exists(f"/proc/{pid}")}
        assert left == {}
        assert slurm_lab.job_processes() == []  # its slurmstepd, the job's sleep
    finally:
        slurm_lab.start(config)

