"""What every verb needs: the resolved paths, this host's name, the config."""

from __future__ import annotations

from notifyd import dirs, paths
from notifyd.config import Config
from notifyd.config import load as load_config


def context() -> tuple[paths.Paths, str]:
    return dirs.resolve(), paths.host_name()


def config(p: paths.Paths) -> Config:
    return load_config(p.config_file)


def init_hint() -> list[str]:
    """Where to go for a URL: `notifyd init` asks for one and checks it.

    The command gets a line of its own, typed as it works here (the full
    path when notifyd is off PATH), so no wrapping can split it.
    """
    from notifyd.setup import hook

    return ["to get them on Discord, Matrix, email...:",
            f"  {hook.typed('notifyd')} init"]


def ensure_hint() -> str:
    """How to start a watcher, as it can be typed here (the full path when notifyd is off PATH)."""
    from notifyd.setup import hook

    return f"{hook.typed('notifyd')} ensure"


def ago(seconds: float) -> str:
    from notifyd.text import human_duration

    return f"{human_duration(max(0.0, seconds))} ago"
