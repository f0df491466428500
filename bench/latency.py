"""How soon you hear: a job's end to its message at a local webhook.

notifyd: real `pingch` jobs, a real watcher at default settings, Apprise's
json:// to a local HTTP server. A job's end is the `ts` pingch recorded right
after wait4() returned; arrival is when the server read the POST; both read
this machine's clock.

Baseline, in the same run and alongside: the old design, the bash function
appending to ~/.pingchilling and a bot reading that file every 10 s and
posting each Finished line to the same webhook.
"""

from __future__ import annotations

import http.client
import json
import random
import re
import threading
import time
from pathlib import Path

from bench.harness import (
    Dist,
    Home,
    Install,
    Receiver,
    Row,
    home,
    receiver,
    sec,
    start_watcher,
    stop_watchers,
    timed,
    wait_for,
)
from bench.overhead import OLD_PINGCH


class OldBot(threading.Thread):
    """The old bot's loop: every `period` s, read new lines of the file, post each finish."""

    def __init__(self, path: Path, port: int, period: float) -> None:
        super().__init__(daemon=True)
        self.path, self.port, self.period = path, port, period
        self.offset = 0
        self.stopping = threading.Event()

    def run(self) -> None:
        while not self.stopping.wait(self.period):
            try:
                with self.path.open("rb") as f:
                    f.seek(self.offset)
                    data = f.read()
            except FileNotFoundError:
                continue
            end = data.rfind(b"\n") + 1
            self.offset += end
            for line in data[:end].decode(errors="replace").splitlines():
                if ": Finished [" in line:
                    body = json.dumps({"title": "finished", "message": line}).encode()
                    conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
                    conn.request("POST", "/old", body, {"Content-Type": "application/json"})
                    conn.getresponse().read()
                    conn.close()


OTHER_HOST = "otherhost"


def _run_jobs(install: Install, h: Home, jobs: int, gap: float, old_ends: dict[str, float]) -> None:
    """Per round: a job on the watcher's host, one "from another host", one of the old function."""
    rng = random.Random(5)
    elsewhere = dict(h.env, NOTIFYD_HOST=OTHER_HOST)
    for i in range(jobs):
        timed([install.pingch, "-t", f"near-{i}", "true"], h.env)
        time.sleep(rng.uniform(0, gap))
        timed([install.pingch, "-t", f"far-{i}", "true"], elsewhere)
        time.sleep(rng.uniform(0, gap))
        timed(["bash", "-c", OLD_PINGCH + f"pingch_old true # old-{i}"], h.env)
        old_ends[f"old-{i}"] = time.time()  # the Finished line was written just before bash exited
        time.sleep(rng.uniform(0, gap))


def _latencies(h: Home, rec: Receiver, host: str, prefix: str) -> list[float]:
    """Arrival minus the end pingch recorded, for each job titled PREFIX-N on `host`."""
    ends = {}
    spool = h.state_dir / "events" / f"{host}.jsonl"
    for line in spool.read_text().splitlines():
        ev = json.loads(line)
        if ev["ev"] == "finish" and ev["title"].startswith(prefix):
            ends[ev["title"]] = float(ev["ts"])
    out = []
    for arrived, body in rec.arrivals("hook"):
        found = re.search(prefix + r"-\d+", body["title"])
        if found and found.group() in ends:
            out.append(arrived - ends.pop(found.group()))
    if ends:
        raise SystemExit(f"bench: {len(ends)} jobs were never delivered: {sorted(ends)[:5]}")
    return out


def finish_to_message(install: Install, jobs: int, old_period: float) -> list[Row]:
    with receiver() as rec, home(config="") as h:
        # One message per job: 400 jobs in under 3 minutes would otherwise be
        # coalesced into digests (3 single messages a minute per URL by
        # default), and this figure is how soon one job is told.
        h.write_config(f"[notify]\nurls = {rec.url_for('hook')}\ndigest_after = 1000000\n"
                       "rate = 1000000/min\n[legacy]\npingchilling =\n")
        start_watcher(install, h)
        bot = OldBot(h.root / ".pingchilling", rec.port, old_period)
        bot.start()
        old_ends: dict[str, float] = {}
        _run_jobs(install, h, jobs, 0.5, old_ends)
        wait_for(lambda: len(rec.arrivals("hook")) >= 2 * jobs and len(rec.arrivals("old")) >= jobs,
                 30 + old_period * 2, f"{2 * jobs} messages from notifyd and {jobs} from the old bot")
        bot.stopping.set()
        near = Dist(_latencies(h, rec, h.host, "near"))
        far = Dist(_latencies(h, rec, OTHER_HOST, "far"))
        old = Dist(_old_latencies(rec, old_ends))
        stop_watchers(h)
    baseline = (f"old bot polling every {old_period:g} s: p50 {sec(old.median)}, p95 {sec(_q(old, 0.95))}, "
                f"max {sec(max(old.samples))}")
    rows = []
    for d, prefix, where, how in (
        (far, "far", "from another host", f"jobs run with NOTIFYD_HOST={OTHER_HOST}: their events are found "
         "by polling (poll_interval 0.5 s), as a job on any host but the watcher's"),
        (near, "near", "on the watcher's host", "pingch wakes the watcher through wake/<host>.fifo"),
    ):
        rows.append(Row(
            f"finish -> message at a local webhook, job {where}, default polling ({jobs} jobs)",
            f"p50 {sec(d.median)}, p95 {sec(_q(d, 0.95))}, max {sec(max(d.samples))}",
            baseline,
            f"p50 {d.median / old.median:.3f}x, p95 {_q(d, 0.95) / _q(old, 0.95):.3f}x",
            "p50 <= 0.5 s, p95 <= 1.5 s",
            d.median <= 0.5 and _q(d, 0.95) <= 1.5,
            [f"`pingch -t {prefix}-N true` jobs, one at a time, 0-0.5 s apart at random, "
             f"interleaved with the old function's jobs; {how}; p10-p90 "
             f"{sec(d.spread[0])}-{sec(d.spread[1])}; digests off (digest_after and rate raised) so "
             "each job is its own message: by default a steady stream of more than 3 jobs a minute "
             "is told in digests, each at most digest_window (60 s) late"],
        ))
    return rows


def _q(d: Dist, q: float) -> float:
    from bench.harness import quantile

    return quantile(d.samples, q)


def _old_latencies(rec: Receiver, old_ends: dict[str, float]) -> list[float]:
    """The old bot posts lines in file order, and jobs ran one at a time: match by order."""
    arrivals = [t for t, _ in rec.arrivals("old")]
    ends = [old_ends[f"old-{i}"] for i in range(len(old_ends))]
    return [a - e for a, e in zip(arrivals, ends, strict=True)]
