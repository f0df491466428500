"""Human formats and their parsers: sizes as config and --mem take them, durations and sizes as shown."""

from __future__ import annotations

import time

import pytest

from notifyd.text import (
    human_age,
    human_bytes,
    human_duration,
    human_elapsed,
    human_kib,
    parse_size,
    printable,
    short_date,
    short_duration,
)

KiB, MiB, GiB, TiB = 1024, 1024**2, 1024**3, 1024**4


# -- parse_size: one grammar for log_max_size and --mem ------------------------------------------

@pytest.mark.parametrize(
    ("text", "size"),
    [("123", 123), ("0", 0), ("500k", 500 * KiB), ("500kb", 500 * KiB), ("1M", MiB), ("1G", GiB),
     ("2gb", 2 * GiB), ("512MB", 512 * MiB), ("1.5T", int(1.5 * TiB)), ("20GiB", 20 * GiB),
     ("20Gi", 20 * GiB), ("20gib", 20 * GiB), ("4KiB", 4 * KiB), ("1.5M", int(1.5 * MiB)),
     (".5G", GiB // 2), ("100B", 100), ("100b", 100), (" 2 G ", 2 * GiB), ("1.3k", 1331)],
)
def test_size_parses(text: str, size: int) -> None:
    assert parse_size(text) == size


def test_a_long_byte_count_is_exact() -> None:
    assert parse_size("9007199254740993") == 2**53 + 1  # one more than a float holds exactly


@pytest.mark.parametrize(
    "text",
    ["", "lots", "G", "-1", "-1G", "+1G", "1.", "1.5X", "1e3", "1_000", "1,5G", "inf", "nan",
     "20 GB B", "20i", "20ib", "1P"],
)
def test_not_a_size_is_refused_with_the_expected_form(text: str) -> None:
    with pytest.raises(ValueError, match=r"^a size such as 500k, 20G or 1\.5T$"):
        parse_size(text)


def test_a_size_of_8_eib_or_more_is_refused() -> None:
    assert parse_size("8388607T") == 2**63 - TiB
    with pytest.raises(ValueError, match="below 8 EiB"):
        parse_size("8388608T")
    with pytest.raises(ValueError, match="below 8 EiB"):
        parse_size("9" * 400)


@pytest.mark.parametrize("n", [0, 1, 512, 1023, KiB, 812 * KiB, 150 * MiB, int(7.7 * GiB), int(1.5 * TiB),
                               300 * TiB])
def test_human_bytes_reads_back_within_its_rounding(n: int) -> None:
    assert abs(parse_size(human_bytes(n)) - n) <= 0.05 * n


# -- sizes shown -------------------------------------------------------------------------------------

@pytest.mark.parametrize(
    ("n", "text"),
    [(0, "0B"), (1023, "1023B"), (812 * KiB, "812K"), (int(7.7 * GiB), "7.7G"), (150 * MiB, "150M"),
     (2000 * TiB, "2000T")],
)
def test_human_bytes(n: float, text: str) -> None:
    assert human_bytes(n) == text


@pytest.mark.parametrize(
    ("kib", "text"),
    [(0.5, "512 B"), (1, "1 KiB"), (512, "512 KiB"), (2048, "2.0 MiB"), (1536 * 1024, "1.5 GiB"),
     (3 * 1024**3, "3.0 TiB"), (5000 * 1024**3, "5000.0 TiB")],
)
def test_human_kib(kib: float, text: str) -> None:
    assert human_kib(kib) == text


# -- durations shown ---------------------------------------------------------------------------------

@pytest.mark.parametrize(
    ("seconds", "text"),
    [(3.2, "3.2 s"), (0.0, "0.0 s"), (45, "45 s"), (59.6, "1 min 00 s"), (125, "2 min 05 s"),
     (2 * 3600, "2 h 00 min"), (3 * 86400, "3 d 00 h"), (3 * 86400 + 5 * 3600, "3 d 05 h")],
)
def test_human_duration(seconds: float, text: str) -> None:
    assert human_duration(seconds) == text


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(45, "45s"), (720, "12m"), (7380, "2h 3m"), (7200, "2h"), (3 * 86400 + 5 * 3600, "3d 5h")],
)
def test_short_duration(seconds: float, text: str) -> None:
    assert short_duration(seconds) == text


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(5, "00:05"), (65.9, "01:05"), (3725, "01:02:05"), (2 * 86400 + 3 * 3600 + 4 * 60 + 5, "2-03:04:05")],
)
def test_human_elapsed_is_as_ps_shows_it(seconds: float, text: str) -> None:
    assert human_elapsed(seconds) == text


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(23, "23 s"), (119, "119 s"), (120, "2 min"), (7200, "2 h 00 min"), (2 * 86400, "2 d")],
)
def test_human_age(seconds: float, text: str) -> None:
    assert human_age(seconds) == text


# -- text --------------------------------------------------------------------------------------------

def test_printable_escapes_control_characters_and_keeps_the_rest() -> None:
    assert printable("python -c 'a\nb'\t→ ok") == "python -c 'a\\nb'\\t→ ok"
    assert printable("plain") == "plain"


def test_short_date_shows_the_year_only_for_another_year() -> None:
    now = time.mktime((2026, 6, 1, 12, 0, 0, 0, 0, -1))
    assert short_date(time.mktime((2026, 5, 2, 9, 12, 0, 0, 0, -1)), now) == "05-02 09:12"
    assert short_date(time.mktime((2025, 12, 30, 9, 12, 0, 0, 0, -1)), now) == "2025-12-30 09:12"
