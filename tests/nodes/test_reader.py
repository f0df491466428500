"""Reading snapshots from the shared procs directory (nodes/reader.py), file by file, in process."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest

from notifyd.nodes import reader
from notifyd.records import RunningJob
from notifyd.watcher import lost

NOW = time.time()


def _snapshot(**fields: Any) -> dict[str, Any]:
    return {"schema": 1, "host": "node5", "time": NOW, "boot_time": NOW - 86400, "cpu_count": 8,
            "load": [1.0, 0.5, 0.25], "mem_total": 2**35, "mem_available": 2**34, "users": {},
            "procs": [], "pids": [[4242, NOW - 60]], **fields}


@pytest.mark.parametrize("pids", [5, True, "1 2", [[4242, 10**400]], [[4242]], [["4242", NOW]],
                                  [[4242, None]], [4242], [[4242, NOW, 1]]], ids=repr)
def test_a_snapshot_whose_pids_are_not_pid_and_start_time_pairs_is_skipped_with_a_note(
        tmp_path: Path, pids: object) -> None:
    # Before: accepted, and the lost-job check raised on it (TypeError, OverflowError) every 30 s.
    (tmp_path / "node5.json").write_text(json.dumps(_snapshot(pids=pids)))
    nodes, notes = reader.load(tmp_path, 600.0, "node5")
    assert nodes == []
    assert notes == [f"skipped {tmp_path / 'node5.json'}: "
                     "field 'pids' is not a list of [pid, start time] pairs"]


def test_a_snapshot_with_good_pids_is_one_the_lost_check_can_judge_by(tmp_path: Path) -> None:
    (tmp_path / "node5.json").write_text(json.dumps(_snapshot()))
    (node,), _ = reader.load(tmp_path, 600.0, "node5")
    job = RunningJob(host="node5", pid=4242, start_ts=NOW - 60)
    assert lost.judge(job, node, 0.0, None, grace=120.0, silent_after=900.0) == ("", False)


def test_a_snapshot_removed_right_after_it_was_read_is_still_a_node(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Before: FileNotFoundError from the size check, and `notifyd procs` showed a traceback.
    (tmp_path / "node5.json").write_text(json.dumps(_snapshot()))
    read_one = reader.read_one

    def read_then_remove(path: Path) -> tuple[dict[str, Any] | None, float, str]:
        found = read_one(path)
        path.unlink()
        return found

    monkeypatch.setattr(reader, "read_one", read_then_remove)
    nodes, _ = reader.load(tmp_path, 600.0, "node5")
    assert [n.host for n in nodes] == ["node5"]
