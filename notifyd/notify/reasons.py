"""Why a send failed, in words a user can act on, from what Apprise said.

Apprise reports a service it could not reach in urllib3's or smtplib's own
words ("Socket Exception: HTTPSConnectionPool(host='discord.com', port=443):
Max retries exceeded ... NameResolutionError ..."). Those stay in the
watcher's log as they are; `notifyd test` and `notifyd status` show this
instead:

    could not reach discord.com (DNS lookup failed): is this machine online, or does it need a proxy?

A failure that is not about reaching the service (an answer it gave: 401,
404, 429...) is shown as Apprise said it, with targets.hint's advice. The
texts matched are those Apprise 2.3 logs (tests/notify/test_reasons.py
holds them as measured).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from notifyd.notify.targets import hint

PROXY = "is this machine online, or does it need a proxy?"
# (what went wrong, what to do) by the words of the error, first match wins:
# a timeout before "closed", since smtplib says "Connection unexpectedly closed: timed out".
_KINDS: tuple[tuple[re.Pattern[str], str, str], ...] = tuple(
    (re.compile(pattern, re.IGNORECASE), why, advice) for pattern, why, advice in (
        (r"NameResolutionError|Name or service not known|Temporary failure in name resolution"
         r"|No address associated with hostname|nodename nor servname|getaddrinfo failed",
         "DNS lookup failed", PROXY),
        (r"Connection refused|\[Errno 111\]",
         "connection refused", "nothing answers on that port: is the service up and the port right?"),
        (r"timed out|Timeout",
         "no answer in time", "the service may be down or slow, or a firewall drops the connection; "
         + PROXY),
        (r"WRONG_VERSION_NUMBER|wrong version number|record layer failure|packet length too long",
         "TLS failed: the server does not speak TLS there",
         "if it is plain HTTP, use the scheme without the s (json:// for jsons://)"),
        (r"CERTIFICATE_VERIFY_FAILED|certificate verify failed",
         "its TLS certificate is not trusted here",
         "an expired or self-signed certificate, or a proxy that intercepts TLS; ask your admin"),
        (r"SSLError|\[SSL",
         "TLS handshake failed", "check the URL's scheme and port, or ask your admin about a proxy"),
        (r"Network is unreachable|No route to host|\[Errno 101\]|\[Errno 113\]",
         "no route to it", PROXY),
        (r"Connection reset|RemoteDisconnected|Connection aborted|unexpectedly closed",
         "the connection was closed before an answer", "the service or a proxy in between dropped it; "
         "it is retried"),
    ))
# urllib3 names the host and port it tried; smtplib's error does not, Apprise's email plugin does.
_HTTP_HOST = re.compile(r"host='([^']+)', port=(\d+)")
_MAIL_HOST = re.compile(r'email to "([^"]+)"')
_DEFAULT_PORTS = ("80", "443")


@dataclass(frozen=True)
class Reason:
    """A failed send in words: what went wrong, and what to do about it."""

    what: str
    advice: str
    reached: bool  # False: the service was never reached (no answer of its own to show)

    @property
    def line(self) -> str:
        return f"{self.what}: {self.advice}" if self.advice else self.what


def _where(detail: str) -> str:
    """The host (and a port that is not 80 or 443) the error names."""
    found = _HTTP_HOST.search(detail)
    if found:
        host, port = found.groups()
        return host if port in _DEFAULT_PORTS else f"{host}:{port}"
    mail = _MAIL_HOST.search(detail)
    return mail.group(1) if mail else "the service"


def explain(detail: str, status: int | None = None) -> Reason:
    """`detail` (what Apprise said, secrets scrubbed) and the status the service answered, as a Reason."""
    if status is None:
        for pattern, why, advice in _KINDS:
            if pattern.search(detail):
                return Reason(f"could not reach {_where(detail)} ({why})", advice, reached=False)
    return Reason(detail or "the service did not accept it", hint(status), reached=True)

