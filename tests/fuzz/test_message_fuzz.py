"""Messages (notify/message.py) and defusing (notify/defuse.py) over any job text and any numbers.

For a job whose fields hold mentions (@everyone, <@123>, @&123), markdown,
RTL overrides, control characters, 1 MB titles or absurd numbers in any
field: no formatter raises, `fit` and the many-job formatters stay within
the limit, and nothing in the result works as a mention, a link or a line
of notifyd's own (checked with the content-safety test's own `live`).
"""

from __future__ import annotations

from typing import Any

from fuzz.hostile import ABSURD_NUMBERS, ENDINGS, cases, long_text, number, odd_value, text
from hypothesis import given
from hypothesis import strategies as st
from notify.test_content_safety import live

from notifyd.notify import defuse, message
from notifyd.notify.message import JOINER, Message

LIMITS = st.one_of(st.sampled_from([2000, 4096, 1024, 32768, 500, 200]), st.integers(80, 40000))
FINISH: dict[str, Any] = {
    "v": 1, "ev": "finish", "job": "node5-1001-abcd1234", "host": "node5", "pid": 1001,
    "ts": 1759489201.0, "start_ts": 1759487159.0, "title": "train", "cmd": "python train.py",
    "cwd": "/home/ana/proj", "exit": 3, "signal": None, "duration": 2042.0, "maxrss_kb": 1253376,
    "maxrss_floor_kb": 12288, "cpu_s": 2031.8, "mem_total_kb": 32771716, "cores": 8,
}
TEXT_FIELDS = ["title", "cmd", "cwd", "host", "group", "tail", "tail_file", "attach", "error",
               "attach_error", "log", "was_lost", "lost"]
NUMBER_FIELDS = ["ts", "start_ts", "duration", "maxrss_kb", "maxrss_floor_kb", "mem_total_kb", "cpu_s",
                 "cores", "exit", "signal", "pid", "oom", "detached", "hide_command", "unwatched", "legacy"]


def _job() -> st.SearchStrategy[dict[str, Any]]:
    """A finish event with hostile text in some fields and absurd values in others."""
    texts = st.dictionaries(st.sampled_from(TEXT_FIELDS), long_text(), max_size=4)
    numbers = st.dictionaries(st.sampled_from(NUMBER_FIELDS),
                              st.one_of(st.sampled_from(ABSURD_NUMBERS), number(), odd_value()), max_size=4)
    return st.builds(lambda t, n: {**FINISH, **t, **n}, texts, numbers)


def _fits(msg: Message, limit: int) -> None:
    assert len(msg.title) + len(msg.body) + JOINER <= limit, (len(msg.title), len(msg.body), limit)


def _safe(msg: Message) -> None:
    assert live(msg.title) == [], msg.title
    assert "\n" not in msg.title and "\r" not in msg.title
    assert live(msg.body) == [], msg.body


@cases(400)
@given(_job(), LIMITS)
def test_a_finished_job_with_any_text_and_numbers_fits_and_mentions_no_one(ev: dict[str, Any],
                                                                          limit: int) -> None:
    msg = message.finished(ev)
    _safe(msg)
    fitted = message.fit(msg, limit)
    _fits(fitted, limit)
    _safe(fitted)


@cases(300)
@given(_job(), long_text())
def test_a_start_and_a_loss_with_any_text_and_numbers_are_told_safely(
        ev: dict[str, Any], reason: str) -> None:
    for msg in (message.started(ev), message.lost(ev, reason)):
        _safe(msg)
        _safe(message.fit(msg, 2000))


@cases(150)
@given(st.lists(_job(), max_size=12), LIMITS)
def test_a_digest_of_any_jobs_fits_its_limit_and_mentions_no_one(
        jobs: list[dict[str, Any]], limit: int) -> None:
    msg = message.digest(jobs, limit)
    _fits(msg, limit)
    _safe(msg)


@cases(400)
@given(st.sampled_from(TEXT_FIELDS), st.sampled_from(ENDINGS), st.sampled_from(["", "x ", "x"]))
def test_a_field_ending_in_a_markup_character_is_told_safely_wherever_our_text_follows_it(
        field: str, injection: str, before: str) -> None:
    # Our own text after a field ("]" + ": " in a digest's title) must not complete it.
    ev = {**FINISH, field: before + injection}
    for msg in (message.finished(ev), message.lost(ev, before + injection),
                message.digest([ev, {**ev, "exit": 0}], 2000), message.digest([ev], 2000)):
        _safe(msg)


MEMBER = st.fixed_dictionaries({}, optional={
    "title": st.one_of(long_text(), odd_value()), "host": st.one_of(text(), odd_value()),
    "outcome": st.one_of(st.sampled_from(["ok", "failed", "lost", "unknown"]), odd_value()),
    "duration": st.one_of(number(), odd_value()), "exit": odd_value(), "signal": odd_value()})


@cases(200)
@given(long_text(), st.lists(MEMBER, max_size=15), LIMITS)
def test_a_group_summary_of_any_members_fits_its_limit_and_mentions_no_one(
        name: str, jobs: list[dict[str, Any]], limit: int) -> None:
    msg = message.group_done(name, jobs, limit)
    _fits(msg, limit)
    _safe(msg)


@cases(300)
@given(st.builds(Message, long_text(), long_text(), st.just("info")), st.integers(JOINER + 1, 40000))
def test_fit_keeps_any_message_within_any_limit(msg: Message, limit: int) -> None:
    _fits(message.fit(msg, limit), limit)


@cases(300)
@given(long_text())
def test_defused_text_is_the_same_text_with_zero_width_spaces_and_nothing_live(raw: str) -> None:
    out = defuse.defuse(raw)
    assert out.replace(defuse.ZWSP, "") == raw.replace(defuse.ZWSP, "")
    for one_line in (defuse.line(raw), defuse.code(raw)):
        assert "\n" not in one_line and "\r" not in one_line
        assert live(one_line) == []
    assert live("\n".join(defuse.code_block(raw))) == []
