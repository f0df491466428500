"""The seam every job source plugs into: its own cadence, its own cursor, its own say over liveness.

    class EventSource(Protocol):
        key: str             # its cursor's name in the state: "events/node5.jsonl"
        kind: str            # what the running jobs it reports carry: "spool", "slurm"
        owns_liveness: bool  # True: it tells of its jobs' ends itself, lost.py keeps away
        def due(self, now) -> bool
        def poll(self, cursor, now) -> Polled

The watcher asks each source whether it is `due` every round, and `poll`s
those that are with the cursor the state saved for them (None the first
time). A poll returns events in the spool's format (docs/EVENTS.md: start
and finish dicts with job, host, pid, ts...) and the cursor to save with
them; the state is saved before anything they cause is sent, so a crash
re-reads from the old cursor and the finished-job ids keep that from
telling anything twice.

A poll must return quickly: the lease heartbeat and every other source wait
for it. A source whose work is slow (a scheduler's command line tool: a
subprocess that may take seconds or hang) does it in a thread of its own
and returns from poll what is ready. The per-host spool files and
~/.pingchilling are two implementations (spool.py, legacy.py); tests drive
the watcher with a FakeSource (tests/watcher/).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol


@dataclass(frozen=True)
class Notice:
    """A message a source has to give that is about no one job (a window it could not check)."""

    id: str
    title: str
    body: str


@dataclass
class Polled:
    """What one poll of a source produced."""

    events: list[dict[str, Any]]
    cursor: dict[str, Any]
    malformed: int = 0  # lines or records skipped as unusable
    warnings: list[str] = field(default_factory=list)  # for the watcher's log
    # (job, finish time) of jobs that ended before the source was first read
    # (the legacy file's, which the old bot told of): remembered as told,
    # never announced.
    history: list[tuple[str, float]] = field(default_factory=list)
    notices: list[Notice] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        return bool(self.events or self.malformed or self.history or self.notices)


class EventSource(Protocol):
    key: str
    kind: str
    owns_liveness: bool

    def due(self, now: float, /) -> bool:
        """Is a poll due at `now` (the round's time.time())?"""
        ...

    def poll(self, cursor: dict[str, Any] | None, now: float, /) -> Polled:
        """New events since `cursor`, and the cursor to save with them; never blocks for long."""
        ...
