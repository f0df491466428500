"""A long history re-read from the top tells nothing twice (found while building bench/'s 1M events).

The state remembers only the newest DONE_KEEP finished jobs. When a spool is
read again from its start (the state file lost, or a file replaced), finishes
older than that are looked up in the inbox, which holds every notification
ever made; only jobs the inbox does not know are news. DONE_KEEP is made
small here so that a few hundred jobs are "a long history".
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from notifyd import config, paths, state
from notifyd.spool import events
from notifyd.watcher import loop as watcher


def finish(host: str, n: int, ts: float) -> dict[str, object]:
    return {"v": 1, "ev": "finish", "job": f"{host}-{n}-1", "user": "u", "host": host, "pid": n,
            "title": f"job {n}", "cmd": "true", "cwd": "/", "start": events.iso_time(ts - 1),
            "start_ts": ts - 1, "ts": ts, "end": events.iso_time(ts), "duration": 1.0, "exit": 0,
            "signal": None}


class History:
    def __init__(self, root: Path) -> None:
        env = {"HOME": str(root), "NOTIFYD_HOST": "w"}
        self.paths = paths.resolve(env)
        self.root = root
        for d in (self.paths.events_dir, self.paths.inbox_dir, self.paths.journal_dir,
                  self.paths.lease_dir):
            d.mkdir(parents=True, exist_ok=True)

    def spool(self, host: str, jobs: list[dict[str, object]]) -> None:
        with (self.paths.events_dir / f"{host}.jsonl").open("ab") as f:
            for ev in jobs:
                f.write(events.encode(ev))

    def inbox(self, jobs: list[dict[str, object]]) -> None:
        with (self.paths.inbox_dir / "w.jsonl").open("a") as f:
            for ev in jobs:
                f.write(json.dumps({"id": f"{ev['job']}:finish", "job": ev["job"],
                                    "time": float(ev["ts"]) + 0.5, "kind": "success",
                                    "title": "t", "body": "b"}) + "\n")

    def watcher(self) -> watcher.Watcher:
        w = watcher.Watcher(self.paths, "w", config.load(self.paths.config_file, {}))
        w.start()
        return w


@pytest.fixture
def small_memory(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(state, "DONE_KEEP", 50)


def test_dropping_old_ids_moves_the_horizon_to_the_newest_dropped(small_memory: None) -> None:
    s = state.State()
    for n in range(200):
        s.remember_done(f"j{n}", 1000.0 + n)
    assert len(s.done) <= 55
    assert "j199" in s.done and "j0" not in s.done
    assert s.done_horizon == 1000.0 + min(int(j[1:]) for j in s.done) - 1
    again = state.State.from_json(json.loads(json.dumps(s.to_json())))
    assert again.done_horizon == s.done_horizon


def test_a_lost_state_after_a_long_history_repeats_nothing(tmp_path: Path, small_memory: None) -> None:
    h = History(tmp_path)
    old = time.time() - 30 * 86400
    jobs = [finish("a", n, old + n) for n in range(300)]
    h.spool("a", jobs)
    h.inbox(jobs)
    w = h.watcher()  # no state file: rebuilt from the inbox
    assert len(w.state.done) <= 55
    w.ingest()
    assert w.state.outbox == []


def test_an_old_finish_the_inbox_lacks_is_still_told(tmp_path: Path, small_memory: None) -> None:
    h = History(tmp_path)
    old = time.time() - 30 * 86400
    jobs = [finish("a", n, old + n) for n in range(300)]
    h.spool("a", jobs)
    h.inbox([j for j in jobs if j["pid"] != 7])  # job 7 was pending when the state was lost
    new = finish("b", 1, time.time())
    h.spool("b", [new])
    w = h.watcher()
    w.ingest()
    assert sorted(e.job for e in w.state.outbox) == ["a-7-1", "b-1-1"]


def test_a_replaced_spool_file_after_a_long_history_repeats_nothing(tmp_path: Path,
                                                                     small_memory: None) -> None:
    h = History(tmp_path)
    old = time.time() - 30 * 86400
    jobs = [finish("a", n, old + n) for n in range(300)]
    h.spool("a", jobs)
    w = h.watcher()
    w.ingest()
    assert len(w.state.outbox) == 300
    h.inbox(jobs)  # as if all 300 were delivered to the inbox
    w.state.outbox.clear()
    # The file is replaced by a copy with one more line in front (restored
    # from a backup, say): its head changes and it is read from the top.
    spool = h.paths.events_dir / "a.jsonl"
    spool.write_bytes(events.encode(finish("a", 999, time.time())) + spool.read_bytes())
    w.ingest()
    assert [e.job for e in w.state.outbox] == ["a-999-1"]
