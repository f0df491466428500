"""lost.judge: the rules that call a job lost, one by one (the harness tests run them end to end)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from notifyd.nodes.reader import Node
from notifyd.records import RunningJob
from notifyd.state import State
from notifyd.watcher.lost import Evidence, judge, sweep

START = 1_800_000_000.0
JOB = RunningJob(pid=4242, start_ts=START, host="n1")


def _node(*, stale: bool = False, boot: float = START - 3600, taken: float = START + 60,
          pids: list[list[Any]] | None = None) -> Node:
    return Node("n1", {"time": taken, "boot_time": boot, "pids": pids or []}, 10.0, stale)


def _judge(node: Node | None, silent: float = 0.0, missing_for: float | None = None) -> tuple[str, bool]:
    return judge(JOB, node, silent, missing_for, grace=120.0, silent_after=900.0)


def test_listed_process_is_not_missing() -> None:
    assert _judge(_node(pids=[[4242, START + 0.4]])) == ("", False)


def test_same_pid_with_another_start_time_is_a_different_process() -> None:
    assert _judge(_node(pids=[[4242, START + 30]])) == ("", True)


def test_missing_process_is_lost_only_after_the_grace() -> None:
    assert _judge(_node(), missing_for=60.0) == ("", True)
    reason, _ = _judge(_node(), missing_for=120.0)
    assert "process is gone" in reason


def test_snapshot_taken_too_soon_after_the_start_proves_nothing() -> None:
    assert _judge(_node(taken=START + 2)) == ("", False)


def test_reboot_after_the_start_is_a_loss() -> None:
    assert "rebooted" in _judge(_node(boot=START + 600, pids=[[4242, START]]))[0]


def test_stale_snapshot_counts_only_as_silence() -> None:
    assert _judge(_node(stale=True), silent=600.0) == ("", False)
    assert "silent for 16 min" in _judge(_node(stale=True), silent=960.0)[0]


def test_no_snapshots_and_a_quiet_host_within_bounds_is_not_lost() -> None:
    assert _judge(None, silent=899.0) == ("", False)


@pytest.mark.parametrize(("silent_after", "silent", "said"), [
    (30.0, 45.0, "silent for 45 s"), (0.0, 0.3, "silent for under a second"),
    (900.0, 5400.0, "silent for 1 h 30 min"),
])
def test_a_silent_host_is_said_to_be_silent_for_a_time_that_is_never_zero(
        silent_after: float, silent: float, said: str) -> None:
    # Before: "its host has been silent for 0 min" whenever host_silent_after was under a minute.
    reason, _ = judge(JOB, None, silent, None, grace=120.0, silent_after=silent_after)
    assert reason == f"its host has been {said}"


def test_a_host_that_left_no_trace_at_all_is_not_said_to_be_silent_for_fifty_years(tmp_path: Path) -> None:
    state = State(running={"j": JOB})
    evidence = Evidence({}, str(tmp_path / "events"), str(tmp_path / "alive"), START + 3600)
    _, found = sweep(state, evidence, grace=120.0, silent_after=900.0)
    assert [lost.reason for _, lost in found] == [
        "its host has been silent for as long as notifyd can tell "
        "(no snapshot, spool write or liveness mark from it)"]
