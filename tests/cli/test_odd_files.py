"""`notifyd jobs`, `status` and `inbox` over a state file and an inbox holding what no watcher should write.

Each case came from tests/fuzz/test_cli_fuzz.py and runs the real CLI: exit
0, no traceback, the good records still listed, a note for what was skipped.
Output goes to a UTF-8 pipe that refuses what cannot be encoded
(LC_ALL=C.UTF-8), as a terminal or `| less` would.
"""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
from harness import NOTIFYD, Home

NOW = time.time()
JOB = "node5-4242-abcd1234"
GOOD = "node5-99-bbbbbbbb"


def run(home: Home, *args: str) -> tuple[int, str, str]:
    p = subprocess.run([NOTIFYD, *args], env={**home.env, "LC_ALL": "C.UTF-8", "PYTHONUTF8": "0"},
                       capture_output=True, text=True, errors="replace", timeout=60)
    assert "Traceback" not in p.stderr, p.stderr
    return p.returncode, p.stdout, p.stderr


def write_state(home: Home, **fields: Any) -> None:
    home.state_dir.mkdir(parents=True, exist_ok=True)
    (home.state_dir / "watcher-state.json").write_text(json.dumps({"v": 1, **fields}))


def write_inbox(home: Home, *records: dict[str, Any]) -> Path:
    path = home.state_dir / "inbox" / f"{home.host}.jsonl"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r, separators=(",", ":")) + "\n" for r in records))
    return path


def running(title: str, start_ts: Any) -> dict[str, Any]:
    return {"host": "node5", "pid": 4242, "title": title, "start_ts": start_ts}


def record(job: str, title: str, **info: Any) -> dict[str, Any]:
    return {"id": f"{job}:finish", "job": job, "time": NOW - 60, "kind": "failure", "title": f"❌ {title}",
            "body": "**exit 3**", "info": {"host": "node5", "pid": 1, "title": title, "outcome": "failed",
                                          "exit": 3, "end_ts": NOW - 60, **info}}


# -- notifyd jobs ----------------------------------------------------------------------------------


def test_jobs_skips_a_running_job_whose_start_time_no_float_holds_and_lists_the_rest(home: Home) -> None:
    write_state(home, running={JOB: running("absurd", 10**400), GOOD: running("relax", NOW - 60)})
    code, out, err = run(home, "jobs")
    assert code == 0
    assert "relax" in out and "absurd" not in out
    assert f"skipped running '{JOB}': field 'start_ts' is out of range" in err


def test_jobs_lists_a_job_waiting_in_a_digest_whose_numbers_no_float_holds(home: Home) -> None:
    # Before: OverflowError from float() of the batched event's start_ts, and a traceback.
    ev = {"job": JOB, "title": "batched", "host": "node5", "exit": 0, "start_ts": 10**400, "ts": NOW - 30,
          "duration": 10**400, "maxrss_kb": 10**400}
    write_state(home, batches={"0123456789abcdef": {"opened": NOW - 30, "last": NOW - 30, "jobs": [ev]}})
    code, out, _err = run(home, "jobs")
    assert code == 0 and "batched" in out
    (row,) = json.loads(run(home, "jobs", "--json")[1])["finished"]
    assert (row["start_ts"], row["duration"], row["maxrss_kb"]) == (None, None, None)


def test_jobs_lists_an_inbox_record_whose_numbers_are_absurd_without_them(home: Home) -> None:
    # Before: OverflowError (401 digits) or OSError (a time past the year 9999) and a traceback.
    write_inbox(home, record(JOB, "absurd", start_ts=10**400, end_ts=1e300, duration=float("nan"),
                             maxrss_kb=10**400), record(GOOD, "relax", duration=60.0))
    code, out, _err = run(home, "jobs")
    assert code == 0
    assert "absurd" in out and "relax" in out
    doc = json.loads(run(home, "jobs", "--json")[1], parse_constant=pytest.fail)
    assert [f["duration"] for f in doc["finished"]] == [None, 60.0]


def test_jobs_lists_a_lost_job_judged_at_a_time_no_calendar_holds(home: Home) -> None:
    # Before: time.localtime raised OSError for 1e18 and `notifyd jobs` showed a traceback.
    write_state(home, lost={JOB: {**running("vanished", NOW - 600), "reason": "its host rebooted",
                                  "at": 1e18}})
    code, out, _err = run(home, "jobs", "--since", "100000d")
    assert code == 0 and "vanished" in out and "lost" in out


# -- notifyd status --------------------------------------------------------------------------------


def test_status_shows_a_failed_delivery_whose_title_holds_an_undecodable_byte(home: Home) -> None:
    # pingch keeps a command's bytes that are not UTF-8 as lone surrogates; printing one failed.
    entry = {"id": f"{JOB}:finish", "job": JOB, "title": "❌ run\udcff.sh failed", "body": "",
             "kind": "failure", "created": NOW, "targets": [], "failed_at": NOW, "error": "refused",
             "url": "json://x"}
    write_state(home, failed=[entry])
    code, out, _err = run(home, "status")
    assert code == 0
    assert "failed: ❌ run\\udcff.sh failed → json://x: refused" in out


def test_status_takes_a_last_event_with_odd_values_and_prints_strict_json(home: Home) -> None:
    last = {"host": "node5", "ev": "finish", "job": JOB, "title": "relax", "ts": float("nan"),
            "read_at": "@everyone"}
    write_state(home, stats={"events": 1, "malformed": 0, "delivered": 0, "last_event": last})
    code, out, _err = run(home, "status")
    assert code == 0 and "last event: finish of 'relax' from node5, read at an unknown time" in out
    doc = json.loads(run(home, "status", "--json")[1], parse_constant=pytest.fail)
    assert "ts" not in doc["last_event"]


# -- notifyd inbox ---------------------------------------------------------------------------------


def test_inbox_shows_a_record_whose_title_holds_an_undecodable_byte(home: Home) -> None:
    write_inbox(home, {**record(JOB, "run\udcff.sh"), "body": "`$ ./run\udcff.sh`"})
    code, out, _err = run(home, "inbox")
    assert code == 0
    assert "❌ run\\udcff.sh" in out and "$ ./run\\udcff.sh" in out


@pytest.mark.parametrize("when", [1e300, "soon", 10**400, float("nan")], ids=lambda v: str(v)[:8])
def test_inbox_shows_a_record_with_an_absurd_time_as_the_epoch(home: Home, when: Any) -> None:
    write_inbox(home, {**record(JOB, "absurd"), "time": when}, record(GOOD, "relax"))
    code, out, _err = run(home, "inbox")
    assert code == 0
    assert "[1970-01-01 00:00:00] ❌ absurd" in out and "relax" in out


@pytest.mark.parametrize("since", ["9" * 400 + "d", "100000000000d"], ids=["infinite", "1e11-days"])
def test_jobs_since_further_back_than_1970_lists_everything(home: Home, since: str) -> None:
    # Before: --since of 400 nines was inf seconds, and time.localtime(-inf) a traceback.
    write_inbox(home, record(GOOD, "relax"))
    code, out, _err = run(home, "jobs", "--since", since)
    assert code == 0
    assert "finished since 1970-01-01 00:00: 1 job" in out and "relax" in out
