"""Show which host and pid hold the watcher, what it read last and what is pending or failed."""

from __future__ import annotations

import json
import time
from typing import Any

import typer

from notifyd import paths as paths_mod
from notifyd import state
from notifyd.cli.commands.common import ago, config, context, discord_howto
from notifyd.errors import ExitStatus, NotifydError
from notifyd.notify import targets as sender
from notifyd.setup import logout
from notifyd.watcher import lease


def gather() -> dict[str, Any]:
    paths, host = context()
    report: dict[str, Any] = {
        "host": host, "config": str(paths.config_file), "state_dir": str(paths.state_dir),
        "log": str(paths.log_file(host)), "config_error": None,
    }
    info = lease.current(str(paths.lease_dir))
    if info is None:
        report["watcher"] = None
    else:
        now_on_server = lease.server_now(str(paths.lease_dir), host)
        report["watcher"] = {
            "host": info.host, "pid": info.pid, "since": info.since,
            "heartbeat_age": round(now_on_server - info.mtime, 1),
            "running": not lease.is_stale(info, host, now_on_server),
            "released": info.released, "generation": info.gen,
        }
    try:
        saved = state.read(paths.state_file) or {}
    except state.StateFileError as exc:
        saved, report["state_error"] = {}, str(exc)
    outbox = saved.get("outbox") or []
    stats = saved.get("stats") or {}
    report["events_read"] = stats.get("events", 0)
    report["malformed_lines"] = stats.get("malformed", 0)
    report["delivered"] = stats.get("delivered", 0)
    report["last_event"] = stats.get("last_event") or None
    report["running_jobs"] = len(saved.get("running") or {})
    report["failed_deliveries"] = [
        {"id": e.get("id"), "title": e.get("title"), "failed_at": e.get("failed_at"),
         "url": e.get("url"), "error": e.get("error")}
        for e in saved.get("failed") or []
    ]
    backoff = saved.get("backoff") or {}
    try:
        cfg = config(paths)
        targets = sender.build_targets(cfg, paths.inbox_dir, host)
    except NotifydError as exc:
        report["config_error"] = exc.message
        targets = []
    report["urls"] = [
        {
            "url": t.display,
            "pending": sum(1 for e in outbox if t.key in e.get("targets", [])),
            "retrying": bool(backoff.get(t.key)),
            "error": (backoff.get(t.key) or {}).get("error"),
            "next_try": (backoff.get(t.key) or {}).get("next_try"),
        }
        for t in targets if t.key != sender.INBOX_KEY
    ]
    report["pushing"] = bool(report["urls"])
    report["logout_warning"] = logout.warning(paths_mod.user_name())
    report["pending"] = len(outbox)
    return report


def _print(report: dict[str, Any]) -> None:
    now = time.time()
    w = report["watcher"]
    if w is None or not w["running"]:
        state_text = "not running" if w is None or w["released"] else (
            f"not running (pid {w['pid']} on {w['host']} silent for {w['heartbeat_age']:.0f} s)")
        typer.echo(f"watcher:    {state_text}; start it with: notifyd ensure")
    else:
        since = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(w["since"]))
        typer.echo(f"watcher:    running on {w['host']}, pid {w['pid']}, since {since} "
                   f"(heartbeat {w['heartbeat_age']:.0f} s ago)")
    last = report["last_event"]
    if last:
        when = ago(now - float(last.get("read_at") or now))
        typer.echo(f"last event: {last.get('ev')} of {last.get('title')!r} from "
                   f"{last.get('host')}, read {when}")
    else:
        typer.echo("last event: none read yet")
    typer.echo(f"jobs:       {report['running_jobs']} running, {report['events_read']} events read, "
               f"{report['malformed_lines']} malformed lines skipped")
    typer.echo(f"outbox:     {report['pending']} pending, {report['delivered']} delivered, "
               f"{len(report['failed_deliveries'])} failed")
    for item in report["failed_deliveries"][-5:]:
        why = f" → {item['url']}: {item['error']}" if item.get("url") else ""
        typer.echo(f"            failed: {item['title']}{why}")
    if report["urls"]:
        typer.echo("URLs:")
        for u in report["urls"]:
            line = f"  {u['url']}: {u['pending']} pending"
            if u["retrying"]:
                wait = max(0.0, float(u["next_try"] or now) - now)
                line += f"; failing, retried in {wait:.0f} s: {u['error']}"
            typer.echo(line)
    elif not report["config_error"]:
        typer.echo("URLs:       none: nothing is being pushed; notifications go to the inbox "
                   "(notifyd inbox).")
        typer.echo("            " + discord_howto(report["config"]))
    if report["config_error"]:
        typer.echo(f"config:     ERROR: {report['config_error']}")
    else:
        typer.echo(f"config:     {report['config']}")
    if report.get("state_error"):
        typer.echo(f"state:      ERROR: {report['state_error']}")
    typer.echo(f"log:        {report['log']}")
    if report["logout_warning"]:
        typer.echo(f"logout:     WARNING: {report['logout_warning']}")


def command(
    as_json: bool = typer.Option(False, "--json", help="Print the status as JSON."),
) -> int:
    report = gather()
    if as_json:
        typer.echo(json.dumps(report, indent=2))
    else:
        _print(report)
    return int(ExitStatus.CONFIG) if report["config_error"] else 0
