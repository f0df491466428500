"""The event wire format: bounded lines, a hand-written JSON encoder, strict decoding."""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import Iterator
from typing import Any

import pytest

from notifyd.spool import events
from notifyd.spool.events import MAX_LINE, TRUNCATED, MalformedEvent, decode, dumps, encode


def _event(**extra: Any) -> dict[str, Any]:
    ev: dict[str, Any] = {"ev": "finish", "job": "node5-1001-abcd1234", "host": "node5", "pid": 1001,
                          "ts": 1759489201.25}
    ev.update(extra)
    return ev


# -- encode --------------------------------------------------------------------

def test_encoded_event_is_one_line_ending_in_newline() -> None:
    line = encode(_event(title="train", cmd="python train.py\n--epochs 3", cwd="/home/a\nb"))
    assert line.endswith(b"\n")
    assert line.count(b"\n") == 1


def test_encode_adds_the_schema_version() -> None:
    assert json.loads(encode(_event()))["v"] == events.SCHEMA_VERSION


@pytest.mark.parametrize("char", ["a", "é", "漢", "😀", "\x01", "\udcff"], ids=repr)
def test_huge_title_cmd_and_cwd_still_fit_in_max_line(char: str) -> None:
    text = char * 100_000
    line = encode(_event(title=text, cmd=text, cwd=text))
    assert len(line) <= MAX_LINE
    assert line.count(b"\n") == 1
    decoded = decode(line.rstrip(b"\n"))
    for key in ("title", "cmd", "cwd"):
        assert decoded[key].endswith(TRUNCATED)


@pytest.mark.parametrize(("key", "limit"), sorted(events.FIELD_LIMITS.items()))
def test_field_longer_than_limit_is_truncated_with_visible_marker(key: str, limit: int) -> None:
    decoded = json.loads(encode(_event(**{key: "x" * (limit + 1)})))
    assert decoded[key].endswith(TRUNCATED)
    assert len(decoded[key]) == limit
    assert decoded[key].startswith("x" * (limit - len(TRUNCATED)))


@pytest.mark.parametrize(("key", "limit"), sorted(events.FIELD_LIMITS.items()))
def test_field_at_its_limit_is_kept_whole(key: str, limit: int) -> None:
    decoded = json.loads(encode(_event(**{key: "x" * limit})))
    assert decoded[key] == "x" * limit


def test_multibyte_field_within_char_limit_but_over_byte_bound_is_cut_to_fit() -> None:
    # 1500 four-byte characters pass the character limit but not the byte bound.
    cmd = "😀" * events.FIELD_LIMITS["cmd"]
    line = encode(_event(cmd=cmd))
    assert len(line) <= MAX_LINE
    decoded = json.loads(line)
    assert decoded["cmd"].endswith(TRUNCATED)
    assert decoded["cmd"].startswith("😀😀😀")


def test_encode_does_not_modify_the_callers_dict() -> None:
    ev = _event(title="t" * 1000)
    encode(ev)
    assert ev["title"] == "t" * 1000
    assert "v" not in ev


# -- dumps agrees with json ------------------------------------------------------

TRICKY_STRINGS = [
    "",
    "plain",
    'say "hi"',
    "back\\slash\\",
    "\\u0041 is not A",
    "tab\tnew\nline\rcr",
    "".join(chr(i) for i in range(0x20)),
    "\x7f del",
    "line\u2028sep\u2029para",
    "emoji 😀 and 漢字 and é",
    os.fsdecode(b"bad \xff\xfe bytes \x80"),
    os.fsdecode(b"\xed\xa0\x80 encoded surrogate"),
    "\udcff",
    "</script>",
]


@pytest.mark.parametrize("text", TRICKY_STRINGS, ids=repr)
def test_dumps_string_round_trips_through_json_loads(text: str) -> None:
    assert json.loads(dumps({"s": text})) == {"s": text}


@pytest.mark.parametrize("text", TRICKY_STRINGS, ids=repr)
def test_dumps_output_is_valid_utf8_on_one_line(text: str) -> None:
    out = dumps({"s": text}).encode("utf-8")  # would raise on an unescaped surrogate
    assert b"\n" not in out
    assert b"\r" not in out


@pytest.mark.parametrize(
    "value",
    [0, -1, 7, 2**63, -(2**70), 0.0, -0.0, 1.5, 1e-300, 1e300, 1759489201.123456, 0.1 + 0.2,
     None, True, False],
    ids=repr,
)
def test_dumps_scalar_round_trips_through_json_loads(value: object) -> None:
    decoded = json.loads(dumps({"k": value}))["k"]
    assert decoded == value
    assert type(decoded) is type(value)


def test_dumps_is_compact_json_like_json_dumps() -> None:
    ev = {"v": 1, "ev": "start", "ok": True, "none": None, "f": 2.5, "s": "x"}
    assert dumps(ev) == json.dumps(ev, separators=(",", ":"))


@pytest.mark.parametrize("value", [float("nan"), float("inf"), float("-inf")], ids=repr)
def test_dumps_non_finite_float_becomes_null(value: float) -> None:
    assert json.loads(dumps({"k": value})) == {"k": None}


def test_dumps_refuses_a_nested_value() -> None:
    with pytest.raises(TypeError, match="list"):
        dumps({"k": [1, 2]})


# -- decode ----------------------------------------------------------------------

def _line(ev: dict[str, Any]) -> bytes:
    return json.dumps(ev).encode()


def test_decode_accepts_what_encode_produced() -> None:
    ev = _event(title="train 😀", cmd=os.fsdecode(b"run \xff"), cwd="/x", exit=0, signal=None)
    decoded = decode(encode(ev).rstrip(b"\n"))
    assert decoded == {"v": events.SCHEMA_VERSION, **ev}


def test_decode_accepts_a_start_event() -> None:
    assert decode(encode(_event(ev="start")).rstrip(b"\n"))["ev"] == "start"


@pytest.mark.parametrize("line", [b"", b"not json", b"{\"v\": 1", b"\xff\xfe\x00garbage"], ids=repr)
def test_decode_rejects_non_json(line: bytes) -> None:
    with pytest.raises(MalformedEvent, match="not JSON"):
        decode(line)


@pytest.mark.parametrize("line", [b"[1, 2]", b"\"str\"", b"42", b"null"], ids=repr)
def test_decode_rejects_json_that_is_not_an_object(line: bytes) -> None:
    with pytest.raises(MalformedEvent, match="not a JSON object"):
        decode(line)


@pytest.mark.parametrize("key", sorted(events.REQUIRED))
def test_decode_rejects_event_missing_a_required_field(key: str) -> None:
    ev = {"v": 1, **_event()}
    del ev[key]
    with pytest.raises(MalformedEvent, match=repr(key)):
        decode(_line(ev))


@pytest.mark.parametrize("key", ["v", "pid", "ts"])
def test_decode_rejects_bool_where_a_number_is_expected(key: str) -> None:
    ev = {"v": 1, **_event(), key: True}
    with pytest.raises(MalformedEvent, match=repr(key)):
        decode(_line(ev))


@pytest.mark.parametrize(("key", "value"), [("pid", "1001"), ("pid", 1.5), ("host", 5), ("ts", "now")])
def test_decode_rejects_field_of_wrong_type(key: str, value: object) -> None:
    ev = {"v": 1, **_event(), key: value}
    with pytest.raises(MalformedEvent, match=repr(key)):
        decode(_line(ev))


def test_decode_rejects_newer_schema_version() -> None:
    ev = {**_event(), "v": events.SCHEMA_VERSION + 1}
    with pytest.raises(MalformedEvent, match="newer"):
        decode(_line(ev))


def test_decode_rejects_unknown_event_kind() -> None:
    ev = {"v": 1, **_event(ev="restart")}
    with pytest.raises(MalformedEvent, match="unknown event kind 'restart'"):
        decode(_line(ev))


def test_decode_rejects_line_longer_than_max_line_even_if_valid_json() -> None:
    ev = {"v": 1, **_event(), "pad": ""}
    ev["pad"] = "x" * (MAX_LINE + 1 - len(_line(ev)))
    line = _line(ev)
    assert len(line) == MAX_LINE + 1
    with pytest.raises(MalformedEvent, match="exceeds"):
        decode(line)


def test_decode_accepts_a_line_of_exactly_max_line_bytes() -> None:
    ev = {"v": 1, **_event(), "pad": ""}
    ev["pad"] = "x" * (MAX_LINE - len(_line(ev)))
    assert decode(_line(ev))["pad"].startswith("x")


@pytest.mark.parametrize(("key", "value"), [
    ("start_ts", 1e308), ("ts", 1e300), ("start_ts", 10**400), ("ts", -1.0), ("start_ts", 2.0**33 + 1),
], ids=repr)
def test_decode_rejects_a_time_no_clock_could_give(key: str, value: float) -> None:
    # time.localtime() raises for these, far from the spool (the lost notice's "started ...").
    with pytest.raises(MalformedEvent, match=repr(key)):
        decode(_line({"v": 1, **_event(ev="start"), key: value}))


@pytest.mark.parametrize("key", ["maxrss_kb", "duration", "cpu_s", "exit", "pid", "mem_total_kb"])
def test_decode_rejects_a_401_digit_integer_in_a_number_field(key: str) -> None:
    # json takes it; the first float() of it raises OverflowError.
    with pytest.raises(MalformedEvent, match=repr(key)):
        decode(_line({"v": 1, **_event(), key: 10**400}))


@pytest.mark.parametrize("host", ["", ".", "..", "../../etc", "a/b", "node\x005"], ids=repr)
def test_decode_rejects_a_host_that_is_not_a_file_name(host: str) -> None:
    # The host names files (events/HOST.jsonl, alive/HOST) that lost.py looks at.
    with pytest.raises(MalformedEvent, match="'host'"):
        decode(_line({"v": 1, **_event(host=host)}))


@pytest.mark.parametrize(("key", "value"), [
    ("group", ["a"]), ("title", 5), ("cmd", {"a": 1}), ("hide_command", "yes"), ("exit", "0"),
    ("exit", 1.5), ("exit", True), ("signal", "KILL"), ("maxrss_kb", 1.5), ("duration", "1h"),
    ("notify", 0), ("oom", 1),
], ids=repr)
def test_decode_rejects_an_optional_field_of_the_wrong_type(key: str, value: object) -> None:
    with pytest.raises(MalformedEvent, match=repr(key)):
        decode(_line({"v": 1, **_event(), key: value}))


def test_decode_takes_null_for_an_optional_field_as_absent() -> None:
    fields = {"exit": None, "signal": None, "maxrss_kb": None, "cpu_s": None, "title": None}
    assert decode(_line({"v": 1, **_event(**fields)}))["exit"] is None


@pytest.mark.parametrize(("key", "value"), [("job", ""), ("pid", -1)], ids=repr)
def test_decode_rejects_an_empty_job_id_or_a_negative_pid(key: str, value: object) -> None:
    with pytest.raises(MalformedEvent, match=repr(key)):
        decode(_line({"v": 1, **_event(), key: value}))


def test_the_event_number_bound_is_the_states() -> None:
    from notifyd.records import NUMBER_MAX

    assert events.NUMBER_MAX == NUMBER_MAX


# -- iso_time and job ids -----------------------------------------------------------

@pytest.fixture
def tz(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    def set_tz(name: str) -> None:
        monkeypatch.setenv("TZ", name)
        time.tzset()

    yield set_tz
    monkeypatch.undo()
    time.tzset()


ISO = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}[+-]\d{2}:\d{2}$")


def test_iso_time_ends_with_a_utc_offset() -> None:
    assert ISO.match(events.iso_time(time.time()))


@pytest.mark.parametrize(
    ("posix_tz", "expected"),
    [("UTC0", "1970-01-01T00:00:00+00:00"),
     ("XYZ-5:30", "1970-01-01T05:30:00+05:30"),
     ("XYZ3:30", "1969-12-31T20:30:00-03:30")],
)
def test_iso_time_shows_local_time_with_signed_offset(tz: Any, posix_tz: str, expected: str) -> None:
    tz(posix_tz)
    assert events.iso_time(0) == expected


def test_new_job_id_starts_with_host_and_pid() -> None:
    assert re.fullmatch(r"node5-1001-[0-9a-f]{8}", events.new_job_id("node5", 1001))


def test_new_job_id_is_unique_over_many_calls() -> None:
    ids = [events.new_job_id("node5", 1001) for _ in range(1000)]
    assert len(set(ids)) == len(ids)
