"""The fixtures: an isolated home, a local webhook receiver, a real watcher, shared hosts.

The helpers they hand out (Home, Receiver, WatcherProc...) live in
tests/harness.py, which the tests and bench/ import as well.
"""

from __future__ import annotations

import os
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
    write_crontab,
)
from hypothesis import settings

# tests/fuzz/ (its hostile.py says more): "ci" draws the same cases on every run;
# HYPOTHESIS_PROFILE=long draws twenty times as many, new ones each run. No
# example database: a failure prints the blob that replays it.
settings.register_profile("ci", derandomize=True, deadline=None, database=None, print_blob=True)
settings.register_profile("long", max_examples=2000, deadline=None, database=None, print_blob=True)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


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
