"""A sign-in's "Every step" table, and the account's other activity, say a network failure in
words: "could not be reached: it refused the connection", where they named the program's
exception ("(ConnectionRefusedError)"), which a support person can neither read out nor pass
on. services.delivery keeps the name in the message's reason, for the log and the operator."""

from __future__ import annotations

import html
import re

from extensions import db
from models import Delivery
from services.support.timeline import reason_words


def _steps(staff, client_id: int) -> str:
    page = staff.text(f"/support/clients/{client_id}")
    text = " ".join(html.unescape(re.sub(r"<[^>]+>", " ", page)).split())
    return text[text.index("Every step"):]


def test_a_mail_server_that_refuses_the_connection_is_said_in_words(
        app, client_id, smtp, deliver, phone, staff):
    smtp.stop()
    assert phone.log_in().status_code == 302
    deliver()
    with app.app_context():  # the reason as recorded still names it, for the operator
        reasons = [item.last_error for item in db.session.query(Delivery)]
        assert any((reason or "").endswith("(ConnectionRefusedError)") for reason in reasons)
    steps = _steps(staff, client_id)
    assert "The mail server could not be reached: it refused the connection" in steps
    assert "ConnectionRefusedError" not in steps


def test_codes_and_unknown_names_are_left_as_they_are():
    assert reason_words("the mail server refused the address (550)") == \
        "the mail server refused the address (550)"
    assert reason_words("the client's mailbox is full (552 5.2.2)") == \
        "the client's mailbox is full (552 5.2.2)"
    assert reason_words("an unexpected error while sending (KeyError)") == \
        "an unexpected error while sending (KeyError)"
    assert reason_words("the text message service could not be reached (TimeoutError)") == \
        "the text message service could not be reached: it did not answer in time"
