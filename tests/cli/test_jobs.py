"""`notifyd jobs` (issue 6): running jobs across hosts and recent finished ones, with delivery.

The state file and the inbox are written by hand here, in the shapes the
watcher writes them (notifyd/notify/routing.py, targets.InboxTarget), so each case is
exact; one test runs the whole path through a real watcher and real pingch jobs.
"""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from harness import (
    NOTIFYD,
    PINGCH,
    Home,
    WatcherProc,
    fast_config,
    new_home,
    serve_receiver,
    wait_until,
)

from notifyd.state import LEGACY_CURSOR

NOW = time.time()
URL_KEY = "0123456789abcdef"  # a pushed URL's key in the state file (sender.url_key)


def configured_key(home: Home) -> str:
    """Configure one URL and return its key: a delivery waiting for it makes a job pending."""
    from notifyd.notify import apprise_urls
    from notifyd.notify import targets as sender

    url = "json://127.0.0.1:9/hook"
    home.write_config(fast_config(url))
    return sender.url_key(apprise_urls.instantiate(sender.load_apprise(), url).url(privacy=False))


# --------------------------------------------------------------------------- helpers


def jobs(home: Home, *args: str) -> tuple[int, str, str]:
    return home.notifyd("jobs", *args)


def jobs_json(home: Home, *args: str) -> dict[str, Any]:
    code, out, err = jobs(home, "--json", *args)
    assert code == 0, err
    doc: dict[str, Any] = json.loads(out)
    return doc


def info(host: str = "node5", title: str = "relax", *, exit: int | None = 0, signal: int | None = None,
         outcome: str = "ok", duration: float | None = 723.0, maxrss_kb: int | None = 1_258_291,
         group: str | None = None, silent: bool = False, end: float = NOW - 600) -> dict[str, Any]:
    """An inbox record's "info", as routing.job_info writes it."""
    return {"host": host, "pid": 4242, "title": title, "group": group, "outcome": outcome,
            "exit": exit, "signal": signal, "duration": duration, "maxrss_kb": maxrss_kb,
            "start_ts": None if duration is None else end - duration, "end_ts": end, "silent": silent}


def record(job: str, when: float, job_info: dict[str, Any] | None = None, *, suffix: str = "finish",
           kind: str = "success", title: str = "✅ a message title") -> dict[str, Any]:
    rec: dict[str, Any] = {"id": f"{job}:{suffix}", "job": job, "time": when, "kind": kind,
                           "title": title, "body": "…"}
    if job_info is not None:
        rec["info"] = job_info
    return rec


def write_inbox(home: Home, records: list[dict[str, Any]], host: str | None = None) -> Path:
    inbox = home.state_dir / "inbox"
    inbox.mkdir(parents=True, exist_ok=True)
    path = inbox / f"{host or home.host}.jsonl"
    with path.open("a") as f:
        for rec in records:
            # Compact, as the watcher writes it (sender.InboxTarget): `notifyd
            # jobs` counts a long history from these bytes without parsing.
            f.write(json.dumps(rec, separators=(",", ":")) + "\n")
    return path


def write_state(home: Home, **fields: Any) -> None:
    home.state_dir.mkdir(parents=True, exist_ok=True)
    (home.state_dir / "watcher-state.json").write_text(json.dumps({"v": 1, **fields}))


def running_job(host: str, pid: int, title: str, started: float, group: str | None = None
                ) -> dict[str, Any]:
    return {"host": host, "pid": pid, "title": title, "cmd": f"python {title}.py", "cwd": "/scratch",
            "start_ts": started, "user": "ana", "group": group}


def finished_by_job(home: Home, *args: str) -> dict[str, dict[str, Any]]:
    return {f["job"]: f for f in jobs_json(home, *args)["finished"]}


# --------------------------------------------------------------------------- what is shown


def test_running_jobs_on_every_host_show_title_host_pid_elapsed_and_group(home: Home) -> None:
    now = time.time()  # not the module's NOW: the suite may reach this test minutes later
    write_state(home, running={
        # 2 h 03 min 30 s: the shown minutes stay right for 29 s of a slow machine
        "node2-81234-aaaaaaaa": running_job("node2", 81234, "relax", now - 7410, group="sweep"),
        "node5-99-bbbbbbbb": running_job("node5", 99, "prep", now - 30),
    })
    code, out, _err = jobs(home)
    assert code == 0
    lines = out.splitlines()
    assert lines[0] == "running: 2 jobs"
    assert lines[1].split() == ["TITLE", "HOST", "PID", "ELAPSED", "GROUP"]
    # Oldest first, newest last.
    assert lines[2].split()[:3] == ["relax", "node2", "81234"]
    assert "2 h 03 min" in lines[2] and lines[2].endswith("sweep")
    assert lines[3].split()[:3] == ["prep", "node5", "99"]
    doc = jobs_json(home)
    assert [r["job"] for r in doc["running"]] == ["node2-81234-aaaaaaaa", "node5-99-bbbbbbbb"]
    assert doc["running"][0]["group"] == "sweep"
    assert 7410 <= doc["running"][0]["elapsed"] < 7500


def test_finished_jobs_show_local_end_time_outcome_duration_peak_rss_and_delivery(home: Home) -> None:
    end = NOW - 3600
    write_inbox(home, [
        record("node2-1-aaaaaaaa", end + 1, info("node2", "prep", end=end)),
        record("node5-2-aaaaaaaa", end + 2, info("node5", "fit", exit=3, outcome="failed",
                                                 duration=41.0, maxrss_kb=831_488, end=end + 1),
               kind="failure"),
        record("node5-3-aaaaaaaa", end + 3, info("node5", "big", exit=None, signal=9, outcome="failed",
                                                 duration=90_000.0, end=end + 2), kind="failure"),
    ])
    code, out, _err = jobs(home)
    assert code == 0
    assert "running: none" in out
    assert "finished since" in out and "3 jobs, 2 failed or lost" in out
    rows = {line.split()[2]: line for line in out.splitlines() if line[:2].isdigit()}
    # TZ=UTC in the test home: the end time is shown in local time.
    assert rows["prep"].startswith(time.strftime("%m-%d %H:%M", time.gmtime(end)))
    assert " ok " in rows["prep"] and "12 min 03 s" in rows["prep"] and "1.2 GiB" in rows["prep"]
    assert "exit 3" in rows["fit"] and "41 s" in rows["fit"] and "812.0 MiB" in rows["fit"]
    assert "killed by SIGKILL" in rows["big"] and "1 d 01 h" in rows["big"]
    assert all(line.rstrip().endswith("delivered") for line in rows.values())


def test_lost_job_is_listed_as_lost_and_its_later_finish_replaces_it(home: Home) -> None:
    write_inbox(home, [
        record("node5-1-aaaaaaaa", NOW - 900, info(title="wander", outcome="lost", exit=None,
                                                   duration=None), suffix="lost", kind="failure"),
        record("node5-2-aaaaaaaa", NOW - 800, info(title="late", outcome="lost", exit=None,
                                                   duration=None), suffix="lost", kind="failure"),
        record("node5-2-aaaaaaaa", NOW - 700, info(title="late", exit=0, end=NOW - 700)),
    ])
    found = finished_by_job(home)
    assert len(found) == 2
    assert found["node5-1-aaaaaaaa"]["outcome"] == "lost"
    assert found["node5-1-aaaaaaaa"]["outcome_text"] == "lost"
    assert found["node5-2-aaaaaaaa"]["outcome"] == "ok"
    assert " lost " in jobs(home)[1]


def test_job_the_watcher_just_judged_lost_is_listed_before_its_inbox_record_exists(home: Home) -> None:
    job = "node3-7-aaaaaaaa"
    write_state(home, lost={job: {**running_job("node3", 7, "vanished", NOW - 4000),
                                  "reason": "node3 rebooted", "at": NOW - 20}})
    found = finished_by_job(home)[job]
    assert (found["title"], found["host"], found["outcome"]) == ("vanished", "node3", "lost")
    assert found["end_ts"] == NOW - 20


def test_records_from_before_job_info_fall_back_to_kind_title_and_time(home: Home) -> None:
    write_inbox(home, [
        record("node7-12-abcdef01", NOW - 60, kind="failure", title="❌ old failed on node7 (exit 1)"),
        record("node7-13-abcdef01", NOW - 50, suffix="lost", kind="failure", title="❓ gone lost on node7"),
    ])
    found = finished_by_job(home)
    old, gone = found["node7-12-abcdef01"], found["node7-13-abcdef01"]
    assert (old["title"], old["host"], old["outcome"]) == ("❌ old failed on node7 (exit 1)", "node7",
                                                          "failed")
    assert old["end_ts"] == NOW - 60 and old["duration"] is None
    assert gone["outcome"] == "lost"


def test_digests_and_group_summaries_in_the_inbox_are_not_listed_as_jobs(home: Home) -> None:
    write_inbox(home, [
        record("node5-1-aaaaaaaa", NOW - 90, info(title="alone", group="solo")),
        {"id": "digest:k:1", "job": "", "jobs": ["a", "b"], "time": NOW - 80, "kind": "success",
         "title": "2 jobs finished", "body": ""},
        # A one-job group's summary names that job but is not its record.
        {"id": "group:solo:1", "job": "node5-1-aaaaaaaa", "jobs": ["node5-1-aaaaaaaa"],
         "time": NOW - 70, "kind": "success", "title": "📦 group solo done", "body": ""},
    ])
    finished = jobs_json(home)["finished"]
    assert [(f["job"], f["title"]) for f in finished] == [("node5-1-aaaaaaaa", "alone")]


# --------------------------------------------------------------------------- delivery


def test_job_with_a_push_still_to_go_is_pending_and_delivered_once_journalled(home: Home) -> None:
    job, key = "node5-1-aaaaaaaa", configured_key(home)
    write_inbox(home, [record(job, NOW - 60, info())])
    write_state(home, outbox=[{"id": f"{job}:finish", "job": job, "jobs": [job], "title": "t", "body": "",
                               "kind": "success", "created": NOW - 61, "targets": [key]}])
    assert finished_by_job(home)[job]["delivery"] == "pending"
    journal = home.state_dir / "journal"
    journal.mkdir()
    (journal / "node1.log").write_text(f"{job}:finish {key}\n")
    assert finished_by_job(home)[job]["delivery"] == "delivered"


def test_job_waiting_only_for_a_url_no_longer_configured_is_delivered(home: Home) -> None:
    job = "node5-1-aaaaaaaa"
    configured_key(home)
    write_inbox(home, [record(job, NOW - 60, info())])
    write_state(home, outbox=[{"id": f"{job}:finish", "job": job, "jobs": [job], "title": "t", "body": "",
                               "kind": "success", "created": NOW - 61, "targets": [URL_KEY]}])
    assert finished_by_job(home)[job]["delivery"] == "delivered"


def test_job_not_yet_in_the_inbox_is_listed_from_the_outbox(home: Home) -> None:
    job, key = "node5-1-aaaaaaaa", configured_key(home)
    write_state(home, outbox=[{"id": f"{job}:finish", "job": job, "jobs": [job], "title": "t", "body": "",
                               "kind": "failure", "created": NOW - 5, "targets": ["inbox", key],
                               "info": info(title="fresh", exit=2, outcome="failed", end=NOW - 5)}])
    found = finished_by_job(home)[job]
    assert (found["title"], found["outcome_text"], found["delivery"]) == ("fresh", "exit 2", "pending")


def test_job_waiting_for_a_digest_is_pending_digest(home: Home) -> None:
    in_inbox, batched_only = "node5-1-aaaaaaaa", "node5-2-aaaaaaaa"
    write_inbox(home, [record(in_inbox, NOW - 20, info(title="burst1"))])
    write_state(home, batches={URL_KEY: {"opened": NOW - 20, "last": NOW - 10, "jobs": [
        {"job": in_inbox, "title": "burst1", "host": "node5", "exit": 0, "ts": NOW - 20},
        {"job": batched_only, "title": "burst2", "host": "node5", "exit": 1, "ts": NOW - 10,
         "duration": 3.0},
    ]}})
    found = finished_by_job(home)
    assert found[in_inbox]["delivery"] == "pending (digest)"
    assert found[batched_only]["delivery"] == "pending (digest)"
    assert found[batched_only]["outcome_text"] == "exit 1"
    assert "pending (digest)" in jobs(home)[1]


def test_job_kept_from_every_url_by_its_filters_is_silent(home: Home) -> None:
    job = "node5-1-aaaaaaaa"
    write_inbox(home, [record(job, NOW - 20, info(title="quiet", silent=True))])
    assert finished_by_job(home)[job]["delivery"] == "silent"
    assert jobs(home)[1].splitlines()[-1].endswith("silent")


def test_job_of_an_open_group_waits_for_the_group_summary(home: Home) -> None:
    job = "node5-1-aaaaaaaa"
    write_inbox(home, [record(job, NOW - 20, info(title="member", group="sweep"))])
    write_state(home, groups={"sweep": {"opened": NOW - 30, "changed": NOW - 20, "jobs": {
        job: {"title": "member", "outcome": "ok"}, "node5-2-aaaaaaaa": None}}})
    assert finished_by_job(home)[job]["delivery"] == "pending (group)"


def test_given_up_deliveries_are_failed_for_single_messages_and_digests(home: Home) -> None:
    single, in_digest_a, in_digest_b, fine = (f"node5-{i}-aaaaaaaa" for i in range(1, 5))
    write_inbox(home, [record(j, NOW - 100 + i, info(title=f"t{i}")) for i, j in
                       enumerate([single, in_digest_a, in_digest_b, fine])])
    write_state(home, failed=[
        {"id": f"{single}:finish", "job": single, "failed_at": NOW - 10, "targets": [URL_KEY]},
        {"id": "digest:x:1", "job": "", "jobs": [in_digest_a, in_digest_b], "failed_at": NOW - 10},
    ])
    found = finished_by_job(home)
    assert [found[j]["delivery"] for j in (single, in_digest_a, in_digest_b, fine)] == [
        "failed", "failed", "failed", "delivered"]


def test_without_a_state_file_nothing_runs_and_nothing_is_pending(home: Home) -> None:
    job = "node5-1-aaaaaaaa"
    write_inbox(home, [record(job, NOW - 60, info())])
    assert not (home.state_dir / "watcher-state.json").exists()
    doc = jobs_json(home)
    assert doc["running"] == []
    assert [f["delivery"] for f in doc["finished"]] == ["delivered"]
    code, out, err = jobs(home)
    assert (code, err) == (0, "")
    assert out.startswith("running: none\n")


def test_nothing_at_all_says_so_and_how_to_look_further_back(home: Home) -> None:
    code, out, _err = jobs(home)
    assert code == 0
    assert "running: none" in out
    assert "none (--since 7d looks further back)" in out


def test_broken_state_file_is_named_on_stderr_and_the_inbox_still_lists(home: Home) -> None:
    job = "node5-1-aaaaaaaa"
    write_inbox(home, [record(job, NOW - 60, info(title="survivor"))])
    (home.state_dir / "watcher-state.json").write_text("{not json")
    code, out, err = jobs(home)
    assert code == 0
    assert "watcher-state.json" in err and "Traceback" not in err
    assert "survivor" in out


# --------------------------------------------------------------------------- options


def test_failed_option_lists_only_failed_and_lost_jobs(home: Home) -> None:
    write_state(home, running={"node5-9-cccccccc": running_job("node5", 9, "still", NOW - 5)})
    write_inbox(home, [
        record("node5-1-aaaaaaaa", NOW - 90, info(title="fine")),
        record("node5-2-aaaaaaaa", NOW - 80, info(title="broke", exit=1, outcome="failed")),
        record("node5-3-aaaaaaaa", NOW - 70, info(title="gone", exit=None, outcome="lost"), suffix="lost"),
        record("node5-4-aaaaaaaa", NOW - 60, info(title="killed", exit=None, signal=15, outcome="failed")),
    ])
    doc = jobs_json(home, "--failed")
    assert [f["title"] for f in doc["finished"]] == ["broke", "gone", "killed"]
    assert doc["running"] == []
    code, out, _err = jobs(home, "--failed")
    assert code == 0 and "fine" not in out and "still" not in out
    assert "failed or lost since" in out


def test_since_option_leaves_out_jobs_that_ended_earlier(home: Home) -> None:
    write_inbox(home, [
        record("node5-1-aaaaaaaa", NOW - 3 * 86400, info(title="three-days")),
        record("node5-2-aaaaaaaa", NOW - 30 * 3600, info(title="thirty-hours")),
        record("node5-3-aaaaaaaa", NOW - 3600, info(title="an-hour")),
    ])
    assert [f["title"] for f in jobs_json(home)["finished"]] == ["an-hour"]  # default 1d
    assert [f["title"] for f in jobs_json(home, "--since", "2d")["finished"]] == [
        "thirty-hours", "an-hour"]
    assert [f["title"] for f in jobs_json(home, "--since", "90m")["finished"]] == ["an-hour"]


def test_bad_since_is_a_one_line_usage_error(home: Home) -> None:
    code, out, err = jobs(home, "--since", "yesterday")
    assert code == 2
    assert out == ""
    assert err.count("\n") == 1
    assert err.startswith("notifyd: --since 'yesterday' is not a duration")


def test_group_option_keeps_only_that_groups_running_and_finished_jobs(home: Home) -> None:
    write_state(home, running={
        "node5-8-cccccccc": running_job("node5", 8, "member-running", NOW - 5, group="sweep"),
        "node5-9-cccccccc": running_job("node5", 9, "other-running", NOW - 5),
    })
    write_inbox(home, [
        record("node5-1-aaaaaaaa", NOW - 90, info(title="member-done", group="sweep")),
        record("node5-2-aaaaaaaa", NOW - 80, info(title="other-done", group="other")),
    ])
    doc = jobs_json(home, "--group", "sweep")
    assert [r["title"] for r in doc["running"]] == ["member-running"]
    assert [f["title"] for f in doc["finished"]] == ["member-done"]
    out = jobs(home, "--group", "sweep")[1]
    assert "running in group sweep: 1 job" in out and "other" not in out


def test_limit_keeps_the_newest_last_and_says_how_many_are_left_out(home: Home) -> None:
    write_inbox(home, [record(f"node5-{i}-aaaaaaaa", NOW - 1000 + i, info(title=f"job{i:02d}"))
                       for i in range(20)])
    assert [f["title"] for f in jobs_json(home, "-n", "3")["finished"]] == ["job17", "job18", "job19"]
    assert len(jobs_json(home, "--limit", "15")["finished"]) == 15
    out = jobs(home, "-n", "3")[1]
    assert "finished since" in out and "20 jobs" in out
    assert "(17 earlier not shown; -n 20 shows them)" in out
    assert out.index("job18") < out.index("job19")


def test_json_is_one_object_with_running_and_finished_lists(home: Home) -> None:
    write_state(home, running={"node5-9-cccccccc": running_job("node5", 9, "still", NOW - 5)})
    write_inbox(home, [record("node5-1-aaaaaaaa", NOW - 90, info(title="done", group="g"))])
    doc = jobs_json(home)
    assert set(doc) == {"running", "finished"}
    # slurm_job, state, reason (running) and slurm_state, cpu_eff, mem_eff (finished) are
    # empty for a job outside SLURM (tests/slurm/test_views.py fills them).
    assert set(doc["running"][0]) == {"job", "title", "host", "pid", "user", "cwd", "group",
                                      "start_ts", "elapsed", "slurm_job", "state", "reason", "source"}
    assert doc["running"][0]["source"] == "pingch"
    assert doc["finished"][0] == {
        "job": "node5-1-aaaaaaaa", "title": "done", "host": "node5", "pid": 4242, "group": "g",
        "outcome": "ok", "outcome_text": "ok", "exit": 0, "signal": None, "duration": 723.0,
        "maxrss_kb": 1_258_291, "start_ts": NOW - 600 - 723.0, "end_ts": NOW - 600,
        "delivery": "delivered", "slurm_job": "", "slurm_state": "", "cpu_eff": None, "mem_eff": None}


# --------------------------------------------------------------------------- the old bash function


def legacy_cursor(open_starts: dict[str, Any]) -> dict[str, Any]:
    """The legacy source's cursor as watcher/sources/legacy.py saves it."""
    return {LEGACY_CURSOR: {"offset": 0, "open": open_starts, "history_until": 0}}


def test_legacy_jobs_still_running_are_listed_beside_pingch_jobs(home: Home) -> None:
    write_state(home, running={"node5-9-cccccccc": running_job("node5", 9, "new", NOW - 5)},
                cursors=legacy_cursor({"4242@node2": {"title": "python", "ts": NOW - 7200}}))
    doc = jobs_json(home)
    assert [(r["title"], r["source"]) for r in doc["running"]] == [("python", "pingchilling"),
                                                                   ("new", "pingch")]
    assert doc["running"][0]["job"] == f"legacy-node2-4242-{int(NOW - 7200)}"  # as its finish will be
    out = jobs(home)[1]
    assert "running: 2 jobs" in out and "python (~/.pingchilling)" in out
    out = home.notifyd("status")[1]
    assert "jobs:       2 running (1 from ~/.pingchilling)" in out
    assert json.loads(home.notifyd("status", "--json")[1])["running_jobs"] == 2


def test_legacy_open_starts_of_the_wrong_shape_are_left_out(home: Home) -> None:
    write_state(home, cursors=legacy_cursor({"4242@node2": "not a dict", "x@node2": {"ts": NOW},
                                             "7@": {"ts": NOW}, "8@node3": {"title": 5, "ts": "soon"}}))
    code, out, err = jobs(home, "--json")
    assert code == 0, err
    assert [(r["title"], r["start_ts"]) for r in json.loads(out)["running"]] == [("pid 8", None)]


def test_a_job_finished_in_another_year_shows_the_year(home: Home) -> None:
    last_year = time.mktime((time.localtime(NOW).tm_year - 1, 12, 30, 9, 12, 0, 0, 0, -1))
    write_inbox(home, [record("node5-1-aaaaaaaa", last_year, info(title="old", end=last_year)),
                       record("node5-2-aaaaaaaa", NOW - 60, info(title="new", end=NOW - 60))])
    out = jobs(home, "--since", "800d")[1]
    old_row = next(line for line in out.splitlines() if " old " in line)
    assert old_row.startswith(f"{time.localtime(NOW).tm_year - 1}-12-30 09:12")
    new_row = next(line for line in out.splitlines() if " new " in line)
    assert new_row.startswith(time.strftime("%m-%d %H:%M", time.localtime(NOW - 60)))


def test_table_fits_80_columns_when_not_a_terminal(home: Home) -> None:
    long_title = "a-very-long-job-title-" * 6
    write_inbox(home, [
        record("node5-1-aaaaaaaa", NOW - 90, info(title=long_title, exit=None, signal=9,
                                                  outcome="failed", duration=90_000.0)),
        record("node5-2-aaaaaaaa", NOW - 80, info(title="short")),
    ])
    write_state(home, running={"node5-9-cccccccc": running_job("node5", 9, long_title, NOW - 5,
                                                                group="g" * 40)},
                batches={URL_KEY: {"opened": NOW, "last": NOW, "jobs": [{"job": "node5-1-aaaaaaaa"}]}})
    env = {k: v for k, v in home.env.items() if k != "COLUMNS"}
    out = subprocess.run([NOTIFYD, "jobs"], env=env, capture_output=True,
                         text=True, timeout=60).stdout
    assert max(len(line) for line in out.splitlines()) <= 80
    assert "killed by SIGKILL" in out and "pending (digest)" in out and "short" in out
    assert "a-very-long-jo…" in out  # the title gives way, cut visibly


def test_job_supplied_control_characters_stay_on_one_line(home: Home) -> None:
    write_inbox(home, [record("node5-1-aaaaaaaa", NOW - 90, info(title="two\nlines\x1b[31m"))])
    out = jobs(home)[1]
    assert "two\\nlines\\x1b[31m" in out
    assert "\x1b" not in out


# --------------------------------------------------------------------------- a long history


def test_long_history_lists_the_newest_jobs_with_since_1h(home: Home) -> None:
    """200,000 records, one a minute: --since 1h lists exactly the last hour's 60."""
    total = 200_000
    inbox = home.state_dir / "inbox"
    inbox.mkdir(parents=True)
    # From now, not the module's NOW (the suite may reach this test minutes
    # later): the hour's edge falls 30 s between two records.
    newest = time.time() - 30
    with (inbox / f"{home.host}.jsonl").open("w") as f:
        for i in range(total):
            when = newest - (total - 1 - i) * 60
            job = f"node{i % 8}-{i}-{i:08x}"
            rec = record(job, when, info(f"node{i % 8}", f"job{i}", end=when))
            f.write(json.dumps(rec, separators=(",", ":")) + "\n")
    doc = jobs_json(home, "--since", "1h", "-n", "1000")
    assert [f["title"] for f in doc["finished"]] == [f"job{i}" for i in range(total - 60, total)]
    default = jobs_json(home, "--since", "1h")["finished"]
    assert [f["title"] for f in default] == [f"job{i}" for i in range(total - 50, total)]


# --------------------------------------------------------------------------- end to end


@dataclass
class RealRun:
    """Two finished jobs and one running, through a real watcher; `notifyd jobs` as it saw them."""

    home: Home
    doc: dict[str, Any]
    table: str

    def finished(self, title: str) -> dict[str, Any]:
        return next(f for f in self.doc["finished"] if f["title"] == title)


@pytest.fixture(scope="module")
def real_run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RealRun]:
    with serve_receiver() as receiver:
        home = new_home(tmp_path_factory.mktemp("jobs") / "home")
        home.write_config(fast_config(receiver.url))
        w = WatcherProc(home).start()
        long_job = None
        try:
            assert home.pingch("-t", "e2e-ok", "true").returncode == 0
            assert home.pingch("-t", "e2e-bad", "sh", "-c", "exit 3").returncode == 3
            long_job = subprocess.Popen([PINGCH, "-t", "e2e-running", "sleep", "60"], env=home.env)
            receiver.wait_for(2)

            def listed() -> dict[str, Any] | None:
                doc = jobs_json(home)
                titles = {f["title"] for f in doc["finished"] if f["delivery"] == "delivered"}
                running = [r["title"] for r in doc["running"]]
                return doc if {"e2e-ok", "e2e-bad"} <= titles and running == ["e2e-running"] else None

            doc = wait_until(listed, 20, "both finished jobs delivered and the running one listed")
            code, out, err = jobs(home)
            assert code == 0, err
            yield RealRun(home, doc, out)
        finally:
            if long_job is not None:
                long_job.terminate()
                long_job.wait(timeout=10)
            w.stop()
            home.kill_watchers()


def test_a_real_success_is_listed_as_ok_with_its_duration_and_memory(real_run: RealRun) -> None:
    good = real_run.finished("e2e-ok")
    assert (good["outcome"], good["outcome_text"]) == ("ok", "ok")
    assert good["duration"] is not None and good["maxrss_kb"] > 0


def test_a_real_failure_is_listed_with_its_exit_code(real_run: RealRun) -> None:
    bad = real_run.finished("e2e-bad")
    assert (bad["outcome"], bad["outcome_text"]) == ("failed", "exit 3")


def test_real_finished_jobs_carry_the_host_they_ran_on(real_run: RealRun) -> None:
    assert real_run.finished("e2e-ok")["host"] == real_run.finished("e2e-bad")["host"] == real_run.home.host


def test_a_real_running_job_is_listed_with_its_host_and_pid(real_run: RealRun) -> None:
    (running,) = real_run.doc["running"]
    assert running["host"] == real_run.home.host and running["pid"] is not None


def test_the_table_shows_running_and_finished_jobs(real_run: RealRun) -> None:
    assert "e2e-running" in real_run.table and "e2e-bad" in real_run.table


def test_counts_of_a_cut_list_match_the_whole_window(home: Home) -> None:
    """Only the shown rows are parsed; the header's counts still cover every job in the window."""
    now = time.time()
    recs = []
    for i in range(10):
        bad = i in (1, 4, 6)
        recs.append(record(f"node1-{i}-0000000{i}", now - 1000 + i * 10,
                           info("node1", f"j{i}", exit=3 if bad else 0,
                                outcome="failed" if bad else "ok", end=now - 1000 + i * 10)))
    # One job reported lost, then finished after all: it counts once, as its finish.
    recs.insert(3, record("node1-99-00000099", now - 975, info("node1", "back", exit=None,
                                                              outcome="lost", end=now - 975),
                          suffix="lost", kind="failure"))
    recs.append(record("node1-99-00000099", now - 800, info("node1", "back", end=now - 800)))
    # One lost for good.
    recs.append(record("node1-98-00000098", now - 700, info("node1", "gone", exit=None,
                                                           outcome="lost", end=now - 700),
                       suffix="lost", kind="failure"))
    write_inbox(home, recs)
    code, out, err = jobs(home, "-n", "2")
    assert code == 0, err
    assert "12 jobs, 4 failed or lost" in out  # 10 + back + gone; failures 1, 4, 6 and gone
    assert "(10 earlier not shown; -n 12 shows them)" in out
    code, out, err = jobs(home, "-n", "100")
    assert "12 jobs, 4 failed or lost" in out
    code, out, err = jobs(home, "--failed", "-n", "1")
    assert "failed or lost since" in out and ": 4 jobs" in out
