"""Deliveries waiting for a URL no longer configured: never sent there, dropped on request, let go later.

In-process watcher on fakes (a fixed clock, a lease always held, recording
targets); "removing a URL" is the watcher's targets losing it, as a config
reload does. `notifyd drop`'s request is the file watcher/drop.py writes.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from fakes import (
    FakeSource,
    FixedClock,
    HeldLease,
    RecordingTarget,
    finish_event,
    inbox_target,
    settled_rounds,
)

from notifyd import config, paths, state
from notifyd.notify.deliveries import Deliveries
from notifyd.notify.targets import INBOX_KEY, Sent
from notifyd.records import Batch, OutboxEntry
from notifyd.watcher import drop
from notifyd.watcher.loop import Watcher

CONFIG = "[notify]\ndigest_after = 100\nrate = 1000/min\n[watcher]\nretry_initial = 10s\nretry_for = 24h\n"
DAY = 24 * 3600.0


class Lab:
    def __init__(self, root: Path) -> None:
        self.paths = paths.resolve({"HOME": str(root), "NOTIFYD_HOST": "w"})
        self.paths.config_file.parent.mkdir(parents=True)
        self.paths.config_file.write_text(CONFIG)
        self.paths.journal_dir.mkdir(parents=True)
        self.clock = FixedClock()
        self.source = FakeSource()
        self.inbox = inbox_target()
        self.kept = RecordingTarget(key="kept", display="fake://kept")
        self.gone = RecordingTarget(key="gone", display="fake://gone/****",
                                    answers=[Sent(False, "down")] * 2)
        self.w = Watcher(self.paths, "w", config.load(self.paths.config_file, {}), clock=self.clock,  # type: ignore[arg-type]
                         fence=HeldLease(), sources=[self.source],  # type: ignore[arg-type]
                         targets_=[self.inbox, self.kept, self.gone], wake_up=False)
        self.w.start()

    def rounds(self, n: int = 1, step: float = 0.5) -> None:
        settled_rounds(self.w, self.clock, n, step)

    def job_waiting_for_gone(self) -> None:
        """A job delivered to `kept` whose delivery to `gone` failed; then `gone` is removed."""
        self.source.events.append(finish_event("j1", ts=self.clock.now))
        self.rounds(3)
        assert [e.targets for e in self.w.state.outbox] == [["gone"]]
        self.w.targets = [self.inbox, self.kept]

    def ask_drop(self, *keys: str) -> Path:
        self.paths.private_dir(self.paths.drop_dir)
        return drop.request(self.paths.drop_dir, "h2", list(keys))


@pytest.fixture
def lab(tmp_path: Path) -> Lab:
    return Lab(tmp_path)


def test_the_watcher_sends_nothing_to_a_url_removed_from_the_config(lab: Lab) -> None:
    lab.job_waiting_for_gone()
    tries = len(lab.gone.tried)
    lab.rounds(5, step=60)  # many retry periods
    assert len(lab.gone.tried) == tries
    assert [e.targets for e in lab.w.state.outbox] == [["gone"]]  # kept, in case it comes back


def test_a_drop_request_drops_what_waits_for_the_removed_url_and_is_saved(lab: Lab) -> None:
    lab.job_waiting_for_gone()
    asked = lab.ask_drop("gone")
    lab.rounds()
    assert lab.w.state.outbox == []
    assert state.load(lab.paths.state_file, lab.paths.journal_dir).outbox == []
    assert not asked.exists()  # removed once saved: `notifyd drop` waits for that


def test_a_drop_request_never_drops_what_waits_for_a_configured_url(lab: Lab) -> None:
    lab.job_waiting_for_gone()
    lab.w.targets = [lab.inbox, lab.kept, lab.gone]  # configured again
    lab.gone.answers = [Sent(False, "down")] * 10
    lab.ask_drop("gone")
    lab.rounds()
    assert [e.targets for e in lab.w.state.outbox] == [["gone"]]


def test_a_drop_takes_a_digest_batch_waiting_for_the_removed_url_too(lab: Lab) -> None:
    lab.job_waiting_for_gone()
    lab.w.state.batches["gone"] = Batch(opened=lab.clock.now, last=lab.clock.now,
                                        jobs=[{"job": "j2", "title": "t"}])
    lab.ask_drop("gone")
    lab.rounds()
    assert "gone" not in lab.w.state.batches and lab.w.state.outbox == []


def test_after_retry_for_a_delivery_for_a_removed_url_is_let_go_not_failed(lab: Lab) -> None:
    lab.job_waiting_for_gone()
    lab.clock.advance(DAY + 1)
    lab.rounds()
    assert lab.w.state.outbox == [] and lab.w.state.failed == []


def test_after_retry_for_a_delivery_failing_on_a_configured_url_is_failed_for_that_url(lab: Lab) -> None:
    lab.job_waiting_for_gone()
    lab.kept.answers = [Sent(False, "down")] * 100
    lab.w.state.outbox[0].targets.append("kept")
    lab.clock.advance(DAY + 1)
    lab.rounds()
    (failed,) = lab.w.state.failed
    assert failed.entry.targets == ["kept"]


def test_the_state_names_the_urls_it_knows_and_forgets_those_nothing_waits_for() -> None:
    st = state.State(url_names={"old": "fake://old", "gone": "fake://gone/****"})
    st.outbox.append(OutboxEntry(id="e", title="t", body="b", severity="info", created=0.0, targets=["gone"]))
    st.name_urls({"kept": "fake://kept"})
    assert st.url_names == {"gone": "fake://gone/****", "kept": "fake://kept"}
    assert state.State.from_json(st.to_json()).url_names == st.url_names


def _waiting(*targets: str) -> state.State:
    st = state.State()
    st.outbox.append(OutboxEntry(id="j1:finish", title="t", body="b", severity="info", created=0.0,
                                 targets=list(targets), job="j1", jobs=["j1"]))
    return st


def test_notifyd_jobs_calls_a_job_delivered_that_waits_only_for_a_removed_url() -> None:
    d = Deliveries.from_state(_waiting("gone"), configured={"kept"})
    assert d.of("j1", silent=False) == "delivered" and d.unconfigured == 1


def test_notifyd_jobs_calls_a_job_pending_that_waits_for_a_configured_url() -> None:
    d = Deliveries.from_state(_waiting("gone", "kept"), configured={"kept"})
    assert d.of("j1", silent=False) == "pending" and d.unconfigured == 0


def test_notifyd_jobs_without_the_config_counts_every_url_as_configured() -> None:
    assert Deliveries.from_state(_waiting("gone"), configured=None).of("j1", silent=False) == "pending"


def test_the_inbox_alone_never_makes_a_job_pending() -> None:
    assert Deliveries.from_state(_waiting(INBOX_KEY), configured=set()).of("j1", silent=False) == "delivered"
