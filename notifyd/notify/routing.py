"""Who is told what, and when: filters, tags, digests for bursts, groups, each URL's rate budget.

Every finished job gets one inbox record (the job history `notifyd jobs`
reads), whatever else happens. For each URL (a push target):
  * filters decide if the job is pushed at all: `--notify none`, `on =
    failure` or `--notify failure` for a success, a success shorter than
    `min_duration`; a job of a group (`pingch -g`) is told in its group's
    summary instead;
  * tags decide what the URL takes (targets.Target.wants): `failure` only
    failures, `digest` only digests and group summaries, `pressure` only
    memory pressure alerts (`nopressure` all but those);
  * the first `digest_after` jobs in `digest_window` go out one message each;
    later ones wait in the URL's batch, which goes out once no job has ended
    for `digest_quiet` (or the window is over): a batch of one as the job's
    own message, of up to SMALL_BATCH as each job's key lines, of more as a
    digest of one line a job (a `digest` URL always gets the digest);
  * at most `rate` messages a minute leave for the URL (a token bucket);
    the rest wait in the outbox, nothing is dropped.
All of it lives in the state file, so a restart or a takeover by a watcher
on another host keeps the windows, batches, groups and budgets. Every
function takes the round's `now`: the rules can be tested with a fixed clock
(tests/notify/test_routing_rules.py).
"""

from __future__ import annotations

from typing import Any

from notifyd.config import Config
from notifyd.notify import defuse, inbox, message, outcome
from notifyd.notify import slurm as slurm_words
from notifyd.notify.outcome import Outcome
from notifyd.notify.targets import INBOX_KEY, Target
from notifyd.records import Batch, Budget, Group, GroupMember, OutboxEntry
from notifyd.state import State

# Fields of a finish event a digest line or `notifyd jobs` needs: batches and
# groups keep only these, so a burst of 1,000 jobs keeps the state small.
_COMPACT = ("job", "title", "host", "pid", "exit", "signal", "duration", "start_ts", "ts", "group",
            "maxrss_kb", "exit_unknown", "unwatched", "lost", "oom", "mem_total_kb")
_BAD = outcome.BAD
# A batch this small is sent as its jobs' own messages (shortened when more
# than one), not as a digest: a digest line has no room for a job's memory,
# directory, command or output, and a quiet moment in a busy window is no
# reason to lose them. The batch keeps these first jobs' messages for it.
SMALL_BATCH = 3
SEVERITIES = ("success", "failure", "warning", "info")


def is_silent(ev: dict[str, Any], failed: bool, config: Config) -> bool:
    """True when filters keep this job's own message from every URL (it is still in the inbox)."""
    notify = ev.get("notify") or "all"
    if notify == "none":
        return True
    if failed:
        return False
    if notify == "failure" or config.on == "failure":
        return True
    duration = ev.get("duration")
    return (isinstance(duration, (int, float)) and not isinstance(duration, bool)
            and duration < config.min_duration)


def compact(ev: dict[str, Any]) -> dict[str, Any]:
    return {k: ev[k] for k in _COMPACT if ev.get(k) is not None}


def _batched(ev: dict[str, Any], msg: message.Message, *, keep: bool) -> dict[str, Any]:
    """A job as its batch keeps it: compact, plus its own message while the batch is small."""
    job = compact(ev)
    if keep:
        job["message"] = {"title": msg.title, "body": msg.body, "kind": msg.severity, "attach": msg.attach}
    return job


def _kept_message(job: dict[str, Any]) -> message.Message | None:
    """The message _batched kept (None if not kept, or not one: a state edited by hand, an older one)."""
    kept = job.get("message")
    if not isinstance(kept, dict):
        return None
    title, body, kind, attach = (kept.get(k) for k in ("title", "body", "kind", "attach"))
    if not (isinstance(title, str) and isinstance(body, str) and isinstance(attach, str)
            and kind in SEVERITIES):
        return None
    return message.Message(title, body, str(kind), attach)


def batch_message(jobs: list[dict[str, Any]], digests_only: bool, limit: int) -> message.Message:
    """A due batch in words: one job's own message, a few jobs' key lines, or a digest."""
    kept = [_kept_message(j) for j in jobs]
    msgs = [m for m in kept if m is not None]
    if digests_only or len(jobs) > SMALL_BATCH or len(msgs) < len(jobs):
        return message.digest(jobs, limit)
    if len(msgs) == 1:
        return msgs[0]  # the target fits it to its length when it sends it
    return message.few(jobs, msgs, limit)


def _entry(entry_id: str, jobs: list[str], msg: message.Message, targets: list[str], now: float,
           **extra: Any) -> OutboxEntry:
    return OutboxEntry(id=entry_id, job=jobs[0] if len(jobs) == 1 else "", jobs=jobs, title=msg.title,
                       body=msg.body, severity=msg.severity, created=round(now, 3), targets=targets,
                       **extra)


def push_targets(targets: list[Target]) -> list[Target]:
    return [t for t in targets if t.key != INBOX_KEY]


def job_ended(state: State, targets: list[Target], config: Config, *, entry_id: str,
              ev: dict[str, Any], msg: message.Message, now: float) -> None:
    """Route one finished (or lost) job: inbox record, single messages, batches, its group."""
    job = str(ev["job"])
    failed = Outcome.of(ev).is_bad
    group = ev.get("group")
    silent = is_silent(ev, failed, config)
    singles: list[str] = []
    if group:
        _group_job_ended(state, str(group), ev, now)
    # A grouped job is told in its group's summary; one that asks to be told
    # alone too (a failed SLURM array task, [slurm] array_failures) is both.
    if (not group or ev.get("notify_alone")) and not silent:
        for target in push_targets(targets):
            if not target.wants("job", failed):
                continue
            recent = [t for t in state.recent.get(target.key, []) if now - t < config.digest_window]
            if target.digests_only or len(recent) >= config.digest_after:
                batch = state.batches.setdefault(target.key, Batch(opened=now, last=now))
                batch.jobs.append(_batched(ev, msg, keep=len(batch.jobs) < SMALL_BATCH))
                batch.last = now
            else:
                recent.append(now)
                singles.append(target.key)
            state.recent[target.key] = recent
    state.outbox.append(_entry(entry_id, [job], msg, [INBOX_KEY, *singles], now,
                               info=inbox.job_summary(ev, silent), attach=msg.attach))


def job_started(state: State, targets: list[Target], config: Config, ev: dict[str, Any],
                now: float) -> None:
    """A start: counted in its group; announced only with notify_start = yes; a requeue is news."""
    if ev.get("slurm_requeued"):
        _requeued(state, targets, ev, now)
        return
    if ev.get("group"):
        group = state.groups.setdefault(str(ev["group"]), Group(opened=now, changed=now))
        group.jobs.setdefault(str(ev["job"]), None)
        group.changed = now
        return
    if not config.notify_start or (ev.get("notify") or "all") != "all":
        return
    if ev.get("slurm_state") not in (None, "RUNNING"):
        return  # a SLURM job is announced when it starts running, not when it is queued
    keys = [t.key for t in push_targets(targets) if t.wants("start", failed=False)]
    if keys:
        state.outbox.append(_entry(f"{ev['job']}:start", [str(ev["job"])], message.started(ev), keys,
                                   now))


def _requeued(state: State, targets: list[Target], ev: dict[str, Any], now: float) -> None:
    """The scheduler put a job back in the queue: not an end, but worth knowing (its node failed)."""
    keys = [t.key for t in push_targets(targets) if t.wants("job", failed=True)]
    restart = ev.get("slurm_requeued")
    state.outbox.append(_entry(f"{ev['job']}:requeued:{restart}", [str(ev["job"])], slurm_words.requeued(ev),
                               [INBOX_KEY, *keys], now))


def notice(state: State, targets: list[Target], *, entry_id: str, title: str, body: str,
           now: float) -> None:
    """A message about no one job (a source's window it could not check): the inbox and every URL."""
    if any(e.id == entry_id for e in state.outbox):
        return
    keys = [t.key for t in push_targets(targets) if t.wants("job", failed=True)]
    msg = message.Message(defuse.line(title), defuse.defuse(body), "warning")
    state.outbox.append(_entry(entry_id, [], msg, [INBOX_KEY, *keys], now))


def pressure_alert(state: State, targets: list[Target], *, entry_id: str, msg: message.Message,
                   now: float) -> None:
    """A node short of memory where the user's jobs run: the inbox and the URLs that take such alerts.

    Not counted in digest windows (it is about no job's end); the URL's
    rate budget holds it like any message.
    """
    if any(e.id == entry_id for e in state.outbox):
        return
    keys = [t.key for t in push_targets(targets) if t.wants("pressure", failed=False)]
    state.outbox.append(_entry(entry_id, [], msg, [INBOX_KEY, *keys], now))


def already_told(state: State, ev: dict[str, Any]) -> None:
    """A re-read finish told long ago: its re-read start must not hold its group open."""
    group = state.groups.get(str(ev.get("group") or ""))
    job = str(ev["job"])
    if group and job in group.jobs and group.jobs[job] is None:
        del group.jobs[job]


def _group_job_ended(state: State, name: str, ev: dict[str, Any], now: float) -> None:
    group = state.groups.setdefault(name, Group(opened=now, changed=now))
    duration, code, sig = ev.get("duration"), ev.get("exit"), ev.get("signal")
    group.jobs[str(ev["job"])] = GroupMember(
        outcome=Outcome.of(ev).value, title=ev.get("title"), host=ev.get("host"),
        duration=float(duration) if isinstance(duration, (int, float)) and not isinstance(duration, bool)
        else None,
        exit=code if isinstance(code, int) and not isinstance(code, bool) else None,
        signal=sig if isinstance(sig, int) and not isinstance(sig, bool) else None)
    member = group.jobs[str(ev["job"])]
    if ev.get("slurm_task") is not None and member is not None:  # a SLURM array's task, for its summary
        member.task = str(ev["slurm_task"])
        member.slurm_state = str(ev.get("slurm_state") or "") or None
        member.words = message.outcome(ev)
        rss = ev.get("maxrss_kb")
        member.maxrss_kb = float(rss) if isinstance(rss, (int, float)) and not isinstance(rss, bool) else None
    group.changed = now


def flush(state: State, targets: list[Target], config: Config, now: float) -> bool:
    """Turn due batches into digests and finished groups into summaries; True if any."""
    return _flush_batches(state, targets, config, now) | _flush_groups(state, targets, config, now)


def _flush_batches(state: State, targets: list[Target], config: Config, now: float) -> bool:
    by_key = {t.key: t for t in targets}
    changed = False
    for key, batch in list(state.batches.items()):
        if now - batch.last < config.digest_quiet and now - batch.opened < config.digest_window:
            continue
        target = by_key.get(key)
        msg = batch_message(batch.jobs, target.digests_only if target else True,
                            target.limit if target else config.max_length or 2000)
        jobs = [str(j.get("job")) for j in batch.jobs]
        state.outbox.append(_entry(f"digest:{key}:{batch.opened}", jobs, msg, [key], now,
                                   attach=msg.attach))
        # A digest counts as one message in the window, like a single one.
        state.recent.setdefault(key, []).append(now)
        del state.batches[key]
        changed = True
    return changed


def _flush_groups(state: State, targets: list[Target], config: Config, now: float) -> bool:
    by_key = {t.key: t for t in targets}
    changed = False
    for name, group in list(state.groups.items()):
        if not group.jobs:
            del state.groups[name]  # only re-read history was in it
            continue
        ended = [m for m in group.jobs.values() if m is not None]
        if len(ended) < len(group.jobs):
            continue  # some still run (lost detection ends the ones that never finish)
        if now - group.changed < config.group_wait:
            continue  # a loop may still be adding jobs: see README "Groups"
        failed = any(m.outcome in _BAD for m in ended)
        keys = [t.key for t in push_targets(targets) if t.wants("group", failed)]
        limit = min([by_key[k].limit for k in keys], default=config.max_length or 2000)
        msg = message.group_done(name, [m.to_json() for m in ended], limit)
        state.outbox.append(_entry(f"group:{name}:{group.opened}", list(group.jobs), msg,
                                   [INBOX_KEY, *keys], now))
        del state.groups[name]
        changed = True
    return changed


def may_send(state: State, key: str, config: Config, now: float) -> bool:
    """Take one message from the URL's budget (refilled at `rate`); False when it is spent."""
    if key == INBOX_KEY:
        return True
    capacity = max(1.0, config.rate_per_min)
    bucket = state.budget.get(key) or Budget(tokens=capacity, at=now)
    tokens = min(capacity, bucket.tokens + max(0.0, now - bucket.at) * config.rate_per_min / 60)
    if tokens < 1:
        state.budget[key] = Budget(tokens=tokens, at=now)
        return False
    state.budget[key] = Budget(tokens=tokens - 1, at=now)
    return True
