"""A URL Apprise cannot use: only its secret parts hidden, and what its scheme expects."""

from __future__ import annotations

import pytest

from notifyd.notify.url_help import BACKENDS, expects, mask, problem

TOKEN = "AbCdEfGhIjKlMnOpQrStUvWxYz0123456789"


# -- masking ------------------------------------------------------------------------------------

def test_a_string_that_is_not_a_url_is_shown_as_it_is() -> None:
    assert mask("notaurl") == "notaurl"


def test_a_string_that_is_not_a_url_but_looks_like_a_token_is_hidden() -> None:
    assert mask(TOKEN) == "****"
    assert mask(f"webhook {TOKEN}") == "****"


def test_a_discord_url_keeps_its_webhook_id_and_hides_its_token() -> None:
    assert mask(f"discord://123456789012345678/{TOKEN}") == "discord://123456789012345678/****"
    assert mask("discord://123") == "discord://123"


def test_a_pasted_discord_webhook_keeps_its_id_and_hides_its_token() -> None:
    assert (mask(f"https://discord.com/api/webhooks/123456789012345678/{TOKEN}")
            == "https://discord.com/api/webhooks/123456789012345678/****")


def test_a_password_is_hidden_and_the_user_and_host_are_kept() -> None:
    assert mask("mailtos://ana:s3cr3t@smtp.example.org?to=ana@example.org") == (
        "mailtos://ana:****@smtp.example.org?to=ana@example.org")


def test_a_user_part_without_a_password_is_hidden_it_may_be_an_access_token() -> None:
    assert mask("matrixs://syt_bm90aWZ5Ym90_AbCdEf_0abcde@matrix.example.org/#lab") == (
        "matrixs://****@matrix.example.org/#lab")


def test_a_room_or_channel_is_kept_and_other_path_parts_are_hidden() -> None:
    assert (mask("slack://T1JJ3T3L2/A1BRTD4JD/TIiajkdnlazkcOXrIdevi7FQ/#jobs")
            == "slack://T1JJ3T3L2/****/****/#jobs")
    assert mask("ntfys://ntfy.sh/ana-jobs-7f3k2") == "ntfys://ntfy.sh/****"


def test_a_bot_token_in_the_hosts_place_is_hidden() -> None:
    assert mask("tgram://123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw/987654321") == (
        "tgram://123456789:****/987654321")


def test_query_values_are_hidden_but_settings_are_kept() -> None:
    assert (mask(f"json://host:8080/?mode=insecure&token={TOKEN}")
            == "json://host:8080/?mode=insecure&token=****")


@pytest.mark.parametrize("url", [
    f"discord://1/{TOKEN}", f"https://discord.com/api/webhooks/1/{TOKEN}", f"matrixs://{TOKEN}@m.org/#r",
    f"matrix://bot:{TOKEN}@m.org", f"json://h/?key={TOKEN}", TOKEN, f"pover://user@{TOKEN}",
    f"tgram://1:{TOKEN}/2", f"nosuch://{TOKEN}",
])
def test_no_token_is_ever_shown(url: str) -> None:
    assert TOKEN not in mask(url) and TOKEN not in problem(url)


# -- what each scheme expects ---------------------------------------------------------------------

@pytest.mark.parametrize(("url", "words"), [
    ("discord://123", "discord://WEBHOOK_ID/WEBHOOK_TOKEN"),
    ("https://discord.com/api/webhooks/123", "discord://WEBHOOK_ID/WEBHOOK_TOKEN"),
    ("slack://T1", "slack://T…/B…/TOKEN"),
    ("matrix://host", "matrixs://USER:PASSWORD@HOMESERVER/#room"),
    ("matrixs://host", "matrixs://ACCESS_TOKEN@HOMESERVER/#room"),
    ("mailto://", "mailtos://USER:PASSWORD@SMTP_HOST?to=ADDRESS"),
    ("mailtos://x", "mailtos://USER:PASSWORD@SMTP_HOST?to=ADDRESS"),
    ("ntfy://", "ntfys://ntfy.sh/TOPIC"),
    ("ntfys://", "ntfys://ntfy.sh/TOPIC"),
    ("json://", "json://HOST:PORT/PATH"),
    ("jsons://", "json://HOST:PORT/PATH"),
    ("https://example.org/hook", "json://HOST/PATH"),
])
def test_each_scheme_labs_use_says_what_it_expects(url: str, words: str) -> None:
    assert words in expects(url)


def test_a_string_without_a_scheme_is_told_what_a_url_starts_with() -> None:
    assert expects("notaurl").startswith("a URL starts with its service's scheme")
    assert BACKENDS in expects("notaurl")


def test_an_unknown_scheme_is_named_as_unknown_to_apprise() -> None:
    assert expects("nosuchservice://x").startswith("Apprise knows no service called nosuchservice://")


def test_another_scheme_apprise_knows_points_at_its_page_and_the_readme() -> None:
    words = expects("gotify://host")
    assert "gotify://" in words and "apprise/wiki" in words and BACKENDS in words


def test_the_problem_sentence_names_the_masked_url_and_what_it_expects() -> None:
    assert problem("discord://123") == ("discord://123 is not a URL Apprise can use: a Discord URL is "
                                        "discord://WEBHOOK_ID/WEBHOOK_TOKEN, or the webhook's "
                                        "https://discord.com/api/webhooks/ID/TOKEN as Discord gives it")
