"""The per-host spool files, events/<host>.jsonl, that pingch appends to: one source each.

Each file is read from its own cursor every round (NFS close-to-open: the
file is re-opened and stat'ed each time, spool/reader.py). A line that is
not a valid event is skipped and counted; the rest of the file goes on.
"""

from __future__ import annotations

import os
from typing import Any

from notifyd.spool.events import MalformedEvent, decode
from notifyd.spool.reader import Cursor, read_new
from notifyd.watcher.sources.base import Polled


def shown(path: str) -> str:
    """A path (or a job id) for the log: what is not UTF-8 is shown escaped, never dropped.

    A file name's undecodable bytes come as the surrogates U+DC80-U+DCFF and
    are shown as the bytes they were (\\xff); any other lone surrogate (a job
    id from JSON's "\\ud800", which os.fsencode refuses) as its code point.
    """
    try:
        raw = os.fsencode(path)
    except UnicodeEncodeError:
        raw = path.encode("utf-8", "backslashreplace")
    return raw.decode("utf-8", "backslashreplace")


class SpoolFile:
    """One host's spool file."""

    kind = "spool"
    owns_liveness = False  # pingch's jobs are judged lost by their host's evidence (lost.py)

    def __init__(self, path: str) -> None:
        self.path = path
        self.key = f"events/{os.path.basename(path)}"

    def due(self, now: float) -> bool:
        return True  # every round: a spool read costs an open and a stat

    def poll(self, cursor: dict[str, Any] | None, now: float) -> Polled:
        at = Cursor.from_json(cursor)
        chunk = read_new(self.path, at)
        polled = Polled([], at.to_json(), malformed=len(chunk.oversized))
        name = shown(self.path)
        if chunk.reset:
            polled.warnings.append(f"{name} was {chunk.reset}; reading it again from the top")
        polled.warnings.extend(f"skipping oversized line in {name} at byte {offset}"
                               for offset in chunk.oversized)
        for offset, line in chunk.lines:
            try:
                polled.events.append(decode(line))
            except MalformedEvent as exc:
                polled.malformed += 1
                polled.warnings.append(f"skipping malformed line in {name} at byte {offset}: {exc}")
        return polled


def spool_files(events_dir: str) -> list[SpoolFile]:
    """A source for every *.jsonl file in events/, by name; symlinks are not followed."""
    try:
        entries = sorted(os.scandir(events_dir), key=lambda e: e.name)
    except FileNotFoundError:
        return []
    return [SpoolFile(e.path) for e in entries
            if e.name.endswith(".jsonl") and e.is_file(follow_symlinks=False)]
