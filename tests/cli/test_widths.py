"""Every `notifyd` help screen and every `notifyd status` line fits an 80-column terminal.

The real commands run with their output piped (so nothing tells them a
wider terminal is there) in a home whose paths are short enough to fit: a
single word longer than the line (a long home's path, a masked URL) is kept
whole on purpose, so it can still be copied.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from harness import NOTIFYD, Home, Receiver, WatcherProc, fast_config, new_home, wait_until

from notifyd.cli import app as cli_app
from notifyd.cli.commands import status

WIDTH = 80
VERBS = [[], *([c.name] for c in cli_app.app.registered_commands),
         *([g.name] for g in cli_app.app.registered_groups),
         *(["cron", c.name] for c in cli_app.cron_app.registered_commands)]
# The value types recent typer releases print: after a plain flag, or where a metavar names the value.
TYPE_MARK = re.compile(r"<(bool|str|int|float|list)")


@pytest.fixture
def short_home() -> Iterator[Home]:
    root = Path(tempfile.mkdtemp(prefix="nw", dir="/tmp"))
    home = new_home(root / "h", host="vm")
    for name in ("COLUMNS", "LINES", "TERMINAL_WIDTH"):
        home.env.pop(name, None)
    yield home
    home.kill_watchers()
    shutil.rmtree(root, ignore_errors=True)


def _run(home: Home, *args: str) -> str:
    p = subprocess.run([NOTIFYD, *args], env=home.env, capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    return p.stdout


def _too_wide(text: str) -> list[str]:
    return [line for line in text.splitlines() if len(line) > WIDTH]


@pytest.mark.parametrize("verb", VERBS, ids=lambda v: " ".join(v) or "notifyd")
def test_help_fits_80_columns_and_names_values_not_types(short_home: Home, verb: list[str]) -> None:
    out = _run(short_home, *verb, "--help")
    assert "Usage: notifyd" in out
    assert _too_wide(out) == []
    assert TYPE_MARK.findall(out) == []  # `--debug`, not `--debug <bool>`; `--since DURATION`


def test_status_without_a_url_fits_80_columns_and_points_to_init(short_home: Home) -> None:
    out = _run(short_home, "status")
    assert _too_wide(out) == []
    assert "none, so nothing is being pushed" in out
    assert re.search(r"to get them on Discord, Matrix, email\.\.\.:\s+\S*notifyd init\n", out)


def test_status_with_a_failing_url_and_a_running_watcher_fits_80_columns(
        short_home: Home, receiver: Receiver) -> None:
    receiver.status = 500
    short_home.write_config(fast_config(receiver.url))
    watcher = WatcherProc(short_home).start()
    try:
        assert short_home.pingch("-t", "a-job-with-a-rather-long-title-for-the-status-line", "true"
                                 ).returncode == 0
        wait_until(lambda: "failing" in _run(short_home, "status"), 30, "the URL to be retried")
        out = _run(short_home, "status")
    finally:
        watcher.stop()
    assert "watcher:    running" in out
    assert _too_wide(out) == []


def test_a_status_line_is_wrapped_under_the_values_and_long_words_kept_whole(
        capsys: pytest.CaptureFixture[str]) -> None:
    path = "/home/" + "x" * 90 + "/notifyd.conf"
    status._say("config:     " + "word " * 20 + path)
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("config:     word") and len(lines[0]) <= WIDTH
    assert all(line.startswith(" " * 12) for line in lines[1:])
    assert lines[-1] == " " * 12 + path  # whole, so it can be copied


@pytest.mark.parametrize("pad", range(0, 40, 3))
def test_a_command_to_type_is_never_split_across_lines(capsys: pytest.CaptureFixture[str], pad: int) -> None:
    # CI's clone lives deeper than a checkout here, so its hint wrapped between "notifyd" and "ensure".
    command = "/check/" + "d" * pad + "/.venv/bin/notifyd ensure"
    status._say(f"watcher:    not running; start it with: {command}", whole=(command,))
    out = capsys.readouterr().out
    assert command in out.splitlines()[-1]
    assert _too_wide(out) == [] or out.splitlines()[-1].strip() == command


def test_a_nul_in_a_wrapped_line_is_shown_escaped_not_turned_into_a_space(
        capsys: pytest.CaptureFixture[str]) -> None:
    status._say("state:      " + "word " * 15 + "a\0b notifyd drop", whole=("notifyd drop",))
    out = capsys.readouterr().out
    assert "a\\x00b notifyd drop" in out and "\0" not in out
