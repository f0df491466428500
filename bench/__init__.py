"""notifyd's benchmark suite: the figures users judge it on, beside baselines from the same run.

Run from the repository root: `python3 -m bench` (see bench/README.md).
"""
