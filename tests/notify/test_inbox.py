"""The inbox format: what its writer writes, its readers read back, and its byte tests classify.

Every kind of record the watcher writes (a job that succeeded, failed, ended
unknown or was lost; a digest; a group's summary), with quotes, emoji and
fake JSON in the job's text, through inbox.encode and back.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from fakes import finish_event

from notifyd.notify import inbox

NASTY = 'fit "best" 🧪 ","outcome":"failed","x":"\\ ::finish","job":"'


def job_line(job: str, outcome_ev: dict[str, Any], suffix: str = ":finish") -> bytes:
    summary = inbox.job_summary(outcome_ev, silent=False)
    kind = "failure" if summary["outcome"] in ("failed", "lost") else "success"
    return inbox.encode(f"{job}{suffix}", job=job, time=1000.5, kind=kind, title=f"✅ {NASTY}",
                        body=f"body {NASTY}", info=summary)


CASES = {
    "ok": (finish_event("a-1-0", ts=1000.0, title=NASTY), False),
    "failed": (finish_event("a-2-0", ts=1000.0, exit=3, title=NASTY), True),
    "killed": (finish_event("a-3-0", ts=1000.0, exit=None, signal=9, title=NASTY), True),
    "unknown": (finish_event("a-4-0", ts=1000.0, exit=None, exit_unknown=True, title=NASTY), False),
    "lost": ({**finish_event("a-5-0", ts=1000.0, title=NASTY), "lost": "its host rebooted"}, True),
}


@pytest.mark.parametrize("case", CASES)
def test_a_jobs_own_record_reads_back_as_written(case: str) -> None:
    ev, _bad = CASES[case]
    suffix = ":lost" if case == "lost" else ":finish"
    line = job_line(ev["job"], ev, suffix)
    record = inbox.parse_record(line.rstrip(b"\n"))
    assert record is not None
    assert record["id"] == f"{ev['job']}{suffix}" and record["job"] == ev["job"]
    assert record["title"] == f"✅ {NASTY}" and record["info"]["title"] == NASTY
    assert inbox.is_job_record(record)


@pytest.mark.parametrize("case", CASES)
def test_the_byte_tests_classify_a_jobs_record_as_the_record_says(case: str) -> None:
    ev, bad = CASES[case]
    line = job_line(ev["job"], ev, ":lost" if case == "lost" else ":finish").rstrip(b"\n")
    assert inbox.is_job_line(line)
    assert inbox.is_bad_line(line) is bad
    assert inbox.line_time(line) == 1000.5
    if case == "lost":
        assert inbox.lost_job_id(line) == ev["job"].encode()
        assert inbox.finished_job_id(line) is None
    else:
        assert inbox.finished_job_id(line) == ev["job"].encode()
        assert inbox.lost_job_id(line) is None


def test_a_job_whose_text_holds_fake_json_is_not_taken_for_a_failure() -> None:
    ev, _ = CASES["ok"]
    line = job_line(ev["job"], ev).rstrip(b"\n")
    assert not inbox.is_bad_line(line)


@pytest.mark.parametrize("entry_id", ["digest:0123abcd:1000.0", "group:sweep:1000.0"])
def test_a_digest_or_a_group_summary_is_not_a_jobs_own_record(entry_id: str) -> None:
    line = inbox.encode(entry_id, job="", time=1000.5, kind="failure", title=f"3 jobs {NASTY}",
                        body=f"❌ {NASTY}", info=None).rstrip(b"\n")
    record = inbox.parse_record(line)
    assert record is not None and not inbox.is_job_record(record)
    assert not inbox.is_job_line(line) and not inbox.is_bad_line(line)
    assert inbox.line_time(line) == 1000.5


def test_a_one_job_group_summary_names_the_job_but_is_not_its_record() -> None:
    line = inbox.encode("group:solo:1.0", job="a-1-0", time=2.0, kind="success", title="📦 solo",
                        body="", info=None)
    record = inbox.parse_record(line)
    assert record is not None and not inbox.is_job_record(record)


def test_group_membership_is_read_from_the_summary_bytes() -> None:
    ev = finish_event("a-1-0", ts=1.0, group="sweep.2")
    line = job_line("a-1-0", ev)
    assert inbox.in_group(line, "sweep.2") and not inbox.in_group(line, "sweep")


def test_undecodable_bytes_of_a_command_stay_valid_utf8_on_disk() -> None:
    line = inbox.encode("a:finish", job="a", time=1.0, kind="success", title="x\udcff", body="",
                        info=None)
    line.decode("utf-8")  # no UnicodeDecodeError
    assert json.loads(line)["title"] == "x\udcff"


def test_the_newest_records_and_the_window_read_what_append_wrote(tmp_path: Path) -> None:
    for n in range(50):
        inbox.append(tmp_path / ("a.jsonl" if n % 2 else "b.jsonl"),
                     inbox.encode(f"j{n}:finish", job=f"j{n}", time=1000.0 + n, kind="success",
                                  title=f"t{n}", body="", info=None))
    assert [r["job"] for r in inbox.read(tmp_path, last=3)] == ["j47", "j48", "j49"]
    window = inbox.window(tmp_path, since=1045.0)
    assert [json.loads(line)["job"] for line in window] == [f"j{n}" for n in range(45, 50)]
    assert inbox.job_ids(tmp_path) == {f"j{n}" for n in range(50)}


@pytest.mark.parametrize("line", [b"", b"{", b"[1]", b'{"no_id": 1}', b'"x"', b"{" * 5000])
def test_a_line_that_is_not_a_record_is_none(line: bytes) -> None:
    assert inbox.parse_record(line) is None


@pytest.mark.parametrize("line", [b'{"id":"x","job":"x","time":1e999}', b'{"id":"x","time":"soon"}',
                                  b'{"id":"x","job":"x","time":' + b"9" * 400 + b"}"])
def test_an_absurd_time_reads_as_zero_not_an_error(line: bytes) -> None:
    assert inbox.line_time(line) == 0.0
