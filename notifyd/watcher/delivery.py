"""Delivering the outbox: each URL on a thread of its own, so a slow or hanging service delays no other.

The concurrency model (docs/ARCHITECTURE.md):
* The loop's thread owns the state: it alone reads and changes it, saves
  it, writes the journal and the inbox. It runs a round every poll (the
  lease heartbeat, reading the sources) whatever the services do.
* Each push target (an Apprise URL) has a Courier: a thread that sends one
  entry at a time and hands back what came of it (a Sent). A courier that
  waits on a service holds up nothing but its own URL's next message.
* Each round the loop first takes in what the couriers finished (a success
  is marked done in memory, then journalled with one append), then gives
  each idle courier the next entry due for its URL, after checking the
  lease: a watcher that lost its lease hands out nothing more. Entries were
  saved in the state file before they could be handed out.
* A crash loses only what the couriers had in flight: each URL may get that
  one message again (at most one duplicate per URL per crash).

Failures belong to the entry first: an entry that fails waits out its own
backoff and the URL's next entry is tried; only when two different entries
in a row fail is the URL itself backed off (and its entries wait for it).
So one unreadable attachment or one message a service will not take never
holds back every later message to that URL.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from notifyd.config import Config
from notifyd.notify import routing
from notifyd.notify.targets import INBOX_KEY, Sent, Target, hint
from notifyd.records import Backoff, FailedDelivery, OutboxEntry
from notifyd.state import Journal, State

log = logging.getLogger("notifyd")
# How long stop() waits for sends in flight before the watcher exits anyway.
STOP_WAIT = 5.0


class Fence(Protocol):
    """The lease as delivery sees it: heartbeat when due, raise LeaseLost unless still ours."""

    def heartbeat(self) -> None: ...

    def check(self) -> None: ...


@dataclass(frozen=True)
class Done:
    """What one courier's send came to."""

    key: str
    entry_id: str
    sent: Sent


class Courier:
    """One target's sending thread: one entry at a time, each result handed back to the loop."""

    def __init__(self, target: Target, results: queue.SimpleQueue[Done], wake: Callable[[], None]) -> None:
        self.target = target
        self.carrying: str | None = None  # the entry id in flight; only the loop's thread sets it
        self._results = results
        self._wake = wake
        self._work: queue.SimpleQueue[OutboxEntry | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name=f"courier {target.display}", daemon=True)
        self._thread.start()

    def carry(self, entry: OutboxEntry) -> None:
        self.carrying = entry.id
        self._work.put(entry)

    def close(self) -> None:
        self._work.put(None)

    def _run(self) -> None:
        while (entry := self._work.get()) is not None:
            try:
                sent = self.target.send(entry)
            except BaseException as exc:  # a plugin's bug must not kill the courier
                sent = Sent(False, f"{type(exc).__name__}: {exc}")
            self._results.put(Done(self.target.key, entry.id, sent))
            self._wake()


class Delivery:
    def __init__(self, journal: Journal, fence: Fence, save: Callable[[], None],
                 wake: Callable[[], None] = lambda: None) -> None:
        self.journal = journal
        self.fence = fence
        self.save = save  # the watcher's fenced save
        self.wake = wake  # makes the loop run a round at once (a courier finished)
        self.unsaved = False  # a delivery failed for good since the last save
        self._results: queue.SimpleQueue[Done] = queue.SimpleQueue()
        self._couriers: dict[str, Courier] = {}
        # URL key -> the entry whose failure was its last answer, while that is unexplained.
        self._suspect: dict[str, str] = {}

    # -- the loop's side -----------------------------------------------------------------------
    def run(self, state: State, targets: list[Target], config: Config, now: float) -> None:
        """Take in finished sends, then give each idle URL its next due entry; the inbox inline."""
        self.take_results(state, targets, config, now)
        for target in targets:
            if target.key == INBOX_KEY:
                self._inline(state, target, config, now)
            else:
                self._dispatch(state, target, config, now)
        self._give_up_old(state, {t.key for t in targets}, config, now)

    def take_results(self, state: State, targets: list[Target], config: Config, now: float,
                     wait: float = 0.0) -> None:
        """Record every send that finished; with `wait`, first wait up to that long for one."""
        by_key = {t.key: t for t in targets}
        while True:
            try:
                done = self._results.get(timeout=wait) if wait > 0 else self._results.get_nowait()
            except queue.Empty:
                return
            wait = 0.0
            courier = self._couriers.get(done.key)
            if courier is not None and courier.carrying == done.entry_id:
                courier.carrying = None
            entry = next((e for e in state.outbox if e.id == done.entry_id and done.key in e.targets),
                         None)
            target = by_key.get(done.key) or (courier.target if courier else None)
            if entry is None or target is None:
                continue  # given up meanwhile (retry_for): nothing to record
            self._settle(state, entry, target, done.sent, config=config, now=now)

    def busy(self) -> int:
        return sum(1 for c in self._couriers.values() if c.carrying is not None)

    def settle(self, state: State, targets: list[Target], config: Config, now: float,
               timeout: float = STOP_WAIT) -> bool:
        """Wait (up to `timeout` s) for the sends in flight and record them; True if none is left."""
        deadline = time.monotonic() + timeout
        while self.busy() and (left := deadline - time.monotonic()) > 0:
            self.take_results(state, targets, config, now, wait=min(left, 0.1))
        return not self.busy()

    def close(self) -> None:
        """The couriers' threads end once their send in flight (if any) returns."""
        for courier in self._couriers.values():
            courier.close()

    def _courier(self, target: Target) -> Courier:
        courier = self._couriers.get(target.key)
        if courier is None or courier.target is not target:
            if courier is not None and courier.carrying is None:
                courier.close()  # the config was reloaded: the new target object takes over
            courier = Courier(target, self._results, self.wake)
            self._couriers[target.key] = courier
        return courier

    def _due(self, state: State, target: Target, now: float) -> OutboxEntry | None:
        backoff = state.backoff.get(target.key)
        if backoff and backoff.next_try > now:
            return None
        for entry in state.outbox:
            if target.key in entry.targets:
                own = entry.retry.get(target.key)
                if own is None or own.next_try <= now:
                    return entry
        return None

    def _dispatch(self, state: State, target: Target, config: Config, now: float) -> None:
        known = self._couriers.get(target.key)
        if known is not None and known.carrying is not None:
            return  # one message at a time per URL: the next waits for this one's answer
        entry = self._due(state, target, now)
        if entry is None or not routing.may_send(state, target.key, config, now):
            return  # nothing due, or this URL's budget is spent: the rest wait
        self.fence.heartbeat()
        self.fence.check()  # a watcher that lost its lease sends nothing more
        self._courier(target).carry(entry)

    def _inline(self, state: State, target: Target, config: Config, now: float) -> None:
        """The inbox: a local append, done on the loop's thread in outbox order."""
        while (entry := self._due(state, target, now)) is not None:
            self.fence.check()
            sent = target.send(entry)
            self._settle(state, entry, target, sent, config=config, now=now)
            if not sent.ok:
                return

    # -- what an answer means ------------------------------------------------------------------
    def _settle(self, state: State, entry: OutboxEntry, target: Target, sent: Sent, *,
                config: Config, now: float) -> None:
        if sent.ok:
            self._delivered(state, entry, target)
        elif sent.permanent:
            self._give_up(state, entry, target, sent, now)
        else:
            self._failed(state, entry, target, sent, config=config, now=now)

    def _delivered(self, state: State, entry: OutboxEntry, target: Target) -> None:
        # In memory first: if the journal cannot be written (disk full) this
        # watcher must still not send it again.
        state.mark_delivered(entry.id, target.key)
        state.stats.delivered += 1
        self._suspect.pop(target.key, None)
        if state.backoff.pop(target.key, None):
            log.info("%s works again", target.display)
        try:
            self.journal.append(entry.id, target.key)
        except OSError as exc:
            log.error("cannot record a delivery in %s (%s); trying a full state save instead",
                      self.journal.path, exc)
            self.save()  # if this fails too, the round ends here

    def _failed(self, state: State, entry: OutboxEntry, target: Target, sent: Sent, *,
                config: Config, now: float) -> None:
        """A failure is the entry's until another entry fails too: then the URL backs off."""
        own = Backoff.after_failure(entry.retry.get(target.key), now=now, initial=config.retry_initial,
                                    most=config.retry_max, error=sent.detail, display=target.display)
        entry.retry[target.key] = own
        if self._suspect.get(target.key, entry.id) != entry.id:
            backoff = Backoff.after_failure(state.backoff.get(target.key), now=now,
                                            initial=config.retry_initial, most=config.retry_max,
                                            error=sent.detail, display=target.display)
            state.backoff[target.key] = backoff
            log.warning("delivery to %s failed (%s); retry %d in %.0f s", target.display, sent.detail,
                        backoff.failures, backoff.next_try - now)
        else:
            log.warning("delivery of %s to %s failed (%s); it is retried in %.0f s, the URL's next "
                        "message is tried now", entry.id, target.display, sent.detail, own.next_try - now)
        self._suspect[target.key] = entry.id
        self.unsaved = True

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

    def _give_up_old(self, state: State, configured: set[str], config: Config, now: float) -> None:
        """Entries older than retry_for: failed for the URLs configured; for others just let go.

        A URL the user removed is not a failure to report: the job reached
        every URL configured (watcher/drop.py keeps such entries until now).
        """
        keep = []
        for entry in state.outbox:
            if now - entry.created <= config.retry_for:
                keep.append(entry)
                continue
            failing = [k for k in entry.targets if k in configured]
            gone = [state.url_names.get(k, "a URL") for k in entry.targets if k not in configured]
            if gone:
                log.warning("letting go of %s after %.0f h: it waited for %s, no longer configured",
                            entry.id, (now - entry.created) / 3600, ", ".join(gone))
            if failing:
                log.error("giving up on %s after %.0f h of failed deliveries to %d URL(s)",
                          entry.id, (now - entry.created) / 3600, len(failing))
                entry.targets = failing
                state.failed.append(FailedDelivery(entry, round(now, 3)))
        state.outbox = keep
