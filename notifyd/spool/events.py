"""The event wire format: one JSON object per line in events/<host>.jsonl.

Standard library only (it is on pingch's hot path). See docs/EVENTS.md.
"""

import os
import time

# typing costs ~7 ms to import; pingch imports this module on every job.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

SCHEMA_VERSION = 1

# One event is one write() of at most this many bytes. Appends from one NFS
# client are serialised by the client (fs/nfs/file.c), so a bounded line from
# one host cannot interleave with another line from the same host.
MAX_LINE = 4096

# Long fields are cut to these many characters before the whole line is checked.
# pingch keeps `tail` within its limit itself, dropping the oldest lines, so
# the cut (which keeps the start) only ever meets it when the line overflows.
FIELD_LIMITS = {"title": 200, "cmd": 1500, "cwd": 1000, "tail": 1500, "tail_file": 1000,
                "attach": 1000, "attach_error": 1100, "log": 1000}
TRUNCATED = "…[truncated]"

START = "start"
FINISH = "finish"
KINDS = (START, FINISH)

# Fields every event must carry, with their JSON types; the watcher skips (and
# counts) an event that lacks one.
REQUIRED: dict[str, type | tuple[type, ...]] = {
    "v": int,
    "ev": str,
    "job": str,
    "host": str,
    "pid": int,
    "ts": (int, float),
}
# The optional fields of docs/EVENTS.md with their types: one present (and not
# null) must have it, or the line is skipped. A wrong type here would break
# the watcher far from the spool (a group that is a list, a title that is a
# number saved into the state and refused when it is loaded again).
OPTIONAL: dict[str, type | tuple[type, ...]] = {
    **dict.fromkeys(("user", "title", "cmd", "cwd", "start", "group", "notify", "log", "end", "error",
                     "tail", "tail_file", "attach", "attach_error"), str),
    **dict.fromkeys(("watched", "hide_command", "detached", "exit_unknown", "unwatched", "oom"), bool),
    **dict.fromkeys(("exit", "signal", "maxrss_kb", "maxrss_floor_kb", "mem_total_kb", "cores"), int),
    **dict.fromkeys(("start_ts", "duration", "cpu_s"), (int, float)),
}
# Every number an event holds is within this of zero (records.NUMBER_MAX, not
# imported: pingch must not load the watcher's records): a 401-digit int
# passes json but overflows the first float() it meets.
NUMBER_MAX = 2.0**62
# Times (ts, start_ts) are Unix seconds from 1970 to 2242: ones past the year
# 9999 make time.localtime() raise, and none of these came from a real clock.
TIME_MAX = 2.0**33
TIMES = ("ts", "start_ts")


def iso_time(ts: float) -> str:
    """ISO 8601 local time with its UTC offset, e.g. 2025-10-03T13:05:59+02:00."""
    lt = time.localtime(ts)
    off = lt.tm_gmtoff or 0
    sign = "+" if off >= 0 else "-"
    hh, mm = divmod(abs(off) // 60, 60)
    return time.strftime("%Y-%m-%dT%H:%M:%S", lt) + f"{sign}{hh:02d}:{mm:02d}"


def new_job_id(host: str, pid: int) -> str:
    """host-pid-random: unique across hosts even when pids repeat after a reboot."""
    return f"{host}-{pid}-{os.urandom(4).hex()}"


# json imports re and costs ~6 ms; pingch only ever writes flat objects of
# str/int/float/bool/None, so it serialises them itself. The watcher reads
# with the real json module, and tests check the two agree.
_ESCAPES = {i: f"\\u{i:04x}" for i in range(0x20)}
_ESCAPES.update({ord('"'): '\\"', ord("\\"): "\\\\", 0x2028: "\\u2028", 0x2029: "\\u2029"})


def _escaped(value: str) -> str:
    text = value.translate(_ESCAPES)
    if text.isascii():
        return text
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        # Lone surrogates come from undecodable bytes in a command line
        # (surrogateescape); escaped, they stay valid UTF-8 on disk and
        # json.loads reads them back. Rare, so the 2,048 of them are not a
        # table built on every job's start (~1 ms: bench/, pingch overhead).
        text = "".join(f"\\u{ord(c):04x}" if 0xD800 <= ord(c) < 0xE000 else c for c in text)
    return text


def _finite_float(value: float) -> bool:
    """math.isfinite without importing math (a shared library: ~0.2 ms of every job's start)."""
    return value - value == 0.0


def _json_value(value: object) -> str:
    if isinstance(value, str):
        return '"' + _escaped(value) + '"'
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return repr(value) if _finite_float(value) else "null"
    raise TypeError(f"cannot encode {type(value).__name__} in an event")


def dumps(event: "dict[str, Any]") -> str:
    """Compact JSON for a flat dict (what json.dumps(separators=(",", ":")) gives)."""
    return "{" + ",".join(_json_value(str(k)) + ":" + _json_value(v) for k, v in event.items()) + "}"


def _cut(value: str, limit: int) -> str:
    if len(value) <= limit:
        return value
    return value[: max(0, limit - len(TRUNCATED))] + TRUNCATED


def encode(event: "dict[str, Any]") -> bytes:
    """Serialise one event to a single bounded line ending in a newline."""
    ev = dict(event)
    ev.setdefault("v", SCHEMA_VERSION)
    for key, limit in FIELD_LIMITS.items():
        if isinstance(ev.get(key), str):
            ev[key] = _cut(ev[key], limit)
    line = dumps(ev).encode() + b"\n"
    # Multibyte text or escapes can still push the line over the bound: halve the
    # longest free-text field until it fits.
    while len(line) > MAX_LINE:
        key = max(FIELD_LIMITS, key=lambda k: len(str(ev.get(k) or "")))
        text = str(ev.get(key) or "")
        if len(text) <= len(TRUNCATED):
            break
        ev[key] = _cut(text, len(text) // 2)
        line = dumps(ev).encode() + b"\n"
    return line


class MalformedEvent(ValueError):
    """A spool line that is not a valid event; the reader skips and counts it."""


def _finite(text: str) -> float:
    value = float(text)
    if not _finite_float(value):
        raise MalformedEvent(f"number {text} is out of range")
    return value


def _no_constant(text: str) -> float:
    raise MalformedEvent(f"{text} is not a number an event can hold")


def decode(line: bytes) -> "dict[str, Any]":
    """Parse and validate one line (without its newline)."""
    import json  # the watcher's side; kept off pingch's import path

    if len(line) > MAX_LINE:
        raise MalformedEvent(f"line of {len(line)} bytes exceeds the {MAX_LINE}-byte bound")
    try:
        ev = json.loads(line, parse_float=_finite, parse_constant=_no_constant)
    except MalformedEvent:
        raise
    except (ValueError, RecursionError) as exc:
        raise MalformedEvent(f"not JSON: {exc}") from None
    if not isinstance(ev, dict):
        raise MalformedEvent("not a JSON object")
    _check_types(ev)
    _check_values(ev)
    return ev


def _check_types(ev: "dict[str, Any]") -> None:
    """Every documented field has its documented type; the kind and version are ones we read."""
    for key, kind in REQUIRED.items():
        value = ev.get(key)
        if not isinstance(value, kind) or isinstance(value, bool):
            raise MalformedEvent(f"field {key!r} missing or of the wrong type")
    if ev["v"] > SCHEMA_VERSION:
        raise MalformedEvent(f"schema version {ev['v']} is newer than this notifyd reads")
    if ev["ev"] not in KINDS:
        raise MalformedEvent(f"unknown event kind {ev['ev']!r}")
    for key, kind in OPTIONAL.items():
        value = ev.get(key)
        if value is None:
            continue
        if not isinstance(value, kind) or (isinstance(value, bool) and kind is not bool):
            raise MalformedEvent(f"field {key!r} is of the wrong type")


def _check_values(ev: "dict[str, Any]") -> None:
    """Numbers a float and a clock can hold, and a host that can name a file."""
    for key in (*REQUIRED, *OPTIONAL):
        value = ev.get(key)
        if isinstance(value, (int, float)) and not isinstance(value, bool) and not (
                -NUMBER_MAX <= value <= NUMBER_MAX):
            raise MalformedEvent(f"field {key!r} is out of range")
    for key in TIMES:
        value = ev.get(key)
        if value is not None and not 0 <= value <= TIME_MAX:
            raise MalformedEvent(f"field {key!r} is not a time between 1970 and 2242")
    if ev["pid"] < 0:
        raise MalformedEvent("field 'pid' is negative")
    if not ev["job"]:
        raise MalformedEvent("field 'job' is empty")
    host = ev["host"]
    # The host names files (events/HOST.jsonl, alive/HOST): no path, no NUL.
    if host in ("", ".", "..") or "/" in host or "\x00" in host:
        raise MalformedEvent(f"field 'host' {host!r} is not a host name")
