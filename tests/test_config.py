"""The configuration file: defaults, parsing, strict keys and refusing readable secrets."""

from __future__ import annotations

import re
import typing
from pathlib import Path

import pytest
from harness import REPO

from notifyd import config
from notifyd.errors import ExitStatus, NotifydError

URL = "json://127.0.0.1:9/hook"


def _write(tmp_path: Path, text: str, mode: int = 0o600, name: str = "notifyd.conf") -> Path:
    path = tmp_path / name
    path.write_text(text)
    path.chmod(mode)
    return path


def _load(path: Path, **env: str) -> config.Config:
    return config.load(path, env=env)


def _error(path: Path, **env: str) -> NotifydError:
    with pytest.raises(NotifydError) as info:
        _load(path, **env)
    assert info.value.status == ExitStatus.CONFIG
    return info.value


# -- defaults --------------------------------------------------------------------

def test_missing_file_gives_defaults(tmp_path: Path) -> None:
    cfg = _load(tmp_path / "absent.conf")
    assert cfg.poll_interval == 0.5
    assert cfg.lease_timeout == 60.0
    assert cfg.urls == ()
    assert cfg.apprise_configs == ()
    assert not cfg.pushes
    assert cfg.legacy_file.endswith(".pingchilling")


def test_missing_file_default_legacy_file_is_expanded(tmp_path: Path) -> None:
    assert not _load(tmp_path / "absent.conf").legacy_file.startswith("~")


def test_empty_file_gives_defaults(tmp_path: Path) -> None:
    cfg = _load(_write(tmp_path, ""))
    assert (cfg.poll_interval, cfg.lease_timeout, cfg.urls) == (0.5, 60.0, ())



def test_each_keys_default_reads_as_its_attributes_type() -> None:
    hints = typing.get_type_hints(config.Config)
    for keys in config.SCHEMA.values():
        for key in keys.values():
            expected = typing.get_origin(hints[key.attr]) or hints[key.attr]
            assert type(key.parse(key.default)) is expected, key

# -- durations and sizes -----------------------------------------------------------

@pytest.mark.parametrize(
    ("text", "seconds"),
    [("500ms", 0.5), ("2m", 120.0), ("2min", 120.0), ("1.5h", 5400.0), ("3d", 259200.0),
     ("7", 7.0), ("2.5", 2.5), ("10s", 10.0), (" 4 s ", 4.0)],
)
def test_duration_parses(text: str, seconds: float) -> None:
    assert config.parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize(("text", "seconds"), [("500ms", 0.5), ("2m", 120.0), ("1.5h", 5400.0),
                                               ("3d", 259200.0), ("90", 90.0)])
def test_duration_in_config_file_parses(tmp_path: Path, text: str, seconds: float) -> None:
    cfg = _load(_write(tmp_path, f"[watcher]\nretry_initial = {text}\nretry_max = 30d\n"))
    assert cfg.retry_initial == pytest.approx(seconds)


def test_retry_for_shorter_than_a_day_is_refused(tmp_path: Path) -> None:
    path = _write(tmp_path, "[watcher]\nretry_for = 23h\n")
    with pytest.raises(NotifydError, match=r"retry_for .*at least 24h") as info:
        _load(path)
    assert str(path) in info.value.message


@pytest.mark.parametrize(("text", "size"), [("500k", 500 * 1024), ("1M", 1024**2), ("2gb", 2 * 1024**3),
                                            ("123", 123)])
def test_size_parses(text: str, size: int) -> None:
    assert config.parse_size(text) == size


def test_watcher_values_are_read_from_file(tmp_path: Path) -> None:
    cfg = _load(_write(tmp_path, "[watcher]\npoll_interval = 200ms\nlease_timeout = 5s\n"
                                 "retry_initial = 1s\nretry_max = 2m\nlog_max_size = 2M\n"))
    assert (cfg.poll_interval, cfg.lease_timeout, cfg.retry_initial, cfg.retry_max, cfg.log_max_size) == (
        0.2, 5.0, 1.0, 120.0, 2 * 1024**2)


# -- bad values ------------------------------------------------------------------

@pytest.mark.parametrize("value", ["fast", "5 minutes", "-1s", "1.s"])
def test_bad_duration_names_file_key_value_and_expected_form(tmp_path: Path, value: str) -> None:
    path = _write(tmp_path, f"[watcher]\npoll_interval = {value}\n")
    message = _error(path).message
    assert str(path) in message
    assert "poll_interval" in message
    assert repr(value) in message
    assert "a duration such as 500ms" in message


def test_zero_duration_is_refused_as_not_above_zero(tmp_path: Path) -> None:
    path = _write(tmp_path, "[watcher]\nretry_for = 0s\n")
    message = _error(path).message
    assert "retry_for" in message
    assert "above zero" in message


def test_bad_size_names_expected_form(tmp_path: Path) -> None:
    path = _write(tmp_path, "[watcher]\nlog_max_size = lots\n")
    message = _error(path).message
    assert str(path) in message
    assert "log_max_size = 'lots'" in message
    assert "a size such as" in message


@pytest.mark.parametrize(("text", "percent"), [("10 %", 10.0), ("7.5%", 7.5), ("25", 25.0), ("0", 0.0),
                                             (" 100 % ", 100.0)])
def test_warn_mem_is_read_as_a_percentage(tmp_path: Path, text: str, percent: float) -> None:
    path = _write(tmp_path, f"[pressure]\nwarn_mem = {text}\nstart_warning = no\n")
    cfg = _load(path)
    assert (cfg.warn_mem, cfg.start_warning) == (percent, False)


@pytest.mark.parametrize("value", ["150 %", "-5 %", "ten", "10 %%", "0.1.2"])
def test_bad_warn_mem_names_file_key_value_and_expected_form(tmp_path: Path, value: str) -> None:
    path = _write(tmp_path, f"[pressure]\nwarn_mem = {value}\n")
    message = _error(path).message
    assert str(path) in message and f"[pressure] warn_mem = {value!r}" in message
    assert "a percentage from 0 to 100, such as 10 %" in message


# -- unknown names and broken files ---------------------------------------------------

def test_unknown_section_is_named_and_known_sections_listed(tmp_path: Path) -> None:
    path = _write(tmp_path, "[notfiy]\nurls = x\n")
    message = _error(path).message
    assert "[notfiy]" in message
    assert str(path) in message
    for section in config.SCHEMA:
        assert f"[{section}]" in message


def test_unknown_key_is_named_and_known_keys_listed(tmp_path: Path) -> None:
    path = _write(tmp_path, "[watcher]\npoll_intervall = 1s\n")
    message = _error(path).message
    assert "'poll_intervall'" in message
    assert str(path) in message
    for key in config.SCHEMA["watcher"]:
        assert key in message


def test_keys_are_case_sensitive(tmp_path: Path) -> None:
    message = _error(_write(tmp_path, "[watcher]\nPoll_Interval = 1s\n")).message
    assert "'Poll_Interval'" in message


def test_default_section_is_not_special(tmp_path: Path) -> None:
    message = _error(_write(tmp_path, "[DEFAULT]\npoll_interval = 1s\n")).message
    assert "[DEFAULT]" in message


@pytest.mark.parametrize("text", ["poll_interval = 1s\n", "[watcher\n", "[watcher]\nretry_for = 1s\n"
                                  "retry_for = 2s\n"])
def test_invalid_ini_is_refused_naming_the_file(tmp_path: Path, text: str) -> None:
    path = _write(tmp_path, text)
    message = _error(path).message
    assert str(path) in message
    assert "not a valid INI file" in message


def test_non_utf8_file_is_refused_naming_the_file(tmp_path: Path) -> None:
    path = tmp_path / "notifyd.conf"
    path.write_bytes(b"[watcher]\npoll_interval = \xff\n")
    assert str(path) in _error(path).message


# -- URLs and permissions -----------------------------------------------------------------

def test_urls_are_read_one_per_line_without_comments(tmp_path: Path) -> None:
    cfg = _load(_write(tmp_path, f"[notify]\nurls =\n    {URL}\n    # off for now\n    mailto://a@b\n"))
    assert cfg.urls == (URL, "mailto://a@b")
    assert cfg.pushes


@pytest.mark.parametrize("mode", [0o640, 0o604, 0o644])
def test_file_with_urls_readable_by_others_is_refused_with_chmod_hint(tmp_path: Path, mode: int) -> None:
    path = _write(tmp_path, f"[notify]\nurls = {URL}\n", mode=mode)
    message = _error(path).message
    assert f"chmod 600 {path}" in message


def test_refusal_does_not_show_the_secret_url(tmp_path: Path) -> None:
    path = _write(tmp_path, "[notify]\nurls = discord://SECRET_ID/SECRET_TOKEN\n", mode=0o644)
    assert "SECRET" not in _error(path).message


def test_file_with_urls_and_mode_600_is_accepted(tmp_path: Path) -> None:
    path = _write(tmp_path, f"[notify]\nurls = {URL}\n", mode=0o600)
    assert _load(path).urls == (URL,)


def test_file_without_urls_readable_by_others_is_accepted(tmp_path: Path) -> None:
    path = _write(tmp_path, "[watcher]\npoll_interval = 2s\n", mode=0o644)
    assert _load(path).poll_interval == 2.0


def test_apprise_urls_env_adds_urls(tmp_path: Path) -> None:
    path = _write(tmp_path, f"[notify]\nurls = {URL}\n")
    cfg = _load(path, APPRISE_URLS="mailto://a@b, tgram://t/c  ntfy://topic")
    assert cfg.urls == (URL, "mailto://a@b", "tgram://t/c", "ntfy://topic")


def test_apprise_urls_env_alone_makes_config_push(tmp_path: Path) -> None:
    cfg = _load(tmp_path / "absent.conf", APPRISE_URLS="ntfy://topic")
    assert cfg.urls == ("ntfy://topic",)
    assert cfg.pushes


# -- cross-checks ----------------------------------------------------------------------

def test_lease_timeout_below_three_poll_intervals_is_rejected(tmp_path: Path) -> None:
    path = _write(tmp_path, "[watcher]\npoll_interval = 10s\nlease_timeout = 29s\n")
    message = _error(path).message
    assert "lease_timeout" in message
    assert "three" in message


def test_lease_timeout_of_exactly_three_poll_intervals_is_accepted(tmp_path: Path) -> None:
    cfg = _load(_write(tmp_path, "[watcher]\npoll_interval = 10s\nlease_timeout = 30s\n"))
    assert cfg.lease_timeout == 30.0


def test_retry_max_below_retry_initial_is_rejected(tmp_path: Path) -> None:
    path = _write(tmp_path, "[watcher]\nretry_initial = 5m\nretry_max = 1m\n")
    message = _error(path).message
    assert "retry_max" in message
    assert "retry_initial" in message


# -- Apprise config files ---------------------------------------------------------------

def test_apprise_config_path_that_does_not_exist_is_an_error(tmp_path: Path) -> None:
    missing = tmp_path / "apprise.yml"
    path = _write(tmp_path, f"[notify]\napprise_config = {missing}\n")
    message = _error(path).message
    assert str(missing) in message
    assert "does not exist" in message


def test_apprise_config_path_env_that_does_not_exist_is_an_error(tmp_path: Path) -> None:
    missing = tmp_path / "apprise.yml"
    assert str(missing) in _error(tmp_path / "absent.conf", APPRISE_CONFIG_PATH=str(missing)).message


def test_apprise_config_file_readable_by_others_is_refused(tmp_path: Path) -> None:
    apprise_file = _write(tmp_path, f"urls:\n  - {URL}\n", mode=0o644, name="apprise.yml")
    path = _write(tmp_path, f"[notify]\napprise_config = {apprise_file}\n")
    assert f"chmod 600 {apprise_file}" in _error(path).message


def test_private_apprise_config_file_is_accepted(tmp_path: Path) -> None:
    apprise_file = _write(tmp_path, f"urls:\n  - {URL}\n", mode=0o600, name="apprise.yml")
    cfg = _load(_write(tmp_path, f"[notify]\napprise_config = {apprise_file}\n"))
    assert cfg.apprise_configs == (str(apprise_file),)
    assert cfg.pushes


def test_config_file_naming_only_an_apprise_config_may_be_readable(tmp_path: Path) -> None:
    apprise_file = _write(tmp_path, f"urls:\n  - {URL}\n", mode=0o600, name="apprise.yml")
    cfg = _load(_write(tmp_path, f"[notify]\napprise_config = {apprise_file}\n", mode=0o644))
    assert cfg.apprise_configs == (str(apprise_file),)


def test_legacy_file_can_be_turned_off(tmp_path: Path) -> None:
    assert _load(_write(tmp_path, "[legacy]\npingchilling =\n")).legacy_file == ""


# -- notifyd.conf.example ----------------------------------------------------------------

_SECTION = re.compile(r"^\[(\w+)\]$")
_KEY = re.compile(r"^(#\s?)?([a-z_]+) =(.*)$")  # `key = value`, or `# key = value` commented out


def _example() -> dict[tuple[str, str], tuple[bool, str]]:
    """(section, key) -> (commented out, the value shown), as notifyd.conf.example writes them."""
    found: dict[tuple[str, str], tuple[bool, str]] = {}
    section = ""
    for line in (REPO / "notifyd.conf.example").read_text().splitlines():
        header = _SECTION.match(line)
        if header:
            section = header.group(1)
        elif written := _KEY.match(line):
            assert (section, written.group(2)) not in found, f"{written.group(2)} twice in [{section}]"
            found[section, written.group(2)] = (written.group(1) is not None, written.group(3).strip())
    return found


def test_example_lists_exactly_the_schemas_keys_in_their_sections() -> None:
    assert set(_example()) == {(s, k) for s, keys in config.SCHEMA.items() for k in keys}


def test_example_shows_each_keys_default() -> None:
    for (section, name), (commented, shown) in _example().items():
        key = config.SCHEMA.get(section, {}).get(name)  # a key the schema lacks fails the test above
        # A commented-out key may show no value; one set in the file is what a copy of it reads.
        if key is not None and (shown or not commented):
            assert key.parse(shown) == key.parse(key.default), f"[{section}] {name} = {shown}"
