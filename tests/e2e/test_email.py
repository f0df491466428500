"""Email end to end: real pingch jobs, a real watcher, Apprise's mailto:// and a local SMTP server.

The SMTP server is aiosmtpd on 127.0.0.1; each message it takes is kept with
its envelope and parsed, so the tests read the subject and the plain-text body
as a mail client would show them.
"""

from __future__ import annotations

import email
import email.policy
import re
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from email.message import EmailMessage
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult
from harness import FAST, Home, WatcherProc, fast_config, wait_until

SENDER, RECIPIENT = "notifyd@example.org", "ana@example.org"


@dataclass
class Mail:
    mail_from: str
    rcpt_tos: list[str]
    message: EmailMessage

    @property
    def subject(self) -> str:
        return str(self.message["Subject"])

    @property
    def text(self) -> str:
        """The plain-text part, as a mail client without HTML shows it."""
        part = self.message.get_body(preferencelist=("plain",))
        assert part is not None, f"no text/plain part in {self.message}"
        return str(part.get_content())


@dataclass
class SmtpServer:
    """An aiosmtpd server on 127.0.0.1 that keeps every message it accepts."""

    port: int = 0
    mails: list[Mail] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def url(self, auth: str = "") -> str:
        return (f"mailto://{auth}127.0.0.1:{self.port}"
                f"?from={SENDER}&to={RECIPIENT}&mode=insecure")

    async def handle_DATA(self, _server: Any, _session: Any, envelope: Any) -> str:
        parsed = email.message_from_bytes(envelope.original_content, policy=email.policy.default)
        assert isinstance(parsed, EmailMessage)
        with self.lock:
            self.mails.append(Mail(envelope.mail_from, list(envelope.rcpt_tos), parsed))
        return "250 OK"

    def received(self) -> list[Mail]:
        with self.lock:
            return list(self.mails)

    def wait_for(self, count: int, timeout: float = 20.0) -> list[Mail]:
        wait_until(lambda: len(self.received()) >= count, timeout, f"{count} mails at the SMTP server")
        return self.received()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _start(handler: SmtpServer, **kw: Any) -> Any:
    """A started Controller on a free port of 127.0.0.1.

    aiosmtpd cannot be given port 0 (its start-up probe connects to the port
    it was given), so a free one is picked first; another process may take it
    in between, hence a few tries.
    """
    for attempt in range(5):
        handler.port = _free_port()
        controller = Controller(handler, hostname="127.0.0.1", port=handler.port, **kw)
        try:
            controller.start()
        except (OSError, RuntimeError):
            if attempt == 4:
                raise
            continue
        return controller
    raise AssertionError("unreachable")


@pytest.fixture
def smtp() -> Iterator[SmtpServer]:
    server = SmtpServer()
    controller = _start(server)
    yield server
    controller.stop()


@pytest.fixture
def refusing_smtp() -> Iterator[SmtpServer]:
    """An SMTP server that offers AUTH over plain text and refuses every login (535)."""

    def refuse(*_args: Any) -> Any:
        return AuthResult(success=False, handled=False)

    server = SmtpServer()
    controller = _start(server, authenticator=refuse, auth_require_tls=False)
    yield server
    controller.stop()


@pytest.fixture
def mail_watcher(home: Home, smtp: SmtpServer) -> Iterator[WatcherProc]:
    home.write_config(fast_config(smtp.url()))
    w = WatcherProc(home).start()
    yield w
    w.stop()


def test_finished_job_arrives_as_a_mail_titled_like_the_notification(
        home: Home, smtp: SmtpServer, mail_watcher: WatcherProc) -> None:
    assert home.pingch("-t", "relax", "true").returncode == 0

    (mail,) = smtp.wait_for(1)
    assert mail.subject == f"✅ relax finished on {home.host}"
    assert mail.mail_from == SENDER
    assert mail.rcpt_tos == [RECIPIENT]


def test_mail_body_holds_the_jobs_facts(home: Home, smtp: SmtpServer, mail_watcher: WatcherProc) -> None:
    assert home.pingch("-t", "relax", "sleep", "0.2").returncode == 0

    text = smtp.wait_for(1)[0].text
    assert "exit 0" in text
    assert re.search(r"after 0\.\d s", text), text
    assert home.host in text
    assert "$ sleep 0.2" in text


def test_failing_job_arrives_as_a_failure_mail(
        home: Home, smtp: SmtpServer, mail_watcher: WatcherProc) -> None:
    assert home.pingch("-t", "fit", "bash -c 'exit 3'").returncode == 3

    (mail,) = smtp.wait_for(1)
    assert mail.subject == f"❌ fit failed on {home.host} (exit 3)"
    assert "exit 3" in mail.text


def test_a_burst_of_jobs_becomes_one_mail_then_a_digest_mail(home: Home, smtp: SmtpServer) -> None:
    home.write_config(f"[notify]\nurls = {smtp.url()}\ndigest_after = 1\ndigest_quiet = 1s\n" + FAST)
    w = WatcherProc(home).start()
    try:
        for i in range(4):
            assert home.pingch("-t", f"step{i}", "true").returncode == 0

        mails = smtp.wait_for(2)
    finally:
        w.stop()
    subjects = sorted(m.subject for m in mails)
    assert len(mails) == 2, subjects
    assert subjects[0].startswith("3 jobs finished"), subjects
    assert subjects[1] == f"✅ step0 finished on {home.host}"
    digest = next(m for m in mails if m.subject.startswith("3 jobs finished"))
    for i in (1, 2, 3):
        assert f"step{i}" in digest.text


def test_refused_smtp_login_makes_notifyd_test_fail_naming_the_masked_url(
        home: Home, refusing_smtp: SmtpServer) -> None:
    home.write_config(fast_config(refusing_smtp.url(auth="ana:s3cretPassw0rd@")))

    code, out, err = home.notifyd("test")

    assert code == 4, out + err
    assert "s3cretPassw0rd" not in out + err
    failed = [line for line in out.splitlines() if line.startswith("FAILED")]
    assert len(failed) == 1, out
    assert failed[0].startswith(f"FAILED  mailto://ana:****@127.0.0.1:{refusing_smtp.port}")
    assert "535" in failed[0]  # the server's answer, as Apprise reports it
    assert "the mail server refused the login" in out
    assert refusing_smtp.received() == []
