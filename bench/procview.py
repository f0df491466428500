"""The process view: `notifyd procs` over a lab's snapshots, `notifyd snapshot` on a busy node."""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

from bench.harness import Dist, Install, Row, home, ms, sec, timed


def procs_view(install: Install, runs: int, nodes: int, per_node: int) -> list[Row]:
    with home() as h:
        procs_dir = h.state_dir / "procs"
        # One real snapshot of this machine, then copies named node001.. with
        # ~per_node listed processes each, as a lab's cron jobs would leave.
        h.write_config("[legacy]\npingchilling =\n[procs]\ninterval = 0.2s\n")
        _wall, status, _ = timed([install.notifyd, "snapshot"], h.env)
        if status != 0:
            raise SystemExit("bench: notifyd snapshot failed")
        real = json.loads((procs_dir / f"{h.host}.json").read_text())
        (procs_dir / f"{h.host}.json").unlink()
        template = (real["procs"] * (per_node // max(1, len(real["procs"])) + 1))[:per_node]
        now = time.time()
        for i in range(nodes):
            name = f"node{i + 1:03d}"
            rows = [dict(r, pid=10000 + j, user=f"user{(i + j) % 7}", cpu=float((i * j) % 100))
                    for j, r in enumerate(template)]
            snap = dict(real, host=name, time=now, procs=rows)
            path = procs_dir / f"{name}.json"
            path.write_text(json.dumps(snap))
            path.chmod(0o600)
        procs, nodes_cmd = [], []
        for _ in range(runs):
            procs.append(timed([install.notifyd, "procs"], h.env)[0])
            nodes_cmd.append(timed([install.notifyd, "nodes"], h.env)[0])
        startup = Dist([timed([install.notifyd, "--help"], h.env)[0] for _ in range(runs)])
    p, n = Dist(procs), Dist(nodes_cmd)
    return [Row(
        f"`notifyd procs` over {nodes} node snapshots of ~{per_node} processes each", p.fmt(sec),
        "-", "-", "<= 0.3 s", p.median <= 0.3,
        [f"{runs} runs; `notifyd nodes` over the same: {n.fmt(sec)}; `notifyd --help` "
         f"(start-up alone): {startup.fmt(sec)}"],
    )]


def _spawn_sleepers(n: int) -> list[int]:
    null = os.open(os.devnull, os.O_RDWR)
    try:
        return [os.posix_spawnp("sleep", ["sleep", "600"], os.environ,
                                file_actions=[(os.POSIX_SPAWN_DUP2, null, 0),
                                              (os.POSIX_SPAWN_DUP2, null, 1)])
                for _ in range(n)]
    finally:
        os.close(null)


def _process_count() -> int:
    return sum(1 for name in os.listdir("/proc") if name.isdigit())


def snapshot_cpu(install: Install, runs: int, processes: int) -> list[Row]:
    extra = max(0, processes - _process_count())
    sleepers = _spawn_sleepers(extra)
    try:
        total = _process_count()
        with home() as h:
            h.write_config("[legacy]\npingchilling =\n[procs]\ninterval = 1s\n")
            ours, ps = [], []
            ps_argv = ["ps", "-eo", "pid,user,pcpu,pmem,rss,etime,args"]
            for _ in range(runs):
                _, status, usage = timed([install.notifyd, "snapshot"], h.env)
                if status != 0:
                    raise SystemExit("bench: notifyd snapshot failed")
                ours.append(usage.ru_utime + usage.ru_stime)
                _, _, usage = timed(ps_argv, h.env)
                ps.append(usage.ru_utime + usage.ru_stime)
            listed = json.loads(Path(h.state_dir / "procs" / f"{h.host}.json").read_text())
    finally:
        for pid in sleepers:
            os.kill(pid, signal.SIGKILL)
        for pid in sleepers:
            os.waitpid(pid, 0)
    o, b = Dist(ours), Dist(ps)
    return [Row(
        f"`notifyd snapshot` with ~{total} processes: CPU time (user+sys; the sampling sleep uses none)",
        o.fmt(sec), f"`{' '.join(ps_argv)}`: {b.fmt(ms)}", f"{o.median / b.median:.1f}x", "<= 0.3 s",
        o.median <= 0.3,
        [f"{runs} runs; the snapshot saw {listed['scan']['seen']} processes; start-up (Python, "
         "typer, psutil imports) included"],
    )]
