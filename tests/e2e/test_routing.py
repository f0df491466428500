"""Who is told what: digests for bursts, rate budgets, filters, tag routes, groups (notify/routing.py).

Real pingch jobs, a real watcher, Apprise's json:// to the local receiver.
Each receiver path stands for one URL: /all (untagged), /phone (tagged
`failure`), /lab (tagged `digest`).
"""

from __future__ import annotations

import json
import re
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from harness import FAST, PINGCH, Home, Receiver, WatcherProc, new_home, serve_receiver, wait_until


def config(receiver: Receiver, notify: str = "", **routes: str) -> str:
    base = f"json://127.0.0.1:{receiver.port}"
    urls = "".join(f"    {tag}{base}/{path}\n" for path, tag in
                   (routes or {"all": ""}).items())
    return f"[notify]\nurls =\n{urls}{notify}\n" + FAST


def posts(receiver: Receiver, path: str) -> list[dict[str, Any]]:
    """The JSON bodies the URL ending in /PATH received."""
    with receiver.lock:
        return [p["json"] for p in receiver.posts if p["path"] == f"/{path}" and p["json"]]


def state(home: Home) -> dict[str, Any]:
    return json.loads((home.state_dir / "watcher-state.json").read_text())


def settled(home: Home) -> bool:
    """Nothing left to send: no batch waiting, the outbox empty."""
    s = state(home)
    return not s["outbox"] and not s["batches"] and not s["groups"]


def inbox_jobs(home: Home) -> list[str]:
    out = []
    for path in (home.state_dir / "inbox").glob("*.jsonl"):
        out += [json.loads(line)["job"] for line in path.read_text().splitlines()]
    return [j for j in out if j]


def run_many(home: Home, count: int, prefix: str, command: str = "true") -> None:
    script = f'for i in $(seq 1 {count}); do "{PINGCH}" -t {prefix}-$i {command}; done'
    subprocess.run(["bash", "-c", script], env=home.env, check=False, timeout=300)


def told_in(body: dict[str, Any]) -> int:
    """How many jobs one message tells of: a digest says it in its title."""
    m = re.match(r"(\d+) jobs finished", str(body["title"]))
    return int(m.group(1)) if m else 1


# -- bursts --------------------------------------------------------------------------------------
@dataclass
class Burst:
    """What 400 real jobs through a real watcher left: messages, inbox, `notifyd jobs --json`."""

    bodies: list[dict[str, Any]]
    inbox: list[str]
    listed: list[dict[str, Any]]


@pytest.fixture(scope="module")
def burst(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Burst]:
    """400 jobs, rate 20/min, 5 single messages before digests, 2,000 characters a message."""
    with serve_receiver() as receiver:
        home = new_home(tmp_path_factory.mktemp("burst") / "home")
        home.write_config(config(receiver, "rate = 20/min\ndigest_after = 5\nmax_length = 2000\n"
                                           "digest_quiet = 1s\n"))
        w = WatcherProc(home).start()
        try:
            run_many(home, 400, "burst")
            wait_until(lambda: len(inbox_jobs(home)) >= 400, 60, "400 jobs in the inbox")
            wait_until(lambda: settled(home), 60, "every message sent")
            code, out, err = home.notifyd("jobs", "--json", "--since", "1h", "-n", "1000")
            assert code == 0, err
            yield Burst(posts(receiver, "all"), inbox_jobs(home), json.loads(out)["finished"])
        finally:
            w.stop()
            home.kill_watchers()


def test_a_burst_stays_within_the_rate_budget(burst: Burst) -> None:
    assert len(burst.bodies) <= 20  # 20 a minute, and the burst took well under one


def test_a_burst_starts_with_digest_after_single_messages(burst: Burst) -> None:
    singles = [b for b in burst.bodies if "jobs finished" not in b["title"]]
    assert len(singles) == 5


def test_every_job_of_a_burst_is_told_in_a_digest_or_its_own_message(burst: Burst) -> None:
    assert sum(told_in(b) for b in burst.bodies) == 400


def test_no_message_of_a_burst_is_over_max_length(burst: Burst) -> None:
    assert all(len(b["title"]) + len(b["message"]) <= 2000 for b in burst.bodies)


def test_a_digest_cut_to_fit_says_where_the_rest_is(burst: Burst) -> None:
    digest = next(b for b in burst.bodies if "jobs finished" in b["title"])
    assert "notifyd jobs" in digest["message"]


def test_every_job_of_a_burst_is_in_the_inbox_once(burst: Burst) -> None:
    assert len(burst.inbox) == len(set(burst.inbox)) == 400


def test_notifyd_jobs_lists_every_job_of_a_burst_as_delivered(burst: Burst) -> None:
    # Nothing lost from `notifyd jobs`, though the digest could not name them all.
    assert sorted(j["title"] for j in burst.listed) == sorted(f"burst-{i}" for i in range(1, 401))
    assert {j["delivery"] for j in burst.listed} == {"delivered"}


def test_a_job_alone_in_a_digest_batch_is_told_with_its_whole_message(home: Home,
                                                                     receiver: Receiver) -> None:
    # The default digest_after (3) and window (60 s): the fourth job waits in
    # the batch, and goes out alone once nothing has ended for a second.
    home.write_config(config(receiver, "digest_quiet = 1s\n"))
    w = WatcherProc(home).start()
    try:
        run_many(home, 3, "warmup")
        script = "echo 'loss 0.0123' > run.log; exit 3"
        done = home.pingch("-t", "fit", "--tail", "run.log", "bash", "-c", script, cwd=home.root)
        assert done.returncode == 3
        wait_until(lambda: len(posts(receiver, "all")) >= 4, 20, "four messages")
        wait_until(lambda: settled(home), 20, "every message sent")
        last = posts(receiver, "all")[-1]
        assert last["title"] == f"❌ fit failed on {home.host} (exit 3)"
        for words in (f"in `{home.root}`", "peak RSS", "$ bash -c", "last lines of `run.log`:",
                      "loss 0.0123"):
            assert words in last["message"]
    finally:
        w.stop()


def test_the_budget_holds_across_a_watcher_restart(home: Home, receiver: Receiver) -> None:
    home.write_config(config(receiver, "rate = 3/min\ndigest_after = 100\n"))
    w = WatcherProc(home).start()
    try:
        run_many(home, 5, "slow")
        receiver.wait_for(3, timeout=20)
        time.sleep(1.5)
        assert len(posts(receiver, "all")) == 3  # the other 2 wait for the budget (1 per 20 s)
    finally:
        w.stop()
    w = WatcherProc(home).start()
    try:
        time.sleep(2)
        assert len(posts(receiver, "all")) == 3  # a new watcher inherits the spent budget
        assert len(state(home)["outbox"]) == 2  # nothing dropped
    finally:
        w.stop()


# -- filters and routes --------------------------------------------------------------------------
def test_tags_route_failures_to_the_phone_and_digests_to_the_lab(home: Home,
                                                                receiver: Receiver) -> None:
    home.write_config(config(receiver, "digest_quiet = 1s\n",
                             all="", phone="failure=", lab="digest="))
    w = WatcherProc(home).start()
    try:
        assert home.pingch("-t", "good", "true").returncode == 0
        assert home.pingch("-t", "bad", "false").returncode == 1
        wait_until(lambda: len(posts(receiver, "lab")) >= 1 and len(posts(receiver, "all")) >= 2,
                   20, "the messages")
        wait_until(lambda: settled(home), 20, "every message sent")
        assert sorted(b["title"].split()[1] for b in posts(receiver, "all")) == ["bad", "good"]
        assert [b["title"].split()[1] for b in posts(receiver, "phone")] == ["bad"]
        (lab,) = posts(receiver, "lab")
        assert lab["title"].startswith("2 jobs finished")
    finally:
        w.stop()


def test_on_failure_and_min_duration_keep_successes_quiet_but_in_the_inbox(
        home: Home, receiver: Receiver) -> None:
    home.write_config(config(receiver, "min_duration = 1s\n"))
    w = WatcherProc(home).start()
    try:
        assert home.pingch("-t", "quick-ok", "true").returncode == 0
        assert home.pingch("-t", "long-ok", "sleep", "1.2").returncode == 0
        assert home.pingch("-t", "quick-bad", "false").returncode == 1
        wait_until(lambda: len(inbox_jobs(home)) >= 3, 20, "3 jobs in the inbox")
        wait_until(lambda: settled(home), 20, "every message sent")
        assert sorted(b["title"].split()[1] for b in posts(receiver, "all")) == ["long-ok", "quick-bad"]
    finally:
        w.stop()
    home.write_config(config(receiver, "on = failure\n"))
    receiver.posts.clear()
    w = WatcherProc(home).start()
    try:
        assert home.pingch("-t", "ok-again", "true").returncode == 0
        assert home.pingch("-t", "bad-again", "false").returncode == 1
        wait_until(lambda: len(inbox_jobs(home)) >= 5, 20, "5 jobs in the inbox")
        wait_until(lambda: settled(home), 20, "every message sent")
        assert [b["title"].split()[1] for b in posts(receiver, "all")] == ["bad-again"]
    finally:
        w.stop()


def test_per_job_notify_overrides_the_config(home: Home, receiver: Receiver) -> None:
    home.write_config(config(receiver))
    w = WatcherProc(home).start()
    try:
        assert home.pingch("--notify", "none", "-t", "hush", "false").returncode == 1
        assert home.pingch("--notify", "failure", "-t", "fine", "true").returncode == 0
        assert home.pingch("--notify", "failure", "-t", "broke", "false").returncode == 1
        assert home.pingch("-t", "plain", "true").returncode == 0
        wait_until(lambda: len(inbox_jobs(home)) >= 4, 20, "4 jobs in the inbox")
        wait_until(lambda: settled(home), 20, "every message sent")
        assert sorted(b["title"].split()[1] for b in posts(receiver, "all")) == ["broke", "plain"]
    finally:
        w.stop()


def test_notify_start_announces_starts_to_untagged_urls(home: Home, receiver: Receiver) -> None:
    home.write_config(config(receiver, "notify_start = yes\n", all="", phone="failure="))
    w = WatcherProc(home).start()
    try:
        assert home.pingch("-t", "begun", "true").returncode == 0
        wait_until(lambda: len(posts(receiver, "all")) >= 2, 20, "start and finish")
        titles = [b["title"] for b in posts(receiver, "all")]
        assert any("begun started" in t for t in titles)
        assert posts(receiver, "phone") == []
    finally:
        w.stop()


# -- groups --------------------------------------------------------------------------------------
def test_a_group_is_one_message_when_its_last_job_ends(home: Home, receiver: Receiver) -> None:
    home.write_config(config(receiver, "group_wait = 1s\n"))
    w = WatcherProc(home).start()
    try:
        jobs = [subprocess.Popen([PINGCH, "-g", "scan", "-t", f"scan-{i}", "sleep", str(0.5 + i * 0.3)],
                                 env=home.env) for i in range(3)]
        bad = subprocess.Popen([PINGCH, "-g", "scan", "-t", "scan-bad", "bash", "-c", "sleep 0.4; exit 3"],
                               env=home.env)
        assert [p.wait(timeout=30) for p in jobs] == [0, 0, 0] and bad.wait(timeout=30) == 3
        wait_until(lambda: len(posts(receiver, "all")) >= 1, 20, "the group's message")
        time.sleep(1.5)
        (summary,) = posts(receiver, "all")
        assert "group scan" in summary["title"] and "4 jobs" in summary["title"]
        assert "3 ok" in summary["title"] and "1 failed" in summary["title"]
        assert "scan-bad" in summary["message"]
    finally:
        w.stop()
