"""A message that belongs to no sign-in (an invitation, a notice) and failed is listed under
the account's other activity with its reason, as a sign-in's message is in its timeline."""

from __future__ import annotations

import html
import re

from sqlalchemy import select

from extensions import db
from models import User


def test_a_message_of_no_sign_in_that_failed_says_why_in_the_account_activity(
        app, staff, smtp, deliver):
    """A failed invitation (or notice) read "Delivery failed · failed": the reason, which
    the sign-ins' timeline gives, was left out."""
    assert app.test_cli_runner().invoke(args=["users", "invite", "new@example.com"]).exit_code == 0
    smtp.refuse_with = "550 5.1.1 no such mailbox"
    try:
        deliver()
    finally:
        smtp.refuse_with = None
    with app.app_context():
        new_id = db.session.scalar(select(User.id).where(User.email == "new@example.com"))
    page = " ".join(html.unescape(re.sub(r"<[^>]+>", " ", staff.text(
        f"/support/clients/{new_id}"))).split())
    assert "Delivery failed The mail server refused the address (550)." in page
