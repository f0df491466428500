"""The snapshot's history (nodes/history.py): carried from the previous file, bounded, checked."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
from harness import NOTIFYD, Home

from notifyd.nodes import history, reader

NOW = 1_800_000_000.0
GIB = 2**30


def _snapshot(t: float = NOW, avail: int = 8 * GIB, **fields: Any) -> dict[str, Any]:
    return {"schema": 1, "host": "node5", "time": t, "boot_time": NOW - 86400, "cpu_count": 8,
            "load": [3.5, 2.0, 1.0], "mem_total": 32 * GIB, "mem_available": avail, "swap_used": GIB,
            "swap_total": 4 * GIB, "users": {}, "procs": [], "pids": [], **fields}


def test_a_first_snapshot_holds_its_own_row_only() -> None:
    assert history.carry(None, _snapshot()) == [[NOW, 8 * GIB, 32 * GIB, GIB, 4 * GIB, 3.5, 8]]


def test_each_snapshot_carries_the_previous_ones_rows_then_its_own_and_keeps_the_last_n() -> None:
    previous: dict[str, Any] | None = None
    for minute in range(history.KEEP + 5):
        snap = _snapshot(NOW + 60 * minute, avail=(20 - minute % 7) * GIB)
        snap["history"] = history.carry(previous, snap)
        previous = snap
    assert previous is not None
    rows = previous["history"]
    assert len(rows) == history.KEEP
    assert [r[0] for r in rows] == [NOW + 60 * m for m in range(5, history.KEEP + 5)]
    assert [s.time for s in history.samples(previous)] == [r[0] for r in rows]


def test_rows_from_before_a_reboot_or_from_the_future_are_not_carried() -> None:
    old = _snapshot(NOW - 60, history=[[NOW - 7200, GIB, 32 * GIB, 0, 0, 1, 8],
                                       [NOW - 120, 2 * GIB, 32 * GIB, 0, 0, 1, 8]])
    rebooted = _snapshot(boot_time=NOW - 100)
    assert [r[0] for r in history.carry(old, rebooted)] == [NOW - 60, NOW]
    clock_set_back = _snapshot(NOW - 90)
    assert [r[0] for r in history.carry(old, clock_set_back)] == [NOW - 7200, NOW - 120, NOW - 90]


def test_a_snapshot_without_history_is_one_sample_of_its_own_fields() -> None:
    (only,) = history.samples(_snapshot(swap_used=None))
    assert only == history.Sample(NOW, 8 * GIB, 32 * GIB, None, 4 * GIB, 3.5, 8)


@pytest.mark.parametrize("rows", [
    5, "rows", [[1, 2, 3]], [[NOW, -1, 1, 0, 0, 0, 1]], [[NOW, 1, 1, 0, 0, 0, True]],
    [[None, 1, 1, 0, 0, 0, 1]], [[NOW, 10**400, 1, 0, 0, 0, 1]],
    [[NOW, 1, 1, 0, 0, 0, 1]] * (history.MAX_ROWS + 1), [{"time": NOW}],
], ids=lambda r: repr(r)[:40])
def test_a_snapshot_with_a_malformed_history_is_skipped_with_a_note(tmp_path: Path, rows: object) -> None:
    (tmp_path / "node5.json").write_text(json.dumps(_snapshot(history=rows)))
    nodes, notes = reader.load(tmp_path, 600.0, "node5")
    assert nodes == [] and len(notes) == 1 and "history" in notes[0]


def test_nulls_where_a_number_is_unknown_are_accepted(tmp_path: Path) -> None:
    rows = [[NOW - 60, GIB, 32 * GIB, None, None, None, None]]
    (tmp_path / "node5.json").write_text(json.dumps(_snapshot(history=rows)))
    (node,), notes = reader.load(tmp_path, 600.0, "node5")
    assert notes == [] and [s.swap_used for s in node.history] == [None, GIB]


def test_notifyd_snapshot_run_twice_writes_two_rows_of_this_machine(home: Home) -> None:
    for _ in range(2):
        run = subprocess.run([NOTIFYD, "snapshot", "--interval", "0.1"], env=home.env,
                             capture_output=True, text=True, timeout=60)
        assert run.returncode == 0, run.stderr
    data = json.loads((home.state_dir / "procs" / f"{home.host}.json").read_text())
    rows = data["history"]
    assert len(rows) == 2 and rows[0][0] < rows[1][0] == data["time"]
    assert rows[1][1:] == [data["mem_available"], data["mem_total"], data["swap_used"],
                           data["swap_total"], data["load"][0], data["cpu_count"]]
