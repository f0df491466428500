"""What a job is called, runs or prints can never ping, hide a link or fake notifyd's own lines.

Checked where it matters, on what Apprise really sends: the JSON its Discord
plugin posts (captured in-process at requests.post, as plain content and as
embeds with ?format=markdown, where Apprise itself turns "@123" into pings and
splits the body at "#" lines), and what a webhook behind json:// receives.
Every fact a finished job's message holds is checked the same way: as Discord
gets it.
"""

from __future__ import annotations

import json
import os
import re
import signal
import time
from collections.abc import Callable, Iterator
from typing import Any

import apprise
import pytest
import requests
from harness import Receiver

from notifyd.notify.defuse import ZWSP
from notifyd.notify.message import Message, digest, finished, fit, group_done

DISCORD = "discord://123456789012345678/AbCdEfToken"
DISCORD_EMBEDS = DISCORD + "?format=markdown"
LIMIT = 2000  # Discord's, title included

INJECTIONS = {
    "everyone": "@everyone",
    "here": "@here",
    "room": "@room",
    "shouted": "@EVERYONE",
    "user": "<@123456789012345678>",
    "nickname": "<@!123456789012345678>",
    "role": "<@&987654321098765432>",
    "channel": "<#112233445566778899>",
    "bare_id": "@123456789012345678",
    "matrix_user": "@admin:matrix.org",
    "link": "[click here](http://evil.example/x)",
    "angle_link": "[docs](<http://evil.example/x>)",
    "reference_link": "[click here][r]\n[r]: http://evil.example/x",
    "image": "![logo](http://evil.example/x.png)",
    "html_link": '<a href="http://evil.example/x">ok</a>',
    "entity": "&#64;everyone",
    "spoiler": "||secret||",
    "fence": "```\n@everyone\n```",
    "heading": "\n# ✅ all jobs finished",
    "quote": "\n> ✅ train finished on node5",
    "setext": "all good\n===",
    "fake_line": "\n✅ 12 jobs finished on node5: 12 ok",
}

LIVE = {
    "mention": re.compile(r"@(everyone|here|room)", re.IGNORECASE),
    "tag": re.compile(r"<[@#!&:/?A-Za-z]"),
    "id ping": re.compile(r"@[!&]?\d"),
    "matrix user": re.compile(r"@[\w.=/+-]+:[\w-]"),
    "link": re.compile(r"\][(\[:]"),
    "spoiler": re.compile(r"\|\|"),
    "entity": re.compile(r"&#?\w+;"),
    # Apprise splits embeds at a "#" after a line break, inside code blocks too.
    "heading": re.compile(r"^\s*#", re.MULTILINE),
}
# Outside code blocks: lines that would render as a block of their own.
BLOCK = re.compile(r"^\s*(>|[-*+]\s|\d+[.)]\s|=+\s*$|-{2,}\s*$)")


def live(text: str) -> list[str]:
    """What in `text` would still work as a mention, link or fake line."""
    found = [f"{name}: {m.group(0)!r}" for name, rx in LIVE.items() for m in rx.finditer(text)]
    in_code = False
    for line in text.splitlines():
        if "```" in line:
            if line != "```":
                found.append(f"fence inside a line: {line!r}")
            in_code = not in_code
        elif not in_code and BLOCK.match(line):
            found.append(f"block marker: {line!r}")
    if in_code:
        found.append("a code block left open")
    return found


def plain(text: str) -> str:
    """What a reader sees: no zero-width spaces, whitespace as single spaces."""
    return " ".join(text.replace(ZWSP, "").split())


def lines_outside_code(text: str) -> list[str]:
    out, in_code = [], False
    for line in text.splitlines():
        if line.startswith("```"):
            in_code = not in_code
        elif not in_code:
            out.append(line.replace(ZWSP, ""))
    return out


# -- where messages go -------------------------------------------------------------------------


def _texts(payload: dict[str, Any]) -> list[str]:
    texts = [payload.get("content", "")]
    for embed in payload.get("embeds", []):
        texts += [embed.get("title", ""), embed.get("description", "")]
        for fld in embed.get("fields", []):
            texts += [fld["name"], fld["value"]]
    return texts


@pytest.fixture
def discord(monkeypatch: pytest.MonkeyPatch) -> Callable[[Message, str], dict[str, Any]]:
    """send(msg, url): the JSON payload Apprise's Discord plugin posts for it (nothing leaves)."""
    posted: list[dict[str, Any]] = []

    def post(url: str, data: Any = None, **_kw: Any) -> requests.Response:
        posted.append(json.loads(data))
        response = requests.Response()
        response.status_code = 204
        return response

    monkeypatch.setattr(requests, "post", post)

    def send(msg: Message, url: str = DISCORD) -> dict[str, Any]:
        posted.clear()
        plugin = apprise.Apprise.instantiate(url)
        assert plugin.notify(body=msg.body, title=msg.title, body_format=apprise.NotifyFormat.MARKDOWN)
        assert len(posted) == 1, "one message, not split"
        return posted[0]

    return send


def assert_safe_on_discord(payload: dict[str, Any]) -> None:
    texts = _texts(payload)
    assert "allow_mentions" not in payload  # Apprise found nothing to ping
    for embed in payload.get("embeds", []):
        assert "fields" not in embed  # no "#" line split the body into fields
    for text in texts:
        assert live(text) == [], text
    assert sum(len(t) for t in texts) <= LIMIT


def webhook(receiver: Receiver, msg: Message) -> dict[str, Any]:
    """Send through json:// to the local receiver; the JSON it got."""
    plugin = apprise.Apprise.instantiate(receiver.url)
    count = len(receiver.bodies())
    assert plugin.notify(body=msg.body, title=msg.title, body_format=apprise.NotifyFormat.MARKDOWN)
    return receiver.wait_for(count + 1)[-1]


# -- messages with something injected ----------------------------------------------------------


def _finish(**extra: Any) -> dict[str, Any]:
    ev: dict[str, Any] = {"v": 1, "ev": "finish", "job": "node5-1001-abcd1234", "host": "node5",
                          "pid": 1001, "ts": 1759489201.0, "start_ts": 1759487159.0,
                          "title": "train", "cmd": "python train.py --epochs 3",
                          "cwd": "/home/ana/proj", "exit": 3, "signal": None}
    ev.update(extra)
    return ev


def _with(field: str, inj: str) -> dict[str, Any]:
    """A failed job's finish event with `inj` in one field."""
    if field == "tail":
        return _finish(tail=f"epoch 1\n{inj}\nepoch 2", tail_file="/home/ana/proj/train.log")
    if field == "tail_file":
        return _finish(tail="epoch 1", tail_file=f"/home/ana/{inj}.log")
    if field == "attach_error":
        return _finish(attach="/home/ana/plot.png", attach_error=f"too big {inj}")
    if field == "log":
        return _finish(detached=True, log=f"/home/ana/{inj}.log")
    if field == "cmd":
        return _finish(cmd=f"python run.py {inj}", title="")
    return _finish(**{field: f"x {inj}"})


FIELDS = ["title", "cmd", "cwd", "host", "group", "tail", "tail_file", "attach", "error",
          "attach_error", "log", "was_lost"]
CASES = [pytest.param(f, inj, id=f"{f}-{name}") for f in FIELDS for name, inj in INJECTIONS.items()]


@pytest.mark.parametrize(("field", "inj"), CASES)
def test_finished_job_text_cannot_ping_or_link_on_discord(
        discord: Callable[..., dict[str, Any]], field: str, inj: str) -> None:
    msg = fit(finished(_with(field, inj)), LIMIT)
    for url in (DISCORD, DISCORD_EMBEDS):
        payload = discord(msg, url)
        assert_safe_on_discord(payload)
        assert plain(inj) in plain("\n".join(_texts(payload)))  # still there to read


# One receiver per field, every injection through it: a receiver takes 0.5 s to stop.
@pytest.mark.parametrize("field", FIELDS)
def test_finished_job_text_cannot_ping_or_link_at_a_webhook(receiver: Receiver, field: str) -> None:
    for name, inj in INJECTIONS.items():
        got = webhook(receiver, fit(finished(_with(field, inj)), LIMIT))
        assert live(got["title"]) + live(got["message"]) == [], name
        assert plain(inj) in plain(got["title"] + "\n" + got["message"]), name


@pytest.mark.parametrize("field", [f for f in FIELDS if f != "tail"])
def test_a_line_break_in_a_job_field_cannot_start_a_line_of_its_own(field: str) -> None:
    msg = finished(_with(field, INJECTIONS["fake_line"]))
    assert "\n" not in msg.title
    assert not any(line.startswith("✅ 12 jobs") for line in lines_outside_code(msg.body))


def test_a_fence_in_the_tail_stays_inside_the_code_block() -> None:
    body = finished(_with("tail", "```\n@everyone\n```")).body
    assert [line for line in body.splitlines() if "```" in line] == ["```", "```"]
    inside = body.split("```\n", 1)[1].rsplit("\n```", 1)[0]
    assert plain(inside) == "epoch 1 ``` @everyone ``` epoch 2"


DIGEST_FIELDS = ["title", "host", "lost", "cmd"]


def _digest_jobs(field: str, inj: str) -> list[dict[str, Any]]:
    jobs = [_finish(job=f"node5-{i}-a", exit=i % 2) for i in range(5)]
    if field == "lost":
        jobs.append(_finish(job="node7-1-a", host="node7", exit=None, lost=f"host rebooted {inj}"))
    elif field == "cmd":
        jobs.append(_finish(job="node7-1-a", title="", cmd=f"python {inj}"))
    else:
        jobs.append(_finish(job="node7-1-a", **{field: f"x {inj}"}))
    return jobs


DIGEST_CASES = [pytest.param(f, inj, id=f"{f}-{name}")
                for f in DIGEST_FIELDS for name, inj in INJECTIONS.items()]


@pytest.mark.parametrize(("field", "inj"), DIGEST_CASES)
def test_digest_cannot_ping_or_link_on_discord(
        discord: Callable[..., dict[str, Any]], field: str, inj: str) -> None:
    msg = digest(_digest_jobs(field, inj), LIMIT)
    for url in (DISCORD, DISCORD_EMBEDS):
        payload = discord(msg, url)
        assert_safe_on_discord(payload)
        assert plain(inj) in plain("\n".join(_texts(payload)))


@pytest.mark.parametrize("field", DIGEST_FIELDS)
def test_digest_cannot_ping_or_link_at_a_webhook(receiver: Receiver, field: str) -> None:
    for name, inj in INJECTIONS.items():
        got = webhook(receiver, digest(_digest_jobs(field, inj), LIMIT))
        assert live(got["title"]) + live(got["message"]) == [], name
        assert plain(inj) in plain(got["title"] + "\n" + got["message"]), name


GROUP_FIELDS = ["name", "title", "host"]


def _group(field: str, inj: str) -> tuple[str, list[dict[str, Any]]]:
    jobs: list[dict[str, Any]] = [
        {"title": f"fit {i}", "host": "node5", "outcome": "ok", "duration": 60.0 * i,
         "exit": 0, "signal": None} for i in range(1, 4)]
    jobs.append({"title": "fit 9", "host": "node6", "outcome": "failed", "duration": 30.0,
                 "exit": 3, "signal": None})
    jobs.append({"title": "fit 10", "host": "node7", "outcome": "lost", "duration": None,
                 "exit": None, "signal": None})
    name = "sweep"
    if field == "name":
        name = f"sweep {inj}"
    else:
        jobs[3][field] = f"x {inj}"
        jobs[4][field] = f"y {inj}"
        jobs[2]["title"] = f"z {inj}" if field == "title" else jobs[2]["title"]  # the longest
    return name, jobs


GROUP_CASES = [pytest.param(f, inj, id=f"{f}-{name}")
               for f in GROUP_FIELDS for name, inj in INJECTIONS.items()]


@pytest.mark.parametrize(("field", "inj"), GROUP_CASES)
def test_group_summary_cannot_ping_or_link_on_discord(
        discord: Callable[..., dict[str, Any]], field: str, inj: str) -> None:
    msg = group_done(*_group(field, inj), LIMIT)
    for url in (DISCORD, DISCORD_EMBEDS):
        payload = discord(msg, url)
        assert_safe_on_discord(payload)
        assert plain(inj) in plain("\n".join(_texts(payload)))


@pytest.mark.parametrize("field", GROUP_FIELDS)
def test_group_summary_cannot_ping_or_link_at_a_webhook(receiver: Receiver, field: str) -> None:
    for name, inj in INJECTIONS.items():
        got = webhook(receiver, group_done(*_group(field, inj), LIMIT))
        assert live(got["title"]) + live(got["message"]) == [], name
        assert plain(inj) in plain(got["title"] + "\n" + got["message"]), name


# -- within Discord's 2,000 characters -----------------------------------------------------------


def test_a_huge_finished_message_fits_discord_and_keeps_its_code_block_closed(
        discord: Callable[..., dict[str, Any]]) -> None:
    tail = "\n".join(f"{i:03d} loss 0.1 @everyone [x](http://evil.example) " + "y" * 200
                     for i in range(50))
    ev = _finish(title="t" * 200, cmd="python " + "a" * 1490, tail=tail, tail_file="/tmp/log")
    payload = discord(fit(finished(ev), LIMIT))
    assert_safe_on_discord(payload)
    assert payload["content"].endswith("… (cut to fit; `notifyd jobs` lists every job)")


def test_a_digest_of_400_jobs_fits_discord_says_how_many_more_and_puts_failures_first(
        discord: Callable[..., dict[str, Any]]) -> None:
    jobs = [_finish(job=f"node{i % 5}-{i}-a", host=f"node{i % 5}", title=f"step {i}",
                    exit=0, duration=600.0) for i in range(400)]
    jobs[390]["exit"] = 3
    jobs[395].update(exit=None, lost="host node0 rebooted")
    content = discord(digest(jobs, LIMIT))["content"]
    assert len(content) <= LIMIT
    lines = content.split("\r\n", 1)[1].splitlines()
    assert lines[0].startswith("❌ step 390")
    assert lines[1].startswith("❓ step 395")
    shown = [line for line in lines if line.startswith(("✅", "❌", "❓"))]
    more = re.fullmatch(r"… and (\d+) more: `notifyd jobs --since 1h`", lines[-1])
    assert more, lines[-1]
    assert len(shown) + int(more.group(1)) == 400


def test_a_group_summary_of_many_failures_fits_discord(discord: Callable[..., dict[str, Any]]) -> None:
    jobs = [{"title": f"case {i} " + "q" * 50, "host": "node5", "outcome": "failed", "duration": 5.0,
             "exit": 1, "signal": None} for i in range(200)]
    payload = discord(group_done("big", jobs, LIMIT))
    assert_safe_on_discord(payload)


# -- each fact, as Discord shows it ---------------------------------------------------------------


@pytest.fixture
def shown(discord: Callable[..., dict[str, Any]]) -> Callable[..., str]:
    """shown(**fields): the Discord content for a finish event with these fields."""
    def show(**fields: Any) -> str:
        return str(discord(fit(finished(_finish(**fields)), LIMIT))["content"]).replace(ZWSP, "")
    return show


@pytest.fixture
def timezone() -> Iterator[Callable[[str], None]]:
    """set(TZ): the local time zone for this test (POSIX TZ strings need no tz database)."""
    saved = os.environ.get("TZ")

    def use(tz: str) -> None:
        os.environ["TZ"] = tz
        time.tzset()

    yield use
    if saved is None:
        os.environ.pop("TZ", None)
    else:
        os.environ["TZ"] = saved
    time.tzset()


def test_exit_status_is_told_in_words(shown: Callable[..., str]) -> None:
    content = shown(exit=3)
    assert "(exit 3)" in content.split("\r\n")[0]
    assert "**exit 3** · after 34 min 02 s" in content


def test_a_signal_is_told_by_name(shown: Callable[..., str]) -> None:
    assert "**killed by SIGTERM**" in shown(exit=None, signal=signal.SIGTERM)


def test_sigkill_with_the_kernels_oom_word_says_possibly_out_of_memory(shown: Callable[..., str]) -> None:
    content = shown(exit=None, signal=signal.SIGKILL, oom=True)
    assert "(killed by SIGKILL, possibly out of memory)" in content.split("\r\n")[0]
    assert "**killed by SIGKILL** · possibly out of memory" in content


def test_sigkill_near_the_nodes_memory_says_possibly_out_of_memory(shown: Callable[..., str]) -> None:
    content = shown(exit=None, signal=signal.SIGKILL, maxrss_kb=58 * 1024**2, mem_total_kb=64 * 1024**2)
    assert "possibly out of memory" in content


@pytest.mark.parametrize("fields", [
    {"exit": None, "signal": signal.SIGKILL},
    {"exit": None, "signal": signal.SIGKILL, "oom": False, "maxrss_kb": 1024**2,
     "mem_total_kb": 64 * 1024**2},
    {"exit": None, "signal": signal.SIGTERM, "oom": True},
    {"exit": 1, "maxrss_kb": 63 * 1024**2, "mem_total_kb": 64 * 1024**2},
], ids=["sigkill-no-evidence", "sigkill-small", "sigterm-oom-flag", "exit-1-big"])
def test_no_out_of_memory_hint_without_sigkill_and_evidence(
        shown: Callable[..., str], fields: dict[str, Any]) -> None:
    assert "out of memory" not in shown(**fields)


def test_sighup_says_the_terminal_closed_and_suggests_pingch_d(shown: Callable[..., str]) -> None:
    content = shown(exit=None, signal=signal.SIGHUP)
    assert "(the terminal closed: run it with pingch -d to keep it going after logout)" in content


def test_sighup_of_a_detached_job_does_not_suggest_detaching(shown: Callable[..., str]) -> None:
    assert "pingch -d" not in shown(exit=None, signal=signal.SIGHUP, detached=True, log="/tmp/j.log")


def test_start_and_end_are_in_the_local_time_zone(
        shown: Callable[..., str], timezone: Callable[[str], None]) -> None:
    timezone("IST-5:30")  # 10:25:59 UTC is 15:55:59 in India
    assert "2025-10-03 15:55:59 → 16:30:01 (+05:30)" in shown()


def test_a_job_over_midnight_shows_both_dates(
        shown: Callable[..., str], timezone: Callable[[str], None]) -> None:
    timezone("UTC0")
    content = shown(start_ts=1759535940.0, ts=1759536060.0)  # 23:59 → 00:01 UTC
    assert "2025-10-03 23:59:00 → 2025-10-04 00:01:00 (+00:00)" in content


def test_cpu_efficiency_with_cores_is_a_share_of_those_cores(shown: Callable[..., str]) -> None:
    assert "CPU 50 min 00 s (75% of 4 cores)" in shown(cpu_s=3000.0, duration=1000.0, cores=4)


def test_cpu_efficiency_of_one_core_says_core(shown: Callable[..., str]) -> None:
    assert "(50% of 1 core)" in shown(cpu_s=500.0, duration=1000.0, cores=1)


def test_cpu_efficiency_without_cores_is_cores_busy_on_average(shown: Callable[..., str]) -> None:
    assert "CPU 41 min 40 s (2.5 cores busy on average)" in shown(cpu_s=2500.0, duration=1000.0)


def test_no_cpu_efficiency_for_a_job_that_took_no_time(shown: Callable[..., str]) -> None:
    content = shown(cpu_s=0.0, duration=0.0, start_ts=None, cores=2)
    assert "CPU 0.0 s" in content
    assert "cores" not in content
    assert "core busy" not in content


def test_peak_rss_with_the_share_of_the_nodes_memory(shown: Callable[..., str]) -> None:
    assert "peak RSS 16.0 GiB (25% of the node's memory)" in shown(
        maxrss_kb=16 * 1024**2, mem_total_kb=64 * 1024**2)


def test_peak_rss_below_pingchs_own_is_an_upper_bound(shown: Callable[..., str]) -> None:
    assert "peak RSS ≤ 11.7 MiB" in shown(maxrss_kb=12_000, maxrss_floor_kb=12_400)


def test_tail_is_a_code_block_headed_by_its_file(shown: Callable[..., str]) -> None:
    content = shown(tail="epoch 9 loss 0.31\nTraceback: *boom*", tail_file="/home/ana/proj/train.log")
    assert "last lines of `/home/ana/proj/train.log`:\n```\nepoch 9 loss 0.31\nTraceback: *boom*\n```" \
        in content


def test_tail_shows_what_the_terminal_showed(shown: Callable[..., str]) -> None:
    content = shown(tail="\x1b[31merror\x1b[0m\r\n10%\r50%\r100%", tail_file="/tmp/o")
    assert "```\nerror\n100%\n```" in content


def test_hide_command_leaves_the_command_out(shown: Callable[..., str]) -> None:
    content = shown(hide_command=True, cmd="python secret.py --token abc", title="python")
    assert "secret" not in content
    assert "$ " not in content
    assert content.startswith("❌ python failed on node5")


def test_hide_command_still_allows_the_tail(shown: Callable[..., str]) -> None:
    content = shown(hide_command=True, cmd="", title="python", tail="done", tail_file="/tmp/o")
    assert "```\ndone\n```" in content


def test_command_is_shown_as_code(shown: Callable[..., str]) -> None:
    assert "`$ python train.py --epochs 3`" in shown()


def test_a_multi_line_command_is_a_code_block(shown: Callable[..., str]) -> None:
    assert "command:\n```\nfor i in 1 2; do\n  echo $i\ndone\n```" in shown(
        cmd="for i in 1 2; do\n  echo $i\ndone")


def test_group_is_named(shown: Callable[..., str]) -> None:
    assert "node5 · pid 1001 · group sweep-3 ·" in shown(group="sweep-3")


def test_detached_job_says_where_its_output_went(shown: Callable[..., str]) -> None:
    assert "detached; output in `/home/ana/job.log`" in shown(detached=True, log="/home/ana/job.log")


def test_attach_sets_the_file_and_notes_it() -> None:
    msg = finished(_finish(attach="/home/ana/proj/loss.png"))
    assert msg.attach == "/home/ana/proj/loss.png"
    assert "📎 `/home/ana/proj/loss.png`" in msg.body


def test_attach_error_is_told_and_nothing_is_attached(shown: Callable[..., str]) -> None:
    msg = finished(_finish(attach="/home/ana/big.bin", attach_error="larger than 25 MiB"))
    assert msg.attach == ""
    assert "⚠️ could not attach `/home/ana/big.bin`: larger than 25 MiB" in shown(
        attach="/home/ana/big.bin", attach_error="larger than 25 MiB")


def test_cwd_is_shown_as_code(shown: Callable[..., str]) -> None:
    assert "in `/home/ana/proj`" in shown()
