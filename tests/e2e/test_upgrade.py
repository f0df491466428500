"""Processes started by the previous release keep working through an upgrade.

A watcher or a `pingch -d` job runs for days; when the package under it is
upgraded, the code it spawns or imports later is the new one. The previous
release spawned these exact `-c` entries (its launch.py's and
pingch.py's, before the package had folders); they must still run.
"""

from __future__ import annotations

import subprocess

from harness import PY, Home, fast_config, lease_holder, wait_until

# Copied from the previous release, byte for byte: what a running old process spawns.
OLD_WATCHER_ENTRY = ("import sys; sys.path[:1] = [p for p in sys.path[:1] if p]; sys.argv[0] = 'notifyd'; "
                     "from notifyd.watcher import run_in_background; sys.exit(run_in_background())")
OLD_INNER_PINGCH = ("import sys; sys.path[:1] = [p for p in sys.path[:1] if p]; sys.argv[0] = 'pingch'; "
                    "from notifyd.pingch import main; sys.exit(main())")


def test_a_watcher_spawned_the_old_way_takes_the_lease(home: Home) -> None:
    home.write_config(fast_config())
    proc = subprocess.Popen([PY, "-c", OLD_WATCHER_ENTRY, "watch", "--background"], env=home.env,
                            cwd="/")
    try:
        assert wait_until(lambda: lease_holder(home) == proc.pid, 20, "the old-style watcher's lease")
    finally:
        proc.terminate()
        proc.wait(timeout=20)


def test_the_inner_pingch_of_an_old_pingch_d_runs_the_job_and_records_it(home: Home) -> None:
    p = subprocess.run([PY, "-c", OLD_INNER_PINGCH, "-t", "old-d", "--", "sh", "-c", "exit 7"],
                       env=home.env, capture_output=True, text=True, timeout=60, cwd="/")
    assert p.returncode == 7
    assert [ev["ev"] for ev in home.events()] == ["start", "finish"]
    assert home.events()[1]["exit"] == 7


def test_the_console_scripts_entry_point_still_resolves() -> None:
    p = subprocess.run([PY, "-c", "from notifyd.cli import main; print(callable(main))"],
                       capture_output=True, text=True, timeout=60, cwd="/")
    assert p.stdout.strip() == "True", p.stderr
