"""Failures users can act on: a refused token is failed at once and said so; a hiccup is retried.

The local webhook answers what each test sets (conftest.Receiver.status).
"""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
from harness import Home, Receiver, WatcherProc, fast_config, wait_until


def saved(home: Home) -> dict[str, Any]:
    path = home.state_dir / "watcher-state.json"
    return json.loads(path.read_text()) if path.exists() else {"failed": [], "outbox": []}


@pytest.mark.parametrize("status", [401, 403, 404])
def test_a_refused_url_is_failed_once_not_retried_and_shown_by_status_and_jobs(
        home: Home, receiver: Receiver, status: int) -> None:
    receiver.status = status
    home.write_config(fast_config(receiver.url))  # retry_initial 0.3 s: a retry would show quickly
    w = WatcherProc(home).start()
    try:
        assert home.pingch("-t", "refused", "true").returncode == 0
        wait_until(lambda: saved(home)["failed"], 20, "the delivery to be failed")
        time.sleep(2)  # several retry periods
        assert len(receiver.posts) == 1  # tried once, never again
        (failed,) = saved(home)["failed"]
        assert failed["status"] == status and "refused" in failed["title"]
        assert saved(home)["outbox"] == []
        code, out, _ = home.notifyd("status")
        assert code == 0
        assert f"failed: ✅ refused finished on {home.host} → json://127.0.0.1:{receiver.port}/****" in out
        assert f"error={status}" in out
        code, out, _ = home.notifyd("jobs", "--json")
        (job,) = json.loads(out)["finished"]
        assert job["delivery"] == "failed"
    finally:
        w.stop()


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
