"""The configuration file: INI, every key with a default, nothing unknown allowed.

    [notify]
    urls =
        discord://WEBHOOK_ID/WEBHOOK_TOKEN

The file holds secrets (webhook tokens, passwords), so one that holds URLs and
is readable by group or others is refused, not read. See notifyd.conf.example
for every key.
"""

from __future__ import annotations

import configparser
import os
import re
import stat
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from notifyd.errors import ExitStatus, NotifydError
from notifyd.text import parse_duration, parse_size


def _positive(parse: Callable[[str], float]) -> Callable[[str], float]:
    def check(text: str) -> float:
        value = parse(text)
        if value <= 0:
            raise ValueError("a value above zero")
        return value

    return check


def _at_most(limit: float, parse: Callable[[str], float]) -> Callable[[str], float]:
    def check(text: str) -> float:
        value = parse(text)
        if value > limit:
            raise ValueError(f"at most {limit:g}s (a snapshot runs every minute)")
        return value

    return check


def _non_negative(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise ValueError("a number such as 2 or 0.5") from None
    if not value >= 0:
        raise ValueError("a number of zero or more")
    return value


def _count(text: str) -> int:
    if not text.strip().isdigit():
        raise ValueError("a whole number such as 10")
    return int(text)


def _choice(*allowed: str) -> Callable[[str], str]:
    def check(text: str) -> str:
        value = text.strip().lower()
        if value not in allowed:
            raise ValueError(" or ".join(allowed))
        return value

    return check


def _yes_no(text: str) -> bool:
    value = text.strip().lower()
    if value in ("yes", "true", "on", "1"):
        return True
    if value in ("no", "false", "off", "0"):
        return False
    raise ValueError("yes or no")


def _non_negative_duration(text: str) -> float:
    return 0.0 if text.strip() in ("0", "") else parse_duration(text)


def _per_minute(text: str) -> float:
    """'30/min', '600/h' or '1/s' as messages per minute."""
    count, sep, unit = text.strip().partition("/")
    per = {"s": 60.0, "sec": 60.0, "min": 1.0, "m": 1.0, "h": 1 / 60, "hour": 1 / 60}.get(unit.strip())
    try:
        value = float(count)
    except ValueError:
        value = -1.0
    if not sep or per is None or not value > 0:
        raise ValueError("a rate such as 30/min, 600/h or 1/s")
    return value * per


def _urls(text: str) -> tuple[str, ...]:
    lines = (line.strip() for line in text.splitlines())
    return tuple(line for line in lines if line and not line.startswith("#"))


def _paths(text: str) -> tuple[str, ...]:
    return tuple(os.path.expanduser(p) for p in _urls(text))


def _optional_path(text: str) -> str:
    return os.path.expanduser(text.strip())


MIN_RETRY_FOR = 24 * 3600.0

# section -> key -> (parser, default text, expected form for error messages)
SCHEMA: dict[str, dict[str, tuple[Callable[[str], Any], str]]] = {
    "notify": {
        "urls": (_urls, ""),
        "apprise_config": (_paths, ""),
        "on": (_choice("all", "failure"), "all"),
        "min_duration": (_non_negative_duration, "0s"),
        "notify_start": (_yes_no, "no"),
        "rate": (_per_minute, "30/min"),
        "digest_after": (_count, "3"),
        "digest_window": (_positive(parse_duration), "60s"),
        "digest_quiet": (_positive(parse_duration), "2s"),
        "group_wait": (_positive(parse_duration), "30s"),
        "max_length": (_count, "0"),
    },
    "watcher": {
        "poll_interval": (_positive(parse_duration), "500ms"),
        "lease_timeout": (_positive(parse_duration), "60s"),
        "retry_initial": (_positive(parse_duration), "10s"),
        "retry_max": (_positive(parse_duration), "10m"),
        "retry_for": (_positive(parse_duration), "48h"),
        "log_max_size": (_positive(parse_size), "1M"),
        "lost_grace": (_positive(parse_duration), "2m"),
        "host_silent_after": (_positive(parse_duration), "15m"),
    },
    "legacy": {
        "pingchilling": (_optional_path, "~/.pingchilling"),
    },
    "procs": {
        "dir": (_optional_path, ""),
        "interval": (_at_most(30.0, _positive(parse_duration)), "1s"),
        "stale_after": (_positive(parse_duration), "3m"),
        "min_cpu": (_non_negative, "2"),
        "top": (_count, "10"),
    },
}


@dataclass(frozen=True)
class Config:
    source: Path
    urls: tuple[str, ...]
    apprise_configs: tuple[str, ...]
    poll_interval: float
    lease_timeout: float
    retry_initial: float
    retry_max: float
    retry_for: float
    log_max_size: int
    lost_grace: float
    host_silent_after: float
    legacy_file: str  # '' turns reading ~/.pingchilling off
    procs_dir: str  # '' means the default, <state dir>/procs
    snapshot_interval: float
    stale_after: float
    snapshot_min_cpu: float
    snapshot_top: int
    on: str = "all"  # "all" or "failure": which finished jobs are pushed at all
    min_duration: float = 0.0  # successes shorter than this stay silent
    notify_start: bool = False
    rate_per_min: float = 30.0  # per URL: Discord allows ~30 messages a minute per webhook
    digest_after: int = 3  # single messages per URL per digest_window before digests take over
    digest_window: float = 60.0
    digest_quiet: float = 2.0  # a digest goes out once no job has ended for this long
    group_wait: float = 30.0  # a group is done when nothing in it moved for this long
    max_length: int = 0  # characters per message, title included; 0: the service's own limit

    @property
    def pushes(self) -> bool:
        """True when some URL or Apprise config file is configured."""
        return bool(self.urls or self.apprise_configs)


def _refuse_if_readable(path: Path, what: str) -> None:
    try:
        mode = path.stat().st_mode
    except OSError:
        return
    if mode & (stat.S_IRGRP | stat.S_IROTH):
        who = "group and others" if mode & stat.S_IRGRP and mode & stat.S_IROTH else (
            "its group" if mode & stat.S_IRGRP else "others")
        raise NotifydError(
            f"refusing to read {path}: readable by {who} and it holds {what}; "
            f"run: chmod 600 {path}",
            ExitStatus.CONFIG,
        )


def load(path: Path, env: Mapping[str, str] | None = None) -> Config:
    """Read and check the config file; a missing file means every default."""
    env = os.environ if env is None else env
    parser = configparser.ConfigParser(interpolation=None, default_section="\0none")
    parser.optionxform = str  # type: ignore[assignment,method-assign]  # keys are case-sensitive
    try:
        with path.open(encoding="utf-8") as f:
            parser.read_file(f)
    except FileNotFoundError:
        pass
    except (OSError, UnicodeDecodeError) as exc:
        raise NotifydError(f"cannot read {path}: {exc}; check the file exists and is yours",
                           ExitStatus.CONFIG) from None
    except configparser.Error as exc:
        first = str(exc).splitlines()[0]
        raise NotifydError(f"{path} is not a valid INI file: {first}; "
                           "see notifyd.conf.example for the format", ExitStatus.CONFIG) from None

    values: dict[str, Any] = {}
    for section in parser.sections():
        if section not in SCHEMA:
            raise NotifydError(
                f"{path}: unknown section [{section}]; known sections: "
                + ", ".join(f"[{s}]" for s in SCHEMA),
                ExitStatus.CONFIG,
            )
        for key in parser[section]:
            if key not in SCHEMA[section]:
                raise NotifydError(
                    f"{path}: unknown key {key!r} in [{section}]; known keys there: "
                    + ", ".join(SCHEMA[section]),
                    ExitStatus.CONFIG,
                )
    for section, keys in SCHEMA.items():
        for key, (parse, default) in keys.items():
            raw = parser.get(section, key, fallback=default)
            try:
                values[key] = parse(raw)
            except ValueError as exc:
                raise NotifydError(
                    f"{path}: [{section}] {key} = {raw!r} is not valid: expected {exc}",
                    ExitStatus.CONFIG,
                ) from None

    if values["lease_timeout"] < 3 * values["poll_interval"]:
        raise NotifydError(
            f"{path}: [watcher] lease_timeout ({values['lease_timeout']:g}s) must be at least three "
            f"times poll_interval ({values['poll_interval']:g}s), or a busy watcher loses its lease",
            ExitStatus.CONFIG,
        )
    if values["retry_for"] < MIN_RETRY_FOR:
        raise NotifydError(
            f"{path}: [watcher] retry_for = {values['retry_for']:g}s is too short: a notification "
            "must be retried for at least 24h (an outage over a weekend night); use 24h or more",
            ExitStatus.CONFIG,
        )
    if values["retry_max"] < values["retry_initial"]:
        raise NotifydError(
            f"{path}: [watcher] retry_max ({values['retry_max']:g}s) is below retry_initial "
            f"({values['retry_initial']:g}s); raise retry_max",
            ExitStatus.CONFIG,
        )
    if values["urls"]:
        _refuse_if_readable(path, "notification URLs")
    # Apprise's own ways to name URLs: both honoured, both checked the same way.
    env_urls = tuple(u for u in re.split(r"[\s,]+", env.get("APPRISE_URLS", "")) if u)
    configs = tuple(values["apprise_config"])
    if env.get("APPRISE_CONFIG_PATH"):
        configs += tuple(p for p in re.split(r"[\s;|]+", env["APPRISE_CONFIG_PATH"]) if p)
    for cfg in configs:
        cfg_path = Path(cfg)
        if not cfg_path.is_file():
            raise NotifydError(
                f"{path}: Apprise config file {cfg} does not exist; fix [notify] apprise_config "
                "or APPRISE_CONFIG_PATH",
                ExitStatus.CONFIG,
            )
        _refuse_if_readable(cfg_path, "notification URLs (Apprise config)")

    return Config(
        source=path,
        urls=values["urls"] + env_urls,
        apprise_configs=configs,
        poll_interval=values["poll_interval"],
        lease_timeout=values["lease_timeout"],
        retry_initial=values["retry_initial"],
        retry_max=values["retry_max"],
        retry_for=values["retry_for"],
        log_max_size=int(values["log_max_size"]),
        lost_grace=values["lost_grace"],
        host_silent_after=values["host_silent_after"],
        legacy_file=values["pingchilling"],
        procs_dir=values["dir"],
        snapshot_interval=values["interval"],
        stale_after=values["stale_after"],
        snapshot_min_cpu=values["min_cpu"],
        snapshot_top=values["top"],
        on=values["on"],
        min_duration=values["min_duration"],
        notify_start=values["notify_start"],
        rate_per_min=values["rate"],
        digest_after=values["digest_after"],
        digest_window=values["digest_window"],
        digest_quiet=values["digest_quiet"],
        group_wait=values["group_wait"],
        max_length=values["max_length"],
    )
