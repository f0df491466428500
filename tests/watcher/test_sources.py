"""The spool and legacy sources: one bad line is skipped and counted where it is read, the rest goes on."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from notifyd.watcher.sources.spool import SpoolFile


def _line(**fields: Any) -> bytes:
    ev = {"v": 1, "ev": "start", "job": "node5-1-abcd1234", "host": "node5", "pid": 1, "ts": 1759489559.1,
          **fields}
    return json.dumps(ev).encode() + b"\n"


def test_a_spool_line_with_an_absurd_start_time_is_counted_malformed_and_the_next_one_read(
        tmp_path: Path) -> None:
    spool = tmp_path / "node5.jsonl"
    spool.write_bytes(_line(job="node5-1-a", start_ts=1e308) + _line(job="node5-2-b", start_ts=10**400)
                      + _line(job="node5-3-c", host="../etc") + _line(job="node5-4-d"))
    polled = SpoolFile(str(spool)).poll(None, 0.0)
    assert [ev["job"] for ev in polled.events] == ["node5-4-d"]
    assert polled.malformed == 3
    assert any("'start_ts'" in w and "at byte 0" in w for w in polled.warnings)


def test_a_spool_cursor_saved_with_a_negative_offset_reads_the_file_again_instead_of_failing(
        tmp_path: Path) -> None:
    spool = tmp_path / "node5.jsonl"
    spool.write_bytes(_line(job="node5-1-a"))
    polled = SpoolFile(str(spool)).poll({"offset": -5, "head": "", "skipping": False}, 0.0)
    assert [ev["job"] for ev in polled.events] == ["node5-1-a"]
