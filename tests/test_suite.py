"""The suite as people run it: started in the background, and leaving no watcher behind.

Each test runs a small inner pytest with this suite's conftest.py (`-p
conftest`) on a test file of its own, as the suite itself would run.
"""

from __future__ import annotations

import os
import subprocess
import textwrap
from pathlib import Path

from harness import PY, REPO

LEAKY = '''
import subprocess
from harness import NOTIFYD, new_home, wait_until

def test_starts_a_watcher_and_leaves_it(tmp_path):
    home = new_home(tmp_path / "home")
    proc = subprocess.Popen([NOTIFYD, "watch"], env=home.env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    lease = home.state_dir / "lease"
    wait_until(lambda: any(f"pid={proc.pid}\\n" in f.read_text() for f in lease.glob("lease.*")),
               20, "the watcher to take the lease")
    (tmp_path.parent.parent / "leaked.pid").write_text(str(proc.pid))
'''

CHILD_SIGNALS = '''
import signal, subprocess

def test_a_child_starts_with_default_dispositions():
    status = subprocess.run(["cat", "/proc/self/status"], capture_output=True, text=True).stdout
    ignored = int(next(l for l in status.splitlines() if l.startswith("SigIgn:")).split()[1], 16)
    for sig in (signal.SIGHUP, signal.SIGINT, signal.SIGQUIT):
        assert not ignored & (1 << (sig - 1)), sig.name
'''


def inner_pytest(tmp_path: Path, test: str, shell_prefix: str = "") -> subprocess.CompletedProcess[str]:
    """pytest on one test file with the suite's conftest.py, under `tmp_path`."""
    (tmp_path / "test_inner.py").write_text(textwrap.dedent(test))
    argv = [PY, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "conftest", "--rootdir", str(REPO),
            "-c", str(REPO / "pyproject.toml"), "--basetemp", str(tmp_path / "base"),
            str(tmp_path / "test_inner.py")]
    command = " ".join(f"'{a}'" for a in argv)
    return subprocess.run(["bash", "-c", f"{shell_prefix}exec {command}"], capture_output=True,
                          text=True, timeout=120, cwd=REPO)


def test_a_watcher_left_running_by_a_test_is_killed_named_and_fails_the_run(tmp_path: Path) -> None:
    run = inner_pytest(tmp_path, LEAKY)
    pid = int((tmp_path / "leaked.pid").read_text())
    assert "1 passed" in run.stdout  # the test itself passed; the run did not
    assert run.returncode == 1, run.stdout
    assert "1 watcher(s) started by the suite were still running (killed now):" in run.stdout
    assert f"pid {pid}, HOME={tmp_path / 'base'}" in run.stdout
    assert not Path(f"/proc/{pid}").exists() or _zombie(pid)


def _zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except FileNotFoundError:
        return True


def test_a_run_started_with_hup_int_and_quit_ignored_starts_its_processes_with_defaults(
        tmp_path: Path) -> None:
    # As `nohup pytest &`, CI runners and `make -j` start it.
    run = inner_pytest(tmp_path, CHILD_SIGNALS, shell_prefix='trap "" INT QUIT HUP; ')
    assert run.returncode == 0, run.stdout + run.stderr
    assert "1 passed" in run.stdout


def test_the_inner_runs_inherit_what_the_outer_shell_ignores(tmp_path: Path) -> None:
    # The check above means something only if the trap reaches the inner pytest.
    probe = subprocess.run(["bash", "-c", f'trap "" INT QUIT HUP; exec {PY} -c "import signal, sys; '
                            'sys.exit(signal.getsignal(signal.SIGHUP) == signal.SIG_IGN and 7 or 0)"'],
                           timeout=60, env=os.environ)
    assert probe.returncode == 7
