"""What every verb needs: the resolved paths, this host's name, the config."""

from __future__ import annotations

from notifyd import dirs, paths
from notifyd.config import Config
from notifyd.config import load as load_config


def context() -> tuple[paths.Paths, str]:
    return dirs.resolve(), paths.host_name()


def config(p: paths.Paths) -> Config:
    return load_config(p.config_file)


def discord_howto(config_file: object) -> str:
    return (
        "To get them on Discord: in your server, Server Settings → Integrations → Webhooks → "
        "New Webhook → Copy Webhook URL, then put that URL under [notify] urls in "
        f"{config_file} (chmod 600) — see notifyd.conf.example for Matrix, email, Slack, ntfy."
    )


def ago(seconds: float) -> str:
    from notifyd.text import human_duration

    return f"{human_duration(max(0.0, seconds))} ago"
