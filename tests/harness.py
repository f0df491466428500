"""Test helpers shared by the suite and by bench/: an isolated home, a webhook, a real watcher.

Everything runs real: the installed `pingch` and `notifyd` console scripts,
watcher processes, and an HTTP server on 127.0.0.1 that Apprise posts to
through json://. Nothing leaves the loopback interface. The fixtures that
hand these to tests are in conftest.py.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil
import pytest

REPO = Path(__file__).resolve().parent.parent  # the checkout
BIN = Path(sys.executable).parent
PINGCH = str(BIN / "pingch")
NOTIFYD = str(BIN / "notifyd")
PY = sys.executable


def wait_until(predicate: Callable[[], Any], timeout: float = 15.0, what: str = "condition") -> Any:
    """Poll `predicate` until it returns something truthy; fail the test after `timeout` s."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.05)


@dataclass
class Home:
    """An isolated user: HOME, XDG dirs and host name of its own."""

    root: Path
    env: dict[str, str]
    host: str

    @property
    def state_dir(self) -> Path:
        return self.root / ".local" / "state" / "notifyd"

    @property
    def config_file(self) -> Path:
        return self.root / ".config" / "notifyd" / "notifyd.conf"

    @property
    def spool(self) -> Path:
        return self.state_dir / "events" / f"{self.host}.jsonl"

    def write_config(self, text: str, mode: int = 0o600) -> Path:
        self.config_file.parent.mkdir(parents=True, exist_ok=True)
        self.config_file.write_text(text)
        self.config_file.chmod(mode)
        return self.config_file

    def events(self) -> list[dict[str, Any]]:
        if not self.spool.exists():
            return []
        return [json.loads(line) for line in self.spool.read_text().splitlines() if line.strip()]

    def pingch(self, *args: str, timeout: float = 60, **kw: Any) -> subprocess.CompletedProcess[str]:
        return subprocess.run([PINGCH, *args], env=self.env, capture_output=True, text=True,
                              timeout=timeout, **kw)

    def notifyd(self, *args: str, timeout: float = 60) -> tuple[int, str, str]:
        """Run the CLI; (exit code, stdout, stderr)."""
        p = subprocess.run([NOTIFYD, *args], env=self.env, capture_output=True, text=True,
                           timeout=timeout)
        return p.returncode, p.stdout, p.stderr

    def watcher_pids(self) -> list[int]:
        """Every live watcher process started for this home, in any way."""
        pids = []
        for proc in psutil.process_iter(["cmdline", "environ"]):
            try:
                cmd = proc.info["cmdline"] or []
                env = proc.info["environ"] or {}
            except (psutil.Error, KeyError):
                continue
            if "watch" in cmd and env.get("HOME") == self.env["HOME"] and proc.status() != "zombie":
                pids.append(proc.pid)
        return pids

    def kill_watchers(self) -> None:
        for _ in range(3):
            for pid in self.watcher_pids():
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            time.sleep(0.1)


@dataclass
class Receiver:
    """A local webhook: records every POST; answers `status` (default 200)."""

    port: int = 0
    posts: list[dict[str, Any]] = field(default_factory=list)
    status: int = 200
    delay: float = 0.0  # seconds before answering, to make deliveries slow
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def url(self) -> str:
        return f"json://127.0.0.1:{self.port}/hook"

    def bodies(self) -> list[dict[str, Any]]:
        with self.lock:
            return [p["json"] for p in self.posts if p["status"] < 300 and p["json"] is not None]

    def wait_for(self, count: int, timeout: float = 20.0) -> list[dict[str, Any]]:
        wait_until(lambda: len(self.bodies()) >= count, timeout, f"{count} messages at the receiver")
        return self.bodies()


FAST = """
[watcher]
poll_interval = 0.2s
lease_timeout = 5s
retry_initial = 0.3s
retry_max = 1s
"""


# One message per job, as before digests existed: tests of digests and the
# rate budget (tests/e2e/test_routing.py) set their own.
NO_DIGESTS = "digest_after = 100000\nrate = 100000/min\n"


def fast_config(*urls: str) -> str:
    """A config for tests: quick polling and retries, the given URLs, one message per job."""
    url_block = "".join(f"    {u}\n" for u in urls)
    return (f"[notify]\nurls =\n{url_block}{NO_DIGESTS}\n" if urls else "") + FAST


@dataclass
class WatcherProc:
    home: Home
    proc: subprocess.Popen[bytes] | None = None

    def start(self) -> WatcherProc:
        log = self.home.root / "watcher.out"
        self.proc = subprocess.Popen([NOTIFYD, "watch"], env=self.home.env,
                                     stdout=log.open("ab"), stderr=subprocess.STDOUT)
        lease_dir = self.home.state_dir / "lease"

        def holds() -> bool:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise AssertionError(f"watcher exited with {self.proc.returncode}: {log.read_text()}")
            return any(f"pid={self.proc.pid}\n" in f.read_text() for f in lease_dir.glob("lease.*"))

        wait_until(holds, 20, "the watcher to take the lease")
        return self

    def kill(self, sig: int = signal.SIGKILL) -> int:
        assert self.proc is not None
        self.proc.send_signal(sig)
        return self.proc.wait(timeout=20)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None


CRONTAB = shutil.which("crontab")
needs_crontab = pytest.mark.skipif(
    CRONTAB is None,
    reason="crontab (Debian package cron) is not installed; tests/system-deps.sh installs it as root")


def read_crontab() -> str | None:
    """This user's crontab, None when there is none."""
    assert CRONTAB is not None
    p = subprocess.run([CRONTAB, "-l"], capture_output=True, text=True)
    return p.stdout if p.returncode == 0 else None


def write_crontab(text: str | None) -> None:
    """Replace this user's crontab; None removes it."""
    assert CRONTAB is not None
    if text is None:
        subprocess.run([CRONTAB, "-r"], capture_output=True)
    else:
        subprocess.run([CRONTAB, "-"], input=text, text=True, check=True)


# -- pingch's events and imports -----------------------------------------------
def by_kind(home: Home, kind: str) -> list[dict[str, Any]]:
    return [ev for ev in home.events() if ev["ev"] == kind]


def only(home: Home, kind: str) -> dict[str, Any]:
    found = by_kind(home, kind)
    assert len(found) == 1, f"expected one {kind} event, got {home.events()}"
    return found[0]


def start_and_finish(home: Home) -> tuple[dict[str, Any], dict[str, Any]]:
    return only(home, "start"), only(home, "finish")


def imported_modules(code: str, env: dict[str, str]) -> set[str]:
    p = subprocess.run([PY, "-X", "importtime", "-c", code], env=env, capture_output=True,
                       text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    names = set()
    for line in p.stderr.splitlines():
        if line.startswith("import time:") and "|" in line:
            name = line.rsplit("|", 1)[1].strip()
            if name != "imported package":
                names.add(name)
    return names


def lease_holder(home: Home) -> int:
    for f in (home.state_dir / "lease").glob("lease.*"):
        for line in f.read_text().splitlines():
            if line.startswith("pid="):
                pid = int(line[4:])
                try:
                    os.kill(pid, 0)
                except ProcessLookupError:
                    continue
                return pid
    return 0
