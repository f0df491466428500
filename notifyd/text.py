"""Numbers and names as people read and type them: every human format, each beside its parser.

    parse_duration("1.5h") == 5400.0     human_duration(5400) == "1 h 30 min"
    parse_size("1.5T") == 1.5 * 2**40    human_bytes(8_270_000_000) == "7.7G"

Durations: parse_duration for what people type (config, --since);
human_duration for messages, short_duration for one line per job,
human_elapsed as ps shows it, human_age for how old a snapshot is.
Dates: short_date for one line per job (the year only when it is not this one).
Sizes: parse_size for what people type (config, --mem); human_bytes for
tables, human_kib for messages. Shares: parse_percent for the config. printable keeps job-supplied text on one
table line. Sizes are binary throughout (k = 1024), as ps, top and free say.

Stdlib only and cheap to import: every verb and the watcher use it.
"""

from __future__ import annotations

import re
import time

# -- durations ------------------------------------------------------------------------------

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|min|h|d)?\s*$")
_UNITS = {None: 1.0, "ms": 0.001, "s": 1.0, "m": 60.0, "min": 60.0, "h": 3600.0, "d": 86400.0}


def parse_duration(text: str) -> float:
    """'1s', '500ms', '2m', '1.5h', '3d' or a bare number of seconds."""
    match = _DURATION.match(text)
    if not match:
        raise ValueError("a duration such as 500ms, 1s, 2m, 1h or 3d")
    return float(match.group(1)) * _UNITS[match.group(2)]


def human_duration(seconds: float) -> str:
    if seconds < 10:
        return f"{seconds:.1f} s"
    s = round(seconds)
    if s < 60:
        return f"{s} s"
    m, s = divmod(s, 60)
    if m < 60:
        return f"{m} min {s:02d} s"
    h, m = divmod(m, 60)
    if h < 24:
        return f"{h} h {m:02d} min"
    d, h = divmod(h, 24)
    return f"{d} d {h:02d} h"


def short_duration(seconds: float) -> str:
    """'45s', '12m', '2h 3m', '3d 5h': for one line per job."""
    s = round(seconds)
    if s < 60:
        return f"{s}s"
    m = round(seconds / 60)
    if m < 60:
        return f"{m}m"
    h, m = divmod(m, 60)
    if h < 24:
        return f"{h}h {m}m" if m else f"{h}h"
    d, h = divmod(h, 24)
    return f"{d}d {h}h" if h else f"{d}d"


def human_elapsed(seconds: float) -> str:
    """ps-style elapsed time: MM:SS, HH:MM:SS, D-HH:MM:SS."""
    s = int(seconds)
    d, s = divmod(s, 86400)
    h, s = divmod(s, 3600)
    m, s = divmod(s, 60)
    if d:
        return f"{d}-{h:02d}:{m:02d}:{s:02d}"
    if h:
        return f"{h:02d}:{m:02d}:{s:02d}"
    return f"{m:02d}:{s:02d}"


def human_age(seconds: float) -> str:
    s = int(seconds)
    if s < 120:
        return f"{s} s"
    if s < 7200:
        return f"{s // 60} min"
    if s < 2 * 86400:
        return f"{s // 3600} h {s % 3600 // 60:02d} min"
    return f"{s // 86400} d"


def short_date(ts: float, now: float) -> str:
    """'05-02 09:12' for a local time in this year, '2025-12-30 09:12' for one in another."""
    when = time.localtime(ts)
    same_year = when.tm_year == time.localtime(now).tm_year
    return time.strftime("%m-%d %H:%M" if same_year else "%Y-%m-%d %H:%M", when)


# -- sizes ------------------------------------------------------------------------------------

# A number (whole or decimal), then optionally a unit: K, M, G or T, bare or
# with "B", "iB" or "i" after it (20G, 20GB, 20GiB, 20Gi), or "B" alone for bytes.
# Any case, spaces allowed around the unit. "B" never means bits here.
_SIZE = re.compile(r"\s*(\d+(?:\.\d+)?|\.\d+)\s*(?:([kmgt])(?:i?b|i)?|b)?\s*", re.IGNORECASE)
_SIZE_SCALE = {None: 1, "k": 1024, "m": 1024**2, "g": 1024**3, "t": 1024**4}
_SIZE_LIMIT = 2**63  # what a signed 64-bit byte count holds: 8 EiB


def parse_size(text: str) -> int:
    """'500k', '1M', '20GiB', '1.5T', '2gb' or a number of bytes, as a number of bytes."""
    match = _SIZE.fullmatch(text)
    if not match:
        raise ValueError("a size such as 500k, 20G or 1.5T")
    number, unit = match.group(1), match.group(2)
    scale = _SIZE_SCALE[unit.lower() if unit else None]
    # Whole numbers stay ints, so a byte count of any length is exact.
    size = float(number) * scale if "." in number else int(number) * scale
    if size >= _SIZE_LIMIT:
        raise ValueError("a size below 8 EiB")
    return int(size)


_PERCENT = re.compile(r"\s*(\d+(?:\.\d+)?)\s*%?\s*")


def parse_percent(text: str) -> float:
    """'10 %', '7.5%' or a bare number, from 0 to 100, as a percentage."""
    match = _PERCENT.fullmatch(text)
    if not match or float(match.group(1)) > 100:
        raise ValueError("a percentage from 0 to 100, such as 10 %")
    return float(match.group(1))


def human_bytes(n: float) -> str:
    """Compact sizes for tables: 812K, 7.7G."""
    for unit in ("B", "K", "M", "G", "T"):
        if abs(n) < 1024 or unit == "T":
            return f"{n:.0f}{unit}" if unit in ("B", "K") or n >= 100 else f"{n:.1f}{unit}"
        n /= 1024
    return f"{n:.1f}T"


def human_kib(kib: float) -> str:
    value = float(kib) * 1024
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{value:.0f} {unit}" if unit in ("B", "KiB") else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} TiB"


# -- text ---------------------------------------------------------------------------------------


def printable(text: str) -> str:
    """One table row per process: control characters (a newline inside a
    `python -c` script) are shown escaped instead of breaking the line."""
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)
