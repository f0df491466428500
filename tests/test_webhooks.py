"""Generic webhooks: a real job, a real watcher, and what a local HTTP server receives.

For services Apprise has no plugin for, a lab points notifyd at its own
endpoint: json:// posts a JSON object, form:// a form; both carry the
fields version, title, message and type.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs

import pytest
from conftest import Home, Receiver, WatcherProc, fast_config, wait_until


class FormReceiver:
    """A local endpoint that records each POST's form fields (application/x-www-form-urlencoded)."""

    def __init__(self) -> None:
        self.port = 0
        self.forms: list[dict[str, str]] = []
        self.content_types: list[str] = []
        self.lock = threading.Lock()

    @property
    def url(self) -> str:
        return f"form://127.0.0.1:{self.port}/hook"

    def received(self) -> list[dict[str, str]]:
        with self.lock:
            return list(self.forms)

    def wait_for(self, count: int, timeout: float = 20.0) -> list[dict[str, str]]:
        wait_until(lambda: len(self.received()) >= count, timeout, f"{count} forms at the receiver")
        return self.received()


@pytest.fixture
def form_receiver() -> Iterator[FormReceiver]:
    rec = FormReceiver()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            raw = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            fields = {k: v[0] for k, v in parse_qs(raw.decode(), keep_blank_values=True).items()}
            with rec.lock:
                rec.content_types.append(self.headers.get("Content-Type", ""))
                rec.forms.append(fields)
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    rec.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield rec
    server.shutdown()
    server.server_close()


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


def test_form_webhook_gets_the_same_fields_form_encoded(home: Home, form_receiver: FormReceiver) -> None:
    home.write_config(fast_config(form_receiver.url))
    w = WatcherProc(home).start()
    try:
        assert home.pingch("-t", "relax", "true").returncode == 0
        (form,) = form_receiver.wait_for(1)
    finally:
        w.stop()

    assert form_receiver.content_types == ["application/x-www-form-urlencoded"]
    assert set(form) >= {"version", "title", "message", "type"}
    assert form["version"] == "1.0"
    assert form["title"] == f"✅ relax finished on {home.host}"
    assert "exit 0" in form["message"]
    assert home.host in form["message"]
    assert form["type"] == "success"
