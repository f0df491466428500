"""setup/configfile.py: init's edit of the config file keeps every line but [notify] urls."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from notifyd.errors import ExitStatus, NotifydError
from notifyd.setup import configfile

URL = "json://127.0.0.1:9/new"


def test_urls_spread_over_lines_are_replaced_and_comments_around_them_kept() -> None:
    text = ("# mine\n[notify]\non = failure\nurls =\n    json://a/1\n    # off for now\n    json://a/2\n"
            "\n[watcher]\npoll_interval = 1s\n")
    assert configfile.with_urls(text, [URL, "json://b/2"]) == (
        f"# mine\n[notify]\non = failure\nurls =\n    {URL}\n    json://b/2\n"
        "\n[watcher]\npoll_interval = 1s\n")


def test_urls_go_first_in_a_notify_section_that_has_none() -> None:
    text = "[notify]\non = failure\n"
    assert configfile.with_urls(text, [URL]) == f"[notify]\nurls =\n    {URL}\non = failure\n"


def test_a_file_without_notify_gets_the_section_at_its_end() -> None:
    text = "[watcher]\npoll_interval = 1s"
    assert configfile.with_urls(text, [URL]) == f"{text}\n\n[notify]\nurls =\n    {URL}\n"


def test_a_new_file_starts_with_the_header() -> None:
    assert configfile.with_urls("", [URL]) == f"{configfile.NEW_CONFIG_HEADER}[notify]\nurls =\n    {URL}\n"


def test_writing_the_same_urls_again_changes_nothing(tmp_path: Path) -> None:
    path = tmp_path / "notifyd.conf"
    first = configfile.write_urls(path, [URL])
    assert (first.wrote, first.backup) == (True, None)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    again = configfile.write_urls(path, [URL])
    assert not again.changed


def test_the_same_urls_in_a_readable_file_make_it_private(tmp_path: Path) -> None:
    path = tmp_path / "notifyd.conf"
    configfile.write_urls(path, [URL])
    path.chmod(0o644)
    done = configfile.write_urls(path, [URL])
    assert (done.wrote, done.made_private) == (False, True)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_a_different_old_file_is_kept_as_a_private_backup(tmp_path: Path) -> None:
    path = tmp_path / "notifyd.conf"
    path.write_text("[notify]\nurls = json://old/1\n")
    done = configfile.write_urls(path, [URL])
    assert done.backup is not None and done.backup.read_text() == "[notify]\nurls = json://old/1\n"
    assert stat.S_IMODE(done.backup.stat().st_mode) == 0o600


def test_a_wrong_kept_key_is_reported_with_the_real_name_and_nothing_is_written(tmp_path: Path) -> None:
    path = tmp_path / "notifyd.conf"
    path.write_text("[watcher]\npoll_interval = fast\n")
    with pytest.raises(NotifydError) as info:
        configfile.write_urls(path, [URL])
    assert info.value.status == ExitStatus.CONFIG
    assert f"{path}: [watcher] poll_interval" in info.value.message
    assert info.value.message.endswith("; nothing was written")
    assert path.read_text() == "[watcher]\npoll_interval = fast\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notifyd.conf"]


def test_configured_urls_are_read_and_a_missing_file_has_none(tmp_path: Path) -> None:
    path = tmp_path / "notifyd.conf"
    assert configfile.configured_urls(path) == []
    path.write_text(f"[notify]\nurls =\n    {URL}\n    # json://off/1\n")
    assert configfile.configured_urls(path) == [URL]


@pytest.mark.parametrize("line", ["# json://a/b", "json://a/b\njson://c/d"])
def test_a_url_that_is_not_one_ini_line_is_a_problem(line: str) -> None:
    assert "cannot be written as one line of [notify] urls" in configfile.url_problem(line)


def test_a_url_apprise_cannot_use_is_a_problem_named_without_its_secret() -> None:
    problem = configfile.url_problem("nosuchservice://ana:s3cr3t@example.org/t0ken-x")
    assert "not a URL Apprise can use" in problem and "s3cr3t" not in problem


def test_a_usable_url_is_no_problem() -> None:
    assert configfile.url_problem(URL) == ""
