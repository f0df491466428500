"""Routing's rules one by one, in memory: a State, recording targets and a fixed `now`.

The end-to-end runs (tests/e2e/test_routing.py) show the rules hold with
real jobs; these place the edges (the last second of a window, exactly one
token left) that timed process tests cannot.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest
from fakes import RecordingTarget, finish_event, inbox_target, start_event

from notifyd import config
from notifyd.notify import message, routing
from notifyd.notify.targets import INBOX_KEY
from notifyd.state import State

T0 = 1_800_000_000.0


def cfg(**keys: Any) -> config.Config:
    """The defaults (digest_after 3, window 60 s, quiet 2 s, rate 30/min, group_wait 30 s), changed."""
    return dataclasses.replace(config.load(Path("/nonexistent/notifyd.conf"), {}), **keys)


def url(key: str = "u1", *tags: str) -> RecordingTarget:
    return RecordingTarget(key=key, display=f"fake://{key}", tags=frozenset(tags))


def end(state: State, targets: list[RecordingTarget], conf: config.Config, job: str, now: float,
        **ev: Any) -> None:
    event = finish_event(job, ts=now, **ev)
    routing.job_ended(state, list(targets), conf, entry_id=f"{job}:finish", ev=event,
                      msg=message.finished(event), now=now)


def targets_of(state: State, entry_id: str) -> list[str]:
    return next(e.targets for e in state.outbox if e.id == entry_id)


# -- every job has an inbox record -------------------------------------------------------------


def test_every_finished_job_gets_an_inbox_record_with_its_summary() -> None:
    state = State()
    end(state, [inbox_target(), url()], cfg(), "j1", T0, exit=3)
    (entry,) = state.outbox
    assert INBOX_KEY in entry.targets
    assert entry.info is not None and entry.info["outcome"] == "failed" and entry.info["exit"] == 3


def test_a_job_kept_quiet_by_a_filter_still_gets_its_inbox_record() -> None:
    state = State()
    end(state, [url()], cfg(), "j1", T0, notify="none")
    assert targets_of(state, "j1:finish") == [INBOX_KEY]
    assert state.outbox[0].info is not None and state.outbox[0].info["silent"] is True


# -- filters ---------------------------------------------------------------------------------


def test_on_failure_keeps_a_success_quiet() -> None:
    state = State()
    end(state, [url()], cfg(on="failure"), "j1", T0)
    assert targets_of(state, "j1:finish") == [INBOX_KEY]


def test_on_failure_still_tells_a_failure() -> None:
    state = State()
    end(state, [url()], cfg(on="failure"), "j1", T0, exit=1)
    assert targets_of(state, "j1:finish") == [INBOX_KEY, "u1"]


def test_a_success_shorter_than_min_duration_stays_quiet() -> None:
    state = State()
    end(state, [url()], cfg(min_duration=60.0), "j1", T0, duration=59.9)
    assert targets_of(state, "j1:finish") == [INBOX_KEY]


def test_a_success_of_exactly_min_duration_is_told() -> None:
    state = State()
    end(state, [url()], cfg(min_duration=60.0), "j1", T0, duration=60.0)
    assert targets_of(state, "j1:finish") == [INBOX_KEY, "u1"]


def test_a_short_failure_is_never_kept_quiet_by_min_duration() -> None:
    state = State()
    end(state, [url()], cfg(min_duration=60.0), "j1", T0, duration=1.0, signal=9, exit=None)
    assert targets_of(state, "j1:finish") == [INBOX_KEY, "u1"]


def test_notify_failure_on_the_job_keeps_its_success_quiet() -> None:
    state = State()
    end(state, [url()], cfg(), "j1", T0, notify="failure")
    assert targets_of(state, "j1:finish") == [INBOX_KEY]


# -- tags ------------------------------------------------------------------------------------


def test_a_failure_tagged_url_takes_no_success() -> None:
    state = State()
    end(state, [url("u1", "failure")], cfg(), "j1", T0)
    assert targets_of(state, "j1:finish") == [INBOX_KEY]


def test_a_failure_tagged_url_takes_a_failure() -> None:
    state = State()
    end(state, [url("u1", "failure")], cfg(), "j1", T0, exit=2)
    assert targets_of(state, "j1:finish") == [INBOX_KEY, "u1"]


def test_a_digest_tagged_url_gets_every_job_in_its_batch_not_singly() -> None:
    state = State()
    end(state, [url("u1", "digest")], cfg(), "j1", T0)
    assert targets_of(state, "j1:finish") == [INBOX_KEY]
    assert [j["job"] for j in state.batches["u1"].jobs] == ["j1"]


def test_an_untagged_and_a_failure_url_each_get_what_they_take() -> None:
    state = State()
    targets = [url("all"), url("bad", "failure")]
    end(state, targets, cfg(), "ok1", T0)
    end(state, targets, cfg(), "bad1", T0, exit=1)
    assert targets_of(state, "ok1:finish") == [INBOX_KEY, "all"]
    assert targets_of(state, "bad1:finish") == [INBOX_KEY, "all", "bad"]


# -- digests ---------------------------------------------------------------------------------


def test_the_first_digest_after_jobs_in_the_window_go_out_one_by_one() -> None:
    state = State()
    for i in range(3):
        end(state, [url()], cfg(digest_after=3), f"j{i}", T0 + i)
    assert all("u1" in e.targets for e in state.outbox)
    assert "u1" not in state.batches


def test_the_next_job_in_the_window_waits_in_the_batch() -> None:
    state = State()
    for i in range(4):
        end(state, [url()], cfg(digest_after=3), f"j{i}", T0 + i)
    assert targets_of(state, "j3:finish") == [INBOX_KEY]
    assert [j["job"] for j in state.batches["u1"].jobs] == ["j3"]


def test_a_job_in_the_last_moment_of_the_window_is_still_batched() -> None:
    state = State()
    for i in range(3):
        end(state, [url()], cfg(digest_after=3), f"j{i}", T0)
    end(state, [url()], cfg(digest_after=3), "late", T0 + 59.999)
    assert targets_of(state, "late:finish") == [INBOX_KEY]


def test_a_job_just_after_the_window_goes_out_on_its_own_again() -> None:
    state = State()
    for i in range(3):
        end(state, [url()], cfg(digest_after=3), f"j{i}", T0)
    end(state, [url()], cfg(digest_after=3), "next", T0 + 60.0)
    assert targets_of(state, "next:finish") == [INBOX_KEY, "u1"]


def _batched(state: State, n: int, at: float) -> None:
    for i in range(3 + n):
        end(state, [url()], cfg(digest_after=3), f"j{i}", at)


def test_a_batch_is_not_sent_while_jobs_keep_ending() -> None:
    state = State()
    _batched(state, 2, T0)
    assert not routing.flush(state, [url()], cfg(digest_after=3), T0 + 1.999)
    assert "u1" in state.batches


def test_a_batch_becomes_one_digest_after_digest_quiet_seconds_of_quiet() -> None:
    state = State()
    _batched(state, 2, T0)
    assert routing.flush(state, [url()], cfg(digest_after=3), T0 + 2.0)
    digest = state.outbox[-1]
    assert digest.id.startswith("digest:u1:") and digest.targets == ["u1"]
    assert digest.jobs == ["j3", "j4"]
    assert digest.title.startswith("2 jobs finished on node2")
    assert "u1" not in state.batches


def test_a_batch_is_sent_when_its_window_is_over_even_if_jobs_keep_coming() -> None:
    state = State()
    _batched(state, 1, T0)
    conf = cfg(digest_after=3)
    for s in range(1, 60):  # a job every second: never quiet
        end(state, [url()], conf, f"k{s}", T0 + s)
        routing.flush(state, [url()], conf, T0 + s)
    assert "u1" in state.batches
    assert routing.flush(state, [url()], conf, T0 + 60.0)


def test_a_batch_of_one_job_goes_out_as_that_jobs_own_message() -> None:
    state = State()
    _batched(state, 1, T0)
    routing.flush(state, [url()], cfg(digest_after=3), T0 + 2.0)
    own = message.finished(finish_event("j3", ts=T0))
    sent = state.outbox[-1]
    assert (sent.title, sent.body, sent.severity) == (own.title, own.body, own.severity)
    assert sent.jobs == ["j3"] and sent.job == "j3"


def test_a_batch_of_one_keeps_the_jobs_attachment() -> None:
    state = State()
    for i in range(3):
        end(state, [url()], cfg(), f"j{i}", T0)
    end(state, [url()], cfg(), "plot", T0, attach="/home/ana/plot.png")
    routing.flush(state, [url()], cfg(), T0 + 2.0)
    assert state.outbox[-1].attach == "/home/ana/plot.png"


def test_a_batch_of_up_to_three_jobs_keeps_each_jobs_key_lines() -> None:
    state = State()
    for i in range(3):
        end(state, [url()], cfg(), f"j{i}", T0)
    end(state, [url()], cfg(), "a", T0, cwd="/home/ana/alpha", cmd="./alpha", maxrss_kb=2048)
    end(state, [url()], cfg(), "b", T0, cwd="/home/ana/beta", cmd="./beta", exit=3, tail="loss 0.1\ndone")
    end(state, [url()], cfg(), "c", T0, cwd="/home/ana/gamma", cmd="./gamma", signal=15, exit=None)
    routing.flush(state, [url()], cfg(), T0 + 2.0)
    sent = state.outbox[-1]
    assert sent.title == "3 jobs finished on node2: 1 ok, 2 failed"
    for words in ("`/home/ana/alpha`", "`$ ./alpha`", "peak RSS 2.0 MiB", "`/home/ana/beta`", "exit 3",
                  "done", "`/home/ana/gamma`", "killed by SIGTERM", "after 5.0 s"):
        assert words in sent.body


def test_a_batch_of_more_than_three_jobs_is_a_digest_of_one_line_a_job() -> None:
    state = State()
    _batched(state, 4, T0)
    routing.flush(state, [url()], cfg(digest_after=3), T0 + 2.0)
    sent = state.outbox[-1]
    assert sent.title.startswith("4 jobs finished on node2")
    assert len(sent.body.splitlines()) == 4 and "/home/ana" not in sent.body


def test_a_digest_tagged_url_gets_a_digest_even_for_one_job() -> None:
    state = State()
    end(state, [url("u1", "digest")], cfg(), "j1", T0)
    routing.flush(state, [url("u1", "digest")], cfg(), T0 + 2.0)
    assert state.outbox[-1].title == "1 job finished on node2: 1 ok"


def test_only_a_small_batchs_first_jobs_keep_their_message_in_the_state() -> None:
    state = State()
    _batched(state, 10, T0)
    assert [("message" in j) for j in state.batches["u1"].jobs] == [True] * 3 + [False] * 7


def test_a_batch_saved_without_messages_by_an_older_watcher_is_a_digest() -> None:
    state = State()
    _batched(state, 1, T0)
    del state.batches["u1"].jobs[0]["message"]
    routing.flush(state, [url()], cfg(digest_after=3), T0 + 2.0)
    assert state.outbox[-1].title == "1 job finished on node2: 1 ok"


def test_a_kept_message_that_is_not_one_makes_the_batch_a_digest() -> None:
    state = State()
    _batched(state, 1, T0)
    state.batches["u1"].jobs[0]["message"] = {"title": "x", "body": 3, "kind": "info", "attach": ""}
    routing.flush(state, [url()], cfg(digest_after=3), T0 + 2.0)
    assert state.outbox[-1].title == "1 job finished on node2: 1 ok"


def test_a_digest_counts_as_one_message_in_the_window() -> None:
    state = State()
    _batched(state, 1, T0)
    routing.flush(state, [url()], cfg(digest_after=3), T0 + 2)
    assert len(state.recent["u1"]) == 4  # three singles and the digest


# -- the rate budget -------------------------------------------------------------------------


def test_a_full_budget_allows_rate_messages_at_once_and_no_more() -> None:
    state = State()
    conf = cfg(rate_per_min=5.0)
    assert [routing.may_send(state, "u1", conf, T0) for _ in range(6)] == [True] * 5 + [False]


def test_exactly_one_token_left_is_one_message() -> None:
    state = State()
    conf = cfg(rate_per_min=60.0)  # a token a second
    for _ in range(60):
        routing.may_send(state, "u1", conf, T0)
    assert not routing.may_send(state, "u1", conf, T0 + 0.999)
    assert routing.may_send(state, "u1", conf, T0 + 1.0 + 0.001)
    assert not routing.may_send(state, "u1", conf, T0 + 1.0 + 0.001)


def test_the_budget_refills_at_the_rate_up_to_its_capacity() -> None:
    state = State()
    conf = cfg(rate_per_min=30.0)
    routing.may_send(state, "u1", conf, T0)
    assert state.budget["u1"].tokens == pytest.approx(29.0)
    routing.may_send(state, "u1", conf, T0 + 3600)
    assert state.budget["u1"].tokens == pytest.approx(29.0)  # refilled to 30, one taken


def test_the_inbox_has_no_budget() -> None:
    state = State()
    conf = cfg(rate_per_min=1.0)
    assert all(routing.may_send(state, INBOX_KEY, conf, T0) for _ in range(100))
    assert INBOX_KEY not in state.budget


def test_a_rate_below_one_a_minute_still_lets_one_message_through() -> None:
    state = State()
    assert routing.may_send(state, "u1", cfg(rate_per_min=0.5), T0)


# -- groups ----------------------------------------------------------------------------------


def _group_start(state: State, job: str, now: float) -> None:
    routing.job_started(state, [url()], cfg(), start_event(job, ts=now, group="sweep"), now)


def test_a_groups_jobs_send_nothing_of_their_own() -> None:
    state = State()
    _group_start(state, "g1", T0)
    end(state, [url()], cfg(), "g1", T0 + 1, group="sweep")
    assert targets_of(state, "g1:finish") == [INBOX_KEY]


def test_a_group_waits_while_one_of_its_jobs_runs() -> None:
    state = State()
    _group_start(state, "g1", T0)
    _group_start(state, "g2", T0)
    end(state, [url()], cfg(), "g1", T0 + 1, group="sweep")
    assert not routing.flush(state, [url()], cfg(), T0 + 3600)


def test_a_group_is_summarised_group_wait_after_its_last_job_ended() -> None:
    state = State()
    _group_start(state, "g1", T0)
    end(state, [url()], cfg(), "g1", T0 + 1, group="sweep", exit=4)
    assert not routing.flush(state, [url()], cfg(), T0 + 30.999)
    assert routing.flush(state, [url()], cfg(), T0 + 31.0)
    summary = state.outbox[-1]
    assert summary.id.startswith("group:sweep:") and summary.targets == [INBOX_KEY, "u1"]
    assert summary.title.startswith("📦 group sweep done: 1 job: 0 ok, 1 failed")
    assert "sweep" not in state.groups


def test_a_group_of_successes_is_not_sent_to_a_failure_tagged_url() -> None:
    state = State()
    targets = [url("bad", "failure")]
    routing.job_started(state, list(targets), cfg(), start_event("g1", ts=T0, group="sweep"), T0)
    end(state, targets, cfg(), "g1", T0 + 1, group="sweep")
    routing.flush(state, list(targets), cfg(), T0 + 60)
    assert state.outbox[-1].targets == [INBOX_KEY]


def test_a_re_read_start_of_a_job_told_long_ago_does_not_hold_its_group_open() -> None:
    state = State()
    _group_start(state, "old", T0)
    routing.already_told(state, finish_event("old", ts=T0, group="sweep"))
    assert state.groups["sweep"].jobs == {}
    routing.flush(state, [url()], cfg(), T0 + 60)
    assert "sweep" not in state.groups and state.outbox == []


# -- starts ----------------------------------------------------------------------------------


def test_starts_are_told_only_with_notify_start() -> None:
    state = State()
    routing.job_started(state, [url()], cfg(), start_event("j1", ts=T0), T0)
    assert state.outbox == []


def test_a_start_goes_to_untagged_urls_only_not_to_digest_or_failure_ones() -> None:
    state = State()
    targets = [url("all"), url("dig", "digest"), url("bad", "failure")]
    routing.job_started(state, list(targets), cfg(notify_start=True), start_event("j1", ts=T0), T0)
    assert targets_of(state, "j1:start") == ["all"]
