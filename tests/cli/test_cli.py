"""The `notifyd` verbs as a user meets them: output, exit codes, error messages."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from harness import NOTIFYD, Home, Receiver, fast_config


def test_test_command_reports_each_url_and_succeeds_when_all_work(
        home: Home, receiver: Receiver) -> None:
    home.write_config(fast_config(receiver.url))
    code, out, _ = home.notifyd("test")
    assert code == 0
    assert out.startswith("ok") and f"127.0.0.1:{receiver.port}" in out
    assert "notifyd test" in str(receiver.wait_for(1)[0]["title"])


def test_test_command_exits_4_and_names_the_failing_url(home: Home, receiver: Receiver) -> None:
    receiver.status = 500
    home.write_config(fast_config(receiver.url))
    code, out, _ = home.notifyd("test")
    assert code == 4
    assert "FAILED" in out and f"127.0.0.1:{receiver.port}" in out


def test_test_command_without_url_points_to_init_in_short_lines(home: Home) -> None:
    home.env["PATH"] = "/usr/bin:/bin"  # notifyd off PATH, as after Quickstart 1
    code, _, err = home.notifyd("test")
    assert code == 4
    lines = err.splitlines()
    assert lines[0].startswith("no URL configured") and lines[2] == f"  {NOTIFYD} init"
    assert len(lines) == 3 and all(len(line) <= 80 for line in lines)


def _start_hint(status_out: str) -> str:
    """The command status says to start a watcher with, on the line it was printed on."""
    lines = status_out.splitlines()
    at = next(i for i, line in enumerate(lines) if "start it with:" in line)
    after = lines[at].split("start it with:", 1)[1].strip()
    return after or lines[at + 1].strip()  # a long path moves the whole command to the next line


def test_status_names_ensure_as_it_can_be_typed_here(home: Home) -> None:
    home.env["PATH"] = "/usr/bin:/bin"  # notifyd off PATH, as after Quickstart 1
    assert _start_hint(home.notifyd("status")[1]) == f"{NOTIFYD} ensure"
    home.env["PATH"] = f"{Path(NOTIFYD).parent}:/usr/bin:/bin"
    assert _start_hint(home.notifyd("status")[1]) == "notifyd ensure"


def test_masked_urls_hide_passwords_in_test_output(home: Home, receiver: Receiver) -> None:
    home.write_config(fast_config(f"json://bob:pa55word@127.0.0.1:{receiver.port}/hook"))
    code, out, _ = home.notifyd("test")
    assert code == 0 and "pa55word" not in out


def test_bad_value_names_file_key_value_and_expected_form(home: Home) -> None:
    path = home.write_config("[watcher]\npoll_interval = soon\n")
    code, _, err = home.notifyd("status")
    assert code == 3
    assert str(path) in err or str(path) in _ + err
    assert "poll_interval" in _ + err and "'soon'" in _ + err and "duration" in _ + err


def test_unknown_key_is_an_error_listing_the_known_keys(home: Home) -> None:
    path = home.write_config("[watcher]\npoll_intervall = 1s\n")
    code, _, err = home.notifyd("ensure")
    assert code == 3
    assert str(path) in err and "poll_intervall" in err and "poll_interval" in err
    assert "Traceback" not in err


def test_url_apprise_cannot_parse_is_a_config_error_without_leaking_it(home: Home) -> None:
    home.write_config("[notify]\nurls = nosuchscheme://secretvalue@host\n")
    code, _, err = home.notifyd("test")
    assert code == 3
    assert "nosuchscheme://****" in err and "secretvalue" not in err


def test_debug_flag_shows_the_traceback(home: Home) -> None:
    home.write_config("[watcher]\npoll_interval = soon\n")
    code, _, err = home.notifyd("--debug", "ensure")
    assert code == 3 and "Traceback" in err


def test_status_json_is_valid_and_says_nothing_is_pushed_without_urls(home: Home) -> None:
    code, out, _ = home.notifyd("status", "--json")
    report = json.loads(out)
    assert code == 0
    assert report["watcher"] is None and report["pushing"] is False
    assert report["urls"] == [] and report["pending"] == 0


def test_stop_without_a_watcher_says_so_and_succeeds(home: Home) -> None:
    assert home.notifyd("stop") == (0, "no watcher is running\n", "")


def test_inbox_is_empty_at_first_and_says_what_to_check(home: Home) -> None:
    code, out, _ = home.notifyd("inbox")
    assert code == 0 and "notifyd status" in out


def test_unknown_command_is_a_usage_error(home: Home) -> None:
    code, _, err = home.notifyd("frobnicate")
    assert code == 2 and "frobnicate" in err


def test_python_m_notifyd_runs_the_same_cli(home: Home) -> None:
    p = subprocess.run([sys.executable, "-m", "notifyd", "stop"], env=home.env,
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 0 and "no watcher" in p.stdout
