"""Discord and Slack as the watcher reaches them, faked only at the HTTP layer (requests.post).

No real Discord or Slack can run here, so the watcher runs in-process with
Apprise's own plugins and `requests.post` replaced by a fake that records
what would leave the machine (URL, JSON payload) and answers as the service
would: 204/200, 429 with Retry-After and X-RateLimit-* headers, 401.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import requests

from notifyd import config, paths
from notifyd.notify import targets as sender
from notifyd.spool import events
from notifyd.watcher import loop as watcher

DISCORD_ID, DISCORD_TOKEN = "123456789012345678", "AbCdEfGhIjKlMnOpQrStUvWxYz0123456789"
SLACK = ("T1JJ3T3L2", "A1BRTD4JD", "TIiajkdnlazkcOXrIdevi7FQ")


class FakeService:
    """Records posts; answers Discord from a script of (status, headers), then 2xx."""

    def __init__(self) -> None:
        self.posts: list[tuple[str, Any]] = []
        self.answers: list[int] = []  # the status each post got
        self.script: list[tuple[int, dict[str, str]]] = []

    def request(self, method: str, url: str, data: Any = None, **kw: Any) -> requests.Response:
        assert method.upper() == "POST", method
        return self.post(url, data=data, **kw)

    def post(self, url: str, data: Any = None, **_kw: Any) -> requests.Response:
        try:
            body = json.loads(data) if isinstance(data, (str, bytes)) else data
        except ValueError:
            body = data
        self.posts.append((url, body))
        scripted = self.script and "discord" in url
        status, extra = self.script.pop(0) if scripted else (204 if "discord" in url else 200, {})
        self.answers.append(status)
        response = requests.Response()
        response.status_code = status
        response.headers.update(extra)
        response._content = b"ok" if status == 200 else b""
        return response

    def delivered(self, host: str) -> list[Any]:
        """Bodies the service accepted."""
        return [b for (u, b), status in zip(self.posts, self.answers, strict=True)
                if host in u and status < 300]


@pytest.fixture
def service(monkeypatch: pytest.MonkeyPatch) -> FakeService:
    fake = FakeService()
    # Discord's plugin calls requests.post, Slack's requests.request.
    monkeypatch.setattr(requests, "post", fake.post)
    monkeypatch.setattr(requests, "request", fake.request)
    return fake


@contextmanager
def watcher_for(tmp_path: Path, *urls: str) -> Iterator[watcher.Watcher]:
    """An in-process watcher whose config holds `urls`."""
    env = {"HOME": str(tmp_path), "NOTIFYD_HOST": "w"}
    p = paths.resolve(env)
    for d in (p.events_dir, p.inbox_dir, p.journal_dir, p.lease_dir):
        d.mkdir(parents=True, exist_ok=True)
    p.config_file.parent.mkdir(parents=True)
    p.config_file.write_text(
        "[notify]\nurls =\n" + "".join(f"    {u}\n" for u in urls) + "digest_after = 100\n"
        "[watcher]\nretry_initial = 0.2s\nretry_max = 0.5s\n[legacy]\npingchilling =\n")
    p.config_file.chmod(0o600)
    w = watcher.Watcher(p, "w", config.load(p.config_file, {}))
    assert w.acquire() is None
    w.start()
    try:
        yield w
    finally:
        w.lease.release()


@pytest.fixture
def lab(tmp_path: Path) -> Iterator[watcher.Watcher]:
    with watcher_for(tmp_path, f"discord://{DISCORD_ID}/{DISCORD_TOKEN}",
                     f"slack://{SLACK[0]}/{SLACK[1]}/{SLACK[2]}/#jobs") as w:
        yield w


def finish(n: int, title: str, code: int = 0) -> bytes:
    t = time.time()
    return events.encode({"v": 1, "ev": "finish", "job": f"node2-{n}-abc", "host": "node2", "pid": n,
                          "title": title, "cmd": "python run.py", "cwd": "/home/ana/calc",
                          "start_ts": t - 65, "ts": t, "duration": 65.0, "exit": code,
                          "signal": None})


def run_rounds(w: watcher.Watcher, until: Any, seconds: float = 15) -> None:
    deadline = time.monotonic() + seconds
    w.round()
    while not until():
        assert time.monotonic() < deadline, "the watcher did not get there in time"
        time.sleep(0.05)
        w.round()


def jobs_in(w: watcher.Watcher, *lines: bytes) -> None:
    with (w.paths.events_dir / "node2.jsonl").open("ab") as f:
        for line in lines:
            f.write(line)


def test_what_discord_and_slack_would_receive(lab: watcher.Watcher, service: FakeService) -> None:
    jobs_in(lab, finish(1, "relax @everyone", 0), finish(2, "fit", 3))
    run_rounds(lab, lambda: len(service.posts) >= 4)
    discord = [(u, b) for u, b in service.posts if "discord" in u]
    slack = [(u, b) for u, b in service.posts if "slack" in u]
    assert {u for u, _ in discord} == {f"https://discord.com/api/webhooks/{DISCORD_ID}/{DISCORD_TOKEN}"}
    assert {u for u, _ in slack} == {f"https://hooks.slack.com/services/{SLACK[0]}/{SLACK[1]}/{SLACK[2]}"}
    first = json.dumps(discord[0][1], ensure_ascii=False)
    assert "relax" in first and "@everyone" not in first  # defused, still readable
    assert all(len(json.dumps(b, ensure_ascii=False)) < 4000 for _, b in discord)
    for _, body in discord:
        text = body.get("content") or "".join(
            e.get("title", "") + e.get("description", "") for e in body.get("embeds", []))
        assert len(text) <= 2000  # Discord's limit, title included
        # Nothing pings anyone: no live mention in the text, and no mention list
        # (Apprise 2.3 would send one as "allow_mentions", see the lab-channel tests below).
        assert LIVE_MENTION.findall(text) == [] and "allow_mentions" not in body
    failed = next(b for _, b in slack if "fit" in json.dumps(b))
    assert "exit 3" in json.dumps(failed, ensure_ascii=False)


def test_a_long_message_is_cut_to_discords_2000_characters(lab: watcher.Watcher,
                                                          service: FakeService) -> None:
    jobs_in(lab, finish(3, "x" * 180, 1))
    event = json.loads(finish(4, "long", 2))
    event["error"] = "E" * 1000
    event["cwd"] = "/" + "d" * 900
    jobs_in(lab, events.encode(event))
    run_rounds(lab, lambda: len(service.delivered("discord")) >= 2)
    for body in service.delivered("discord"):
        text = body.get("content") or ""
        assert 0 < len(text) <= 2000


def test_429s_are_waited_out_and_every_message_arrives_once(lab: watcher.Watcher,
                                                            service: FakeService) -> None:
    reset = str(int(time.time()) + 1)
    slow_down = (429, {"Retry-After": "1", "X-RateLimit-Remaining": "0", "X-RateLimit-Reset": reset})
    service.script = [slow_down] * 4  # Apprise's Discord plugin retries once itself, then we back off
    jobs_in(lab, *(finish(10 + i, f"job-{i}") for i in range(5)))
    run_rounds(lab, lambda: len(lab.state.done) == 5 and not lab.state.outbox, seconds=30)
    accepted = [json.dumps(b) for b in service.delivered("discord")]
    for i in range(5):
        assert sum(f"job-{i} " in text for text in accepted) == 1, i  # each exactly once
    assert lab.state.failed == []
    assert service.script == []


def test_a_wrong_discord_token_fails_once_and_is_kept_as_failed(lab: watcher.Watcher,
                                                               service: FakeService) -> None:
    service.script = [(401, {})]
    jobs_in(lab, finish(20, "denied"))
    run_rounds(lab, lambda: not lab.state.outbox)
    time.sleep(0.6)
    lab.round()
    assert [u for u, _ in service.posts].count(
        f"https://discord.com/api/webhooks/{DISCORD_ID}/{DISCORD_TOKEN}") == 1  # one try, no retry
    (failed,) = lab.state.failed
    assert failed.status == 401 and "denied" in failed.entry.title
    assert failed.url is not None and failed.url.startswith("discord://")
    assert DISCORD_TOKEN not in json.dumps(failed.to_json())
    assert sender.hint(401).startswith("the service refused")


# -- a lab channel: ?ping=USER_ID -------------------------------------------------------------------

USER_ID = "987654321098765432"
# What Discord would turn into a ping: a user, role or channel tag, @everyone, @here.
LIVE_MENTION = re.compile(r"<@[!&]?\d+>|@everyone|@here", re.IGNORECASE)
HOSTILE_TITLE = "sweep @everyone <@123456789012345678> @here <@&42>"


def _discord_texts(body: dict[str, Any]) -> str:
    return (body.get("content") or "") + "".join(
        e.get("title", "") + e.get("description", "") for e in body.get("embeds", []))


@pytest.mark.parametrize("form", ["", "&format=markdown"], ids=["text", "embeds"])
def test_a_ping_url_mentions_exactly_that_user_and_job_text_mentions_nobody(
        tmp_path: Path, service: FakeService, form: str) -> None:
    with watcher_for(tmp_path, f"discord://{DISCORD_ID}/{DISCORD_TOKEN}?ping=@{USER_ID}{form}") as w:
        jobs_in(w, finish(30, HOSTILE_TITLE, 1))
        run_rounds(w, lambda: not w.state.outbox)
    (body,) = service.delivered("discord")
    # Apprise 2.3 names the field "allow_mentions" (Discord's API says
    # allowed_mentions): what it would allow is that one user, no role, no @everyone.
    assert body["allow_mentions"] == {"parse": [], "users": [USER_ID], "roles": []}
    assert LIVE_MENTION.findall(_discord_texts(body)) == [f"<@{USER_ID}>"]
    assert "sweep" in _discord_texts(body)  # the title is still there to read, defused


def test_without_ping_a_hostile_title_mentions_nobody(lab: watcher.Watcher, service: FakeService) -> None:
    jobs_in(lab, finish(31, HOSTILE_TITLE, 1))
    run_rounds(lab, lambda: not lab.state.outbox)
    (body,) = service.delivered("discord")
    assert "allow_mentions" not in body
    assert LIVE_MENTION.findall(_discord_texts(body)) == []


def test_a_ping_without_its_at_sign_pings_nobody_so_the_readme_writes_it_with_one(
        tmp_path: Path, service: FakeService) -> None:
    # Apprise 2.3 reads ping= tokens as "@ID" or "<@ID>"; a bare number is
    # dropped without a word. README "Discord" says ?ping=@USER_ID for this.
    with watcher_for(tmp_path, f"discord://{DISCORD_ID}/{DISCORD_TOKEN}?ping={USER_ID}") as w:
        jobs_in(w, finish(32, "plain", 1))
        run_rounds(w, lambda: not w.state.outbox)
    (body,) = service.delivered("discord")
    assert "allow_mentions" not in body and USER_ID not in _discord_texts(body)
