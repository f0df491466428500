"""Shared fixtures: an isolated home, a local webhook receiver, a real watcher process.

Everything runs real: the installed `pingch` and `notifyd` console scripts,
watcher processes, and an HTTP server on 127.0.0.1 that Apprise posts to
through json://. Nothing leaves the loopback interface.
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
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import psutil
import pytest

BIN = Path(sys.executable).parent
PINGCH = str(BIN / "pingch")
NOTIFYD = str(BIN / "notifyd")


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


@pytest.fixture
def home(tmp_path: Path) -> Iterator[Home]:
    root = tmp_path / "home"
    root.mkdir()
    host = f"h{uuid.uuid4().hex[:6]}"
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("NOTIFYD_", "XDG_", "APPRISE_"))}
    env.update(HOME=str(root), NOTIFYD_HOST=host, USER=env.get("USER", "tester"), TZ="UTC")
    h = Home(root, env, host)
    yield h
    h.kill_watchers()


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


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    rec = Receiver()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", 0))
            raw = self.rfile.read(length)
            try:
                body = json.loads(raw)
            except ValueError:
                body = None
            time.sleep(rec.delay)
            with rec.lock:
                status = rec.status
                rec.posts.append({"path": self.path, "status": status, "json": body,
                                  "raw": raw, "headers": dict(self.headers)})
            self.send_response(status)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    rec.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield rec
    server.shutdown()
    server.server_close()


FAST = """
[watcher]
poll_interval = 0.2s
lease_timeout = 5s
retry_initial = 0.3s
retry_max = 1s
"""


# One message per job, as before digests existed: tests of digests and the
# rate budget (tests/test_routing.py) set their own.
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


@pytest.fixture
def watcher(home: Home, receiver: Receiver) -> Iterator[WatcherProc]:
    """A real `notifyd watch` posting to the receiver, with fast test timings."""
    home.write_config(fast_config(receiver.url))
    w = WatcherProc(home).start()
    yield w
    w.stop()


# -- the user's real crontab (tests/test_cron.py, tests/test_init.py) ---------------
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
