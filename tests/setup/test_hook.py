"""hooks/notifyd.bash: starts the watcher at login, prints nothing, safe everywhere."""

from __future__ import annotations

import subprocess
from pathlib import Path

from harness import NOTIFYD, REPO, Home, wait_until

HOOK = REPO / "hooks" / "notifyd.bash"


def _bash(home: Home, script: str, interactive: bool) -> subprocess.CompletedProcess[str]:
    flags = ["--norc", "-i", "-c"] if interactive else ["--norc", "-c"]
    env = dict(home.env, NOTIFYD_BIN=NOTIFYD)
    return subprocess.run(["bash", *flags, script], env=env, capture_output=True, text=True,
                          timeout=30, stdin=subprocess.DEVNULL)


def test_sourcing_twice_in_an_interactive_shell_prints_nothing_and_starts_one_watcher(
        home: Home) -> None:
    baseline = _bash(home, "true", interactive=True)
    hooked = _bash(home, f"source {HOOK}; source {HOOK}; true", interactive=True)
    assert hooked.returncode == 0
    # bash -i without a terminal may warn about job control; the hook adds nothing.
    assert (hooked.stdout, hooked.stderr) == (baseline.stdout, baseline.stderr)
    wait_until(lambda: len(home.watcher_pids()) == 1, 20, "the watcher started by the hook")


def test_non_interactive_shell_prints_nothing_and_starts_nothing(home: Home) -> None:
    result = _bash(home, f"source {HOOK}; echo after", interactive=False)
    assert (result.returncode, result.stdout, result.stderr) == (0, "after\n", "")
    assert not (home.state_dir / "lease").exists()


def test_hook_puts_notifyd_bin_dir_on_path_for_pingch(home: Home) -> None:
    env_path = "/usr/bin:/bin"
    result = _bash(home, f"PATH={env_path}; source {HOOK}; command -v pingch", interactive=True)
    assert result.stdout.strip() == str(Path(NOTIFYD).parent / "pingch")
