"""`notifyd jobs`, `status` and `inbox` over a state file and an inbox holding anything.

The verbs run in process (notify/history.collect, cli/commands/status.gather,
notify/inbox.read and window, and each verb's own command function with its
printing) in a temp home: whatever the files hold (huge ints, NaN, wrong
types, missing keys, truncated lines), there is never a traceback, every
verb answers 0, `--json` prints strict JSON, and a bad state record is
skipped and named.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from unittest import mock

from fuzz.hostile import cases, spoiled
from hypothesis import given
from hypothesis import strategies as st

from notifyd import paths as paths_mod
from notifyd.cli.commands import inbox as inbox_verb
from notifyd.cli.commands import jobs as jobs_verb
from notifyd.cli.commands import status as status_verb
from notifyd.notify import history, inbox

NOW = time.time()
JOB = "node5-4242-abcd1234"
# Every text holds a lone surrogate, as a command line's undecodable bytes become (surrogateescape).
RUNNING = {"host": "node5", "pid": 4242, "title": "relax \udcff", "cmd": "python relax.py",
           "cwd": "/scratch", "start_ts": NOW - 600, "user": "ana", "group": "sweep"}
EVENT = {"job": "node6-7-abcd1234", "title": "fit \udcff", "host": "node6", "pid": 7, "exit": 3,
         "signal": None, "duration": 30.0, "start_ts": NOW - 90, "ts": NOW - 60, "group": None,
         "maxrss_kb": 1024}
ENTRY = {"id": f"{JOB}:finish", "job": JOB, "jobs": [JOB], "title": "t \udcff", "body": "b",
         "kind": "success", "created": NOW - 30, "targets": ["inbox", "0123456789abcdef"]}
STATE: dict[str, Any] = {
    "v": 1, "saved_at": NOW, "cursors": {"events/node5.jsonl": {"offset": 10}},
    "running": {JOB: RUNNING, "node5-1-abcd1234": RUNNING},
    "lost": {"node3-1-abcd1234": {**RUNNING, "reason": "its host rebooted", "at": NOW - 20}},
    "missing_since": {JOB: NOW - 5}, "done": {"node6-7-abcd1234": NOW - 60}, "done_horizon": 0.0,
    "outbox": [ENTRY], "recent": {"0123456789abcdef": [NOW - 60]},
    "batches": {"0123456789abcdef": {"opened": NOW - 60, "last": NOW - 60, "jobs": [EVENT]}},
    "budget": {"0123456789abcdef": {"tokens": 3.0, "at": NOW}},
    "groups": {"sweep": {"opened": NOW - 600, "changed": NOW - 60,
                         "jobs": {JOB: None, "x": {"outcome": "ok", "title": "a", "duration": 5.0}}}},
    "backoff": {"0123456789abcdef": {"failures": 2, "next_try": NOW + 30, "since": NOW - 60,
                                     "error": "\udcff", "display": "json://127.0.0.1/hook"}},
    "failed": [{**ENTRY, "failed_at": NOW - 10, "error": "refused", "url": "json://x", "status": 400}],
    "stats": {"events": 3, "malformed": 1, "delivered": 2,
              "last_event": {"host": "node5", "ev": "finish", "job": JOB, "title": "relax", "ts": NOW,
                             "read_at": NOW}},
}
INFO = {"host": "node5", "pid": 4242, "title": "relax \udcff", "group": "sweep", "outcome": "failed",
        "exit": 3, "signal": None, "duration": 723.0, "maxrss_kb": 1258291, "start_ts": NOW - 1323,
        "end_ts": NOW - 600, "silent": False}
RECORD = {"id": f"{JOB}:finish", "job": JOB, "time": NOW - 600, "kind": "failure",
          "title": "❌ relax \udcff failed", "body": "**exit 3**\n`$ python relax.py \udcff`", "info": INFO}


def _odd_state() -> st.SearchStrategy[dict[str, Any]]:
    """The state with some tables, or some fields of one record, odd."""
    def record_in(table: str, key: str, base: dict[str, Any]) -> st.SearchStrategy[dict[str, Any]]:
        return spoiled(base, sorted(base)).map(lambda rec: {**STATE, table: {**STATE[table], key: rec}})

    return st.one_of(
        spoiled(STATE, sorted(STATE)),
        record_in("running", JOB, RUNNING),
        record_in("lost", "node3-1-abcd1234", STATE["lost"]["node3-1-abcd1234"]),
        record_in("backoff", "0123456789abcdef", STATE["backoff"]["0123456789abcdef"]),
        record_in("stats", "last_event", STATE["stats"]["last_event"]).map(
            lambda s: {**s, "stats": {**STATE["stats"], "last_event": s["stats"]["last_event"]}}),
        spoiled(ENTRY, sorted(ENTRY)).map(lambda e: {**STATE, "outbox": [e, ENTRY]}),
        spoiled({**ENTRY, "info": INFO}, ["info", "created", "targets"]).map(
            lambda e: {**STATE, "outbox": [e]}),
        spoiled(EVENT, sorted(EVENT)).map(
            lambda ev: {**STATE, "batches": {"k": {"opened": NOW, "last": NOW, "jobs": [ev]}}}),
        spoiled(STATE["failed"][0], ["failed_at", "error", "url", "status", "created", "id"]).map(
            lambda f: {**STATE, "failed": [f]}),
    )


def _odd_record() -> st.SearchStrategy[bytes]:
    """An inbox line: a record with odd fields or odd info, or no record at all."""
    as_line = st.builds(lambda r: json.dumps(r, separators=(",", ":")).encode("utf-8", "surrogatepass"),
                        st.one_of(spoiled(RECORD, sorted(RECORD)),
                                  spoiled(INFO, sorted(INFO)).map(lambda i: {**RECORD, "info": i})))
    return st.one_of(
        as_line, as_line.map(lambda line: line[: len(line) // 2]),
        st.sampled_from([b"", b"{}", b'{"id":1}', b'{"id":"x","time":1e999}', b"[" * 5000, b"\xff\xfe",
                         b'{"id":"y","time":' + b"9" * 500 + b"}", b'{"id":"z","time":NaN,"info":[]}']),
        st.binary(max_size=40),
    )


@contextlib.contextmanager
def _home(state: bytes | None, lines: list[bytes]) -> Iterator[paths_mod.Paths]:
    with tempfile.TemporaryDirectory() as tmp:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("NOTIFYD_", "XDG_", "APPRISE_"))}
        env.update(HOME=tmp, NOTIFYD_HOST="node5", TZ="UTC")
        with mock.patch.dict(os.environ, env, clear=True):
            p = paths_mod.resolve()
            p.state_dir.mkdir(parents=True)
            if state is not None:
                p.state_file.write_bytes(state)
            p.inbox_dir.mkdir()
            (p.inbox_dir / "node5.jsonl").write_bytes(b"".join(line + b"\n" for line in lines))
            yield p


def _run(command: Any, **options: Any) -> tuple[int, str, str]:
    """A verb's command function with its output to UTF-8 pipes that refuse what cannot be encoded."""
    out, err = (io.TextIOWrapper(io.BytesIO(), encoding="utf-8", errors="strict") for _ in range(2))
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = command(**options)
    texts = []
    for stream in (out, err):
        stream.flush()
        texts.append(stream.buffer.getvalue().decode())  # type: ignore[attr-defined]
    return code, texts[0], texts[1]


def _strict_json(text: str) -> Any:
    def refuse(constant: str) -> None:
        raise AssertionError(f"{constant} in --json output")

    return json.loads(text, parse_constant=refuse)


def _dumped(value: Any) -> bytes:
    return json.dumps(value).encode("utf-8", "surrogatepass")


STATE_FILE = st.one_of(_odd_state().map(_dumped), _odd_state().map(lambda s: _dumped(s)[:-9]), st.none())
LINES = st.lists(_odd_record(), max_size=6)


OPTIONS = st.tuples(st.sampled_from([0.0, NOW - 86400, NOW + 1]), st.booleans(),
                    st.sampled_from([None, "sweep"]), st.sampled_from([None, 1, 50]))


@cases(250)
@given(STATE_FILE, LINES, OPTIONS)
def test_jobs_lists_any_state_and_inbox_without_a_traceback(
        state: bytes | None, lines: list[bytes], options: tuple[float, bool, str | None, int | None]) -> None:
    cutoff, failed, group, limit = options
    with _home(state, lines) as p:
        found = history.collect(p, cutoff=cutoff, failed_only=failed, group=group, limit=limit)
        json.dumps(history.as_json(found, NOW), allow_nan=False)
        for verb in ({"as_json": False}, {"as_json": True}):
            code, out, _err = _run(jobs_verb.command, failed=failed, since="30d", group=group,
                                   limit=limit or 50, **verb)
            assert code == 0
            if verb["as_json"]:
                _strict_json(out)


@cases(200)
@given(STATE_FILE, LINES)
def test_status_reports_any_state_without_a_traceback_and_names_skipped_records(
        state: bytes | None, lines: list[bytes]) -> None:
    with _home(state, lines):
        report = status_verb.gather()
        _strict_json(json.dumps(report))
        for as_json in (False, True):
            code, _out, _err = _run(status_verb.command, as_json=as_json)
            assert code == 0
        assert isinstance(report["malformed_lines"], int)


@cases(200)
@given(LINES, st.integers(1, 10), st.sampled_from([0.0, NOW - 3600, NOW]))
def test_the_inbox_readers_and_the_inbox_verb_take_any_lines(lines: list[bytes], count: int,
                                                            since: float) -> None:
    with _home(None, lines) as p:
        records = inbox.read(p.inbox_dir)
        assert all(isinstance(r, dict) and "id" in r for r in records)
        assert len(inbox.read(p.inbox_dir, last=count)) <= count
        window = inbox.window(p.inbox_dir, since)
        assert all(isinstance(line, bytes) for line in window)
        inbox.job_ids(p.inbox_dir)
        for as_json in (False, True):
            code, _out, _err = _run(inbox_verb.command, count=count, as_json=as_json)
            assert code == 0


def test_skipped_state_records_are_named_by_jobs_and_status() -> None:
    bad = {**STATE, "running": {**STATE["running"], JOB: {**RUNNING, "start_ts": 10**400}}}
    with _home(_dumped(bad), []) as p:
        assert any(JOB in note and "start_ts" in note for note in history.collect(p, cutoff=0).notes)
        assert any(JOB in problem for problem in status_verb.gather()["state_problems"])


def test_the_fuzzed_home_is_a_temp_dir_not_the_users() -> None:
    with _home(None, []) as p:
        assert Path(tempfile.gettempdir()) in p.state_dir.parents
