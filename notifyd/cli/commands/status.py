"""Show which host and pid hold the watcher, what it read last and what is pending or failed."""

from __future__ import annotations

import json
import textwrap
import time
from typing import Any

import typer

from notifyd import fsutil, state
from notifyd import paths as paths_mod
from notifyd.cli.commands.common import ago, config, context, ensure_hint, init_hint
from notifyd.errors import ExitStatus, NotifydError
from notifyd.notify import history, reasons
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
        now_on_server = fsutil.server_now(str(paths.lease_dir), host)
        report["watcher"] = {
            "host": info.host, "pid": info.pid, "since": info.since,
            "heartbeat_age": round(now_on_server - info.mtime, 1),
            "running": not lease.is_stale(info, host, now_on_server),
            "released": info.released, "generation": info.gen,
        }
    # As the watcher and `notifyd jobs` read it: journals applied, bad records skipped.
    try:
        saved = state.load(paths.state_file, paths.journal_dir)
    except state.StateFileError as exc:
        saved, report["state_error"] = state.State(), str(exc)
    if saved.problems:
        report["state_problems"] = saved.problems
    stats = saved.stats
    report["events_read"] = stats.events
    report["malformed_lines"] = stats.malformed
    report["delivered"] = stats.delivered
    report["last_event"] = stats.last_event or None
    # The old bash function's jobs are followed from ~/.pingchilling's cursor, not the running table.
    report["running_legacy"] = len(history.legacy_running(saved))
    report["running_jobs"] = len(saved.running) + report["running_legacy"]
    report["failed_deliveries"] = [
        {"id": f.entry.id, "title": f.entry.title, "failed_at": f.failed_at, "url": f.url,
         "error": f.error, "reason": reasons.explain(f.error, f.status).line if f.error else None}
        for f in saved.failed
    ]
    try:
        cfg = config(paths)
        targets = sender.build_targets(cfg, paths.inbox_dir, host)
    except NotifydError as exc:
        report["config_error"] = exc.message
        targets = []
    report["urls"] = [_url_report(t, saved) for t in targets if t.key != sender.INBOX_KEY]
    # With the config unusable, no URL is known to be configured: say nothing rather than wrongly.
    report["unconfigured"] = ([] if report["config_error"] else
                              unconfigured(saved, {t.key for t in targets}, cfg.retry_for))
    report["pushing"] = bool(report["urls"])
    report["slurm"] = _slurm_report(saved, report.get("watcher"))
    report["logout_warning"] = logout.warning(paths_mod.user_name())
    report["pending"] = len(saved.outbox)
    return report


def unconfigured(saved: state.State, configured: set[str], retry_for: float) -> list[dict[str, Any]]:
    """The URLs deliveries wait for that are not configured now: masked, how many, when given up."""
    found = []
    for key in sorted(saved.waiting_for() - configured):
        entries = [e for e in saved.outbox if key in e.targets]
        batch = saved.batches.get(key)
        created = [e.created for e in entries] + ([batch.opened] if batch else [])
        found.append({
            "key": key, "url": saved.url_names.get(key), "pending": len(entries) + (1 if batch else 0),
            "gives_up": min(created) + retry_for if created else None,
        })
    return found


def _slurm_report(saved: state.State, watcher: dict[str, Any] | None) -> dict[str, Any] | None:
    """What the SLURM source last did, from its cursor in the state (None if it never ran).

    The cursor is the source's own JSON: a value of the wrong type (a state
    file edited by hand) is left out, never a traceback.
    """
    cur = saved.cursors.get("slurm") or {}
    last = _time(cur.get("last_poll"))
    if last is None:
        return None
    interval = _time(cur.get("interval")) or 60.0
    gap = cur.get("gap")
    calls = cur.get("calls")
    return {
        "active": time.time() - last < 3 * interval + 30, "host": (watcher or {}).get("host"),
        "interval": interval, "last_poll": last, "last_ok": _time(cur.get("last_ok")),
        "accounting": cur.get("accounting") if cur.get("accounting") in (True, False) else None,
        "min_job_age": _time(cur.get("min_job_age")), "cluster": _text(cur.get("cluster")),
        "error": _text(cur.get("error")),
        "gap": list(map(_time, gap)) if isinstance(gap, list) and len(gap) == 2
        and all(_time(t) for t in gap) else None,
        "calls": {str(k): v for k, v in calls.items() if isinstance(v, int)} if isinstance(calls, dict)
        else {},
        "held": len(cur.get("held") or {}) if isinstance(cur.get("held"), dict) else 0,
    }


def _time(value: object) -> float | None:
    """A positive number of seconds a calendar holds, else None."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if 0 < value < 2**33 else None


def _text(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


def _url_report(target: sender.Target, saved: state.State) -> dict[str, Any]:
    """The URL's pending count and, when it is retrying, why and when next.

    Retrying: the URL backs off (two different messages failed in a row), or
    a message of its own does (watcher/delivery.py); the soonest try is shown.
    """
    pending = [e for e in saved.outbox if target.key in e.targets]
    backoffs = [b for b in (saved.backoff.get(target.key), *(e.retry.get(target.key) for e in pending))
                if b is not None]
    soonest = min(backoffs, key=lambda b: b.next_try) if backoffs else None
    return {
        "url": target.display,
        "pending": len(pending),
        "retrying": soonest is not None,
        "error": soonest.error if soonest else None,  # as Apprise said it; "reason": in words
        "reason": reasons.explain(soonest.error).line if soonest else None,
        "next_try": soonest.next_try if soonest else None,
    }


def _print(report: dict[str, Any]) -> None:
    now = time.time()
    w = report["watcher"]
    if w is None or not w["running"]:
        state_text = "not running" if w is None or w["released"] else (
            f"not running (pid {w['pid']} on {w['host']} silent for {w['heartbeat_age']:.0f} s)")
        hint = ensure_hint()
        _say(f"watcher:    {state_text}; start it with: {hint}", whole=(hint,))
    else:
        since = _local(w["since"])
        _say(f"watcher:    running on {w['host']}, pid {w['pid']}, since {since} "
             f"(heartbeat {w['heartbeat_age']:.0f} s ago)")
    last = report["last_event"]
    if last:
        read_at = last.get("read_at")
        known = isinstance(read_at, (int, float)) and not isinstance(read_at, bool) and read_at
        when = ago(now - read_at) if known else "at an unknown time"
        _say(f"last event: {last.get('ev')} of {last.get('title')!r} from "
             f"{last.get('host')}, read {when}")
    else:
        _say("last event: none read yet")
    legacy = report["running_legacy"]
    of_them = f" ({legacy} from ~/.pingchilling)" if legacy else ""
    _say(f"jobs:       {report['running_jobs']} running{of_them}, {report['events_read']} events read, "
         f"{report['malformed_lines']} malformed lines skipped")
    _print_slurm(report.get("slurm"), now)
    _say(f"outbox:     {report['pending']} pending, {report['delivered']} delivered, "
         f"{len(report['failed_deliveries'])} failed")
    _print_unconfigured(report["unconfigured"])
    for item in report["failed_deliveries"][-5:]:
        why = f" → {item['url']}: {item['reason']}" if item.get("url") else ""
        _say(f"            failed: {item['title']}{why}")
    if report["urls"]:
        _say("URLs:")
        for u in report["urls"]:
            line = f"  {u['url']}: {u['pending']} pending"
            if not u["retrying"]:
                _say(line)
                continue
            wait = max(0.0, float(u["next_try"] or now) - now)
            _say(f"{line}; failing, retried in {wait:.0f} s:")
            _say(f"    {u['reason']}")
    elif not report["config_error"]:
        _say("URLs:       none, so nothing is being pushed: notifications go to notifyd inbox",
             whole=("notifyd inbox",))
        for line in init_hint():
            _say("            " + line)
    if report["config_error"]:
        _say(f"config:     ERROR: {report['config_error']}")
    else:
        _say(f"config:     {report['config']}")
    if report.get("state_error"):
        _say(f"state:      ERROR: {report['state_error']}")
    problems = report.get("state_problems") or []
    if problems:
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        _say(f"state:      skipped a record that is not usable: {problems[0]}{more}")
    _say(f"log:        {report['log']}")
    if report["logout_warning"]:
        _say(f"logout:     WARNING: {report['logout_warning']}")


WIDTH = 80
_INDENT = " " * 12  # under the values, past "watcher:    "


def _print_unconfigured(waiting: list[dict[str, Any]]) -> None:
    """Deliveries for URLs no longer configured: the watcher sends them nowhere, and says so here."""
    for item in waiting:
        url = item["url"] or "a URL removed before notifyd named them"
        when = _local(item["gives_up"]) if item["gives_up"] else "later"
        what = "1 delivery waits" if item["pending"] == 1 else f"{item['pending']} deliveries wait"
        _say(f"            {what} for a URL no longer configured:")
        _say(f"              {url}")
        _say(f"              given up {when}; to drop {'it' if item['pending'] == 1 else 'them'} "
             "now: notifyd drop", whole=("notifyd drop",))


def _say(line: str, whole: tuple[str, ...] = ()) -> None:
    """One line for the terminal, wrapped at 80 columns under the values.

    A word longer than that (a path, a masked URL) is kept whole, so it can
    still be copied, and so is each command in `whole`: a hint split as
    "notifyd" on one line and "ensure" on the next is typed wrong. A lone
    surrogate (a job title's undecodable byte) is shown escaped.
    """
    line = line.encode("utf-8", "backslashreplace").decode("utf-8")
    if len(line) > WIDTH:
        # A NUL joins a command's words while wrapping; one already in the
        # line is shown escaped first, so only ours turn back into spaces.
        line = line.replace("\0", "\\x00")
        for command in whole:
            line = line.replace(command, command.replace(" ", "\0"))
        line = "\n".join(textwrap.wrap(line, WIDTH, subsequent_indent=_INDENT, break_long_words=False,
                                       break_on_hyphens=False)).replace("\0", " ")
    typer.echo(line)


def _local(ts: float) -> str:
    """A time from the lease file as a date; one no calendar holds is said to be unknown."""
    try:
        return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(ts))
    except (OverflowError, OSError, ValueError):
        return "an unknown time"


def _print_slurm(slurm: dict[str, Any] | None, now: float) -> None:
    if slurm is None:
        return
    where = f"on {slurm['host']}, " if slurm.get("host") else ""
    state = "polling" if slurm["active"] else "not polling now"
    accounting = {True: "accounting answers", False: "no accounting (sacct disabled)",
                  None: "accounting not asked yet"}[slurm.get("accounting")]
    _say(f"slurm:      {state} {where}cluster {slurm.get('cluster') or '?'}, every "
         f"{slurm['interval']:.0f} s, last poll {ago(now - slurm['last_poll'])}; {accounting}")
    if slurm.get("error"):
        _say(f"            last poll failed: {slurm['error']}")
    if slurm.get("gap"):
        since, until = (time.strftime("%m-%d %H:%M", time.localtime(t)) for t in slurm["gap"])
        _say(f"            not checked: jobs that ended {since} to {until} (the watcher was "
             "down longer than MinJobAge, and no accounting keeps them)")


def command(
    as_json: bool = typer.Option(False, "--json", help="Print the status as JSON."),
) -> int:
    report = gather()
    if as_json:
        typer.echo(json.dumps(report, indent=2))
    else:
        _print(report)
    return int(ExitStatus.CONFIG) if report["config_error"] else 0
