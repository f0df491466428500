"""A watcher that cannot start says so where the user looks (issue 14).

Real pingch jobs, real background watchers, the receiver: a config readable
by the group (refused, it holds URLs) keeps every watcher from starting; pingch
says why on stderr once per cause, a person's `notifyd ensure` after the fix
starts one at once (the spawn debounce notwithstanding) and the jobs held
meanwhile arrive.
"""

from __future__ import annotations

import os
import pty
import subprocess
import time
from pathlib import Path

from harness import NOTIFYD, Home, Receiver, WatcherProc, fast_config, lease_holder, wait_until

SAID = "no notifyd watcher can start on"


def note(home: Home) -> Path:
    """The note of why no watcher can start on this host (told or not)."""
    return home.state_dir / "lease" / f"cannot-start.{home.host}"


def noted(home: Home) -> str:
    """Its cause, told or not ('' when there is none)."""
    path = note(home)
    for each in (path, path.with_name(path.name + ".told")):
        try:
            return each.read_text()
        except FileNotFoundError:
            pass
    return ""


def jobs_while_none_can_start(home: Home, *titles: str) -> list[str]:
    """Run a job per title; after the first, wait for the failed watcher's note. Their stderr."""
    errs = []
    for i, title in enumerate(titles):
        p = home.pingch("-t", title, "true")
        assert p.returncode == 0, p.stderr
        errs.append(p.stderr)
        if i == 0:
            wait_until(lambda: noted(home), 20, "the failed watcher's note")
    return errs


def spawn_debounce_passed(home: Home) -> None:
    """As if the 15 s spawn debounce had passed since the last spawn from this host."""
    mark = home.state_dir / "lease" / f"spawn.{home.host}"
    old = time.time() - 60
    os.utime(mark, (old, old))


def test_an_unsafe_config_is_told_once_on_pingchs_stderr_with_the_fix(
        home: Home, receiver: Receiver) -> None:
    path = home.write_config(fast_config(receiver.url), mode=0o640)
    errs = jobs_while_none_can_start(home, "one", "two", "three")
    told = [line for err in errs for line in err.splitlines() if SAID in line]
    assert len(told) == 1, errs
    assert f"chmod 600 {path}" in told[0] and "notifyd ensure" in told[0]
    assert lease_holder(home) == 0 and receiver.bodies() == []


def test_an_odd_file_in_place_of_the_cause_is_no_cause_and_never_blocks(
        home: Home, receiver: Receiver) -> None:
    # The lease dir is in the shared home: a FIFO there (no writer, so a plain
    # read would wait for good) or a directory must not hang or break the job.
    home.write_config(fast_config(receiver.url), mode=0o640)
    note(home).parent.mkdir(parents=True, exist_ok=True)
    os.mkfifo(note(home))
    p = home.pingch("-t", "fifo", "true", timeout=20)
    assert p.returncode == 0 and SAID not in p.stderr, p.stderr
    for each in (note(home), note(home).with_name(note(home).name + ".told")):
        if each.exists() and not each.is_dir():
            each.unlink()
    note(home).mkdir()
    p = home.pingch("-t", "directory", "true", timeout=20)
    assert p.returncode == 0 and "Traceback" not in p.stderr, p.stderr


def test_a_new_cause_is_told_again(home: Home, receiver: Receiver) -> None:
    home.write_config(fast_config(receiver.url), mode=0o640)
    jobs_while_none_can_start(home, "one", "two")
    home.write_config("[watcher]\npoll_intervall = 1s\n")  # now private, but a key is misspelt
    spawn_debounce_passed(home)
    errs = [home.pingch("true").stderr]
    wait_until(lambda: "poll_intervall" in noted(home), 20, "the note of the new cause")
    errs += [home.pingch("true").stderr, home.pingch("true").stderr]
    told = [line for err in errs for line in err.splitlines() if SAID in line]
    assert len(told) == 1 and "poll_intervall" in told[0], errs


def test_a_persons_ensure_after_the_fix_starts_a_watcher_and_the_held_jobs_arrive(
        home: Home, receiver: Receiver) -> None:
    path = home.write_config(fast_config(receiver.url), mode=0o640)
    jobs_while_none_can_start(home, "held-1", "held-2")
    path.chmod(0o600)
    # Within the spawn debounce of the failed try: a person's ensure is not swallowed.
    code, out, err = home.notifyd("ensure", "--verbose")
    assert code == 0, err
    pid = lease_holder(home)
    assert out == f"watcher: started now: pid {pid} on {home.host}\n"
    titles = sorted(b["title"] for b in receiver.wait_for(2))
    assert len(titles) == 2 and "held-1" in titles[0] and "held-2" in titles[1]
    assert not noted(home)  # a watcher runs: a later failure is news again


def test_ensure_from_cron_with_an_unsafe_config_leaves_the_cause_for_pingch(
        home: Home, receiver: Receiver) -> None:
    home.write_config(fast_config(receiver.url), mode=0o640)
    code, _, err = home.notifyd("ensure")  # as cron runs it: no terminal
    assert code == 3 and "chmod 600" in err
    p = home.pingch("true")
    assert p.returncode == 0 and SAID in p.stderr and "chmod 600" in p.stderr


def test_a_persons_ensure_with_a_watcher_running_says_which_and_where(
        home: Home, receiver: Receiver, watcher: WatcherProc) -> None:
    code, out, err = home.notifyd("ensure", "-v")
    assert watcher.proc is not None
    assert code == 0, err
    assert out.startswith(f"watcher: already running: pid {watcher.proc.pid} on {home.host}, since ")


def test_ensure_at_a_terminal_says_what_it_did_without_a_flag(home: Home, receiver: Receiver) -> None:
    home.write_config(fast_config(receiver.url))
    leader, follower = pty.openpty()
    try:
        p = subprocess.run([NOTIFYD, "ensure"], env=home.env, stdin=subprocess.DEVNULL,
                           stdout=subprocess.PIPE, stderr=follower, text=True, timeout=60)
    finally:
        os.close(follower)
        os.close(leader)
    assert p.returncode == 0
    assert p.stdout == f"watcher: started now: pid {lease_holder(home)} on {home.host}\n"


def test_ensure_from_cron_or_the_login_hook_prints_nothing(home: Home, receiver: Receiver) -> None:
    home.write_config(fast_config(receiver.url))
    assert home.notifyd("ensure") == (0, "", "")
    wait_until(lambda: lease_holder(home), 20, "the watcher ensure started")


def test_pingch_d_tells_it_on_the_terminal_not_in_the_jobs_log(home: Home, receiver: Receiver) -> None:
    home.write_config(fast_config(receiver.url), mode=0o640)
    assert home.notifyd("ensure")[0] == 3  # as cron would: the cause is noted, not told
    p = home.pingch("-d", "true")
    assert p.returncode == 0 and SAID in p.stderr and "chmod 600" in p.stderr
