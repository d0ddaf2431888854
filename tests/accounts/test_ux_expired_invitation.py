"""An invitation that has run out offers what someone with no password can do: a new
invitation, sent through "Forgotten your password?", or the firm; not "Log in"."""

from __future__ import annotations

import re
from datetime import timedelta

from services import clock
from tests.accounts.conftest import link_in, path_of
from tests.conftest import Browser

ANNA = "anna@example.com"
NEW = "plum tree by the river"


def _invite(app, smtp, deliver) -> str:
    count = len(smtp.messages)
    invited = app.test_cli_runner().invoke(args=["users", "invite", ANNA])
    assert invited.exit_code == 0, invited.output
    deliver()
    smtp.wait_for(count + 1)
    return path_of(link_in(smtp.last_to(ANNA).text, "/welcome/"))


def _words(page: str) -> str:
    return " ".join(re.sub(r"<[^>]+>", " ", page).split())


def test_a_run_out_invitation_sends_a_new_one_and_it_works(app, smtp, deliver):
    welcome = _invite(app, smtp, deliver)
    clock.advance(timedelta(days=7, minutes=1))
    b = Browser(app)
    answer = b.get(welcome)
    assert answer.status_code == 410
    page = answer.get_data(as_text=True)
    assert "This invitation has run out" in page
    assert ('<a class="button button-primary" href="/password/forgot">Send me a new invitation '
            'link</a>') in page
    assert "Or ask the firm to send you one." in _words(page)
    assert 'href="/login"' not in page.split("<main", 1)[1]  # no password to log in with

    # What the button leads to does what it says: a new invitation, whose link works.
    count = len(smtp.messages)
    assert "we will send you a new invitation" in _words(b.text("/password/forgot"))
    b.post("/password/forgot", {"email": ANNA})
    deliver()
    smtp.wait_for(count + 1)
    mail = smtp.last_to(ANNA)
    assert "invited" in mail.subject
    fresh = path_of(link_in(mail.text, "/welcome/"))
    assert b.post(fresh, {"password": NEW, "confirm": NEW}).status_code == 302
    assert b.log_in(ANNA, NEW).headers["Location"] == "/login/code"


def test_the_firm_is_named_with_how_to_reach_it(app, smtp, deliver):
    app.config["PORTAL_CONTACT"] = "email help@smithco.co.uk"
    welcome = _invite(app, smtp, deliver)
    clock.advance(timedelta(days=7, minutes=1))
    page = Browser(app).get(welcome).get_data(as_text=True)
    assert ('Or ask the firm to send you one: email <a href="mailto:help@smithco.co.uk">'
            'help@smithco.co.uk</a>.') in " ".join(page.split())


def test_a_used_invitation_still_offers_to_log_in(app, smtp, deliver):
    welcome = _invite(app, smtp, deliver)
    b = Browser(app)
    assert b.post(welcome, {"password": NEW, "confirm": NEW}).status_code == 302
    page = Browser(app).get(welcome).get_data(as_text=True)
    assert "This invitation has already been used" in page
    assert '<a href="/login">Log in</a>' in page
    assert "Send me a new invitation link" not in page
