"""~/.pingchilling, the old bash function's file, so a lab can switch without losing a job.

Its Started and Finished lines (spool/legacy.py) are paired here, in this
source's cursor: the open starts wait under "open" until their finish comes.
The whole file as it was when first seen is history (the old bot told of
its jobs), however many rounds it takes to read (the reader takes 4 MiB a
round): those finished jobs are remembered as told, never announced. The
cursor keeps where that history ends ("history_until"). Jobs still running
then are followed, and told when their Finished line comes.
"""

from __future__ import annotations

import os
import re
from typing import Any

from notifyd.spool import legacy
from notifyd.spool.events import TIME_MAX
from notifyd.spool.reader import Cursor, read_new
from notifyd.watcher.sources.base import Polled
from notifyd.watcher.sources.spool import Skipped, shown

KEY = "legacy:.pingchilling"


class LegacyFile:
    kind = "legacy"
    # The old function wrote no liveness marks and the watcher reports no
    # start of these jobs: they are told when their Finished line comes.
    owns_liveness = True

    def __init__(self, path: str) -> None:
        self.path = path
        self.key = KEY

    def due(self, _now: float, /) -> bool:
        return True

    def poll(self, cursor: dict[str, Any] | None, _now: float, /) -> Polled:
        at = Cursor.from_json(cursor)
        raw_open = (cursor or {}).get("open")
        open_starts: dict[str, Any] = dict(raw_open) if isinstance(raw_open, dict) else {}
        history_until = _history_until(self.path, cursor)
        # The user's own dotfile may well be a symlink (into a dotfiles repo, say).
        chunk = read_new(self.path, at, follow_symlinks=True)
        if chunk.reset:
            history_until = 0  # another file now: what it holds is news
        polled = Polled([], {})
        name = shown(self.path)
        if chunk.reset:
            polled.warnings.append(f"{name} was {chunk.reset}; reading it again from the top")
        skipped = Skipped(name)
        for offset in chunk.oversized:
            skipped.add(offset, "oversized")
        for offset, line in chunk.lines:
            try:
                item = legacy.parse(line)
            except ValueError as exc:
                skipped.add(offset, "malformed", exc)
                continue
            ev = pair(item, open_starts)
            if ev is not None and offset < history_until:
                polled.history.append((str(ev["job"]), float(ev["ts"])))
            elif ev is not None:
                polled.events.append(ev)
        polled.cursor = {**at.to_json(), "open": open_starts, "history_until": history_until}
        polled.malformed = skipped.count
        polled.warnings.extend(skipped.warnings())
        return polled

    def exists(self) -> bool:
        return bool(self.path) and os.path.isfile(self.path)


def _history_until(path: str, cursor: dict[str, Any] | None) -> int:
    """Where the file as first seen ends: its size now on the first read, then the cursor's."""
    if cursor is None:
        try:
            return os.stat(path).st_size
        except OSError:
            return 0
    value = cursor.get("history_until", 0)
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


# The old function wrote `$?`: a status of at most three digits. Anything else
# ("²", "--3", 5,000 nines) is an unknown status, not a ValueError in pairing.
_EXIT = re.compile(r"-?[0-9]{1,9}")


def pair(item: legacy.LegacyLine, open_starts: dict[str, Any]) -> dict[str, Any] | None:
    """A start is kept in `open_starts`; a finish becomes a finish event with its start's title."""
    if item.kind == "start":
        open_starts[item.key] = {"title": item.arg, "ts": item.ts}
        return None
    started = open_starts.pop(item.key, None)
    start_ts = started.get("ts") if isinstance(started, dict) else None
    # The open starts come back from the state file: a time parse() could not give is none.
    if (not isinstance(start_ts, (int, float)) or isinstance(start_ts, bool)
            or not 0 <= start_ts <= TIME_MAX):
        start_ts = None
    title = started.get("title") if isinstance(started, dict) else None
    arg = item.arg.strip()
    return {
        "v": 1, "ev": "finish", "legacy": True,
        "job": legacy.job_id(item.host, item.pid, start_ts or item.ts),
        "host": item.host, "pid": item.pid,
        "title": title if isinstance(title, str) else f"pid {item.pid}",
        "start_ts": start_ts, "ts": item.ts,
        "exit": int(arg) if _EXIT.fullmatch(arg) else None,
    }
