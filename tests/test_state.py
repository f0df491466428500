"""The watcher's durable state: atomic save, load, and the delivery journal."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from notifyd import state
from notifyd.spool.reader import Cursor
from notifyd.state import Journal, State, StateFileError, Stats


@pytest.fixture
def state_file(tmp_path: Path) -> Path:
    return tmp_path / "watcher-state.json"


@pytest.fixture
def journal_dir(tmp_path: Path) -> Path:
    path = tmp_path / "journal"
    path.mkdir()
    return path


def _entry(entry_id: str, *targets: str) -> dict[str, Any]:
    return {"id": entry_id, "title": f"job {entry_id}", "targets": list(targets)}


def _full_state() -> State:
    return State(
        cursors={"events/node5.jsonl": Cursor(120, "7b2276", False), "legacy": Cursor(9, "31", True)},
        running={"node5-1-aa": {"title": "train", "ts": 1.5}},
        legacy_open={"1001@node5": {"title": "python", "ts": 2.0}},
        done={"node5-2-bb": 3.0},
        outbox=[_entry("e1", "discord", "ntfy")],
        backoff={"ntfy": {"until": 10.0, "delay": 20.0}},
        failed=[{"id": "e0", "target": "mailto", "error": "550"}],
        stats=Stats(events=7, malformed=1, delivered=4, last_event={"job": "node5-2-bb"}),
    )


def test_state_round_trips_through_save_and_load(state_file: Path, journal_dir: Path) -> None:
    saved = _full_state()
    state.save(saved, state_file, journal_dir)
    loaded = state.load(state_file, journal_dir)
    assert loaded.cursors == saved.cursors
    assert loaded.running == saved.running
    assert loaded.legacy_open == saved.legacy_open
    assert loaded.done == saved.done
    assert loaded.outbox == saved.outbox
    assert loaded.backoff == saved.backoff
    assert loaded.failed == saved.failed
    assert loaded.stats == saved.stats


def test_load_records_when_the_state_was_saved(state_file: Path, journal_dir: Path) -> None:
    state.save(State(), state_file, journal_dir)
    assert state.load(state_file, journal_dir).saved_at > 0


def test_save_writes_a_private_file_and_leaves_no_temp_file(state_file: Path, journal_dir: Path) -> None:
    state.save(_full_state(), state_file, journal_dir)
    assert state_file.stat().st_mode & 0o777 == 0o600
    assert sorted(p.name for p in state_file.parent.iterdir()) == ["journal", state_file.name]


def test_load_without_a_state_file_gives_an_empty_state(state_file: Path, journal_dir: Path) -> None:
    assert state.load(state_file, journal_dir) == State()


def test_load_without_a_journal_dir_works(state_file: Path, tmp_path: Path) -> None:
    state.save(_full_state(), state_file, tmp_path / "no-journal")
    assert state.load(state_file, tmp_path / "no-journal").outbox == [_entry("e1", "discord", "ntfy")]


def test_journal_line_removes_the_entrys_target_on_load(state_file: Path, journal_dir: Path) -> None:
    saved = State(outbox=[_entry("e1", "discord", "ntfy")])
    state.save(saved, state_file, journal_dir)
    Journal(journal_dir, "node5").append("e1", "discord")
    loaded = state.load(state_file, journal_dir)
    assert loaded.outbox == [_entry("e1", "ntfy")]
    assert loaded.stats.delivered == 1


def test_journal_drops_entry_when_no_targets_are_left(state_file: Path, journal_dir: Path) -> None:
    saved = State(outbox=[_entry("e1", "discord", "ntfy"), _entry("e2", "ntfy")])
    state.save(saved, state_file, journal_dir)
    journal = Journal(journal_dir, "node5")
    journal.append("e1", "discord")
    journal.append("e1", "ntfy")
    assert state.load(state_file, journal_dir).outbox == [_entry("e2", "ntfy")]


def test_journals_of_every_host_are_applied(state_file: Path, journal_dir: Path) -> None:
    state.save(State(outbox=[_entry("e1", "discord"), _entry("e2", "ntfy")]), state_file, journal_dir)
    Journal(journal_dir, "node5").append("e1", "discord")
    Journal(journal_dir, "node7").append("e2", "ntfy")
    assert state.load(state_file, journal_dir).outbox == []


def test_journal_for_an_unknown_entry_changes_no_entry(state_file: Path, journal_dir: Path) -> None:
    state.save(State(outbox=[_entry("e1", "discord")]), state_file, journal_dir)
    Journal(journal_dir, "node5").append("e9", "discord")
    assert state.load(state_file, journal_dir).outbox == [_entry("e1", "discord")]


def test_journal_counts_its_appended_lines(journal_dir: Path) -> None:
    journal = Journal(journal_dir, "node5")
    journal.append("e1", "discord")
    journal.append("e2", "discord")
    assert journal.lines == 2
    assert (journal_dir / "node5.log").read_text() == "e1 discord\ne2 discord\n"


def test_save_empties_the_journals(state_file: Path, journal_dir: Path) -> None:
    Journal(journal_dir, "node5").append("e1", "discord")
    Journal(journal_dir, "node7").append("e2", "ntfy")
    state.save(State(), state_file, journal_dir)
    assert [p.read_bytes() for p in sorted(journal_dir.iterdir())] == [b"", b""]


def test_journal_applied_then_saved_is_not_applied_twice(state_file: Path, journal_dir: Path) -> None:
    state.save(State(outbox=[_entry("e1", "discord")]), state_file, journal_dir)
    Journal(journal_dir, "node5").append("e1", "discord")
    state.save(state.load(state_file, journal_dir), state_file, journal_dir)
    assert state.load(state_file, journal_dir).stats.delivered == 1


# -- read ---------------------------------------------------------------------------------------

def test_read_of_a_missing_file_is_none(state_file: Path) -> None:
    assert state.read(state_file) is None


@pytest.mark.parametrize("content", [b"", b"{not json", b"\xff\xfe", b"[1, 2]", b"{}", b'{"v": 99}'],
                         ids=repr)
def test_read_of_a_corrupt_file_raises_state_file_error(state_file: Path, content: bytes) -> None:
    state_file.write_bytes(content)
    with pytest.raises(StateFileError, match=str(state_file)):
        state.read(state_file)


def test_load_of_a_corrupt_file_raises_state_file_error(state_file: Path, journal_dir: Path) -> None:
    state_file.write_bytes(b"{truncated")
    with pytest.raises(StateFileError):
        state.load(state_file, journal_dir)


# -- bounded sets ---------------------------------------------------------------------------------

def test_remember_done_keeps_the_set_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(state, "DONE_KEEP", 10)
    st = State()
    for i in range(100):
        st.remember_done(f"job-{i}", float(i))
        assert len(st.done) <= 11
    assert "job-99" in st.done


def test_remember_done_forgets_the_oldest_first(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(state, "DONE_KEEP", 10)
    st = State()
    for i in range(12):
        st.remember_done(f"job-{i}", float(i))
    assert sorted(st.done, key=lambda j: int(j.split("-")[1])) == [f"job-{i}" for i in range(2, 12)]


def test_saved_failed_list_is_bounded(state_file: Path, journal_dir: Path) -> None:
    st = State(failed=[{"id": f"e{i}"} for i in range(state.FAILED_KEEP + 50)])
    state.save(st, state_file, journal_dir)
    failed = state.load(state_file, journal_dir).failed
    assert len(failed) == state.FAILED_KEEP
    assert failed[-1] == {"id": f"e{state.FAILED_KEEP + 49}"}
