"""A real watcher reading spool files and ~/.pingchilling stuffed with thousands of hostile lines.

Among them a 50 MB line without a newline, written in pieces while the
watcher runs and real pingch jobs start and end around it. The watcher must
stay up, tell each real job (and each valid line among the hostile ones)
exactly once at the webhook and in the inbox, count every malformed line
exactly once (200,000 two-byte ones in a file of their own too), keep its
peak memory bounded (the reader takes at most 4 MiB and 10,000 lines of a
file per round), and `notifyd jobs` and `notifyd status` must still answer.
Every hostile line is bad, blank or good by construction, so the expected
malformed count is known without asking notifyd's own parsers.
"""

from __future__ import annotations

import json
import os
import random
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from harness import Home, Receiver, WatcherProc, fast_config, new_home, serve_receiver, wait_until

from notifyd.watcher.sources.spool import EVENT_START

GIANT = 50 * 1024 * 1024
PIECE = 1024 * 1024
PEAK_RSS_BOUND_KB = 200 * 1024
HOSTILE_LINES = 3000  # per spool file part and for the legacy file, in all well over 10,000
REAL_JOBS = 6
FLOOD = 200_000  # two-byte garbage lines: 20 rounds of 10,000


def _json(obj: Any) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode()


def _finish(job: str, title: str, **extra: Any) -> dict[str, Any]:
    return {"v": 1, "ev": "finish", "job": job, "host": "evil", "pid": 7, "ts": time.time(),
            "start_ts": time.time() - 5, "title": title, "exit": 0, "duration": 5.0, **extra}


def _bad_events(rng: random.Random) -> list[bytes]:
    """Lines the event decoder must skip, one of each kind, with a random part."""
    n = rng.randrange(1, 10**6)
    ev = _finish(f"evil-{n}-bad00000", f"bad {n}")
    gone = rng.choice(["job", "host", "pid", "ts", "v", "ev"])
    without = {k: v for k, v in ev.items() if k != gone}
    return [
        b"garbage %d" % n, b"{", b"\x00\x01\x02", b"\xff\xfe{}", b"[" * 3000, _json(ev)[:-1],
        b"[1,2]", b'"a string"', b"%d" % n, b"null", _json(without),
        _json({**ev, "pid": str(n)}), _json({**ev, "ts": "now"}), _json({**ev, "host": 5}),
        _json({**ev, "title": n}), _json({**ev, "group": [n]}), _json({**ev, "exit": "0"}),
        _json({**ev, "hide_command": "yes"}), _json({**ev, "start_ts": 1e308}), _json({**ev, "ts": 1e300}),
        _json({**ev, "ts": 10**400}), _json({**ev, "maxrss_kb": 10**400}),
        _json(ev).replace(b'"duration":5.0', b'"duration":NaN'),
        _json(ev).replace(b'"duration":5.0', b'"duration":Infinity'),
        _json(ev).replace(b'"duration":5.0', b'"duration":1e999'),
        _json({**ev, "host": ""}), _json({**ev, "host": ".."}), _json({**ev, "host": "a/b"}),
        _json({**ev, "host": "x\x00y"}), _json({**ev, "v": 2}), _json({**ev, "ev": "restart"}),
        _json({**ev, "job": ""}), _json({**ev, "pid": -n}),
        json.dumps({**ev, "title": "é"}, ensure_ascii=False).encode().replace("é".encode(), b"\xff"),
        # Two events on one line: malformed, and the whole event at its end is read,
        # as after the fragment a full disk leaves (spool source, _after_fragment).
        _json(ev) + b"\r" + _json(ev),
        _json({**ev, "title": "x" * 5000}),  # over MAX_LINE: oversized, counted once
    ]


BLANK = [b"", b"   ", b"\r", b"\t \r"]


@dataclass
class Hostile:
    """Lines written so far, with what the watcher should make of them."""

    rng: random.Random = field(default_factory=lambda: random.Random(20251003))
    malformed: int = 0
    good: list[str] = field(default_factory=list)  # titles of valid finishes among the hostile lines

    def spool_lines(self, count: int, tag: str) -> bytes:
        out = []
        for i in range(count):
            roll = self.rng.random()
            if roll < 0.05:
                out.append(self.rng.choice(BLANK))
            elif roll < 0.07:
                title = f"good {tag} {i} @everyone \ud800"  # a lone surrogate JSON can carry
                ev = _finish(f"evil-{i}-{tag}", title)
                line = json.dumps(ev, separators=(",", ":")).encode()
                # CRLF, and the same finish twice: told once.
                out.extend([line + b"\r", line] if self.rng.random() < 0.5 else [line])
                self.good.append(title)
            else:
                bad = self.rng.choice(_bad_events(self.rng))
                out.append(bad)
                self.malformed += 1
                if bad.rfind(EVENT_START) > 0:
                    self.good.append(json.loads(bad[bad.rfind(EVENT_START):])["title"])
        return b"".join(line + b"\n" for line in out)

    def legacy_lines(self, count: int, *, told: bool) -> bytes:
        out = []
        now = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime())  # the test home is in UTC
        when = now.encode()
        bad = [b"garbage", b"1@node9 Started [x] " + when, "٣@node9: Started [x] ".encode() + when,
               b"1@node9: Started [x] 9999-12-31 23:59:59", b"1@node9: Started [x] 2025-02-30 10:00:00",
               b"1@node9: Started [\xff] " + when,
               b"9" * 5000 + b"@node9: Started [x] " + when]  # over MAX_LINE: oversized, counted once
        for i in range(count):
            roll = self.rng.random()
            if roll < 0.05:
                out.append(self.rng.choice(BLANK))
            elif roll < 0.07 and told:
                status = self.rng.choice(["0", "3", "²", "--3"])
                pid = 100000 + i
                title = f"legacy {i} exit {status}"
                out += [f"{pid}@node9: Started [{title}] {now}".encode(),
                        f"{pid}@node9: Finished [{status}] {now}".encode()]
                self.good.append(title)
            else:
                out.append(self.rng.choice(bad))
                self.malformed += 1
        return b"".join(line + b"\n" for line in out)


def _append(path: Path, data: bytes) -> None:
    with path.open("ab") as f:
        f.write(data)


def _peak_rss_kb(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    raise AssertionError(f"no VmHWM for pid {pid}")


@dataclass
class Run:
    home: Home
    receiver: Receiver
    hostile: Hostile
    real: list[str]
    peak_rss_kb: int
    alive: bool
    seconds: float
    watcher_pid: int


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Run]:
    started = time.monotonic()
    home = new_home(tmp_path_factory.mktemp("hostile") / "home")
    legacy = home.root / ".pingchilling"
    hostile = Hostile()
    with serve_receiver() as receiver:
        home.write_config(fast_config(receiver.url)
                          + f"log_max_size = 64M\n[legacy]\npingchilling = {legacy}\n")
        events = home.state_dir / "events"
        events.mkdir(parents=True)
        evil = events / "evil.jsonl"
        # Before the watcher: its first read of the legacy file is history (told by the old bot).
        legacy.write_bytes(hostile.legacy_lines(HOSTILE_LINES // 3, told=False))
        evil.write_bytes(hostile.spool_lines(HOSTILE_LINES, "before"))
        odd_name = os.path.join(os.fsencode(events), b"node\xff.jsonl")
        with open(odd_name, "wb") as f:
            f.write(b"not json\n" * 3)
        hostile.malformed += 3
        (events / "link.jsonl").symlink_to(evil)  # not followed: counts nothing
        flood = events / "flood.jsonl"
        flood.write_bytes(b"x\n" * FLOOD)
        hostile.malformed += FLOOD
        watcher = WatcherProc(home).start()
        assert watcher.proc is not None
        pid = watcher.proc.pid
        try:
            wait_until(lambda: _state(home).get("cursors", {}).get("legacy:.pingchilling"), 20,
                       "the legacy file's first read")
            real = _giant_line_among_real_jobs(home, evil, hostile)
            _append(evil, b'"}\n')
            hostile.malformed += 1  # the giant line: counted once, as soon as it is over MAX_LINE
            after = "after the giant line"
            _append(evil, _json(_finish("evil-1-after", after)) + b"\n")
            hostile.good.append(after)
            _append(evil, hostile.spool_lines(HOSTILE_LINES, "after"))
            _append(legacy, hostile.legacy_lines(HOSTILE_LINES, told=True))
            want = len(real) + len(hostile.good)
            wait_until(lambda: _read_to_the_end(home, [evil, flood, home.spool, legacy]), 40,
                       "every file read")
            wait_until(lambda: len(receiver.bodies()) >= want, 40, f"{want} messages at the webhook")
            time.sleep(1.5)  # several more rounds: nothing else may come
            peak = _peak_rss_kb(pid)
            yield Run(home, receiver, hostile, real, peak, watcher.alive, time.monotonic() - started, pid)
        finally:
            watcher.stop()
            home.kill_watchers()


def _giant_line_among_real_jobs(home: Home, evil: Path, hostile: Hostile) -> list[str]:
    """Start the giant line, write it in pieces with real jobs and hostile lines between; their titles."""
    real: list[str] = []
    _append(evil, b'{"v":1,"ev":"finish","title":"')
    for piece in range(GIANT // PIECE):
        _append(evil, b"x" * PIECE)
        if piece % (GIANT // PIECE // REAL_JOBS) == 0 and len(real) < REAL_JOBS:
            title = f"real-{len(real)}"
            args = ["-t", title, "false" if len(real) % 3 == 2 else "true"]
            assert home.pingch(*args).returncode in (0, 1)
            real.append(title)
            _append(home.spool, hostile.spool_lines(50, f"own{len(real)}"))
        time.sleep(0.02)
    return real


def _state(home: Home) -> dict[str, Any]:
    try:
        doc: dict[str, Any] = json.loads((home.state_dir / "watcher-state.json").read_text())
    except (OSError, ValueError):
        return {}
    return doc


def _read_to_the_end(home: Home, files: list[Path]) -> bool:
    """Has the watcher's saved cursor reached the end of each file?"""
    cursors = _state(home).get("cursors", {})
    keys = {f: "legacy:.pingchilling" if f.name == ".pingchilling" else f"events/{f.name}" for f in files}
    return all(cursors.get(keys[f], {}).get("offset") == f.stat().st_size for f in files)


def _told(run: Run) -> Counter[str]:
    return Counter(str(b["title"]) for b in run.receiver.bodies())


def _inbox_titles(run: Run) -> Counter[str]:
    titles: Counter[str] = Counter()
    for path in (run.home.state_dir / "inbox").glob("*.jsonl"):
        for line in path.read_bytes().splitlines():
            info = json.loads(line).get("info") or {}
            titles[str(info.get("title"))] += 1
    return titles


def test_the_watcher_stays_up_through_it_all(run: Run) -> None:
    assert run.alive
    assert run.seconds < 90, f"took {run.seconds:.0f} s"


def test_each_real_job_is_told_exactly_once_at_the_webhook_and_in_the_inbox(run: Run) -> None:
    told, inbox = _told(run), _inbox_titles(run)
    for title in run.real:
        assert sum(n for t, n in told.items() if f" {title} " in t) == 1, (title, told)
        assert inbox[title] == 1, (title, inbox)


def test_each_valid_line_among_the_hostile_ones_is_told_exactly_once(run: Run) -> None:
    told = _told(run)
    assert sum(told.values()) == len(run.real) + len(run.hostile.good)
    for title in run.hostile.good:
        defused = title.replace("@everyone", "@\u200beveryone")
        assert sum(n for t, n in told.items() if f" {defused} " in t) == 1, (title, told)


def test_every_malformed_line_is_counted_exactly_once(run: Run) -> None:
    code, out, err = run.home.notifyd("status", "--json")
    assert code == 0, err
    assert json.loads(out)["malformed_lines"] == run.hostile.malformed


def test_peak_memory_stays_bounded_while_a_50_mb_line_is_read(run: Run) -> None:
    assert run.peak_rss_kb < PEAK_RSS_BOUND_KB, (
        f"watcher pid {run.watcher_pid} peak RSS (VmHWM) {run.peak_rss_kb / 1024:.1f} MiB, "
        f"bound {PEAK_RSS_BOUND_KB / 1024:.0f} MiB")
    print(f"watcher peak RSS (VmHWM): {run.peak_rss_kb / 1024:.1f} MiB; run took {run.seconds:.1f} s")


def test_jobs_and_status_still_answer(run: Run) -> None:
    code, out, err = run.home.notifyd("jobs", "--since", "1h", "-n", "1000")
    assert code == 0 and "Traceback" not in err, err
    assert all(title in out for title in run.real)
    code, out, err = run.home.notifyd("status")
    assert code == 0 and "Traceback" not in err, err
    assert "watcher:    running" in out


def test_a_malformed_line_of_a_file_whose_name_is_not_utf8_is_logged_with_the_name_escaped(run: Run) -> None:
    logs = run.home.state_dir / "logs"
    text = "".join(p.read_text(encoding="utf-8") for p in logs.glob(f"{run.home.host}.log*"))
    assert "skipping malformed line in " in text and "node\\xff.jsonl at byte 0: not JSON" in text
    assert "error in a watcher round" not in text
