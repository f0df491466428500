"""The login hook: hooks/notifyd.bash starts the watcher at login, prints nothing, safe everywhere;
setup/hook.py adds it to ~/.bashrc once."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from harness import NOTIFYD, REPO, Home, wait_until

from notifyd.setup import hook

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
    # The hook also started a watcher in the background: waited for here, so
    # the fixture stops it, instead of it starting after the test ended.
    wait_until(lambda: len(home.watcher_pids()) == 1, 20, "the watcher started by the hook")


# -- setup/hook.py ----------------------------------------------------------------------------


def test_in_a_checkout_the_hook_is_the_checkouts_own_file(tmp_path: Path) -> None:
    assert hook.hook_file(tmp_path) == (HOOK, False)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("line", [hook.HOOK_MARKER, f"source {HOOK}", "  . ~/.config/notifyd/notifyd.bash"])
def test_an_existing_hook_is_found_by_its_line(line: str) -> None:
    assert hook.existing_hook(f"alias ll='ls -l'\n{line}\n") == 2


def test_a_bashrc_without_a_hook_has_none() -> None:
    assert hook.existing_hook("alias ll='ls -l'\n# source notifyd.bash\n") == 0


def test_the_hook_is_added_on_lines_of_its_own_and_then_found(tmp_path: Path) -> None:
    bashrc = tmp_path / ".bashrc"
    bashrc.write_text("alias ll='ls -l'")
    ready = hook.prepare(bashrc, tmp_path / "config")
    assert (ready.present_at, ready.lines[0], ready.lines[-1]) == (0, hook.HOOK_MARKER, f"source {HOOK}")
    hook.add(ready)
    assert bashrc.read_text() == "alias ll='ls -l'\n" + "\n".join(ready.lines) + "\n"
    assert hook.prepare(bashrc, tmp_path / "config").present_at == 2
