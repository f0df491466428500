"""Text in terminal columns, for the verbs that print tables (jobs, procs, nodes).

Widths are terminal columns, not characters: CJK and emoji take two,
combining marks none, so a job titled in Japanese still lines up. Colour is
added after padding, so escape codes never count as width.
"""

from __future__ import annotations

import os
import sys
import unicodedata
from collections.abc import Sequence

from notifyd.notify.defuse import ZWSP
from notifyd.text import printable

MIN_TITLE = 12  # below this a title says little; drop a figure column instead
GAP = " "  # as in notifyd procs: 80 columns hold seven columns and a title


def colour(text: str, code: str) -> str:
    """ANSI colour on a terminal only (and never with NO_COLOR set)."""
    if sys.stdout.isatty() and not os.environ.get("NO_COLOR"):
        return f"\033[{code}m{text}\033[0m"
    return text


def _char_width(c: str) -> int:
    # Terminal columns: CJK and emoji take two, combining and format characters none.
    if unicodedata.combining(c) or unicodedata.category(c) in ("Mn", "Me", "Cf"):
        return 0
    return 2 if unicodedata.east_asian_width(c) in ("W", "F") else 1


def width_of(text: str) -> int:
    return sum(_char_width(c) for c in text)


def cut(text: str, width: int) -> str:
    """`text` in at most `width` terminal columns, ending in "…" when shortened."""
    if width_of(text) <= width:
        return text
    out, used = [], 0
    for c in text:
        w = _char_width(c)
        if used + w > width - 1:
            break
        out.append(c)
        used += w
    return "".join(out) + "…"


def _pad(text: str, width: int, right: bool) -> str:
    room = " " * max(0, width - width_of(text))
    return room + text if right else text + room


def shown(text: str) -> str:
    """Job-supplied text on one table line: control characters escaped. The
    zero-width spaces that defuse mentions in messages mean nothing here."""
    return printable(text.replace(ZWSP, "")) or "-"


def table(headers: Sequence[str], rows: list[list[str]], width: int, *, flex: int,
          right: frozenset[int] = frozenset(), droppable: Sequence[int] = (),
          colours: dict[int, dict[str, str]] | None = None) -> list[str]:
    """Rows as aligned lines in `width` columns.

    Column `flex` (the title) takes the room left; when it would get fewer
    than MIN_TITLE columns, the `droppable` columns go first, in that order.
    `colours` maps a column to {cell text: ANSI code}, applied after padding
    so escape codes never count as width.
    """
    keep = list(range(len(headers)))
    natural = [max(width_of(c) for c in [headers[i], *(r[i] for r in rows)]) for i in keep]

    def fixed(cols: list[int]) -> int:
        return sum(natural[i] for i in cols if i != flex) + len(GAP) * (len(cols) - 1)

    for drop in droppable:
        if width - fixed(keep) >= min(MIN_TITLE, natural[flex]):
            break
        keep.remove(drop)
    widths = {i: natural[i] for i in keep}
    widths[flex] = max(1, min(natural[flex], width - fixed(keep)))
    lines = []
    for n, row in enumerate([list(headers), *rows]):
        plain, coloured = [], []
        for i in keep:
            text = _pad(cut(row[i], widths[i]), widths[i], i in right and n > 0)
            code = (colours or {}).get(i, {}).get(row[i]) if n > 0 else None
            plain.append(text)
            coloured.append(colour(text, code) if code else text)
        line = GAP.join(plain).rstrip()
        # Still too wide (a huge host name, say): cut the line, as procs does.
        lines.append(GAP.join(coloured).rstrip() if width_of(line) <= width else cut(line, width))
    return lines
