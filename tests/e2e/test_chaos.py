"""Chaos, measured: the watcher killed, frozen, starved of disk, its state broken, its endpoint flapping.

Each test counts what reached the webhook (lost: jobs never told; duplicates:
jobs told more than once) and prints its figures on a line starting with
"chaos:" (shown with `pytest -s`, and in every assertion message). Random
choices come from a seed printed with the figures; CHAOS_SEED=N repeats them.
"""

from __future__ import annotations

import os
import random
import re
import signal
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from functools import partial
from itertools import pairwise
from pathlib import Path
from typing import Any

import psutil
import pytest
from harness import (
    NOTIFYD,
    PINGCH,
    Answer,
    Home,
    Receiver,
    WatcherProc,
    fast_config,
    fill_up,
    job_events,
    lease_free_for,
    lease_now,
    start_watch,
    tmpfs,
    wait_until,
    write_event,
)

Hosts = Callable[[int], list[Home]]


# -- what every test here shares ---------------------------------------------------
class Seeded(random.Random):
    def __init__(self, seed: int) -> None:
        super().__init__(seed)
        self.seed_value = seed


@pytest.fixture
def rng() -> Seeded:
    """Random but repeatable: CHAOS_SEED, else a fresh seed (printed with each test's figures)."""
    seed = int(os.environ.get("CHAOS_SEED") or random.SystemRandom().randrange(10**6))
    print(f"\nchaos: seed {seed} (CHAOS_SEED={seed} repeats the test's random choices)")
    return Seeded(seed)


def config(url: str, **watcher: str) -> str:
    """fast_config(url) with some [watcher] keys changed (lease_timeout="2s", ...)."""
    text = fast_config(url)
    for key, value in watcher.items():
        text, n = re.subn(rf"^{key} = .*$", f"{key} = {value}", text, flags=re.MULTILINE)
        if not n:
            text += f"{key} = {value}\n"
    return text


def told(receiver: Receiver) -> Counter[str]:
    """How many accepted messages name each job title ("✅ TITLE finished on HOST")."""
    return Counter(str(b["title"]).split()[1] for b in receiver.bodies())


def all_told(receiver: Receiver, expected: set[str]) -> bool:
    return expected <= set(told(receiver))


def tally(expected: set[str], receiver: Receiver) -> tuple[set[str], dict[str, int]]:
    """(jobs never told, {job told more than once: times}); a message for no expected job is an error."""
    seen = told(receiver)
    strangers = set(seen) - expected
    assert not strangers, f"messages for jobs nobody ran: {sorted(strangers)[:10]}"
    return expected - set(seen), {t: n for t, n in seen.items() if n > 1}


def report(name: str, **figures: object) -> str:
    line = f"chaos: {name}: " + ", ".join(f"{k}={v}" for k, v in figures.items())
    print(f"\n{line}")
    return line


def wait_all_told(receiver: Receiver, expected: set[str], timeout: float) -> None:
    """Until every expected job is told (or `timeout`), then a little longer for late repeats."""
    try:
        wait_until(partial(all_told, receiver, expected), timeout, "every job to be told")
    except AssertionError:
        pass  # the caller counts what is missing and says so
    time.sleep(2.0)  # several poll intervals: a repeat would have come by now


def encoded(ev: dict[str, Any]) -> bytes:
    """The line pingch writes for this event (notifyd's encoder)."""
    from notifyd.spool import events

    return events.encode(ev)


def kill(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.kill()
        proc.wait(timeout=20)


class Burst(threading.Thread):
    """`count` jobs over `over` seconds, round-robin on the hosts, each ending 0.05-1.5 s after it
    starts: written into each host's spool through that host's mount with notifyd's encoder, as
    pingch writes them (start, later finish; one write() each)."""

    def __init__(self, homes: list[Home], count: int, over: float, rng: random.Random,
                 prefix: str = "burst") -> None:
        super().__init__(daemon=True)
        self.homes = homes
        self.plan: list[tuple[float, int, str, float]] = []  # (at, host index, title, ends after)
        for i in range(count):
            self.plan.append((over * i / count, i % len(homes), f"{prefix}-{i:03d}",
                              rng.uniform(0.05, 1.5)))
        self.titles = {title for _at, _h, title, _d in self.plan}
        self.hurry = threading.Event()  # write the rest at once
        self.failed: BaseException | None = None

    def run(self) -> None:
        try:
            t0, wall0 = time.monotonic(), time.time()
            writes: list[tuple[float, Home, dict[str, Any]]] = []
            for at, h, title, lasts in self.plan:
                home = self.homes[h]
                start, finish = job_events(home, title, wall0 + at, wall0 + at + lasts)
                writes += [(at, home, start), (at + lasts, home, finish)]
            writes.sort(key=lambda w: w[0])
            for at, home, ev in writes:
                left = t0 + at - time.monotonic()
                if left > 0:
                    self.hurry.wait(left)
                write_event(home, ev)
        except BaseException as exc:
            self.failed = exc

    def finish(self) -> None:
        self.hurry.set()
        self.join(timeout=60)
        assert self.failed is None, f"the burst writer failed: {self.failed!r}"


def no_watcher(home: Home) -> bool:
    return not home.watcher_pids()


def pingch_jobs(home: Home, prefix: str, count: int) -> list[tuple[subprocess.Popen[bytes], str, int]]:
    """`count` real pingch jobs on `home` exiting 0, 1, 0, 1...: (process, title, expected status)."""
    jobs = []
    for i in range(count):
        title, code = f"{prefix}-{i}", i % 2
        proc = subprocess.Popen([PINGCH, "-t", title, "sh", "-c", f"exit {code}"], env=home.env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        jobs.append((proc, title, code))
    return jobs


# -- 1. the holder SIGKILLed at random moments of a burst ---------------------------
KILLS = 10
BURST_JOBS = 500


def test_holder_sigkilled_at_random_moments_of_a_500_job_burst_loses_nothing_and_the_other_host_takes_over(
        hosts: Hosts, receiver: Receiver, rng: Seeded, tmp_path: Path) -> None:
    began = time.monotonic()
    homes = hosts(2)
    homes[0].write_config(config(receiver.url, lease_timeout="2s"))
    logs = tmp_path / "logs"
    logs.mkdir()
    holder_at = 0
    holder = start_watch(homes[0], logs / "watch-0.log")
    started = [holder]
    burst = Burst(homes, BURST_JOBS, over=75.0, rng=rng)
    expected = set(burst.titles)
    takeovers: list[tuple[int, str]] = []  # (generation, host) after each kill
    takeover_s: list[float] = []
    killed_at: list[float] = []  # time.time() of each kill
    kills_in_burst = 0
    burst.start()
    try:
        for trial in range(KILLS):
            standby = homes[1 - holder_at]
            # Real jobs on the host that is not the holder's (pingch there sees a live lease
            # and starts nothing), then the kill at a random moment of the burst.
            jobs = pingch_jobs(standby, f"real{trial}", 2)
            expected.update(title for _p, title, _c in jobs)
            time.sleep(rng.uniform(0.2, 2.0))
            for proc, title, code in jobs:
                assert proc.wait(timeout=60) == code, title
            # A watcher one of them started (pingch's quick check errs towards starting one)
            # has given up before the kill, or it could be the one to take over.
            wait_until(partial(no_watcher, standby), 20, "no watcher on the standby host")
            found = lease_now(standby)
            assert found is not None and found[2] == holder.pid
            holder.kill()
            killed = time.monotonic()
            killed_at.append(time.time())
            holder.wait(timeout=20)
            kills_in_burst += burst.is_alive()
            # The other host's candidate: the check `notifyd ensure` makes, until the lease is free.
            wait_until(partial(lease_free_for, standby), 20, f"the lease to be free for {standby.host}")
            holder = start_watch(standby, logs / f"watch-{trial + 1}.log")
            started.append(holder)
            takeover_s.append(time.monotonic() - killed)
            now = lease_now(standby)
            assert now is not None
            takeovers.append((now[0], now[1]))
            assert now[1] == standby.host and now[0] == found[0] + 1, (found, now)
            # The killed host's watcher, started again, stands by: refused while the lease lives.
            again = subprocess.run([NOTIFYD, "watch"], env=homes[holder_at].env, capture_output=True,
                                   text=True, timeout=60)
            assert again.returncode != 0 and f"pid {holder.pid} on {standby.host}" in again.stderr, (
                again.stderr)
            holder_at = 1 - holder_at
        burst.finish()
        wait_all_told(receiver, expected, timeout=120)
    finally:
        burst.hurry.set()
        for proc in started:
            kill(proc)
    lost, dups = tally(expected, receiver)
    # Which kill each repeat followed (the last one before the second copy arrived).
    copies: dict[str, list[float]] = {}
    for at, body in receiver.arrivals():
        copies.setdefault(str(body["title"]).split()[1], []).append(at)
    repeats = Counter(sum(k < at for k in killed_at) for t in dups for at in sorted(copies[t])[1:])
    figures = report(
        "SIGKILL of the holder", seed=rng.seed_value, trials=KILLS, jobs=len(expected),
        kills_during_burst=kills_in_burst, lost=len(lost), duplicates=sum(n - 1 for n in dups.values()),
        duplicate_jobs=sorted(dups), repeats_after_kill={f"#{k}": n for k, n in sorted(repeats.items())},
        takeovers=" ".join(f"gen{g}@{h}" for g, h in takeovers),
        takeover_s=f"{min(takeover_s):.1f}-{max(takeover_s):.1f}", run_s=f"{time.monotonic() - began:.0f}")
    assert not lost, f"{figures}; never told: {sorted(lost)[:20]}"
    assert sum(n - 1 for n in dups.values()) <= KILLS, figures
    assert kills_in_burst == KILLS, f"{figures}: kills after the burst had ended prove less"
    assert [h for _g, h in takeovers] == [homes[(i + 1) % 2].host for i in range(KILLS)], figures
    assert max(takeover_s) < 2 + 10, f"{figures}: takeover beyond lease_timeout + 10 s"


# -- 2. the holder frozen past its lease, then thawed -----------------------------
FREEZES = 4


def _owns_port(pid: int, port: int) -> bool:
    try:
        return any(c.laddr and c.laddr.port == port for c in psutil.Process(pid).net_connections("tcp"))
    except psutil.Error:
        return False


def _lines(path: Path) -> int:
    try:
        return path.read_bytes().count(b"\n")
    except FileNotFoundError:
        return 0


def test_holder_frozen_past_its_lease_mid_send_sends_nothing_after_sigcont_and_every_job_is_told(
        hosts: Hosts, receiver: Receiver, rng: Seeded, tmp_path: Path) -> None:
    """SIGSTOP lands while the holder's post is at the webhook (its lease checked, the send in
    flight): the worst moment. The other host takes over; after SIGCONT the old watcher may finish
    the send it was in, and must then post nothing, write no inbox line and stop by itself.

    The freeze waits for a post with no earlier delivery to the webhook journalled and not yet
    saved, so the send in flight is the only one the new holder may repeat: deliveries journalled
    just before a takeover are the subject of
    test_deliveries_journalled_by_a_host_new_to_the_journal_dir_are_not_repeated_after_a_takeover."""
    began = time.monotonic()
    homes = hosts(2)
    homes[0].write_config(config(receiver.url, lease_timeout="2s"))
    logs = tmp_path / "logs"
    logs.mkdir()
    watchers: set[int] = set()
    # The journals as the file server holds them (not through a mount's cache).
    journals = tmp_path / "export" / homes[0].state_dir.relative_to(homes[0].root.parent) / "journal"
    freeze: dict[str, Any] = {"pid": 0, "after": 0, "host": ""}
    frozen = threading.Event()
    in_flight: list[str] = []

    def only_inbox_journalled(host: str) -> bool:
        try:
            lines = (journals / f"{host}.log").read_bytes().splitlines()
        except FileNotFoundError:
            return True
        return all(line.endswith(b" inbox") for line in lines)

    def answer(post: dict[str, Any]) -> Answer:
        port = post["client"][1]
        post["sender"] = next((pid for pid in list(watchers) if _owns_port(pid, port)), 0)
        if freeze["pid"] and post["sender"] == freeze["pid"]:
            freeze["after"] -= 1
            if freeze["after"] <= 0 and only_inbox_journalled(freeze["host"]):
                os.kill(freeze["pid"], signal.SIGSTOP)
                freeze["pid"] = 0
                in_flight.append(str((post["json"] or {}).get("title", "? ?")).split()[1])
                frozen.set()
        return Answer(200)

    receiver.answer = answer
    holder_at = 0
    holder = start_watch(homes[0], logs / "watch-0.log")
    started = [holder]
    watchers.add(holder.pid)
    burst = Burst(homes, 200, over=30.0, rng=rng)
    takeovers: list[tuple[int, str]] = []
    after_cont: list[int] = []  # posts by the thawed watcher after SIGCONT, per freeze
    inbox_growth: list[int] = []  # its inbox lines after SIGCONT, per freeze
    stopped_s: list[float] = []
    burst.start()
    try:
        for trial in range(FREEZES):
            old, old_home, standby = holder, homes[holder_at], homes[1 - holder_at]
            frozen.clear()
            freeze.update(after=rng.randint(1, 12), pid=old.pid, host=old_home.host)
            wait_until(frozen.is_set, 30, f"freeze {trial}: the holder to post")
            gen = lease_now(standby)
            assert gen is not None and gen[2] == old.pid
            inbox = old_home.state_dir / "inbox" / f"{old_home.host}.jsonl"
            inbox_before = _lines(inbox)
            wait_until(partial(lease_free_for, standby), 20, f"the lease to be free for {standby.host}")
            holder = start_watch(standby, logs / f"watch-{trial + 1}.log")
            started.append(holder)
            watchers.add(holder.pid)
            now = lease_now(standby)
            assert now is not None and now[0] == gen[0] + 1
            takeovers.append((now[0], now[1]))
            time.sleep(rng.uniform(0.5, 2.0))  # the new holder at work while the old one sleeps
            thawed = time.time()
            os.kill(old.pid, signal.SIGCONT)
            assert old.wait(timeout=20) == 0
            stopped_s.append(time.time() - thawed)
            time.sleep(0.5)
            after_cont.append(sum(1 for p in list(receiver.posts)
                                  if p.get("sender") == old.pid and p["arrived"] >= thawed))
            inbox_growth.append(_lines(inbox) - inbox_before)
            text = (logs / f"watch-{trial}.log").read_text(errors="replace")
            assert "lease lost" in text and "stopping without sending or saving anything more" in text, (
                text[-1500:])
            holder_at = 1 - holder_at
        burst.finish()
        wait_all_told(receiver, burst.titles, timeout=90)
    finally:
        burst.hurry.set()
        for proc in started:
            if proc.poll() is None:
                os.kill(proc.pid, signal.SIGCONT)
            kill(proc)
    lost, dups = tally(burst.titles, receiver)
    figures = report(
        "SIGSTOP past the lease", seed=rng.seed_value, trials=FREEZES, jobs=len(burst.titles),
        lost=len(lost), duplicates=sum(n - 1 for n in dups.values()), duplicate_jobs=sorted(dups),
        frozen_mid_send=in_flight, posts_after_sigcont=after_cont, inbox_lines_after_sigcont=inbox_growth,
        stopped_after_sigcont_s=f"{max(stopped_s):.1f}",
        takeovers=" ".join(f"gen{g}@{h}" for g, h in takeovers), run_s=f"{time.monotonic() - began:.0f}")
    assert not lost, f"{figures}; never told: {sorted(lost)[:20]}"
    assert after_cont == [0] * FREEZES, figures
    assert inbox_growth == [0] * FREEZES, figures
    # The one message each freeze caught in flight may be told again by the new holder, no other.
    assert set(dups) <= set(in_flight) and all(n == 2 for n in dups.values()), figures
    assert [h for _g, h in takeovers] == [homes[(i + 1) % 2].host for i in range(FREEZES)], figures


def test_a_new_holder_reads_the_previous_holders_journal_by_name_whatever_its_listing_shows(
        hosts: Hosts) -> None:
    """What a takeover needs from the journals, on two real mounts of one home.

    A new holder's listing of journal/ can be stale (sshfs serves it from a
    20 s cache, NFS for up to acdirmax): a journal the old holder made a
    moment ago may be missing from it, and what that host delivered since
    its last save would be sent again. So the hosts known to have held the
    lease are read by name (state.journals). The first version of this test
    killed a real holder mid-round and counted the repeat.
    """
    from notifyd import state  # the library itself, on each host's own mount
    from notifyd.records import OutboxEntry

    a, b = hosts(2)
    journal_a, journal_b = a.state_dir / "journal", b.state_dir / "journal"
    journal_a.mkdir(parents=True)
    entry = OutboxEntry(id="job-1:finish", title="t", body="", severity="success", created=1.0,
                        targets=["url-key"])
    state.save(state.State(outbox=[entry]), a.state_dir / "watcher-state.json", journal_a)
    listed_before = sorted(p.name for p in journal_a.glob("*.log"))  # host0 lists: its mount caches it
    state.Journal(journal_b, b.host).append("job-1:finish", "url-key")  # host1 delivers and journals
    by_listing = state.load(a.state_dir / "watcher-state.json", journal_a)
    by_name = state.load(a.state_dir / "watcher-state.json", journal_a, hosts={b.host})
    report("journal by name", listed_before=listed_before,
           found_by_listing=not by_listing.outbox, found_by_name=not by_name.outbox)
    assert by_name.outbox == [] and by_name.stats.delivered == 1


# -- 3. a full disk under the state dir --------------------------------------------
PAGE = 4096  # tmpfs charges whole pages: an append that fits in the last one needs no free space


@pytest.fixture
def small_state_dir(home: Home) -> Iterator[Path]:
    """The home's state dir ($NOTIFYD_STATE_DIR) on a tmpfs of 4 MB."""
    try:
        with tmpfs(home.state_dir, "4m") as mounted:
            home.env["NOTIFYD_STATE_DIR"] = str(mounted)
            yield mounted
            home.kill_watchers()
    except PermissionError as exc:
        pytest.skip(reason=f"a full disk needs a tmpfs mount, which needs root (CAP_SYS_ADMIN): {exc}")


def _leave_room(home: Home, room: int) -> list[str]:
    """Finished jobs, written as pingch would, until the spool's last page has exactly `room` bytes
    free: once the disk is full, that is all that still fits there. Their titles."""
    titles: list[str] = []
    while True:
        size = home.spool.stat().st_size if home.spool.exists() else 0
        want = (PAGE - room - size) % PAGE  # bytes to write
        titles.append(f"pad-{len(titles)}")
        _start, finish = job_events(home, titles[-1], time.time() - 1, time.time())
        base = len(encoded(finish))
        # The command line is free text of one byte a character: stretched to fit exactly, or
        # by 1400 to come nearer (a line cannot take a whole page).
        stretch = want - base if base <= want <= base + 1400 else 1400
        write_event(home, {**finish, "cmd": "true" + "x" * stretch})
        if stretch == want - base:
            return titles


Hold = Callable[[Home, str, Path], subprocess.Popen[str]]


@pytest.fixture
def hold() -> Iterator[Hold]:
    """hold(home, title, gate): a real pingch job that runs until `gate` exists, its start already
    in the spool; any still running at the end of the test is killed."""
    held: list[subprocess.Popen[str]] = []

    def start(home: Home, title: str, gate: Path) -> subprocess.Popen[str]:
        before = home.spool.stat().st_size if home.spool.exists() else 0
        proc = subprocess.Popen(
            [PINGCH, "-t", title, "sh", "-c", f"until [ -e {gate} ]; do sleep 0.05; done"],
            env=home.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        held.append(proc)
        wait_until(lambda: home.spool.exists() and home.spool.stat().st_size > before, 20,
                   f"{title}'s start event")
        return proc

    yield start
    for proc in held:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=20)


def test_full_state_dir_jobs_keep_their_status_and_output_and_the_watcher_catches_up_once_space_is_back(
        home: Home, receiver: Receiver, small_state_dir: Path, hold: Hold, tmp_path: Path) -> None:
    began = time.monotonic()
    home.write_config(config(receiver.url))
    watcher = WatcherProc(home).start()
    expected = set()
    for i in range(2):
        assert home.pingch("-t", f"before-{i}", "true").returncode == 0
        expected.add(f"before-{i}")
    receiver.wait_for(2)
    across_full = hold(home, "ends-while-full", tmp_path / "gate-full")
    across_back = hold(home, "ends-after", tmp_path / "gate-after")
    # The spool keeps room for exactly one more job, written as pingch would once the disk is
    # full: the watcher then has an event to tell and no room to save, log or write the inbox.
    last_start, last_finish = job_events(home, "while-full", time.time(), time.time() + 0.1)
    expected.update(_leave_room(home, len(encoded(last_start)) + len(encoded(last_finish))))
    filler = fill_up(small_state_dir)
    assert os.statvfs(small_state_dir).f_bavail == 0
    write_event(home, last_start)
    write_event(home, last_finish)
    assert home.spool.stat().st_size % PAGE == 0
    expected.add("while-full")
    # Jobs while the disk is full: nothing of them fits; each runs and exits as without pingch.
    full_size = home.spool.stat().st_size
    warned = []
    for code in (0, 3, 1):
        p = home.pingch("-t", f"full-{code}", "sh", "-c", f"echo out {code}; echo err >&2; exit {code}")
        assert p.returncode == code and p.stdout == f"out {code}\n", p
        assert "err\n" in p.stderr, p.stderr
        warned.append("no notification will come for it" in p.stderr and "No space left" in p.stderr)
    (tmp_path / "gate-full").touch()
    _out, err = across_full.communicate(timeout=30)
    assert across_full.returncode == 0 and "no notification will come for it" in err, err
    assert home.spool.stat().st_size == full_size
    time.sleep(2.0)  # rounds with no room: the watcher must live through them
    assert watcher.alive
    # Space back: the job held across the full disk ends, and new ones run.
    freed = time.time()
    filler.unlink()
    (tmp_path / "gate-after").touch()
    _out, err = across_back.communicate(timeout=30)
    assert across_back.returncode == 0 and not err, err
    expected.add("ends-after")
    for i in range(2):
        assert home.pingch("-t", f"after-{i}", "true").returncode == 0
        expected.add(f"after-{i}")
    try:
        wait_all_told(receiver, expected, timeout=30)
    finally:
        watcher.stop()
    lost, dups = tally(expected | {"full-0", "full-3", "full-1", "ends-while-full"}, receiver)
    log = (home.root / "watcher.out").read_text(errors="replace")
    figures = report(
        "full state dir", jobs_written=len(expected), jobs_not_written=4, pingch_warned=sum(warned) + 1,
        lost=len(lost - {"full-0", "full-3", "full-1", "ends-while-full"}),
        told_though_not_written=sorted({"full-0", "full-3", "full-1", "ends-while-full"} - lost),
        duplicates=sum(n - 1 for n in dups.values()), rounds_failed=log.count("error in a watcher round"),
        told_while_full=sorted(str(b["title"]).split()[1] for at, b in receiver.arrivals() if at < freed
                               and str(b["title"]).split()[1] == "while-full"),
        run_s=f"{time.monotonic() - began:.0f}")
    assert all(warned), figures
    assert lost == {"full-0", "full-3", "full-1", "ends-while-full"}, figures
    assert not dups, figures
    assert "No space left on device" in log, f"{figures}: the watcher never met the full disk"


def test_an_event_cut_short_by_a_full_disk_does_not_swallow_the_next_event(
        home: Home, receiver: Receiver, small_state_dir: Path, hold: Hold, tmp_path: Path) -> None:
    home.write_config(config(receiver.url))
    watcher = WatcherProc(home).start()
    held = hold(home, "held", tmp_path / "gate")
    _leave_room(home, 100)  # less than any event: the next one is cut at 100 bytes
    filler = fill_up(small_state_dir)
    cut = home.pingch("-t", "cut", "true")
    assert cut.returncode == 0 and "short write" in cut.stderr, cut.stderr
    filler.unlink()
    (tmp_path / "gate").touch()
    _out, err = held.communicate(timeout=30)
    assert held.returncode == 0 and not err, err  # its finish was written whole
    try:
        wait_all_told(receiver, {"held"}, timeout=5)
    finally:
        watcher.stop()
    tail = home.spool.read_bytes().rsplit(b"\n", 2)[-2][:160]
    report("event cut by a full disk", told=dict(told(receiver)), spool_last_line_starts=tail)
    assert told(receiver)["held"] == 1, f"the spool's last line starts: {tail!r}"


def test_nothing_is_sent_while_the_state_cannot_be_saved_and_a_crash_then_repeats_nothing(
        home: Home, receiver: Receiver, small_state_dir: Path) -> None:
    # The lease file, in the full state dir too, cannot be rewritten either: every round after a
    # heartbeat falls due fails at once. The default lease_timeout (a heartbeat every 10 s) leaves
    # the rounds in between free to run, and the disk fills just after a heartbeat.
    home.write_config(config(receiver.url, lease_timeout="60s"))
    watcher = WatcherProc(home).start()
    jobs = [job_events(home, f"unsaved-{i}", time.time(), time.time() + 0.1) for i in range(3)]
    pads = _leave_room(home, sum(len(encoded(ev)) for job in jobs for ev in job))
    wait_until(partial(all_told, receiver, set(pads)), 20, "the pad jobs")
    time.sleep(1.0)  # their deliveries saved, the journal emptied
    lease_file = next((small_state_dir / "lease").glob("lease.*"))
    beat = lease_file.stat().st_mtime_ns
    wait_until(lambda: lease_file.stat().st_mtime_ns != beat, 20, "a heartbeat")
    filler = fill_up(small_state_dir)
    for job in jobs:  # what still fits: three jobs, as pingch writes them
        for ev in job:
            write_event(home, ev)
    unsaved = {f"unsaved-{i}" for i in range(3)}
    time.sleep(3.0)  # some fifteen rounds: each reads the jobs and cannot save them
    sent_while_full = sum(told(receiver)[t] for t in unsaved)
    assert b"unsaved-" not in (small_state_dir / "watcher-state.json").read_bytes()
    watcher.kill()  # a crash, before there is room again
    filler.unlink()
    again = WatcherProc(home).start()
    try:
        wait_all_told(receiver, unsaved, timeout=20)
    finally:
        again.stop()
    counts = told(receiver)
    repeated = sum(counts[t] - 1 for t in unsaved)
    report("killed while the disk is full", sent_while_full=sent_while_full,
           repeated_after_restart=repeated, bound=0)
    assert sent_while_full == 0  # nothing leaves that the state file does not hold
    assert repeated == 0, dict(counts)


# -- 4. the state file cut or replaced by garbage -----------------------------------
STATE_TRIALS = ("cut", "cut", "cut", "cut", "random bytes", "JSON of another shape")


def test_state_file_cut_or_garbage_is_set_aside_rebuilt_from_the_inbox_and_nothing_is_told_twice(
        home: Home, receiver: Receiver, rng: Seeded) -> None:
    began = time.monotonic()
    home.write_config(config(receiver.url))
    state_file = home.state_dir / "watcher-state.json"
    watcher = WatcherProc(home).start()
    expected: set[str] = set()
    cuts: list[str] = []
    try:
        for trial, kind in enumerate(STATE_TRIALS):
            across_start, across_finish = job_events(home, f"across-{trial}", time.time(), time.time() + 1)
            write_event(home, across_start)  # a job running when the watcher stops
            for i in range(2):
                assert home.pingch("-t", f"up-{trial}-{i}", "true").returncode == 0
                expected.add(f"up-{trial}-{i}")
            wait_until(partial(all_told, receiver, expected), 20, f"trial {trial}: the jobs so far")
            watcher.stop()
            assert watcher.proc is not None and watcher.proc.returncode == 0
            # While it is down: jobs end (written as pingch would: pingch would start a watcher).
            write_event(home, across_finish)
            for i in range(2):
                _s, finish = job_events(home, f"down-{trial}-{i}", time.time() - 1, time.time())
                write_event(home, finish)
            expected |= {f"across-{trial}", f"down-{trial}-0", f"down-{trial}-1"}
            saved = state_file.read_bytes()
            if kind == "cut":
                at = rng.randrange(len(saved))
                broken = saved[:at]
                cuts.append(f"{at}/{len(saved)}")
            elif kind == "random bytes":
                broken = rng.randbytes(rng.randrange(1, 4096))
            else:
                broken = b'{"v": 1, "running": [1, 2], "outbox": "none"}'
            for old in home.state_dir.glob("watcher-state.broken-*.json"):
                old.unlink()
            state_file.write_bytes(broken)
            watcher = WatcherProc(home).start()
            aside = wait_until(lambda: list(home.state_dir.glob("watcher-state.broken-*.json")), 10,
                               "the broken state set aside")
            assert [p.read_bytes() for p in aside] == [broken], kind
            wait_until(partial(all_told, receiver, expected), 30, f"trial {trial}: every job told")
        time.sleep(2.0)
    finally:
        watcher.stop()
    lost, dups = tally(expected, receiver)
    log = (home.root / "watcher.out").read_text(errors="replace")
    figures = report(
        "state file cut or garbage", seed=rng.seed_value, trials=len(STATE_TRIALS), cut_at=cuts,
        jobs=len(expected), lost=len(lost), duplicates=sum(n - 1 for n in dups.values()),
        rebuilt_from_inbox=log.count("rebuilding from the inbox"), run_s=f"{time.monotonic() - began:.0f}")
    assert not lost and not dups, figures
    assert log.count("rebuilding from the inbox") == len(STATE_TRIALS), figures


# -- 5. an endpoint that flaps ---------------------------------------------------------
APPRISE_TIMEOUT = 4.0  # Apprise's socket read timeout (URLBase.socket_read_timeout)
RETRY_INITIAL, RETRY_MAX, POLL = 0.5, 3.0, 0.2
# (seconds, how the endpoint answers then); after them it answers 200 at once.
FLAPS: tuple[tuple[float, Answer, str], ...] = (
    (5.0, Answer(500), "500"),
    (8.0, Answer(429, retry_after=6), "429 Retry-After: 6"),
    (4.0, Answer(200, after=2.5), "200 after 2.5 s (within the timeout)"),
    (8.0, Answer(hang=True), "never answers"),
    (12.0, Answer(200, after=10.0), "200 after 10 s (past the timeout)"),
)
FLAP_JOBS = 24


def test_endpoint_that_flaps_gets_every_job_exactly_once_within_the_backoff_after_recovery(
        home: Home, receiver: Receiver) -> None:
    import apprise

    assert apprise.URLBase.socket_read_timeout == APPRISE_TIMEOUT
    began = time.monotonic()
    home.write_config(config(receiver.url, retry_initial=f"{RETRY_INITIAL}s", retry_max=f"{RETRY_MAX}s",
                             poll_interval=f"{POLL}s", lease_timeout="10s"))
    watcher = WatcherProc(home).start()
    t0 = time.time()
    edges = [sum(d for d, _a, _w in FLAPS[: i + 1]) for i in range(len(FLAPS))]
    recovered = t0 + edges[-1]

    def answer(post: dict[str, Any]) -> Answer:
        at = post["arrived"] - t0
        for edge, (_d, how, what) in zip(edges, FLAPS, strict=True):
            if at < edge:
                post["phase"] = what
                return how
        post["phase"] = "recovered"
        return Answer(200)

    receiver.answer = answer
    expected = set()
    try:
        for i in range(FLAP_JOBS):
            wait = t0 + 1.25 * i - time.time()
            if wait > 0:
                time.sleep(wait)
            assert home.pingch("-t", f"flap-{i:02d}", "sh", "-c", f"exit {i % 3}").returncode == i % 3
            expected.add(f"flap-{i:02d}")
        time.sleep(max(0.0, recovered - time.time()))
        pending = len(expected - set(told(receiver)))
        # The last try before the recovery may hang until Apprise gives up; its failure puts
        # the next try at most retry_max later (records.Backoff: doubling from retry_initial up
        # to retry_max), which the next round (within poll_interval) makes; then the pending
        # messages go one after another (0.1 s each allowed), and a second for the machine.
        bound = APPRISE_TIMEOUT + RETRY_MAX + POLL + 0.1 * pending + 1.0
        wait_all_told(receiver, expected, timeout=bound + 30)
    finally:
        watcher.stop()
    lost, dups = tally(expected, receiver)
    with receiver.lock:
        posts = sorted(receiver.posts, key=lambda p: p["arrived"])
    finished = {str(ev["title"]): float(ev["ts"]) for ev in home.events() if ev["ev"] == "finish"}
    delivered = {str(body["title"]).split()[1]: at for at, body in receiver.arrivals()}
    after_recovery = [delivered[t] - max(recovered, finished[t]) for t in delivered if t in finished]
    worst = max(after_recovery)
    gaps = [b["arrived"] - a["arrived"] for a, b in pairwise(posts) if a["arrived"] < recovered]
    after_429 = [b["arrived"] - a["answered"] for a, b in pairwise(posts) if a["status"] == 429]
    answers = Counter(f"{p.get('phase')}→{p['status']}" for p in posts)
    gap_bound = APPRISE_TIMEOUT + RETRY_MAX + POLL + 1.0  # one try's timeout, the longest wait, a round
    # While the first phase fails, each message waits out its own backoff after each failure
    # (the k-th: min(retry_max, retry_initial * 2^(k-1))) and the URL's, once two messages in a
    # row failed: never sooner than its own.
    by_message: dict[str, list[float]] = {}
    for post in posts:
        if post.get("phase") == FLAPS[0][2]:
            by_message.setdefault(str((post["json"] or {}).get("title")), []).append(post["arrived"])
    backoff = [b - a for tries in by_message.values() for a, b in pairwise(tries)]
    documented = [min(RETRY_MAX, RETRY_INITIAL * 2**k) for tries in by_message.values()
                  for k in range(len(tries) - 1)]
    figures = report(
        "flapping endpoint", flapping_s=edges[-1], jobs=len(expected), pending_at_recovery=pending,
        lost=len(lost), duplicates=sum(n - 1 for n in dups.values()),
        worst_delay_after_recovery_s=f"{worst:.2f} (bound {bound:.2f})",
        worst_gap_between_tries_s=f"{max(gaps):.2f} (bound {gap_bound:.2f})",
        backoff_while_500_s=" ".join(f"{g:.2f}/{d:g}" for g, d in zip(backoff, documented, strict=True)),
        retry_after_429_s=f"{min(after_429):.2f}-{max(after_429):.2f} (asked 6)" if after_429 else "none",
        answers=dict(answers), run_s=f"{time.monotonic() - began:.0f}")
    assert not lost and not dups, figures
    assert worst <= bound, figures
    assert max(gaps) <= gap_bound, figures
    assert len(backoff) >= 1, figures
    assert all(g >= d - 0.15 for g, d in zip(backoff, documented, strict=True)), figures
    assert pending > 0, f"{figures}: nothing waited for the recovery"
