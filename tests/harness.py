"""Test helpers shared by the suite and by bench/: an isolated home, a webhook, a real watcher.

Everything runs real: the installed `pingch` and `notifyd` console scripts,
watcher processes, and an HTTP server on 127.0.0.1 that Apprise posts to
through json://. Nothing leaves the loopback interface. The fixtures that
hand these to tests are in conftest.py; `new_home()` and `serve_receiver()`
work at any fixture scope and in bench/, which imports this module.
Standard library only (bench/ runs with any python3); psutil is imported
only by Home.watcher_pids, pytest only by tests/needs.py, notifyd only by
the chaos helpers at the end, when they are called.
"""

from __future__ import annotations

import errno
import json
import os
import select
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

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
        import psutil

        pids = []
        for proc in psutil.process_iter(["cmdline", "environ"]):
            try:
                cmd = proc.info["cmdline"] or []
                env = proc.info["environ"] or {}
            except (psutil.Error, KeyError):
                continue
            # `notifyd watch` in the foreground, or a background watcher by its title.
            named = "watch" in cmd or cmd[:1] == [f"notifyd watcher ({self.env['USER']})"]
            if named and env.get("HOME") == self.env["HOME"] and proc.status() != "zombie":
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


# Where a process's directories come from: a watcher belongs to `root` if any is in it.
_DIR_VARIABLES = (b"HOME", b"NOTIFYD_STATE_DIR", b"XDG_STATE_HOME")


def watchers_under(root: Path) -> list[tuple[int, str, str]]:
    """(pid, command line, HOME) of every live watcher whose HOME or state dir is `root` or inside it.

    Read from /proc, standard library only (bench/ uses it too). A watcher is
    a process running notifyd's `watch` verb (`notifyd watch`, or the entry
    pingch and ensure spawn), or one titled "notifyd watcher".
    """
    top = os.fsencode(root)
    found = []
    for name in os.listdir("/proc"):
        if not name.isdigit() or int(name) == os.getpid():
            continue
        try:
            with open(f"/proc/{name}/cmdline", "rb") as f:
                args = f.read().split(b"\0")
            with open(f"/proc/{name}/environ", "rb") as f:
                env = dict(v.partition(b"=")[::2] for v in f.read().split(b"\0") if b"=" in v)
            with open(f"/proc/{name}/stat", "rb") as f:
                zombie = f.read().rsplit(b")", 1)[1].split()[0] == b"Z"
        except (OSError, IndexError):
            continue  # gone meanwhile, or not ours to read
        if zombie or not (b"watch" in args or any(b"notifyd watcher" in a for a in args)):
            continue
        if any(env.get(k, b"") == top or env.get(k, b"").startswith(top + b"/") for k in _DIR_VARIABLES):
            found.append((int(name), b" ".join(a for a in args if a).decode(errors="replace"),
                          env.get(b"HOME", b"").decode(errors="replace")))
    return found


def new_home(root: Path, host: str = "") -> Home:
    """An isolated user under `root`: HOME, XDG dirs and a host name of its own, UTC."""
    root.mkdir(parents=True, exist_ok=True)
    host = host or f"h{uuid.uuid4().hex[:6]}"
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("NOTIFYD_", "XDG_", "APPRISE_"))}
    env.update(HOME=str(root), NOTIFYD_HOST=host, USER=env.get("USER") or "tester", TZ="UTC")
    return Home(root, env, host)


@dataclass
class Receiver:
    """A local webhook: records every POST (with its arrival time); answers `status` (default 200),
    or as `answer` says."""

    port: int = 0
    posts: list[dict[str, Any]] = field(default_factory=list)
    status: int = 200
    delay: float = 0.0  # seconds before answering, to make deliveries slow
    lock: threading.Lock = field(default_factory=threading.Lock)
    # A script instead of `status` and `delay`: called with each post (path,
    # json, client, arrived...) before it is answered, it says how (Answer).
    answer: Callable[[dict[str, Any]], Answer] | None = None

    @property
    def url(self) -> str:
        return self.url_for("hook")

    def url_for(self, path: str) -> str:
        """A json:// URL posting to /PATH here: one receiver can stand for several URLs."""
        return f"json://127.0.0.1:{self.port}/{path}"

    def bodies(self, path: str | None = None) -> list[dict[str, Any]]:
        """The JSON bodies accepted (for one /PATH, or all)."""
        return [body for _t, body in self.arrivals(path)]

    def arrivals(self, path: str | None = None) -> list[tuple[float, dict[str, Any]]]:
        """(arrival time, JSON body) of every accepted post, for one /PATH or all."""
        with self.lock:
            return [(p["arrived"], p["json"]) for p in self.posts
                    if p["status"] < 300 and p["json"] is not None
                    and (path is None or p["path"] == f"/{path}")]

    def wait_for(self, count: int, timeout: float = 20.0) -> list[dict[str, Any]]:
        wait_until(lambda: len(self.bodies()) >= count, timeout, f"{count} messages at the receiver")
        return self.bodies()


@contextmanager
def serve_receiver() -> Iterator[Receiver]:
    """A Receiver listening on 127.0.0.1 (a free port) until the block ends."""
    rec = Receiver()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", 0))
            raw = self.rfile.read(length)
            arrived = time.time()
            try:
                body = json.loads(raw)
            except ValueError:
                body = None
            if rec.answer is not None:
                self._scripted(rec.answer, {"path": self.path, "json": body, "raw": raw,
                                            "headers": dict(self.headers), "arrived": arrived,
                                            "client": self.client_address})
                return
            time.sleep(rec.delay)
            with rec.lock:
                status = rec.status
                rec.posts.append({"path": self.path, "status": status, "json": body, "raw": raw,
                                  "headers": dict(self.headers), "arrived": arrived})
            self.send_response(status)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def _scripted(self, script: Callable[[dict[str, Any]], Answer], post: dict[str, Any]) -> None:
            how = script(post)
            gone = _client_gone(self.connection, HANG_FOR if how.hang else how.after)
            # What the receiver did, in nginx's words when it did not answer:
            # 499 the client closed the request first, 444 closed without an answer.
            status = 499 if gone else 444 if how.hang else how.status
            with rec.lock:
                rec.posts.append({**post, "status": status, "answered": time.time()})
            if gone or how.hang:
                self.close_connection = True
                return
            self.send_response(how.status)
            if how.retry_after is not None:
                self.send_header("Retry-After", str(how.retry_after))
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    rec.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield rec
    finally:
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


# -- a scripted receiver (tests/e2e/test_chaos.py) ---------------------------------------------

HANG_FOR = 120.0  # the longest a hanging answer waits for the client to give up


@dataclass(frozen=True)
class Answer:
    """How a scripted Receiver (Receiver.answer) answers one post."""

    status: int = 200
    after: float = 0.0  # seconds before answering; a client that gives up first is recorded as 499
    hang: bool = False  # accept and never answer: hold the connection until the client gives up
    retry_after: int | None = None  # a Retry-After header, in seconds


def _client_gone(sock: socket.socket, seconds: float) -> bool:
    """Wait up to `seconds`; True as soon as the client closes its end (it gave up waiting)."""
    deadline = time.monotonic() + seconds
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            return False
        readable, _, _ = select.select([sock], [], [], left)
        if not readable:
            return False
        try:
            if sock.recv(1, socket.MSG_PEEK) == b"":
                return True
        except OSError:
            return True
        time.sleep(min(left, 0.05))  # bytes to read, not an end: the client is still there


# -- jobs written as pingch writes them, the lease, a full disk (tests/e2e/test_chaos.py) -------


def job_events(home: Home, title: str, start: float, end: float, code: int = 0,
               **fields: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    """A job's start and finish events as pingch writes them (docs/EVENTS.md), for a job never run."""
    from notifyd.spool import events

    pid = 100000 + uuid.uuid4().int % 800000
    base: dict[str, Any] = {
        "v": events.SCHEMA_VERSION, "ev": "start", "job": events.new_job_id(home.host, pid),
        "user": home.env["USER"], "host": home.host, "pid": pid, "title": title, "cmd": "true",
        "cwd": str(home.root), "start": events.iso_time(start), "start_ts": round(start, 3),
        "ts": round(start, 3), **fields}
    finish = {**base, "ev": "finish", "ts": round(end, 3), "end": events.iso_time(end),
              "duration": round(end - start, 3), "exit": code, "signal": None, "maxrss_kb": 2048,
              "cpu_s": 0.0}
    return base, finish


def write_event(home: Home, ev: dict[str, Any]) -> bytes:
    """Append one event to the home's spool as pingch does (notifyd's encoder, one write()); its line."""
    from notifyd import fsutil, paths
    from notifyd.spool import events

    line = events.encode(ev)
    paths.ensure_private_dir(home.spool.parent, home.state_dir)
    fsutil.append_line(home.spool, line)
    return line


def lease_now(home: Home) -> tuple[int, str, int] | None:
    """(generation, host, pid) of the newest lease file as this host sees it; None if there is none."""
    from notifyd.watcher import lease

    info = lease.current(str(home.state_dir / "lease"))
    return None if info is None else (info.gen, info.host, info.pid)


def lease_free_for(home: Home) -> bool:
    """Would a watcher started on this host take the lease now? (The check `notifyd ensure` makes.)"""
    from notifyd import fsutil
    from notifyd.watcher import lease

    lease_dir = str(home.state_dir / "lease")
    info = lease.current(lease_dir)
    return info is None or lease.is_stale(info, home.host, fsutil.server_now(lease_dir, home.host))


def start_watch(home: Home, log: Path, timeout: float = 20.0) -> subprocess.Popen[bytes]:
    """`notifyd watch` for this home, its output appended to `log`; returns once it holds the lease."""
    with log.open("ab") as out:
        proc = subprocess.Popen([NOTIFYD, "watch"], env=home.env, stdout=out, stderr=subprocess.STDOUT)

    def holds() -> bool:
        if proc.poll() is not None:
            raise AssertionError(f"watcher on {home.host} exited with {proc.returncode}: "
                                 f"{log.read_text(errors='replace')[-2000:]}")
        found = lease_now(home)
        return found is not None and found[2] == proc.pid

    wait_until(holds, timeout, f"the watcher on {home.host} to take the lease")
    return proc


@contextmanager
def tmpfs(mountpoint: Path, size: str) -> Iterator[Path]:
    """A tmpfs of `size` (mount's units: 2m) at `mountpoint` until the block ends; needs root.

    Raises PermissionError with mount's words when mounting is not permitted.
    """
    mountpoint.mkdir(parents=True, exist_ok=True)
    p = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size},mode=0700", "tmpfs", str(mountpoint)],
                       capture_output=True, text=True)
    if p.returncode != 0:
        raise PermissionError(f"mount -t tmpfs at {mountpoint}: {p.stderr.strip() or p.returncode}")
    try:
        yield mountpoint
    finally:
        subprocess.run(["umount", "-l", str(mountpoint)], capture_output=True, check=False)


def fill_up(directory: Path) -> Path:
    """Fill the filesystem holding `directory` with one file until not one byte more fits; that file."""
    filler = directory / "filler"
    with filler.open("wb", buffering=0) as f:
        for block in (1 << 16, 4096, 1):
            try:
                while True:
                    f.write(b"\0" * block)
            except OSError as exc:
                if exc.errno != errno.ENOSPC:
                    raise
    return filler
