"""Lines of the old bash function's ~/.pingchilling file."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from notifyd.spool.legacy import parse


@pytest.fixture(autouse=True)
def utc(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Legacy times are local times: pin the zone so timestamps are known."""
    monkeypatch.setenv("TZ", "UTC0")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


STARTED_TS = 1759496759.0  # 2025-10-03 13:05:59 UTC
FINISHED_TS = 1759498801.0  # 2025-10-03 13:40:01 UTC


def test_started_line_is_parsed() -> None:
    item = parse(b"1001@node5: Started [python] 2025-10-03 13:05:59")
    assert (item.kind, item.pid, item.host, item.arg) == ("start", 1001, "node5", "python")
    assert item.ts == STARTED_TS


def test_finished_line_is_parsed() -> None:
    item = parse(b"1001@node5: Finished [0] 2025-10-03 13:40:01")
    assert (item.kind, item.pid, item.host, item.arg) == ("finish", 1001, "node5", "0")
    assert item.ts == FINISHED_TS


def test_start_and_finish_of_one_job_share_a_key() -> None:
    start = parse(b"1001@node5: Started [python] 2025-10-03 13:05:59")
    finish = parse(b"1001@node5: Finished [0] 2025-10-03 13:40:01")
    assert start.key == finish.key == "1001@node5"


def test_times_are_read_in_this_hosts_time_zone(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TZ", "XYZ-2")  # UTC+2
    time.tzset()
    assert parse(b"1001@node5: Started [python] 2025-10-03 13:05:59").ts == STARTED_TS - 2 * 3600


def test_title_with_brackets_and_spaces_is_kept_whole() -> None:
    item = parse(b"42@gpu-01.lab: Started [python train.py [fold 2] --lr 0.1] 2025-10-03 13:05:59")
    assert item.arg == "python train.py [fold 2] --lr 0.1"
    assert item.host == "gpu-01.lab"


def test_empty_title_is_allowed() -> None:
    assert parse(b"42@node5: Started [] 2025-10-03 13:05:59").arg == ""


def test_utf8_title_is_decoded() -> None:
    assert parse("42@node5: Started [entraîner 😀] 2025-10-03 13:05:59".encode()).arg == "entraîner 😀"


def test_trailing_whitespace_is_allowed() -> None:
    assert parse(b"42@node5: Finished [1] 2025-10-03 13:40:01  \r").arg == "1"


@pytest.mark.parametrize(
    "line",
    [b"",
     b"garbage",
     b"1001@node5 Started [python] 2025-10-03 13:05:59",
     b"abc@node5: Started [python] 2025-10-03 13:05:59",
     b"1001@node 5: Started [python] 2025-10-03 13:05:59",
     b"1001@node5: Running [python] 2025-10-03 13:05:59",
     b"1001@node5: Started python 2025-10-03 13:05:59",
     b"1001@node5: Started [python] 2025-10-03",
     b"1001@node5: Started [python] 03/10/2025 13:05:59",
     b"1001@node5: Started [python] 2025-10-03 13:05:59 extra"],
    ids=repr,
)
def test_garbage_line_is_rejected_with_a_reason(line: bytes) -> None:
    with pytest.raises(ValueError, match="not a 'PID@host: Started"):
        parse(line)


@pytest.mark.parametrize("when", ["2025-13-03 13:05:59", "2025-02-30 10:00:00", "2025-10-03 25:00:00",
                                  "2025-10-03 13:61:00"])
def test_bad_date_is_rejected_with_a_reason(when: str) -> None:
    with pytest.raises(ValueError, match=f"bad date '{when}'"):
        parse(f"1001@node5: Started [python] {when}".encode())


def test_non_utf8_bytes_are_rejected_with_a_reason() -> None:
    with pytest.raises(ValueError, match="not UTF-8"):
        parse(b"1001@node5: Started [\xff\xfe] 2025-10-03 13:05:59")


@pytest.mark.parametrize("pid", ["٣", "9" * 5000, "9" * 19], ids=lambda p: f"{p[:3]}x{len(p)}")
def test_a_pid_of_another_scripts_digits_or_of_thousands_of_digits_is_rejected_with_our_reason(
        pid: str) -> None:
    # Before: "٣" was taken as pid 3, and 5,000 nines raised int()'s own ValueError.
    with pytest.raises(ValueError, match="not a 'PID@host: Started"):
        parse(f"{pid}@node5: Started [python] 2025-10-03 13:05:59".encode())


@pytest.mark.parametrize("when", ["9999-12-31 23:59:59", "0001-01-01 00:00:00", "1969-12-31 23:59:59"])
def test_a_date_no_event_could_hold_is_rejected_with_a_reason(when: str) -> None:
    with pytest.raises(ValueError, match="not between 1970 and 2242"):
        parse(f"1001@node5: Started [python] {when}".encode())
