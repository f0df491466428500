"""The watcher's durable state: read positions, running jobs and the outbox.

Saved as one JSON file by temp + rename, so a crash leaves the old or the new
state, never half of one. Between saves, each successful delivery is appended
to this host's journal (journal/<host>.log, one line "ENTRY_ID TARGET_KEY"),
which the next load applies: a crash can then repeat only the one send that
was in flight. Only the lease holder writes any of this.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from notifyd import fsutil
from notifyd.spool.reader import Cursor

STATE_VERSION = 1
DONE_KEEP = 100_000  # finished job ids remembered, so a re-read spool repeats nothing
FAILED_KEEP = 200  # given-up deliveries kept for `notifyd status`


@dataclass
class Stats:
    events: int = 0
    malformed: int = 0
    delivered: int = 0
    last_event: dict[str, Any] = field(default_factory=dict)


@dataclass
class State:
    cursors: dict[str, Cursor] = field(default_factory=dict)
    running: dict[str, dict[str, Any]] = field(default_factory=dict)
    legacy_open: dict[str, dict[str, Any]] = field(default_factory=dict)
    lost: dict[str, dict[str, Any]] = field(default_factory=dict)  # job -> its record + reason
    missing_since: dict[str, float] = field(default_factory=dict)  # job -> server time first missed
    done: dict[str, float] = field(default_factory=dict)  # job -> finish time, newest last
    # The newest finish time among the ids dropped from `done`: a finish at or
    # before it that is not in `done` may have been told long ago, and the
    # watcher asks the inbox (which holds every notification) before telling it.
    done_horizon: float = 0.0
    outbox: list[dict[str, Any]] = field(default_factory=list)
    # notifyd/notify/routing.py: per URL, when its single messages went out (the
    # digest window), the jobs waiting for its next digest, its rate budget;
    # and the groups whose jobs are not all told yet.
    recent: dict[str, list[float]] = field(default_factory=dict)
    batches: dict[str, dict[str, Any]] = field(default_factory=dict)
    budget: dict[str, dict[str, float]] = field(default_factory=dict)
    groups: dict[str, dict[str, Any]] = field(default_factory=dict)
    backoff: dict[str, dict[str, Any]] = field(default_factory=dict)
    failed: list[dict[str, Any]] = field(default_factory=list)
    stats: Stats = field(default_factory=Stats)
    saved_at: float = 0.0

    def to_json(self) -> dict[str, Any]:
        return {
            "v": STATE_VERSION,
            "saved_at": time.time(),
            "cursors": {k: c.to_json() for k, c in self.cursors.items()},
            "running": self.running,
            "legacy_open": self.legacy_open,
            "lost": self.lost,
            "missing_since": self.missing_since,
            "done": self.done,
            "done_horizon": self.done_horizon,
            "outbox": self.outbox,
            "recent": self.recent,
            "batches": self.batches,
            "budget": self.budget,
            "groups": self.groups,
            "backoff": self.backoff,
            "failed": self.failed[-FAILED_KEEP:],
            "stats": self.stats.__dict__,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> State:
        stats = data.get("stats") or {}
        return cls(
            cursors={k: Cursor.from_json(v) for k, v in (data.get("cursors") or {}).items()},
            running=dict(data.get("running") or {}),
            legacy_open=dict(data.get("legacy_open") or {}),
            lost=dict(data.get("lost") or {}),
            missing_since=dict(data.get("missing_since") or {}),
            done=dict(data.get("done") or {}),
            done_horizon=float(data.get("done_horizon") or 0.0),
            outbox=list(data.get("outbox") or []),
            recent=dict(data.get("recent") or {}),
            batches=dict(data.get("batches") or {}),
            budget=dict(data.get("budget") or {}),
            groups=dict(data.get("groups") or {}),
            backoff=dict(data.get("backoff") or {}),
            failed=list(data.get("failed") or []),
            stats=Stats(**{k: v for k, v in stats.items() if k in Stats.__dataclass_fields__}),
            saved_at=float(data.get("saved_at") or 0.0),
        )

    def remember_done(self, job: str, ts: float) -> None:
        self.done[job] = ts
        if len(self.done) > DONE_KEEP * 1.1:
            for old in list(self.done)[: len(self.done) - DONE_KEEP]:
                self.done_horizon = max(self.done_horizon, self.done.pop(old))

    def mark_delivered(self, entry_id: str, key: str) -> None:
        for entry in self.outbox:
            if entry["id"] == entry_id and key in entry["targets"]:
                entry["targets"].remove(key)
        self.outbox = [e for e in self.outbox if e["targets"]]


class StateFileError(Exception):
    """The state file exists but cannot be used."""


def read(path: Path) -> dict[str, Any] | None:
    """The saved state as JSON, None when there is none; StateFileError when broken."""
    try:
        data = json.loads(path.read_bytes())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise StateFileError(f"{path}: {exc}") from None
    if not isinstance(data, dict) or data.get("v") != STATE_VERSION:
        raise StateFileError(f"{path}: not a version-{STATE_VERSION} notifyd state file")
    return data


def load(path: Path, journal_dir: Path) -> State:
    """Load the state and apply every host's delivery journal on top of it."""
    data = read(path)
    state = State() if data is None else State.from_json(data)
    for journal in sorted(journal_dir.glob("*.log")) if journal_dir.is_dir() else []:
        for line in journal.read_bytes().decode("utf-8", "replace").splitlines():
            entry_id, _, key = line.rpartition(" ")
            if entry_id:
                state.mark_delivered(entry_id, key)
                state.stats.delivered += 1
    return state


def save(state: State, path: Path, journal_dir: Path) -> None:
    """Write the whole state atomically, then empty the journals it now contains."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fsutil.atomic_write(path, json.dumps(state.to_json(), separators=(",", ":")).encode(), tmp)
    state.saved_at = time.time()
    for journal in journal_dir.glob("*.log") if journal_dir.is_dir() else []:
        os.truncate(journal, 0)


class Journal:
    """This host's append-only record of deliveries since the last save."""

    def __init__(self, journal_dir: Path, host: str) -> None:
        self.dir = journal_dir
        self.path = journal_dir / f"{host}.log"
        self.lines = 0

    def append(self, entry_id: str, key: str) -> None:
        fsutil.append_line(self.path, f"{entry_id} {key}\n".encode())
        self.lines += 1
