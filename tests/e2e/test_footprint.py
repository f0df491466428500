"""What keeps the watcher small and the listings fast (figures in bench/results.md).

- An Apprise URL of a known service loads that one plugin, and gives exactly
  the plugin Apprise's own loader would (same class, same URL, same key).
- A watcher started in the background carries neither typer nor psutil.
- `notifyd inbox -n N` reads the newest N records from the end of the files.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from harness import PY, Home, imported_modules, lease_holder, wait_until

from notifyd.notify import apprise_urls, inbox
from notifyd.notify import targets as sender

# One URL per module in apprise_urls' tables, in the forms a user pastes.
URLS = [
    "json://127.0.0.1:8000/hook",
    "jsons://example.org/path?method=PUT",
    "form://127.0.0.1:8000/form",
    "xml://127.0.0.1:8000/xml",
    "discord://123456789012345678/AbCdEfGhIjKlMnOpQrStUvWxYz0123456789",
    "https://discord.com/api/webhooks/123456789012345678/AbCdEfGhIjKlMnOpQrStUvWxYz0123456789",
    "https://discordapp.com/api/webhooks/123456789012345678/AbCdEfGhIjKlMn",
    "slack://T1JJ3T3L2/A1BRTD4JD/TIiajkdnlazkcOXrIdevi7FQ/#general",
    "https://hooks.slack.com/services/T1JJ3T3L2/A1BRTD4JD/TIiajkdnlazkcOXrIdevi7FQ",
    "matrix://bot:secret@127.0.0.1:8008/#lab",
    "matrixs://bot:secret@matrix.example.org/!abcdefg:example.org",
    "mailto://alice:pw@127.0.0.1:2525?from=alice@example.org&to=bob@example.org&mode=insecure",
    "mailtos://alice:pw@smtp.example.org?to=bob@example.org",
    "ntfy://lab-jobs-7f3a",
    "ntfys://ntfy.example.org/lab-jobs",
    "https://ntfy.sh/lab-jobs-7f3a",
    "tgram://123456789:abcdefg_hijklmnop/12315544/",
    "mmost://mattermost.example.org/3ccdd113474722377935511fc85d3dd4",
    "rocket://user:pass@rocket.example.org/#channel",
    "zulip://bot@example.org/abcdefghijklmnopqrstuvwxyz012345/stream",
    "gotify://gotify.example.org/ABCDEFGHIJKLMNO",
    "pover://uQiRzpo4DXghDmr9QzzfQu27cmVRsG@azGDORePK8gMaC0QOYAMyEEuzJnyUi",
]


@pytest.fixture(scope="module")
def apprise_module() -> object:
    return sender._apprise()


@pytest.mark.parametrize("url", URLS)
def test_a_known_service_gets_the_same_plugin_as_apprise_would_build(apprise_module: object,
                                                                    url: str) -> None:
    ours = apprise_urls._direct(apprise_module, url)
    theirs = apprise_module.Apprise.instantiate(url)  # type: ignore[attr-defined]
    assert theirs is not None, f"the test's URL is not valid for Apprise: {url}"
    assert ours is not None, f"{url} fell back to the full loader"
    assert type(ours) is type(theirs)
    assert ours.url(privacy=False) == theirs.url(privacy=False)
    assert sender.url_key(ours.url(privacy=False)) == sender.url_key(theirs.url(privacy=False))


@pytest.mark.parametrize("url", ["pbul://o.gn5kj6nfhv736I7jC3cj3QLRiyhgl98b",  # not in our tables
                                 "https://example.org/not-a-service",
                                 "discord://only-an-id"])  # refused by the one plugin
def test_anything_else_goes_through_apprises_full_loader(apprise_module: object, url: str) -> None:
    assert apprise_urls._direct(apprise_module, url) is None
    full = apprise_module.Apprise.instantiate(url)  # type: ignore[attr-defined]
    assert type(apprise_urls.instantiate(apprise_module, url)) is type(full)


def test_building_a_json_target_loads_one_plugin_not_all() -> None:
    code = (
        "import sys, tempfile\n"
        "from pathlib import Path\n"
        "from notifyd import config\nfrom notifyd.notify import targets as sender\n"
        "d = Path(tempfile.mkdtemp())\n"
        "(d / 'c').write_text('[notify]\\nurls = json://127.0.0.1:9/x\\n')\n"
        "(d / 'c').chmod(0o600)\n"
        "targets = sender.build_targets(config.load(d / 'c'), d, 'h')\n"
        "print(len(targets), sum(m.startswith('apprise.plugins.') for m in sys.modules))\n"
    )
    p = subprocess.run([PY, "-c", code], capture_output=True, text=True, timeout=60, cwd="/")
    assert p.returncode == 0, p.stderr
    targets, plugin_modules = map(int, p.stdout.split())
    assert targets == 2  # the inbox and the URL
    # Apprise's own loader imports ~220; the base modules plus custom_json stay under 20.
    assert plugin_modules < 20


def test_the_background_watcher_carries_neither_typer_nor_psutil(home: Home) -> None:
    imported = imported_modules("import notifyd.watcher.loop", home.env)
    assert "notifyd.watcher.loop" in imported
    assert {m for m in imported if m.split(".")[0] in ("typer", "click", "rich", "psutil")} == set()


def test_a_watcher_spawned_by_pingch_shows_as_notifyd_watcher_of_its_user_in_ps(home: Home) -> None:
    assert home.pingch("true").returncode == 0
    pid = wait_until(lambda: lease_holder(home), 15, "a watcher to hold the lease")
    argv = Path(f"/proc/{pid}/cmdline").read_bytes().rstrip(b"\0").split(b"\0")
    assert argv == [f"notifyd watcher ({home.env['USER']})".encode()]
    shown = subprocess.run(["ps", "-ww", "-o", "args=", "-p", str(pid)], capture_output=True, text=True)
    assert shown.stdout == f"notifyd watcher ({home.env['USER']})\n"
    assert Path(f"/proc/{pid}/comm").read_text() == "notifyd watcher\n"  # what top shows


def test_the_named_watcher_keeps_its_environment_readable(home: Home) -> None:
    assert home.pingch("true").returncode == 0
    pid = wait_until(lambda: lease_holder(home), 15, "a watcher to hold the lease")
    environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    assert f"HOME={home.env['HOME']}".encode() in environ


# -- the inbox, newest first from the end --------------------------------------------------------
def write_inbox(path: Path, records: list[dict[str, object]], junk_every: int = 0) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w") as f:
        for i, r in enumerate(records):
            f.write(json.dumps(r) + "\n")
            if junk_every and i % junk_every == 0:
                f.write("{not json\n")


def record(i: int, host: str) -> dict[str, object]:
    return {"id": f"{host}-{i}:finish", "job": f"{host}-{i}", "time": 1000.0 + i, "kind": "success",
            "title": f"job {i} on {host}", "body": "x" * (i % 300)}


@pytest.mark.parametrize("last", [1, 7, 500, 4000])
def test_the_newest_records_read_from_the_end_equal_the_tail_of_a_full_read(tmp_path: Path,
                                                                            last: int) -> None:
    # Two hosts' files, interleaved in time, with malformed lines, and more
    # than one 64 KiB block each.
    write_inbox(tmp_path / "a.jsonl", [record(i, "a") for i in range(0, 3000, 2)], junk_every=17)
    write_inbox(tmp_path / "b.jsonl", [record(i, "b") for i in range(1, 3000, 2)])
    full = inbox.read(tmp_path)
    assert len(full) == 3000
    assert inbox.read(tmp_path, last=last) == full[-last:]


def test_a_half_written_last_line_is_skipped(tmp_path: Path) -> None:
    write_inbox(tmp_path / "a.jsonl", [record(i, "a") for i in range(10)])
    with (tmp_path / "a.jsonl").open("a") as f:
        f.write('{"id": "cut-off", "ti')
    assert [r["id"] for r in inbox.read(tmp_path, last=2)] == ["a-8:finish", "a-9:finish"]


def test_inbox_lists_the_newest_n_from_a_long_history(home: Home) -> None:
    inbox = home.state_dir / "inbox" / f"{home.host}.jsonl"
    write_inbox(inbox, [record(i, home.host) for i in range(20_000)])
    code, out, err = home.notifyd("inbox", "-n", "3", "--json")
    assert code == 0, err
    assert [json.loads(line)["job"] for line in out.splitlines()] == [
        f"{home.host}-19997", f"{home.host}-19998", f"{home.host}-19999"]
