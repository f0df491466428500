"""Where notifications go: the local inbox always, and each configured Apprise URL.

    class Target:
        key: str                      # its name in the state file (a hash, never the URL)
        def send(self, entry) -> Sent

Each URL is its own target with its own key, so a failing Matrix server is
retried without sending the same message to Discord twice. Apprise is
imported only when some URL is configured (it costs ~90 ms and ~8 MB, plus
each plugin used: see notifyd/notify/apprise_urls.py). Tests use a
recording target in their place (tests/notify/).
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import stat
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal
from urllib.parse import parse_qsl, urlsplit

from notifyd.config import Config
from notifyd.errors import ExitStatus, NotifydError
from notifyd.notify import apprise_urls, inbox, url_help
from notifyd.paths import spool_name
from notifyd.records import OutboxEntry

INBOX_KEY = "inbox"
# What a message is about: one job's end, many jobs' (a digest), a group's
# summary, a job's start, a node short of memory where jobs run. Not its
# severity (Apprise's notify type).
MessageKind = Literal["job", "digest", "group", "start", "pressure"]


def display_url(private: str, public: str) -> str:
    """Apprise's masked URL with its path and query hidden as well.

    Apprise's privacy mode masks passwords and tokens it knows of, but not,
    say, an ntfy topic, which is the only secret of a public ntfy server.
    """
    scheme, _, rest = public.partition("://")
    host = rest.split("/", 1)[0].split("?", 1)[0]
    has_more = bool(urlsplit(private).path.strip("/") or urlsplit(private).query)
    return f"{scheme}://{host}/****" if has_more else f"{scheme}://{host}"


def url_secrets(url: str) -> list[str]:
    """Parts of a URL that could be secret, longest first, to scrub from messages."""
    parts = urlsplit(url)
    found = {parts.password or "", parts.username or ""}
    found.update(seg for seg in parts.path.split("/") if len(seg) >= 4)
    found.update(v for _k, v in parse_qsl(parts.query) if len(v) >= 4)
    return sorted((s for s in found if len(s) >= 3), key=len, reverse=True)


def _apprise() -> Any:
    """Import Apprise with its logger silenced: what it says is captured per send."""
    import apprise

    logger = logging.getLogger("apprise")
    if not any(isinstance(h, logging.NullHandler) for h in logger.handlers):
        # Without a handler Python prints warnings to stderr, URL parts and all.
        logger.addHandler(logging.NullHandler())
        logger.propagate = False
        logger.setLevel(logging.WARNING)
    return apprise


load_apprise = _apprise  # public: notifyd init checks a URL with it


def url_key(url: str) -> str:
    """A stable name for one URL in the state file that reveals nothing of it."""
    return hashlib.sha256(url.encode()).hexdigest()[:16]


# Apprise tags that route (README "Routing with tags"); any other tag is the user's own.
FAILURE_TAG = "failure"  # failures only (failed or lost jobs, digests and groups with failures)
DIGEST_TAG = "digest"  # digests and group summaries only, never a single job's message
# Memory pressure alerts (watcher/pressure.py) only, alone; added to failure or digest, those too.
PRESSURE_TAG = "pressure"
NO_PRESSURE_TAG = "nopressure"  # everything the URL would take but memory pressure alerts
DEFAULT_LIMIT = 32768  # characters per message where a service names no limit
# Answers that no retry will change: a wrong or revoked token (401, 403), a
# webhook or room that does not exist (404, 410), a request the service
# refuses as such (400), an SMTP login refused (535). A delivery that gets
# one is given up at once and listed as failed, not retried for retry_for.
PERMANENT = frozenset({400, 401, 403, 404, 410, 535})
_STATUS = re.compile(r"error=(\d{3})\b|\((\d{3}),")


def answered(messages: list[str]) -> int | None:
    """The status code a service answered, from what Apprise logged ("... error=401.")."""
    for text in reversed(messages):
        found = _STATUS.search(text)
        if found:
            return int(found.group(1) or found.group(2))
    return None


def hint(status: int | None) -> str:
    """What a user can do about a failed delivery, by the service's answer."""
    if status in (401, 403):
        return "the service refused the URL's token or password: check it, or make a new webhook"
    if status in (404, 410):
        return "the service has no such webhook, room or address: check the URL"
    if status == 535:
        return "the mail server refused the login: check the user and (app) password"
    if status == 429:
        return "the service asks to slow down: retried later"
    return "retried with backoff"


@dataclass(frozen=True)
class Sent:
    """What one send came to: delivered, or why not (and the service's answer, when known)."""

    ok: bool
    detail: str = ""  # what went wrong, secrets scrubbed
    status: int | None = None  # the HTTP or SMTP status the service answered

    @property
    def permanent(self) -> bool:
        """No retry will change this answer (see PERMANENT)."""
        return not self.ok and self.status in PERMANENT


class Target:
    """One place a notification is delivered to."""

    key: str
    display: str  # safe to print and log: secrets masked
    tags: frozenset[str] = frozenset()
    limit: int = DEFAULT_LIMIT  # characters per message, title included

    def send(self, entry: OutboxEntry) -> Sent:
        """Deliver one outbox entry."""
        raise NotImplementedError

    def wants(self, what: MessageKind, failed: bool) -> bool:
        """Does this target take a message of this kind ("job", "digest", "group", "start", "pressure")?

        A "job" for a digest-only target is not refused: it waits for the next
        digest (the watcher batches it). Pressure alerts go to untagged URLs
        and to those tagged `pressure`; a URL tagged `pressure` and no other
        routing tag takes nothing else.
        """
        routed = self.tags & {FAILURE_TAG, DIGEST_TAG}
        if what == "pressure":
            return NO_PRESSURE_TAG not in self.tags and (PRESSURE_TAG in self.tags or not routed)
        if PRESSURE_TAG in self.tags and not routed:
            return False
        if FAILURE_TAG in self.tags and not failed:
            return False
        return not (what == "start" and DIGEST_TAG in self.tags)

    @property
    def digests_only(self) -> bool:
        return DIGEST_TAG in self.tags


def hard_breaks(markdown: str) -> str:
    """End each line outside code blocks with a Markdown hard break ("  ").

    Apprise's Matrix plugin renders Markdown without nl2br, so a message's
    single newlines would run its lines together in the room.
    """
    out, fenced = [], False
    lines = markdown.split("\n")
    for i, line in enumerate(lines):
        if line.startswith("```"):
            fenced = not fenced
        broken = not fenced and line.strip() and i + 1 < len(lines) and lines[i + 1].strip()
        out.append(line + "  " if broken else line)
    return "\n".join(out)


def split_tags(line: str) -> tuple[frozenset[str], str]:
    """'failure,phone=URL' -> ({'failure', 'phone'}, 'URL'), as in Apprise's TEXT config files.

    A URL's own '=' always comes after its '://', so text before the first
    '=' that holds no ':' or '/' is a tag list.
    """
    head, sep, rest = line.partition("=")
    if sep and head.strip() and not any(c in head for c in ":/") and rest.strip():
        tags = frozenset(t.strip().lower() for t in head.replace(" ", ",").split(",") if t.strip())
        return tags, rest.strip()
    return frozenset(), line.strip()


class InboxTarget(Target):
    """The local inbox: every notification, whether or not anything is pushed."""

    def __init__(self, inbox_dir: Path, host: str) -> None:
        self.key = INBOX_KEY
        self.display = f"inbox ({inbox_dir})"
        # Written only by the lease holder, one file per host so that a frozen
        # old holder and its successor never append to the same file.
        self.path = inbox_dir / spool_name(host)
        self.inbox_dir = inbox_dir

    def send(self, entry: OutboxEntry) -> Sent:
        try:
            inbox.append(self.path, inbox.encode(
                entry.id, job=entry.job, time=time.time(), kind=entry.severity, title=entry.title,
                body=entry.body, info=entry.info))
        except (OSError, ValueError) as exc:
            return Sent(False, f"cannot write {self.path}: {exc}")
        return Sent(True)


class _Capture(logging.Handler):
    """Collects what Apprise logs during a send, that is what the server answered, per thread.

    Each URL sends on a thread of its own (watcher/delivery.py), and Apprise
    logs on the sending thread: a thread's buffer holds only its own send's
    records. Installed once; the logger stays at DEBUG for it (what does not
    belong to a send in progress is dropped at once).
    """

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.local = threading.local()

    def emit(self, record: logging.LogRecord) -> None:
        messages: list[str] | None = getattr(self.local, "messages", None)
        if messages is None:
            return
        text = record.getMessage()
        # Apprise's email plugin logs only "Connection error" as a warning;
        # the server's answer (a refused login: "(535, b'...')") is at debug.
        if record.levelno >= logging.WARNING or text.startswith("Socket Exception:"):
            messages.append(text)


_CAPTURE = _Capture()
_CAPTURE_LOCK = threading.Lock()


@contextmanager
def _captured() -> Iterator[list[str]]:
    logger = logging.getLogger("apprise")
    with _CAPTURE_LOCK:
        if _CAPTURE not in logger.handlers:
            logger.addHandler(_CAPTURE)
            logger.setLevel(logging.DEBUG)
    messages: list[str] = []
    _CAPTURE.local.messages = messages
    try:
        yield messages
    finally:
        _CAPTURE.local.messages = None


def attachment_problem(path: str) -> str:
    """Why `path` cannot be attached now ('' if it can): gone since the job, or on another node's disk."""
    try:
        st = os.stat(path)
    except OSError as exc:
        return f"{exc.strerror or exc} (here, on the watcher's host)"
    if not stat.S_ISREG(st.st_mode):
        return "not a regular file"
    if not os.access(path, os.R_OK):
        return "not readable by you"
    return ""


class AppriseTarget(Target):
    """One Apprise URL (from the config, APPRISE_URLS or an Apprise config file)."""

    def __init__(self, plugin: Any, written: str | None = None, tags: frozenset[str] = frozenset(),
                 max_length: int = 0) -> None:
        self.plugin = plugin
        self.tags = tags | frozenset(str(t).lower() for t in (getattr(plugin, "tags", None) or ()))
        service_limit = int(getattr(plugin, "body_maxlen", 0) or 0)
        self.limit = max_length or (service_limit if service_limit > 0 else DEFAULT_LIMIT)
        private = plugin.url(privacy=False)
        self.key = url_key(private)
        self.display = display_url(private, plugin.url(privacy=True))
        # From the URL as the user wrote it: Apprise's own form adds default
        # query values (method=POST...) that are no secret to scrub.
        self.secrets = url_secrets(written or private.split("?", 1)[0])

    def scrub(self, text: str) -> str:
        for secret in self.secrets:
            text = text.replace(secret, "****")
        return text

    def send(self, entry: OutboxEntry) -> Sent:
        from notifyd.notify import message

        apprise = _apprise()
        # Cut to this service's length (Discord: 2,000 characters with the
        # title) here, not by Apprise: its split would send several messages
        # and its truncation can cut a line in half.
        body = entry.body
        attach = None
        if entry.attach:
            # A file that cannot be read here would fail the whole message
            # (Apprise: "Could not access attachment"): the message goes
            # without it and says so.
            problem = attachment_problem(entry.attach)
            if problem:
                body += "\n" + message.attach_note(entry.attach, problem)
            elif getattr(self.plugin, "attachment_support", False):
                attach = apprise.AppriseAttachment(entry.attach)
            else:
                body += "\n" + message.attach_note(entry.attach, "this service takes none")
        fitted = message.fit(message.Message(entry.title, body, entry.severity), self.limit)
        body = fitted.body
        if "matrix" in apprise_urls.protocols(self.plugin):
            body = hard_breaks(body)
        with _captured() as messages:
            try:
                ok = bool(self.plugin.notify(
                    body=body, title=fitted.title,
                    notify_type=apprise.NotifyType(entry.severity),
                    body_format=apprise.NotifyFormat.MARKDOWN,
                    attach=attach,
                ))
            except Exception as exc:  # a plugin bug must not stop the watcher
                return Sent(False, self.scrub(f"{type(exc).__name__}: {exc}"))
        if ok:
            return Sent(True)
        detail = self.scrub("; ".join(messages[-2:])) or "the service did not accept it"
        return Sent(False, detail, answered(messages))


def build_targets(config: Config, inbox_dir: Path, host: str) -> list[Target]:
    """The inbox plus one target per configured URL; a bad URL is a config error."""
    targets: list[Target] = [InboxTarget(inbox_dir, host)]
    if not config.pushes:
        return targets
    apprise = _apprise()

    for line in config.urls:
        tags, url = split_tags(line)
        plugin = apprise_urls.instantiate(apprise, url)
        if plugin is None:
            raise NotifydError(f"{config.source}: [notify] urls: {url_help.problem(url)}", ExitStatus.CONFIG)
        targets.append(AppriseTarget(plugin, written=url, tags=tags, max_length=config.max_length))
    for path in config.apprise_configs:
        ac = apprise.AppriseConfig()
        if not ac.add(path) or not ac.services():
            raise NotifydError(
                f"Apprise config file {path} holds no URL Apprise can use; "
                "check it with: apprise --config " + path + " --dry-run",
                ExitStatus.CONFIG,
            )
        targets.extend(AppriseTarget(plugin, max_length=config.max_length) for plugin in ac.services())
    seen: set[str] = set()
    unique = []
    for target in targets:
        if target.key not in seen:
            seen.add(target.key)
            unique.append(target)
    return unique


def configured_keys(config_file: Path, inbox_dir: Path, host: str) -> set[str] | None:
    """The keys of the push URLs configured now; None when the config cannot be used.

    For `notifyd jobs`: a delivery waiting for a URL no longer configured
    does not make a job pending. Apprise is imported for it, so callers ask
    only when some delivery waits for a push.
    """
    from notifyd.config import load

    try:
        return {t.key for t in build_targets(load(config_file), inbox_dir, host) if t.key != INBOX_KEY}
    except NotifydError:
        return None
