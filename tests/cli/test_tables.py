"""Tables in terminal columns: wide characters count twice, cut cells say so, colour costs no width."""

from __future__ import annotations

import pytest

from notifyd.cli.tables import colour, cut, shown, table, width_of
from notifyd.notify.defuse import ZWSP


def test_wide_characters_take_two_columns_and_combining_marks_none() -> None:
    assert width_of("計算") == 4
    assert width_of("e\u0301") == 1
    assert width_of("ab") == 2


def test_cut_ends_in_an_ellipsis_within_the_width() -> None:
    assert cut("relax-long-title", 6) == "relax…"
    assert cut("計算計算", 5) == "計算…"
    assert cut("short", 5) == "short"


def test_shown_drops_zero_width_spaces_and_escapes_control_characters() -> None:
    assert shown(f"@{ZWSP}everyone\nx") == "@everyone\\nx"
    assert shown("") == "-"


def test_table_aligns_columns_and_right_aligns_numbers() -> None:
    lines = table(["TITLE", "PID"], [["a", "7"], ["bbb", "1234"]], 80, flex=0, right=frozenset({1}))
    assert lines == ["TITLE PID", "a        7", "bbb   1234"]  # headers stay left


def test_table_drops_droppable_columns_before_the_title_gets_too_narrow() -> None:
    rows = [["a title of some length", "node5", "12 min 03 s"]]
    lines = table(["TITLE", "HOST", "DURATION"], rows, 26, flex=0, droppable=(2,))
    assert lines[0].split() == ["TITLE", "HOST"]
    assert all(width_of(line) <= 26 for line in lines)


def test_no_colour_off_a_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NO_COLOR", raising=False)
    assert colour("busy", "31") == "busy"  # pytest captures stdout: not a terminal
