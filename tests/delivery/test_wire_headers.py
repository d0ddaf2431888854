"""The headers of an email are written as compat32 writes them, byte for byte.

services.delivery writes a header that needs no folding (ASCII, one line, short enough) as it
is, without compat32's Header machinery. These tests compare its policy with compat32's for
every kind of value a message carries and for values at the folding length. Flask-Mail is
given each address as a (name, address) pair, which it writes without reading it again; the
last test checks the envelope and the headers of a message sent to a real SMTP server.
"""

from __future__ import annotations

import email.policy
import random
from email.header import Header

import pytest

from services import delivery
from services.delivery import _WIRE
from tests.conftest import Browser, add_user, make_config, running_app

COMPAT32 = email.policy.compat32.clone(linesep="\r\n")
NAMES = ("Subject", "From", "To", "Reply-To", "Date", "Message-ID", "Content-Type",
         "Content-Transfer-Encoding", "MIME-Version", "Auto-Submitted", "X-ClientGate-Ref")


def same_as_compat32(name, value) -> bytes:
    written = _WIRE.fold_binary(name, value)
    assert written == COMPAT32.fold_binary(name, value), (name, value)
    return written


@pytest.mark.parametrize("value", [
    "", "u1@b.example", "Bench <portal@bench.example>", "Fri, 05 Dec 2026 02:29:12 +0000",
    "<177.1234.5678@bench.example>", 'multipart/alternative; boundary="=_0123abcd"',
    "=?utf-8?q?Kanzlei_M=C3=BCller?= <noreply@example.com>", "a  b\tc ", " leading",
])
def test_a_header_as_a_message_carries_it(value):
    for name in NAMES:
        written = same_as_compat32(name, value)
        if len(name) + 2 + len(value) <= 78:
            assert written == f"{name}: {value}\r\n".encode()


def test_values_either_side_of_the_folding_length():
    words = "Your sign-in code for the portal of a firm whose name is long enough"
    for name in ("Subject", "X-ClientGate-Ref"):
        for length in range(60, 100):
            same_as_compat32(name, (words * 2)[:length])  # spaces: places to fold
            same_as_compat32(name, "x" * length)  # none: one long line either way


def test_values_that_compat32_must_encode_or_fold():
    long = "Mandantenportal der Kanzlei Müller & Söhne Steuerberatungsgesellschaft mbH"
    written = same_as_compat32("Subject", long)  # not ASCII: RFC 2047 words, folded
    assert b"=?" in written and b"\r\n " in written
    same_as_compat32("Subject", "one\r\n two")  # a line break already in the value
    same_as_compat32("Subject", Header("Anmeldecode für Sie", "utf-8", header_name="Subject"))
    same_as_compat32("To", ", ".join(f"client{n}@example.com" for n in range(8)))


def test_random_values_from_the_characters_headers_hold():
    chance = random.Random(20261205)
    characters = "ab c\t=?:<>@\"'().,;x-_é"
    for _ in range(3000):
        value = "".join(chance.choice(characters) for _ in range(chance.randint(0, 90)))
        same_as_compat32(chance.choice(NAMES), value)


@pytest.mark.parametrize("name, sender", [
    ("Smith & Co", "Smith & Co <portal@smithco.co.uk>"),
    # A comma in the firm's name, unquoted: parseaddr alone reads "Smith" as the address.
    ("Smith, Jones & Co", "Smith, Jones & Co <portal@smithco.co.uk>"),
    ("Smith, Jones & Co", '"Smith, Jones & Co" <portal@smithco.co.uk>'),
    ("Müller, Söhne & Co", "Müller, Söhne & Co <portal@smithco.co.uk>"),
])
def test_an_email_names_its_sender_recipient_and_reply_to_on_the_wire(
        tmp_path, smtp, name, sender):
    """The envelope and the headers name the sender MAIL_DEFAULT_SENDER names, the client and
    the firm's contact address."""
    config = make_config(tmp_path, smtp, MAIL_DEFAULT_SENDER=sender,
                         PORTAL_CONTACT="help@smithco.co.uk or 020 7946 0000")
    with running_app(config) as application:
        add_user(application, "client@example.com")
        assert Browser(application).log_in("client@example.com").status_code == 302
        with application.app_context():
            delivery.run_once()
        mail = smtp.wait_for(1)[0]
    assert mail.sender == "portal@smithco.co.uk"
    assert mail.to == ["client@example.com"]
    wire = email.message_from_bytes(mail.raw, policy=email.policy.default)
    assert [(a.display_name, a.addr_spec) for a in wire["From"].addresses] == [
        (name, "portal@smithco.co.uk")]
    assert [a.addr_spec for a in wire["To"].addresses] == ["client@example.com"]
    assert [a.addr_spec for a in wire["Reply-To"].addresses] == ["help@smithco.co.uk"]
