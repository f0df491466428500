"""Judging running jobs lost (watcher/lost.py) with odd jobs and any node the reader accepts.

The jobs are whatever a state file can hold (records.RunningJob checks
types and ranges, nothing more: a host with a NUL or a '/', a pid of 2^62);
the nodes are snapshots that pass nodes/reader.py. Neither `judge` nor
`sweep` raises, a reason is never "0 min", and what is found lost can be
told (message.lost), as the watcher's lost check does next.
"""

from __future__ import annotations

import os
import tempfile
import time
from typing import Any

from fuzz.hostile import cases, text
from hypothesis import given
from hypothesis import strategies as st

from notifyd.nodes import reader
from notifyd.notify import message
from notifyd.records import NUMBER_MAX, RunningJob
from notifyd.state import State
from notifyd.watcher import lost

NOW = time.time()
IN_RANGE = st.one_of(st.sampled_from([0, 1, 4242, NOW, NOW - 60, NOW + 60, 2**62, NUMBER_MAX]),
                     st.floats(0, NUMBER_MAX), st.integers(0, 2**62))
SIGNED = st.one_of(IN_RANGE, IN_RANGE.map(lambda v: -v))
HOST = st.one_of(st.sampled_from(["node5", "", ".", "..", "a/b", "../x", "n\x00", "\udcff", "\ud800"]),
                 text(12))

JOB = st.builds(RunningJob, host=st.none() | HOST, pid=st.none() | SIGNED.map(int),
                title=st.none() | text(), cmd=st.none() | text(), start_ts=st.none() | SIGNED.map(float),
                group=st.none() | text(8))


@st.composite
def node(draw: st.DrawFn) -> reader.Node:
    """A snapshot the reader accepts, with any numbers it lets through."""
    pids = draw(st.lists(st.tuples(st.one_of(st.just(4242), IN_RANGE.map(int)), IN_RANGE).map(list),
                         max_size=4))
    data: dict[str, Any] = {
        "schema": 1, "host": "node5", "time": draw(IN_RANGE), "cpu_count": draw(st.integers(1, 1_000_000)),
        "mem_total": draw(IN_RANGE.map(int)), "mem_available": draw(IN_RANGE.map(int)),
        "procs": [], "users": {}, "load": draw(st.lists(st.floats(0, 1e7), min_size=3, max_size=3)),
        "pids": pids,
    }
    if draw(st.booleans()):
        data["boot_time"] = draw(IN_RANGE)
    assert reader._problem(data) is None, reader._problem(data)
    return reader.Node(draw(HOST), data, draw(st.floats(0, 1e12)), draw(st.booleans()))


SILENCE = st.one_of(st.floats(-1e6, 1e12), st.sampled_from([0.0, 0.4, 59.9, 60.0, 960.0, float("inf")]))


@cases(600)
@given(JOB, st.none() | node(), SILENCE, st.none() | st.floats(0, 1e9),
       st.tuples(st.floats(0, 1e6), st.sampled_from([0.0, 0.5, 30.0, 900.0])))
def test_judging_any_running_job_against_any_node_gives_a_reason_or_none(
        job: RunningJob, found: reader.Node | None, silent: float, missing: float | None,
        bounds: tuple[float, float]) -> None:
    grace, silent_after = bounds
    reason, _missing = lost.judge(job, found, silent, missing, grace=grace, silent_after=silent_after)
    assert isinstance(reason, str)
    assert " 0 min" not in reason and "for 0" not in reason


@cases(300)
@given(st.dictionaries(text(10), JOB, max_size=5), st.lists(node(), max_size=3),
       st.floats(0, 1e10), st.dictionaries(text(10), st.floats(0, 1e10), max_size=3))
def test_a_sweep_over_odd_running_jobs_never_raises_and_what_it_finds_lost_can_be_told(
        running: dict[str, RunningJob], nodes: list[reader.Node], now: float,
        missing: dict[str, float]) -> None:
    state = State(running=dict(running), missing_since=dict(missing))
    with tempfile.TemporaryDirectory() as tmp:
        events, alive = os.path.join(tmp, "events"), os.path.join(tmp, "alive")
        os.mkdir(events)
        for job in list(running.values())[:2]:
            try:  # some hosts have a spool file, some do not
                open(os.path.join(events, f"{job.host}.jsonl"), "w").close()
            except (OSError, ValueError):
                pass
        evidence = lost.Evidence({n.host: n for n in nodes}, events, alive, now)
        _changed, found = lost.sweep(state, evidence, grace=120.0, silent_after=900.0)
    assert {job for job, _ in found} <= set(running)
    for job, item in found:
        assert job in state.lost and job not in state.running
        message.lost(item.job.as_event(job), item.reason)
