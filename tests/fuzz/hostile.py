"""Generated hostile input for the fuzz tests: one test file per reader of outside data, this is their kit.

Each property is a plain test over `@given(...)` input. How many cases it
draws is `cases(n)`: n in the default profile, scaled for the long one.
The profiles are registered in tests/conftest.py and picked by
HYPOTHESIS_PROFILE:

    HYPOTHESIS_PROFILE=ci    (the default) the same cases on every run: derandomized,
                             no deadline, so CI is repeatable on a loaded machine
    HYPOTHESIS_PROFILE=long  twenty times as many cases, new ones each run:
                             .venv/bin/pytest -p no:cacheprovider tests/fuzz

The sum of every test's n is the number of cases a CI run draws
(test_budget.py checks it stays at 10,000 or more). A failure prints the
smallest input found and a blob that replays it (@reproduce_failure).
"""

from __future__ import annotations

import math
import random
from typing import Any

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

DEFAULT_EXAMPLES = 100  # hypothesis's own default, which the "ci" profile keeps


def cases(n: int) -> settings:
    """Settings for a property drawing `n` cases per CI run (scaled like the profile's max_examples)."""
    scale = max(1.0, settings.default.max_examples / DEFAULT_EXAMPLES)
    return settings(max_examples=int(n * scale),
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


# -- text ---------------------------------------------------------------------------------------

# What a job's title, command, output or host name may hold to fool a chat
# service or a terminal (tests/notify/test_content_safety.py has the list the
# messages are checked against).
INJECTIONS = [
    "@everyone", "@here", "@room", "@EVERYONE", "@Here", "<@123456789012345678>", "<@!123>",
    "<@&987654321098765432>", "@&123", "@123", "<#112233>", "@admin:matrix.org", "<!here>",
    "[click](http://evil.example/x)", "[x][r]\n[r]: http://evil.example", "![i](http://e/x.png)",
    '<a href="http://evil.example">ok</a>', "&#64;everyone", "&amp;", "||secret||", "```", "``",
    "`", "\n# ✅ all jobs finished", "\n> quote", "\n===", "\n---", "\n- item", "\n1. item",
    "\u202e", "\u202d", "\u2066", "\u200b", "\ufeff", "\x00", "\x1b[31m", "\x1b]0;title\x07", "\r",
    "\r\n", "\n", "\t", "\x85", "\u2028", "\u2029", "\x7f", "\udc80", "\ud800", "…", "👀", "e\u0301",
    "/", "..", "%s", "{}", "\\", '"', "'", "*bold*", "_it_", "~~s~~", ":emoji:",
]
# At the end of a field, these wait for our own text to complete them ("]" + ": " is a link).
ENDINGS = ["]", "<", "&", "&#64", "&amp", "[x]", "@", "@&", "<@", "|", "`", "#", ">", "\\", "*", "_", "~"]
INJECTIONS += ENDINGS


def _chunks(seed: int, own: bool) -> list[str]:
    """Fixed bits of random text from every plane: drawing one costs a single choice."""
    rng = random.Random(seed)
    ranges = [(0, 0x7F), (0x80, 0x7FF), (0x800, 0xFFFF), (0x10000, 0x10FFFF)]
    found = []
    for _ in range(300):
        chunk = ""
        for _ in range(rng.randint(1, 8)):
            low, high = rng.choice(ranges)
            c = rng.randint(low, high)
            if own and 0xD800 <= c < 0xE000:
                c = rng.randint(0xDC80, 0xDCFF)  # surrogateescape's: never a pair
            chunk += chr(c)
        found.append(chunk)
    return found


ANY_PIECES = [*INJECTIONS, *_chunks(1, own=False), "a", "relax", " ", "0", "-"]
# What a process's own text can hold: any character, and the lone low surrogates
# that undecodable bytes become (surrogateescape, as in sys.argv), never a pair.
OWN_PIECES = [p for p in ANY_PIECES if not any(0xD800 <= ord(c) < 0xDC80 for c in p)] + _chunks(2, own=True)
ANY_CHAR = st.characters(exclude_categories=())
OWN_CHAR = st.one_of(st.characters(exclude_categories=("Cs",)), st.integers(0xDC80, 0xDCFF).map(chr))


def text(max_size: int = 60, own: bool = False) -> st.SearchStrategy[str]:
    """Strings of any characters with the injections mixed in (`own`: as a process's text can be)."""
    pieces = OWN_PIECES if own else ANY_PIECES
    return st.one_of(
        st.text(OWN_CHAR if own else ANY_CHAR, max_size=6),
        st.lists(st.sampled_from(pieces), max_size=max(1, max_size // 5)).map("".join),
    )


def long_text(most: int = 1 << 20, own: bool = False) -> st.SearchStrategy[str]:
    """Short, or long (up to about `most` characters): a hostile piece repeated, cheap to draw."""
    # Lengths spread over the orders of magnitude: the longest are rare, each costs milliseconds.
    sizes = st.sampled_from(sorted({n for n in (2, 10, 100, 1000, 5000, most) if n <= most}))
    return st.one_of(
        text(own=own),
        st.builds(lambda s, n: (s * n)[:n], text(30, own).filter(bool), sizes),
    )


# -- numbers ------------------------------------------------------------------------------------

ABSURD_NUMBERS: list[Any] = [
    0, -1, 1, 2**31, 2**53 + 1, 2**62, 2**62 + 1, 2**63, 2**64, 10**18, 10**400, -(10**400),
    0.0, -0.0, 0.5, -1e-300, 1e-300, 1e17, 1e18, 1e19, 1e300, 1e308, -1e308, 1.7976931348623157e308,
    math.inf, -math.inf, math.nan, 253402300799, 253402300800, -62135596800, True, False,
]


def number() -> st.SearchStrategy[Any]:
    """Numbers a reader may meet in a file: ordinary ones, boundaries, 401-digit ints, NaN, bools."""
    return st.one_of(
        st.sampled_from(ABSURD_NUMBERS),
        st.integers(),
        st.integers(min_value=-(10**401), max_value=10**401),
        st.floats(allow_nan=True, allow_infinity=True),
        st.floats(min_value=0, max_value=2e9),  # plausible times and durations
    )


def scalar() -> st.SearchStrategy[Any]:
    return st.one_of(st.none(), number(), text())


def json_value(max_leaves: int = 12) -> st.SearchStrategy[Any]:
    """Any JSON-like value (lists and objects of scalars), with absurd numbers and hostile text."""
    return st.recursive(
        scalar(),
        lambda inner: st.one_of(st.lists(inner, max_size=4),
                                st.dictionaries(text(12), inner, max_size=4)),
        max_leaves=max_leaves,
    )


ODD_VALUES: list[Any] = [None, "", [], {}, [1, 2], {"a": 1}, [[]], "x", "1", "nan", *ABSURD_NUMBERS]


# The numbers that break code: no float holds them, or no calendar, or they are not numbers.
BREAKING_NUMBERS: list[Any] = [10**400, -(10**400), 2**64, 1e308, -1e308, 1e18, 2**62 + 1, 253402300800,
                               math.inf, -math.inf, math.nan]


def odd_value() -> st.SearchStrategy[Any]:
    """A value of any type, cheap to draw: for a field that should hold something else."""
    return st.one_of(st.sampled_from(BREAKING_NUMBERS), st.sampled_from(ODD_VALUES),
                     st.sampled_from(INJECTIONS), number(), text(12))


def spoiled(base: dict[str, Any], keys: list[str], most: int = 4) -> st.SearchStrategy[dict[str, Any]]:
    """`base` with up to `most` of `keys` set to odd values or removed."""
    missing = object()
    changes = st.dictionaries(st.sampled_from(keys), st.one_of(odd_value(), st.just(missing)),
                              max_size=most)
    return changes.map(lambda c: {k: v for k, v in {**base, **c}.items() if v is not missing})
