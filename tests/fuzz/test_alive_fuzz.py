"""The liveness mark's line (spool/alive.py) and the node's files it is made from (procfs.node_figures).

Whatever a mark holds (another host's garbage, a line cut short, binary),
parse_alive never raises and keeps only known keys with sane values; what
pingch writes from any /proc-like files parses back to exactly the figures
it read.
"""

from __future__ import annotations

import math
import tempfile
from pathlib import Path

from fuzz.hostile import cases, number, text
from hypothesis import given
from hypothesis import strategies as st

from notifyd import procfs
from notifyd.spool import alive

ODD_VALUES = ["", "-1", "+1", "nan", "NaN", "inf", "-inf", "1e5", "0x10", "1_000", "²", "٣", "３",
              "9" * 30, "1.2.3", ".", "1.", ".5", " 1", "0", "00", "12.50", "3.14159", "1" * 25]
VALUE = st.one_of(st.sampled_from(ODD_VALUES), st.integers(-(10**20), 10**20).map(str),
                  st.floats(allow_nan=True, allow_infinity=True).map(repr), number().map(str), text(12))
KEY = st.one_of(st.sampled_from([*alive.KEYS, "mem", "load", "cores ", "MEM_TOTAL_KB", ""]), text(10))
WORD = st.builds(lambda k, sep, v: f"{k}{sep}{v}", KEY, st.sampled_from(["=", "=", "==", ":", ""]), VALUE)


@st.composite
def mark(draw: st.DrawFn) -> str:
    """A mark's text: words of keys and values, usual or odd, joined by odd separators."""
    words = draw(st.lists(WORD, max_size=10))
    sep = draw(st.sampled_from([" ", " ", "  ", "\t", "\n", "\x00", "\r"]))
    end = draw(st.sampled_from(["\n", "\n", "", "\r\n", "\nmore=1\n", "\x00"]))
    return sep.join(words) + end


ANY_MARK = st.one_of(mark(), text(200), st.binary(max_size=300).map(lambda b: b.decode("utf-8", "replace")),
                     st.just("1\n"), st.just(""))


def _sane(found: dict[str, float]) -> None:
    assert set(found) <= set(alive.KEYS)
    for key, value in found.items():
        assert isinstance(value, float if key in alive.FLOAT_KEYS else int), (key, value)
        assert math.isfinite(value) and alive.LEAST.get(key, 0) <= value <= alive.LIMITS[key], (key, value)


@cases(3000)
@given(ANY_MARK)
def test_any_mark_parses_to_known_keys_with_sane_values_and_never_raises(text_: str) -> None:
    _sane(alive.parse_alive(text_))


@cases(1000)
@given(st.lists(st.sampled_from(alive.KEYS), min_size=1, max_size=8), st.integers(0, 10**6))
def test_a_key_given_twice_is_dropped(keys: list[str], value: int) -> None:
    found = alive.parse_alive(" ".join(f"{k}={value}" for k in keys) + "\n")
    for key in keys:
        if keys.count(key) > 1:
            assert key not in found


FIGURES = st.fixed_dictionaries({}, optional={
    "mem_total_kb": st.integers(1, 1 << 50), "mem_avail_kb": st.integers(0, 1 << 50),
    "swap_total_kb": st.integers(0, 1 << 50), "swap_free_kb": st.integers(0, 1 << 50),
    "load1": st.integers(0, 10**8 - 1).map(lambda n: n / 100), "cores": st.integers(1, 1 << 20)})


@cases(1000)
@given(FIGURES)
def test_what_pingch_writes_parses_back_to_the_same_figures(figures: dict[str, float]) -> None:
    line = alive.encode(figures)
    assert line.isascii() and line.endswith(b"\n") and line.count(b"\n") == 1
    assert alive.parse_alive(line.decode()) == figures


MEMINFO_LINE = st.one_of(
    st.builds(lambda k, v, u: f"{k}{v}{u}", st.sampled_from(["MemTotal:", "MemAvailable:", "SwapTotal:",
                                                            "SwapFree:", "MemFree:", "memtotal:"]),
              st.sampled_from([" ", "       ", "\t", ""]).flatmap(lambda s: VALUE.map(lambda v: s + v)),
              st.sampled_from([" kB", "", " MB", "kB"])),
    text(40))


@cases(500)
@given(st.lists(MEMINFO_LINE, max_size=8), st.one_of(VALUE, text(40)),
       st.binary(max_size=100), st.booleans())
def test_any_proc_files_give_a_mark_that_parses_back_to_what_was_read(
        meminfo: list[str], loadavg: str, junk: bytes, binary: bool) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        proc = Path(tmp)
        lines = "\n".join(meminfo).encode("utf-8", "surrogatepass")
        (proc / "meminfo").write_bytes(junk if binary else lines)
        (proc / "loadavg").write_bytes(f"{loadavg} 0.5 0.5 1/100 42\n".encode("utf-8", "surrogatepass"))
        figures = procfs.node_figures(str(proc))
    wanted = {k: (round(v, 2) if k in alive.FLOAT_KEYS else v) for k, v in figures.items()}
    parsed = alive.parse_alive(alive.encode(figures).decode())
    # What the node's files gave and the parser refuses (a MemTotal of 0) is all that may differ.
    assert {k: v for k, v in wanted.items() if k in parsed} == parsed
    assert set(wanted) - set(parsed) <= {k for k, v in wanted.items() if v < alive.LEAST.get(k, 0)}
