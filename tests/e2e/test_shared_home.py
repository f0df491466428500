"""The promises of notifyd on a real network filesystem: several hosts, one home (sshfs)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

from harness import NOTIFYD, PINGCH, Home, Receiver, fast_config, wait_until

Hosts = Callable[[int], list[Home]]


def _holders(hs: list[Home]) -> list[int]:
    return [pid for h in hs for pid in h.watcher_pids()]


def test_the_harness_behaves_like_nfs_exclusive_create_holds_across_mounts(hosts: Hosts) -> None:
    a, b = hosts(2)
    name = "claimed"
    fd = os.open(a.root / name, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
    os.close(fd)
    try:
        os.close(os.open(b.root / name, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
        raise AssertionError("exclusive create succeeded on the second mount")
    except FileExistsError:
        pass


def test_ensure_at_once_on_every_host_leaves_exactly_one_watcher_each_round(
        hosts: Hosts, receiver: Receiver) -> None:
    hs = hosts(3)
    hs[0].write_config(fast_config(receiver.url))
    for round_no in range(20):
        procs = [subprocess.Popen([NOTIFYD, "ensure"], env=h.env) for h in hs]
        assert all(p.wait(timeout=60) == 0 for p in procs)
        wait_until(lambda: len(_holders(hs)) >= 1, 20, "a watcher")
        time.sleep(1.0)  # losing candidates have had time to start and give up
        alive = _holders(hs)
        assert len(alive) == 1, f"round {round_no}: {len(alive)} watchers"
        code, _, _ = hs[0].notifyd("stop")
        assert code == 0
        wait_until(lambda: not _holders(hs), 20, "the watcher to stop")


def test_holder_killed_is_taken_over_by_another_host_within_the_lease_timeout(
        hosts: Hosts, receiver: Receiver) -> None:
    a, b = hosts(2)
    a.write_config(fast_config(receiver.url))  # lease_timeout 5s
    assert a.notifyd("ensure")[0] == 0
    wait_until(a.watcher_pids, 20, "a watcher on host0")
    for pid in a.watcher_pids():
        os.kill(pid, signal.SIGKILL)
    killed = time.monotonic()
    # Host1's cron/login runs ensure from time to time; here every half second.
    while not b.watcher_pids():
        assert b.notifyd("ensure")[0] == 0
        assert time.monotonic() - killed < 5 + 10, "no takeover within lease_timeout + 10 s"
        time.sleep(0.5)
    assert b.pingch("-t", "after-takeover", "true").returncode == 0
    assert "after-takeover" in str(receiver.wait_for(1)[0]["title"])


def test_frozen_holder_is_taken_over_and_after_sigcont_sends_nothing_more(
        hosts: Hosts, receiver: Receiver) -> None:
    a, b = hosts(2)
    a.write_config(fast_config(receiver.url))
    assert a.notifyd("ensure")[0] == 0
    frozen = wait_until(a.watcher_pids, 20, "a watcher on host0")[0]
    os.kill(frozen, signal.SIGSTOP)
    try:
        time.sleep(6)  # past lease_timeout (5 s)
        assert b.notifyd("ensure")[0] == 0
        wait_until(b.watcher_pids, 20, "host1 to take over")
        for i in range(5):
            assert a.pingch("-t", f"job{i}", "true").returncode == 0
    finally:
        os.kill(frozen, signal.SIGCONT)
    wait_until(lambda: not _alive(frozen), 20, "the old holder to notice and stop")
    receiver.wait_for(5)
    time.sleep(1.5)
    titles = Counter(str(b_["title"]).split()[1] for b_ in receiver.bodies())
    assert titles == Counter({f"job{i}": 1 for i in range(5)})


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def test_three_hosts_times_300_concurrent_jobs_are_each_notified_exactly_once(
        hosts: Hosts, receiver: Receiver) -> None:
    hs = hosts(3)
    hs[0].write_config(fast_config(receiver.url))
    assert hs[0].notifyd("ensure")[0] == 0
    wait_until(lambda: bool(_holders(hs)), 20, "a watcher")
    procs = []
    for h in hs:
        for i in range(300):
            procs.append(subprocess.Popen([PINGCH, "-t", f"{h.host}-{i:03d}", "true"], env=h.env))
    assert all(p.wait(timeout=300) == 0 for p in procs)
    bodies = receiver.wait_for(900, timeout=240)
    time.sleep(2)
    titles = Counter(str(b["title"]).split()[1] for b in receiver.bodies())
    expected = {f"{h.host}-{i:03d}" for h in hs for i in range(300)}
    assert set(titles) == expected and len(bodies) == 900
    assert all(n == 1 for n in titles.values())
    for h in hs:  # every line of every host's spool is a whole event
        for line in h.spool.read_bytes().splitlines():
            json.loads(line)
    assert json.loads(hs[0].notifyd("status", "--json")[1])["malformed_lines"] == 0


def test_finish_written_on_one_host_reaches_the_watcher_on_another_promptly(
        hosts: Hosts, receiver: Receiver) -> None:
    a, b = hosts(2)
    a.write_config(fast_config(receiver.url))  # poll_interval 0.2 s
    assert b.notifyd("ensure")[0] == 0
    wait_until(b.watcher_pids, 20, "a watcher on host1")
    delays = []
    for i in range(5):
        assert a.pingch("-t", f"far{i}", "true").returncode == 0
        finished = time.monotonic()
        receiver.wait_for(i + 1, timeout=30)
        delays.append(time.monotonic() - finished)
    # Bound: poll interval + the sshfs attribute cache (measured ~1 s) + send.
    assert max(delays) < 0.2 + 3 + 2, delays


def test_hosts_with_skewed_clocks_neither_steal_a_live_lease_nor_wait_on_a_dead_one(
        hosts: Hosts, receiver: Receiver) -> None:
    a, b = hosts(2)
    a.write_config(fast_config(receiver.url))
    assert a.notifyd("ensure")[0] == 0
    holder = wait_until(a.watcher_pids, 20, "a watcher on host0")[0]
    # Host1 runs 10 minutes ahead: by its clock the lease looks ancient.
    b.env["FAKETIME"] = "+10m"
    b.env["LD_PRELOAD"] = _libfaketime()
    skewed = subprocess.run(["date", "+%s"], env=b.env, capture_output=True, text=True).stdout
    assert int(skewed) - time.time() > 500, "libfaketime did not skew the clock"
    for _ in range(3):
        assert b.notifyd("ensure")[0] == 0
        time.sleep(1)
    assert b.watcher_pids() == [] and _alive(holder)
    # And a dead holder is still taken over by the skewed host.
    os.kill(holder, signal.SIGKILL)
    deadline = time.monotonic() + 20
    while not b.watcher_pids():
        assert time.monotonic() < deadline, "skewed host never took over a dead lease"
        b.notifyd("ensure")
        time.sleep(0.5)


def _libfaketime() -> str:
    for path in ("/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1",
                 "/usr/lib/aarch64-linux-gnu/faketime/libfaketime.so.1"):
        if os.path.exists(path):
            return path
    raise AssertionError("libfaketime is missing: tests/system-deps.sh installs Debian's faketime")


# -- lost jobs ---------------------------------------------------------------------

def _lost_setup(hosts: Hosts, receiver: Receiver, extra: str = "") -> tuple[Home, Home]:
    a, b = hosts(2)
    a.write_config(fast_config(receiver.url) + "lost_grace = 1s\n" + extra)
    assert b.notifyd("ensure")[0] == 0  # the watcher runs on host1, the jobs on host0
    wait_until(b.watcher_pids, 20, "a watcher on host1")
    return a, b


def _start_job(h: Home, *args: str) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen([PINGCH, *args], env=h.env, start_new_session=True)
    wait_until(lambda: any(e["ev"] == "start" for e in h.events()), 20, "the start event")
    return proc


def _snapshot(h: Home) -> None:
    code, _, err = h.notifyd("snapshot", "--interval", "0.2")
    assert code == 0, err


def test_job_killed_together_with_pingch_is_reported_lost_process_gone(
        hosts: Hosts, receiver: Receiver) -> None:
    a, _b = _lost_setup(hosts, receiver)
    job = _start_job(a, "-t", "oomed", "sleep", "300")
    os.killpg(job.pid, signal.SIGKILL)  # the OOM killer takes pingch and its job
    job.wait()
    time.sleep(5.5)  # a snapshot taken well after the start is evidence
    _snapshot(a)
    msg = receiver.wait_for(1, timeout=30)[0]
    assert "oomed lost on host0" in str(msg["title"])
    assert "process is gone" in str(msg["message"])


def test_running_job_is_never_called_lost_and_its_finish_comes_once(
        hosts: Hosts, receiver: Receiver, tmp_path: Path) -> None:
    a, _b = _lost_setup(hosts, receiver)
    # The job runs until the test opens the gate: under load a fixed sleep could
    # end it before the checks below, and its finish would be read as a lost call.
    gate = tmp_path / "go"
    job = _start_job(a, "-t", "steady", "sh", "-c", f"while [ ! -e {gate} ]; do sleep 0.1; done")
    time.sleep(6)
    _snapshot(a)  # lists the job's process
    time.sleep(2.5)  # several lost checks with a 1 s grace
    assert receiver.bodies() == []
    gate.touch()
    assert job.wait(timeout=30) == 0
    bodies = receiver.wait_for(1)
    time.sleep(1)
    assert len(receiver.bodies()) == 1 and "steady finished" in str(bodies[0]["title"])


def test_job_on_a_rebooted_host_is_lost_and_its_late_finish_is_reported_once(
        hosts: Hosts, receiver: Receiver, tmp_path: Path) -> None:
    a, _b = _lost_setup(hosts, receiver)
    # The job ends when the test says so, not after a fixed sleep: under load the lost
    # message could otherwise come after the job's own finish.
    gate = tmp_path / "go"
    job = _start_job(a, "-t", "rebooted", "sh", "-c", f"while [ ! -e {gate} ]; do sleep 0.1; done")
    time.sleep(3)  # the "reboot" must come clearly after the job's start
    _snapshot(a)
    snap_file = a.state_dir / "procs" / f"{a.host}.json"
    snap = json.loads(snap_file.read_text())
    snap["boot_time"] = time.time()  # the host came back up after the job started
    snap_file.write_text(json.dumps(snap))
    lost_msg = receiver.wait_for(1, timeout=30)[0]
    assert "rebooted lost on host0" in str(lost_msg["title"])
    assert "rebooted" in str(lost_msg["message"])
    gate.touch()
    assert job.wait(timeout=30) == 0  # it had not really died: its finish comes later
    bodies = receiver.wait_for(2)
    time.sleep(1)
    titles = [str(b["title"]) for b in receiver.bodies()]
    assert len(titles) == 2 and "rebooted finished on host0" in titles[1]
    assert "reported lost earlier" in str(bodies[1]["message"])


def test_job_on_a_silent_host_without_snapshots_is_reported_lost(
        hosts: Hosts, receiver: Receiver) -> None:
    a, _b = _lost_setup(hosts, receiver, "host_silent_after = 4s\n")
    job = _start_job(a, "-t", "vanished", "sleep", "300")
    os.killpg(job.pid, signal.SIGKILL)  # the host "dies": nothing more comes from it
    job.wait()
    msg = receiver.wait_for(1, timeout=30)[0]
    assert "vanished lost on host0" in str(msg["title"])
    assert "silent" in str(msg["message"])


def _group_members(h: Home, group: str) -> int:
    path = h.state_dir / "watcher-state.json"
    try:
        return len(json.loads(path.read_text())["groups"][group]["jobs"])
    except (OSError, ValueError, KeyError):
        return 0


def test_a_group_spread_over_three_hosts_is_one_message_when_its_last_job_ends(
        hosts: Hosts, receiver: Receiver, tmp_path: Path) -> None:
    hs = hosts(3)
    hs[0].write_config(fast_config(receiver.url).replace("[notify]\n", "[notify]\ngroup_wait = 2s\n"))
    assert hs[0].notifyd("ensure")[0] == 0
    wait_until(lambda: bool(_holders(hs)), 20, "a watcher")
    # The jobs end only once the watcher has read all four starts: under load a start
    # read over sshfs can come later than another job's end plus group_wait, and the
    # group would then rightly be told with the jobs it knew of.
    gate = tmp_path / "go"
    wait_gate = f"while [ ! -e {gate} ]; do sleep 0.05; done"
    procs = [subprocess.Popen([PINGCH, "-g", "relax", "-t", f"relax-{h.host}", "sh", "-c",
                               f"{wait_gate}; sleep {i}"], env=h.env) for i, h in enumerate(hs)]
    procs.append(subprocess.Popen([PINGCH, "-g", "relax", "-t", "relax-broken", "sh", "-c",
                                   f"{wait_gate}; exit 1"], env=hs[1].env))
    wait_until(lambda: _group_members(hs[0], "relax") == 4, 40, "the watcher to know four members")
    gate.touch()
    assert [p.wait(timeout=60) for p in procs] == [0, 0, 0, 1]
    (summary,) = receiver.wait_for(1, timeout=40)
    time.sleep(3)
    assert len(receiver.bodies()) == 1  # one message for the group, none per job
    assert "group relax" in summary["title"] and "4 jobs" in summary["title"]
    assert "3 ok" in summary["title"] and "1 failed" in summary["title"]
    assert "relax-broken" in summary["message"]
