"""A service that hangs holds back no other: two real local receivers, one of them never answers.

The hanging one accepts the connection, reads the request and says nothing
until Apprise gives up (its read timeout) and closes. Each URL sends on a
thread of its own (watcher/delivery.py), so every job's message reaches the
answering receiver while the first request to the hanging one still waits:
the proof is the order of events, not a time bound.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest
from harness import Home, Receiver, WatcherProc, fast_config, wait_until


@dataclass
class Silent:
    """A TCP server that takes requests and never answers; records when each connection closed."""

    port: int = 0
    opened: list[float] = field(default_factory=list)
    closed: list[float] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def url(self) -> str:
        return f"json://127.0.0.1:{self.port}/hangs"


@pytest.fixture
def silent() -> Iterator[Silent]:
    s = Silent()
    server = socket.create_server(("127.0.0.1", 0))
    s.port = server.getsockname()[1]
    stop = threading.Event()

    def hold(conn: socket.socket) -> None:
        with conn:
            conn.settimeout(0.2)
            while not stop.is_set():
                try:
                    if conn.recv(65536) == b"":
                        break  # the client gave up
                except TimeoutError:
                    continue
                except OSError:
                    break
        with s.lock:
            s.closed.append(time.monotonic())

    def accept() -> None:
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except TimeoutError:
                continue
            with s.lock:
                s.opened.append(time.monotonic())
            threading.Thread(target=hold, args=(conn,), daemon=True).start()

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield s
    stop.set()
    thread.join(timeout=5)
    server.close()


@pytest.fixture
def both(home: Home, receiver: Receiver, silent: Silent) -> Iterator[WatcherProc]:
    """A watcher with two URLs: the one that hangs first, then the one that answers."""
    home.write_config(fast_config(silent.url, receiver.url))
    w = WatcherProc(home).start()
    yield w
    w.stop()


@pytest.mark.usefixtures("both")
def test_every_message_reaches_the_answering_url_while_the_other_hangs(
        home: Home, receiver: Receiver, silent: Silent) -> None:
    assert home.pingch("-t", "first", "true").returncode == 0
    wait_until(lambda: silent.opened, 20, "the hanging service to be asked")
    # Jobs that end while the first request to the hanging URL waits.
    for n in range(3):
        assert home.pingch("-t", f"during-{n}", "true").returncode == 0
    receiver.wait_for(4, timeout=20)
    with silent.lock:
        still_waiting = not silent.closed
    titles = sorted(b["title"].split()[1] for b in receiver.bodies())
    assert titles == ["during-0", "during-1", "during-2", "first"]
    assert still_waiting, "the answering URL got its messages only after the hang ended"


def test_the_hanging_url_keeps_its_messages_and_the_lease_stays_alive(
        home: Home, receiver: Receiver, silent: Silent, both: WatcherProc) -> None:
    assert home.pingch("-t", "kept", "true").returncode == 0
    receiver.wait_for(1, timeout=20)
    wait_until(lambda: silent.closed, 30, "the hanging request to time out")
    # The watcher went on heartbeating through the hang: it still holds the lease.
    assert both.alive
    code, out, _ = home.notifyd("status", "--json")
    assert code == 0 and '"running": true' in out
    # The message for the hanging URL is still pending, not lost.
    code, out, _ = home.notifyd("jobs", "--json")
    assert code == 0 and '"delivery": "pending"' in out
