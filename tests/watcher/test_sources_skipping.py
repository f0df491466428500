"""The spool and legacy sources: one bad line is skipped and counted where it is read, the rest goes on."""

from __future__ import annotations

import json
import logging
import math
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fakes import FixedClock, HeldLease, inbox_target

from notifyd import config, paths
from notifyd.watcher.loop import Watcher, setup_logging
from notifyd.watcher.sources.base import Polled
from notifyd.watcher.sources.legacy import LegacyFile
from notifyd.watcher.sources.spool import SpoolFile, shown


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


def _legacy_poll(tmp_path: Path, text: str, cursor: dict[str, Any] | None) -> Polled:
    path = tmp_path / ".pingchilling"
    path.write_text(text)
    return LegacyFile(str(path)).poll(cursor, 0.0)


@pytest.mark.parametrize("status", ["²", "--3", "9" * 30, "-", "0x1"], ids=lambda s: s[:4])
def test_a_legacy_finish_whose_status_is_not_a_number_is_told_with_its_exit_unknown(
        tmp_path: Path, status: str) -> None:
    # Before: int() raised in pairing, the poll failed, and so did every round after it.
    polled = _legacy_poll(tmp_path, f"1001@node5: Finished [{status}] 2025-10-03 13:40:01\n",
                          {"offset": 0, "head": "", "open": {}})
    assert [ev["exit"] for ev in polled.events] == [None]


@pytest.mark.parametrize("ts", [math.inf, math.nan, 1e308, -5.0, "soon"], ids=repr)
def test_a_legacy_open_start_saved_with_an_impossible_time_is_paired_without_it(
        tmp_path: Path, ts: object) -> None:
    # Before: int(inf) raised OverflowError in pairing.
    polled = _legacy_poll(tmp_path, "1001@node5: Finished [0] 2025-10-03 13:40:01\n",
                          {"offset": 0, "head": "", "open": {"1001@node5": {"title": "relax", "ts": ts}}})
    (ev,) = polled.events
    assert (ev["title"], ev["start_ts"], ev["exit"]) == ("relax", None, 0)


# -- what the log says ---------------------------------------------------------------------------


@pytest.fixture
def notifyd_log() -> Iterator[None]:
    """The watcher's logger as setup_logging leaves it, put back afterwards."""
    logger = logging.getLogger("notifyd")
    saved = (logger.handlers[:], logger.level, logger.propagate)
    yield
    for handler in logger.handlers:
        handler.close()
    logger.handlers, logger.level, logger.propagate = saved[0], saved[1], saved[2]


def test_a_malformed_line_of_a_spool_file_whose_name_is_not_utf8_is_logged_with_the_name_escaped(
        tmp_path: Path, notifyd_log: None) -> None:
    p = paths.resolve({"HOME": str(tmp_path), "NOTIFYD_HOST": "w"})
    p.events_dir.mkdir(parents=True)
    with open(os.path.join(os.fsencode(p.events_dir), b"node\xff.jsonl"), "wb") as f:
        f.write(b"not json\n" + _line(ev="finish", job="node5-1-a", exit=0))
    setup_logging(p, "w", 1 << 20, to_stderr=False)
    watcher = Watcher(p, "w", config.load(p.config_file, {}), clock=FixedClock(),  # type: ignore[arg-type]
                      fence=HeldLease(), targets_=[inbox_target()], wake_up=False)  # type: ignore[arg-type]
    watcher.start()
    watcher.round()
    logged = p.log_file("w").read_text(encoding="utf-8")
    assert f"skipping malformed line in {p.events_dir}/node\\xff.jsonl at byte 0: not JSON" in logged
    assert "node5-1-a" in watcher.state.done


@pytest.mark.parametrize(("name", "logged"), [
    ("node\udcff.jsonl", "node\\xff.jsonl"), ("job-\ud800", "job-\\ud800"), ("node5", "node5")])
def test_a_name_for_the_log_is_shown_escaped_and_never_raises(name: str, logged: str) -> None:
    # Before: os.fsencode raised UnicodeEncodeError for "\ud800", inside the handler of a bad event.
    assert shown(name) == logged


def test_a_poll_of_a_file_of_tiny_garbage_lines_is_bounded_and_logs_a_summary(tmp_path: Path) -> None:
    # Before: one poll of 4 MiB of "x\n" kept 2 million warnings (~570 MB) and took half a minute.
    import tracemalloc

    from notifyd.spool.reader import MAX_LINES
    from notifyd.watcher.sources.spool import WARN_EACH

    spool = tmp_path / "node5.jsonl"
    spool.write_bytes(b"x\n" * (2 * 1024 * 1024))
    tracemalloc.start()
    try:
        polled = SpoolFile(str(spool)).poll(None, 0.0)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert polled.malformed == MAX_LINES
    assert len(polled.warnings) == WARN_EACH + 1
    assert polled.warnings[-1] == (f"skipped {MAX_LINES - WARN_EACH} more malformed or oversized lines in "
                                   f"{spool}, the last at byte {2 * (MAX_LINES - 1)}")
    assert peak < 32 * 1024 * 1024, f"{peak / 2**20:.0f} MiB"


def test_every_line_of_a_garbage_file_is_counted_once_over_the_polls(tmp_path: Path) -> None:
    spool = tmp_path / "node5.jsonl"
    spool.write_bytes(b"x\n" * 25_000 + _line(job="node5-9-z"))
    source, cursor, malformed, events = SpoolFile(str(spool)), None, 0, []
    for _ in range(5):
        polled = source.poll(cursor, 0.0)
        cursor, malformed, events = polled.cursor, malformed + polled.malformed, events + polled.events
    assert malformed == 25_000 and [ev["job"] for ev in events] == ["node5-9-z"]
