"""A node's recent memory, swap and load: the few numbers per snapshot the pressure trend needs.

Each snapshot carries the rows of the snapshots before it (taken from the
previous file of the same host), so that one file holds the last KEEP
minutes of the node without any other file or database:

    "history": [[time, mem_available, mem_total, swap_used, swap_total, load1, cores], ...]

oldest first, the snapshot's own row last; bytes, seconds since the epoch
by the node's own clock (so only differences between its rows are used),
null where a number is not known. The writer (`carry`) and the reader
(`problem`, `samples`) live here together; nodes/reader.py checks a
snapshot's history with `problem` like every other field.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, TypeGuard

FIELDS = ("time", "mem_available", "mem_total", "swap_used", "swap_total", "load1", "cores")
# 30 rows: a snapshot a minute covers half an hour, twice the default
# warn_ahead (15 min) and three times the 10 minutes of the CPU rule, so a
# few missed cron runs still leave the trend enough points. ~2 KB a file.
KEEP = 30
MAX_ROWS = 120  # a reader accepts this many (a writer configured otherwise), no more
BIG = 2**62  # bytes, pids, cores: anything a real node reports is far below
_REQUIRED = 3  # time, mem_available and mem_total are never null


@dataclass(frozen=True)
class Sample:
    """One moment of a node: its memory (bytes), swap (bytes), 1-minute load and cores."""

    time: float
    mem_available: float
    mem_total: float
    swap_used: float | None = None
    swap_total: float | None = None
    load1: float | None = None
    cores: float | None = None

    def row(self) -> list[float | None]:
        return [getattr(self, name) for name in FIELDS]

    @property
    def available_share(self) -> float:
        """Available memory as a share of the total (1.0 when the total is unknown)."""
        return self.mem_available / self.mem_total if self.mem_total > 0 else 1.0


def in_range(value: Any, low: float = 0, high: float = BIG) -> TypeGuard[float]:
    """A real number (not bool, not NaN/inf) within [low, high]: what a snapshot's figures must be."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    # Compare before isfinite(): a 400-digit int overflows float conversion.
    return low <= value <= high and (isinstance(value, int) or math.isfinite(value))


def problem(value: Any) -> str | None:
    """What makes `value` unusable as a snapshot's history, or None."""
    if not isinstance(value, list):
        return "field 'history' is not a list"
    if len(value) > MAX_ROWS:
        return f"field 'history' holds {len(value)} rows, over {MAX_ROWS}"
    for row in value:
        if not isinstance(row, list) or len(row) != len(FIELDS):
            return f"a history row is not a list of {len(FIELDS)} numbers"
        if not all(in_range(x) for x in row[:_REQUIRED]) or not all(
                x is None or in_range(x) for x in row[_REQUIRED:]):
            return "a history row holds a number out of range"
    return None


def _sample(row: list[Any]) -> Sample:
    return Sample(*(float(x) if x is not None else None for x in row))  # type: ignore[arg-type]


def current(snapshot: dict[str, Any]) -> Sample:
    """The snapshot's own moment as a sample (its top-level fields, already checked by the reader)."""
    load = snapshot.get("load") or [None]

    def opt(key: str) -> float | None:
        value = snapshot.get(key)
        return float(value) if in_range(value) else None

    return Sample(float(snapshot["time"]), float(snapshot["mem_available"]), float(snapshot["mem_total"]),
                  opt("swap_used"), opt("swap_total"),
                  float(load[0]) if in_range(load[0]) else None, opt("cpu_count"))


def samples(snapshot: dict[str, Any]) -> list[Sample]:
    """The snapshot's history, oldest first, ending with its own moment.

    A snapshot without history (an older notifyd wrote it) is one sample:
    the thresholds still apply, the trends wait for more. Rows are sorted
    by time and those at or after the snapshot's own moment are left out
    (a hostile or confused file cannot put the future in the trend).
    """
    now = current(snapshot)
    rows = snapshot.get("history")
    if not isinstance(rows, list) or problem(rows) is not None:
        return [now]
    earlier = sorted((_sample(r) for r in rows), key=lambda s: s.time)
    return [*(s for s in earlier if s.time < now.time), now]


def carry(previous: dict[str, Any] | None, snapshot: dict[str, Any], keep: int = KEEP) -> list[list[Any]]:
    """The history to write with `snapshot`: the previous file's rows, then this one's, the last `keep`.

    Rows from before the node's boot are dropped (a reboot empties its
    memory: they say nothing of now), and so are rows not older than this
    snapshot (the node's clock was set back).
    """
    booted = snapshot.get("boot_time")
    boot = float(booted) if in_range(booted) else 0.0
    now = current(snapshot)
    kept: list[Sample] = []
    if previous is not None:
        kept = [s for s in samples(previous) if boot <= s.time < now.time]
    return [s.row() for s in [*kept, now][-keep:]]
