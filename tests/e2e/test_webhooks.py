"""Generic webhooks: a real job, a real watcher, and what a local HTTP server receives.

For services Apprise has no plugin for, a lab points notifyd at its own
endpoint: json:// posts a JSON object, form:// a form; both carry the
fields version, title, message and type.
"""

from __future__ import annotations

from urllib.parse import parse_qs

from harness import Home, Receiver, WatcherProc, fast_config, wait_until


def test_json_webhook_gets_version_title_message_and_type(
        home: Home, receiver: Receiver, watcher: WatcherProc) -> None:
    assert home.pingch("-t", "relax", "bash -c 'exit 3'").returncode == 3

    (body,) = receiver.wait_for(1)
    assert set(body) >= {"version", "title", "message", "type"}
    assert body["version"] == "1.0"
    assert body["title"] == f"❌ relax failed on {home.host} (exit 3)"
    assert "exit 3" in body["message"]
    assert home.host in body["message"]
    assert body["type"] == "failure"
    assert receiver.posts[0]["headers"]["Content-Type"] == "application/json"


def test_form_webhook_gets_the_same_fields_form_encoded(home: Home, receiver: Receiver) -> None:
    home.write_config(fast_config(f"form://127.0.0.1:{receiver.port}/hook"))
    w = WatcherProc(home).start()
    try:
        assert home.pingch("-t", "relax", "true").returncode == 0
        wait_until(lambda: receiver.posts, 20, "a form at the receiver")
    finally:
        w.stop()

    (post,) = receiver.posts
    assert post["headers"]["Content-Type"] == "application/x-www-form-urlencoded"
    form = {k: v[0] for k, v in parse_qs(post["raw"].decode(), keep_blank_values=True).items()}
    assert set(form) >= {"version", "title", "message", "type"}
    assert form["version"] == "1.0"
    assert form["title"] == f"✅ relax finished on {home.host}"
    assert "exit 0" in form["message"]
    assert home.host in form["message"]
    assert form["type"] == "success"
