"""`notifyd init`: a working setup in one command, the same command again changes nothing."""

from __future__ import annotations

import shutil
import stat
import subprocess
import sys
from pathlib import Path

import needs
from harness import NOTIFYD, PINGCH, REPO, Home, Receiver, lease_holder
from harness import read_crontab as _crontab

HOOK = REPO / "hooks" / "notifyd.bash"
EXAMPLE = REPO / "notifyd.conf.example"
CRON_BEGIN = "# >>> notifyd"


def _init(home: Home, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([NOTIFYD, "init", *args], env=home.env, capture_output=True, text=True,
                          timeout=60, input=stdin if stdin is not None else "")


def _bashrc(home: Home) -> str:
    path = home.root / ".bashrc"
    return path.read_text() if path.exists() else ""


def _backups(home: Home) -> list[Path]:
    return sorted(home.config_file.parent.glob("notifyd.conf.bak-*"))


@needs.crontab
def test_one_command_on_a_fresh_home_writes_the_config_tests_the_url_and_adds_hook_and_cron(
        home: Home, receiver: Receiver, crontab: None) -> None:
    result = _init(home, "--url", receiver.url, "--yes")
    assert result.returncode == 0, result.stderr
    assert stat.S_IMODE(home.config_file.stat().st_mode) == 0o600
    assert receiver.url in home.config_file.read_text()
    assert [b["title"] for b in receiver.bodies()] == [f"🔔 notifyd test from {home.host}"]
    assert f"ok      json://127.0.0.1:{receiver.port}/****" in result.stdout
    assert _bashrc(home).count(f"source {HOOK}") == 1
    # This venv's notifyd is not on the test's PATH: the hook is told where it is.
    assert f"NOTIFYD_BIN={NOTIFYD}\n" in _bashrc(home)
    table = _crontab()
    assert table is not None and table.count(CRON_BEGIN) == 1
    assert result.stdout.rstrip().endswith(f"try it:  {PINGCH} -t hello sleep 5")


def test_after_init_a_real_pingch_job_is_notified(home: Home, receiver: Receiver) -> None:
    assert _init(home, "--url", receiver.url, "--yes", "--no-hook", "--no-cron").returncode == 0
    assert home.pingch("-t", "hello", "true").returncode == 0
    titles = [b["title"] for b in receiver.wait_for(2)]
    assert any("hello" in t and home.host in t for t in titles[1:]), titles


def test_init_says_whether_it_started_the_watcher_or_found_it_running(
        home: Home, receiver: Receiver) -> None:
    first = _init(home, "--url", receiver.url, "--yes", "--no-hook", "--no-cron")
    assert first.returncode == 0, first.stderr
    pid = lease_holder(home)
    assert f"watcher: started now: pid {pid} on {home.host}\n" in first.stdout
    again = _init(home, "--url", receiver.url, "--yes", "--no-hook", "--no-cron")
    assert f"watcher: already running: pid {pid} on {home.host}, since " in again.stdout


@needs.crontab
def test_running_init_twice_changes_nothing_and_says_so(
        home: Home, receiver: Receiver, crontab: None) -> None:
    assert _init(home, "--url", receiver.url, "--yes").returncode == 0
    config_before = home.config_file.stat()
    bashrc_before, crontab_before = _bashrc(home), _crontab()

    again = _init(home, "--url", receiver.url, "--yes")
    assert again.returncode == 0, again.stderr
    assert "nothing to change" in again.stdout
    after = home.config_file.stat()
    assert (after.st_mtime_ns, after.st_ino) == (config_before.st_mtime_ns, config_before.st_ino)
    assert _backups(home) == []
    assert _bashrc(home) == bashrc_before
    assert _crontab() == crontab_before


def test_an_existing_different_config_is_backed_up_and_its_other_keys_kept(
        home: Home, receiver: Receiver) -> None:
    old = ("# my settings\n[notify]\non = failure\nurls =\n    json://127.0.0.1:9/old\n\n"
           "[watcher]\n# faster\npoll_interval = 0.2s\n")
    home.write_config(old)
    result = _init(home, "--url", receiver.url, "--yes", "--no-hook", "--no-cron")
    assert result.returncode == 0, result.stderr
    (backup,) = _backups(home)
    assert backup.read_text() == old and stat.S_IMODE(backup.stat().st_mode) == 0o600
    assert backup.name in result.stdout
    assert home.config_file.read_text() == old.replace("json://127.0.0.1:9/old", receiver.url)


def test_of_several_urls_the_one_apprise_cannot_use_is_named_with_what_its_scheme_expects(
        home: Home, receiver: Receiver) -> None:
    result = _init(home, "--url", receiver.url, "--url", "discord://123", "--yes")
    assert result.returncode == 3
    assert "--url #2 of 2: discord://123 is not a URL Apprise can use" in result.stderr
    assert "discord://WEBHOOK_ID/WEBHOOK_TOKEN" in result.stderr
    assert not home.config_file.exists()


def test_a_url_without_a_scheme_is_shown_as_typed_and_told_what_a_url_looks_like(home: Home) -> None:
    result = _init(home, "--url", "notaurl", "--yes")
    assert result.returncode == 3
    assert "--url notaurl is not a URL Apprise can use: a URL starts with" in result.stderr


def test_the_example_the_written_config_names_is_beside_it(home: Home, receiver: Receiver) -> None:
    result = _init(home, "--url", receiver.url, "--yes", "--no-hook", "--no-cron")
    assert result.returncode == 0, result.stderr
    header = home.config_file.read_text().split("[notify]")[0]
    assert "notifyd.conf.example" in header and "beside this file" in header
    example = home.config_file.parent / "notifyd.conf.example"
    assert example.read_bytes() == EXAMPLE.read_bytes()
    assert f"every key and its default: {example}" in result.stdout


def test_only_the_last_three_backups_are_kept_and_init_says_so(home: Home, receiver: Receiver) -> None:
    home.write_config("[notify]\nurls = json://127.0.0.1:9/first\n")
    own = home.config_file.with_name("notifyd.conf.bak-mine")
    own.write_text("the user's own copy\n")
    for n in range(5):
        result = _init(home, "--url", f"json://127.0.0.1:{receiver.port}/run{n}", "--yes",
                       "--no-hook", "--no-cron")
        assert result.returncode == 0, result.stderr
        assert "(the last 3 are kept)" in result.stdout
    kept = [p for p in _backups(home) if p != own]
    assert len(kept) == 3
    # The newest three: the configs before runs 2, 3 and 4; the user's own file is not init's.
    assert sorted("run" + p.read_text().split("/run")[1][0] for p in kept) == ["run1", "run2", "run3"]
    assert own.read_text() == "the user's own copy\n"


def test_a_bad_url_writes_nothing_exits_with_the_config_status_and_shows_no_secret(home: Home) -> None:
    result = _init(home, "--url", "nosuchservice://ana:s3cr3t-pass@example.org/t0ken-x", "--yes")
    assert result.returncode == 3
    assert "nosuchservice://ana:****@example.org/**** is not a URL Apprise can use" in result.stderr
    assert "Apprise knows no service called nosuchservice://" in result.stderr
    assert "s3cr3t" not in result.stdout + result.stderr and "t0ken" not in result.stdout + result.stderr
    assert not home.config_file.exists() and _bashrc(home) == ""
    assert not home.state_dir.exists()


def test_a_failing_test_send_is_reported_but_the_config_is_written_with_status_4(
        home: Home, receiver: Receiver) -> None:
    receiver.status = 404
    result = _init(home, "--url", receiver.url, "--yes", "--no-hook", "--no-cron")
    assert result.returncode == 4
    assert f"FAILED  json://127.0.0.1:{receiver.port}/****" in result.stdout
    assert receiver.url in home.config_file.read_text()


def test_yes_without_any_url_is_a_usage_error(home: Home) -> None:
    result = _init(home, "--yes")
    assert result.returncode == 2 and "--url" in result.stderr
    assert not home.config_file.exists()


def test_a_hook_the_user_already_sources_is_not_added_again(home: Home, receiver: Receiver) -> None:
    (home.root / ".bashrc").write_text(f"alias ll='ls -l'\nsource {HOOK}\n")
    result = _init(home, "--url", receiver.url, "--yes", "--no-cron")
    assert result.returncode == 0, result.stderr
    assert "already in" in result.stdout
    assert _bashrc(home) == f"alias ll='ls -l'\nsource {HOOK}\n"


@needs.crontab
def test_interactive_answers_come_from_stdin(home: Home, receiver: Receiver, crontab: None) -> None:
    before = _crontab()
    # the URL; yes to the hook; no to cron
    result = _init(home, stdin=f"{receiver.url}\ny\nn\n")
    assert result.returncode == 0, result.stderr
    assert "Server Settings → Integrations → Webhooks" in result.stdout
    assert receiver.url in home.config_file.read_text()
    assert len(receiver.bodies()) == 1
    assert _bashrc(home).count(f"source {HOOK}") == 1
    assert _crontab() == before


def test_interactive_asks_again_after_a_url_apprise_cannot_use(home: Home, receiver: Receiver) -> None:
    result = _init(home, "--no-hook", "--no-cron", stdin=f"nosuchservice://s3cr3t@x/y\n{receiver.url}\n")
    assert result.returncode == 0, result.stderr
    assert "nosuchservice://****" in result.stderr and "s3cr3t" not in result.stdout + result.stderr
    assert receiver.url in home.config_file.read_text()


def test_an_installed_package_copies_its_hook_into_the_config_dir(
        home: Home, receiver: Receiver, tmp_path: Path) -> None:
    # A non-editable install: the package alone, no source checkout around it
    # (copytree follows notifyd/hooks/notifyd.bash's link, as the wheel build does).
    site = tmp_path / "site"
    shutil.copytree(REPO / "notifyd", site / "notifyd",
                    ignore=shutil.ignore_patterns("__pycache__"))
    env = dict(home.env, PYTHONPATH=str(site))
    result = subprocess.run(
        [sys.executable, "-m", "notifyd", "init", "--url", receiver.url, "--yes", "--no-cron"],
        env=env, cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    copied = home.config_file.parent / "notifyd.bash"
    assert copied.read_bytes() == HOOK.read_bytes()
    assert _bashrc(home).count(f"source {copied}\n") == 1
    assert f"new shells have notifyd and pingch on PATH; this one after: source {home.root}/.bashrc" \
        in result.stdout
    # The package ships the config example too, and init puts it where the config's header says.
    assert (home.config_file.parent / "notifyd.conf.example").read_bytes() == EXAMPLE.read_bytes()
