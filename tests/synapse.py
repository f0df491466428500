"""A real Matrix homeserver for the tests: Synapse on 127.0.0.1, one per test session.

Synapse (the `matrix-synapse` test extra) runs as `python -m synapse.app.homeserver`
from this venv, with a config written into a temp dir: server name `localhost`,
one plain-HTTP client listener on a free loopback port, sqlite, no federation,
no stats, rate limits raised so that a watcher logging in for every test never
meets a 429 (Synapse allows 5 logins per address, then one per ~5 minutes).
Measured here: ~1 s to generate the keys, ~1 s until it answers; the whole
session set-up (users, room, a login) ~3 s.

A sample session (what the fixtures give a test):

    matrix_lab.url_with_password()  ->  'matrix://bot:bot-password@127.0.0.1:41343/#lab'
    matrix_lab.wait_for_message("train-3f2a")["content"]  ->
        {'body': '# ✅ train-3f2a finished on h510e3e\\r\\nexit 0 · after 0.0 s ...',
         'format': 'org.matrix.custom.html',
         'formatted_body': '<h1>✅ train-3f2a finished on h510e3e</h1><p><strong>exit 0</strong> ...',
         'msgtype': 'm.text'}

Users are made with the shared-secret admin API (/_synapse/admin/v1/register:
a nonce, then an HMAC-SHA1 of nonce, name, password and admin flag), so the
server needs no open registration. The reader creates the room `#lab:localhost`
and invites the bot, which joins; the tests read what the bot posted back as
the reader, through /_matrix/client/v3/rooms/ROOM/messages.

This module is importable as `synapse` from tests/ (pytest puts tests/ first on
sys.path), which hides the real package inside the test process: nothing here
imports it, the server runs in its own process from a directory of its own.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest

SHARED_SECRET = "notifyd-test-registration-secret"
START_TIMEOUT = 60.0  # a cold start on a busy 2-core CI machine; ~1 s when idle
# Generous enough that no test meets a 429; Synapse's defaults (rc_login
# 0.003/s burst 5, rc_message 0.2/s burst 10) are meant for the open internet.
_UNLIMITED = {"per_second": 1000, "burst_count": 1000}


def missing() -> str:
    """What this machine lacks to run Synapse ('' when nothing)."""
    try:
        metadata.version("matrix-synapse")
    except metadata.PackageNotFoundError:
        return "matrix-synapse (pip install -e '.[test]' installs it)"
    return ""


def free_port() -> int:
    """A loopback port nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class MatrixError(AssertionError):
    """The homeserver refused a request the harness made (a test set-up failure)."""


@dataclass(frozen=True)
class User:
    name: str
    password: str
    user_id: str
    token: str


def homeserver_config(root: Path, port: int) -> dict[str, Any]:
    """The smallest Synapse config for a private loopback server (YAML accepts this as JSON)."""
    return {
        "server_name": "localhost",
        "pid_file": str(root / "homeserver.pid"),
        "listeners": [{
            "port": port, "bind_addresses": ["127.0.0.1"], "type": "http", "tls": False,
            "x_forwarded": False, "resources": [{"names": ["client"], "compress": False}],
        }],
        "database": {"name": "sqlite3", "args": {"database": str(root / "homeserver.db")}},
        "media_store_path": str(root / "media"),
        "signing_key_path": str(root / "localhost.signing.key"),
        "registration_shared_secret": SHARED_SECRET,
        "report_stats": False,
        # No federation: never fetch keys from matrix.org (the CI has no network).
        "trusted_key_servers": [],
        "suppress_key_server_warning": True,
        "rc_message": _UNLIMITED,
        "rc_login": {"address": _UNLIMITED, "account": _UNLIMITED, "failed_attempts": _UNLIMITED},
        "rc_joins": {"local": _UNLIMITED},
        "rc_invites": {"per_room": _UNLIMITED, "per_user": _UNLIMITED, "per_issuer": _UNLIMITED},
        "rc_room_creation": _UNLIMITED,
    }


class Synapse:
    """One Synapse process on 127.0.0.1 with its own port, config, keys and database."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.port = free_port()
        self.log = root / "synapse.log"
        config = root / "homeserver.yaml"
        config.write_text(json.dumps(homeserver_config(root, self.port), indent=1))
        # Run from its own directory with no PYTHONPATH: `python -m` puts the
        # current directory first on sys.path, and tests/synapse.py (this file)
        # must not stand in for the real package there.
        env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
        command = [sys.executable, "-m", "synapse.app.homeserver", "--config-path", str(config)]
        keys = subprocess.run([*command, "--generate-keys"], cwd=root, env=env,
                              capture_output=True, text=True, timeout=120)
        if keys.returncode != 0:
            raise MatrixError(f"synapse --generate-keys failed: {keys.stdout}{keys.stderr}")
        self.proc = subprocess.Popen(command, cwd=root, env=env, stdin=subprocess.DEVNULL,
                                     stdout=self.log.open("ab"), stderr=subprocess.STDOUT)
        self._wait_ready()

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            if self.proc.poll() is not None:
                raise MatrixError(f"synapse exited with {self.proc.returncode}: {self.log_tail()}")
            try:
                if "versions" in self.request("GET", "/_matrix/client/versions", timeout=2):
                    return
            except (OSError, MatrixError):
                pass
            if time.monotonic() > deadline:
                self.stop()
                raise MatrixError(f"synapse did not answer within {START_TIMEOUT:.0f} s: "
                                  f"{self.log_tail()}")
            time.sleep(0.1)

    def log_tail(self, lines: int = 30) -> str:
        text = self.log.read_text(errors="replace") if self.log.exists() else ""
        return "\n".join(text.splitlines()[-lines:])

    def request(self, method: str, path: str, body: dict[str, Any] | None = None,
                token: str | None = None, timeout: float = 30) -> dict[str, Any]:
        """One client-server API call; the JSON answer, or MatrixError with what the server said."""
        data = json.dumps(body).encode() if body is not None else None
        # The URL is always http://127.0.0.1:<our port>, built here.
        req = urllib.request.Request(self.base + path, data=data, method=method)  # noqa: S310
        req.add_header("Content-Type", "application/json")
        if token:
            req.add_header("Authorization", f"Bearer {token}")
        try:
            with urllib.request.urlopen(req, timeout=timeout) as resp:  # noqa: S310
                answer: dict[str, Any] = json.loads(resp.read() or b"{}")
                return answer
        except urllib.error.HTTPError as err:
            raise MatrixError(f"{method} {path}: {err.code} {err.read().decode(errors='replace')}") from None

    def register(self, name: str, password: str, admin: bool = False) -> User:
        """A new user through the shared-secret admin API, as Synapse's register_new_matrix_user does."""
        path = "/_synapse/admin/v1/register"
        nonce = self.request("GET", path)["nonce"]
        mac = hmac.new(SHARED_SECRET.encode(), digestmod=hashlib.sha1)
        for part in (nonce, name, password):
            mac.update(part.encode() + b"\x00")
        mac.update(b"admin" if admin else b"notadmin")
        answer = self.request("POST", path, {
            "nonce": nonce, "username": name, "password": password, "admin": admin,
            "mac": mac.hexdigest()})
        return User(name, password, answer["user_id"], answer["access_token"])

    def login(self, name: str, password: str) -> str:
        """A fresh access token (a new device) for the user."""
        answer = self.request("POST", "/_matrix/client/v3/login", {
            "type": "m.login.password", "identifier": {"type": "m.id.user", "user": name},
            "password": password})
        return str(answer["access_token"])

    def create_room(self, owner: User, alias_name: str, invite: list[User]) -> str:
        """A private, unencrypted room with a local alias; its room id."""
        answer = self.request("POST", "/_matrix/client/v3/createRoom", {
            "room_alias_name": alias_name, "preset": "private_chat", "visibility": "private",
            "invite": [u.user_id for u in invite]}, token=owner.token)
        return str(answer["room_id"])

    def join(self, user: User, room_id: str) -> None:
        self.request("POST", f"/_matrix/client/v3/join/{quote(room_id, safe='')}", {}, token=user.token)

    def messages(self, reader: User, room_id: str, limit: int = 200) -> list[dict[str, Any]]:
        """The room's newest m.room.message events, newest first, as the reader sees them."""
        answer = self.request(
            "GET", f"/_matrix/client/v3/rooms/{quote(room_id, safe='')}/messages?dir=b&limit={limit}",
            token=reader.token)
        return [e for e in answer.get("chunk", []) if e.get("type") == "m.room.message"]

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


@dataclass(frozen=True)
class MatrixLab:
    """The server, a bot that posts and a reader who reads, and their room #lab:localhost."""

    server: Synapse
    bot: User
    bot_token: str  # from a separate login, for the matrix://TOKEN@host/... form
    reader: User
    room_id: str
    alias: str = "#lab:localhost"

    @property
    def host_port(self) -> str:
        return f"127.0.0.1:{self.server.port}"

    def url_with_password(self) -> str:
        return f"matrix://{self.bot.name}:{self.bot.password}@{self.host_port}/#lab"

    def url_with_token(self) -> str:
        return f"matrix://{self.bot_token}@{self.host_port}/#lab"

    def url_with_room_id(self) -> str:
        # Room version 12 ids have no ':server' part; without hsreq=no Apprise
        # appends ':localhost' and joins a room that does not exist.
        return f"matrix://{self.bot_token}@{self.host_port}/{self.room_id}?hsreq=no"

    def messages(self) -> list[dict[str, Any]]:
        return self.server.messages(self.reader, self.room_id)

    def wait_for_message(self, text: str, timeout: float = 30.0) -> dict[str, Any]:
        """The bot's message whose body holds `text`; fails after `timeout` s with what the room holds."""
        deadline = time.monotonic() + timeout
        while True:
            for event in self.messages():
                if event.get("sender") == self.bot.user_id and text in event["content"].get("body", ""):
                    return event
            if time.monotonic() > deadline:
                bodies = [e["content"].get("body", "")[:80] for e in self.messages()[:10]]
                raise AssertionError(f"no message with {text!r} in {self.alias} after {timeout} s; "
                                     f"newest: {bodies}")
            time.sleep(0.2)


@pytest.fixture(scope="session")
def matrix_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Synapse]:
    """Synapse on a free loopback port, started once per session and stopped at its end."""
    lacking = missing()
    if lacking:
        if os.environ.get("CI"):
            pytest.fail(f"CI must run the Matrix tests, but this machine lacks: {lacking}")
        pytest.skip(reason=f"the Matrix tests need {lacking}")
    server = Synapse(tmp_path_factory.mktemp("synapse"))
    yield server
    server.stop()


@pytest.fixture(scope="session")
def matrix_lab(matrix_server: Synapse) -> MatrixLab:
    """A bot and a reader on the server, and #lab:localhost made by the reader with the bot in it."""
    bot = matrix_server.register("bot", "bot-password")
    reader = matrix_server.register("reader", "reader-password")
    room_id = matrix_server.create_room(reader, "lab", invite=[bot])
    matrix_server.join(bot, room_id)
    return MatrixLab(matrix_server, bot, matrix_server.login("bot", "bot-password"), reader, room_id)
