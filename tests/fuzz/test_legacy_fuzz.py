"""The old ~/.pingchilling lines (spool/legacy.py) and their pairing (watcher/sources/legacy.py).

A line either parses or raises ValueError saying why; pairing any parsed
lines, with any open starts a saved cursor holds, never raises and gives
finish events the message and the inbox can take; the source over a file
of such lines accounts for every one.
"""

from __future__ import annotations

import os
import tempfile
from typing import Any

from fuzz.hostile import cases, json_value, odd_value, text
from hypothesis import given
from hypothesis import strategies as st

from notifyd.notify import inbox, message
from notifyd.spool import legacy
from notifyd.spool.events import MAX_LINE
from notifyd.watcher.sources.legacy import LegacyFile, pair

ODD_DIGITS = ["0", "-1", "²", "٣", "१२", "9" * 30, "9" * 4000, "9" * 5000, "", "1e5", " 3", "--3", "-",
              "+3", "0x10", "３", "1_000"]
PID = st.one_of(st.sampled_from(["1", "2", "1001"]), st.integers(0, 10**12).map(str),
                st.sampled_from(ODD_DIGITS))
EXIT = st.one_of(st.integers(-300, 300).map(str), st.sampled_from(ODD_DIGITS), text(20))
WHEN = st.one_of(
    st.sampled_from(["2025-10-03 13:05:59", "2025-10-03 14:00:00", "0000-00-00 00:00:00",
                     "9999-12-31 23:59:59", "1969-12-31 23:59:59", "2025-02-30 25:61:61",
                     "٢٠٢٥-١٠-٠٣ ١٣:٠٥:٥٩", "2038-01-19 03:14:08", "0001-01-01 00:00:00"]),
    st.builds("{:04d}-{:02d}-{:02d} {:02d}:{:02d}:{:02d}".format, st.integers(0, 9999), st.integers(0, 99),
              st.integers(0, 99), st.integers(0, 99), st.integers(0, 99), st.integers(0, 99)),
)
HOST = st.one_of(st.sampled_from(["node5", "node5", "n", "a/b", "..", "x\x00y", "é", "\u202e"]), text(12))


@st.composite
def legacy_line(draw: st.DrawFn) -> bytes:
    """A line in the old format with each part usual or odd."""
    kind = draw(st.sampled_from(["Started", "Finished", "Finished", "started", "Finish"]))
    arg = draw(EXIT if kind.startswith("F") else text(30))
    tail = draw(st.sampled_from(["", "", " ", "\r", "  \t", "x"]))
    line = f"{draw(PID)}@{draw(HOST)}: {kind} [{arg}] {draw(WHEN)}{tail}".encode("utf-8", "surrogatepass")
    return draw(st.sampled_from([line, line, line, line + b"\xff", line[: len(line) // 2]]))


LINE = st.one_of(legacy_line(), legacy_line(), st.binary(max_size=80))


def _parsed(raw: bytes) -> legacy.LegacyLine | None:
    try:
        return legacy.parse(raw)
    except ValueError as exc:
        assert str(exc), "a reason is given"
        return None


@cases(1000)
@given(LINE)
def test_a_legacy_line_parses_or_raises_value_error_with_a_reason(raw: bytes) -> None:
    item = _parsed(raw)
    if item is not None:
        assert item.kind in ("start", "finish")
        assert isinstance(item.pid, int) and isinstance(item.ts, float)


OPEN_START = st.fixed_dictionaries({}, optional={"title": odd_value(), "ts": odd_value()})
OPEN = st.dictionaries(st.one_of(st.sampled_from(["1@node5", "2@node5", "1001@node5"]), text(10)),
                       st.one_of(OPEN_START, json_value(4)), max_size=4)


def _check_finish(ev: dict[str, Any]) -> None:
    assert ev["ev"] == "finish" and isinstance(ev["job"], str) and isinstance(ev["ts"], float)
    message.fit(message.finished(ev), 2000)
    inbox.encode(f"{ev['job']}:finish", job=ev["job"], time=ev["ts"], kind="info", title="t", body="b",
                 info=inbox.job_summary(ev, False))


@cases(300)
@given(st.lists(LINE, max_size=12), OPEN)
def test_pairing_any_lines_with_any_saved_open_starts_never_fails(
        lines: list[bytes], open_starts: dict[str, Any]) -> None:
    for raw in lines:
        item = _parsed(raw)
        if item is None:
            continue
        ev = pair(item, open_starts)
        if item.kind == "start":
            assert ev is None and item.key in open_starts
        else:
            assert ev is not None
            _check_finish(ev)


@cases(300)
@given(st.lists(LINE, max_size=15), st.one_of(st.none(), st.fixed_dictionaries(
    # An offset inside a line is trusted (it reads a tail, found malformed): only the top is modelled.
    {"offset": st.one_of(st.just(0), odd_value().filter(lambda v: not isinstance(v, int) or v <= 0)),
     "head": st.one_of(st.just(""), odd_value())},
    optional={"open": st.one_of(OPEN, odd_value())})))
def test_the_legacy_source_accounts_for_every_line_of_a_hostile_file(
        lines: list[bytes], cursor: dict[str, Any] | None) -> None:
    raw = b"".join(line.replace(b"\n", b" ") + b"\n" for line in lines)
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, ".pingchilling")
        with open(path, "wb") as f:
            f.write(raw)
        source = LegacyFile(path)
        polled = source.poll(cursor, 0.0)
        again = source.poll(polled.cursor, 0.0)  # and what it saved reads back
    told = polled.events if cursor is not None else [{"job": j, "ts": t} for j, t in polled.history]
    for ev in polled.events:
        _check_finish(ev)
    assert again.events == [] and again.malformed == 0
    # A line over MAX_LINE is not parsed at all: counted as oversized.
    parsed = [p for p in map(_parsed, (line.replace(b"\n", b" ") for line in lines if len(line) <= MAX_LINE))
              if p is not None]
    assert polled.malformed == sum(1 for line in lines if line.replace(b"\n", b" ").strip()) - len(parsed)
    assert len(told) == sum(1 for p in parsed if p.kind == "finish")
