"""The watcher's durable state: read positions, running jobs, the outbox and routing's memory.

Saved as one JSON file by temp + rename, so a crash leaves the old or the new
state, never half of one. Between saves, each successful delivery is appended
to this host's journal (journal/<host>.log, one line "ENTRY_ID TARGET_KEY"),
which the next load applies: a crash can then repeat only the one send that
was in flight. Only the lease holder writes any of this; `notifyd jobs` and
`notifyd status` read it through load() as the watcher does.

A file that is not a state file at all raises StateFileError (the watcher
sets it aside and rebuilds from the inbox). One record in it that does not
check out is skipped and named in `State.problems`, so a single odd value
never costs every pending delivery.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from notifyd import fsutil
from notifyd.errors import StateFileError
from notifyd.records import (
    Backoff,
    Batch,
    Budget,
    FailedDelivery,
    Group,
    LostJob,
    NodePressure,
    OutboxEntry,
    RunningJob,
    Stats,
    mapping,
    number,
)

__all__ = ["DONE_KEEP", "FAILED_KEEP", "Journal", "State", "StateFileError", "load", "read", "save"]

log = logging.getLogger("notifyd")
_warned: set[str] = set()  # journals already said to be unusable: once per process, not per save

STATE_VERSION = 1
DONE_KEEP = 100_000  # finished job ids remembered, so a re-read spool repeats nothing
FAILED_KEEP = 200  # given-up deliveries kept for `notifyd status`
# Earlier versions kept the legacy file's open starts at the top of the state;
# they now live in that source's cursor (watcher/sources/legacy.py).
LEGACY_CURSOR = "legacy:.pingchilling"

R = TypeVar("R")


@dataclass
class State:
    cursors: dict[str, dict[str, Any]] = field(default_factory=dict)  # source key -> its cursor
    running: dict[str, RunningJob] = field(default_factory=dict)
    lost: dict[str, LostJob] = field(default_factory=dict)
    missing_since: dict[str, float] = field(default_factory=dict)  # job -> server time first missed
    done: dict[str, float] = field(default_factory=dict)  # job -> finish time, newest last
    # The newest finish time among the ids dropped from `done`: a finish at or
    # before it that is not in `done` may have been told long ago, and the
    # watcher asks the inbox (which holds every notification) before telling it.
    done_horizon: float = 0.0
    outbox: list[OutboxEntry] = field(default_factory=list)
    # notifyd/notify/routing.py: per URL, when its single messages went out
    # (the digest window), the jobs waiting for its next digest, its rate
    # budget; and the groups whose jobs are not all told yet.
    recent: dict[str, list[float]] = field(default_factory=dict)
    batches: dict[str, Batch] = field(default_factory=dict)
    budget: dict[str, Budget] = field(default_factory=dict)
    groups: dict[str, Group] = field(default_factory=dict)
    backoff: dict[str, Backoff] = field(default_factory=dict)
    failed: list[FailedDelivery] = field(default_factory=list)
    # Target key -> its masked URL, for the URLs configured now and those
    # deliveries still wait for: status can name a URL no longer configured.
    url_names: dict[str, str] = field(default_factory=dict)
    # Host -> its memory pressure alerts (watcher/pressure.py): episodes and when last told.
    pressure: dict[str, NodePressure] = field(default_factory=dict)
    stats: Stats = field(default_factory=Stats)
    saved_at: float = 0.0
    # Records skipped when the file was loaded, one sentence each (not saved).
    problems: list[str] = field(default_factory=list, compare=False)

    def to_json(self, now: float | None = None) -> dict[str, Any]:
        return {
            "v": STATE_VERSION,
            "saved_at": time.time() if now is None else now,
            "cursors": self.cursors,
            "running": {k: v.to_json() for k, v in self.running.items()},
            "lost": {k: v.to_json() for k, v in self.lost.items()},
            "missing_since": self.missing_since,
            "done": self.done,
            "done_horizon": self.done_horizon,
            "outbox": [e.to_json() for e in self.outbox],
            "recent": self.recent,
            "batches": {k: v.to_json() for k, v in self.batches.items()},
            "budget": {k: v.to_json() for k, v in self.budget.items()},
            "groups": {k: v.to_json() for k, v in self.groups.items()},
            "backoff": {k: v.to_json() for k, v in self.backoff.items()},
            "failed": [f.to_json() for f in self.failed[-FAILED_KEEP:]],
            **({"url_names": self.url_names} if self.url_names else {}),
            **({"pressure": {k: v.to_json() for k, v in self.pressure.items()}} if self.pressure else {}),
            "stats": self.stats.to_json(),
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> State:
        state = cls()
        problems = state.problems

        def each(key: str, parse: Callable[[Any, str], R]) -> dict[str, R]:
            """The records of one table; a record that does not check out is skipped and named."""
            out: dict[str, R] = {}
            for name, value in mapping(data.get(key) or {}, f"the state's {key!r}").items():
                try:
                    out[str(name)] = parse(value, f"{key} {name!r}")
                except StateFileError as exc:
                    problems.append(str(exc))
            return out

        def listed(key: str, parse: Callable[[Any, str], R]) -> list[R]:
            value = data.get(key) or []
            if not isinstance(value, list):
                raise StateFileError(f"the state's {key!r} is not a list")
            out: list[R] = []
            for i, item in enumerate(value):
                try:
                    out.append(parse(item, f"{key} #{i + 1}"))
                except StateFileError as exc:
                    problems.append(str(exc))
            return out

        state.cursors = each("cursors", mapping)
        state.running = each("running", RunningJob.from_json)
        state.lost = each("lost", LostJob.from_json)
        state.missing_since = each("missing_since", _time)
        state.done = each("done", _time)
        state.done_horizon = number(data, "done_horizon", "the state", default=0.0)
        state.outbox = listed("outbox", OutboxEntry.from_json)
        state.recent = each("recent", _times)
        state.batches = each("batches", Batch.from_json)
        state.budget = each("budget", Budget.from_json)
        state.groups = each("groups", Group.from_json)
        state.backoff = each("backoff", Backoff.from_json)
        state.failed = listed("failed", FailedDelivery.from_json)
        state.url_names = each("url_names", _name)
        state.pressure = each("pressure", NodePressure.from_json)
        try:
            state.stats = Stats.from_json(data.get("stats"))
        except StateFileError as exc:
            problems.append(str(exc))
        state.saved_at = number(data, "saved_at", "the state", default=0.0)
        old_open = data.get("legacy_open")
        if isinstance(old_open, dict) and old_open:
            state.cursors.setdefault(LEGACY_CURSOR, {}).setdefault("open", old_open)
        return state

    def remember_done(self, job: str, ts: float) -> None:
        self.done[job] = ts
        if len(self.done) > DONE_KEEP * 1.1:
            for old in list(self.done)[: len(self.done) - DONE_KEEP]:
                self.done_horizon = max(self.done_horizon, self.done.pop(old))

    def waiting_for(self) -> set[str]:
        """The push targets' keys that outbox entries or digest batches still wait for."""
        keys = {k for e in self.outbox for k in e.targets} | set(self.batches)
        keys.discard("inbox")  # notify/targets.py INBOX_KEY: written by the watcher itself
        return keys

    def name_urls(self, names: dict[str, str]) -> None:
        """Remember the configured URLs' masked names; forget those nothing waits for any more."""
        waiting = self.waiting_for()
        self.url_names = {k: v for k, v in self.url_names.items() if k in waiting}
        self.url_names.update(names)

    def mark_delivered(self, entry_id: str, key: str) -> None:
        for entry in self.outbox:
            if entry.id == entry_id and key in entry.targets:
                entry.targets.remove(key)
                entry.retry.pop(key, None)
        self.outbox = [e for e in self.outbox if e.targets]


def _time(value: Any, what: str) -> float:
    return number({"t": value}, "t", what)


def _name(value: Any, what: str) -> str:
    if not isinstance(value, str):
        raise StateFileError(f"{what} is not a string")
    return value


def _times(value: Any, what: str) -> list[float]:
    if not isinstance(value, list):
        raise StateFileError(f"{what} is not a list of times")
    return [_time(v, what) for v in value]


def read(path: Path) -> dict[str, Any] | None:
    """The saved state as JSON, None when there is none; StateFileError when broken."""
    try:
        data = json.loads(path.read_bytes())
    except FileNotFoundError:
        return None
    except (OSError, ValueError, RecursionError) as exc:
        raise StateFileError(f"{path}: {exc}") from None
    if not isinstance(data, dict) or data.get("v") != STATE_VERSION:
        raise StateFileError(f"{path}: not a version-{STATE_VERSION} notifyd state file")
    return data


def journals(journal_dir: Path, hosts: Iterable[str] = ()) -> list[Path]:
    """Every host's journal: those listed, and those of `hosts` by name.

    A directory listing on NFS (acdirmax) or sshfs (its 20 s cache) may not
    show a file another host made a moment ago, and a journal missed after a
    takeover would repeat what its host delivered since its last save; so
    the hosts known to have held the lease are opened by name, not found.
    """
    listed = set(journal_dir.glob("*.log")) if journal_dir.is_dir() else set()
    named = {journal_dir / f"{host}.log" for host in hosts if host}
    return sorted(p for p in listed | named if p in listed or p.exists())


def load(path: Path, journal_dir: Path, hosts: Iterable[str] = ()) -> State:
    """Load the state and apply every host's delivery journal on top of it (see journals())."""
    data = read(path)
    try:
        state = State() if data is None else State.from_json(data)
    except StateFileError as exc:
        raise StateFileError(f"{path}: {exc}") from None
    for journal in journals(journal_dir, hosts):
        try:
            raw = journal.read_bytes()
        except FileNotFoundError:
            continue  # emptied and gone between the listing and the read
        except OSError as exc:
            # Its deliveries may be sent once more; the state itself must still load.
            log.warning("cannot read the delivery journal %s (%s): what it recorded may be sent again",
                        journal, exc.strerror or exc)
            continue
        for line in raw.decode("utf-8", "replace").splitlines():
            entry_id, _, key = line.rpartition(" ")
            if entry_id:
                state.mark_delivered(entry_id, key)
                state.stats.delivered += 1
    return state


def save(state: State, path: Path, journal_dir: Path, hosts: Iterable[str] = ()) -> None:
    """Write the whole state atomically, then empty the journals it now contains.

    Only the watcher calls this, and only through its fenced save (it checks
    the lease first: watcher/loop.py).
    """
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    now = time.time()
    fsutil.atomic_write(path, json.dumps(state.to_json(now), separators=(",", ":")).encode(), tmp)
    state.saved_at = now
    for journal in journals(journal_dir, hosts):
        try:
            os.truncate(journal, 0)
        except FileNotFoundError:
            pass
        except OSError as exc:
            # The state is saved; a journal left full only replays deliveries the
            # state already holds (marking them delivered twice changes nothing).
            if str(journal) not in _warned:
                _warned.add(str(journal))
                log.warning("cannot empty the delivery journal %s (%s)", journal, exc.strerror or exc)


class Journal:
    """This host's append-only record of deliveries since the last save."""

    def __init__(self, journal_dir: Path, host: str) -> None:
        self.dir = journal_dir
        self.path = journal_dir / f"{host}.log"
        self.lines = 0

    def append(self, entry_id: str, key: str) -> None:
        fsutil.append_line(self.path, f"{entry_id} {key}\n".encode())
        self.lines += 1

    def clear(self) -> None:
        """After a save: what the journal held is in the state file now."""
        self.lines = 0

    def create(self) -> None:
        """Make the (empty) file now, so a later holder finds it by name whatever its listing says."""
        fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW, 0o600)
        os.close(fd)
