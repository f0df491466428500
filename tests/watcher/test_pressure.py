"""Memory pressure alerts (watcher/pressure.py) in memory: which nodes, how often, in what words.

Snapshots are made here minute by minute with the node's clock and the
file server's fixed by the test; the rules themselves are tested in
tests/nodes/test_pressure_rules.py, the real watcher in tests/e2e/test_pressure.py.
"""

from __future__ import annotations

import dataclasses
import json
import os
import signal
from pathlib import Path
from typing import Any

import pytest
from fakes import RecordingTarget, finish_event

from notifyd import config
from notifyd.nodes.reader import Node
from notifyd.records import NodePressure, RunningJob
from notifyd.state import State
from notifyd.watcher import pressure

T0 = 1_800_000_000.0
GIB = 2**30
TOTAL = 64 * GIB


def cfg(**keys: Any) -> config.Config:
    return dataclasses.replace(config.load(Path("/nonexistent/notifyd.conf"), {}), **keys)


CONF = cfg()


class Snapshots:
    """A node whose snapshot is rewritten each minute, keeping its history like `notifyd snapshot`."""

    def __init__(self, host: str, users: dict[str, Any] | None = None,
                 procs: list[dict[str, Any]] | None = None) -> None:
        self.host, self.rows, self.t = host, [], T0
        self.users = users if users is not None else {
            "bob": {"procs": 12, "cpu": 800.0, "rss": 40 * GIB},
            "ana": {"procs": 2, "cpu": 200.0, "rss": 9 * GIB},
            "carol": {"procs": 1, "cpu": 0.0, "rss": GIB}, "dan": {"procs": 1, "cpu": 0.0, "rss": 2**20}}
        self.procs = procs if procs is not None else [
            {"pid": 4242, "user": "ana", "cpu": 100.0, "mem": 10.0, "rss": 7 * GIB, "elapsed": 60.0,
             "state": "R", "cmd": "python relax.py"}]

    def minute(self, avail_share: float, load: float = 1.0, swap: float = 0.0) -> Node:
        self.t += 60
        self.rows = [*self.rows, [self.t, avail_share * TOTAL, TOTAL, swap, 8 * GIB, load, 16]][-30:]
        data = {"schema": 1, "host": self.host, "time": self.t, "cpu_count": 16, "load": [load, 1, 1],
                "mem_total": TOTAL, "mem_available": int(avail_share * TOTAL), "swap_used": swap,
                "swap_total": 8 * GIB, "users": self.users, "procs": self.procs, "pids": [],
                "history": self.rows}
        return Node(self.host, data, 10.0, False)


def _state(*hosts: str) -> State:
    return State(running={f"job-{h}": RunningJob(host=h, pid=4242, title=f"relax on {h}", start_ts=T0)
                          for h in hosts})


def _round(watch: pressure.Watch, st: State, nodes: list[Node], now: float,
           conf: config.Config = CONF) -> list[Any]:
    return watch.find(st, {n.host: n for n in nodes}, conf, now)


def test_a_node_short_of_memory_with_the_users_job_is_told_and_one_without_is_not(tmp_path: Path) -> None:
    mine, theirs = Snapshots("node3"), Snapshots("node4")
    nodes = [mine.minute(0.05), theirs.minute(0.02)]
    found = _round(pressure.Watch(str(tmp_path)), _state("node3"), nodes, T0)
    assert [(f.host, f.kinds) for f in found] == [("node3", ("low",))]


def test_one_alert_per_episode_and_the_episode_ends_only_over_twice_the_threshold(tmp_path: Path) -> None:
    watch, st, node = pressure.Watch(str(tmp_path)), _state("node3"), Snapshots("node3")
    told = []
    # 10 % is the threshold, 20 % ends the episode; alert_every (30 min) is long past each time.
    for minute, share in enumerate([0.05] * 5 + [0.15] + [0.05] * 3 + [0.25] + [0.05] * 2):
        now = T0 + minute * 3600
        told.append(bool(_round(watch, st, [node.minute(share)], now)))
    assert told == [True, False, False, False, False, False, False, False, False, False, True, False]


def test_a_new_episode_within_alert_every_waits_until_alert_every_is_over(tmp_path: Path) -> None:
    watch, st, node = pressure.Watch(str(tmp_path)), _state("node3"), Snapshots("node3")
    told = []
    shares = [0.05, 0.25, 0.05, 0.05, 0.05, 0.05]  # a minute each; 30-minute steps below
    for step, share in enumerate(shares):
        told.append(bool(_round(watch, st, [node.minute(share)], T0 + step * 600)))
    # Told at 0; the episode ends at 10 min; the next opens at 20 min but waits for 30 min.
    assert told == [True, False, False, True, False, False]


def test_a_steady_fall_is_told_before_memory_is_low_and_noise_is_not(tmp_path: Path) -> None:
    falling, noisy = Snapshots("node3"), Snapshots("node4")
    watch, st = pressure.Watch(str(tmp_path)), _state("node3", "node4")
    levels = [0.30, 0.55, 0.25, 0.6, 0.3, 0.5]
    found: list[Any] = []
    for i in range(6):
        found += _round(watch, st, [falling.minute(0.80 - 0.05 * i), noisy.minute(levels[i])], T0 + 60 * i)
    # Told at the fifth snapshot (the fewest points a trend takes): 60 % free, 12 min left.
    assert [(f.host, f.kinds) for f in found] == [("node3", ("ahead",))]
    assert "out of memory in ~" in message_of(found)


def message_of(found: list[Any], conf: config.Config = CONF) -> str:
    msg = pressure.words.alert(found, pressure.rules.Settings.of(conf))
    return f"{msg.title}\n{msg.body}"


def test_the_alert_names_the_node_its_memory_the_top_users_and_the_users_biggest_job(tmp_path: Path) -> None:
    node = Snapshots("node3")
    found = _round(pressure.Watch(str(tmp_path)), _state("node3"), [node.minute(0.08), node.minute(0.06)],
                   T0)
    text = message_of(found)
    assert text.splitlines()[0] == "⚠️ memory pressure on node3"
    assert "memory: 3.8 GiB free of 64.0 GiB (6 %)" in text
    assert "under 10 % of its memory available" in text
    assert "top memory users: bob 40.0 GiB in 12 processes · ana 9.0 GiB in 2 · carol 1.0 GiB in 1" in text
    assert "your jobs there: relax on node3 (pid 4242) 7.0 GiB" in text
    assert ("biggest of yours: relax on node3 (pid 4242, 7.0 GiB) · nodes with room: "
            "`notifyd nodes --free`") in text


def test_several_nodes_in_one_round_make_one_message(tmp_path: Path) -> None:
    nodes = [Snapshots(f"node{i}").minute(0.03) for i in range(5)]
    found = _round(pressure.Watch(str(tmp_path)), _state(*(n.host for n in nodes)), nodes, T0)
    msg = pressure.words.alert(found, pressure.rules.Settings.of(CONF))
    assert msg.title == "⚠️ pressure on 5 nodes where your jobs run: node0, node1, node2 and 2 more"
    assert all(f"**node{i}**" in msg.body for i in range(5))


def test_check_routes_one_entry_tagged_pressure_and_saves_the_episode(tmp_path: Path) -> None:
    st = _state("node3", "node4")
    targets = [RecordingTarget(key=k, tags=frozenset(t)) for k, t in [
        ("plain", ()), ("only", ("pressure",)), ("off", ("nopressure",)), ("fail", ("failure",)),
        ("both", ("failure", "pressure")), ("digest", ("digest",))]]
    nodes = {n.host: n.minute(0.04) for n in (Snapshots("node3"), Snapshots("node4"))}
    assert pressure.Watch(str(tmp_path)).check(st, nodes, list(targets), CONF, server_now=T0, now=T0)
    (entry,) = st.outbox
    assert entry.targets == ["inbox", "plain", "only", "both"]
    assert entry.severity == "warning" and "node3" in entry.body and "node4" in entry.body
    assert set(st.pressure) == {"node3", "node4"} and st.pressure["node3"].open


def test_a_pressure_url_takes_nothing_but_pressure_alerts() -> None:
    only = RecordingTarget(tags=frozenset({"pressure"}))
    assert only.wants("pressure", failed=False)
    assert not any(only.wants(kind, failed=True) for kind in ("job", "digest", "group", "start"))
    both = RecordingTarget(tags=frozenset({"pressure", "failure"}))
    assert both.wants("job", failed=True) and not both.wants("job", failed=False)


def test_the_node_records_survive_a_save_and_a_bad_one_is_skipped() -> None:
    st = State(pressure={"node3": NodePressure(True, T0, False, 0.0), "node4": NodePressure(cpu_open=True)})
    data = json.loads(json.dumps(st.to_json(T0)))
    assert State.from_json(data).pressure == st.pressure
    data["pressure"]["node5"] = {"open": "yes"}
    data["pressure"]["node6"] = {"told_at": "later"}
    loaded = State.from_json(data)
    assert loaded.pressure == st.pressure and len(loaded.problems) == 2


def test_a_node_the_user_left_is_forgotten_once_alert_every_is_over(tmp_path: Path) -> None:
    watch, node = pressure.Watch(str(tmp_path)), Snapshots("node3")
    st = _state("node3")
    _round(watch, st, [node.minute(0.05)], T0)
    st.running.clear()
    _round(watch, st, [node.minute(0.05)], T0 + 600)
    assert "node3" in st.pressure  # still within alert_every: a job back on it now is not told again
    _round(watch, st, [node.minute(0.05)], T0 + 1800)
    assert st.pressure == {}


def test_cpu_oversubscription_is_told_only_when_turned_on(tmp_path: Path) -> None:
    on = cfg(pressure_cpu=True)
    for conf, expected in ((CONF, []), (on, [("node3", ("cpu",))])):
        watch, st, node = pressure.Watch(str(tmp_path)), _state("node3"), Snapshots("node3")
        found: list[Any] = []
        for i in range(11):
            found = _round(watch, st, [node.minute(0.5, load=40.0)], T0 + 60 * i, conf) or found
        assert [(f.host, f.kinds) for f in found] == expected
    assert "load 40.0 on 16 cores for 10 min" in message_of(found, on)
    assert message_of(found, on).startswith("⚠️ node3 is oversubscribed")


def _mark(alive: Path, host: str, text: str, mtime: float) -> None:
    alive.mkdir(exist_ok=True)
    (alive / host).write_text(text)
    os.utime(alive / host, (mtime, mtime))


def test_a_node_without_snapshots_is_judged_by_pingchs_liveness_mark(tmp_path: Path) -> None:
    alive = tmp_path / "alive"
    _mark(alive, "node7", "mem_total_kb=67108864 mem_avail_kb=2097152 swap_total_kb=0 swap_free_kb=0 "
                          "load1=3.5 cores=16\n", T0 - 20)
    found = _round(pressure.Watch(str(alive)), _state("node7"), [], T0)
    assert [(f.host, f.kinds, f.source) for f in found] == [("node7", ("low",), "liveness mark")]
    assert "memory: 2.0 GiB free of 64.0 GiB (3 %)" in message_of(found)
    assert "node7 has no fresh snapshot" in message_of(found)


@pytest.mark.parametrize("text", ["1\n", "", "mem_total_kb=x mem_avail_kb=-5\n", "mem_avail_kb=1\n"])
def test_an_old_or_odd_liveness_mark_tells_nothing(tmp_path: Path, text: str) -> None:
    alive = tmp_path / "alive"
    _mark(alive, "node7", text, T0 - 20)
    assert _round(pressure.Watch(str(alive)), _state("node7"), [], T0) == []


def test_a_stale_liveness_mark_tells_nothing(tmp_path: Path) -> None:
    alive = tmp_path / "alive"
    _mark(alive, "node7", "mem_total_kb=67108864 mem_avail_kb=1024\n", T0 - 3600)
    assert _round(pressure.Watch(str(alive)), _state("node7"), [], T0) == []


# -- after the fact -------------------------------------------------------------------------


def _procs_dir(tmp_path: Path, node: Node) -> Path:
    (tmp_path / "procs").mkdir(exist_ok=True)
    (tmp_path / "procs" / f"{node.host}.json").write_text(json.dumps(node.data))
    return tmp_path / "procs"


def _killed(host: str, ts: float, **extra: Any) -> dict[str, Any]:
    return finish_event("j1", ts=ts, exit=None, signal=int(signal.SIGKILL), **{"host": host, **extra})


def test_a_sigkilled_job_on_a_node_short_of_memory_says_so_with_the_top_users(tmp_path: Path) -> None:
    node = Snapshots("node3")
    snap = node.minute(0.04)
    lines = pressure.after_kill(_killed("node3", node.t + 20), _procs_dir(tmp_path, snap), CONF)
    assert lines[0].startswith(
        "🧠 node3 was short of memory when it ended: memory: 2.6 GiB free of 64.0 GiB (4 %)")
    assert lines[1].startswith("top memory users: bob 40.0 GiB in 12 processes")


def test_a_sigkilled_job_on_a_roomy_node_gets_no_memory_note_unless_the_oom_killer_named_it(
        tmp_path: Path) -> None:
    node = Snapshots("node3")
    procs = _procs_dir(tmp_path, node.minute(0.6))
    assert pressure.after_kill(_killed("node3", node.t + 20), procs, CONF) == []
    note = pressure.after_kill(_killed("node3", node.t + 20, oom=True), procs, CONF)
    assert "short of memory" in note[0]


def test_the_note_judges_the_node_as_it_was_at_the_end_not_after(tmp_path: Path) -> None:
    node = Snapshots("node3")
    node.minute(0.6)
    end = node.t + 10
    later = node.minute(0.04)  # memory ran short only after the job had ended
    assert pressure.after_kill(_killed("node3", end), _procs_dir(tmp_path, later), CONF) == []


def test_a_job_ended_another_way_or_on_a_node_without_snapshot_gets_no_note(tmp_path: Path) -> None:
    node = Snapshots("node3")
    procs = _procs_dir(tmp_path, node.minute(0.04))
    assert pressure.after_kill(_killed("node9", node.t), procs, CONF) == []
    assert pressure.after_kill(_killed("../node3", node.t), procs, CONF) == []


# -- in the watcher's loop ------------------------------------------------------------------


def _watcher(root: Path) -> tuple[Any, Any, RecordingTarget]:
    from fakes import FakeSource, FixedClock, HeldLease, inbox_target

    from notifyd import paths
    from notifyd.watcher.loop import Watcher

    p = paths.resolve({"HOME": str(root), "NOTIFYD_HOST": "w"})
    p.config_file.parent.mkdir(parents=True)
    p.config_file.write_text("[notify]\ndigest_after = 100\n")
    p.journal_dir.mkdir(parents=True)
    url = RecordingTarget()
    source = FakeSource()
    w = Watcher(p, "w", config.load(p.config_file, {}), clock=FixedClock(),  # type: ignore[arg-type]
                fence=HeldLease(), sources=[source],  # type: ignore[arg-type]
                targets_=[inbox_target(), url], wake_up=False)
    w.start()
    return w, source, url


def _deliver(w: Any) -> None:
    w.round()
    assert w.delivery.settle(w.state, w.targets, w.config, w.clock.now, timeout=10)


def test_the_watchers_round_sends_the_alert_for_a_snapshot_in_its_procs_dir(tmp_path: Path) -> None:
    from fakes import start_event

    w, source, url = _watcher(tmp_path)
    procs = w.paths.procs_dir(w.config.procs_dir)
    procs.mkdir(parents=True)
    (procs / "node2.json").write_text(json.dumps(Snapshots("node2").minute(0.03).data))
    source.add(start_event("j1", ts=w.clock.now - 1))  # its host is node2
    _deliver(w)
    assert url.titles == ["⚠️ memory pressure on node2"]
    assert w.state.pressure["node2"].open


def test_a_failing_pressure_check_is_logged_and_the_round_still_delivers(tmp_path: Path,
                                                                        caplog: Any) -> None:
    from fakes import finish_event as finish
    from fakes import start_event

    w, source, url = _watcher(tmp_path)

    def broken(*_args: Any, **_kw: Any) -> bool:
        raise RuntimeError("a bug")

    w.pressure.check = broken
    procs = w.paths.procs_dir(w.config.procs_dir)
    procs.mkdir(parents=True)
    snap = {**Snapshots("node2").minute(0.5).data, "pids": [[4242, w.clock.now - 5]]}  # j2 is not lost
    (procs / "node2.json").write_text(json.dumps(snap))
    source.add(start_event("j1", ts=w.clock.now - 5), start_event("j2", ts=w.clock.now - 5),
               finish("j1", ts=w.clock.now))
    _deliver(w)
    assert url.titles == ["✅ run j1 finished on node2"]
    assert "error in the memory pressure check" in caplog.text


def test_the_pressure_keys_are_read_from_the_config_and_a_bad_one_is_named(tmp_path: Path) -> None:
    from notifyd.errors import NotifydError

    path = tmp_path / "notifyd.conf"
    path.write_text("[pressure]\nwarn_mem = 7.5%\nwarn_ahead = 20m\nalert_every = 1h\ncpu = yes\n"
                    "enabled = no\n")
    conf = config.load(path, {})
    assert (conf.warn_mem, conf.warn_ahead, conf.alert_every, conf.pressure_cpu, conf.pressure_alerts) == (
        7.5, 1200.0, 3600.0, True, False)
    assert pressure.rules.Settings.of(conf).warn_mem == 0.075
    path.write_text("[pressure]\nwarn_mem = lots\n")
    with pytest.raises(NotifydError, match=r"warn_mem = 'lots' is not valid: expected a percentage"):
        config.load(path, {})
