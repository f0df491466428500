"""Failures users can act on: a refused token is failed at once and said so; a hiccup is retried.

The local webhook answers what each test sets (conftest.Receiver.status).
"""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from harness import Home, Receiver, WatcherProc, fast_config, new_home, serve_receiver, wait_until


def saved(home: Home) -> dict[str, Any]:
    path = home.state_dir / "watcher-state.json"
    return json.loads(path.read_text()) if path.exists() else {"failed": [], "outbox": []}


@dataclass
class Refused:
    """A job whose delivery the service refused with `status`, a few retry periods later."""

    status: int
    port: int
    posts: int
    saved: dict[str, Any]
    status_text: str
    listed: list[dict[str, Any]]
    host: str


@pytest.fixture(scope="module", params=[401, 403, 404])
def refused(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Refused]:
    with serve_receiver() as receiver:
        receiver.status = request.param
        home = new_home(tmp_path_factory.mktemp("refused") / "home")
        home.write_config(fast_config(receiver.url))  # retry_initial 0.3 s: a retry would show quickly
        w = WatcherProc(home).start()
        try:
            assert home.pingch("-t", "refused", "true").returncode == 0
            wait_until(lambda: saved(home)["failed"], 20, "the delivery to be failed")
            time.sleep(2)  # several retry periods
            code, status_text, _ = home.notifyd("status")
            assert code == 0
            code, out, _ = home.notifyd("jobs", "--json")
            yield Refused(request.param, receiver.port, len(receiver.posts), saved(home), status_text,
                          json.loads(out)["finished"], home.host)
        finally:
            w.stop()
            home.kill_watchers()


def test_a_refused_url_is_tried_once_and_never_again(refused: Refused) -> None:
    assert refused.posts == 1


def test_a_refused_delivery_is_kept_as_failed_with_the_services_answer(refused: Refused) -> None:
    (failed,) = refused.saved["failed"]
    assert failed["status"] == refused.status and "refused" in failed["title"]
    assert refused.saved["outbox"] == []


def test_status_names_the_failed_delivery_its_masked_url_and_the_answer(refused: Refused) -> None:
    assert (f"failed: ✅ refused finished on {refused.host} → json://127.0.0.1:{refused.port}/****"
            in refused.status_text)
    assert f"error={refused.status}" in refused.status_text


def test_notifyd_jobs_lists_the_refused_job_as_failed(refused: Refused) -> None:
    (job,) = refused.listed
    assert job["delivery"] == "failed"


def test_notify_test_says_what_the_service_answered_and_what_to_do(home: Home,
                                                                  receiver: Receiver) -> None:
    receiver.status = 401
    home.write_config(fast_config(receiver.url))
    code, out, _ = home.notifyd("test")
    assert code == 4
    assert f"FAILED  json://127.0.0.1:{receiver.port}/****" in out and "error=401" in out
    assert "refused the URL's token" in out and "does not retry" in out
    assert "hook" not in out.replace("webhook", "")  # the URL's path (its secret part) is masked


def test_a_server_error_is_retried_until_it_works_and_delivered_once(home: Home,
                                                                    receiver: Receiver) -> None:
    receiver.status = 500
    home.write_config(fast_config(receiver.url))
    w = WatcherProc(home).start()
    try:
        assert home.pingch("-t", "flaky", "true").returncode == 0
        wait_until(lambda: len(receiver.posts) >= 2, 20, "a retry")
        assert saved(home)["failed"] == []
        receiver.status = 200
        receiver.wait_for(1, timeout=20)
        time.sleep(1)
        assert len(receiver.bodies()) == 1
    finally:
        w.stop()


def test_an_attachment_gone_before_the_send_goes_without_it_and_holds_nothing_back(
        home: Home, receiver: Receiver, tmp_path: Path) -> None:
    # The file exists when the job ends, as on node2, and is not there when
    # the watcher sends, as on node5 (or deleted after the job).
    plot = tmp_path / "plot.png"
    plot.write_bytes(b"\x89PNG not really")
    home.write_config(fast_config(receiver.url))
    # No watcher yet: pingch's spawn is debounced for 15 s by a fresh mark.
    lease_dir = home.state_dir / "lease"
    lease_dir.mkdir(parents=True, mode=0o700)
    (lease_dir / f"spawn.{home.host}").touch()
    assert home.pingch("--attach", str(plot), "-t", "plotted", "true").returncode == 0
    plot.unlink()
    assert home.pingch("-t", "after", "true").returncode == 0
    w = WatcherProc(home).start()
    try:
        bodies = receiver.wait_for(2, timeout=20)
        by_title = {b["title"].split()[1]: b for b in bodies}
        assert set(by_title) == {"plotted", "after"}
        assert "could not attach" in by_title["plotted"]["message"]
        assert str(plot) in by_title["plotted"]["message"]
        assert not by_title["plotted"].get("attachments")
        time.sleep(1)
        assert saved(home)["outbox"] == [] and saved(home)["failed"] == []
    finally:
        w.stop()


def _refused_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _a_job_waits_for_a_refused_url(home: Home, receiver: Receiver, w: WatcherProc, port: int) -> None:
    """A job told to the receiver and waiting, in the outbox, for a second URL that refuses."""
    home.write_config(fast_config(receiver.url, f"json://127.0.0.1:{port}/old"))
    w.start()
    assert home.pingch("-t", "half", "true").returncode == 0
    receiver.wait_for(1)
    wait_until(lambda: saved(home)["outbox"], 20, "the delivery to the refused URL to wait")


def test_a_delivery_left_for_a_removed_url_is_named_by_status_not_pending_in_jobs_and_dropped(
        home: Home, receiver: Receiver) -> None:
    port = _refused_port()
    w = WatcherProc(home)
    try:
        _a_job_waits_for_a_refused_url(home, receiver, w, port)
        home.write_config(fast_config(receiver.url))  # the user removes the dead URL
        wait_until(lambda: "no longer configured" in home.notifyd("status")[1], 20, "status to see it")
        _code, out, _err = home.notifyd("status")
        assert ("1 delivery waits for a URL no longer configured:\n"
                f"              json://127.0.0.1:{port}/****") in out
        assert "to drop it now: notifyd drop" in out
        code, out, err = home.notifyd("jobs", "--json")
        assert code == 0 and [j["delivery"] for j in json.loads(out)["finished"]] == ["delivered"]
        assert "no longer configured" in err
        code, out, err = home.notifyd("drop")
        assert code == 0, err
        assert out == f"dropped 1 delivery waiting for json://127.0.0.1:{port}/****\n"
        assert saved(home)["outbox"] == []
        assert "no longer configured" not in home.notifyd("status")[1]
        assert len(receiver.posts) == 1  # the configured URL got its message, once
    finally:
        w.stop()


def test_notifyd_drop_with_nothing_to_drop_says_so(home: Home, receiver: Receiver) -> None:
    home.write_config(fast_config(receiver.url))
    code, out, _err = home.notifyd("drop")
    assert code == 0 and out == "nothing waits for a URL that is not configured\n"


def test_notifyd_drop_without_a_watcher_is_taken_by_the_next_one(home: Home, receiver: Receiver) -> None:
    w = WatcherProc(home)
    try:
        _a_job_waits_for_a_refused_url(home, receiver, w, _refused_port())
    finally:
        w.stop()
    home.write_config(fast_config(receiver.url))
    code, out, err = home.notifyd("drop")
    assert code == 0, err
    assert "no watcher runs now: the next one drops them when it starts" in out
    assert saved(home)["outbox"] != []
    w = WatcherProc(home).start()
    try:
        wait_until(lambda: saved(home)["outbox"] == [], 20, "the next watcher to drop it")
    finally:
        w.stop()
