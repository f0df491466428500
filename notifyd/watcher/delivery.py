"""Delivering the outbox: each due entry to each target, a journal line per success, backoff per URL.

The durability rules (docs/ARCHITECTURE.md): the state was saved before
anything here is sent; the lease is checked before every send; a success is
marked done in memory first and then journalled with one append, so a
journal that cannot be written costs a full save, never a resend. A crash
repeats at most the send that was in flight.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Protocol

from notifyd.config import Config
from notifyd.notify import routing
from notifyd.notify.targets import Sent, Target, hint
from notifyd.records import Backoff, FailedDelivery, OutboxEntry
from notifyd.state import Journal, State

log = logging.getLogger("notifyd")


class Fence(Protocol):
    """The lease as delivery sees it: heartbeat when due, raise LeaseLost unless still ours."""

    def heartbeat(self) -> None: ...

    def check(self) -> None: ...


class Delivery:
    def __init__(self, journal: Journal, fence: Fence, save: Callable[[], None]) -> None:
        self.journal = journal
        self.fence = fence
        self.save = save  # the watcher's fenced save
        self.unsaved = False  # a delivery failed for good since the last save

    def run(self, state: State, targets: list[Target], config: Config, now: float) -> None:
        """One pass over the outbox for every target whose backoff is over."""
        for target in targets:
            backoff = state.backoff.get(target.key)
            if backoff and backoff.next_try > now:
                continue
            self._target(state, target, config, now)
        self._give_up_old(state, config, now)

    def _target(self, state: State, target: Target, config: Config, now: float) -> None:
        for entry in list(state.outbox):
            if target.key not in entry.targets:
                continue
            if not routing.may_send(state, target.key, config, now):
                return  # this URL's budget is spent: the rest wait for the next rounds
            self.fence.heartbeat()
            self.fence.check()  # a watcher that lost its lease sends nothing more
            sent = target.send(entry)
            if sent.ok:
                self._delivered(state, entry, target)
            elif sent.permanent:
                self._give_up(state, entry, target, sent, now)
            else:
                self._back_off(state, target, sent, config, now)
                return

    def _delivered(self, state: State, entry: OutboxEntry, target: Target) -> None:
        # In memory first: if the journal cannot be written (disk full) this
        # watcher must still not send it again.
        state.mark_delivered(entry.id, target.key)
        state.stats.delivered += 1
        if state.backoff.pop(target.key, None):
            log.info("%s works again", target.display)
        try:
            self.journal.append(entry.id, target.key)
        except OSError as exc:
            log.error("cannot record a delivery in %s (%s); trying a full state save instead",
                      self.journal.path, exc)
            self.save()  # if this fails too, the round ends here

    def _back_off(self, state: State, target: Target, sent: Sent, config: Config, now: float) -> None:
        backoff = Backoff.after_failure(state.backoff.get(target.key), now=now,
                                        initial=config.retry_initial, most=config.retry_max,
                                        error=sent.detail, display=target.display)
        state.backoff[target.key] = backoff
        log.warning("delivery to %s failed (%s); retry %d in %.0f s",
                    target.display, sent.detail, backoff.failures, backoff.next_try - now)

    def _give_up(self, state: State, entry: OutboxEntry, target: Target, sent: Sent, now: float) -> None:
        """A permanent refusal (targets.PERMANENT): no retry will help, so this delivery is failed now."""
        log.error("delivery of %s to %s failed for good (%s: %s); not retried",
                  entry.id, target.display, sent.detail, hint(sent.status))
        failed = OutboxEntry.from_json({**entry.to_json(), "targets": [target.key]})
        state.failed.append(FailedDelivery(failed, round(now, 3), sent.detail, target.display,
                                           sent.status))
        state.mark_delivered(entry.id, target.key)  # off the outbox for this URL only
        # Saved at the round's end, not per delivery: a wrong token with
        # hundreds queued would otherwise rewrite the state hundreds of times.
        # A crash before then costs one more refused try, never a message.
        self.unsaved = True

    def _give_up_old(self, state: State, config: Config, now: float) -> None:
        keep = []
        for entry in state.outbox:
            if now - entry.created > config.retry_for:
                log.error("giving up on %s after %.0f h of failed deliveries to %d URL(s)",
                          entry.id, (now - entry.created) / 3600, len(entry.targets))
                state.failed.append(FailedDelivery(entry, round(now, 3)))
            else:
                keep.append(entry)
        state.outbox = keep
