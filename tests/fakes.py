"""Fakes beside the real parts, for tests that run the watcher's rules in memory.

* FakeSource: an EventSource fed by the test (events, cadence, liveness).
* RecordingTarget: a Target that keeps what it was sent and answers as told.
* FixedClock: the watcher's clocks, moved by hand.
* HeldLease: a lease that is always ours (or lost, when the test says so).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from notifyd.notify.targets import INBOX_KEY, Sent, Target
from notifyd.records import OutboxEntry
from notifyd.watcher.lease import LeaseLost
from notifyd.watcher.sources.base import Polled


class FakeSource:
    """Events the test adds, handed out once each; the cursor is how many were handed out."""

    def __init__(self, key: str = "fake", *, kind: str = "fake", owns_liveness: bool = False,
                 every: float = 0.0) -> None:
        self.key, self.kind, self.owns_liveness, self.every = key, kind, owns_liveness, every
        self.events: list[dict[str, Any]] = []
        self.polls: list[float] = []  # when it was polled
        self._next_at = 0.0

    def add(self, *events: dict[str, Any]) -> None:
        self.events.extend(events)

    def due(self, now: float) -> bool:
        return now >= self._next_at

    def poll(self, cursor: dict[str, Any] | None, now: float) -> Polled:
        self.polls.append(now)
        self._next_at = now + self.every
        start = int((cursor or {}).get("next", 0))
        return Polled([dict(ev) for ev in self.events[start:]], {"next": len(self.events)})


@dataclass
class RecordingTarget(Target):
    """Keeps every entry it takes; `answers` (Sent) are used first, then every send is ok."""

    key: str = "url-1"
    display: str = "fake://url-1"
    tags: frozenset[str] = frozenset()
    limit: int = 2000
    sent: list[OutboxEntry] = field(default_factory=list)
    tried: list[str] = field(default_factory=list)  # entry ids, every attempt
    answers: list[Sent] = field(default_factory=list)

    def send(self, entry: OutboxEntry) -> Sent:
        self.tried.append(entry.id)
        answer = self.answers.pop(0) if self.answers else Sent(True)
        if answer.ok:
            self.sent.append(entry)
        return answer

    @property
    def titles(self) -> list[str]:
        return [e.title for e in self.sent]


def inbox_target() -> RecordingTarget:
    return RecordingTarget(key=INBOX_KEY, display="inbox (in memory)", limit=32768)


class FixedClock:
    """Wall, monotonic and file-server time, all moved together by `advance`."""

    def __init__(self, now: float = 1_800_000_000.0) -> None:
        self.now = now
        self.server_reads = 0

    def advance(self, seconds: float) -> None:
        self.now += seconds

    def time(self) -> float:
        return self.now

    def monotonic(self) -> float:
        return self.now

    def server_time(self) -> float:
        self.server_reads += 1
        return self.now



def settled_rounds(watcher: Any, clock: FixedClock, n: int = 1, step: float = 0.5) -> None:
    """n rounds of an in-process watcher, each followed by its couriers' answers.

    Sends run on their own threads, so a round alone does not say what was
    delivered; settling waits for them before the clock moves on.
    """
    for _ in range(n):
        watcher.round()
        assert watcher.delivery.settle(watcher.state, watcher.targets, watcher.config, clock.now, timeout=10)
        clock.advance(step)


class HeldLease:
    """The lease, always ours until the test sets `lost`."""

    def __init__(self) -> None:
        self.gen, self.timeout, self.took_over_from = 1, 60.0, None
        self.lost = False
        self.checks = 0

    def acquire(self) -> None:
        return None

    def check(self) -> None:
        self.checks += 1
        if self.lost:
            raise LeaseLost("the test took it")

    def heartbeat(self, _force: bool = False) -> None:
        self.check()

    def stop_requested(self) -> bool:
        return False

    def release(self) -> None:
        pass


def finish_event(job: str, *, ts: float, exit: int | None = 0, signal: int | None = None,
                 group: str | None = None, duration: float = 5.0, **extra: Any) -> dict[str, Any]:
    ev: dict[str, Any] = {"v": 1, "ev": "finish", "job": job, "host": "node2", "pid": 4242,
                          "title": f"run {job}", "cmd": "./run", "cwd": "/home/ana", "user": "ana",
                          "start_ts": ts - duration, "ts": ts, "duration": duration, "exit": exit,
                          "signal": signal, **extra}
    if group is not None:
        ev["group"] = group
    return ev


def start_event(job: str, *, ts: float, group: str | None = None, **extra: Any) -> dict[str, Any]:
    ev: dict[str, Any] = {"v": 1, "ev": "start", "job": job, "host": "node2", "pid": 4242,
                          "title": f"run {job}", "cmd": "./run", "cwd": "/home/ana", "user": "ana",
                          "start_ts": ts, "ts": ts, **extra}
    if group is not None:
        ev["group"] = group
    return ev


def ids(entries: Iterable[OutboxEntry]) -> list[str]:
    return [e.id for e in entries]
