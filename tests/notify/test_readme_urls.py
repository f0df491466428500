"""Every notification URL the README and notifyd.conf.example show is one Apprise accepts.

Users copy these examples; one that Apprise cannot parse makes `notifyd` refuse
the whole config. The examples are found in the README's fenced code blocks
and in the example config's comments: every whitespace-separated word holding
"://", with a routing tag (`failure=URL`) taken off as the watcher does.
"""

from __future__ import annotations

import re

import apprise
import pytest
from harness import REPO

from notifyd.notify.targets import split_tags

ROOT = REPO
README = ROOT / "README.md"
CONF_EXAMPLE = ROOT / "notifyd.conf.example"
BACKENDS = ("Discord", "Matrix", "Email", "Slack", "ntfy", "Telegram")
# Each backend's URL schemes (the secure and plain forms, and the service's own https:// URL).
SCHEMES = {
    "Discord": ("discord", "https"), "Matrix": ("matrix", "matrixs"), "Email": ("mailto", "mailtos"),
    "Slack": ("slack", "https"), "ntfy": ("ntfy", "ntfys"), "Telegram": ("tgram",),
}
URL_WORD = re.compile(r"\S+://\S+")


def _urls_in(text: str) -> list[str]:
    found = []
    for match in URL_WORD.findall(text):
        word = match.strip("`'\"")
        if "****" in word:
            continue  # a masked URL in a sample of notifyd's output, not an example to copy
        found.append(split_tags(word)[1])
    return found


def readme_urls() -> list[tuple[str, str]]:
    """(heading path, URL) for every URL in a fenced code block of the README."""
    found: list[tuple[str, str]] = []
    h2 = h3 = ""
    fence = ""
    for line in README.read_text().splitlines():
        stripped = line.strip()
        if stripped.startswith("```"):
            fence = "" if fence else stripped
            continue
        if fence:
            found.extend((f"{h2} / {h3}" if h3 else h2, url) for url in _urls_in(line))
        elif line.startswith("## "):
            h2, h3 = line[3:].strip(), ""
        elif line.startswith("### "):
            h3 = line[4:].strip()
    return found


def conf_example_urls() -> list[str]:
    """Every URL in a comment of notifyd.conf.example."""
    return [url for line in CONF_EXAMPLE.read_text().splitlines() if line.lstrip().startswith("#")
            for url in _urls_in(line.lstrip()[1:])]


def _parses(url: str) -> bool:
    return apprise.Apprise.instantiate(url) is not None


@pytest.mark.parametrize(("where", "url"), readme_urls(), ids=[u for _w, u in readme_urls()])
def test_readme_url_example_parses(where: str, url: str) -> None:
    assert _parses(url), f"README.md ({where}): Apprise cannot parse {url}"


@pytest.mark.parametrize("url", conf_example_urls())
def test_conf_example_url_parses(url: str) -> None:
    assert _parses(url), f"notifyd.conf.example: Apprise cannot parse {url}"


@pytest.mark.parametrize("backend", BACKENDS)
def test_every_backend_section_of_the_readme_shows_its_url(backend: str) -> None:
    urls = [url for where, url in readme_urls() if where == f"Backends / {backend}"]
    assert urls, f'README.md has no URL in a code block under "## Backends" / "### {backend}"'
    assert all(url.split("://", 1)[0] in SCHEMES[backend] for url in urls), urls


def test_conf_example_shows_a_url_for_every_backend() -> None:
    schemes = {url.split("://", 1)[0] for url in conf_example_urls()}
    missing = [b for b in BACKENDS if not schemes & set(SCHEMES[b]) - {"https"}]
    assert not missing, f"notifyd.conf.example has no URL example for {missing}"


def test_a_url_that_does_not_parse_is_caught() -> None:
    # The check itself must be able to fail: the old placeholder form did not parse.
    assert not _parses("https://discord.com/api/webhooks/WEBHOOK_ID/WEBHOOK_TOKEN")
    assert _urls_in("    failure=ntfys://ntfy.sh/ana-phone-7f3k2") == ["ntfys://ntfy.sh/ana-phone-7f3k2"]
