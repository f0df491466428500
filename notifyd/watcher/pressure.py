"""Memory pressure where the user's jobs run: one alert per node and episode, before the OOM killer.

With the lost-job check (every 30 s), for each host where the user has a
running pingch job: the node's samples are its fresh snapshot's history
(nodes/history.py), or, where it has none, pingch's liveness marks
(alive/<host>, rewritten every minute while a job runs) collected here as
they change. The rules (nodes/pressure.py) say what fires; this module
decides whether to tell:

* one alert per node per episode: an episode opens when it is told and
  ends once no memory rule fires and available memory is back over twice
  `warn_mem` (CPU: once the load is back under 1.5 x the cores);
* at most one alert per node per `alert_every` (memory and CPU each);
* one message per round for all the nodes found, through the normal
  routing with tag `pressure` (notify/routing.py pressure_alert).

The episodes live in the state (records.NodePressure), timed by the file
server's clock; the liveness marks' samples only in memory (a restarted
watcher has the threshold at once and the trends after a few minutes).
"""

from __future__ import annotations

import hashlib
import logging
import os
import stat
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from notifyd.config import Config
from notifyd.nodes import history, reader
from notifyd.nodes import pressure as rules
from notifyd.nodes.history import Sample
from notifyd.notify import pressure as words
from notifyd.notify import routing
from notifyd.notify.targets import Target
from notifyd.records import NodePressure, RunningJob
from notifyd.spool.alive import parse_alive
from notifyd.state import State

log = logging.getLogger("notifyd")
MARK_MAX = 512  # bytes: a liveness mark is one short line
TOP_USERS = 3
# A snapshot samples for a second or so before its time: one taken this
# close after a job's end still shows the node as the job left it.
SNAPSHOT_SLACK = 5.0


def mark_sample(figures: Mapping[str, float], when: float) -> Sample | None:
    """A liveness mark as a sample at `when` (its mtime); None without the memory figures."""
    total, avail = figures.get("mem_total_kb"), figures.get("mem_avail_kb")
    if not total or avail is None:
        return None
    swap_total, swap_free = figures.get("swap_total_kb"), figures.get("swap_free_kb")
    swap_used = (swap_total - swap_free) * 1024 if swap_total is not None and swap_free is not None else None
    return Sample(when, avail * 1024, total * 1024, None if swap_used is None else max(0.0, swap_used),
                  None if swap_total is None else swap_total * 1024, figures.get("load1"),
                  figures.get("cores"))


def read_mark(path: str) -> tuple[str, float] | None:
    """(text, mtime) of a liveness mark; None when it is absent, odd or not a regular file."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except (OSError, ValueError):  # ValueError: a host name with a NUL byte
        return None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode) or st.st_size > MARK_MAX:
            return None
        return os.read(fd, MARK_MAX).decode("ascii", "replace"), st.st_mtime
    except OSError:
        return None
    finally:
        os.close(fd)


class Marks:
    """Each host's samples from its liveness marks, one per rewrite, the last history.KEEP."""

    def __init__(self, alive_dir: str) -> None:
        self.alive_dir = alive_dir
        self._samples: dict[str, list[Sample]] = {}

    def samples(self, host: str, server_now: float, fresh_for: float) -> list[Sample]:
        """The host's samples, newest last; none when its mark is older than `fresh_for`."""
        got = read_mark(os.path.join(self.alive_dir, host))
        if got is None or server_now - got[1] > fresh_for:
            self._samples.pop(host, None)
            return []
        sample = mark_sample(parse_alive(got[0]), got[1])
        if sample is None:
            return []
        kept = self._samples.setdefault(host, [])
        if not kept or sample.time > kept[-1].time:
            kept.append(sample)
            del kept[:-history.KEEP]
        return list(kept)

    def forget_except(self, hosts: set[str]) -> None:
        for host in set(self._samples) - hosts:
            del self._samples[host]


def jobs_by_host(state: State) -> dict[str, list[tuple[str, RunningJob]]]:
    """The user's running pingch jobs (not a scheduler's), by host."""
    hosts: dict[str, list[tuple[str, RunningJob]]] = {}
    for job, info in state.running.items():
        if info.host and not info.owned:
            hosts.setdefault(info.host, []).append((job, info))
    return hosts


def _rss_by_pid(node: reader.Node | None) -> dict[int, int]:
    rows = node.data.get("procs") if node is not None else None
    return {int(r["pid"]): int(r["rss"]) for r in rows or []}


def decide(record: NodePressure, reading: rules.Reading, s: rules.Settings, alert_every: float,
           now: float) -> tuple[str, ...]:
    """What to tell of a node now (the rules that fired, "cpu"), updating its episodes; () for nothing."""
    told: list[str] = []
    if record.open and rules.recovered(reading, s):
        record.open = False
    if reading.fired and not record.open and now - record.told_at >= alert_every:
        record.open, record.told_at = True, now
        told.extend(reading.fired)
    if record.cpu_open and rules.cpu_calm(reading.now):
        record.cpu_open = False
    if reading.cpu_busy and not record.cpu_open and now - record.cpu_told_at >= alert_every:
        record.cpu_open, record.cpu_told_at = True, now
        told.append("cpu")
    return tuple(told)


class Watch:
    """The watcher's pressure check; holds the liveness marks' samples between rounds."""

    def __init__(self, alive_dir: str) -> None:
        self.marks = Marks(alive_dir)

    def find(self, state: State, nodes: Mapping[str, reader.Node], config: Config,
             server_now: float) -> list[words.Finding]:
        """The nodes to tell of now (their episodes updated in `state`); stale records dropped."""
        s = rules.Settings.of(config)
        hosts = jobs_by_host(state)
        found = []
        for host, jobs in sorted(hosts.items()):
            node = nodes.get(host)
            if node is not None and not node.stale:
                samples, source = node.history, words.SNAPSHOT
            else:
                node = None
                samples, source = self.marks.samples(host, server_now, config.stale_after), words.MARK
            reading = rules.judge(samples, s)
            if reading is None:
                continue
            record = state.pressure.setdefault(host, NodePressure())
            kinds = decide(record, reading, s, config.alert_every, server_now)
            if kinds:
                rss = _rss_by_pid(node)
                mine = [words.YourJob(job, info, rss.get(info.pid) if info.pid is not None else None)
                        for job, info in jobs]
                top = node.memory_users(TOP_USERS) if node is not None else []
                found.append(words.Finding(host, reading, kinds, top, mine, source))
        # A node none of the user's jobs runs on is forgotten once its alert_every is over.
        for host, record in list(state.pressure.items()):
            last = max(record.told_at, record.cpu_told_at)
            if host not in hosts and server_now - last >= config.alert_every:
                del state.pressure[host]
        self.marks.forget_except(set(hosts))
        return found

    def check(self, state: State, nodes: Mapping[str, reader.Node], targets: list[Target], config: Config,
              *, server_now: float, now: float) -> bool:
        """Tell the user of the nodes in trouble where their jobs run; True when the state changed."""
        before = {k: v.to_json() for k, v in state.pressure.items()}
        found = self.find(state, nodes, config, server_now)
        if found:
            hosts = ", ".join(f.host for f in found)
            log.warning("memory pressure alert for %s: %s", hosts,
                        "; ".join(f"{f.host} {'+'.join(f.kinds)}" for f in found))
            # The id names no host: host names come from spools and may hold any character,
            # and the delivery journal keeps one id a line.
            digest = hashlib.sha256(hosts.encode(errors="replace")).hexdigest()[:12]
            routing.pressure_alert(state, targets, entry_id=f"pressure:{server_now:.0f}:{digest}",
                                   msg=words.alert(found, rules.Settings.of(config)), now=now)
        return bool(found) or before != {k: v.to_json() for k, v in state.pressure.items()}


def after_kill(ev: dict[str, Any], procs_dir: Path, config: Config) -> list[str]:
    """Lines for a SIGKILLed job's message: its node's memory when it ended, if it was short of it.

    Told when the rules fire on the node's samples up to the job's end (the
    snapshot and the event carry the node's own clock), or when pingch found
    the OOM killer's line for it; nothing without a snapshot of the node.
    """
    host, end = ev.get("host"), ev.get("ts")
    if not isinstance(host, str) or not host or "/" in host or host.startswith(".") \
            or isinstance(end, bool) or not isinstance(end, (int, float)):
        return []
    data, _mtime, _why = reader.read_one(procs_dir / f"{host}.json")
    if data is None:
        return []
    samples = [x for x in history.samples(data) if x.time <= end + SNAPSHOT_SLACK]
    reading = rules.judge(samples, rules.Settings.of(config))
    if reading is None or not (reading.pressured or ev.get("oom") is True):
        return []
    node = reader.Node(host, data, 0.0, False)
    before_end = float(data["time"]) <= end + SNAPSHOT_SLACK
    try:
        taken = time.strftime("%H:%M", time.localtime(float(data["time"])))
    except (OverflowError, OSError, ValueError):  # a time no platform can show
        taken = "an unknown time"
    return words.after_kill(host, reading, node.memory_users(TOP_USERS) if before_end else [], taken)
