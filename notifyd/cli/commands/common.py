"""What every verb needs: the resolved paths, this host's name, the config."""

from __future__ import annotations

from notifyd import dirs, paths
from notifyd.config import Config
from notifyd.config import load as load_config


def context() -> tuple[paths.Paths, str]:
    return dirs.resolve(), paths.host_name()


def config(p: paths.Paths) -> Config:
    return load_config(p.config_file)


def init_hint() -> str:
    """Where to go for a URL: `notifyd init` asks for one and checks it (as typed here)."""
    from notifyd.setup import hook

    return f"to get them on Discord, Matrix, email...: {hook.shown(hook.script('notifyd'), 'notifyd')} init"


def ensure_hint() -> str:
    """How to start a watcher, as it can be typed here (the full path when notifyd is off PATH)."""
    from notifyd.setup import hook

    return f"{hook.shown(hook.script('notifyd'), 'notifyd')} ensure"


def ago(seconds: float) -> str:
    from notifyd.text import human_duration

    return f"{human_duration(max(0.0, seconds))} ago"
