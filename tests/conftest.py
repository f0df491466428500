"""The fixtures: an isolated home, a local webhook receiver, a real watcher, shared hosts.

The helpers they hand out (Home, Receiver, WatcherProc...) live in
tests/harness.py, which the tests and bench/ import as well.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from harness import (
    CRONTAB,
    Home,
    Receiver,
    WatcherProc,
    fast_config,
    new_home,
    read_crontab,
    serve_receiver,
    watchers_under,
    write_crontab,
)
from hypothesis import settings

# tests/fuzz/ (its hostile.py says more): "ci" draws the same cases on every run;
# HYPOTHESIS_PROFILE=long draws twenty times as many, new ones each run. No
# example database: a failure prints the blob that replays it.
settings.register_profile("ci", derandomize=True, deadline=None, database=None, print_blob=True)
settings.register_profile("long", max_examples=2000, deadline=None, database=None, print_blob=True)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


# -- the suite as people run it: in the background, and leaving nothing behind ----------------
def _ignored(_signum: int, _frame: object) -> None:
    """SIG_IGN in all but one thing: exec resets a handler to the default (see below)."""


def pytest_configure(config: pytest.Config) -> None:
    """A run started in the background (`nohup`, `cmd &` in a script, `make -j`, CI) inherits
    SIGHUP, SIGINT and SIGQUIT ignored, and pingch rightly keeps an ignored signal ignored
    for its job, so the tests that send one would see it do nothing. A handler that does
    nothing keeps this run as immune as whoever started it wanted, and unlike SIG_IGN it
    is not inherited: every process the tests start begins with default dispositions, as
    from an interactive shell. The test that an inherited SIG_IGN stays ignored
    (tests/pingch/test_pingch.py) ignores the signal itself, so it still tests that."""
    for sig in (signal.SIGHUP, signal.SIGINT, signal.SIGQUIT):
        if signal.getsignal(sig) == signal.SIG_IGN:
            signal.signal(sig, _ignored)


_SUITE_TEMP: list[Path] = []


@pytest.fixture(scope="session", autouse=True)
def suite_temp(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """This run's temp root, where every home of the suite is (tests/test_bench.py's too)."""
    base = tmp_path_factory.getbasetemp()
    _SUITE_TEMP.append(base)
    return base


@pytest.hookimpl(trylast=True)  # after the fixtures' teardown, which stops the watchers
def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """No watcher the suite started may outlive it: those left are killed and named, and
    the run fails. A watcher still stopping gets 5 s."""
    if not _SUITE_TEMP:
        return
    deadline = time.monotonic() + 5
    while (left := watchers_under(_SUITE_TEMP[0])) and time.monotonic() < deadline:
        time.sleep(0.1)
    if not left:
        return
    for pid, _cmd, _home in left:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    report = session.config.pluginmanager.get_plugin("terminalreporter")
    lines = [f"{len(left)} watcher(s) started by the suite were still running (killed now):",
             *(f"  pid {pid}, HOME={home}: {cmd}" for pid, cmd, home in left)]
    if report is not None:
        report.write_sep("=", "watchers left running", red=True)
        for line in lines:
            report.write_line(line, red=True)
    session.exitstatus = pytest.ExitCode.TESTS_FAILED


@pytest.fixture
def home(tmp_path: Path) -> Iterator[Home]:
    h = new_home(tmp_path / "home")
    yield h
    h.kill_watchers()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with serve_receiver() as rec:
        yield rec


@pytest.fixture
def watcher(home: Home, receiver: Receiver) -> Iterator[WatcherProc]:
    """A real `notifyd watch` posting to the receiver, with fast test timings."""
    home.write_config(fast_config(receiver.url))
    w = WatcherProc(home).start()
    yield w
    w.stop()


# -- the user's real crontab (tests/setup/test_cron.py, tests/cli/test_init.py) ---------------
@pytest.fixture
def crontab() -> Iterator[None]:
    """This user's real crontab, put back byte for byte after the test."""
    saved = read_crontab() if CRONTAB else None
    yield
    if CRONTAB is not None:
        write_crontab(saved)


# -- several hosts, one home (tests/sharedfs.py) ---------------------------------
import sharedfs  # noqa: E402  (the harness; its fixture is re-exported below)

ssh_server = sharedfs.ssh_server


@pytest.fixture
def hosts(ssh_server: sharedfs.SshServer, tmp_path: Path) -> Iterator[Callable[[int], list[Home]]]:
    """make(n): n simulated hosts sharing one home over n sshfs mounts of one export."""
    export = tmp_path / "export"
    (export / "home").mkdir(parents=True)
    mounts: list[Path] = []
    made: list[Home] = []

    def make(n: int) -> list[Home]:
        for i in range(n):
            mountpoint = tmp_path / f"mnt{i}"
            ssh_server.mount(export, mountpoint)
            mounts.append(mountpoint)
            env = {k: v for k, v in os.environ.items()
                   if not k.startswith(("NOTIFYD_", "XDG_", "APPRISE_"))}
            host = f"host{i}"
            root = mountpoint / "home"
            env.update(HOME=str(root), NOTIFYD_HOST=host, USER=env.get("USER", "tester"), TZ="UTC")
            made.append(Home(root, env, host))
        return made

    yield make
    for h in made:
        h.kill_watchers()
    for m in mounts:
        sharedfs.unmount(m)
