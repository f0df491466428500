"""A service that cannot be reached is said so in words, not in urllib3's; its words go to the log.

Real failures on the loopback: a host under `.invalid` (RFC 2606: it never
resolves, network or not), a port nothing listens on, a socket that accepts
and never answers, and jsons:// to a plain-HTTP server.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator

import pytest
from harness import Home, Receiver, WatcherProc, fast_config, wait_until


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A port that accepts connections and never says a word."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    held: list[socket.socket] = []

    def accept() -> None:
        while True:
            try:
                held.append(server.accept()[0])
            except OSError:
                return

    threading.Thread(target=accept, daemon=True).start()
    yield server.getsockname()[1]
    server.close()
    for conn in held:
        conn.close()


def refused_port() -> int:
    """A port nothing listens on (bound, then closed): connecting is refused."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def failed_test(home: Home, url: str) -> str:
    home.write_config(fast_config(url))
    code, out, err = home.notifyd("test")
    assert code == 4, out + err
    return out


def test_an_unresolvable_host_is_a_failed_dns_lookup_with_the_proxy_question(home: Home) -> None:
    out = failed_test(home, "json://notifyd-test.invalid/hook")
    assert "could not reach notifyd-test.invalid (DNS lookup failed)" in out
    assert "is this machine online, or does it need a proxy?" in out
    assert "NameResolutionError" not in out and "HTTPConnectionPool" not in out


def test_a_refused_port_is_said_to_refuse_the_connection(home: Home) -> None:
    port = refused_port()
    out = failed_test(home, f"json://127.0.0.1:{port}/hook")
    assert f"could not reach 127.0.0.1:{port} (connection refused)" in out
    assert "Errno" not in out


def test_a_service_that_never_answers_is_a_timeout(home: Home, silent_port: int) -> None:
    out = failed_test(home, f"json://127.0.0.1:{silent_port}/hook?rto=1&cto=1")
    assert f"could not reach 127.0.0.1:{silent_port} (no answer in time)" in out
    assert "Read timed out" not in out


def test_tls_to_a_plain_http_server_says_the_server_does_not_speak_tls(home: Home,
                                                                       receiver: Receiver) -> None:
    out = failed_test(home, f"jsons://127.0.0.1:{receiver.port}/hook")
    assert "(TLS failed: the server does not speak TLS there)" in out
    assert "json:// for jsons://" in out and "SSLError" not in out


def test_notifyd_test_keeps_apprises_own_words_in_the_log(home: Home) -> None:
    out = failed_test(home, "json://notifyd-test.invalid/hook")
    log = home.state_dir / "logs" / f"{home.host}.log"
    assert f"Apprise's own words are in {log}" in out
    assert "NameResolutionError" in log.read_text()


def test_status_says_in_words_why_a_url_is_failing_and_the_log_keeps_the_raw_text(home: Home) -> None:
    port = refused_port()
    home.write_config(fast_config(f"json://127.0.0.1:{port}/hook"))
    w = WatcherProc(home).start()
    try:
        assert home.pingch("-t", "unheard", "true").returncode == 0
        log = home.state_dir / "logs" / f"{home.host}.log"
        wait_until(lambda: "Connection refused" in log.read_text(), 20, "a failed delivery in the log")
        wait_until(lambda: "failing" in home.notifyd("status")[1], 20, "status to show the failing URL")
        _code, out, _err = home.notifyd("status")
        assert f"could not reach 127.0.0.1:{port} (connection refused)" in out
        assert "Errno" not in out and "HTTPConnectionPool" not in out
    finally:
        w.stop()
