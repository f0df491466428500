"""The watcher's durable state: atomic save, load, and the delivery journal."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from notifyd import state
from notifyd.records import Backoff, FailedDelivery, OutboxEntry, RunningJob, Stats
from notifyd.spool.reader import Cursor
from notifyd.state import Journal, State, StateFileError


@pytest.fixture
def state_file(tmp_path: Path) -> Path:
    return tmp_path / "watcher-state.json"


@pytest.fixture
def journal_dir(tmp_path: Path) -> Path:
    path = tmp_path / "journal"
    path.mkdir()
    return path


def _entry(entry_id: str, *targets: str) -> OutboxEntry:
    return OutboxEntry(id=entry_id, title=f"job {entry_id}", body="", severity="success",
                       created=1.0, targets=list(targets))


def _full_state() -> State:
    return State(
        cursors={"events/node5.jsonl": Cursor(120, "7b2276", False).to_json(),
                 "legacy": {**Cursor(9, "31", True).to_json(), "open": {"1@n": {"title": "x", "ts": 2}}}},
        running={"node5-1-aa": RunningJob(host="node5", pid=1, title="train", start_ts=1.5)},
        done={"node5-2-bb": 3.0},
        outbox=[_entry("e1", "discord", "ntfy")],
        backoff={"ntfy": Backoff(failures=2, next_try=10.0, since=1.0, error="503")},
        failed=[FailedDelivery(_entry("e0", "mailto"), failed_at=5.0, error="550")],
        stats=Stats(events=7, malformed=1, delivered=4, last_event={"job": "node5-2-bb"}),
    )


def test_state_round_trips_through_save_and_load(state_file: Path, journal_dir: Path) -> None:
    saved = _full_state()
    state.save(saved, state_file, journal_dir)
    loaded = state.load(state_file, journal_dir)
    assert loaded.cursors == saved.cursors
    assert loaded.running == saved.running
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
    st = State(failed=[FailedDelivery(_entry(f"e{i}"), 1.0) for i in range(state.FAILED_KEEP + 50)])
    state.save(st, state_file, journal_dir)
    failed = state.load(state_file, journal_dir).failed
    assert len(failed) == state.FAILED_KEEP
    assert failed[-1].entry.id == f"e{state.FAILED_KEEP + 49}"


# -- the file as earlier versions wrote it ------------------------------------------------------

# A state file as notifyd wrote it before records had a shape (every key it held).
OLD_STATE: dict[str, Any] = {
    "v": 1, "saved_at": 1764590000.5,
    "cursors": {"events/node5.jsonl": {"offset": 120, "head": "7b2276", "skipping": False},
                "legacy:.pingchilling": {"offset": 9, "head": "31", "skipping": False}},
    "running": {"node5-1-aa": {"host": "node5", "pid": 1, "title": "train", "cmd": "python t.py",
                               "cwd": "/home/ana", "start_ts": 1.5, "user": "ana", "group": None}},
    "legacy_open": {"1001@node5": {"title": "python", "ts": 2.0}},
    "lost": {"node5-3-cc": {"host": "node5", "pid": 3, "title": "x", "cmd": "x", "cwd": "/",
                            "start_ts": 1.0, "user": "ana", "group": "g", "reason": "its host rebooted",
                            "at": 9.0}},
    "missing_since": {"node5-1-aa": 4.0},
    "done": {"node5-2-bb": 3.0}, "done_horizon": 0.5,
    "outbox": [{"id": "node5-2-bb:finish", "job": "node5-2-bb", "jobs": ["node5-2-bb"], "title": "t",
                "body": "b", "kind": "success", "created": 3.5, "targets": ["inbox", "k1"],
                "info": {"outcome": "ok"}, "attach": "/tmp/plot.png"}],
    "recent": {"k1": [3.5]},
    "batches": {"k1": {"opened": 3.0, "last": 3.5, "jobs": [{"job": "j", "exit": 0}]}},
    "budget": {"k1": {"tokens": 29.0, "at": 3.5}},
    "groups": {"sweep": {"opened": 1.0, "changed": 2.0, "jobs": {
        "a": None, "b": {"title": "b", "host": "n", "outcome": "failed", "duration": 2.5, "exit": 3,
                         "signal": None}}}},
    "backoff": {"k1": {"failures": 2, "next_try": 30.0, "since": 3.0, "error": "503",
                       "display": "json://127.0.0.1"}},
    "failed": [{"id": "e0", "job": "", "jobs": ["a", "b"], "title": "t", "body": "b", "kind": "failure",
                "created": 1.0, "targets": ["k2"], "failed_at": 2.0, "error": "401",
                "url": "discord://1/****", "status": 401}],
    "stats": {"events": 7, "malformed": 1, "delivered": 4, "last_event": {"job": "node5-2-bb"}},
}


def test_a_state_written_by_the_earlier_version_loads_and_saves_the_same(
        state_file: Path, journal_dir: Path) -> None:
    state_file.write_text(json.dumps(OLD_STATE))
    loaded = state.load(state_file, journal_dir)
    assert loaded.problems == []
    saved = loaded.to_json(now=OLD_STATE["saved_at"])
    # Every key but legacy_open comes back as it was; the open legacy starts
    # now live in the legacy source's cursor.
    expected = {k: v for k, v in OLD_STATE.items() if k != "legacy_open"}
    expected["cursors"] = {**OLD_STATE["cursors"], "legacy:.pingchilling": {
        **OLD_STATE["cursors"]["legacy:.pingchilling"], "open": OLD_STATE["legacy_open"]}}
    assert saved == expected


@pytest.mark.parametrize(("table", "bad"), [
    ("running", {"node5-9-zz": {"pid": "one", "start_ts": 1.0}}),
    ("running", {"node5-9-zz": {"start_ts": 10**400}}),
    ("lost", {"node5-9-zz": {"at": float("nan")}}),
    ("batches", {"k9": {"opened": "soon", "last": 1.0, "jobs": []}}),
    ("groups", {"g9": {"opened": 1.0, "changed": 1.0, "jobs": {"a": {"outcome": 3}}}}),
    ("backoff", {"k9": {"failures": 1.5, "next_try": 1.0, "since": 1.0}}),
    ("budget", {"k9": {"tokens": None, "at": 1.0}}),
])
def test_one_bad_record_is_skipped_and_named_and_the_rest_kept(
        state_file: Path, journal_dir: Path, table: str, bad: dict[str, Any]) -> None:
    data = {**OLD_STATE, table: {**OLD_STATE[table], **bad}}
    state_file.write_text(json.dumps(data, allow_nan=True))
    loaded = state.load(state_file, journal_dir)
    assert len(loaded.problems) == 1
    assert table in loaded.problems[0]
    kept = getattr(loaded, table)
    assert set(kept) == set(OLD_STATE[table])  # the good records are all still there
    assert [e.id for e in loaded.outbox] == ["node5-2-bb:finish"]


def test_a_bad_outbox_entry_is_skipped_and_the_others_kept(state_file: Path, journal_dir: Path) -> None:
    data = {**OLD_STATE, "outbox": [{"id": 7}, *OLD_STATE["outbox"]]}
    state_file.write_text(json.dumps(data))
    loaded = state.load(state_file, journal_dir)
    assert [e.id for e in loaded.outbox] == ["node5-2-bb:finish"]
    assert loaded.problems == ["outbox #1: field 'id' is not a string"]


@pytest.mark.parametrize("table", ["running", "outbox", "groups"])
def test_a_table_of_the_wrong_type_makes_the_file_unusable(state_file: Path, journal_dir: Path,
                                                          table: str) -> None:
    state_file.write_text(json.dumps({**OLD_STATE, table: "nonsense"}))
    with pytest.raises(StateFileError, match=table):
        state.load(state_file, journal_dir)
