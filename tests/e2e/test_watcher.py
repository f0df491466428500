"""End to end: real pingch jobs, a real watcher process, a real webhook on 127.0.0.1."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
from collections import Counter

from harness import PINGCH, Home, Receiver, WatcherProc, fast_config, wait_until

from notifyd.watcher import launch


def _one_message(receiver: Receiver) -> dict[str, object]:
    bodies = receiver.wait_for(1)
    assert len(bodies) == 1, bodies
    return bodies[0]


def test_successful_job_is_notified_with_host_exit_duration_and_memory(
        home: Home, receiver: Receiver, watcher: WatcherProc) -> None:
    assert home.pingch("-t", "relax", "sleep", "0.3").returncode == 0
    msg = _one_message(receiver)
    assert msg["type"] == "success"
    assert "relax" in msg["title"] and home.host in msg["title"]
    body = str(msg["message"])
    assert "exit 0" in body
    assert "after 0.3 s" in body or "after 0.4 s" in body
    assert "peak RSS" in body and "MiB" in body
    assert "$ sleep 0.3" in body


def test_job_exiting_3_is_reported_as_a_failure_with_its_code(
        home: Home, receiver: Receiver, watcher: WatcherProc) -> None:
    assert home.pingch("-t", "bad", "sh", "-c", "exit 3").returncode == 3
    msg = _one_message(receiver)
    assert msg["type"] == "failure"
    assert "exit 3" in msg["title"] and "exit 3" in msg["message"]


def test_job_killed_by_sigterm_through_pingch_is_reported_with_signal_name(
        home: Home, receiver: Receiver, watcher: WatcherProc) -> None:
    proc = subprocess.Popen([PINGCH, "-t", "long", "sleep", "30"], env=home.env)
    wait_until(home.events, 10, "the start event")
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=10) == 128 + signal.SIGTERM
    msg = _one_message(receiver)
    assert "killed by SIGTERM" in msg["title"]
    assert msg["type"] == "failure"


def test_job_killed_by_sigkill_is_reported_with_signal_name(
        home: Home, receiver: Receiver, watcher: WatcherProc) -> None:
    result = home.pingch("-t", "oom", "sh", "-c", "kill -9 $$")
    assert result.returncode == 128 + signal.SIGKILL
    msg = _one_message(receiver)
    assert "killed by SIGKILL" in msg["title"]


def test_arguments_with_spaces_and_quotes_reach_the_job_and_the_message_unchanged(
        home: Home, receiver: Receiver, watcher: WatcherProc, tmp_path) -> None:
    out = tmp_path / "args.json"
    script = "import json,sys; open(sys.argv[1],'w').write(json.dumps(sys.argv[2:]))"
    args = ["a b", "it's", '"q"', "", "$HOME"]
    import sys
    assert home.pingch(sys.executable, "-c", script, str(out), *args).returncode == 0
    assert json.loads(out.read_text()) == args
    msg = _one_message(receiver)
    assert "'a b'" in msg["message"]


def test_pingch_p_reports_a_process_started_without_pingch(
        home: Home, receiver: Receiver, watcher: WatcherProc) -> None:
    job = subprocess.Popen(["sleep", "1"])
    try:
        result = home.pingch("-p", str(job.pid), "-t", "adopted")
    finally:
        job.wait()
    assert result.returncode == 0
    msg = _one_message(receiver)
    assert "adopted" in msg["title"]
    assert "exit unknown" in msg["message"]
    assert msg["type"] == "info"


def test_hundred_parallel_jobs_give_hundred_messages(
        home: Home, receiver: Receiver, watcher: WatcherProc) -> None:
    procs = [subprocess.Popen([PINGCH, "-t", f"job{i:03d}", "sleep", "0.5"], env=home.env)
             for i in range(100)]
    assert all(p.wait(timeout=120) == 0 for p in procs)
    bodies = receiver.wait_for(100, timeout=90)
    titles = Counter(str(b["title"]).split()[1] for b in bodies)
    assert sorted(titles) == [f"job{i:03d}" for i in range(100)]
    time.sleep(1)  # nothing more may arrive
    assert len(receiver.bodies()) == 100


def test_watcher_killed_mid_stream_and_restarted_loses_and_repeats_nothing(
        home: Home, receiver: Receiver, watcher: WatcherProc) -> None:
    jobs = 40
    receiver.delay = 0.1  # 40 deliveries take ~4 s: long enough to kill in the middle
    procs = [subprocess.Popen([PINGCH, "-t", f"kill{i:02d}", "true"], env=home.env)
             for i in range(jobs)]
    assert all(p.wait(timeout=60) == 0 for p in procs)
    wait_until(lambda: len(receiver.bodies()) >= 5, 20, "some deliveries")
    watcher.kill(signal.SIGKILL)
    delivered_before_kill = len(receiver.bodies())
    assert delivered_before_kill < jobs, "the kill did not land mid-stream"
    WatcherProc(home).start()  # the holder's pid is gone: taken over at once
    bodies = receiver.wait_for(jobs, timeout=60)
    time.sleep(1)
    titles = Counter(str(b["title"]).split()[1] for b in receiver.bodies())
    assert set(titles) == {f"kill{i:02d}" for i in range(jobs)}
    repeated = [t for t, n in titles.items() if n > 1]
    # Only the one send in flight when the watcher died may repeat.
    assert len(repeated) <= 1, repeated
    assert len(bodies) >= jobs


def test_endpoint_failing_with_500_gets_the_message_after_it_recovers(
        home: Home, receiver: Receiver, watcher: WatcherProc) -> None:
    receiver.status = 500
    assert home.pingch("-t", "during-outage", "true").returncode == 0
    wait_until(lambda: len(receiver.posts) >= 2, 20, "retried posts while failing")
    _code, out, _ = home.notifyd("status", "--json")
    report = json.loads(out)
    assert report["pending"] == 1
    assert report["urls"][0]["retrying"] is True
    receiver.status = 200
    msg = _one_message(receiver)
    assert "during-outage" in msg["title"]
    wait_until(lambda: json.loads(home.notifyd("status", "--json")[1])["pending"] == 0, 10,
               "the outbox to empty")


def test_malformed_and_oversized_spool_lines_are_skipped_and_the_watcher_lives_on(
        home: Home, receiver: Receiver, watcher: WatcherProc) -> None:
    home.spool.parent.mkdir(parents=True, exist_ok=True)
    with home.spool.open("ab") as f:
        f.write(b"this is not json\n")
        f.write(b'{"v":1,"ev":"finish"}\n')  # missing fields
        f.write(b"[1,2,3]\n")
        f.write(b'{"v":99,"ev":"finish","job":"x","host":"h","pid":1,"ts":1}\n')
        f.write(b"x" * 100_000 + b"\n")
        f.write(b"\xff\xfe\x00garbage\n")
    assert home.pingch("-t", "after-garbage", "true").returncode == 0
    msg = _one_message(receiver)
    assert "after-garbage" in msg["title"]
    assert watcher.alive
    report = json.loads(home.notifyd("status", "--json")[1])
    assert report["malformed_lines"] == 6


def test_legacy_pingchilling_finish_lines_are_notified(
        home: Home, receiver: Receiver, watcher: WatcherProc) -> None:
    legacy = home.root / ".pingchilling"
    now = time.strftime("%Y-%m-%d %H:%M:%S")
    with legacy.open("a") as f:
        f.write(f"1001@node5: Started [python relax.py] {now}\n")
        f.write("garbage that the old function never wrote\n")
    wait_until(lambda: "legacy:.pingchilling" in _cursors(home), 10, "the legacy file to be read")
    with legacy.open("a") as f:
        f.write(f"1001@node5: Finished [2] {now}\n")
    msg = _one_message(receiver)
    assert "python relax.py" in msg["title"] and "node5" in msg["title"]
    assert "exit 2" in msg["message"]
    assert json.loads(home.notifyd("status", "--json")[1])["malformed_lines"] == 1


def test_a_legacy_job_still_running_is_listed_by_jobs_and_counted_by_status(
        home: Home, receiver: Receiver, watcher: WatcherProc) -> None:
    legacy = home.root / ".pingchilling"
    now = time.strftime("%Y-%m-%d %H:%M:%S")
    legacy.write_text(f"1001@node5: Started [python relax.py] {now}\n")
    wait_until(lambda: _legacy_open(home), 10, "the open start in the legacy cursor")
    (row,) = json.loads(home.notifyd("jobs", "--json")[1])["running"]
    assert (row["title"], row["host"], row["pid"], row["source"]) == ("python relax.py", "node5", 1001,
                                                                      "pingchilling")
    out = home.notifyd("jobs")[1]
    assert "running: 1 job" in out and "python relax.py (~/.pingchilling)" in out
    assert "jobs:       1 running (1 from ~/.pingchilling)" in home.notifyd("status")[1]

    with legacy.open("a") as f:
        f.write(f"1001@node5: Finished [0] {now}\n")
    _one_message(receiver)
    doc = json.loads(home.notifyd("jobs", "--json")[1])
    assert doc["running"] == [] and [f["job"] for f in doc["finished"]] == [row["job"]]


def test_legacy_jobs_finished_before_the_first_watcher_are_history_not_news(
        home: Home, receiver: Receiver) -> None:
    legacy = home.root / ".pingchilling"
    legacy.write_text("7@node1: Started [old] 2025-10-03 13:05:59\n"
                      "7@node1: Finished [0] 2025-10-03 13:40:01\n")
    home.write_config(fast_config(receiver.url))
    WatcherProc(home).start()
    assert home.pingch("-t", "new", "true").returncode == 0
    msg = _one_message(receiver)
    assert "new" in msg["title"]
    time.sleep(0.6)
    assert len(receiver.bodies()) == 1


def _legacy_open(home: Home) -> object:
    cursor = _cursors(home).get("legacy:.pingchilling")
    return isinstance(cursor, dict) and cursor.get("open")


def _cursors(home: Home) -> dict[str, object]:
    try:
        return json.loads((home.state_dir / "watcher-state.json").read_text())["cursors"]
    except (OSError, ValueError):
        return {}


def test_group_readable_config_with_urls_is_refused_with_the_chmod_fix(
        home: Home, receiver: Receiver) -> None:
    path = home.write_config(fast_config(receiver.url), mode=0o640)
    code, _, err = home.notifyd("watch")
    assert code == 3
    assert f"refusing to read {path}" in err and f"chmod 600 {path}" in err
    assert "Traceback" not in err
    code, _, err = home.notifyd("ensure")
    assert code == 3 and "chmod 600" in err


def test_ensure_twice_on_one_host_leaves_one_watcher(home: Home, receiver: Receiver) -> None:
    home.write_config(fast_config(receiver.url))
    assert home.notifyd("ensure") == (0, "", "")
    assert home.notifyd("ensure") == (0, "", "")
    wait_until(lambda: _holder_alive(home), 20, "a watcher to hold the lease")
    time.sleep(2)  # any extra candidate has had time to start and give up
    assert len(home.watcher_pids()) == 1
    assert home.notifyd("ensure") == (0, "", "")
    time.sleep(2)
    assert len(home.watcher_pids()) == 1


def _holder_alive(home: Home) -> bool:
    _code, out, _ = home.notifyd("status", "--json")
    watcher = json.loads(out)["watcher"]
    return bool(watcher and watcher["running"])


def test_without_url_notifications_land_in_the_inbox_and_status_says_how_to_push(
        home: Home) -> None:
    assert home.pingch("-t", "quiet", "sh", "-c", "exit 4").returncode == 4
    # pingch itself started the watcher: no configuration at all.
    wait_until(lambda: "quiet" in home.notifyd("inbox")[1], 20, "the inbox entry")
    code, out, _ = home.notifyd("inbox")
    assert code == 0 and "exit 4" in out
    assert "**" not in out and "`" not in out  # a terminal shows no Markdown marks
    code, out, _ = home.notifyd("status")
    assert code == 0
    assert "nothing is being pushed" in out and "notifyd init" in out


def test_log_never_contains_the_url_secret(home: Home, receiver: Receiver) -> None:
    secret_url = f"json://user:hunter2secret@127.0.0.1:{receiver.port}/hook"
    home.write_config(fast_config(secret_url))
    receiver.status = 500
    w = WatcherProc(home).start()
    assert home.pingch("true").returncode == 0
    wait_until(lambda: len(receiver.posts) >= 2, 20, "failed posts")
    w.stop()
    logs = "".join(p.read_text() for p in (home.state_dir / "logs").glob("*.log*"))
    assert "failed" in logs
    assert "hunter2secret" not in logs
    _code, out, _ = home.notifyd("status")
    assert "hunter2secret" not in out and "127.0.0.1" in out


def test_stop_stops_the_watcher_and_releases_the_lease(
        home: Home, receiver: Receiver, watcher: WatcherProc) -> None:
    code, out, _ = home.notifyd("stop")
    assert code == 0 and "stopped" in out
    assert watcher.proc is not None and watcher.proc.wait(timeout=10) == 0
    report = json.loads(home.notifyd("status", "--json")[1])
    assert report["watcher"]["released"] is True and report["watcher"]["running"] is False


def test_job_finished_while_no_watcher_ran_is_notified_when_one_starts(
        home: Home, receiver: Receiver) -> None:
    home.write_config(fast_config(receiver.url))
    env = dict(home.env)
    lease_dir = home.state_dir / "lease"
    lease_dir.mkdir(parents=True)
    # A fresh spawn mark makes pingch skip starting a watcher for this job.
    (lease_dir / f"spawn.{home.host}").touch()
    assert subprocess.run([PINGCH, "-t", "offline", "true"], env=env).returncode == 0
    assert home.watcher_pids() == []
    WatcherProc(home).start()
    msg = _one_message(receiver)
    assert "offline" in msg["title"]


def test_second_foreground_watcher_refuses_and_names_the_holder(
        home: Home, receiver: Receiver, watcher: WatcherProc) -> None:
    code, _, err = home.notifyd("watch")
    assert code == 1
    assert watcher.proc is not None and f"pid {watcher.proc.pid}" in err
    assert "notifyd stop" in err


def test_watcher_survives_when_the_spool_dir_is_replaced_by_a_symlink_file(
        home: Home, receiver: Receiver, watcher: WatcherProc) -> None:
    # A symlink in events/ is not followed (a labmate's trick must not make us read their file).
    target = home.root / "elsewhere.jsonl"
    target.write_text('{"v":1,"ev":"finish","job":"evil","host":"x","pid":1,"ts":1}\n')
    os.symlink(target, home.state_dir / "events" / "evil.jsonl")
    assert home.pingch("-t", "real", "true").returncode == 0
    msg = _one_message(receiver)
    assert "real" in msg["title"]
    time.sleep(0.6)
    assert len(receiver.bodies()) == 1


def test_url_added_to_the_config_later_is_used_without_restarting_the_watcher(
        home: Home, receiver: Receiver) -> None:
    home.write_config(fast_config())
    w = WatcherProc(home).start()
    home.write_config(fast_config(receiver.url))
    time.sleep(0.5)  # one poll round notices the change
    assert home.pingch("-t", "after-init", "true").returncode == 0
    msg = _one_message(receiver)
    assert "after-init" in msg["title"]
    assert w.alive


def test_urls_from_an_apprise_config_file_are_used(home: Home, receiver: Receiver) -> None:
    apprise_file = home.root / "apprise.txt"
    apprise_file.write_text(f"{receiver.url}\n")
    apprise_file.chmod(0o600)
    home.write_config(f"[notify]\napprise_config = {apprise_file}\n" + fast_config())
    WatcherProc(home).start()
    assert home.pingch("-t", "via-apprise-config", "true").returncode == 0
    assert "via-apprise-config" in _one_message(receiver)["title"]


def test_apprise_urls_environment_variable_is_used(home: Home, receiver: Receiver) -> None:
    home.write_config(fast_config())
    home.env["APPRISE_URLS"] = receiver.url
    WatcherProc(home).start()
    assert home.pingch("-t", "via-env", "true").returncode == 0
    assert "via-env" in _one_message(receiver)["title"]


def test_watcher_started_from_a_job_directory_with_a_shadowing_module_still_runs(
        home: Home, receiver: Receiver, tmp_path) -> None:
    home.write_config(fast_config(receiver.url))
    jobdir = tmp_path / "job"
    jobdir.mkdir()
    (jobdir / "typer.py").write_text('raise SystemExit("shadowed")\n')
    assert home.pingch("-t", "from-jobdir", "true", cwd=jobdir).returncode == 0
    # pingch started the watcher from this directory.
    assert "from-jobdir" in _one_message(receiver)["title"]


# -- a home that is gone ----------------------------------------------------------------------
def test_watcher_whose_state_dir_is_deleted_stops_soon_without_recreating_it(home: Home) -> None:
    # A lease timeout of 5 min: the heartbeat (every 50 s) is not what notices.
    home.write_config("[watcher]\npoll_interval = 0.2s\nlease_timeout = 5min\n")
    watcher = WatcherProc(home).start()
    try:
        # Gone at once (rm -r would take it away file by file, and the watcher
        # may first see its lease file gone, which it also stops for).
        trash = home.root / "trash"
        home.state_dir.rename(trash)
        shutil.rmtree(trash)
        wait_until(lambda: not watcher.alive, 10, "the watcher to stop once its state dir is gone")
    finally:
        watcher.stop()
    assert watcher.proc is not None and watcher.proc.returncode == 0
    assert not home.state_dir.exists()
    said = f"{home.state_dir} is gone (deleted?): stopping, recreating nothing;"
    assert said in (home.root / "watcher.out").read_text()


def test_watcher_started_after_its_home_was_deleted_creates_nothing_and_exits(home: Home) -> None:
    shutil.rmtree(home.root)
    # Started as pingch and `notifyd ensure` start one (launch.watcher_argv), then by hand.
    background = subprocess.run(launch.watcher_argv(), env=home.env, capture_output=True, text=True,
                                timeout=60, cwd="/")
    code, _out, err = home.notifyd("watch")
    assert background.returncode == code == 1
    assert f"the home directory {home.root} does not exist" in err
    assert not home.root.exists()
