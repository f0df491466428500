"""What every figure needs: the installed scripts, an isolated home, a local webhook, statistics.

Standard library only, so `python3 -m bench` runs with any Python 3.10+; the
commands measured are the venv's own console scripts, called directly (a
pyenv or shell shim would add ~60 ms of its own to every figure).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
# The suite's helpers (tests/harness.py, standard library only): one isolated
# home and one webhook receiver for the tests and the figures alike.
sys.path.insert(0, str(REPO / "tests"))
from harness import Home, Receiver, new_home, watchers_under  # noqa: E402
from harness import serve_receiver as receiver  # noqa: E402

__all__ = ["Home", "Receiver", "receiver"]


# -- the installation being measured -----------------------------------------
@dataclass
class Install:
    """A venv with notifyd installed; scripts are called by their full path."""

    venv: Path

    @property
    def bin(self) -> Path:
        return self.venv / "bin"

    @property
    def python(self) -> str:
        return str(self.bin / "python")

    @property
    def pingch(self) -> str:
        return str(self.bin / "pingch")

    @property
    def notifyd(self) -> str:
        return str(self.bin / "notifyd")

    def describe(self) -> str:
        probe = subprocess.run(
            [self.python, "-c",
             "import notifyd, sys; print(notifyd.__file__); print(sys.version.split()[0])"],
            capture_output=True, text=True, check=True, cwd="/",
        ).stdout.split()
        editable = not probe[0].startswith(str(self.venv))
        return (f"Python {probe[1]} venv {self.venv}, notifyd "
                f"{'EDITABLE install (adds ~8 ms per start)' if editable else 'installed (non-editable)'}")


def prepare_install(venv: Path | None, log: Callable[[str], None]) -> Install:
    """The venv given, as is; or bench/.venv with a fresh non-editable install of this tree.

    Users install with `pip install .`; an editable install adds a finder to
    every start-up, so it is not what the figures should describe.
    """
    if venv is not None:
        install = Install(venv.resolve())
        if not Path(install.pingch).exists():
            raise SystemExit(f"bench: {install.pingch} does not exist; install notifyd into {venv} "
                             "first (pip install .) or leave out --venv")
        return install
    install = Install(REPO / "bench" / ".venv")
    if not Path(install.python).exists():
        log(f"creating {install.venv}")
        subprocess.run([sys.executable, "-m", "venv", str(install.venv)], check=True)
        subprocess.run([install.python, "-m", "pip", "install", "-q", str(REPO)], check=True)
    log(f"installing this tree into {install.venv} (non-editable)")
    subprocess.run([install.python, "-m", "pip", "install", "-q", "--no-deps", "--force-reinstall",
                    str(REPO)], check=True, cwd="/")
    return install


# -- statistics ---------------------------------------------------------------
def quantile(samples: Sequence[float], q: float) -> float:
    """Linear-interpolated quantile (q in 0..1) of a non-empty sample."""
    xs = sorted(samples)
    if len(xs) == 1:
        return xs[0]
    pos = q * (len(xs) - 1)
    lo = int(pos)
    hi = min(lo + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (pos - lo)


@dataclass
class Dist:
    """A figure over repeated runs: its median and spread (p10-p90, or min-max under 10 runs)."""

    samples: Sequence[float]

    @property
    def median(self) -> float:
        return statistics.median(self.samples)

    @property
    def spread(self) -> tuple[float, float]:
        if len(self.samples) < 10:
            return min(self.samples), max(self.samples)
        return quantile(self.samples, 0.1), quantile(self.samples, 0.9)

    @property
    def spread_name(self) -> str:
        return "min-max" if len(self.samples) < 10 else "p10-p90"

    def fmt(self, unit: Callable[[float], str]) -> str:
        lo, hi = self.spread
        return f"{unit(self.median)} ({unit(lo)}-{unit(hi)}, n={len(self.samples)})"


def ms(x: float) -> str:
    return f"{x * 1000:.1f} ms"


def sec(x: float) -> str:
    return f"{x:.2f} s"


def mib(x: float) -> str:
    return f"{x / 2**20:.1f} MiB"


def pct(x: float) -> str:
    return f"{x:.3f} %"


def count(x: float) -> str:
    return f"{x:.0f}"


@dataclass
class Row:
    """One line of the results table."""

    figure: str
    value: str
    baseline: str
    ratio: str
    target: str
    met: bool | None  # None: reported, no target
    notes: list[str] = field(default_factory=list)


def ratio(a: float, b: float) -> str:
    return f"{a / b:.2f}x" if b else "n/a"


# -- timing whole commands ----------------------------------------------------
def timed(argv: Sequence[str], env: dict[str, str] | None = None) -> tuple[float, int, Any]:
    """(wall seconds, exit status, rusage) of one run, spawned directly (no shell)."""
    null = os.open(os.devnull, os.O_RDWR)
    try:
        t0 = time.perf_counter()
        pid = os.posix_spawnp(argv[0], list(argv), env if env is not None else os.environ,
                              file_actions=[(os.POSIX_SPAWN_DUP2, null, 0),
                                            (os.POSIX_SPAWN_DUP2, null, 1),
                                            (os.POSIX_SPAWN_DUP2, null, 2)])
        _, status, usage = os.wait4(pid, 0)
        wall = time.perf_counter() - t0
    finally:
        os.close(null)
    return wall, os.waitstatus_to_exitcode(status), usage


# -- an isolated user ---------------------------------------------------------
@contextmanager
def home(host: str = "benchhost", config: str = "") -> Iterator[Home]:
    """A user of our own (the suite's Home: HOME, state and config under a temp dir, UTC)."""
    h = new_home(Path(tempfile.mkdtemp(prefix="notifyd-bench-")), host)
    # The old ~/.pingchilling reader stays off unless a figure wants it.
    h.write_config("[legacy]\npingchilling =\n" + config)
    try:
        yield h
    finally:
        stop_watchers(h)
        shutil.rmtree(h.root, ignore_errors=True)


def log_text(h: Home) -> str:
    path = h.state_dir / "logs" / f"{h.host}.log"
    return path.read_text(errors="replace") if path.exists() else ""


# -- the watcher under test ---------------------------------------------------
@dataclass
class WatcherProc:
    proc: subprocess.Popen[bytes]
    started: float
    ready_at: float | None = None


def start_watcher(install: Install, h: Home, timeout: float = 60.0) -> WatcherProc:
    """A watcher started exactly as pingch and `notifyd ensure` start one (launch.watcher_argv).

    Ready once its log says its first round is done (the log is polled every 2 ms).
    """
    argv = json.loads(subprocess.run(
        [install.python, "-c", "import json; from notifyd.watcher.launch import watcher_argv; "
         "print(json.dumps(watcher_argv()))"], capture_output=True, text=True, check=True, cwd="/",
    ).stdout)
    log = h.state_dir / "logs" / f"{h.host}.log"
    seen = log.stat().st_size if log.exists() else 0
    t0 = time.perf_counter()
    proc = subprocess.Popen(argv, env=h.env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, cwd="/", start_new_session=True)
    w = WatcherProc(proc, t0)
    mark = f" {proc.pid} INFO first round done".encode()
    deadline = time.monotonic() + timeout
    while w.ready_at is None:
        try:
            with log.open("rb") as f:
                f.seek(seen)
                if mark in f.read():
                    w.ready_at = time.perf_counter()
                    break
        except FileNotFoundError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise SystemExit(f"bench: the watcher did not get ready; its log:\n{log_text(h)[-3000:]}")
        time.sleep(0.002)
    return w


def stop_watchers(h: Home) -> None:
    """Stop every watcher of this home: the lease holders, and those still starting.

    A watcher a pingch spawned a moment ago may not hold the lease yet; left
    running, it would outlive the home removed after this.
    """
    lease_dir = h.state_dir / "lease"
    pids = {pid for pid, _cmd, _home in watchers_under(h.root)}
    for f in lease_dir.glob("lease.*") if lease_dir.is_dir() else []:
        for line in f.read_text(errors="replace").splitlines():
            if line.startswith("pid="):
                pids.add(int(line[4:]))
    for pid in pids:
        try:
            os.kill(pid, signal.SIGTERM)
        except (ProcessLookupError, PermissionError):
            pass
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and any(_alive(p) for p in pids):
        time.sleep(0.02)
    for pid in pids:
        if _alive(pid):
            os.kill(pid, signal.SIGKILL)


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            return f.read().rsplit(b")", 1)[1].split()[0] != b"Z"
    except (OSError, IndexError):
        return False


def proc_cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat", "rb") as f:
        fields = f.read().rsplit(b")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def proc_status_kib(pid: int, key: str) -> int:
    with open(f"/proc/{pid}/status", "rb") as f:
        for line in f:
            if line.startswith(key.encode() + b":"):
                return int(line.split()[1])
    raise KeyError(key)


def wait_for(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise SystemExit(f"bench: timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(0.005)
