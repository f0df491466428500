"""The watcher under load: idle on a desktop, a 1,000-job burst, a long history.

Spool lines here are written with notifyd's own encoder (`notifyd.spool.events`),
the bytes pingch writes, but without running 1,000 Python processes: these
figures are about the watcher; pingch's own cost is the overhead figure.
Host files are named node1..node6, none of them the watcher's host, so every
event is found by polling, as from other machines.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

from bench.harness import (
    REPO,
    Dist,
    Home,
    Install,
    Row,
    count,
    home,
    mib,
    pct,
    proc_cpu_seconds,
    proc_status_kib,
    receiver,
    sec,
    start_watcher,
    stop_watchers,
    timed,
    wait_for,
)

sys.path.insert(0, str(REPO))
from notifyd.spool import events

HOSTS = [f"node{i}" for i in range(1, 7)]


def _event(kind: str, host: str, n: int, t: float, **extra: object) -> dict[str, object]:
    ev: dict[str, object] = {
        "v": events.SCHEMA_VERSION, "ev": kind, "job": f"{host}-{100000 + n}-{int(t) - 60}",
        "user": "bench", "host": host, "pid": 100000 + n, "title": f"run-{n} relax.py",
        "cmd": f"python relax.py --structure s{n}.xyz", "cwd": "/home/bench/project",
        "start": events.iso_time(t - 60), "start_ts": round(t - 60, 3), "ts": round(t, 3),
    }
    if kind == "finish":
        ev.update(end=events.iso_time(t), duration=60.0, exit=0 if n % 10 else 1, signal=None,
                  maxrss_kb=2_000_000, maxrss_floor_kb=9000, cpu_s=59.1)
    ev.update(extra)
    return ev


def _append(path: Path, lines: list[bytes]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        os.write(fd, b"".join(lines))
    finally:
        os.close(fd)


def idle(install: Install, runs: int, seconds: float) -> list[Row]:
    cpu, rss, hwm = [], [], []
    for _ in range(runs):
        with receiver() as rec, home() as h:
            h.write_config(f"[notify]\nurls = {rec.url_for('hook')}\n[legacy]\npingchilling =\n")
            now = time.time()
            for i, host in enumerate(HOSTS):
                _append(h.state_dir / "events" / f"{host}.jsonl",
                        [events.encode(_event(k, host, n, now - 3600 + n))
                         for n in range(i * 100, i * 100 + 100) for k in ("start", "finish")])
            w = start_watcher(install, h)
            # The 600 jobs are told first (3 messages and a digest), so
            # Apprise and the json:// plugin are loaded, as in a watcher that
            # has sent anything.
            wait_for(lambda: _inbox_count(h) >= 600 and _settled(h), 120, "the 600 jobs told")
            time.sleep(2)
            pid = w.proc.pid
            c0, t0 = proc_cpu_seconds(pid), time.monotonic()
            time.sleep(seconds)
            c1, t1 = proc_cpu_seconds(pid), time.monotonic()
            cpu.append(100 * (c1 - c0) / (t1 - t0))
            rss.append(proc_status_kib(pid, "VmRSS") * 1024)
            hwm.append(proc_status_kib(pid, "VmHWM") * 1024)
            stop_watchers(h)
    c, r = Dist(cpu), Dist(rss)
    return [
        Row(f"watcher idle for {seconds:g} s with 6 host files: CPU of one core", c.fmt(pct), "-", "-",
            "<= 0.2 %", c.median <= 0.2,
            [f"{runs} runs; CPU from /proc/PID/stat (10 ms ticks) over the idle period; a json:// URL "
             "configured and 600 jobs already told, so Apprise is loaded"]),
        Row(f"watcher idle for {seconds:g} s with 6 host files: RSS", r.fmt(mib), "-", "-",
            "<= 50 MB", r.median <= 50e6,
            [f"VmRSS at the end of the idle period; peak (VmHWM) {Dist(hwm).fmt(mib)}"]),
    ]


def burst(install: Install, runs: int, jobs: int) -> list[Row]:
    after_last, after_first, messages = [], [], []
    for _ in range(runs):
        with receiver() as rec, home() as h:
            h.write_config(f"[notify]\nurls = {rec.url_for('hook')}\n[legacy]\npingchilling =\n")
            start_watcher(install, h)
            # The jobs start first (a postdoc's loop of `pingch ... &`) and are
            # seen running, then all end within about a second.
            now = time.time()
            by_host: dict[str, list[int]] = {host: [] for host in HOSTS}
            for n in range(jobs):
                by_host[HOSTS[n % len(HOSTS)]].append(n)
            for host, ns in by_host.items():
                _append(h.state_dir / "events" / f"{host}.jsonl",
                        [events.encode(_event("start", host, n, now)) for n in ns])
            wait_for(lambda: _running(h) >= jobs, 30, f"the watcher to see {jobs} jobs running")
            slices = 20
            t_first = time.time()
            for s in range(slices):
                end = time.time()
                for host, ns in by_host.items():
                    part = ns[s::slices]
                    if part:
                        _append(h.state_dir / "events" / f"{host}.jsonl",
                                [events.encode(_event("finish", host, n, end)) for n in part])
                time.sleep(1.0 / slices)
            t_last = time.time()
            wait_for(lambda: _inbox_count(h) >= jobs, 120, f"all {jobs} jobs in the inbox")
            wait_for(lambda: _settled(h), 120, "the last message (outbox and digest batches empty)")
            arrivals = sorted(t for t, _ in rec.arrivals("hook"))
            told = sum(_jobs_told(body) for _, body in rec.arrivals("hook"))
            if told != jobs:
                raise SystemExit(f"bench: the webhook was told of {told} jobs, not {jobs}")
            last = arrivals[-1]
            after_last.append(last - t_last)
            after_first.append(last - t_first)
            messages.append(len(rec.arrivals("hook")))
            missing = _jobs_unaccounted(h, jobs)
            if missing:
                raise SystemExit(f"bench: burst lost {missing} jobs")
            stop_watchers(h)
    d, f, m = Dist(after_last), Dist(after_first), Dist([float(x) for x in messages])
    return [
        Row(f"burst: {jobs} jobs finishing within ~1 s across 6 host files: last message (single "
            "or digest), after the last finish", d.fmt(sec), "-", "-", "<= 3 s; all accounted for",
            d.median <= 3.0,
            [f"{runs} runs; every job was in the inbox exactly once and told in its own message or "
             f"counted in a digest; from the first finish to the last message: {f.fmt(sec)}; "
             "default settings: 3 single messages, then a digest once no job has ended for 2 s"]),
        Row(f"burst: messages sent to the webhook for {jobs} jobs", m.fmt(count), "-", "-",
            "<= 5 (issue 6)", m.median <= 5, []),
    ]


def _running(h: Home) -> int:
    path = h.state_dir / "watcher-state.json"
    try:
        return len(json.loads(path.read_bytes()).get("running") or {})
    except (OSError, ValueError):
        return 0


def _inbox_records(h: Home) -> list[dict[str, object]]:
    out = []
    for path in (h.state_dir / "inbox").glob("*.jsonl"):
        out += [json.loads(line) for line in path.read_text().splitlines() if line]
    return out


def _inbox_count(h: Home) -> int:
    return len(_inbox_records(h))


def _settled(h: Home) -> bool:
    try:
        state = json.loads((h.state_dir / "watcher-state.json").read_bytes())
    except (OSError, ValueError):
        return False
    return not state.get("outbox") and not state.get("batches")


def _jobs_told(body: dict[str, object]) -> int:
    """A digest's title starts with how many jobs it tells of; any other message tells of one."""
    first = str(body.get("title", "")).split(" ", 1)[0]
    return int(first) if first.isdigit() and " jobs finished" in str(body.get("title")) else 1


def _jobs_unaccounted(h: Home, jobs: int) -> int:
    seen = [str(r["job"]) for r in _inbox_records(h)]
    if len(seen) != len(set(seen)):
        raise SystemExit("bench: a job was notified twice")
    return jobs - len(set(seen))


def history(install: Install, runs: int, total_events: int) -> list[Row]:
    """A user with `total_events` events behind them: restart the watcher, list the latest."""
    sys.path.insert(0, str(REPO))
    from notifyd import state
    from notifyd.notify import inbox as inbox_file
    from notifyd.spool import reader as spool

    restart, listing, inbox_listing, baseline = [], [], [], []
    with home() as h:
        jobs = total_events // 2
        now = time.time() - jobs
        events_dir = h.state_dir / "events"
        inbox = h.state_dir / "inbox" / "node1.jsonl"
        done = state.State()
        batch: dict[str, list[bytes]] = {host: [] for host in HOSTS}
        inbox_lines = []
        for n in range(jobs):
            host = HOSTS[n % len(HOSTS)]
            t = now + n
            start, finish = _event("start", host, n, t), _event("finish", host, n, t)
            batch[host] += [events.encode(start), events.encode(finish)]
            inbox_lines.append(inbox_file.encode(
                f"{finish['job']}:finish", job=str(finish["job"]), time=t + 0.5, kind="success",
                title=f"run-{n} finished on {host}", body="exit 0 after 1 m",
                info=inbox_file.job_summary(finish, silent=False)))
            done.remember_done(str(finish["job"]), t)
            if len(inbox_lines) >= 50_000:
                for hh, lines in batch.items():
                    _append(events_dir / f"{hh}.jsonl", lines)
                    lines.clear()
                _append(inbox, inbox_lines)
                inbox_lines.clear()
        for hh, lines in batch.items():
            _append(events_dir / f"{hh}.jsonl", lines)
        _append(inbox, inbox_lines)
        for host in HOSTS:
            path = events_dir / f"{host}.jsonl"
            with path.open("rb") as f:
                head = f.read(spool.HEAD).hex()
            done.cursors[f"events/{host}.jsonl"] = spool.Cursor(path.stat().st_size, head).to_json()
        h.state_dir.joinpath("journal").mkdir(mode=0o700, exist_ok=True)
        state.save(done, h.state_dir / "watcher-state.json", h.state_dir / "journal")
        size = sum(p.stat().st_size for p in events_dir.glob("*.jsonl"))

        for _ in range(runs):
            w = start_watcher(install, h)
            assert w.ready_at is not None
            restart.append(w.ready_at - w.started)
            stop_watchers(h)
            listing.append(timed([install.notifyd, "jobs"], h.env)[0])
            inbox_listing.append(timed([install.notifyd, "inbox", "-n", "20"], h.env)[0])
            t0 = time.perf_counter()
            n_read = 0
            for path in sorted(events_dir.glob("*.jsonl")):
                with path.open("rb") as f:
                    for line in f:
                        events.decode(line)
                        n_read += 1
            baseline.append(time.perf_counter() - t0)
        assert n_read == jobs * 2, n_read
    r, li, b = Dist(restart), Dist(listing), Dist(baseline)
    note = (f"{total_events:,} events ({size / 2**20:.0f} MiB in 6 host files), {jobs:,} notified jobs in "
            f"the inbox, the state saved by a watcher that had read them all; {runs} runs")
    return [
        Row(f"history of {total_events:,} events: watcher restart to ready", r.fmt(sec),
            f"reading the whole spool: {b.fmt(sec)}", f"{r.median / b.median:.3f}x", "<= 1 s",
            r.median <= 1.0,
            [note, "ready = lease taken, state loaded, first round done (its log line)"]),
        Row(f"history of {total_events:,} events: `notifyd jobs` (running and the last day's "
            "finished, newest 50)", li.fmt(sec), f"reading the whole spool: {b.fmt(sec)}",
            f"{li.median / b.median:.3f}x", "<= 1 s", li.median <= 1.0,
            ["one job ended every second, so the last day holds up to 86,400 of them; "
             f"`notifyd inbox -n 20`: {Dist(inbox_listing).fmt(sec)}"]),
    ]
