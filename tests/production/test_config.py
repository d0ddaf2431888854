"""Production's start check: a SECRET_KEY anyone could know or guess stops the start."""

from __future__ import annotations

import re
import secrets
from pathlib import Path

import pytest

from config import Config, PLACEHOLDER_SECRET_KEYS

EXAMPLE = Path(__file__).resolve().parents[2] / "docs" / "clientgate.env.example"
SETTINGS = {"PORTAL_URL": "https://portal.example.co.uk", "MAIL_SERVER": "smtp.example.co.uk",
            "MAIL_DEFAULT_SENDER": "Example & Co <portal@example.co.uk>",
            "VONAGE_SIGNATURE_METHOD": "md5hash", "VONAGE_SMS_FROM": "ClientGate"}


def example_secret_key() -> str:
    match = re.search(r"^SECRET_KEY=(.*)$", EXAMPLE.read_text(), re.MULTILINE)
    assert match, "the example file sets SECRET_KEY"
    return match.group(1).strip().strip("'\"")


def test_the_example_files_placeholder_is_refused():
    placeholder = example_secret_key()
    assert placeholder in PLACEHOLDER_SECRET_KEYS
    with pytest.raises(RuntimeError, match="placeholder") as refused:
        Config.check({**SETTINGS, "SECRET_KEY": placeholder})
    assert "secrets.token_urlsafe(48)" in str(refused.value)  # the command that makes one


@pytest.mark.parametrize("key", ["x", "x" * 31, secrets.token_urlsafe(48)[:31]])
def test_a_key_shorter_than_32_characters_is_refused(key):
    with pytest.raises(RuntimeError, match="too short") as refused:
        Config.check({**SETTINGS, "SECRET_KEY": key})
    assert "secrets.token_urlsafe(48)" in str(refused.value)
    assert f"(this one has {len(key)})" in str(refused.value)


@pytest.mark.parametrize("key", [None, "", "   " * 20])
def test_a_missing_or_blank_key_is_refused(key):
    with pytest.raises(RuntimeError, match="SECRET_KEY is not set"):
        Config.check({**SETTINGS, "SECRET_KEY": key})


@pytest.mark.parametrize("key", [secrets.token_urlsafe(24)[:32], secrets.token_urlsafe(48),
                                 secrets.token_hex(32)])
def test_a_long_random_key_is_accepted(key):
    assert len(key) >= 32
    Config.check({**SETTINGS, "SECRET_KEY": key})


def test_a_claim_shorter_than_three_mail_timeouts_is_refused():
    """A hand-over that outlasts its claim is claimed again elsewhere and sent twice."""
    key = secrets.token_urlsafe(48)
    with pytest.raises(RuntimeError, match="DISPATCHER_CLAIM_SECONDS"):
        Config.check({**SETTINGS, "SECRET_KEY": key, "DISPATCHER_CLAIM_SECONDS": 30,
                      "MAIL_TIMEOUT": 20})
    defaults = {"DISPATCHER_CLAIM_SECONDS": Config.DISPATCHER_CLAIM_SECONDS,
                "MAIL_TIMEOUT": Config.MAIL_TIMEOUT}  # 90 and 20
    Config.check({**SETTINGS, "SECRET_KEY": key, **defaults})


@pytest.mark.parametrize("sender", [
    None, "", "ClientGate <no-reply@localhost>", "portal@localhost", "Firm <portal@server1>",
    "portal@app.localhost", "not an address", "Smith, portal@smithandco.co.uk",
])
def test_a_sender_no_mail_provider_would_accept_is_refused(sender):
    """Mail from no-reply@localhost (the default) is handed over and then refused or filed
    as junk at the client's end: production does not start with it."""
    with pytest.raises(RuntimeError, match="MAIL_DEFAULT_SENDER must be an address at your"):
        Config.check({**SETTINGS, "SECRET_KEY": secrets.token_urlsafe(48),
                      "MAIL_DEFAULT_SENDER": sender})


@pytest.mark.parametrize("sender", [
    "portal@smithandco.co.uk", "Smith & Co <portal@smithandco.co.uk>",
    ("Smith & Co", "portal@smithandco.co.uk"), "Müller <portal@müller.de>",
    "Smith, Jones & Co <portal@smithjones.co.uk>", '"Smith, Jones & Co" <portal@smithjones.co.uk>',
])
def test_a_sender_at_a_domain_is_accepted(sender):
    Config.check({**SETTINGS, "SECRET_KEY": secrets.token_urlsafe(48),
                  "MAIL_DEFAULT_SENDER": sender})


@pytest.mark.parametrize("days", [0, 36501, 1000000])
def test_retention_days_prune_cannot_count_back_is_refused(days):
    """RETENTION_DAYS=1000000 made every `prune` end in an OverflowError traceback."""
    with pytest.raises(RuntimeError, match="RETENTION_DAYS must be a number of days up to"):
        Config.check({**SETTINGS, "SECRET_KEY": secrets.token_urlsafe(48),
                      "RETENTION_DAYS": days})
    Config.check({**SETTINGS, "SECRET_KEY": secrets.token_urlsafe(48),
                  "RETENTION_DAYS": 36500})


# --- mail settings that cannot work -------------------------------------------------------

MAIL_LOGIN = {"MAIL_USERNAME": "portal@example.co.uk", "MAIL_PASSWORD": "mail-password"}


@pytest.mark.parametrize("settings, refusal", [
    ({"MAIL_USE_TLS": True, "MAIL_USE_SSL": True},
     "MAIL_USE_TLS and MAIL_USE_SSL are both on"),
    ({"MAIL_USE_TLS": True, "MAIL_USERNAME": "portal@example.co.uk"},
     "MAIL_USERNAME is set but MAIL_PASSWORD is not"),
    ({"MAIL_USE_TLS": True, "MAIL_PASSWORD": "mail-password"},
     "MAIL_PASSWORD is set but MAIL_USERNAME is not"),
    ({**MAIL_LOGIN}, "MAIL_PASSWORD would be sent to smtp.example.co.uk in clear"),
    ({**MAIL_LOGIN, "MAIL_SERVER": "localhost.example.co.uk"},
     "MAIL_PASSWORD would be sent to localhost.example.co.uk in clear"),
    ({"MAIL_USE_TLS": True, "MAIL_TIMEOUT": 0}, "MAIL_TIMEOUT must be a number of seconds"),
    ({"MAIL_USE_TLS": True, "MAIL_TIMEOUT": -1}, "MAIL_TIMEOUT must be a number of seconds"),
    ({"MAIL_USE_TLS": True, "MAIL_PORT": 70000}, "MAIL_PORT must be a port number"),
])
def test_mail_settings_that_cannot_work_stop_the_start(settings, refusal):
    """Each of these made every message fail (or log in to no one, or send the password in
    clear), retried as a passing failure until its code ran out."""
    with pytest.raises(RuntimeError, match=refusal):
        Config.check({**SETTINGS, "SECRET_KEY": secrets.token_urlsafe(48), "MAIL_PORT": 587,
                      "MAIL_TIMEOUT": 20, **settings})


@pytest.mark.parametrize("settings", [
    {"MAIL_USE_TLS": True, **MAIL_LOGIN},
    {"MAIL_USE_SSL": True, "MAIL_PORT": 465, **MAIL_LOGIN},
    {"MAIL_USE_TLS": True},
    {"MAIL_PORT": 25},  # a server that takes mail without a login
    # A relay on this machine: the password never crosses the network.
    {"MAIL_SERVER": "localhost", "MAIL_PORT": 25, **MAIL_LOGIN},
    {"MAIL_SERVER": "127.0.0.1", "MAIL_PORT": 25, **MAIL_LOGIN},
    {"MAIL_SERVER": "::1", "MAIL_PORT": 25, **MAIL_LOGIN},
    # There a login is commonly not needed: half of one is not used (and the log says so).
    {"MAIL_SERVER": "127.0.0.1", "MAIL_PORT": 25, "MAIL_PASSWORD": "mail-password"},
    {"MAIL_SERVER": "localhost", "MAIL_PORT": 25, "MAIL_USERNAME": "portal"},
])
def test_mail_settings_that_work_are_accepted(settings):
    Config.check({**SETTINGS, "SECRET_KEY": secrets.token_urlsafe(48), "MAIL_PORT": 587,
                  "MAIL_TIMEOUT": 20, **settings})


def test_the_local_relay_is_named_in_the_refusal():
    with pytest.raises(RuntimeError) as refused:
        Config.check({**SETTINGS, "SECRET_KEY": secrets.token_urlsafe(48), **MAIL_LOGIN})
    assert "MAIL_USE_TLS=1" in str(refused.value) and "MAIL_USE_SSL=1" in str(refused.value)
    assert "MAIL_SERVER=localhost, 127.0.0.1 or ::1" in str(refused.value)


def test_development_refuses_what_cannot_work_and_keeps_the_console_outbox():
    from config import DevelopmentConfig

    DevelopmentConfig.check({"PORTAL_URL": "http://localhost:5000", "SECRET_KEY": "k" * 40,
                             "VONAGE_SIGNATURE_METHOD": "md5hash", "MAIL_SERVER": None,
                             "MAIL_USE_TLS": True, "MAIL_USE_SSL": True})  # no server: outbox
    development = {"PORTAL_URL": "http://localhost:5000", "SECRET_KEY": "k" * 40,
                   "VONAGE_SIGNATURE_METHOD": "md5hash", "MAIL_SERVER": "smtp.example.co.uk",
                   "MAIL_PORT": 2525, "MAIL_TIMEOUT": 20, **MAIL_LOGIN}
    DevelopmentConfig.check(development)  # a test mailbox service, on the developer's machine
    with pytest.raises(RuntimeError, match="MAIL_USE_TLS and MAIL_USE_SSL are both on"):
        DevelopmentConfig.check({**development, "MAIL_USE_TLS": True, "MAIL_USE_SSL": True})


def test_with_vonage_the_claim_must_outlast_three_text_hand_overs_too():
    """A text's hand-over (Vonage's connection, TLS and answer, VONAGE_TIMEOUT) was not
    counted: a claim of 45 s with MAIL_TIMEOUT=15 left less than three of them."""
    settings = {**SETTINGS, "SECRET_KEY": secrets.token_urlsafe(48), "MAIL_TIMEOUT": 15,
                "DISPATCHER_CLAIM_SECONDS": 45, "VONAGE_TIMEOUT": Config.VONAGE_TIMEOUT}
    Config.check(settings)  # email only
    with pytest.raises(RuntimeError, match=r"DISPATCHER_CLAIM_SECONDS \(45\) must be at least "
                                           r"three times the 20 s a text message may take"):
        Config.check({**settings, "VONAGE_API_KEY": "key"})
    Config.check({**settings, "VONAGE_API_KEY": "key", "DISPATCHER_CLAIM_SECONDS": 60})
    Config.check({**SETTINGS, "SECRET_KEY": secrets.token_urlsafe(48), "VONAGE_API_KEY": "key",
                  "MAIL_TIMEOUT": Config.MAIL_TIMEOUT, "VONAGE_TIMEOUT": Config.VONAGE_TIMEOUT,
                  "DISPATCHER_CLAIM_SECONDS": Config.DISPATCHER_CLAIM_SECONDS})  # the defaults


@pytest.mark.parametrize("sender", [
    "SmithJonesCo", "Smith Co", "Smith & Co", "Müller", "+447700900123", "00447700900123",
    "12345", "",
])
def test_a_text_message_sender_no_network_takes_stops_the_start(sender):
    """Texts from such a sender may be changed on the way or never delivered (Vonage)."""
    with pytest.raises(RuntimeError, match="VONAGE_SMS_FROM must be the name clients see"):
        Config.check({**SETTINGS, "SECRET_KEY": secrets.token_urlsafe(48),
                      "VONAGE_API_KEY": "key", "VONAGE_SMS_FROM": sender})


@pytest.mark.parametrize("sender", ["SmithCo", "Smith2Co", "ClientGate", "447700900123"])
def test_a_text_message_sender_networks_take_is_accepted(sender):
    Config.check({**SETTINGS, "SECRET_KEY": secrets.token_urlsafe(48),
                  "VONAGE_API_KEY": "key", "VONAGE_SMS_FROM": sender})


def test_without_vonage_the_text_message_sender_is_not_checked():
    Config.check({**SETTINGS, "SECRET_KEY": secrets.token_urlsafe(48),
                  "VONAGE_SMS_FROM": "Smith & Jones Chartered Accountants"})
