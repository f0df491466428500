"""Odd input, full disks and mishaps: nothing crashes, nothing is lost, nothing repeats.

Each test here comes from a way the first version of the watcher failed.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time

from harness import PINGCH, Home, Receiver, WatcherProc, fast_config, wait_until


def _finish_line(job: str, title: str, **extra: object) -> bytes:
    ev = {"v": 1, "ev": "finish", "job": job, "host": "other", "pid": 1, "ts": time.time(),
          "title": title, "exit": 0, **extra}
    return json.dumps(ev).encode() + b"\n"


def _titles(receiver: Receiver) -> list[str]:
    return [str(b["title"]) for b in receiver.bodies()]


def test_lines_that_break_the_parser_or_the_formatter_are_skipped_and_the_rest_arrives(
        home: Home, receiver: Receiver, watcher: WatcherProc) -> None:
    spool = home.state_dir / "events" / "other.jsonl"
    spool.write_bytes(
        _finish_line("other-1-a", "first")
        + b"[" * 3000 + b"\n"  # deep nesting: RecursionError in json
        + _finish_line("other-1-b", "huge", duration=1e999)[:-1].replace(b"Infinity", b"1e999") + b"\n"
        + _finish_line("other-1-c", "far-future", ts=1e300)  # time.localtime overflows
        + _finish_line("other-1-d", "last")
    )
    receiver.wait_for(2)
    time.sleep(0.6)
    titles = _titles(receiver)
    assert len(titles) == 2 and "first" in titles[0] and "last" in titles[1]
    assert json.loads(home.notifyd("status", "--json")[1])["malformed_lines"] == 3
    assert watcher.alive


def test_unwritable_journal_does_not_make_the_watcher_resend(
        home: Home, receiver: Receiver, watcher: WatcherProc) -> None:
    journal = home.state_dir / "journal" / f"{home.host}.log"
    journal.unlink(missing_ok=True)  # the holder makes its journal when it takes the lease
    journal.mkdir()  # appends now fail
    assert home.pingch("-t", "once", "true").returncode == 0
    receiver.wait_for(1)
    time.sleep(1.5)  # several rounds
    assert len(_titles(receiver)) == 1
    assert watcher.alive


def test_watcher_survives_an_unreadable_lease_and_resumes(
        home: Home, receiver: Receiver, watcher: WatcherProc) -> None:
    lease_file = next((home.state_dir / "lease").glob("lease.*"))
    content = lease_file.read_bytes()
    lease_file.unlink()
    lease_file.mkdir()  # reading it fails with EISDIR
    log = home.state_dir / "logs" / f"{home.host}.log"
    wait_until(lambda: "error in a watcher round" in log.read_text(), 10, "the logged failure")
    assert watcher.alive
    lease_file.rmdir()
    lease_file.write_bytes(content)
    assert home.pingch("-t", "resumed", "true").returncode == 0
    assert "resumed" in _titles_after(receiver, 1)[0]


def _titles_after(receiver: Receiver, count: int) -> list[str]:
    receiver.wait_for(count)
    return _titles(receiver)


def test_config_emptied_for_a_moment_does_not_drop_pending_deliveries(
        home: Home, receiver: Receiver, watcher: WatcherProc) -> None:
    receiver.status = 500
    assert home.pingch("-t", "kept", "true").returncode == 0
    wait_until(lambda: len(receiver.posts) >= 1, 10, "a failed post")
    text = home.config_file.read_text()
    home.config_file.write_text("")
    time.sleep(0.6)  # the watcher reloads the empty config
    home.write_config(text)
    receiver.status = 200
    assert "kept" in _titles_after(receiver, 1)[0]


def test_lost_state_file_does_not_announce_old_jobs_again(
        home: Home, receiver: Receiver, watcher: WatcherProc) -> None:
    for i in range(3):
        assert home.pingch("-t", f"old{i}", "true").returncode == 0
    receiver.wait_for(3)
    watcher.stop()
    (home.state_dir / "watcher-state.json").write_text("{ broken")
    WatcherProc(home).start()
    assert home.pingch("-t", "new", "true").returncode == 0
    receiver.wait_for(4)
    time.sleep(0.6)
    titles = _titles(receiver)
    assert len(titles) == 4 and "new" in titles[3]
    assert list(home.state_dir.glob("watcher-state.broken-*.json"))


def test_trimmed_legacy_file_does_not_announce_its_history(
        home: Home, receiver: Receiver, watcher: WatcherProc) -> None:
    legacy = home.root / ".pingchilling"
    legacy.write_text("".join(
        f"{n}@node5: Started [old-{n}] 2025-10-03 13:0{n}:00\n"
        f"{n}@node5: Finished [0] 2025-10-03 13:1{n}:00\n" for n in range(3)))
    wait_until(lambda: "legacy:.pingchilling" in _state(home).get("cursors", {}), 10, "history read")
    legacy.write_text("".join(legacy.read_text().splitlines(keepends=True)[2:]))  # trim
    assert home.pingch("-t", "fresh", "true").returncode == 0
    receiver.wait_for(1)
    time.sleep(0.6)
    assert len(_titles(receiver)) == 1 and "fresh" in _titles(receiver)[0]


def _state(home: Home) -> dict[str, object]:
    try:
        return json.loads((home.state_dir / "watcher-state.json").read_text())
    except (OSError, ValueError):
        return {}


def test_state_dir_under_a_file_is_a_clear_error_not_a_traceback(home: Home) -> None:
    blocker = home.root / "afile"
    blocker.write_text("")
    home.env["NOTIFYD_STATE_DIR"] = str(blocker / "notifyd")
    for verb in ("ensure", "status", "stop", "watch"):
        code, _, err = home.notifyd(verb)
        assert code == 1, (verb, err)
        assert "Traceback" not in err and str(blocker) in err, (verb, err)


def test_interrupted_pingch_p_records_that_the_process_is_no_longer_watched(home: Home) -> None:
    job = subprocess.Popen(["sleep", "30"])
    try:
        watch = subprocess.Popen([PINGCH, "-p", str(job.pid), "-t", "followed"], env=home.env,
                                 stderr=subprocess.PIPE, text=True)
        wait_until(home.events, 10, "the start event")
        watch.send_signal(signal.SIGINT)
        assert watch.wait(timeout=10) == 128 + signal.SIGINT
        assert watch.stderr is not None and "Traceback" not in watch.stderr.read()
        assert job.poll() is None  # the process itself goes on
    finally:
        job.kill()
        job.wait()
    finish = home.events()[-1]
    assert finish["ev"] == "finish" and finish["unwatched"] is True
    assert "SIGINT" in finish["error"]


def test_small_job_reports_peak_rss_as_an_upper_bound(home: Home) -> None:
    assert home.pingch("true").returncode == 0
    finish = home.events()[-1]
    # pingch's own memory is folded into the job's ru_maxrss at exec.
    assert finish["maxrss_kb"] <= finish["maxrss_floor_kb"]


def test_ntfy_topic_is_masked_in_test_and_status_output(home: Home) -> None:
    home.write_config(fast_config("ntfy://127.0.0.1:1/ana-jobs-7f3k2"))
    code, out, err = home.notifyd("test")
    assert code == 4
    assert "ana-jobs-7f3k2" not in out + err and "ntfy://127.0.0.1:1/****" in out
    code, out, err = home.notifyd("status")
    assert "ana-jobs-7f3k2" not in out + err


def test_watcher_does_not_keep_the_jobs_directory_busy(
        home: Home, receiver: Receiver, watcher: WatcherProc) -> None:
    assert watcher.proc is not None
    assert os.readlink(f"/proc/{watcher.proc.pid}/cwd") == "/"
