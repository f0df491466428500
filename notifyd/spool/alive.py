"""The liveness mark `alive/<host>`: its line of the node's figures, written by pingch, read by the watcher.

    mem_total_kb=16318712 mem_avail_kb=1032512 swap_total_kb=2097148 swap_free_kb=0 load1=31.8 cores=16

pingch rewrites the mark every minute while a job runs (pingch/record.py);
its mtime, set by the file server, is the host's sign of life
(watcher/lost.py), whatever it holds. The line gives a node without cron
snapshots its memory, swap and load all the same: one ASCII line of
space-separated key=value, the keys in KEYS' order, each left out when its
source could not be read (never a made-up 0). Marks written before this
format hold `1\\n`, which parse_alive reads as no figures.

Standard library only: pingch writes it.
"""

# The keys, in the order they are written: /proc/meminfo's MemTotal,
# MemAvailable, SwapTotal, SwapFree (KiB), /proc/loadavg's first field and
# the node's online CPUs (procfs.node_figures).
KEYS = ("mem_total_kb", "mem_avail_kb", "swap_total_kb", "swap_free_kb", "load1", "cores")
FLOAT_KEYS = frozenset({"load1"})
# Beyond these a figure is not a node's (1 EiB, a load of a million, a
# million CPUs): dropped as garbled rather than trusted.
LIMITS = {"mem_total_kb": 1 << 50, "mem_avail_kb": 1 << 50, "swap_total_kb": 1 << 50,
          "swap_free_kb": 1 << 50, "load1": 1e6, "cores": 1 << 20}
# A node has some memory and at least one CPU: a 0 there is garbled too.
LEAST = {"mem_total_kb": 1, "cores": 1}
# A mark is ~110 bytes; a reader looks at no more than this of a hostile file.
READ_MAX = 4096


def encode(figures: "dict[str, float]") -> bytes:
    """The mark's line for `figures` (procfs.node_figures): KEYS in order, those missing left out."""
    words = []
    for key in KEYS:
        if key in figures:
            value = figures[key]
            words.append(f"{key}={value:.2f}" if key in FLOAT_KEYS else f"{key}={int(value)}")
    return (" ".join(words) + "\n").encode("ascii")


def parse_alive(text: str) -> "dict[str, float]":
    """The well-formed figures of a mark's text; never raises.

    Only the first line counts, and only once complete (its newline): a
    reader racing pingch's rewrite may see a line cut short, whose last
    number would be wrong. Kept: keys of KEYS with a plain decimal value
    (digits, and one point for load1) within LIMITS; ints for the KiB
    figures and cores, a float for load1. Dropped: anything else (unknown
    keys, signs, NaN, exponents, non-ASCII digits, a 0 for mem_total_kb or
    cores) and a key given twice.
    """
    line, newline, _ = text[:READ_MAX].partition("\n")
    if not newline:
        return {}
    found: dict[str, float] = {}
    seen: set[str] = set()
    for word in line.split(" "):
        key, sep, raw = word.partition("=")
        if not sep or key not in LIMITS:
            continue
        if key in seen:  # which of the two is right cannot be told
            found.pop(key, None)
            continue
        seen.add(key)
        value = _number(raw, key in FLOAT_KEYS)
        if value is not None and LEAST.get(key, 0) <= value <= LIMITS[key]:
            found[key] = value
    return found


def _number(raw: str, decimal: bool) -> "float | None":
    """`raw` as a number if it is ASCII digits (with one point when `decimal`), else None."""
    digits = raw.replace(".", "", 1) if decimal else raw
    if not (digits.isascii() and digits.isdigit()) or len(raw) > 24:
        return None
    return float(raw) if decimal else int(raw)
