"""A failed send in words, from what Apprise 2.3 said (texts as measured here, secrets scrubbed)."""

from __future__ import annotations

import pytest

from notifyd.notify.reasons import PROXY, explain

DISCORD_DNS = (
    "A Connection error occurred posting to Discord.; Socket Exception: "
    "HTTPSConnectionPool(host='discord.com', port=443): Max retries exceeded with url: "
    "/api/webhooks/123456789012345678/**** (Caused by "
    "NameResolutionError(\"HTTPSConnection(host='discord.com', port=443): Failed to resolve 'discord.com' "
    "([Errno -2] Name or service not known)\"))")
JSON_REFUSED = (
    "A Connection error occurred sending JSON notification to 127.0.0.1.; Socket Exception: "
    "HTTPConnectionPool(host='127.0.0.1', port=45175): Max retries exceeded with url: / (Caused by "
    "NewConnectionError(\"HTTPConnection(host='127.0.0.1', port=45175): Failed to establish a new "
    "connection: [Errno 111] Connection refused\"))")
JSON_TIMEOUT = (
    "A Connection error occurred sending JSON notification to 127.0.0.1.; Socket Exception: "
    "HTTPConnectionPool(host='127.0.0.1', port=35155): Read timed out. (read timeout=1.0)")
JSONS_PLAIN = (
    "A Connection error occurred sending JSON notification to 127.0.0.1.; Socket Exception: "
    "HTTPSConnectionPool(host='127.0.0.1', port=43895): Max retries exceeded with url: / (Caused by "
    "SSLError(SSLError(1, '[SSL: WRONG_VERSION_NUMBER] wrong version number (_ssl.c:1006)')))")
MATRIX_TLS = (
    "Socket Exception: HTTPSConnectionPool(host='matrix.example.org', port=443): Max retries exceeded with "
    "url: /.well-known/matrix/client (Caused by SSLError(SSLCertVerificationError(1, '[SSL: "
    "CERTIFICATE_VERIFY_FAILED] certificate verify failed: self-signed certificate (_ssl.c:1006)'))); "
    "Matrix Well-Known Base URI Discovery Failed - https://matrix.example.org/.well-known/matrix/client "
    "returned error code: 500")
MAIL_REFUSED = ('Connection error while submitting email to "127.0.0.1"; Socket Exception: '
                "[Errno 111] Connection refused")
MAIL_TIMEOUT = ('Connection error while submitting email to "smtp.example.org"; Socket Exception: '
                "Connection unexpectedly closed: timed out")
MAIL_DNS = ('Connection error while submitting email to "notifyd-test.invalid"; Socket Exception: '
            "[Errno -2] Name or service not known")
NTFY_UNREACHABLE = ("A Connection error occurred sending ntfy:https://ntfy.example.org notification.; Socket "
                    "Exception: HTTPSConnectionPool(host='ntfy.example.org', port=443): Max retries exceeded "
                    "with url: / (Caused by NewConnectionError(\"HTTPSConnection(host='ntfy.example.org', "
                    "port=443): Failed to establish a new connection: [Errno 101] Network is unreachable\"))")


def test_the_issues_discord_example_reads_as_the_issue_asks() -> None:
    assert explain(DISCORD_DNS).line == f"could not reach discord.com (DNS lookup failed): {PROXY}"


@pytest.mark.parametrize(("raw", "what"), [
    (JSON_REFUSED, "could not reach 127.0.0.1:45175 (connection refused)"),
    (JSON_TIMEOUT, "could not reach 127.0.0.1:35155 (no answer in time)"),
    (JSONS_PLAIN, "could not reach 127.0.0.1:43895 (TLS failed: the server does not speak TLS there)"),
    (MATRIX_TLS, "could not reach matrix.example.org (its TLS certificate is not trusted here)"),
    (MAIL_REFUSED, "could not reach 127.0.0.1 (connection refused)"),
    (MAIL_TIMEOUT, "could not reach smtp.example.org (no answer in time)"),
    (MAIL_DNS, "could not reach notifyd-test.invalid (DNS lookup failed)"),
    (NTFY_UNREACHABLE, "could not reach ntfy.example.org (no route to it)"),
])
def test_each_way_of_not_reaching_a_service_is_named_with_its_host(raw: str, what: str) -> None:
    reason = explain(raw)
    assert reason.what == what and not reason.reached


@pytest.mark.parametrize("raw", [DISCORD_DNS, JSON_REFUSED, JSON_TIMEOUT, JSONS_PLAIN, MATRIX_TLS, MAIL_DNS])
def test_no_raw_library_words_are_left_in_the_explanation(raw: str) -> None:
    line = explain(raw).line
    for word in ("Socket Exception", "ConnectionPool", "Errno", "SSLError", "Caused by"):
        assert word not in line


def test_a_plain_http_server_behind_jsons_suggests_the_scheme_without_s() -> None:
    assert "json:// for jsons://" in explain(JSONS_PLAIN).advice


def test_an_answer_from_the_service_is_shown_as_it_was_with_what_to_do() -> None:
    raw = "Failed to send JSON notification: Unauthorized - error=401."
    reason = explain(raw, 401)
    assert reason.reached and reason.what == raw
    assert reason.advice.startswith("the service refused the URL's token")


def test_an_unknown_failure_keeps_its_text_and_the_backoff_hint() -> None:
    reason = explain("Something odd happened")
    assert reason.line == "Something odd happened: retried with backoff"


def test_an_empty_failure_says_the_service_did_not_accept_it() -> None:
    assert explain("").what == "the service did not accept it"
