"""/account/email: the new address is proved by a link before it replaces the old one."""

from __future__ import annotations

from sqlalchemy import select

from extensions import db
from models import AccountToken, Event, User
from tests.accounts.conftest import link_in, path_of
from tests.conftest import TEST_PASSWORD, Browser, add_user, at_once, pause_in, user_by_email

CLIENT = "client@example.com"
NEW = "new.address@example.com"


def ask(b: Browser, new: str = NEW, password: str = TEST_PASSWORD):
    return b.post("/account/email", {"email": new, "current_password": password})


def test_change_email_through_the_front_door(app, user, smtp, deliver, sign_in):
    elsewhere = sign_in(b=Browser(app))
    here = sign_in(b=Browser(app))
    count = len(smtp.messages)
    answer = ask(here)
    assert answer.status_code == 302
    page = here.text("/account/email")
    assert f"We have sent a link to {NEW}" in page
    assert user_by_email(app, CLIENT) is not None  # nothing changed yet
    deliver()
    smtp.wait_for(count + 1)
    proof = smtp.last_to(NEW)
    assert "confirm" in proof.subject and proof.html
    path = path_of(link_in(proof.text, "/account/email/confirm/"))

    assert "Confirm your new email address" in here.text(path)  # GET changes nothing
    assert user_by_email(app, NEW) is None
    count = len(smtp.messages)
    answer = here.post(path, {})
    assert answer.status_code == 302
    assert user_by_email(app, NEW) is not None and user_by_email(app, CLIENT) is None
    assert here.get("/portal").status_code == 200  # this browser stays signed in
    assert elsewhere.get("/portal").status_code == 302  # the others do not

    deliver()
    smtp.wait_for(count + 1)
    told = smtp.last_to(CLIENT)
    assert "email address has been changed" in told.subject
    assert "If you did not" in told.text and "Contact us" in told.text
    assert NEW not in told.text  # the old address sees the new one masked
    # The link works once.
    assert Browser(app).get(path).status_code == 410
    with app.app_context():
        assert db.session.scalar(select(Event).where(Event.type == "email_changed")) is not None


def test_change_email_needs_the_password(app, user, smtp, deliver, sign_in):
    b = sign_in()
    answer = ask(b, password="not my password at all")
    assert answer.status_code == 422
    assert "not right" in answer.get_data(as_text=True)
    with app.app_context():
        assert db.session.scalar(select(AccountToken)) is None


def test_an_address_with_an_account_gets_a_note_not_a_link(app, user, smtp, deliver, sign_in):
    add_user(app, "taken@example.com")
    b = sign_in()
    count = len(smtp.messages)
    answer = ask(b, "taken@example.com")
    assert answer.status_code == 302
    # The client is told the same thing as for a free address, then and on later visits.
    assert "We have sent a link to taken@example.com" in b.text("/account/email")
    assert "We sent a link to <strong>taken@example.com</strong>" in b.text("/account/email")
    deliver()
    smtp.wait_for(count + 1)
    note = smtp.last_to("taken@example.com")
    assert "already has an account" in note.subject
    assert "/account/email/confirm/" not in note.text
    assert user_by_email(app, CLIENT) is not None


def test_a_link_opened_in_another_browser_signs_that_browser_out_to_log_in(app, user, smtp,
                                                                            deliver, sign_in):
    b = sign_in()
    ask(b)
    deliver()
    smtp.wait_for(2)
    path = path_of(link_in(smtp.last_to(NEW).text, "/account/email/confirm/"))
    phone = Browser(app)
    # Not signed in there: the password too, so that the link alone cannot move the account.
    answer = phone.post(path, {"current_password": TEST_PASSWORD})
    assert answer.status_code == 302 and answer.headers["Location"] == "/login"
    assert b.get("/portal").status_code == 302  # every session ended
    assert user_by_email(app, NEW) is not None


def test_two_accounts_confirming_one_new_address_at_once_get_an_answer(app, smtp, deliver,
                                                                       sign_in, monkeypatch):
    from services.accounts import email_change

    links = []
    for email in ("ann@example.com", "bob@example.com"):
        add_user(app, email)
        b = sign_in(email, b=Browser(app))
        count = len(smtp.messages)
        assert ask(b, "shared@example.com").status_code == 302
        deliver()
        smtp.wait_for(count + 1)
        links.append(path_of(link_in(smtp.last_to("shared@example.com").text,
                                     "/account/email/confirm/")))
    posts = [(Browser(app), path) for path in links]
    posts = [(b, path, {"csrf_token": b.csrf_for(path), "current_password": TEST_PASSWORD})
             for b, path in posts]
    # Both pass the "does another account have it?" check before either writes.
    restore = pause_in(monkeypatch, email_change.tokens, "use", 2)
    answers = at_once(*(lambda b=b, path=path, data=data: b.client.post(path, data=data)
                        for b, path, data in posts))
    restore()
    assert sorted(a.status_code for a in answers) == [302, 409]
    [refused] = [a for a in answers if a.status_code == 409]
    assert "shared@example.com now belongs to another account" in refused.get_data(as_text=True)
    with app.app_context():
        owners = db.session.scalars(select(User.email).where(
            User.email.in_(["shared@example.com", "ann@example.com", "bob@example.com"])))
        assert sorted(owners) in (["ann@example.com", "shared@example.com"],
                                  ["bob@example.com", "shared@example.com"])


def test_three_new_addresses_an_hour_then_a_plain_wait(app, user, smtp, deliver, sign_in):
    """Each request emails the address typed and the account's own: at most three an hour."""
    from datetime import timedelta

    from services import clock

    b = sign_in()
    for n in range(3):
        assert ask(b, f"new{n}@example.com").status_code == 302
        clock.advance(timedelta(minutes=1))
    deliver()
    count = len(smtp.messages)
    refused = ask(b, "new3@example.com")
    assert refused.status_code == 429
    page = refused.get_data(as_text=True)
    assert "You have asked for a new address 3 times in the last hour" in page
    assert "Nothing has changed." in page
    deliver()
    assert len(smtp.messages) == count
    with app.app_context():
        assert db.session.scalar(select(AccountToken.new_email).order_by(
            AccountToken.id.desc()).limit(1)) == "new2@example.com"
    clock.advance(timedelta(minutes=58))  # an hour after the first
    assert ask(b, "new3@example.com").status_code == 302
