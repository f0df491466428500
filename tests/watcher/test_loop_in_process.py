"""The watcher's loop in-process: a FakeSource, recording targets, a fixed clock, a lease always held.

No pingch, no spool, no watcher process: the only file is the state (and its
journal, part of it). What the loop promises is checked round by round.
"""

from __future__ import annotations

import shutil
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
    start_event,
)

from notifyd import config, paths, state
from notifyd.notify.targets import Sent
from notifyd.watcher.lease import LeaseLost
from notifyd.watcher.loop import Watcher

CONFIG = "[notify]\ndigest_after = 100\nrate = 1000/min\n[watcher]\nretry_initial = 10s\n"


class Lab:
    """A watcher on fakes, and a way to start it again on the same state file."""

    def __init__(self, root: Path) -> None:
        self.paths = paths.resolve({"HOME": str(root), "NOTIFYD_HOST": "w"})
        self.paths.config_file.parent.mkdir(parents=True)
        self.paths.config_file.write_text(CONFIG)
        self.paths.journal_dir.mkdir(parents=True)  # as acquire() makes it
        self.clock = FixedClock()
        self.source = FakeSource()
        self.inbox = inbox_target()
        self.url = RecordingTarget()
        self.lease = HeldLease()
        self.watcher = self.start()

    def start(self, source: FakeSource | None = None) -> Watcher:
        w = Watcher(self.paths, "w", config.load(self.paths.config_file, {}), clock=self.clock,  # type: ignore[arg-type]
                    fence=self.lease, sources=[source or self.source],  # type: ignore[arg-type]
                    targets_=[self.inbox, self.url], wake_up=False)
        w.start()
        return w

    def rounds(self, n: int = 1, step: float = 0.5) -> None:
        settled_rounds(self.watcher, self.clock, n, step)

    def saved(self) -> state.State:
        return state.load(self.paths.state_file, self.paths.journal_dir)


@pytest.fixture
def lab(tmp_path: Path) -> Lab:
    return Lab(tmp_path)


def test_a_finished_job_from_a_source_reaches_every_target_once(lab: Lab) -> None:
    lab.source.add(start_event("j1", ts=lab.clock.now), finish_event("j1", ts=lab.clock.now + 5))
    lab.rounds(3)
    assert [e.id for e in lab.url.sent] == ["j1:finish"]
    assert [e.id for e in lab.inbox.sent] == ["j1:finish"]
    assert lab.watcher.state.outbox == []


def test_the_only_files_written_are_the_state_its_journal_and_pingchs_settings(lab: Lab) -> None:
    lab.source.add(finish_event("j1", ts=lab.clock.now))
    lab.rounds(2)
    written = sorted(str(p.relative_to(lab.paths.state_dir)) for p in lab.paths.state_dir.rglob("*"))
    # pingch.conf: the config's [pressure] as pingch reads it (pingch/facts.py).
    assert set(written) <= {"watcher-state.json", "journal", "journal/w.log", "pingch.conf"}
    assert "watcher-state.json" in written


def test_the_state_is_saved_before_anything_is_sent(lab: Lab) -> None:
    seen_in_saved_state: list[list[str]] = []
    real_send = lab.url.send

    def send(entry):  # type: ignore[no-untyped-def]
        seen_in_saved_state.append([e.id for e in lab.saved().outbox])
        return real_send(entry)

    lab.url.send = send  # type: ignore[method-assign]
    lab.source.add(finish_event("j1", ts=lab.clock.now))
    lab.rounds(1)
    assert seen_in_saved_state == [["j1:finish"]]


def test_a_restart_on_the_saved_state_tells_nothing_again(lab: Lab) -> None:
    lab.source.add(finish_event("j1", ts=lab.clock.now), finish_event("j2", ts=lab.clock.now))
    lab.rounds(2)
    again = FakeSource()
    again.add(finish_event("j1", ts=lab.clock.now), finish_event("j2", ts=lab.clock.now))
    lab.watcher = lab.start(again)  # the same events from the top, e.g. a replaced cursor
    lab.watcher.state.cursors.clear()
    lab.rounds(2)
    assert [e.id for e in lab.url.sent] == ["j1:finish", "j2:finish"]


def test_each_source_keeps_its_own_cursor_in_the_state(lab: Lab) -> None:
    lab.source.add(finish_event("j1", ts=lab.clock.now))
    lab.rounds(1)
    assert lab.saved().cursors == {"fake": {"next": 1}}


def test_a_source_is_polled_only_when_it_is_due(lab: Lab) -> None:
    slow = FakeSource("slow", every=30.0)
    lab.watcher = lab.start(slow)
    lab.rounds(40, step=1.0)  # 40 s of rounds
    assert len(slow.polls) == 2


def test_jobs_of_a_source_that_owns_liveness_are_never_judged_lost(lab: Lab) -> None:
    owner = FakeSource("sched", kind="sched", owns_liveness=True)
    lab.watcher = lab.start(owner)
    owner.add(start_event("s1", ts=lab.clock.now))
    lab.source.add(start_event("p1", ts=lab.clock.now))
    lab.rounds(1)
    assert lab.watcher.state.running["s1"].owned
    lab.clock.advance(3600)  # both hosts silent for an hour
    lab.watcher.find_lost()
    assert "s1" in lab.watcher.state.running and not lab.watcher.state.lost


def test_jobs_of_the_spool_kind_are_judged_lost_when_their_host_is_silent(lab: Lab) -> None:
    lab.source.add(start_event("p1", ts=lab.clock.now))
    lab.rounds(1)
    lab.clock.advance(3600)
    lab.watcher.find_lost()
    assert list(lab.watcher.state.lost) == ["p1"]
    assert "silent for" in lab.watcher.state.lost["p1"].reason


def test_a_failing_url_does_not_hold_back_the_inbox(lab: Lab) -> None:
    lab.url.answers = [Sent(False, "503 from the service", 503)]
    lab.source.add(finish_event("j1", ts=lab.clock.now))
    lab.rounds(1)
    assert [e.id for e in lab.inbox.sent] == ["j1:finish"]
    assert lab.url.sent == []


def test_an_entry_that_fails_alone_waits_out_its_own_backoff(lab: Lab) -> None:
    lab.url.answers = [Sent(False, "503 from the service", 503)]
    lab.source.add(finish_event("j1", ts=lab.clock.now))
    lab.rounds(1)
    (entry,) = lab.watcher.state.outbox
    assert entry.retry[lab.url.key].next_try == pytest.approx(lab.clock.now - 0.5 + 10.0)
    lab.rounds(19)  # 9.5 s: still waiting
    assert lab.url.tried == ["j1:finish"]
    lab.rounds(2)
    assert [e.id for e in lab.url.sent] == ["j1:finish"]


def test_when_the_next_entry_goes_through_the_failure_was_the_entrys(lab: Lab) -> None:
    lab.url.answers = [Sent(False, "Could not access attachment", None)]
    lab.source.add(finish_event("bad", ts=lab.clock.now), finish_event("good", ts=lab.clock.now))
    lab.rounds(3)
    assert [e.id for e in lab.url.sent] == ["good:finish"]  # not held back by "bad"
    assert lab.url.key not in lab.watcher.state.backoff
    assert [e.id for e in lab.watcher.state.outbox] == ["bad:finish"]


def test_when_two_entries_in_a_row_fail_the_url_backs_off(lab: Lab) -> None:
    lab.url.answers = [Sent(False, "503", 503), Sent(False, "503", 503)]
    lab.source.add(*(finish_event(f"j{i}", ts=lab.clock.now) for i in range(3)))
    lab.rounds(3)
    assert lab.url.tried == ["j0:finish", "j1:finish"]  # j2 waits for the URL
    backoff = lab.watcher.state.backoff[lab.url.key]
    assert backoff.failures == 1 and backoff.error == "503"
    lab.rounds(25)  # 12.5 s: the URL's backoff (10 s) is over
    assert sorted(e.id for e in lab.url.sent) == ["j0:finish", "j1:finish", "j2:finish"]


def test_an_entrys_own_retry_is_saved_with_the_state(lab: Lab) -> None:
    lab.url.answers = [Sent(False, "503", 503)]
    lab.source.add(finish_event("j1", ts=lab.clock.now))
    lab.rounds(2)  # the answer comes after the round's save; the next round saves it
    (entry,) = lab.saved().outbox
    assert entry.retry[lab.url.key].failures == 1


def test_a_permanent_refusal_is_failed_at_once_and_kept(lab: Lab) -> None:
    lab.url.answers = [Sent(False, "401 Unauthorized", 401)]
    lab.source.add(finish_event("j1", ts=lab.clock.now))
    lab.rounds(2)
    (failed,) = lab.saved().failed
    assert failed.entry.id == "j1:finish" and failed.status == 401 and failed.url == "fake://url-1"
    assert lab.url.tried == ["j1:finish"]


def test_every_save_and_send_is_fenced_by_the_lease(lab: Lab) -> None:
    lab.source.add(finish_event("j1", ts=lab.clock.now))
    lab.lease.lost = True
    with pytest.raises(LeaseLost):
        lab.watcher.round()
    assert not lab.paths.state_file.exists()
    assert lab.url.tried == []


def test_a_round_reads_the_file_servers_clock_at_most_once(lab: Lab) -> None:
    lab.source.add(*(start_event(f"p{i}", ts=lab.clock.now) for i in range(5)))
    lab.rounds(1)
    assert lab.clock.server_reads == 1  # the lost check, once for the five jobs


def test_an_event_that_breaks_the_handling_is_skipped_and_counted(lab: Lab) -> None:
    bad = finish_event("j1", ts=lab.clock.now)
    bad["ts"] = "not a number"
    lab.source.add(bad, finish_event("j2", ts=lab.clock.now))
    lab.rounds(2)
    assert [e.id for e in lab.url.sent] == ["j2:finish"]
    assert lab.watcher.state.stats.malformed == 1



def test_a_state_dir_deleted_just_after_the_lease_was_taken_stays_deleted(tmp_path: Path) -> None:
    # CI caught it: `rm -r` between the lease and the wake-up FIFO; the FIFO's
    # directory used to bring the whole state dir back.
    lab = Lab(tmp_path)
    shutil.rmtree(lab.paths.state_dir)
    w = Watcher(lab.paths, "w", config.load(lab.paths.config_file, {}), clock=lab.clock,  # type: ignore[arg-type]
                fence=lab.lease, sources=[lab.source], targets_=[lab.inbox], wake_up=True)  # type: ignore[arg-type]
    w.start()
    assert w.run() == 0  # the first round sees it gone and stops
    assert not lab.paths.state_dir.exists()
