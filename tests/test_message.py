"""From a finish event to the notification text: outcome, facts, and no mentions."""

from __future__ import annotations

from typing import Any

import pytest

from notifyd import message
from notifyd.message import ZWSP, describe_exit, finished, human_duration, human_kib, neutralise


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
    assert msg.kind == "success"
    assert msg.title.startswith("✅")
    assert "train" in msg.title
    assert "node5" in msg.title


def test_failed_job_gives_failure_with_exit_code_in_title() -> None:
    msg = finished(_finish(exit=3))
    assert msg.kind == "failure"
    assert msg.title.startswith("❌")
    assert "exit 3" in msg.title


@pytest.mark.parametrize(("num", "name"), [(9, "SIGKILL"), (15, "SIGTERM")])
def test_killed_job_gives_failure_with_signal_name_in_title(num: int, name: str) -> None:
    msg = finished(_finish(exit=None, signal=num))
    assert msg.kind == "failure"
    assert name in msg.title


def test_unknown_exit_gives_info() -> None:
    msg = finished(_finish(exit=None))
    assert msg.kind == "info"
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


# -- neutralise ---------------------------------------------------------------------------------------

@pytest.mark.parametrize(
    "mention",
    ["@everyone", "@here", "@room", "@Everyone", "@HERE", "<@123>", "<@!123>", "<@&456>", "<#789>",
     "<!channel>", "<:emoji:1>"],
)
def test_neutralise_breaks_mention_but_keeps_it_readable(mention: str) -> None:
    text = f"ping {mention} now"
    out = neutralise(text)
    assert mention not in out
    assert out.replace(ZWSP, "") == text


def test_neutralise_leaves_ordinary_text_alone() -> None:
    text = "ana@node5: 3 < 4, email me at a@b.org"
    assert neutralise(text) == text


def test_everyone_as_title_does_not_mention_anyone() -> None:
    msg = finished(_finish(title="@everyone"))
    assert "@everyone" not in msg.title
    assert "everyone" in msg.title


@pytest.mark.parametrize("field", ["cmd", "cwd", "host", "error"])
def test_mentions_in_other_job_fields_are_neutralised(field: str) -> None:
    msg = finished(_finish(**{field: "x @here <@123> y"}))
    assert "@here" not in msg.title + msg.body
    assert "<@123>" not in msg.title + msg.body


# -- human units ------------------------------------------------------------------------------------

@pytest.mark.parametrize(
    ("seconds", "text"),
    [(3.2, "3.2 s"), (0.0, "0.0 s"), (45, "45 s"), (59.6, "1 min 00 s"), (125, "2 min 05 s"),
     (2 * 3600, "2 h 00 min"), (3 * 86400, "3 d 00 h"), (3 * 86400 + 5 * 3600, "3 d 05 h")],
)
def test_human_duration(seconds: float, text: str) -> None:
    assert human_duration(seconds) == text


@pytest.mark.parametrize(
    ("kib", "text"),
    [(0.5, "512 B"), (1, "1 KiB"), (512, "512 KiB"), (2048, "2.0 MiB"), (1536 * 1024, "1.5 GiB"),
     (3 * 1024**3, "3.0 TiB"), (5000 * 1024**3, "5000.0 TiB")],
)
def test_human_kib(kib: float, text: str) -> None:
    assert human_kib(kib) == text


def test_signal_name_of_a_known_signal() -> None:
    assert message.signal_name(2) == "SIGINT"


def test_peak_rss_not_above_pingchs_own_is_shown_as_an_upper_bound() -> None:
    ev = {"ev": "finish", "job": "h-1-a", "host": "h", "pid": 1, "ts": 1_700_000_000.0,
          "exit": 0, "maxrss_kb": 12_000, "maxrss_floor_kb": 12_400}
    assert "peak RSS ≤ 11.7 MiB" in finished(ev).body
    ev["maxrss_kb"] = 20 * 1024 * 1024
    assert "peak RSS 20.0 GiB" in finished(ev).body
