"""A job ending on the watcher's own host wakes it through wake/<host>.fifo.

With the poll interval set to 30 s, a message that arrives within the
test's wait can only have come from the wake-up; a job recorded under another
host name pokes a FIFO nobody listens on and waits for the poll.
"""

from __future__ import annotations

import os
import stat
import subprocess
import time
from pathlib import Path

from harness import PINGCH, Home, Receiver, WatcherProc, wait_until

from notifyd.spool import wake

SLOW_POLL = """
[watcher]
poll_interval = 30s
lease_timeout = 90s
retry_initial = 0.3s
"""


def slow_watcher(home: Home, receiver: Receiver) -> WatcherProc:
    home.write_config(f"[notify]\nurls = {receiver.url}\n" + SLOW_POLL)
    w = WatcherProc(home).start()
    # Its first round (right after start) is done once the FIFO exists.
    wait_until((home.state_dir / "wake" / f"{home.host}.fifo").exists, 15, "the FIFO")
    time.sleep(0.5)
    return w


def test_a_job_on_the_watchers_host_is_told_without_waiting_for_the_poll(
        home: Home, receiver: Receiver) -> None:
    w = slow_watcher(home, receiver)
    try:
        assert home.pingch("-t", "quick-one", "true").returncode == 0
        (body,) = receiver.wait_for(1, timeout=10)
        assert "quick-one" in body["title"]
        fifo = home.state_dir / "wake" / f"{home.host}.fifo"
        assert stat.S_ISFIFO(fifo.lstat().st_mode)
        assert stat.S_IMODE(fifo.lstat().st_mode) == 0o600
    finally:
        w.stop()


def test_many_pokes_at_once_are_one_round_and_lose_nothing(home: Home, receiver: Receiver) -> None:
    w = slow_watcher(home, receiver)
    try:
        fifo = str(home.state_dir / "wake" / f"{home.host}.fifo")
        for _ in range(70_000):  # more than a pipe holds: the extra pokes are dropped quietly
            wake.poke(str(home.state_dir), home.host)
        assert home.pingch("-t", "after-the-flood", "true").returncode == 0
        (body,) = receiver.wait_for(1, timeout=10)
        assert "after-the-flood" in body["title"]
        assert Path(fifo).exists()
    finally:
        w.stop()


def test_a_job_recorded_for_another_host_waits_for_the_poll(home: Home, receiver: Receiver) -> None:
    w = slow_watcher(home, receiver)
    try:
        other = dict(home.env, NOTIFYD_HOST=home.host + "x")
        assert subprocess.run([PINGCH, "-t", "far-away", "true"], env=other).returncode == 0
        time.sleep(3)
        assert receiver.bodies() == []  # no FIFO of host x has a listener: nothing woke the watcher
        assert "far-away" in home.spool.with_name(f"{home.host}x.jsonl").read_text()
    finally:
        w.stop()


def test_poke_with_no_watcher_returns_at_once(tmp_path: Path) -> None:
    state_dir = tmp_path / "state"
    wake.poke(str(state_dir), "nohost")  # no directory at all
    (state_dir / "wake").mkdir(parents=True)
    os.mkfifo(state_dir / "wake" / "h.fifo", 0o600)
    t0 = time.monotonic()
    wake.poke(str(state_dir), "h")  # a FIFO nobody reads: ENXIO, not a hang
    assert time.monotonic() - t0 < 5


def test_poke_never_writes_into_a_regular_file_put_in_the_fifos_place(tmp_path: Path) -> None:
    (tmp_path / "wake").mkdir()
    planted = tmp_path / "wake" / "h.fifo"
    planted.write_bytes(b"")
    wake.poke(str(tmp_path), "h")
    assert planted.read_bytes() == b""
    assert wake.listen(str(planted)) is None


def test_listen_refuses_a_symlink(tmp_path: Path) -> None:
    real = tmp_path / "real.fifo"
    os.mkfifo(real, 0o600)
    link = tmp_path / "h.fifo"
    link.symlink_to(real)
    assert wake.listen(str(link)) is None


def test_listen_then_poke_then_drain(tmp_path: Path) -> None:
    fifo = tmp_path / "h.fifo"
    fd = wake.listen(str(fifo))
    assert fd is not None
    try:
        (tmp_path / "wake").mkdir()
        os.replace(fifo, tmp_path / "wake" / "h.fifo")
        wake.poke(str(tmp_path), "h")
        wake.poke(str(tmp_path), "h")
        assert os.read(fd, 10) == b"\n\n"
        wake.poke(str(tmp_path), "h")
        wake.drain(fd)
        try:
            os.read(fd, 10)
            raise AssertionError("the FIFO should be empty after drain")
        except BlockingIOError:
            pass
    finally:
        os.close(fd)
