"""Whether a job's notification went out: the outbox, digest batches, open groups, given-up deliveries.

`notifyd jobs` shows it per job (history.py); only pushes to URLs configured
now count, since the watcher sends to no other (watcher/drop.py).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from notifyd import state
from notifyd.notify.targets import INBOX_KEY, configured_keys
from notifyd.paths import Paths, host_name


@dataclass
class Deliveries:
    """Which jobs still wait for a push, a digest or their group's summary, or were given up on."""

    pending: set[str] = field(default_factory=set)
    digest: set[str] = field(default_factory=set)
    group: set[str] = field(default_factory=set)
    failed: set[str] = field(default_factory=set)
    # Batched finish events by job: a job may wait there before any inbox record exists.
    batched: dict[str, dict[str, Any]] = field(default_factory=dict)

    # Deliveries that wait only for URLs no longer configured (watcher/drop.py).
    unconfigured: int = 0

    @classmethod
    def from_state(cls, saved: state.State, configured: set[str] | None = None) -> Deliveries:
        """`configured`: the push URLs' keys now (None: count every URL as configured)."""
        d = cls()

        def counts(key: str) -> bool:
            return key != INBOX_KEY and (configured is None or key in configured)

        for entry in saved.outbox:
            # The inbox is written by the watcher itself; only a push still to
            # go (a URL that failed and is retried, say) makes a job pending,
            # and only to a URL still configured: the watcher sends to no other.
            if any(counts(t) for t in entry.targets):
                d.pending.update(entry.covers())
            elif any(t != INBOX_KEY for t in entry.targets):
                d.unconfigured += 1
        for batch in saved.batches.values():
            for ev in batch.jobs:
                job = ev.get("job")
                if isinstance(job, str) and job:
                    d.digest.add(job)
                    d.batched[job] = ev
        for group in saved.groups.values():
            # A finished job of a group still open is told in the group's summary.
            d.group.update(job for job, done in group.jobs.items() if done)
        for failed in saved.failed:
            pushes = [t for t in failed.entry.targets if t != INBOX_KEY]
            if not pushes or any(counts(t) for t in pushes):
                d.failed.update(failed.entry.covers())
        return d

    def of(self, job: str, silent: bool) -> str:
        # Something still being tried says more than an old failure.
        if job in self.pending:
            return "pending"
        if job in self.digest:
            return "pending (digest)"
        if job in self.group and not silent:
            return "pending (group)"
        if job in self.failed:
            return "failed"
        return "silent" if silent else "delivered"


def configured(paths: Paths, saved: state.State) -> set[str] | None:
    """The configured URLs' keys, read only when a delivery waits for a push (it needs Apprise).

    Given-up deliveries alone do not make it worth ~0.2 s a call: they stay
    "failed" whatever the config says now.
    """
    if not any(t != INBOX_KEY for e in saved.outbox for t in e.targets):
        return None
    return configured_keys(paths.config_file, paths.inbox_dir, host_name())
