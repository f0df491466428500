"""Matrix end to end: real pingch jobs, a real watcher, a real Synapse on 127.0.0.1 (tests/synapse.py).

The bot posts through Apprise's matrix:// plugin; the reader reads the room
back through the client API, so what is checked is what a lab member's Matrix
client would show.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator

import pytest
import synapse
from harness import Home, WatcherProc, fast_config

matrix_lab = synapse.matrix_lab
matrix_server = synapse.matrix_server


@pytest.fixture
def watch(home: Home) -> Iterator[Callable[[str], WatcherProc]]:
    """start(url): a real `notifyd watch` for the home, pushing to `url`; stopped after the test."""
    started: list[WatcherProc] = []

    def start(url: str) -> WatcherProc:
        home.write_config(fast_config(url))
        started.append(WatcherProc(home).start())
        return started[-1]

    yield start
    for w in started:
        w.stop()


def _title() -> str:
    """A job title no other test's message holds: the room is shared by the session."""
    return f"train-{uuid.uuid4().hex[:8]}"


def test_job_finishing_is_posted_to_the_room_through_user_and_password(
        home: Home, matrix_lab: synapse.MatrixLab, watch: Callable[[str], WatcherProc]) -> None:
    watch(matrix_lab.url_with_password())
    title = _title()
    assert home.pingch("-t", title, "true").returncode == 0
    content = matrix_lab.wait_for_message(title)["content"]
    assert f"✅ {title} finished on {home.host}" in content["body"]
    assert "exit 0" in content["body"]


def test_job_message_arrives_formatted_as_html(
        home: Home, matrix_lab: synapse.MatrixLab, watch: Callable[[str], WatcherProc]) -> None:
    watch(matrix_lab.url_with_password())
    title = _title()
    assert home.pingch("-t", title, "true").returncode == 0
    content = matrix_lab.wait_for_message(title)["content"]
    assert content["format"] == "org.matrix.custom.html"
    assert f"<h1>✅ {title} finished on {home.host}</h1>" in content["formatted_body"]
    # The message's Markdown (**exit 0**) is rendered, not shown with its stars.
    assert "<strong>exit 0</strong>" in content["formatted_body"]
    assert "<code>$ true</code>" in content["formatted_body"]
    # Each line of the message stays a line: Matrix renders Markdown without
    # turning single newlines into breaks.
    html = content["formatted_body"]
    assert html.count("<br") >= 3  # outcome, host and times, cwd, command: one line each
    assert "<code>$ true</code><br" in html


def test_job_finishing_is_posted_through_an_access_token_url(
        home: Home, matrix_lab: synapse.MatrixLab, watch: Callable[[str], WatcherProc]) -> None:
    watch(matrix_lab.url_with_token())
    title = _title()
    assert home.pingch("-t", title, "true").returncode == 0
    event = matrix_lab.wait_for_message(title)
    assert event["sender"] == matrix_lab.bot.user_id
    assert f"✅ {title} finished on {home.host}" in event["content"]["body"]


def test_room_id_url_with_hsreq_no_reaches_a_version_12_room(
        home: Home, matrix_lab: synapse.MatrixLab, watch: Callable[[str], WatcherProc]) -> None:
    watch(matrix_lab.url_with_room_id())
    title = _title()
    assert home.pingch("-t", title, "true").returncode == 0
    assert f"✅ {title} finished on {home.host}" in matrix_lab.wait_for_message(title)["content"]["body"]


def test_failing_job_is_posted_as_a_failure_with_its_exit_code(
        home: Home, matrix_lab: synapse.MatrixLab, watch: Callable[[str], WatcherProc]) -> None:
    watch(matrix_lab.url_with_password())
    title = _title()
    assert home.pingch("-t", title, "sh", "-c", "exit 3").returncode == 3
    body = matrix_lab.wait_for_message(title)["content"]["body"]
    assert f"❌ {title} failed on {home.host} (exit 3)" in body


def test_notifyd_test_reaches_the_room_and_says_ok(home: Home, matrix_lab: synapse.MatrixLab) -> None:
    home.write_config(fast_config(matrix_lab.url_with_password()))
    code, out, err = home.notifyd("test")
    assert code == 0, out + err
    assert f"ok      matrix://bot:****@{matrix_lab.host_port}" in out
    assert matrix_lab.bot.password not in out + err
    matrix_lab.wait_for_message(f"notifyd test from {home.host}")


def test_notifyd_test_with_a_token_url_never_prints_the_token(
        home: Home, matrix_lab: synapse.MatrixLab) -> None:
    home.write_config(fast_config(matrix_lab.url_with_token()))
    code, out, err = home.notifyd("test")
    assert code == 0, out + err
    assert out.startswith("ok      matrix://")
    assert matrix_lab.bot_token not in out + err


def test_unreachable_matrix_server_makes_notifyd_test_exit_4_naming_the_masked_url(home: Home) -> None:
    port = synapse.free_port()  # nothing listens there: the connection is refused
    home.write_config(fast_config(f"matrix://bot:hunter2secret@127.0.0.1:{port}/#lab"))
    code, out, err = home.notifyd("test")
    assert code == 4, out + err
    assert f"FAILED  matrix://bot:****@127.0.0.1:{port}/****" in out
    assert f"could not reach 127.0.0.1:{port} (connection refused)" in out
    assert "hunter2secret" not in out + err
