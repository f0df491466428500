"""pingch's directories are platformdirs' for every setting the README documents.

pingch resolves its spool by hand (notifyd/paths.py: platformdirs costs too
much on every job); the `notifyd` command and the watcher ask platformdirs
(notifyd/dirs.py). If the two ever disagreed, a job would write one spool and
the watcher read another, and no notification would come. So the variables
are read from the README's table ("Where notifyd keeps its files"), each is
given every kind of value (unset, empty, relative, `~`-relative, absolute,
absolute with a trailing slash) and every combination is resolved by
platformdirs, by pingch's own recorder (imported, reading this process's
environment as it does in a job) and by the command's resolver.
"""

from __future__ import annotations

import itertools
import os
import pwd
import re
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from harness import NOTIFYD, REPO, Home, Receiver, fast_config, wait_until
from platformdirs.unix import Unix

from notifyd import dirs, paths
from notifyd.errors import NotifydError
from notifyd.pingch.record import HostRecorder

SECTION = "## Where notifyd keeps its files"
# Each kind of value a variable can hold; {name} keeps two absolute ones apart.
VALUES = {
    "unset": None,
    "empty": "",
    "relative": "rel/{name}",
    "tilde": "~/{name}",
    "absolute": "/abs/{name}",
    "trailing slash": "/abs/{name}/",
}


def documented_variables() -> list[str]:
    """The variables in the first column of the README section's table."""
    text = (REPO / "README.md").read_text()
    section = text.split(SECTION, 1)[1].split("\n## ", 1)[0]
    return re.findall(r"^\| `([A-Z_]+)` \|", section, re.MULTILINE)


VARIABLES = documented_variables()


def test_the_readme_documents_the_directory_variables() -> None:
    assert sorted(VARIABLES) == ["HOME", "NOTIFYD_CONFIG", "NOTIFYD_STATE_DIR", "XDG_CONFIG_HOME",
                                 "XDG_STATE_HOME"]


@contextmanager
def environment(values: dict[str, str | None]) -> Iterator[None]:
    """os.environ with these variables set (None: unset), put back afterwards."""
    saved = {name: os.environ.get(name) for name in values}
    try:
        _set(values)
        yield
    finally:
        _set(saved)


def _set(values: dict[str, str | None]) -> None:
    for name, value in values.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value


def platformdirs_answer() -> tuple[str, str, str]:
    """(home, config file, state dir) by platformdirs and the README's rule for NOTIFYD_*."""
    pd = Unix(appname="notifyd", appauthor=False)
    config = os.environ.get("NOTIFYD_CONFIG", "")
    state = os.environ.get("NOTIFYD_STATE_DIR", "")
    without_xdg = {"XDG_STATE_HOME": None}
    with environment(without_xdg):  # platformdirs names no home; its default state base shows it
        base = Unix().user_state_dir
    assert base.endswith("/.local/state")
    return (base[: -len("/.local/state")] or "/",
            config if config.startswith("/") else os.path.join(pd.user_config_dir, "notifyd.conf"),
            state if state.startswith("/") else pd.user_state_dir)


def pingch_answer() -> tuple[str, str, str]:
    """The same from pingch's side: its recorder's state dir, and paths.py for the rest."""
    recorder = HostRecorder()
    assert recorder.path == os.path.join(recorder.state_dir, "events", f"{recorder.host}.jsonl")
    return paths.home_str(), paths.config_file_str(), recorder.state_dir


def command_answer() -> tuple[str, str, str]:
    p = dirs.resolve()
    return str(p.home), str(p.config_file), str(p.state_dir)


def explicit_env_answer() -> tuple[str, str, str]:
    """paths.resolve(env), the tests' in-process resolver, given this environment as a mapping."""
    p = paths.resolve(dict(os.environ))
    return str(p.home), str(p.config_file), str(p.state_dir)


def every_combination() -> Iterator[dict[str, str | None]]:
    for kinds in itertools.product(VALUES.values(), repeat=len(VARIABLES)):
        yield {name: None if kind is None else kind.format(name=name.lower())
               for name, kind in zip(VARIABLES, kinds, strict=True)}


def test_pingch_the_command_and_platformdirs_give_the_same_directories_for_every_combination(
) -> None:
    disagreements = []
    count = 0
    for combination in every_combination():
        with environment(combination):
            reference = platformdirs_answer()
            # pingch's strings must be platformdirs' to the byte; the command's
            # are Paths, which drop a trailing slash.
            answers = {"pingch": (pingch_answer(), reference),
                       "the command": (command_answer(), tuple(str(Path(p)) for p in reference)),
                       "paths.resolve(env)": (explicit_env_answer(),
                                              tuple(str(Path(p)) for p in reference))}
        count += 1
        disagreements += [f"{combination}: {who} says {got}, platformdirs {expected}"
                          for who, (got, expected) in answers.items() if got != expected]
    assert count == len(VALUES) ** len(VARIABLES)
    wrong = len(disagreements)
    assert disagreements == [], f"{wrong} answers wrong in {count} combinations: {disagreements[:3]}"


def test_empty_and_relative_values_are_ignored_and_an_absolute_one_is_used() -> None:
    with environment({"HOME": "/h", "XDG_STATE_HOME": "rel", "NOTIFYD_STATE_DIR": "",
                      "XDG_CONFIG_HOME": "/xc", "NOTIFYD_CONFIG": "~/my.conf"}):
        assert pingch_answer() == ("/h", "/xc/notifyd/notifyd.conf", "/h/.local/state/notifyd")
        assert platformdirs_answer() == pingch_answer()


def test_the_command_says_which_of_its_own_variables_it_ignores_for_being_relative(
        capsys: pytest.CaptureFixture[str]) -> None:
    with environment({"HOME": "/h", "NOTIFYD_CONFIG": "my.conf", "NOTIFYD_STATE_DIR": "/abs/state",
                      "XDG_STATE_HOME": "rel"}):
        resolved = dirs.resolve()
    assert str(resolved.config_file) == "/h/.config/notifyd/notifyd.conf"
    err = capsys.readouterr().err
    assert "NOTIFYD_CONFIG='my.conf' is ignored: it is not an absolute path" in err
    assert "NOTIFYD_STATE_DIR" not in err and "XDG_STATE_HOME" not in err  # absolute; XDG's rule is quiet


@pytest.mark.parametrize("verb", ["nodes", "procs", "status"])
def test_an_ignored_variable_is_said_once_per_command(tmp_path: Path, verb: str) -> None:
    env = {**os.environ, "HOME": str(tmp_path), "NOTIFYD_CONFIG": "my.conf", "NOTIFYD_STATE_DIR": "",
           "XDG_CONFIG_HOME": "", "XDG_STATE_HOME": ""}
    p = subprocess.run([NOTIFYD, verb], env=env, capture_output=True, text=True, timeout=60)
    assert p.stderr.count("NOTIFYD_CONFIG='my.conf' is ignored") == 1, p.stderr


@pytest.mark.parametrize("home_value", [None, "", "relative/home"], ids=["unset", "empty", "relative"])
def test_without_an_absolute_home_both_fall_back_to_the_password_database(home_value: str | None) -> None:
    own = pwd.getpwuid(os.getuid()).pw_dir.rstrip("/") or "/"
    with environment({"HOME": home_value, "XDG_STATE_HOME": None, "NOTIFYD_STATE_DIR": None}):
        assert pingch_answer()[2] == os.path.join(own, ".local", "state", "notifyd")
        assert platformdirs_answer() == pingch_answer()


def _no_password_entry(uid: int) -> pwd.struct_passwd:
    raise KeyError(f"getpwuid(): uid not found: {uid}")


@pytest.mark.parametrize("home_value", [None, "", "relative/home"], ids=["unset", "empty", "relative"])
def test_with_no_home_at_all_both_refuse_and_pingch_records_nothing(
        home_value: str | None, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
        tmp_path: Path) -> None:
    monkeypatch.setattr(pwd, "getpwuid", _no_password_entry)
    monkeypatch.chdir(tmp_path)
    with environment({"HOME": home_value, "XDG_STATE_HOME": None, "NOTIFYD_STATE_DIR": None}):
        with pytest.raises(RuntimeError):
            print(Unix(appname="notifyd").user_state_dir)
        with pytest.raises(NotifydError, match="cannot tell your home directory"):
            dirs.resolve()
        recorder = HostRecorder()
        recorder.append({"ev": "start"})
        assert recorder.ensure_watcher() == 0
    assert recorder.state_dir == ""
    assert "cannot tell your home directory" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []  # nothing written in the job's directory instead


def test_with_no_home_an_absolute_state_dir_still_serves_pingch(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(pwd, "getpwuid", _no_password_entry)
    with environment({"HOME": None, "XDG_STATE_HOME": "/xs", "NOTIFYD_STATE_DIR": None}):
        assert HostRecorder().state_dir == "/xs/notifyd" == Unix(appname="notifyd").user_state_dir


# -- the same, end to end: a real pingch, the watcher it starts, the notifyd command ------------
def test_a_job_under_non_default_xdg_dirs_is_told_by_the_watcher_pingch_starts(
        home: Home, receiver: Receiver) -> None:
    state_home, config_home = home.root / "xdg-state", home.root / "xdg-config"
    # A relative NOTIFYD_STATE_DIR is ignored by every side alike (it would name a
    # different place in each working directory).
    home.env.update(XDG_STATE_HOME=str(state_home), XDG_CONFIG_HOME=str(config_home),
                    NOTIFYD_STATE_DIR="relative/state")
    config = config_home / "notifyd" / "notifyd.conf"
    config.parent.mkdir(parents=True)
    config.write_text(fast_config(receiver.url))
    config.chmod(0o600)
    jobdir = home.root / "job"
    jobdir.mkdir()
    try:
        assert home.pingch("-t", "xdg-job", "true", cwd=jobdir).returncode == 0
        bodies = receiver.wait_for(1, timeout=30)
        assert "xdg-job" in bodies[0]["title"] + bodies[0]["message"]
        assert (state_home / "notifyd" / "events" / f"{home.host}.jsonl").exists()
        wait_until(lambda: list((state_home / "notifyd" / "inbox").glob("*.jsonl")), 15,
                   "the watcher to write its inbox under XDG_STATE_HOME")
        code, out, err = home.notifyd("inbox")
        assert code == 0, err
        assert "xdg-job" in out
    finally:
        home.kill_watchers()
    assert not home.state_dir.exists()  # nothing at the default ~/.local/state/notifyd
    assert not (jobdir / "relative").exists()


# -- what notifyd creates: its own directories, never the home ---------------------------------
def test_the_state_dir_is_made_in_an_existing_home_with_its_missing_parents(tmp_path: Path) -> None:
    p = paths.resolve({"HOME": str(tmp_path)})
    p.private_dir(p.lease_dir)
    assert p.lease_dir.is_dir()
    assert (p.state_dir.stat().st_mode & 0o777, p.lease_dir.stat().st_mode & 0o777) == (0o700, 0o700)


def test_a_home_that_is_gone_is_not_made_again(tmp_path: Path) -> None:
    p = paths.resolve({"HOME": str(tmp_path / "gone")})
    with pytest.raises(FileNotFoundError) as caught:
        p.private_dir(p.lease_dir)
    assert caught.value.filename == str(tmp_path / "gone")
    assert list(tmp_path.iterdir()) == []


def test_a_directory_made_in_place_never_brings_back_a_deleted_state_dir(tmp_path: Path) -> None:
    # A watcher that holds its lease makes its wake-up dir in place: a state dir
    # deleted meanwhile stays deleted (the watcher then stops, recreating nothing).
    p = paths.resolve({"HOME": str(tmp_path)})
    p.private_dir(p.lease_dir)
    p.private_dir(p.state_dir / "wake", in_place=True)
    assert (p.state_dir / "wake").is_dir()
    shutil.rmtree(p.state_dir)
    with pytest.raises(FileNotFoundError) as caught:
        p.private_dir(p.state_dir / "wake", in_place=True)
    assert caught.value.filename == str(p.state_dir)
    assert not p.state_dir.exists() and p.state_dir.parent.is_dir()


def test_a_state_dir_outside_the_home_is_made_with_all_its_parents(tmp_path: Path) -> None:
    p = paths.resolve({"HOME": str(tmp_path / "gone"), "NOTIFYD_STATE_DIR": str(tmp_path / "a" / "b")})
    p.private_dir(p.lease_dir)
    assert p.lease_dir.is_dir()
    assert not (tmp_path / "gone").exists()
