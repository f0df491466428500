"""The job sources on their own: what a poll of the spool files and of ~/.pingchilling gives.

Each source is driven as the watcher drives it: poll with the cursor the
last poll returned (None the first time), until its file is read to the end.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from notifyd.spool import events
from notifyd.spool.reader import MAX_READ
from notifyd.watcher.sources.base import Polled
from notifyd.watcher.sources.legacy import LegacyFile
from notifyd.watcher.sources.spool import SpoolFile, spool_files

STAMP = "2025-03-04 05:06:07"


def legacy_pairs(n: int, first_pid: int = 1000) -> bytes:
    return b"".join(f"{first_pid + i}@node5: Started [run {i}] {STAMP}\n"
                    f"{first_pid + i}@node5: Finished [0] {STAMP}\n".encode() for i in range(n))


def read_all(source: Any, cursor: dict[str, Any] | None = None) -> tuple[list[Polled], dict[str, Any]]:
    """Poll until a poll brings nothing more; every poll's result and the last cursor."""
    polls = []
    while True:
        polled = source.poll(cursor, time.time())
        polls.append(polled)
        if polled.cursor == cursor and not polled.changed:
            return polls, polled.cursor
        cursor = polled.cursor


def test_a_legacy_file_over_4_mib_is_history_to_its_last_line(tmp_path: Path) -> None:
    dotfile = tmp_path / ".pingchilling"
    dotfile.write_bytes(legacy_pairs(50_000))  # one busy year with the old bot: ~4.9 MB
    assert dotfile.stat().st_size > MAX_READ
    polls, _ = read_all(LegacyFile(str(dotfile)))
    assert len(polls) > 2  # it took more than one read
    assert sum(len(p.events) for p in polls) == 0  # nothing announced
    assert sum(len(p.history) for p in polls) == 50_000  # every old job remembered as told


def test_a_legacy_job_that_ends_after_the_first_read_is_told(tmp_path: Path) -> None:
    dotfile = tmp_path / ".pingchilling"
    dotfile.write_bytes(legacy_pairs(10) + f"7@node5: Started [still going] {STAMP}\n".encode())
    _, cursor = read_all(LegacyFile(str(dotfile)))
    with dotfile.open("ab") as f:
        f.write(f"7@node5: Finished [3] {STAMP}\n".encode())
    polled = LegacyFile(str(dotfile)).poll(cursor, time.time())
    (ev,) = polled.events
    assert (ev["title"], ev["exit"], ev["host"]) == ("still going", 3, "node5")
    assert polled.history == []


def test_a_replaced_legacy_file_is_news_not_history(tmp_path: Path) -> None:
    dotfile = tmp_path / ".pingchilling"
    dotfile.write_bytes(legacy_pairs(3))
    _, cursor = read_all(LegacyFile(str(dotfile)))
    dotfile.write_bytes(legacy_pairs(2, first_pid=5000))
    polled = LegacyFile(str(dotfile)).poll(cursor, time.time())
    assert [ev["pid"] for ev in polled.events] == [5000, 5001]
    assert any("reading it again from the top" in w for w in polled.warnings)


def test_a_spool_file_gives_each_event_once_and_counts_a_bad_line(tmp_path: Path) -> None:
    spool = tmp_path / "node2.jsonl"
    good = {"v": 1, "ev": "finish", "job": "node2-1-aa", "host": "node2", "pid": 1, "ts": 5.0}
    spool.write_bytes(events.encode(good) + b"{not an event}\n" + events.encode({**good, "job": "j2"}))
    source = SpoolFile(str(spool))
    first = source.poll(None, 0.0)
    assert [ev["job"] for ev in first.events] == ["node2-1-aa", "j2"]
    assert first.malformed == 1 and "malformed line" in first.warnings[0]
    again = source.poll(first.cursor, 0.0)
    assert again.events == [] and not again.changed
    assert source.key == "events/node2.jsonl" and not source.owns_liveness


def test_spool_files_lists_the_jsonl_files_and_not_symlinks(tmp_path: Path) -> None:
    (tmp_path / "a.jsonl").write_bytes(b"")
    (tmp_path / "b.txt").write_bytes(b"")
    (tmp_path / "c.jsonl").symlink_to(tmp_path / "a.jsonl")
    assert [s.key for s in spool_files(str(tmp_path))] == ["events/a.jsonl"]
    assert spool_files(str(tmp_path / "missing")) == []
