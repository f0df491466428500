"""The generation-file lease: one watcher per user across the hosts sharing a home."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from notifyd.watcher import lease
from notifyd.watcher.lease import Lease, LeaseInfo, LeaseLost

HOST = "node5"
OTHER = "node7"
SOMEONE_ELSE = "someone-else"  # another holder's token


@pytest.fixture
def lease_dir(tmp_path: Path) -> str:
    path = tmp_path / "lease"
    path.mkdir()
    return str(path)


def _fields(path: str) -> dict[str, str]:
    with open(path) as f:
        return dict(line.split("=", 1) for line in f.read().splitlines())


def _dead_pid() -> int:
    proc = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)
    pid = int(proc.stdout)
    assert lease.process_start(pid) == ""  # reaped: no /proc entry left
    return pid


def _write_lease(lease_dir: str, gen: int, **fields: object) -> str:
    values: dict[str, object] = {"host": OTHER, "pid": 1, "pid_start": "", "token": "t" * 16,
                                 "since": "0", "heartbeat": "0", "timeout": 60, "released": 0}
    values.update(fields)
    path = lease.lease_path(lease_dir, gen)
    with open(path, "w") as f:
        f.write("".join(f"{k}={v}\n" for k, v in values.items()))
    return path


def _age(path: str, seconds: float) -> None:
    then = time.time() - seconds
    os.utime(path, (then, then))


# -- acquire ----------------------------------------------------------------------------

def test_first_acquire_succeeds_and_writes_generation_one(lease_dir: str) -> None:
    held = Lease(lease_dir, HOST, 60)
    assert held.acquire() is None
    assert held.gen == 1
    fields = _fields(lease.lease_path(lease_dir, 1))
    assert fields["host"] == HOST
    assert fields["pid"] == str(os.getpid())
    assert fields["token"] == held.token
    assert fields["released"] == "0"


def test_first_acquire_leaves_no_temp_or_probe_files(lease_dir: str) -> None:
    Lease(lease_dir, HOST, 60).acquire()
    assert os.listdir(lease_dir) == ["lease.1"]


def test_second_candidate_gets_the_holder_while_the_lease_is_fresh(lease_dir: str) -> None:
    first = Lease(lease_dir, HOST, 60)
    first.acquire()
    holder = Lease(lease_dir, OTHER, 60).acquire()
    assert isinstance(holder, LeaseInfo)
    assert (holder.gen, holder.host, holder.pid, holder.token) == (1, HOST, os.getpid(), first.token)
    assert not os.path.exists(lease.lease_path(lease_dir, 2))


def test_after_release_a_second_candidate_takes_generation_two(lease_dir: str) -> None:
    first = Lease(lease_dir, HOST, 60)
    first.acquire()
    first.release()
    second = Lease(lease_dir, OTHER, 60)
    assert second.acquire() is None
    assert second.gen == 2
    assert second.took_over_from is None  # a released lease is not a take-over


def test_release_marks_the_lease_file_released(lease_dir: str) -> None:
    held = Lease(lease_dir, HOST, 60)
    held.acquire()
    held.release()
    assert _fields(lease.lease_path(lease_dir, 1))["released"] == "1"


def test_lease_of_dead_process_on_our_host_is_taken_at_once(lease_dir: str) -> None:
    _write_lease(lease_dir, 1, host=HOST, pid=_dead_pid())
    candidate = Lease(lease_dir, HOST, 60)
    assert candidate.acquire() is None
    assert candidate.gen == 2
    assert candidate.took_over_from is not None
    assert candidate.took_over_from.host == HOST


def test_lease_whose_pid_now_names_another_process_is_taken(lease_dir: str) -> None:
    # Our own pid is alive, but with another start time it is a reused pid.
    _write_lease(lease_dir, 1, host=HOST, pid=os.getpid(), pid_start="1")
    assert Lease(lease_dir, HOST, 60).acquire() is None


def test_fresh_lease_of_another_host_is_not_taken_even_with_a_dead_pid(lease_dir: str) -> None:
    # The pid means nothing here: it belongs to another host's process table.
    _write_lease(lease_dir, 1, host=OTHER, pid=_dead_pid())
    holder = Lease(lease_dir, HOST, 60).acquire()
    assert holder is not None
    assert holder.host == OTHER


def test_lease_of_another_host_older_than_its_timeout_is_taken(lease_dir: str) -> None:
    _age(_write_lease(lease_dir, 1, host=OTHER, timeout=30), 31)
    candidate = Lease(lease_dir, HOST, 60)
    assert candidate.acquire() is None
    assert candidate.gen == 2


def test_lease_of_another_host_younger_than_its_timeout_is_kept(lease_dir: str) -> None:
    _age(_write_lease(lease_dir, 1, host=OTHER, timeout=30), 20)
    assert Lease(lease_dir, HOST, 60).acquire() is not None


def test_taking_over_keeps_only_the_previous_generation(lease_dir: str) -> None:
    for gen in (1, 2, 3):
        _write_lease(lease_dir, gen, released=1)
    candidate = Lease(lease_dir, HOST, 60)
    candidate.acquire()
    assert sorted(os.listdir(lease_dir)) == ["lease.3", "lease.4"]


# -- check and heartbeat --------------------------------------------------------------------

def test_check_passes_while_we_hold_the_lease(lease_dir: str) -> None:
    held = Lease(lease_dir, HOST, 60)
    held.acquire()
    held.check()  # must not raise
    info = lease.current(lease_dir)
    assert info is not None
    assert info.token == held.token


def test_check_raises_lease_lost_once_a_newer_generation_exists(lease_dir: str) -> None:
    held = Lease(lease_dir, HOST, 60)
    held.acquire()
    _write_lease(lease_dir, 2)
    with pytest.raises(LeaseLost, match="generation 2"):
        held.check()


def test_check_raises_lease_lost_when_our_file_was_deleted(lease_dir: str) -> None:
    held = Lease(lease_dir, HOST, 60)
    held.acquire()
    os.unlink(lease.lease_path(lease_dir, 1))
    with pytest.raises(LeaseLost):
        held.check()


def test_check_raises_lease_lost_when_our_file_was_deleted_above_an_older_one(lease_dir: str) -> None:
    _write_lease(lease_dir, 1, released=1)
    held = Lease(lease_dir, HOST, 60)
    held.acquire()
    os.unlink(lease.lease_path(lease_dir, 2))
    with pytest.raises(LeaseLost):
        held.check()


def test_check_raises_lease_lost_when_our_file_holds_another_token(lease_dir: str) -> None:
    held = Lease(lease_dir, HOST, 60)
    held.acquire()
    _write_lease(lease_dir, 1, token=SOMEONE_ELSE)
    with pytest.raises(LeaseLost, match="replaced"):
        held.check()


def test_heartbeat_rewrites_our_lease_file(lease_dir: str) -> None:
    held = Lease(lease_dir, HOST, 60)
    held.acquire()
    path = lease.lease_path(lease_dir, 1)
    _age(path, 10)
    before_mtime = os.stat(path).st_mtime
    before_beat = _fields(path)["heartbeat"]
    time.sleep(0.002)  # the heartbeat field has millisecond resolution
    held.heartbeat(force=True)
    assert os.stat(path).st_mtime > before_mtime
    assert float(_fields(path)["heartbeat"]) > float(before_beat)
    assert _fields(path)["token"] == held.token


def test_heartbeat_is_skipped_when_not_yet_due(lease_dir: str) -> None:
    held = Lease(lease_dir, HOST, 60)
    held.acquire()
    path = lease.lease_path(lease_dir, 1)
    _age(path, 10)
    before = os.stat(path).st_mtime
    held.heartbeat()  # just acquired: next beat is due in 10 s
    assert os.stat(path).st_mtime == before


def test_heartbeat_raises_lease_lost_when_superseded(lease_dir: str) -> None:
    held = Lease(lease_dir, HOST, 60)
    held.acquire()
    newer = _write_lease(lease_dir, 2, token=SOMEONE_ELSE)
    with pytest.raises(LeaseLost):
        held.heartbeat(force=True)
    assert _fields(newer)["token"] == SOMEONE_ELSE  # the newer holder's file is untouched


def test_release_after_losing_the_lease_leaves_the_new_holder_alone(lease_dir: str) -> None:
    held = Lease(lease_dir, HOST, 60)
    held.acquire()
    _write_lease(lease_dir, 2)
    held.release()
    assert _fields(lease.lease_path(lease_dir, 2))["released"] == "0"
    assert _fields(lease.lease_path(lease_dir, 1))["released"] == "0"


def test_stop_request_is_seen_by_the_holder_of_that_generation(lease_dir: str) -> None:
    held = Lease(lease_dir, HOST, 60)
    held.acquire()
    assert not held.stop_requested()
    lease.request_stop(lease_dir, 1)
    assert held.stop_requested()


# -- quick_live -------------------------------------------------------------------------------

def test_quick_live_is_false_without_a_lease(lease_dir: str) -> None:
    assert lease.quick_live(lease_dir, HOST) is False


def test_quick_live_is_false_for_a_missing_lease_dir(tmp_path: Path) -> None:
    assert lease.quick_live(str(tmp_path / "nowhere"), HOST) is False


def test_quick_live_is_false_after_release(lease_dir: str) -> None:
    held = Lease(lease_dir, HOST, 60)
    held.acquire()
    held.release()
    assert lease.quick_live(lease_dir, HOST) is False


def test_quick_live_is_false_for_dead_pid_on_our_host(lease_dir: str) -> None:
    _write_lease(lease_dir, 1, host=HOST, pid=_dead_pid())
    assert lease.quick_live(lease_dir, HOST) is False


def test_quick_live_is_true_for_a_live_holder_on_our_host(lease_dir: str) -> None:
    Lease(lease_dir, HOST, 60).acquire()
    assert lease.quick_live(lease_dir, HOST) is True


def test_quick_live_is_true_for_a_recent_holder_on_another_host(lease_dir: str) -> None:
    Lease(lease_dir, OTHER, 60).acquire()
    assert lease.quick_live(lease_dir, HOST) is True


def test_quick_live_is_false_for_a_long_silent_holder_on_another_host(lease_dir: str) -> None:
    _age(_write_lease(lease_dir, 1, host=OTHER, timeout=10), 31)
    assert lease.quick_live(lease_dir, HOST) is False


# -- spawn debounce ---------------------------------------------------------------------------

def test_should_spawn_is_true_once_then_false_within_the_debounce_window(lease_dir: str) -> None:
    assert lease.should_spawn(lease_dir, HOST) is True
    assert lease.should_spawn(lease_dir, HOST) is False


def test_should_spawn_is_true_again_after_clear_spawn_mark(lease_dir: str) -> None:
    lease.should_spawn(lease_dir, HOST)
    lease.clear_spawn_mark(lease_dir, HOST)
    assert lease.should_spawn(lease_dir, HOST) is True


def test_should_spawn_is_true_again_after_the_debounce_window(lease_dir: str) -> None:
    lease.should_spawn(lease_dir, HOST)
    _age(os.path.join(lease_dir, f"{lease.SPAWN_PREFIX}{HOST}"), lease.SPAWN_DEBOUNCE + 1)
    assert lease.should_spawn(lease_dir, HOST) is True
    assert lease.should_spawn(lease_dir, HOST) is False


def test_should_spawn_is_debounced_per_host(lease_dir: str) -> None:
    lease.should_spawn(lease_dir, HOST)
    assert lease.should_spawn(lease_dir, OTHER) is True


# -- clocks and staleness ---------------------------------------------------------------------

def test_server_now_is_close_to_local_time_on_a_local_fs(lease_dir: str) -> None:
    assert abs(lease.server_now(lease_dir, HOST) - time.time()) < 2.0


def test_server_now_leaves_no_probe_file(lease_dir: str) -> None:
    lease.server_now(lease_dir, HOST)
    assert os.listdir(lease_dir) == []


def _info(timeout: float, mtime: float = 1000.0, host: str = OTHER, **extra: str) -> LeaseInfo:
    return LeaseInfo(1, {"host": host, "pid": "1", "timeout": str(timeout), **extra}, mtime)


def test_is_stale_uses_the_leases_own_timeout() -> None:
    assert lease.is_stale(_info(timeout=5), HOST, 1000.0 + 6) is True
    assert lease.is_stale(_info(timeout=60), HOST, 1000.0 + 6) is False


def test_lease_exactly_at_its_timeout_is_not_stale() -> None:
    assert lease.is_stale(_info(timeout=5), HOST, 1000.0 + 5) is False


def test_released_lease_is_stale_at_once() -> None:
    assert lease.is_stale(_info(timeout=60, released="1"), HOST, 1000.0) is True


def test_lease_not_written_by_notifyd_is_judged_by_age_with_default_timeout() -> None:
    info = LeaseInfo(1, {"host": OTHER, "pid": "garbage"}, 1000.0)
    assert (info.pid, info.timeout) == (0, 60.0)
    assert lease.is_stale(info, HOST, 1000.0 + 61) is True
    assert lease.is_stale(info, HOST, 1000.0 + 59) is False


@pytest.mark.parametrize("timeout", ["inf", "nan", "-5", "0", "1e400"])
def test_a_lease_whose_timeout_is_no_duration_is_judged_by_the_default(timeout: str) -> None:
    info = LeaseInfo(1, {"host": OTHER, "pid": "1", "timeout": timeout}, 1000.0)
    assert info.timeout == 60.0
    assert lease.is_stale(info, HOST, 1000.0 + 61) is True


@pytest.mark.parametrize("since", ["inf", "nan", "-1", "1e300"])
def test_a_lease_started_at_no_date_is_shown_without_one(since: str) -> None:
    from notifyd.cli.commands.ensure import describe

    info = LeaseInfo(1, {"host": OTHER, "pid": "7", "since": since}, 1000.0)
    assert describe(info) == f"pid 7 on {OTHER}, since ?"
