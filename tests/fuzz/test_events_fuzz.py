"""The event decoder (spool/events.py) over any line: only MalformedEvent escapes, and what decodes is usable.

"Usable" is checked where it matters: the watcher turns a start into a
running job (records.RunningJob), a finish into a message and an inbox
record, with no exception of its own; and pingch's own events survive the
trip through encode and decode unchanged.
"""

from __future__ import annotations

import json
import math
from typing import Any

from fuzz.hostile import cases, json_value, long_text, spoiled, text
from hypothesis import given
from hypothesis import strategies as st

from notifyd import records
from notifyd.notify import inbox, message, routing
from notifyd.spool import events
from notifyd.spool.events import MAX_LINE, MalformedEvent, decode, encode

NUMBERS = ("ts", "start_ts", "duration", "cpu_s")
INTEGERS = ("v", "pid", "exit", "signal", "maxrss_kb", "maxrss_floor_kb", "mem_total_kb", "cores")
TEXTS = ("ev", "job", "host", "user", "title", "cmd", "cwd", "start", "group", "notify", "log", "end",
         "error", "tail", "tail_file", "attach", "attach_error")
FLAGS = ("watched", "hide_command", "detached", "exit_unknown", "unwatched", "oom")


def _decoded(line: bytes) -> dict[str, Any] | None:
    try:
        return decode(line)
    except MalformedEvent:
        return None


START = {"v": 1, "ev": "start", "job": "node5-2322-752fb913", "user": "ana", "host": "node5",
         "pid": 2322, "title": "relax", "cmd": "python relax.py", "cwd": "/home/ana/calc",
         "start": "2025-10-03T13:05:59+02:00", "start_ts": 1759489559.1, "ts": 1759489559.1}
FINISH = {**START, "ev": "finish", "ts": 1759491601.4, "end": "2025-10-03T13:40:01+02:00",
          "duration": 2042.3, "exit": 0, "signal": None, "maxrss_kb": 1253376, "cpu_s": 2031.8,
          "mem_total_kb": 32771716, "cores": 8}
FIELDS = sorted({*events.REQUIRED, *events.OPTIONAL})


def _event_like() -> st.SearchStrategy[dict[str, Any]]:
    """A start or finish event as pingch writes it, with a few fields odd or missing."""
    return st.one_of(spoiled(START, FIELDS), spoiled(FINISH, FIELDS))


def _json_line(obj: Any) -> bytes:
    # Python's json writes NaN and Infinity and any int: what a hostile writer could put in a file.
    return json.dumps(obj, ensure_ascii=False).encode("utf-8", "surrogatepass")


def _usable_number(value: Any) -> bool:
    return (not isinstance(value, bool) and isinstance(value, (int, float))
            and abs(value) <= records.NUMBER_MAX and math.isfinite(value))


def _check_usable(ev: dict[str, Any]) -> None:
    """What the watcher does with a decoded event, none of which may raise."""
    for key, kind in events.REQUIRED.items():
        assert isinstance(ev[key], kind) and not isinstance(ev[key], bool), key
    assert ev["ev"] in events.KINDS
    assert ev["job"]
    assert ev["host"] not in ("", ".", "..") and "/" not in ev["host"] and "\x00" not in ev["host"]
    for key in NUMBERS + INTEGERS:
        if ev.get(key) is not None:
            assert _usable_number(ev[key]), (key, ev[key])
    for key in INTEGERS:
        if ev.get(key) is not None:
            assert isinstance(ev[key], int), key
    for key in ("ts", "start_ts"):
        if ev.get(key) is not None:
            assert 0 <= ev[key] <= events.TIME_MAX, key
    for key in TEXTS:
        assert ev.get(key) is None or isinstance(ev[key], str), key
    for key in FLAGS:
        assert ev.get(key) is None or isinstance(ev[key], bool), key
    if ev["ev"] == "start":
        records.RunningJob.from_event(ev)
        message.started(ev)
    else:
        message.fit(message.finished(ev), 2000)
        inbox.encode(f"{ev['job']}:finish", job=ev["job"], time=float(ev["ts"]), kind="info",
                     title="t", body="b", info=inbox.job_summary(ev, False))
        routing.compact(ev)


@cases(2000)
@given(st.binary(max_size=200)
       | st.builds(lambda b, n: b * n, st.binary(min_size=1, max_size=8), st.integers(500, 600)))
def test_any_bytes_decode_to_an_event_or_raise_malformed_event(line: bytes) -> None:
    ev = _decoded(line)
    if ev is not None:
        _check_usable(ev)


@cases(2500)
@given(_event_like())
def test_an_object_that_decodes_has_every_field_the_watcher_can_use(obj: dict[str, Any]) -> None:
    ev = _decoded(_json_line(obj))
    if ev is not None:
        _check_usable(ev)


@cases(500)
@given(json_value())
def test_any_json_value_decodes_to_an_event_or_raises_malformed_event(value: Any) -> None:
    ev = _decoded(_json_line(value))
    if ev is not None:
        _check_usable(ev)


def _pingch_event() -> st.SearchStrategy[dict[str, Any]]:
    """What pingch writes: its fields with their real types, any text (undecodable bytes as surrogates)."""
    def own(most: int) -> st.SearchStrategy[str]:
        return long_text(most, own=True)

    host = st.text(st.characters(exclude_characters="/\x00", exclude_categories=("Cs",)),
                   min_size=1, max_size=30).filter(lambda h: h not in (".", ".."))
    when = st.floats(0, 4e9)
    big = st.integers(0, 2**40)
    required = {"ev": st.sampled_from(["start", "finish"]), "job": text(40, own=True).filter(bool),
                "host": host, "pid": st.integers(1, 2**22), "ts": when}
    optional = {
        "user": own(20), "title": own(300), "cmd": own(2000), "cwd": own(1200),
        "start": st.just("2025-10-03T13:05:59+02:00"), "start_ts": when, "group": own(10),
        "notify": st.sampled_from(["failure", "none"]), "hide_command": st.just(True),
        "detached": st.just(True), "log": own(1200), "end": st.just("2025-10-03T13:40:01+02:00"),
        "duration": st.floats(-1e6, 1e9), "exit": st.none() | st.integers(0, 255),
        "signal": st.none() | st.integers(1, 64), "exit_unknown": st.just(True),
        "maxrss_kb": st.none() | big, "maxrss_floor_kb": big, "cpu_s": st.none() | st.floats(0, 1e9),
        "error": own(300), "unwatched": st.just(True), "tail": own(2000), "tail_file": own(1200),
        "attach": own(1200), "attach_error": own(1200), "mem_total_kb": big,
        "cores": st.integers(1, 4096), "oom": st.just(True), "watched": st.just(True),
    }
    return st.fixed_dictionaries(required, optional=optional)


@cases(500)
@given(_pingch_event())
def test_what_pingch_writes_is_one_bounded_line_that_decodes_to_the_same_event(ev: dict[str, Any]) -> None:
    line = encode(ev)
    assert line.endswith(b"\n") and line.count(b"\n") == 1
    assert len(line) <= MAX_LINE
    back = decode(line[:-1])
    assert back["v"] == events.SCHEMA_VERSION
    for key, value in ev.items():
        if key in events.FIELD_LIMITS and back[key] != value:
            # Cut to fit: what is kept is the start, marked as cut.
            assert back[key].endswith(events.TRUNCATED), key
            assert value.startswith(back[key][: -len(events.TRUNCATED)]), key
        else:
            assert back[key] == value, key
    _check_usable(back)
