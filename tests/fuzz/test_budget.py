"""The fuzz tests draw at least 10,000 cases per CI run in all (the sum of their max_examples)."""

from __future__ import annotations

import importlib
from pathlib import Path

from fuzz.hostile import DEFAULT_EXAMPLES
from hypothesis import settings

CI_CASES_AT_LEAST = 10_000


def drawn_per_run() -> dict[str, int]:
    """Each fuzz test's max_examples, by name, as the profile in use scales them."""
    found = {}
    for path in sorted(Path(__file__).parent.glob("test_*_fuzz.py")):
        module = importlib.import_module(f"fuzz.{path.stem}")
        for name, test in vars(module).items():
            chosen = getattr(test, "_hypothesis_internal_use_settings", None)
            if name.startswith("test_") and chosen is not None:
                found[f"{path.stem}::{name}"] = chosen.max_examples
    return found


def test_the_fuzz_tests_draw_at_least_ten_thousand_cases_per_ci_run() -> None:
    scale = max(1.0, settings.default.max_examples / DEFAULT_EXAMPLES)
    drawn = drawn_per_run()
    assert len(drawn) >= 20
    assert sum(drawn.values()) / scale >= CI_CASES_AT_LEAST, drawn
