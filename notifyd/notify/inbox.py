"""The inbox, inbox/<host>.jsonl: every notification ever made, its writer and all its readers.

One record per line, written by the lease holder on its own host's file:

    {"id":"node5-4242-1a2b3c4d:finish","job":"node5-4242-1a2b3c4d","time":1764590000.123,
     "kind":"success","title":"✅ relax finished on node5","body":"…","info":{…}}

`id` is the outbox entry's (JOB:finish, JOB:lost, digest:…, group:…), `job`
the one job it tells of ("" for a digest), `time` when it was written,
`kind` Apprise's notify type, `info` the job summary `notifyd jobs` lists
(job_summary below; only a job's own record has one). The keys are written
in this order, compactly, and ASCII-escaped: the byte-level readers below
(line_time, is_job_line, is_bad_line, lost_job_id) depend on that, and job
text cannot fake them because a '"' inside a title is written as '\\"'.

The inbox is the dedupe authority (a lost state is rebuilt from it) and the
history behind `notifyd jobs`: a year of it must cost no more to list than
the last day, so it is read backwards from each file's end.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from notifyd import fsutil
from notifyd.notify.outcome import BAD as BAD_OUTCOMES
from notifyd.notify.outcome import Outcome
from notifyd.spool.events import TIME_MAX

FINISH_SUFFIX = ":finish"
LOST_SUFFIX = ":lost"  # a lost job that later finishes has both records: the finish wins


def job_summary(ev: dict[str, Any], silent: bool) -> dict[str, Any]:
    """A finished or lost job's `info`, as `notifyd jobs` lists it (notify/history.py)."""
    return {
        "host": ev.get("host"), "pid": ev.get("pid"), "title": ev.get("title"),
        "group": ev.get("group"), "outcome": Outcome.of(ev).value, "exit": ev.get("exit"),
        "signal": ev.get("signal"), "duration": ev.get("duration"), "maxrss_kb": ev.get("maxrss_kb"),
        "start_ts": ev.get("start_ts"), "end_ts": ev.get("ts"), "silent": silent,
    }


def encode(entry_id: str, *, job: str, time: float, kind: str, title: str, body: str,
           info: dict[str, Any] | None) -> bytes:
    """One record as the line the inbox holds (keys in the order the readers rely on)."""
    record: dict[str, Any] = {"id": entry_id, "job": job, "time": round(time, 3), "kind": kind,
                              "title": title, "body": body}
    if info:
        record["info"] = info
    # ASCII escapes: a command line's undecodable bytes (lone surrogates)
    # stay valid UTF-8 on disk.
    return (json.dumps(record, separators=(",", ":"), allow_nan=False) + "\n").encode()


def append(path: Path, line: bytes) -> None:
    """Append one encoded record with one write() (only the lease holder writes its host's file)."""
    fsutil.append_line(path, line)


# -- reading whole records ------------------------------------------------------------------------


def parse_record(line: bytes) -> dict[str, Any] | None:
    """One inbox line as a record, None if it is not one."""
    try:
        record = json.loads(line)
    except (ValueError, RecursionError):
        return None
    return record if isinstance(record, dict) and "id" in record else None


def record_time(record: dict[str, Any]) -> float:
    """A record's "time"; 0 for one that is not a time a calendar shows (1e308, a word, NaN)."""
    value = record.get("time", 0)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= TIME_MAX:
        return 0.0
    return float(value)


def _records(f: IO[bytes]) -> Iterator[dict[str, Any]]:
    for line in f:
        record = parse_record(line)
        if record is not None:
            yield record


def _last_records(f: IO[bytes], count: int) -> list[dict[str, Any]]:
    """The last `count` good records of an open file, reading blocks from the end.

    One watcher at a time appends to a host's file, so its records are in
    time order and the newest are at the end.
    """
    pos = f.seek(0, 2)
    block = 64 * 1024
    data = b""
    while True:
        step = min(block, pos)
        pos -= step
        f.seek(pos)
        data = f.read(step) + data
        lines = data.split(b"\n")
        # The first piece may be a line cut by the block boundary.
        whole = lines if pos == 0 else lines[1:]
        good = [r for r in map(parse_record, whole) if r is not None]
        if len(good) >= count or pos == 0:
            return good[-count:]
        block *= 2


def read(inbox_dir: Path, last: int | None = None) -> list[dict[str, Any]]:
    """Records from every host's file, oldest first, each id once.

    With `last`, only the newest `last`: each file is read backwards from
    its end, so listing the latest stays instant after a million jobs.
    """
    records: dict[str, dict[str, Any]] = {}
    if not inbox_dir.is_dir():
        return []
    for path in sorted(inbox_dir.glob("*.jsonl")):
        with path.open("rb") as f:
            found = _records(f) if last is None else _last_records(f, last)
            for record in found:
                records.setdefault(str(record["id"]), record)
    ordered = sorted(records.values(), key=record_time)
    return ordered if last is None else ordered[-last:]


def job_ids(inbox_dir: Path) -> set[str]:
    """Every job id the inbox holds a notification for."""
    return {str(r["job"]) for r in read(inbox_dir) if r.get("job")}


# -- reading lines by their bytes ---------------------------------------------------------------

_TIME = re.compile(rb'"time":\s*(-?[0-9][0-9.eE+-]*)')
_INFO = b'"info":{'
_BAD = tuple(f'"outcome":"{o}"'.encode() for o in BAD_OUTCOMES)
_LOST_ID = re.compile(rb'^\{"id":"([^"\\]*)' + re.escape(LOST_SUFFIX.encode()) + rb'"')
_FINISH_HEAD = (FINISH_SUFFIX + '","job":"').encode()
_LOST_HEAD = (LOST_SUFFIX + '","job":"').encode()
HEAD = 300  # bytes at a line's start that hold its id and job


def line_time(line: bytes) -> float:
    """A line's "time" without parsing it: the record's own comes first (id, job, time)."""
    found = _TIME.search(line)
    try:
        value = float(found.group(1)) if found else 0.0
    except ValueError:
        return 0.0
    return value if math.isfinite(value) else 0.0


def is_job_line(line: bytes) -> bool:
    """A job's own record (not a digest or a group's summary), judged from its bytes."""
    if _INFO in line:
        return True
    head = line[:HEAD]
    return _FINISH_HEAD in head or _LOST_HEAD in head


def is_bad_line(line: bytes) -> bool:
    """A failed or lost job's own record."""
    if _INFO in line:
        return any(mark in line for mark in _BAD)
    return is_job_line(line) and (b'"kind":"failure"' in line or _LOST_HEAD in line[:HEAD])


def in_group(line: bytes, group: str) -> bool:
    return f'"group":{json.dumps(group)}'.encode() in line


def lost_job_id(line: bytes) -> bytes | None:
    """The job of a "lost" record, None for any other line."""
    found = _LOST_ID.match(line)
    return found.group(1) if found else None


def finished_job_id(line: bytes) -> bytes | None:
    """The job of a "finish" record, None for any other line."""
    if line.startswith(b'{"id":"') and _FINISH_HEAD in line[:HEAD]:
        return line[7:line.find(b'"', 7)].removesuffix(FINISH_SUFFIX.encode())
    return None


def is_job_record(record: dict[str, Any]) -> bool:
    """A finished or lost job's own record, not a digest or a group's summary
    (a one-job group's summary names that job too, but carries no "info")."""
    job = record.get("job")
    if not isinstance(job, str) or not job:
        return False
    return isinstance(record.get("info"), dict) or record.get("id") in (
        f"{job}{FINISH_SUFFIX}", f"{job}{LOST_SUFFIX}")


def window(inbox_dir: Path, since: float) -> list[bytes]:
    """The raw lines at or after `since`, oldest first, every host's file merged.

    Each file is read backwards until a line older than `since`: the cost is
    the window's size, not the history's. `notifyd jobs` parses only the lines
    it shows.
    """
    per_file = [_file_window(path, since)
                for path in (sorted(inbox_dir.glob("*.jsonl")) if inbox_dir.is_dir() else [])]
    if len(per_file) == 1:
        return per_file[0]
    return sorted((line for lines in per_file for line in lines), key=line_time)


def _file_window(path: Path, since: float) -> list[bytes]:
    with path.open("rb") as f:
        pos = f.seek(0, 2)
        block, data = 64 * 1024, b""
        while pos > 0:
            step = min(block, pos)
            pos -= step
            f.seek(pos)
            data = f.read(step) + data
            parts = data.split(b"\n", 2)
            if pos and len(parts) < 3:
                continue  # no whole line yet in what was read
            first = parts[1 if pos else 0]
            if first and line_time(first) < since:
                break
            block *= 2
    lines = data.split(b"\n")[1 if pos else 0:]
    # Lines are in time order within a file: skip the old ones by bisection.
    lo, hi = 0, len(lines)
    while lo < hi:
        mid = (lo + hi) // 2
        if lines[mid] and line_time(lines[mid]) < since:
            lo = mid + 1
        else:
            hi = mid
    return [line for line in lines[lo:] if line.strip()]
