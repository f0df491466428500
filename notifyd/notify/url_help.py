"""A URL Apprise cannot use: shown with only its secret parts hidden, and what its scheme expects.

Apprise masks the secrets of a URL it could parse; one it could not parse
has no plugin to say which parts are secret, so this guesses, hiding more
rather than less: a password, a user part without one (a Matrix access
token sits there), every path segment but a `#room` or `#channel`, every
query value but the harmless ones (`mode`, `to`...). The host stays: it is
the webhook id of a discord:// URL, the server of the others, and no
secret. A string with no scheme at all is shown, unless it looks like a
token (a long run of letters and digits).

    $ notifyd init --url discord://123 --yes
    notifyd: --url discord://123 is not a URL Apprise can use: a Discord URL
    is discord://WEBHOOK_ID/WEBHOOK_TOKEN ...
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import parse_qsl, urlsplit

MASK = "****"
SHOWN_CHARS = 80  # a long pasted string is cut: the start is enough to recognise it
# Query keys whose values are settings, not secrets.
_HARMLESS = frozenset({"mode", "format", "overflow", "verify", "rto", "cto", "method", "priority", "to",
                       "from", "cc", "bcc", "name", "ping", "tts", "avatar", "footer", "image", "hsreq",
                       "msgtype", "version", "smtp", "user", "batch", "region", "lang", "thread"})
# A token: 16 or more characters of the kinds tokens are made of, with letters and digits both.
_TOKENISH = re.compile(r"(?=[\w.~+/=:-]*\d)(?=[\w.~+/=:-]*[A-Za-z])[\w.~+/=:-]{16,}")

BACKENDS = "see the Backends section of notifyd's README for the services labs use"
# What each scheme labs use expects, in the words of the README's Backends section.
EXPECTS = {
    "discord": "a Discord URL is discord://WEBHOOK_ID/WEBHOOK_TOKEN, or the webhook's "
               "https://discord.com/api/webhooks/ID/TOKEN as Discord gives it",
    "slack": "a Slack URL is slack://T…/B…/TOKEN, the three parts after /services/ of an incoming "
             "webhook's URL, with an optional /#channel",
    "matrix": "a Matrix URL is matrixs://USER:PASSWORD@HOMESERVER/#room or "
              "matrixs://ACCESS_TOKEN@HOMESERVER/#room",
    "mailto": "an email URL is mailtos://USER:PASSWORD@SMTP_HOST?to=ADDRESS (with :PORT after the host "
              "and from=ADDRESS when needed)",
    "ntfy": "an ntfy URL is ntfys://ntfy.sh/TOPIC, or your own server's host in place of ntfy.sh",
    "json": "a JSON webhook URL is json://HOST:PORT/PATH, or jsons:// for https",
    "tgram": "a Telegram URL is tgram://BOT_TOKEN/CHAT_ID (the token from @BotFather, then the chat's id)",
    "https": "Apprise takes an https:// URL as it is only from services it knows (Discord, Slack, "
             "Telegram, ntfy.sh); for another web hook write json://HOST/PATH or jsons://HOST/PATH",
}
_SAME = {"matrixs": "matrix", "mailtos": "mailto", "ntfys": "ntfy", "jsons": "json", "http": "https"}
_HOSTS = {"discord.com": "discord", "discordapp.com": "discord", "hooks.slack.com": "slack",
          "ntfy.sh": "ntfy"}


def _looks_secret(text: str) -> bool:
    return bool(_TOKENISH.fullmatch(text))


def _cut(text: str) -> str:
    return text if len(text) <= SHOWN_CHARS else text[: SHOWN_CHARS - 1] + "…"


def mask(url: str) -> str:
    """`url` as it may be printed and logged: the parts that could be secret hidden."""
    scheme, sep, rest = url.strip().partition("://")
    if not sep:
        text = url.strip()
        return MASK if any(_looks_secret(word) for word in re.split(r"[\s@:/?&=]+", text)) else _cut(text)
    netloc, path, query = _parts(rest)
    user, at, host = netloc.rpartition("@")
    host = _host(host)
    if at:
        name, colon, _password = user.partition(":")
        user = f"{name}:{MASK}" if colon and not _looks_secret(name) else MASK
        host = f"{user}@{host}"
    segments = [seg if _plain_segment(seg) else MASK for seg in path.split("/")]
    shown = f"{scheme}://{host}{'/'.join(segments)}"
    if query:
        pairs = [f"{k}={v if k.lower() in _HARMLESS and not _looks_secret(v) else MASK}"
                 for k, v in parse_qsl(query, keep_blank_values=True)]
        shown += "?" + "&".join(pairs)
    return _cut(shown)


def _host(host: str) -> str:
    """The host, and a port; what sits in their place and is no host (a bot token) hidden."""
    name, colon, port = host.rpartition(":") if ":" in host else (host, "", "")
    if colon and not port.isdigit():
        return f"{name}:{MASK}" if name.isdigit() else MASK  # tgram://BOT_ID:TOKEN/...
    if _looks_secret(name) and "." not in name:
        return MASK + (f":{port}" if colon else "")  # pover://USER@TOKEN: a token in the host's place
    return host


def _plain_segment(seg: str) -> bool:
    """A path segment that is no secret: empty, a #room or #channel, a number (a webhook id), a URL word."""
    return not seg or seg.startswith(("#", "%23")) or seg.isdigit() or seg in ("api", "webhooks", "services")


def _parts(rest: str) -> tuple[str, str, str]:
    """(netloc, path, query) of what follows '://'; a Matrix '#room' stays in the path."""
    head, _, query = rest.partition("?")
    netloc, slash, path = head.partition("/")
    return netloc, slash + path, query


def expects(url: str) -> str:
    """What a URL of this scheme must look like, or where to look it up."""
    scheme, sep, _ = url.strip().partition("://")
    if not sep:
        return f"a URL starts with its service's scheme, like discord:// or mailtos://; {BACKENDS}"
    scheme = scheme.lower()
    if scheme in ("http", "https"):
        host = (urlsplit(url.strip()).hostname or "").lower()
        scheme = _HOSTS.get(host, scheme)
    key = _SAME.get(scheme, scheme)
    if key in EXPECTS:
        return EXPECTS[key]
    if not _known(scheme):
        return f"Apprise knows no service called {scheme}://; {BACKENDS}"
    return (f"check its parts against Apprise's page for {scheme}:// "
            f"(https://github.com/caronc/apprise/wiki); {BACKENDS}")


def _known(scheme: str) -> bool:
    """Does any Apprise plugin serve `scheme`? (Loads every plugin: for error messages only.)"""
    import importlib

    # Apprise has no type hints: the manager is Any to the type checker.
    manager: Any = importlib.import_module("apprise.manager_plugins").NotificationManager()
    return scheme in manager.schemas()


def problem(url: str) -> str:
    """The sentence for a URL Apprise cannot use: the URL masked, what it expects."""
    return f"{mask(url)} is not a URL Apprise can use: {expects(url)}"
