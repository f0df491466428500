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


# A poll logs this many skipped lines of a file one by one and sums up the
# rest in one line: a file of garbage must not become a log of garbage.
WARN_EACH = 20


class Skipped:
    """The lines one poll of a file skipped, as the log's warnings (the count stays exact)."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.count = 0
        self._shown: list[str] = []
        self._last = 0

    def add(self, offset: int, what: str, why: object = "") -> None:
        """One line skipped: `what` is "malformed" or "oversized", `why` the decoder's reason."""
        self.count += 1
        self._last = offset
        if len(self._shown) < WARN_EACH:
            reason = f": {why}" if str(why) else ""
            self._shown.append(f"skipping {what} line in {self.name} at byte {offset}{reason}")

    def warnings(self) -> list[str]:
        more = self.count - len(self._shown)
        if more <= 0:
            return self._shown
        return [*self._shown, f"skipped {more} more malformed or oversized lines in {self.name}, "
                              f"the last at byte {self._last}"]


class SpoolFile:
    """One host's spool file."""

    kind = "spool"
    owns_liveness = False  # pingch's jobs are judged lost by their host's evidence (lost.py)

    def __init__(self, path: str) -> None:
        self.path = path
        self.key = f"events/{os.path.basename(path)}"

    def due(self, _now: float, /) -> bool:
        return True  # every round: a spool read costs an open and a stat

    def poll(self, cursor: dict[str, Any] | None, _now: float, /) -> Polled:
        at = Cursor.from_json(cursor)
        chunk = read_new(self.path, at)
        polled = Polled([], at.to_json())
        name = shown(self.path)
        if chunk.reset:
            polled.warnings.append(f"{name} was {chunk.reset}; reading it again from the top")
        skipped = Skipped(name)
        for offset in chunk.oversized:
            skipped.add(offset, "oversized")
        for offset, line in chunk.lines:
            try:
                polled.events.append(decode(line))
            except MalformedEvent as exc:
                skipped.add(offset, "malformed", exc)
                glued = _after_fragment(line)
                if glued is not None:
                    polled.events.append(glued)
                    whole_at = offset + line.rfind(EVENT_START)
                    polled.warnings.append(f"read the whole event after it, at byte {whole_at}")
        polled.malformed = skipped.count
        polled.warnings.extend(skipped.warnings())
        return polled


# Every event pingch writes starts with its schema version (events.encode).
EVENT_START = b'{"v":'


def _after_fragment(line: bytes) -> dict[str, Any] | None:
    """The whole event at the end of a line that starts with a fragment, if there is one.

    A write cut short by a full disk leaves part of an event with no newline;
    the host's next event is appended right after it, and the two read as one
    malformed line. The second is whole: it is read, the fragment counted.
    """
    at = line.rfind(EVENT_START)
    if at <= 0:
        return None
    try:
        return decode(line[at:])
    except MalformedEvent:
        return None


def spool_files(events_dir: str) -> list[SpoolFile]:
    """A source for every *.jsonl file in events/, by name; symlinks are not followed."""
    try:
        entries = sorted(os.scandir(events_dir), key=lambda e: e.name)
    except FileNotFoundError:
        return []
    return [SpoolFile(e.path) for e in entries
            if e.name.endswith(".jsonl") and e.is_file(follow_symlinks=False)]
