"""The records the watcher keeps in its state file, each one a dataclass that checks its JSON.

`from_json` takes what `json.loads` gave and either returns the record or
raises StateFileError naming the field that is wrong; `to_json` gives back
exactly the JSON the state file has always held, so a state written by an
earlier notifyd loads, and one written now loads in it. The state (state.py)
decides what a bad record costs: it skips and counts one bad record rather
than lose every pending delivery because of it.

Events (what pingch writes) stay plain dicts: they are validated where they
are read (spool/events.py), and pingch must not pay for dataclasses.

Long: one dataclass for each kind of record the state holds, each with its
checks; one file keeps the state file's format in one place.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

from notifyd.errors import StateFileError

# A number the state holds (times, sizes, counts) is within this of zero:
# anything larger came from a hostile or broken file, and a float() of a
# 400-digit integer would raise OverflowError far from here.
NUMBER_MAX = 2.0**62


def _where(what: str, key: str) -> str:
    return f"{what}: field {key!r}"


def number(data: dict[str, Any], key: str, what: str, *, default: float | None = None) -> float:
    """A finite JSON number (not a bool) within ±NUMBER_MAX, or `default` when absent or null."""
    value = data.get(key)
    if value is None and default is not None:
        return default
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise StateFileError(f"{_where(what, key)} is not a number")
    if not -NUMBER_MAX <= value <= NUMBER_MAX or (isinstance(value, float) and not math.isfinite(value)):
        raise StateFileError(f"{_where(what, key)} is out of range")
    return float(value)


def optional_number(data: dict[str, Any], key: str, what: str) -> float | None:
    return None if data.get(key) is None else number(data, key, what)


def integer(data: dict[str, Any], key: str, what: str, *, default: int | None = None) -> int:
    value = data.get(key)
    if value is None and default is not None:
        return default
    if isinstance(value, bool) or not isinstance(value, int) or abs(value) > NUMBER_MAX:
        raise StateFileError(f"{_where(what, key)} is not a whole number in range")
    return value


def optional_integer(data: dict[str, Any], key: str, what: str) -> int | None:
    return None if data.get(key) is None else integer(data, key, what)


def text(data: dict[str, Any], key: str, what: str, *, default: str | None = None) -> str:
    value = data.get(key)
    if value is None and default is not None:
        return default
    if not isinstance(value, str):
        raise StateFileError(f"{_where(what, key)} is not a string")
    return value


def optional_text(data: dict[str, Any], key: str, what: str) -> str | None:
    return None if data.get(key) is None else text(data, key, what)


def strings(data: dict[str, Any], key: str, what: str) -> list[str]:
    value = data.get(key, [])
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise StateFileError(f"{_where(what, key)} is not a list of strings")
    return list(value)


def mapping(value: Any, what: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise StateFileError(f"{what} is not a JSON object")
    return value


def _scalars(value: Any, what: str) -> dict[str, Any]:
    """A flat object of strings and numbers (what a scheduler said of a job); {} when absent."""
    if value is None:
        return {}
    d = mapping(value, what)
    for key, item in d.items():
        if isinstance(item, bool) or not isinstance(item, (str, int, float)):
            raise StateFileError(f"{what}: {key!r} is not a string or a number")
        if isinstance(item, (int, float)) and not -NUMBER_MAX <= item <= NUMBER_MAX:
            raise StateFileError(f"{what}: {key!r} is out of range")
    return dict(d)


def _without_none(data: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in data.items() if v is not None}


# -- jobs -------------------------------------------------------------------------------------


@dataclass
class RunningJob:
    """A job whose start was read and whose end has not come yet."""

    host: str | None = None
    pid: int | None = None
    title: str | None = None
    cmd: str | None = None
    cwd: str | None = None
    start_ts: float | None = None
    user: str | None = None
    group: str | None = None
    # The kind of source that reported it ("spool" for pingch); `owned`: that
    # source tells of the job's end itself, so lost.py never judges it.
    source: str = "spool"
    owned: bool = False
    # What a scheduler says of the job (the event's slurm_* fields: state,
    # reason, partition, nodes, the id users know), for `notifyd jobs`.
    slurm: dict[str, Any] = field(default_factory=dict)

    _FIELDS = ("host", "pid", "title", "cmd", "cwd", "start_ts", "user", "group")

    @classmethod
    def from_event(cls, ev: dict[str, Any], source: str = "spool", owned: bool = False) -> RunningJob:
        """From a start event already checked by the event decoder."""
        slurm = {k: v for k, v in ev.items() if k.startswith("slurm_") and isinstance(v, (str, int, float))
                 and not isinstance(v, bool)}
        fields = {k: ev.get(k) for k in cls._FIELDS}
        if ev.get("hide_command"):
            fields["cwd"] = None  # an older pingch's --hide-command event still carried it
        return cls.from_json({**fields, "source": source, "owned": owned,
                              "slurm": slurm}, f"start of {ev.get('job')!r}")

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {k: getattr(self, k) for k in self._FIELDS}
        if self.source != "spool":
            data["source"] = self.source
        if self.owned:
            data["owned"] = True
        if self.slurm:
            data["slurm"] = self.slurm
        return data

    @classmethod
    def from_json(cls, data: Any, what: str = "a running job") -> RunningJob:
        d = mapping(data, what)
        return cls(host=optional_text(d, "host", what), pid=optional_integer(d, "pid", what),
                   title=optional_text(d, "title", what), cmd=optional_text(d, "cmd", what),
                   cwd=optional_text(d, "cwd", what), start_ts=optional_number(d, "start_ts", what),
                   user=optional_text(d, "user", what), group=optional_text(d, "group", what),
                   source=text(d, "source", what, default="spool"), owned=d.get("owned") is True,
                   slurm=_scalars(d.get("slurm"), f"{what}: slurm"))

    def as_event(self, job: str) -> dict[str, Any]:
        """The job as the message and routing functions read events."""
        return {**{k: getattr(self, k) for k in self._FIELDS}, "job": job}


@dataclass
class LostJob:
    """A running job judged lost (watcher/lost.py); kept so that a late finish is told once."""

    job: RunningJob
    reason: str
    at: float  # the file server's time of the judgement

    def to_json(self) -> dict[str, Any]:
        return {**self.job.to_json(), "reason": self.reason, "at": self.at}

    @classmethod
    def from_json(cls, data: Any, what: str = "a lost job") -> LostJob:
        d = mapping(data, what)
        return cls(RunningJob.from_json(d, what), text(d, "reason", what, default=""),
                   number(d, "at", what, default=0.0))


# -- deliveries -------------------------------------------------------------------------------


@dataclass
class OutboxEntry:
    """One message waiting for the targets (keys) that have not taken it yet."""

    id: str
    title: str
    body: str
    severity: str  # Apprise's notify type: success, failure, warning, info (JSON: "kind")
    created: float
    targets: list[str]
    job: str = ""  # the job it is about, "" for a digest or a group's summary
    jobs: list[str] = field(default_factory=list)  # every job it covers
    info: dict[str, Any] | None = None  # the job summary the inbox keeps (notify/inbox.py)
    attach: str = ""
    # Target key -> this entry's own backoff, after it failed there while
    # the URL's other messages may still go through (watcher/delivery.py).
    retry: dict[str, Backoff] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {"id": self.id, "job": self.job, "jobs": self.jobs, "title": self.title,
                                "body": self.body, "kind": self.severity, "created": self.created,
                                "targets": self.targets}
        if self.info is not None:
            data["info"] = self.info
        if self.attach:
            data["attach"] = self.attach
        if self.retry:
            data["retry"] = {k: v.to_json() for k, v in self.retry.items()}
        return data

    @classmethod
    def from_json(cls, data: Any, what: str = "an outbox entry") -> OutboxEntry:
        d = mapping(data, what)
        info = d.get("info")
        if info is not None and not isinstance(info, dict):
            raise StateFileError(f"{_where(what, 'info')} is not a JSON object")
        retry = {str(k): Backoff.from_json(v, f"{what}: retry for {k!r}")
                 for k, v in mapping(d.get("retry") or {}, f"{what}: retry").items()}
        return cls(id=text(d, "id", what), title=text(d, "title", what, default=""),
                   body=text(d, "body", what, default=""), severity=text(d, "kind", what, default="info"),
                   created=number(d, "created", what, default=0.0), targets=strings(d, "targets", what),
                   job=text(d, "job", what, default=""), jobs=strings(d, "jobs", what), info=info,
                   attach=text(d, "attach", what, default=""), retry=retry)

    def covers(self) -> list[str]:
        """The jobs this entry tells of: its one job, or a digest's or group's many."""
        return [self.job, *self.jobs] if self.job else list(self.jobs)


@dataclass
class FailedDelivery:
    """A delivery given up: refused for good, or failing for longer than retry_for."""

    entry: OutboxEntry
    failed_at: float
    error: str | None = None
    url: str | None = None  # the target's masked URL
    status: int | None = None  # what the service answered, when known

    def to_json(self) -> dict[str, Any]:
        return {**self.entry.to_json(), **_without_none(
            {"failed_at": self.failed_at, "error": self.error, "url": self.url, "status": self.status})}

    @classmethod
    def from_json(cls, data: Any, what: str = "a failed delivery") -> FailedDelivery:
        d = mapping(data, what)
        return cls(OutboxEntry.from_json(d, what), number(d, "failed_at", what, default=0.0),
                   optional_text(d, "error", what), optional_text(d, "url", what),
                   optional_integer(d, "status", what))


@dataclass
class Backoff:
    """A URL whose last delivery failed: when to try again, and what went wrong."""

    failures: int
    next_try: float
    since: float  # when it started failing
    error: str = ""
    display: str = ""  # the masked URL, for `notifyd status`

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: Any, what: str = "a backoff") -> Backoff:
        d = mapping(data, what)
        return cls(integer(d, "failures", what, default=1), number(d, "next_try", what, default=0.0),
                   number(d, "since", what, default=0.0), text(d, "error", what, default=""),
                   text(d, "display", what, default=""))

    @classmethod
    def after_failure(cls, previous: Backoff | None, *, now: float, initial: float, most: float,
                      error: str, display: str) -> Backoff:
        """The next backoff: the delay doubles from `initial` up to `most`."""
        failures = (previous.failures if previous else 0) + 1
        delay = min(most, initial * 2 ** min(failures - 1, 60))
        since = previous.since if previous else now
        return cls(failures, now + delay, since, error, display)

    @property
    def delay(self) -> float:
        return max(0.0, self.next_try - self.since)


# -- routing (notify/routing.py) ---------------------------------------------------------------


@dataclass
class Batch:
    """The jobs waiting for one URL's next digest."""

    opened: float
    last: float  # when the newest job joined
    jobs: list[dict[str, Any]] = field(default_factory=list)  # compact finish events

    def to_json(self) -> dict[str, Any]:
        return {"opened": self.opened, "last": self.last, "jobs": self.jobs}

    @classmethod
    def from_json(cls, data: Any, what: str = "a digest batch") -> Batch:
        d = mapping(data, what)
        jobs = d.get("jobs", [])
        if not isinstance(jobs, list) or not all(isinstance(j, dict) for j in jobs):
            raise StateFileError(f"{_where(what, 'jobs')} is not a list of objects")
        return cls(number(d, "opened", what), number(d, "last", what), list(jobs))


@dataclass
class GroupMember:
    """How one finished job of a group ended, for the group's summary."""

    outcome: str
    title: str | None = None
    host: str | None = None
    duration: float | None = None
    exit: int | None = None
    signal: int | None = None
    # A SLURM array's task: its id (4 in 7_4), state, the words for how it ended, its peak memory.
    task: str | None = None
    slurm_state: str | None = None
    words: str | None = None
    maxrss_kb: float | None = None

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {"title": self.title, "host": self.host, "outcome": self.outcome,
                                "duration": self.duration, "exit": self.exit, "signal": self.signal}
        return {**data, **_without_none({"task": self.task, "slurm_state": self.slurm_state,
                                         "words": self.words, "maxrss_kb": self.maxrss_kb})}

    @classmethod
    def from_json(cls, data: Any, what: str = "a group member") -> GroupMember:
        d = mapping(data, what)
        return cls(text(d, "outcome", what, default="unknown"), optional_text(d, "title", what),
                   optional_text(d, "host", what), optional_number(d, "duration", what),
                   optional_integer(d, "exit", what), optional_integer(d, "signal", what),
                   optional_text(d, "task", what), optional_text(d, "slurm_state", what),
                   optional_text(d, "words", what), optional_number(d, "maxrss_kb", what))


@dataclass
class Group:
    """A group's jobs (pingch -g): None while one runs, its member record once it ended."""

    opened: float
    changed: float
    jobs: dict[str, GroupMember | None] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {"opened": self.opened, "changed": self.changed,
                "jobs": {k: None if v is None else v.to_json() for k, v in self.jobs.items()}}

    @classmethod
    def from_json(cls, data: Any, what: str = "a group") -> Group:
        d = mapping(data, what)
        members = mapping(d.get("jobs", {}), f"{what}: its jobs")
        return cls(number(d, "opened", what), number(d, "changed", what),
                   {str(k): None if v is None else GroupMember.from_json(v, f"{what}: job {k!r}")
                    for k, v in members.items()})


@dataclass
class Budget:
    """One URL's token bucket (notify/routing.may_send)."""

    tokens: float
    at: float

    def to_json(self) -> dict[str, Any]:
        return {"tokens": self.tokens, "at": self.at}

    @classmethod
    def from_json(cls, data: Any, what: str = "a rate budget") -> Budget:
        d = mapping(data, what)
        return cls(number(d, "tokens", what), number(d, "at", what))


# -- memory pressure (watcher/pressure.py) ----------------------------------------------------


@dataclass
class NodePressure:
    """One node's alerts: whether an episode is open (told, not over yet) and when it was last told.

    Memory and CPU are told apart, each with its own episode; times are
    the file server's, so a watcher on another host keeps the same pace.
    """

    open: bool = False
    told_at: float = 0.0
    cpu_open: bool = False
    cpu_told_at: float = 0.0

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: Any, what: str = "a node's pressure") -> NodePressure:
        d = mapping(data, what)
        for key in ("open", "cpu_open"):
            if not isinstance(d.get(key, False), bool):
                raise StateFileError(f"{_where(what, key)} is not true or false")
        return cls(d.get("open") is True, number(d, "told_at", what, default=0.0),
                   d.get("cpu_open") is True, number(d, "cpu_told_at", what, default=0.0))


@dataclass
class Stats:
    events: int = 0
    malformed: int = 0
    delivered: int = 0
    last_event: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: Any, what: str = "the counters") -> Stats:
        d = mapping(data or {}, what)
        last = d.get("last_event") or {}
        # What `notifyd status --json` prints as it is: only plain values, so the
        # output stays JSON (no NaN, no Infinity) and a float() of it works.
        shown = {str(k): v for k, v in last.items() if _plain(v)} if isinstance(last, dict) else {}
        return cls(integer(d, "events", what, default=0), integer(d, "malformed", what, default=0),
                   integer(d, "delivered", what, default=0), shown)


def _plain(value: Any) -> bool:
    if value is None or isinstance(value, (str, bool)):
        return True
    return isinstance(value, (int, float)) and -NUMBER_MAX <= value <= NUMBER_MAX
