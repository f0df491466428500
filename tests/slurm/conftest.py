"""The SLURM lab for the tests in this folder: one real cluster per session, restarted per config.

`slurm_lab` starts munged, slurmctld and slurmd once (no accounting, a long
MinJobAge); a test that needs another config says so with
`slurm_lab.ensure(accounting=True, min_job_age=30)`, which restarts the
daemons only when the config differs. The lab is stopped at the end of the
session however the tests end, and the teardown fails if a daemon it started
is still there. Mark the tests with `needs.slurm`.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
import slurmlab
from slurmlab import DeadController, LabConfig, LabError, SlurmLab

# The long MinJobAge of the tests that do not test purging: no record vanishes mid-test.
LONG_MIN_JOB_AGE = 600

_labs: list[SlurmLab] = []


def _cannot(why: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(f"CI must run the SLURM tests, but {why}")
    pytest.skip(reason=why)


@pytest.fixture(scope="session")
def slurm_lab() -> Iterator[SlurmLab]:
    lacking = slurmlab.missing(accounting=True)
    if lacking:
        _cannot(f"the SLURM lab needs {lacking}")
    lab = SlurmLab()
    _labs.append(lab)
    try:
        lab.start(LabConfig(min_job_age=LONG_MIN_JOB_AGE))
    except LabError as e:
        # munged or a SLURM daemon that cannot start here (a container without its needs, say)
        _cannot(f"the SLURM lab does not start on this machine: {e}")
    try:
        yield lab
    finally:
        pids = lab.running
        lab.stop()
        left = {name: pid for name, pid in pids.items() if os.path.exists(f"/proc/{pid}")}
        assert not left, f"daemons the lab started are still running: {left}"


@pytest.fixture
def dead_controller(slurm_lab: SlurmLab) -> Iterator[DeadController]:
    """A SLURM_CONF for the lab's cluster whose controller port accepts and never answers."""
    with slurmlab.dead_controller(slurm_lab) as dead:
        yield dead


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    for lab in (lab for lab in _labs if lab.timings.history):
        cgroup = "cgroup" if lab.uses_cgroup else f"linuxproc, {lab.cgroup_note or 'as asked'}"
        terminalreporter.write_line(f"SLURM lab ({cgroup}): {lab.timings.summary()}")
