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
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from notifyd.errors import ExitStatus, NotifydError
from notifyd.text import parse_duration, parse_percent, parse_size


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


def parse_urls(text: str) -> tuple[str, ...]:
    """A [notify] urls value: one URL a line, blank lines and # comments skipped."""
    lines = (line.strip() for line in text.splitlines())
    return tuple(line for line in lines if line and not line.startswith("#"))


def _paths(text: str) -> tuple[str, ...]:
    return tuple(os.path.expanduser(p) for p in parse_urls(text))


def _optional_path(text: str) -> str:
    return os.path.expanduser(text.strip())


_duration = _positive(parse_duration)  # every duration but min_duration must be above zero
SLURM_ENDS = ("COMPLETED", "FAILED", "TIMEOUT", "CANCELLED", "OUT_OF_MEMORY", "NODE_FAIL", "PREEMPTED",
              "BOOT_FAIL", "DEADLINE", "SPECIAL_EXIT", "REVOKED")


def _slurm_states(text: str) -> frozenset[str]:
    """'all', or SLURM end states separated by commas ("FAILED, TIMEOUT, OUT_OF_MEMORY")."""
    words = {w.strip().upper() for w in text.replace(" ", ",").split(",") if w.strip()}
    if words == {"ALL"}:
        return frozenset(SLURM_ENDS)
    unknown = sorted(words - set(SLURM_ENDS))
    if not words or unknown:
        raise ValueError("all, or SLURM end states such as FAILED,TIMEOUT,OUT_OF_MEMORY (one of "
                         + ", ".join(SLURM_ENDS) + ")")
    return frozenset(words)


def _at_most_count(limit: int) -> Callable[[str], int]:
    def check(text: str) -> int:
        value = _count(text)
        if value > limit:
            raise ValueError(f"a whole number from 0 to {limit}")
        return value

    return check
MIN_RETRY_FOR = 24 * 3600.0


@dataclass(frozen=True)
class Key:
    """One key of the file: its section, its default as the file would write it, its parser."""

    section: str
    default: str
    parse: Callable[[str], Any]
    name: str = ""  # the key in the file; _schema() fills in the attribute's name where none is given
    attr: str = ""  # the Config attribute it fills; set by _schema()


def _key(section: str, default: str, parse: Callable[[str], Any], name: str = "") -> dict[str, Key]:
    """A Config field's metadata: read from [section] `name`, the field's own name unless given."""
    return {"key": Key(section, default, parse, name)}


@dataclass(frozen=True)
class Config:
    """Every key of the file, each declared here once; notifyd.conf.example says what they do.

    A field's metadata holds its section, its default text and its parser;
    SCHEMA is built from them, and load() fills the fields generically. Their
    order is the order in which an error about an unknown name lists the
    known sections and keys.
    """

    source: Path
    # [notify]
    urls: tuple[str, ...] = field(metadata=_key("notify", "", parse_urls))  # APPRISE_URLS added
    apprise_configs: tuple[str, ...] = field(metadata=_key("notify", "", _paths, "apprise_config"))
    # "all" or "failure": which finished jobs are pushed at all
    on: str = field(metadata=_key("notify", "all", _choice("all", "failure")))
    # successes shorter than this stay silent
    min_duration: float = field(metadata=_key("notify", "0s", _non_negative_duration))
    notify_start: bool = field(metadata=_key("notify", "no", _yes_no))
    # per URL: Discord allows ~30 messages a minute per webhook
    rate_per_min: float = field(metadata=_key("notify", "30/min", _per_minute, "rate"))
    # single messages per URL per digest_window before digests take over
    digest_after: int = field(metadata=_key("notify", "3", _count))
    digest_window: float = field(metadata=_key("notify", "60s", _duration))
    # a digest goes out once no job has ended for this long
    digest_quiet: float = field(metadata=_key("notify", "2s", _duration))
    # a group is done when nothing in it moved for this long
    group_wait: float = field(metadata=_key("notify", "30s", _duration))
    # characters per message, title included; 0: the service's own limit
    max_length: int = field(metadata=_key("notify", "0", _count))
    # [watcher]
    poll_interval: float = field(metadata=_key("watcher", "500ms", _duration))
    lease_timeout: float = field(metadata=_key("watcher", "60s", _duration))
    retry_initial: float = field(metadata=_key("watcher", "10s", _duration))
    retry_max: float = field(metadata=_key("watcher", "10m", _duration))
    retry_for: float = field(metadata=_key("watcher", "48h", _duration))
    log_max_size: int = field(metadata=_key("watcher", "1M", _positive(parse_size)))
    lost_grace: float = field(metadata=_key("watcher", "2m", _duration))
    host_silent_after: float = field(metadata=_key("watcher", "15m", _duration))
    # [legacy]: '' turns reading ~/.pingchilling off
    legacy_file: str = field(metadata=_key("legacy", "~/.pingchilling", _optional_path, "pingchilling"))
    # [procs]
    procs_dir: str = field(metadata=_key("procs", "", _optional_path, "dir"))  # '': <state dir>/procs
    snapshot_interval: float = field(metadata=_key("procs", "1s", _at_most(30.0, _duration), "interval"))
    stale_after: float = field(metadata=_key("procs", "3m", _duration))
    snapshot_min_cpu: float = field(metadata=_key("procs", "2", _non_negative, "min_cpu"))
    snapshot_top: int = field(metadata=_key("procs", "10", _count, "top"))
    # [slurm]: auto (on where squeue exists on the lease holder's host), yes or no
    slurm: str = field(metadata=_key("slurm", "auto", _choice("auto", "yes", "no"), "enabled"))
    # the longest wait between two polls while you have jobs (never past MinJobAge/2)...
    slurm_interval: float = field(metadata=_key("slurm", "60s", _duration, "interval"))
    # ...and while you have none
    slurm_idle_interval: float = field(metadata=_key("slurm", "5m", _duration, "idle_interval"))
    # a squeue or sacct that hangs (a dead controller) is given up after this long
    slurm_timeout: float = field(metadata=_key("slurm", "30s", _duration, "timeout"))
    # which ends are told (the rest are kept in the inbox only); all, or a list of states
    slurm_tell: frozenset[str] = field(metadata=_key("slurm", "all", _slurm_states, "tell"))
    # lines of the job's output file sent with its end: 0 to 50
    slurm_tail: int = field(metadata=_key("slurm", "0", _at_most_count(50), "tail"))
    # with an array's one summary, a message of its own for each failed task too
    slurm_array_failures: bool = field(metadata=_key("slurm", "no", _yes_no, "array_failures"))
    # [pressure]: nodes short of memory or CPU
    # pingch's one line on stderr when it starts a job on a busy node (pingch/facts.py)
    start_warning: bool = field(metadata=_key("pressure", "yes", _yes_no))
    # available memory under this share of the node's is pressure
    warn_mem: float = field(metadata=_key("pressure", "10 %", parse_percent))
    # the watcher's alerts on nodes where your jobs run; no: none (the views still show it)
    pressure_alerts: bool = field(metadata=_key("pressure", "yes", _yes_no, "enabled"))
    # an alert when memory would run out within this long at the rate of the last snapshots
    warn_ahead: float = field(metadata=_key("pressure", "15m", _duration))
    # at most one memory alert (and one CPU alert) per node this often
    alert_every: float = field(metadata=_key("pressure", "30m", _duration))
    # also tell of a load over 2 x the cores for 10 minutes
    pressure_cpu: bool = field(metadata=_key("pressure", "no", _yes_no, "cpu"))

    @property
    def pushes(self) -> bool:
        """True when some URL or Apprise config file is configured."""
        return bool(self.urls or self.apprise_configs)


def _schema() -> dict[str, dict[str, Key]]:
    schema: dict[str, dict[str, Key]] = {}
    for f in fields(Config):
        if "key" in f.metadata:
            key = replace(f.metadata["key"], name=f.metadata["key"].name or f.name, attr=f.name)
            schema.setdefault(key.section, {})[key.name] = key
    return schema


# section -> key in the file -> Key, in Config's order
SCHEMA = _schema()


def ini_parser() -> configparser.ConfigParser:
    """The parser the file is read with: no interpolation, case-sensitive keys, no [DEFAULT]."""
    parser = configparser.ConfigParser(interpolation=None, default_section="\0none")
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    return parser


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


def _read(path: Path) -> configparser.ConfigParser:
    """The file parsed, holding known sections and keys only; empty when it does not exist."""
    parser = ini_parser()
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
    for section in parser.sections():
        if section not in SCHEMA:
            raise NotifydError(
                f"{path}: unknown section [{section}]; known sections: "
                + ", ".join(f"[{s}]" for s in SCHEMA),
                ExitStatus.CONFIG,
            )
        for name in parser[section]:
            if name not in SCHEMA[section]:
                raise NotifydError(
                    f"{path}: unknown key {name!r} in [{section}]; known keys there: "
                    + ", ".join(SCHEMA[section]),
                    ExitStatus.CONFIG,
                )
    return parser


def _value(parser: configparser.ConfigParser, key: Key, path: Path) -> Any:
    raw = parser.get(key.section, key.name, fallback=key.default)
    try:
        return key.parse(raw)
    except ValueError as exc:
        raise NotifydError(
            f"{path}: [{key.section}] {key.name} = {raw!r} is not valid: expected {exc}",
            ExitStatus.CONFIG,
        ) from None


def _check(values: dict[str, Any], path: Path) -> None:
    """The rules between keys (values by Config attribute)."""
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


def load(path: Path, env: Mapping[str, str] | None = None) -> Config:
    """Read and check the config file; a missing file means every default."""
    env = os.environ if env is None else env
    parser = _read(path)
    values = {key.attr: _value(parser, key, path) for keys in SCHEMA.values() for key in keys.values()}
    _check(values, path)
    if values["urls"]:
        _refuse_if_readable(path, "notification URLs")
    # Apprise's own ways to name URLs: both honoured, both checked the same way.
    values["urls"] += tuple(u for u in re.split(r"[\s,]+", env.get("APPRISE_URLS", "")) if u)
    if env.get("APPRISE_CONFIG_PATH"):
        values["apprise_configs"] += tuple(p for p in re.split(r"[\s;|]+", env["APPRISE_CONFIG_PATH"]) if p)
    for cfg in values["apprise_configs"]:
        cfg_path = Path(cfg)
        if not cfg_path.is_file():
            raise NotifydError(
                f"{path}: Apprise config file {cfg} does not exist; fix [notify] apprise_config "
                "or APPRISE_CONFIG_PATH",
                ExitStatus.CONFIG,
            )
        _refuse_if_readable(cfg_path, "notification URLs (Apprise config)")
    return Config(source=path, **values)
