"""Every email has a plain-text part and a simple, accessible HTML part with the firm's name."""

from __future__ import annotations

import re
from pathlib import Path

from models import Delivery
from services import clock, delivery

MESSAGES = Path(__file__).resolve().parents[2] / "templates" / "messages"
VALUES = {
    "when": "10:05 on 1 December 2026", "until": "10:20 on 1 December 2026", "wait": "15 minutes",
    "failures": 10, "change": "Codes now come by email.", "how": "from your account page",
    "kept_here": True, "new_email": "n•••@example.com", "name": "Anna", "email": "a@example.com",
    "channel": "email", "expires": "11:05 on 1 December 2026", "expires_at": "10:15",
    "login_url": "http://localhost/login", "forgot_url": "http://localhost/password/forgot",
    "link_endpoint": "passwords.reset",
}


def email_templates() -> list[str]:
    return sorted(p.name[:-len("_email.txt")] for p in MESSAGES.glob("*_email.txt"))


def test_every_email_has_an_html_part_with_the_firms_name(app):
    assert len(email_templates()) >= 10
    with app.app_context():
        for template in email_templates():
            if template == "code":
                item = Delivery(kind="code", channel="email", destination="a@example.com",
                                payload={"requested_at": clock.now().isoformat(),
                                         "expires_at": clock.now().isoformat()})
            else:
                item = Delivery(kind="notice", channel="email", destination="a@example.com",
                                payload={"template": template, "values": VALUES})
            subject, text, html = delivery.render(item, "123456")
            assert subject and text.strip(), template
            assert html and '<html lang="en-GB">' in html, template
            assert f"<title>{subject}</title>" in html.replace("&#39;", "'"), template
            assert "Test Portal" in html, template
            assert "<script" not in html, template
            # Every absolute link of the text is a link in the HTML too.
            for link in re.findall(r"https?://\S+", text):
                assert f'href="{link.rstrip(".,")}' in html, (template, link)


def test_a_code_email_shows_the_code_in_both_parts(app):
    with app.app_context():
        item = Delivery(kind="code", channel="email", destination="a@example.com",
                        payload={"requested_at": clock.now().isoformat(),
                                 "expires_at": clock.now().isoformat()})
        _, text, html = delivery.render(item, "654321")
    assert "654321" in text and "654321" in html
