"""The pressure rules (nodes/pressure.py) on samples made here, with the node's clock fixed."""

from __future__ import annotations

import random

from notifyd.nodes.history import Sample
from notifyd.nodes.pressure import Settings, direction, judge, recovered

T0 = 1_800_000_000.0
GIB = 2**30
TOTAL = 64 * GIB
SETTINGS = Settings(warn_mem=0.10, warn_ahead=900.0, cpu=True)


def _series(avail: list[float], *, swap: list[float] | None = None, load: float = 1.0,
            step: float = 60.0) -> list[Sample]:
    return [Sample(T0 + i * step, a, TOTAL, (swap or [0.0] * len(avail))[i], 8 * GIB, load, 16)
            for i, a in enumerate(avail)]


def test_available_memory_under_warn_mem_fires_low() -> None:
    reading = judge(_series([5 * GIB]), SETTINGS)
    assert reading is not None and reading.fired == ("low",)


def test_available_memory_just_over_warn_mem_fires_nothing() -> None:
    reading = judge(_series([0.11 * TOTAL]), SETTINGS)
    assert reading is not None and reading.fired == ()


def test_a_steady_fall_that_runs_out_within_warn_ahead_fires_ahead_before_memory_is_low() -> None:
    # 55 GiB free, losing 3 GiB a minute: 40 GiB after 5 min, out ~13 min later; 10 % is 6.4 GiB, far below.
    reading = judge(_series([(55 - 3 * i) * GIB for i in range(6)]), SETTINGS)
    assert reading is not None and reading.fired == ("ahead",)
    assert reading.seconds_left is not None and 12 * 60 < reading.seconds_left < 14 * 60


def test_a_steady_fall_with_some_jitter_still_fires() -> None:
    rng = random.Random(4)
    avail = [(40 - 3 * i) * GIB + rng.uniform(-0.3, 0.3) * GIB for i in range(8)]
    reading = judge(_series(avail), SETTINGS)
    assert reading is not None and "ahead" in reading.fired


def test_a_slow_fall_that_lasts_longer_than_warn_ahead_does_not_fire() -> None:
    # 0.5 GiB a minute from 40 GiB: an hour and more left.
    reading = judge(_series([(40 - 0.5 * i) * GIB for i in range(8)]), SETTINGS)
    assert reading is not None and reading.fired == () and reading.seconds_left is not None


def test_noise_around_a_level_does_not_fire_however_deep_its_dips() -> None:
    for seed in range(50):
        rng = random.Random(seed)
        avail = [rng.uniform(12, 30) * GIB for _ in range(10)]
        reading = judge(_series(avail), SETTINGS)
        assert reading is not None and "ahead" not in reading.fired, (seed, avail)


def test_too_few_points_or_too_short_a_span_make_no_projection() -> None:
    falling = [(40 - 5 * i) * GIB for i in range(6)]
    assert judge(_series(falling[:4]), SETTINGS).seconds_left is None  # type: ignore[union-attr]
    assert judge(_series(falling, step=20.0), SETTINGS).seconds_left is None  # type: ignore[union-attr]


def test_swap_growing_at_every_step_fires_swap() -> None:
    swap = [GIB * x for x in (1.0, 1.3, 1.6, 2.0)]
    reading = judge(_series([30 * GIB] * 4, swap=swap), SETTINGS)
    assert reading is not None and reading.fired == ("swap",)


def test_swap_that_went_down_once_or_grew_by_little_does_not_fire() -> None:
    for swap in ([1.0, 1.6, 1.2, 2.0], [1.0, 1.01, 1.02, 1.03]):
        reading = judge(_series([30 * GIB] * 4, swap=[GIB * x for x in swap]), SETTINGS)
        assert reading is not None and reading.fired == (), swap


def test_cpu_over_twice_the_cores_for_ten_minutes_fires_cpu_and_not_after_five() -> None:
    busy = _series([30 * GIB] * 11, load=40.0)
    assert judge(busy, SETTINGS).cpu_busy  # type: ignore[union-attr]
    assert not judge(busy[:6], SETTINGS).cpu_busy  # type: ignore[union-attr]
    assert not judge(busy, Settings(0.10, 900.0, cpu=False)).cpu_busy  # type: ignore[union-attr]
    calmer = [*busy[:5], Sample(busy[5].time, 30 * GIB, TOTAL, 0, 0, 20.0, 16), *busy[6:]]
    assert not judge(calmer, SETTINGS).cpu_busy  # type: ignore[union-attr]


def test_an_episode_ends_only_once_memory_is_back_over_twice_the_threshold() -> None:
    assert not recovered(judge(_series([0.15 * TOTAL]), SETTINGS), SETTINGS)  # type: ignore[arg-type]
    assert recovered(judge(_series([0.21 * TOTAL]), SETTINGS), SETTINGS)  # type: ignore[arg-type]


def test_the_view_says_rising_falling_or_steady_memory_use() -> None:
    assert direction(_series([(40 - 2 * i) * GIB for i in range(5)])) == "rising"
    assert direction(_series([(20 + 2 * i) * GIB for i in range(5)])) == "falling"
    assert direction(_series([30 * GIB + i * 2**20 for i in range(5)])) == "steady"
    assert direction(_series([30 * GIB] * 2)) == ""


def test_odd_samples_never_break_the_rules() -> None:
    odd = [Sample(T0, 0, 0), Sample(T0, 0, 0), Sample(T0, 5, 0, None, None, None, None)]
    reading = judge(odd, SETTINGS)
    assert reading is not None and reading.fired == ()
    assert judge([], SETTINGS) is None
