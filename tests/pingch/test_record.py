"""pingch's cheap "is a watcher alive?" check agrees with the lease's own (lease.quick_live).

pingch reads the newest lease file itself so that a job finding a watcher
running loads no lease or launch code. It may only ever be stricter: where it
says False, pingch asks lease.py, which decides as it always did.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from notifyd.pingch.record import watcher_looks_alive
from notifyd.watcher import lease
from notifyd.watcher.lease import Lease

HOST = "node5"
OTHER = "node7"


def write_lease(lease_dir: Path, gen: int, text: str, age: float = 0.0) -> None:
    path = Path(lease.lease_path(str(lease_dir), gen))
    path.write_text(text)
    then = time.time() - age
    os.utime(path, (then, then))


def fields(**values: object) -> str:
    base: dict[str, object] = {"host": OTHER, "pid": 1, "pid_start": "", "token": "t" * 16,
                               "since": "0", "heartbeat": "0", "timeout": 60, "released": 0}
    base.update(values)
    return "".join(f"{k}={v}\n" for k, v in base.items())


def dead_pid() -> int:
    proc = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)
    return int(proc.stdout)


def held_here(d: Path) -> None:
    Lease(str(d), HOST, 60).acquire()


def held_elsewhere(d: Path) -> None:
    Lease(str(d), OTHER, 60).acquire()


def released_here(d: Path) -> None:
    held = Lease(str(d), HOST, 60)
    held.acquire()
    held.release()


def dead_holder_here(d: Path) -> None:
    write_lease(d, 1, fields(host=HOST, pid=dead_pid(), pid_start="12345"))


def reused_pid_here(d: Path) -> None:
    write_lease(d, 1, fields(host=HOST, pid=os.getpid(), pid_start="1"))  # our pid, another start


def silent_elsewhere(d: Path) -> None:
    write_lease(d, 1, fields(timeout=10), age=31)


def newer_released(d: Path) -> None:
    held_here(d)
    write_lease(d, 2, fields(host=HOST, released=1))


def not_a_lease(d: Path) -> None:
    write_lease(d, 3, "hello\n")


def bad_timeout(d: Path) -> None:
    write_lease(d, 1, fields(timeout="soon"))


def endless_timeout(d: Path) -> None:
    # A garbled timeout must not keep a holder silent for days alive for good.
    write_lease(d, 1, fields(timeout="inf"), age=10 * 86400)


def nan_timeout(d: Path) -> None:
    write_lease(d, 1, fields(timeout="nan"))


def no_lease(d: Path) -> None:
    pass


# (case, what both checks say); None: lease.py says True, pingch's check defers to it.
CASES: list[tuple[Callable[[Path], None], bool | None]] = [
    (held_here, True), (held_elsewhere, True), (released_here, False), (dead_holder_here, False),
    (reused_pid_here, False), (silent_elsewhere, False), (newer_released, False), (no_lease, False),
    (not_a_lease, None), (bad_timeout, None), (endless_timeout, False), (nan_timeout, None),
]


@pytest.mark.parametrize(("make", "alive"), CASES, ids=[c[0].__name__ for c in CASES])
def test_the_quick_check_says_alive_only_where_the_lease_does(tmp_path: Path,
                                                               make: Callable[[Path], None],
                                                               alive: bool | None) -> None:
    lease_dir = tmp_path / "lease"
    lease_dir.mkdir()
    make(lease_dir)
    quick = lease.quick_live(str(lease_dir), HOST)
    ours = watcher_looks_alive(str(lease_dir), HOST)
    if alive is None:
        assert (quick, ours) == (True, False)
    else:
        assert (quick, ours) == (alive, alive)


def test_the_quick_check_is_false_without_a_lease_dir(tmp_path: Path) -> None:
    assert watcher_looks_alive(str(tmp_path / "nowhere"), HOST) is False


def test_the_quick_check_does_not_follow_a_symlinked_lease_file(tmp_path: Path) -> None:
    lease_dir = tmp_path / "lease"
    lease_dir.mkdir()
    (tmp_path / "elsewhere").write_text(fields())
    (lease_dir / "lease.1").symlink_to(tmp_path / "elsewhere")
    assert watcher_looks_alive(str(lease_dir), HOST) is False


def test_the_quick_checks_timeout_bound_is_the_leases() -> None:
    from notifyd.pingch.record import LEASE_TIMEOUT_MAX

    assert LEASE_TIMEOUT_MAX == lease.TIMEOUT_MAX
