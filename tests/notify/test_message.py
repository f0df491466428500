"""From a finish event to the notification text: outcome, facts, and no mentions."""

from __future__ import annotations

import re
from typing import Any

import pytest

from notifyd.notify import message, outcome
from notifyd.notify.defuse import ZWSP, defuse
from notifyd.notify.message import describe_exit, finished
from notifyd.records import RunningJob


def _finish(**extra: Any) -> dict[str, Any]:
    ev: dict[str, Any] = {"v": 1, "ev": "finish", "job": "node5-1001-abcd1234", "host": "node5",
                          "pid": 1001, "ts": 1759489201.0, "start_ts": 1759487159.0,
                          "title": "train", "cmd": "python train.py --epochs 3",
                          "cwd": "/home/ana/proj", "exit": 0, "signal": None}
    ev.update(extra)
    return ev


# -- describe_exit -------------------------------------------------------------------------

@pytest.mark.parametrize(
    ("fields", "expected"),
    [({"exit": 0}, "exit 0"),
     ({"exit": 3}, "exit 3"),
     ({"exit": None, "signal": 9}, "killed by SIGKILL"),
     ({"exit": None, "signal": 15}, "killed by SIGTERM"),
     ({"exit": None}, "exit unknown"),
     ({}, "exit unknown")],
)
def test_describe_exit(fields: dict[str, Any], expected: str) -> None:
    assert describe_exit(fields) == expected


def test_describe_exit_prefers_the_signal_over_an_exit_code() -> None:
    assert describe_exit({"exit": 137, "signal": 9}) == "killed by SIGKILL"


def test_describe_exit_names_an_unknown_signal_by_number() -> None:
    assert describe_exit({"signal": 250}) == "killed by signal 250"


def test_describe_exit_does_not_take_a_bool_for_an_exit_code() -> None:
    assert describe_exit({"exit": True}) == "exit unknown"


# -- finished: title and kind ------------------------------------------------------------------

def test_successful_job_gives_success_with_check_mark() -> None:
    msg = finished(_finish(exit=0))
    assert msg.severity == "success"
    assert msg.title.startswith("✅")
    assert "train" in msg.title
    assert "node5" in msg.title


def test_failed_job_gives_failure_with_exit_code_in_title() -> None:
    msg = finished(_finish(exit=3))
    assert msg.severity == "failure"
    assert msg.title.startswith("❌")
    assert "exit 3" in msg.title


@pytest.mark.parametrize(("num", "name"), [(9, "SIGKILL"), (15, "SIGTERM")])
def test_killed_job_gives_failure_with_signal_name_in_title(num: int, name: str) -> None:
    msg = finished(_finish(exit=None, signal=num))
    assert msg.severity == "failure"
    assert name in msg.title


def test_unknown_exit_gives_info() -> None:
    msg = finished(_finish(exit=None))
    assert msg.severity == "info"
    assert "exit" not in msg.title


def test_title_falls_back_to_the_command_then_the_pid() -> None:
    assert "python train.py" in finished(_finish(title="")).title
    assert "pid 1001" in finished(_finish(title="", cmd="")).title


# -- finished: body --------------------------------------------------------------------------------

def test_body_contains_host_cwd_and_command() -> None:
    body = finished(_finish()).body
    assert "node5" in body
    assert "/home/ana/proj" in body
    assert "python train.py --epochs 3" in body


def test_body_contains_duration_in_human_form() -> None:
    body = finished(_finish(start_ts=1000.0, ts=1000.0 + 2 * 3600 + 5 * 60)).body
    assert "after 2 h 05 min" in body


def test_body_prefers_the_measured_duration() -> None:
    assert "after 45 s" in finished(_finish(duration=45.0)).body


@pytest.mark.parametrize(("kib", "text"), [(204_800, "peak RSS 200.0 MiB"),
                                           (3 * 1024 * 1024, "peak RSS 3.0 GiB")])
def test_body_contains_peak_rss_in_mib_or_gib(kib: int, text: str) -> None:
    assert text in finished(_finish(maxrss_kb=kib)).body


def test_body_contains_cpu_time() -> None:
    assert "CPU 2 min 05 s" in finished(_finish(cpu_s=125.0)).body


def test_body_of_legacy_job_says_where_it_came_from() -> None:
    assert "~/.pingchilling" in finished(_finish(legacy=True)).body


# -- defuse ---------------------------------------------------------------------------------------

@pytest.mark.parametrize(
    "mention",
    ["@everyone", "@here", "@room", "@Everyone", "@HERE", "<@123>", "<@!123>", "<@&456>", "<#789>",
     "<!channel>", "<:emoji:1>"],
)
def test_defuse_breaks_mention_but_keeps_it_readable(mention: str) -> None:
    text = f"ping {mention} now"
    out = defuse(text)
    assert mention not in out
    assert out.replace(ZWSP, "") == text


def test_defuse_leaves_ordinary_text_alone() -> None:
    text = "ana@node5: 3 < 4, email me at a@b.org"
    assert defuse(text) == text


def test_everyone_as_title_does_not_mention_anyone() -> None:
    msg = finished(_finish(title="@everyone"))
    assert "@everyone" not in msg.title
    assert "everyone" in msg.title


@pytest.mark.parametrize("field", ["cmd", "cwd", "host", "error"])
def test_mentions_in_other_job_fields_are_defused(field: str) -> None:
    msg = finished(_finish(**{field: "x @here <@123> y"}))
    assert "@here" not in msg.title + msg.body
    assert "<@123>" not in msg.title + msg.body


# -- words for numbers ---------------------------------------------------------------------------

def test_signal_name_of_a_known_signal() -> None:
    assert outcome.signal_name(2) == "SIGINT"


def test_peak_rss_not_above_pingchs_own_is_shown_as_an_upper_bound() -> None:
    ev = {"ev": "finish", "job": "h-1-a", "host": "h", "pid": 1, "ts": 1_700_000_000.0,
          "exit": 0, "maxrss_kb": 12_000, "maxrss_floor_kb": 12_400}
    assert "peak RSS ≤ 11.7 MiB" in finished(ev).body
    ev["maxrss_kb"] = 20 * 1024 * 1024
    assert "peak RSS 20.0 GiB" in finished(ev).body


# -- defuse: links, tags, lines of their own -------------------------------------------

@pytest.mark.parametrize(
    "text",
    ["[click](http://x)", "[x](<http://x>)", "[click][ref]", "[ref]: http://x", "![i](http://x/i.png)",
     '<a href="http://x">ok</a>', "||spoiler||", "&#64;everyone", "```", "@123456", "@&456",
     "@admin:matrix.org", "a\n# heading", "a\r# heading", "a\n> quote", "a\n===", "a\n- item", "a\n1. item"],
)
def test_defuse_breaks_markdown_with_zero_width_spaces_only(text: str) -> None:
    out = defuse(text)
    assert out != text
    assert out.replace(ZWSP, "") == text


def test_defuse_leaves_words_around_brackets_and_pipes_alone() -> None:
    text = "a[0] (b) | c && d; x > 1 at 12:30"
    assert defuse(text) == text


# -- finished: more content -------------------------------------------------------------------

def test_body_says_possibly_out_of_memory_for_an_oom_kill() -> None:
    msg = finished(_finish(exit=None, signal=9, oom=True))
    assert "possibly out of memory" in msg.title
    assert "possibly out of memory" in msg.body


def test_hide_command_keeps_the_command_out_of_title_and_body() -> None:
    msg = finished(_finish(title="", cmd="python secret.py", hide_command=True))
    assert "secret" not in msg.title + msg.body
    assert "pid 1001" in msg.title


def test_hide_command_keeps_the_working_directory_out_of_the_message() -> None:
    # An older pingch still recorded the directory with --hide-command: it stays home all the same.
    hidden = _finish(cmd="", hide_command=True, cwd="/home/ana/secret-project")
    for msg in (finished(hidden), message.started({**hidden, "ev": "start"}),
                message.lost(hidden, "host node5 rebooted")):
        assert "secret-project" not in msg.title + msg.body
    assert "in `/home/ana/proj`" in finished(_finish()).body  # shown when not hidden


def test_a_hidden_running_job_keeps_no_directory_for_its_lost_message() -> None:
    start = _finish(ev="start", cmd="", hide_command=True, cwd="/home/ana/secret-project")
    running = RunningJob.from_event(start)
    assert running.cwd is None
    assert "secret-project" not in message.lost(running.as_event("node5-1001-abcd1234"), "gone").body


def test_hide_command_names_the_tail_attachment_and_log_by_file_name_only() -> None:
    msg = finished(_finish(cmd="", hide_command=True, cwd="", tail="converged",
                           tail_file="/home/ana/secret-project/out.log",
                           attach="/home/ana/secret-project/plot.png", detached=True,
                           log="/home/ana/secret-project/run.log"))
    assert "secret-project" not in msg.body
    assert "last lines of `out.log`:" in msg.body and "converged" in msg.body
    assert "📎 `plot.png`" in msg.body and "output in `run.log`" in msg.body
    assert msg.attach == "/home/ana/secret-project/plot.png"  # the file itself is still sent


def test_a_message_without_attachment_attaches_nothing() -> None:
    assert finished(_finish()).attach == ""


def test_attach_note_defuses_path_and_reason() -> None:
    note = message.attach_note("/tmp/@everyone.png", "no <@1> here")
    assert "@everyone" not in note
    assert "<@1>" not in note
    assert note.replace(ZWSP, "") == "⚠️ could not attach `/tmp/@everyone.png`: no <@1> here"


# -- started and lost ---------------------------------------------------------------------------

def test_started_says_title_and_host_as_info() -> None:
    msg = message.started(_finish(ev="start", group="sweep"))
    assert msg.title == "▶️ train started on node5"
    assert msg.severity == "info"
    assert "group sweep" in msg.body
    assert "python train.py --epochs 3" in msg.body


def test_started_hides_the_command_when_asked() -> None:
    assert "train.py" not in message.started(_finish(ev="start", hide_command=True)).body


def test_lost_says_why_and_shows_no_hidden_command() -> None:
    msg = message.lost({"host": "node5", "pid": 7, "title": "fit", "cmd": "", "hide_command": True},
                       "host node5 rebooted")
    assert msg.title == "❓ fit lost on node5"
    assert msg.body.startswith("lost: host node5 rebooted")
    assert msg.severity == "failure"


@pytest.mark.parametrize(("start_ts", "said"), [
    (1e308, "started at an unknown time"), (1e18, "started at Unix time 1e+18 (not a date)"),
    (2.0**62, "(not a date)")], ids=repr)
def test_a_loss_of_a_job_started_at_a_time_no_calendar_holds_is_still_told(
        start_ts: float, said: str) -> None:
    # Before: time.localtime raised OverflowError (or OSError) and the lost check failed every round.
    msg = message.lost({"host": "node5", "pid": 7, "title": "fit", "start_ts": start_ts}, "its host rebooted")
    assert said in msg.body
    assert msg.title == "❓ fit lost on node5"


@pytest.mark.parametrize(("field", "value"), [
    ("ts", 1e300), ("start_ts", 10**400), ("duration", float("nan")), ("cpu_s", float("inf")),
    ("cores", 10**400), ("maxrss_kb", 10**400), ("mem_total_kb", float("nan")),
], ids=lambda v: str(v)[:12])
def test_a_finished_job_with_an_absurd_number_is_told_without_it(field: str, value: float) -> None:
    # Before: OverflowError or ValueError from float(), int(), round() or time.localtime().
    body = finished({**_finish(cpu_s=10.0, duration=20.0, cores=2), field: value}).body
    assert "exit 0" in body


def test_a_group_summary_takes_members_with_odd_outcomes_and_huge_durations() -> None:
    # Before: TypeError for an outcome that is a list, OverflowError for the duration.
    msg = message.group_done("sweep", [{"title": "a", "outcome": ["ok"], "duration": 10**400},
                                       {"title": "b", "outcome": "ok", "duration": 60.0}], 2000)
    assert "1 unknown" in msg.title
    assert "total run time 1 min 00 s" in msg.body


def test_a_pid_that_is_text_is_defused_like_the_rest() -> None:
    assert "pid @\u200beveryone" in message.lost({"host": "node5", "pid": "@everyone"}, "gone").body


def test_an_entity_at_the_end_of_a_field_cannot_be_completed_by_our_own_text() -> None:
    # "(reported lost earlier: &#64; this is how it ended)": the ";" is ours.
    body = finished(_finish(was_lost="&#64")).body
    assert "&#64;" not in body
    assert "&\u200b#64;" in body


# -- fit ---------------------------------------------------------------------------------------------

def _size(msg: message.Message) -> int:
    return len(msg.title) + message.JOINER + len(msg.body)


def test_fit_leaves_a_message_that_fits_alone() -> None:
    msg = finished(_finish())
    assert message.fit(msg, 2000) == msg


def test_fit_cuts_the_body_at_a_line_and_says_so() -> None:
    msg = message.Message("t", "\n".join(f"line {i:03d}" for i in range(500)), "info")
    out = message.fit(msg, 200)
    assert _size(out) <= 200
    lines = out.body.splitlines()
    assert lines[-1] == "… (cut to fit; `notifyd jobs` lists every job)"
    assert all(re.fullmatch(r"line \d{3}", line) for line in lines[:-1])


def test_fit_closes_a_code_block_it_cut_open() -> None:
    tail = "\n".join(f"step {i}" for i in range(400))
    out = message.fit(finished(_finish(tail=tail, tail_file="/tmp/log")), 1000)
    lines = out.body.splitlines()
    assert lines[-2:] == ["```", "… (cut to fit; `notifyd jobs` lists every job)"]
    assert sum(line == "```" for line in lines) == 2


def test_fit_cuts_a_title_longer_than_half_the_limit() -> None:
    out = message.fit(message.Message("x" * 3000, "body", "info"), 2000)
    assert len(out.title) == 1000
    assert out.title.endswith("…")


@pytest.mark.parametrize("limit", [60, 100, 150, 333, 1000, 2000])
def test_fit_is_never_over_the_limit(limit: int) -> None:
    ev = _finish(title="t" * 200, cmd="c " * 700, tail="\n".join("z" * 300 for _ in range(5)))
    assert _size(message.fit(finished(ev), limit)) <= limit


# -- digest ------------------------------------------------------------------------------------------

def _jobs(n: int, **extra: Any) -> list[dict[str, Any]]:
    return [_finish(job=f"node5-{i}-a", title=f"job {i}", duration=720.0, **extra) for i in range(n)]


def test_digest_title_counts_outcomes_and_names_hosts() -> None:
    jobs = [*_jobs(35), _finish(host="node2", exit=3), _finish(host="node2", exit=None, signal=9)]
    assert message.digest(jobs, 2000).title == "37 jobs finished on node2, node5: 35 ok, 2 failed"


def test_digest_title_counts_lost_jobs() -> None:
    jobs = [*_jobs(2), _finish(exit=None, lost="host rebooted")]
    assert message.digest(jobs, 2000).title == "3 jobs finished on node5: 2 ok, 1 lost"


def test_digest_title_names_three_hosts_and_counts_the_rest() -> None:
    jobs = [_finish(host=f"node{i}") for i in range(1, 8)]
    assert message.digest(jobs, 2000).title.startswith(
        "7 jobs finished on node1, node2, node3 and 4 more hosts: 7 ok")


def test_digest_lists_failures_then_lost_then_ok_ones() -> None:
    jobs = [*_jobs(2), _finish(title="bad", exit=3, duration=7380.0),
            _finish(title="gone", exit=None, lost="host node5 rebooted")]
    lines = message.digest(jobs, 2000).body.splitlines()
    assert lines == ["❌ bad · node5 · exit 3 · 2h 3m",
                     "❓ gone · node5 · lost: host node5 rebooted",
                     "✅ job 0 · node5 · 12m",
                     "✅ job 1 · node5 · 12m"]


def test_digest_kind_is_failure_when_any_failed_or_lost() -> None:
    assert message.digest(_jobs(3), 2000).severity == "success"
    assert message.digest([*_jobs(3), _finish(exit=1)], 2000).severity == "failure"
    assert message.digest([*_jobs(3), _finish(exit=None, lost="gone")], 2000).severity == "failure"


@pytest.mark.parametrize("limit", [200, 500, 2000])
def test_digest_of_many_jobs_stops_and_says_how_many_more(limit: int) -> None:
    msg = message.digest(_jobs(400), limit)
    assert _size(msg) <= limit
    lines = msg.body.splitlines()
    more = re.fullmatch(r"… and (\d+) more: `notifyd jobs --since 1h`", lines[-1])
    assert more
    assert len(lines) - 1 + int(more.group(1)) == 400


# -- few: a small batch -------------------------------------------------------------------------------

def _few(*evs: dict[str, Any], limit: int = 2000) -> message.Message:
    return message.few(list(evs), [finished(ev) for ev in evs], limit)


def test_a_small_batch_has_the_digest_title_and_each_jobs_own_title_failures_first() -> None:
    msg = _few(_finish(title="good"), _finish(title="bad", exit=2))
    assert msg.title == "2 jobs finished on node5: 1 ok, 1 failed"
    assert msg.severity == "failure"
    heads = [line for line in msg.body.splitlines() if line.startswith(("✅", "❌"))]
    assert heads == ["❌ bad failed on node5 (exit 2)", "✅ good finished on node5"]


def test_a_small_batch_keeps_each_jobs_directory_command_and_memory() -> None:
    msg = _few(_finish(title="a", cwd="/data/a", maxrss_kb=4 * 1024 ** 2), _finish(title="b", cmd="./b --x"))
    for words in ("in `/data/a`", "peak RSS 4.0 GiB", "`$ ./b --x`", "after 34 min 02 s"):
        assert words in msg.body


def test_a_small_batch_keeps_the_last_five_lines_of_each_jobs_output() -> None:
    tail = "\n".join(f"step {i}" for i in range(1, 11))
    body = _few(_finish(title="a", tail=tail), _finish(title="b")).body
    block = body[body.index("```") + 4:]
    assert block.split("\n```")[0].splitlines() == ["…", "step 6", "step 7", "step 8", "step 9", "step 10"]


def test_a_small_batch_keeps_the_first_lines_of_a_multi_line_command() -> None:
    cmd = "\n".join(f"echo {i}" for i in range(1, 9))
    body = _few(_finish(title="a", cmd=cmd), _finish(title="b")).body
    assert "echo 1" in body and "echo 5" in body and "echo 6" not in body


def test_a_small_batch_hides_the_command_when_the_job_hid_it() -> None:
    body = _few(_finish(title="a", hide_command=True, cmd="secret --token x"), _finish(title="b")).body
    assert "secret" not in body


@pytest.mark.parametrize("limit", [300, 1000, 2000])
def test_a_small_batch_of_long_messages_fits_and_keeps_every_jobs_title(limit: int) -> None:
    big = "\n".join("z" * 300 for _ in range(50))
    evs = [_finish(title=f"job{i}", exit=i, cmd="c " * 400, tail=big) for i in range(3)]
    msg = _few(*evs, limit=limit)
    assert _size(msg) <= limit
    assert all(f"job{i}" in msg.body for i in range(3))
    assert msg.body.count("```") % 2 == 0  # no code block left open


# -- group_done -----------------------------------------------------------------------------------

def _member(title: str, outcome: str, duration: float | None, **extra: Any) -> dict[str, Any]:
    return {"title": title, "host": "node5", "outcome": outcome, "duration": duration,
            "exit": 0 if outcome == "ok" else None, "signal": None, **extra}


def test_group_done_title_counts_outcomes() -> None:
    jobs = [_member(f"c{i}", "ok", 60.0) for i in range(10)]
    jobs += [_member("bad", "failed", 5.0, exit=3), _member("gone", "lost", None)]
    msg = message.group_done("sweep", jobs, 2000)
    assert msg.title == "📦 group sweep done: 12 jobs: 10 ok, 1 failed, 1 lost"
    assert msg.severity == "failure"


def test_group_done_body_has_total_time_longest_job_and_failures() -> None:
    jobs = [_member("a", "ok", 600.0), _member("long one", "ok", 3600.0),
            _member("bad", "failed", 5.0, exit=None, signal=9), _member("gone", "lost", None)]
    lines = message.group_done("sweep", jobs, 2000).body.splitlines()
    assert lines == ["total run time 1 h 10 min · longest: long one (1 h 00 min)",
                     "❌ bad · node5 · killed by SIGKILL",
                     "❓ gone · node5 · lost"]


def test_group_done_of_only_successes_is_success() -> None:
    msg = message.group_done("g", [_member("a", "ok", 1.0)], 2000)
    assert msg.severity == "success"
    assert msg.title == "📦 group g done: 1 job: 1 ok"


def test_group_done_fits_its_limit() -> None:
    jobs = [_member(f"case {i}", "failed", 1.0, exit=1) for i in range(300)]
    assert _size(message.group_done("g", jobs, 500)) <= 500


@pytest.mark.parametrize(("host", "shown"), [("[x]", "[x]\u200b"), ("a<", "a<\u200b")])
def test_a_bracket_at_the_end_of_a_field_cannot_be_completed_by_our_own_text(host: str, shown: str) -> None:
    # A digest's title puts ": " after the host names: "]:" starts a reference-link
    # definition, "<:" a Discord emoji tag.
    title = message.digest([_finish(host=host, exit=1)], 2000).title
    assert "]:" not in title and "<:" not in title
    assert f"{shown}: 0 ok, 1 failed" in title
