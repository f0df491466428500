"""Is a node heading for the OOM killer? The rules, on a node's recent samples, in memory.

    reading = judge(node.history, Settings(warn_mem=0.10, warn_ahead=900.0, cpu=False))
    reading.fired  # ("low", "ahead"): available memory under 10 %, and out within 15 min

Every rule looks at the samples of one node (nodes/history.py), oldest
first, and measures time from the newest of them: samples carry the node's
own clock, so only their differences are used and a node whose clock is
off is judged as well as any other. Nothing here reads a file or a clock.

* low: available memory under `warn_mem` of the total;
* swap: swap use grew at every step over the last SWAP_POINTS samples, by
  at least SWAP_RISE of the memory in all;
* ahead: available memory falls steadily (a least-squares line through the
  last TREND_WINDOW, at least TREND_POINTS samples, explaining at least
  MIN_FIT of the movement) and would reach zero within `warn_ahead`;
* cpu (off by default): the 1-minute load over CPU_FACTOR x cores in every
  sample of the last CPU_FOR.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from notifyd.nodes.history import Sample

if TYPE_CHECKING:
    from notifyd.config import Config

TREND_WINDOW = 600.0  # seconds of samples the trend is fitted over
TREND_POINTS = 5  # fewer points than this make no trend
TREND_SPAN = 240.0  # and they must cover this much time
# The share of the movement a straight line must explain (R²): a steady
# fall gives ~1, noise around a level ~0.
MIN_FIT = 0.8
STEADY_SHARE = 0.01  # a change under 1 % of the memory over the window is "steady" in views
SWAP_POINTS = 4
SWAP_RISE = 0.01  # of the node's memory: 1 % of 64 GB is 640 MB
SWAP_JITTER = 1024**2  # swap that shrinks by less than this between samples still counts as growing
CPU_FACTOR = 2.0
CPU_FOR = 600.0
CPU_SLACK = 90.0  # cron's minute is not exact: the oldest sample may be this much inside the window
CPU_CALM = 1.5  # a CPU episode ends when the load is back under this many times the cores
EPISODE_END = 2.0  # a memory episode ends when available memory is back over this times warn_mem


@dataclass(frozen=True)
class Settings:
    warn_mem: float  # share of the memory, 0.10 for 10 %
    warn_ahead: float  # seconds
    cpu: bool = False

    @classmethod
    def of(cls, config: Config) -> Settings:
        """From the config's [pressure] (warn_mem is a percentage there, a share here)."""
        return cls(warn_mem=config.warn_mem / 100, warn_ahead=config.warn_ahead, cpu=config.pressure_cpu)


@dataclass(frozen=True)
class Trend:
    """Available memory's straight line over the recent window."""

    slope: float  # bytes per second (negative: memory is being used up)
    fit: float  # R², 0 to 1
    points: int
    span: float  # seconds between the first and last point

    @property
    def steady_fall(self) -> bool:
        return self.points >= TREND_POINTS and self.span >= TREND_SPAN and self.fit >= MIN_FIT \
            and self.slope < 0


@dataclass(frozen=True)
class Reading:
    """What the rules make of a node's samples."""

    now: Sample
    trend: Trend | None
    swap_growing: bool
    seconds_left: float | None  # until available memory runs out at the trend's rate
    fired: tuple[str, ...]  # the memory rules that fire: "low", "swap", "ahead"
    cpu_busy: bool  # the CPU rule fires (only when Settings.cpu)

    @property
    def pressured(self) -> bool:
        return bool(self.fired)


def fit_line(points: Sequence[tuple[float, float]]) -> tuple[float, float]:
    """(slope, R²) of the least-squares line through (x, y) points; (0, 0) when x or y does not vary."""
    n = len(points)
    if n < 2:
        return 0.0, 0.0
    mx = sum(x for x, _ in points) / n
    my = sum(y for _, y in points) / n
    sxx = sum((x - mx) ** 2 for x, _ in points)
    syy = sum((y - my) ** 2 for _, y in points)
    sxy = sum((x - mx) * (y - my) for x, y in points)
    if sxx <= 0 or syy <= 0:
        return 0.0, 0.0
    return sxy / sxx, min(1.0, sxy * sxy / (sxx * syy))


def trend(samples: Sequence[Sample]) -> Trend | None:
    """Available memory's line over the last TREND_WINDOW before the newest sample; None with < 2 points."""
    if len(samples) < 2:
        return None
    end = samples[-1].time
    recent = [s for s in samples if end - s.time <= TREND_WINDOW]
    if len(recent) < 2:
        return None
    # Relative times keep the sums small: epoch seconds squared lose precision.
    slope, fit = fit_line([(s.time - end, s.mem_available) for s in recent])
    return Trend(slope, fit, len(recent), end - recent[0].time)


def direction(samples: Sequence[Sample]) -> str:
    """Memory use over the recent window: "rising", "falling", "steady" or "" (too few samples)."""
    line = trend(samples)
    if line is None or line.points < 3:
        return ""
    change = -line.slope * max(line.span, 1.0)  # bytes of use gained over the window
    if abs(change) < STEADY_SHARE * max(samples[-1].mem_total, 1.0):
        return "steady"
    return "rising" if change > 0 else "falling"


def swap_growing(samples: Sequence[Sample]) -> bool:
    """Swap use grew at every step of the last SWAP_POINTS samples, by SWAP_RISE of the memory in all."""
    last = samples[-SWAP_POINTS:]
    used = [s.swap_used for s in last]
    if len(last) < SWAP_POINTS or any(u is None for u in used) or not (last[-1].swap_total or 0) > 0:
        return False
    values = [float(u or 0.0) for u in used]
    steps_up = all(b >= a - SWAP_JITTER for a, b in itertools.pairwise(values))
    return steps_up and values[-1] - values[0] >= SWAP_RISE * max(last[-1].mem_total, 1.0)


def cpu_oversubscribed(samples: Sequence[Sample]) -> bool:
    """The 1-minute load over CPU_FACTOR x cores in every sample of the last CPU_FOR (and they cover it)."""
    end = samples[-1].time
    window = [s for s in samples if end - s.time <= CPU_FOR]
    if len(window) < 3 or end - window[0].time < CPU_FOR - CPU_SLACK:
        return False
    return all(s.load1 is not None and s.cores and s.load1 > CPU_FACTOR * s.cores for s in window)


def cpu_calm(sample: Sample) -> bool:
    """The load is back under CPU_CALM x cores: a CPU episode is over."""
    return sample.load1 is not None and bool(sample.cores) and sample.load1 < CPU_CALM * (sample.cores or 0)


def judge(samples: Sequence[Sample], settings: Settings) -> Reading | None:
    """Which rules fire for a node's samples (oldest first); None without a sample."""
    if not samples:
        return None
    now = samples[-1]
    line = trend(samples)
    left = None
    if line is not None and line.steady_fall:
        left = now.mem_available / -line.slope
    fired = []
    if now.mem_total > 0 and now.available_share < settings.warn_mem:
        fired.append("low")
    growing = swap_growing(samples)
    if growing:
        fired.append("swap")
    if left is not None and left <= settings.warn_ahead:
        fired.append("ahead")
    return Reading(now, line, growing, left, tuple(fired), settings.cpu and cpu_oversubscribed(samples))


def recovered(reading: Reading, settings: Settings) -> bool:
    """The memory episode is over: no rule fires and available memory is back over EPISODE_END x warn_mem."""
    return not reading.fired and reading.now.available_share >= EPISODE_END * settings.warn_mem
