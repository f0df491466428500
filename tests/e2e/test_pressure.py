"""Memory pressure alerts end to end: real watchers, real snapshots of this machine, a local webhook.

This machine is not short of memory, so `warn_mem` is set just above the
share of memory available now (read from /proc/meminfo): its real
snapshot, written by `notifyd snapshot`, is then "under pressure". Other
nodes are crafted snapshots in the same shared procs directory.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

from harness import (
    NOTIFYD,
    PINGCH,
    Home,
    Receiver,
    WatcherProc,
    fast_config,
    job_events,
    new_home,
    wait_until,
    write_event,
)

GIB = 2**30


def _available_percent() -> float:
    with open("/proc/meminfo") as f:
        info = {line.split(":")[0]: int(line.split()[1]) for line in f if line.split()[1:]}
    return 100.0 * info["MemAvailable"] / info["MemTotal"]


def _config(receiver: Receiver, path: str, procs: Path, warn_mem: float) -> str:
    # lost_grace 1s: the lost and pressure checks run every second, not every 30 s.
    return (fast_config(receiver.url_for(path)) + "lost_grace = 1s\n"
            f"[procs]\ndir = {procs}\n[pressure]\nwarn_mem = {warn_mem:.1f} %\n")


def _crafted(procs: Path, host: str, pid: int, start: float, avail_share: float) -> None:
    """A snapshot of another node: short of memory, listing the job `pid` so that it is not lost."""
    now = time.time()
    data: dict[str, Any] = {
        "schema": 1, "host": host, "time": now, "boot_time": now - 86400, "cpu_count": 16,
        "load": [2.0, 2.0, 2.0], "mem_total": 64 * GIB, "mem_available": int(avail_share * 64 * GIB),
        "swap_used": 0, "swap_total": 0, "users": {"zoe": {"procs": 40, "cpu": 1500.0, "rss": 60 * GIB}},
        "procs": [], "pids": [[pid, start]]}
    (procs / f"{host}.json").write_text(json.dumps(data))


def _job_on(home: Home, host: str, title: str) -> int:
    """A running job of `home`'s user on `host`, as pingch there would have recorded its start."""
    start = time.time() - 60
    ev, _finish = job_events(home, title, start, start, host=host)
    write_event(home, ev)
    return int(ev["pid"])


def test_each_users_watcher_warns_only_of_the_nodes_where_that_users_jobs_run(
        tmp_path: Path, home: Home, receiver: Receiver) -> None:
    procs = tmp_path / "procs"
    procs.mkdir()
    other = new_home(tmp_path / "other")
    warn = min(99.0, _available_percent() + 5)
    home.write_config(_config(receiver, "ana", procs, warn))
    other.write_config(_config(receiver, "bob", procs, warn))
    # bob's job runs on node-b; nobody's on node-c; both are short of memory.
    start = time.time() - 60
    _crafted(procs, "node-b", _job_on(other, "node-b", "bobs-run"), start, 0.01)
    _crafted(procs, "node-c", 999_999, start, 0.01)
    watchers = [WatcherProc(home).start(), WatcherProc(other).start()]
    job = subprocess.Popen([PINGCH, "-t", "anas-run", "sleep", "300"], env=home.env, start_new_session=True)
    try:
        wait_until(lambda: any(e["ev"] == "start" for e in home.events()), 20, "ana's job to start")
        snap = subprocess.run([NOTIFYD, "snapshot", "--interval", "0.2"], env=home.env,
                              capture_output=True, text=True, timeout=60)
        assert snap.returncode == 0, snap.stderr
        wait_until(lambda: receiver.bodies("ana") and receiver.bodies("bob"), 30, "both users' alerts")
        time.sleep(3)  # three more checks: the episode is told once
        ana, bob = receiver.bodies("ana"), receiver.bodies("bob")
        assert [m["title"] for m in ana] == [f"⚠️ memory pressure on {home.host}"]
        assert [m["title"] for m in bob] == ["⚠️ memory pressure on node-b"]
        assert ana[0]["type"] == "warning"
        assert "your jobs there: anas-run" in str(ana[0]["message"])
        assert "top memory users: zoe 60.0 GiB in 40 processes" in str(bob[0]["message"])
        assert "bobs-run" in str(bob[0]["message"])
        for text in map(str, [*ana, *bob]):
            assert "node-c" not in text
    finally:
        os.killpg(job.pid, signal.SIGKILL)
        job.wait()
        for w in watchers:
            w.stop()
        other.kill_watchers()


def test_a_url_tagged_nopressure_gets_the_jobs_but_not_the_alert(
        tmp_path: Path, home: Home, receiver: Receiver) -> None:
    procs = tmp_path / "procs"
    procs.mkdir()
    config = _config(receiver, "all", procs, 50.0).replace(
        f"    {receiver.url_for('all')}\n",
        f"    {receiver.url_for('all')}\n    nopressure={receiver.url_for('quiet')}\n")
    home.write_config(config)
    _crafted(procs, "node-b", _job_on(home, "node-b", "run"), time.time() - 60, 0.01)
    w = WatcherProc(home).start()
    try:
        wait_until(lambda: receiver.bodies("all"), 30, "the alert")
        assert home.pingch("-t", "quick", "true").returncode == 0
        wait_until(lambda: receiver.bodies("quiet"), 30, "the job's message")
        assert [m["title"] for m in receiver.bodies("quiet")] == [f"✅ quick finished on {home.host}"]
    finally:
        w.stop()


def test_a_job_killed_by_sigkill_on_a_node_short_of_memory_says_so(
        tmp_path: Path, home: Home, receiver: Receiver) -> None:
    procs = tmp_path / "procs"
    procs.mkdir()
    home.write_config(_config(receiver, "ana", procs, min(99.0, _available_percent() + 5)))
    w = WatcherProc(home).start()
    try:
        snap = subprocess.run([NOTIFYD, "snapshot", "--interval", "0.2"], env=home.env,
                              capture_output=True, text=True, timeout=60)
        assert snap.returncode == 0, snap.stderr
        assert home.pingch("-t", "killed", "sh", "-c", "kill -9 $$").returncode == 128 + signal.SIGKILL
        wait_until(lambda: any("killed" in str(m["title"]) for m in receiver.bodies("ana")), 30,
                   "the job's message")
        (msg,) = [m for m in receiver.bodies("ana") if "killed" in str(m["title"])]
        assert f"{home.host} was short of memory when it ended: memory:" in str(msg["message"])
        assert "top memory users:" in str(msg["message"])
    finally:
        w.stop()
