"""Email sign-in end to end: password, code by real SMTP, code page outcomes, resend, logout."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from argon2 import PasswordHasher, extract_parameters
from sqlalchemy import func, select

from extensions import db
from models import Delivery, Event, SignIn, User
from services import clock, delivery
from services.signin import codes, passwords
from tests.conftest import (
    _TEST_HASH, TEST_PASSWORD, Browser, add_user, make_config, request_code, running_app,
    user_by_email, wrong_code,
)

EMAIL = "client@example.com"


def sign_ins(app):
    with app.app_context():
        return db.session.scalars(select(SignIn).order_by(SignIn.id)).all()


def events(app, type_=None):
    with app.app_context():
        query = select(Event).order_by(Event.id)
        if type_:
            query = query.where(Event.type == type_)
        return db.session.scalars(query).all()


start = request_code  # post the password, return the code from the email that arrived


# --- the happy path ----------------------------------------------------------------------

def test_full_sign_in_by_email(app, user, smtp, deliver, browser):
    response = browser.log_in()
    assert response.status_code == 302 and response.headers["Location"].endswith("/login/code")
    deliver()
    code = smtp.wait_for(1)[0].code
    page = browser.text("/login/code")
    assert "c•••@example.com" in page
    assert "junk or spam" in page
    assert "Not received a code?" in page
    assert 'autocomplete="one-time-code"' in page and 'inputmode="numeric"' in page

    response = browser.enter_code(code)
    assert response.status_code == 302
    assert response.headers["Location"] == "/portal"
    home = browser.get("/portal")
    assert home.status_code == 200
    assert EMAIL in home.get_data(as_text=True)
    assert [s.status for s in sign_ins(app)] == ["completed"]


def test_email_says_when_requested_and_to_use_the_newest(app, user, smtp, deliver, browser):
    start(browser, smtp, deliver)
    mail = smtp.messages[-1]
    sent = clock.local(sign_ins(app)[0].created_at, "Europe/London").strftime("%H:%M")
    assert sent in mail.subject
    assert f"You asked for it at {sent}" in mail.text
    assert "use the newest one" in mail.text
    assert mail.to == [EMAIL]


def test_code_page_shows_send_time_in_portal_timezone(app, user, smtp, deliver, browser):
    start(browser, smtp, deliver)
    sign_in = sign_ins(app)[0]
    local = clock.local(sign_in.created_at, "Europe/London").strftime("%H:%M")
    assert (f'a <span class="nowrap">6-digit</span> code at <strong>{local}</strong>'
            in browser.text("/login/code"))


@pytest.mark.parametrize("typed", [
    "{a} {b}", "{a}-{b}", " {a}{b} ", "{a}\u2013{b}", "\uff11{a1}{b}",
    # Invisible characters a copy brings along: a zero-width space, a byte order mark,
    # direction marks and isolates; the "#" of the text message's last line.
    "{a}\u200b{b}", "\ufeff{a}{b}", "\u200e{a}{b}\u2069", "#{a}{b}",
    # A whole message pasted: its one number of six digits.
    "Your code is {a}{b}", "Your Test Portal code is {a}{b}.\n\n@localhost #{a}{b}",
])
def test_code_accepted_as_people_copy_it(app, user, smtp, deliver, browser, typed):
    code = start(browser, smtp, deliver)
    if "\uff11" in typed:  # a full-width first digit, as some phones paste it
        code = "1" + code[1:]
        with app.app_context():
            sign_in = db.session.get(SignIn, sign_ins(app)[0].id)
            sign_in.code_hash = codes.hash_code(codes.sign_in_scope(sign_in.id), code)
            db.session.commit()
        typed_code = typed.format(a1=code[1:3], b=code[3:])
    else:
        typed_code = typed.format(a=code[:3], b=code[3:])
    response = browser.enter_code(typed_code)
    assert response.status_code == 302 and response.headers["Location"] == "/portal"


@pytest.mark.parametrize("typed", ["123 / 456", "Your code is 123456, for 10 minutes",
                                   "12345", "1234567", "123456 654321"])
def test_text_with_no_one_six_digit_number_is_no_code(typed):
    assert codes.normalise_code(typed) is None


def test_malformed_code_is_explained_and_not_counted(app, user, smtp, deliver, browser):
    start(browser, smtp, deliver)
    response = browser.enter_code("12ab")
    assert response.status_code == 422
    assert "The code is 6 digits" in response.get_data(as_text=True)
    assert sign_ins(app)[0].failed_attempts == 0


# --- outcomes ----------------------------------------------------------------------------

def test_wrong_code_says_tries_left_then_locks(app, user, smtp, deliver, browser):
    code = start(browser, smtp, deliver)
    wrong = wrong_code(code)
    for left in (4, 3, 2, 1):
        text = browser.enter_code(wrong).get_data(as_text=True)
        assert "That code is not right" in text
        assert f"You have {left} {'try' if left == 1 else 'tries'} left" in text
    text = browser.enter_code(wrong).get_data(as_text=True)
    assert "too many wrong codes" in text
    assert sign_ins(app)[0].status == "locked"
    # Even the right code no longer works: the client must sign in again.
    assert browser.enter_code(code).status_code == 422
    assert browser.get("/portal").status_code == 302
    outcomes = [e.outcome for e in events(app, "code_entry")]
    assert outcomes == ["wrong"] * 4 + ["locked", "locked"]


def test_code_of_superseded_sign_in_names_both_times(app, user, smtp, deliver, browser):
    old_code = start(browser, smtp, deliver)
    clock.advance(timedelta(minutes=5))
    new_code = start(browser, smtp, deliver)
    first, second = sign_ins(app)
    assert first.status == "superseded" and first.superseded_by_id == second.id
    old_time = clock.local(first.created_at, "Europe/London").strftime("%H:%M")
    new_time = clock.local(second.created_at, "Europe/London").strftime("%H:%M")

    text = browser.enter_code(old_code).get_data(as_text=True)
    assert f"That code is from your sign-in at {old_time}; use the one sent at {new_time}" in text
    assert sign_ins(app)[1].failed_attempts == 0  # an honest mix-up is not a guess
    assert browser.enter_code(new_code).status_code == 302
    assert [e.outcome for e in events(app, "code_entry")] == ["superseded", "accepted"]


def test_superseded_sign_in_in_another_browser_is_told(app, user, smtp, deliver):
    first, second = Browser(app), Browser(app)
    old_code = start(first, smtp, deliver)
    clock.advance(timedelta(minutes=2))
    # The other browser answers the "a code is already on its way" question with "send a new one".
    second.log_in()
    second.post("/login", {"action": "new"})
    deliver()
    text = first.enter_code(old_code).get_data(as_text=True)
    assert "That code no longer works" in text
    # Said once: the notice says why; the page adds only where the new code went.
    assert text.count("stopped") == 1 and "The new code went to c•••@example.com" in text
    assert "Use the newest code" in text
    # Opened without typing a code, the page itself says why.
    page = first.get("/login/code").get_data(as_text=True)
    assert page.count("stopped working because a new sign-in") == 1
    assert first.get("/portal").status_code == 302
    status = first.get("/login/code/status").get_json()
    assert status["superseded"] is True and status["newer"]["here"] is False


def test_expired_code(app, user, smtp, deliver, browser):
    code = start(browser, smtp, deliver)
    clock.advance(codes.CODE_LIFETIME + timedelta(seconds=1))
    text = browser.enter_code(code).get_data(as_text=True)
    assert "ran out" in text
    assert sign_ins(app)[0].status == "expired"
    assert events(app, "code_entry")[-1].outcome == "expired"


def test_code_is_single_use(app, user, smtp, deliver, browser):
    code = start(browser, smtp, deliver)
    token = browser.csrf_for("/login/code")
    assert browser.client.post("/login/code", data={"code": code, "csrf_token": token}).status_code == 302
    # Replaying the same form (same token, same code) does not sign in a second time.
    replay = browser.client.post("/login/code", data={"code": code, "csrf_token": token})
    assert replay.status_code in (302, 400)
    assert len([e for e in events(app, "signed_in")]) == 1


def test_code_posted_with_no_sign_in_pending(app, user, browser):
    response = browser.post("/login/code", {"code": "123456"}, form_page="/login")
    assert response.status_code == 302 and response.headers["Location"].endswith("/login")
    assert "no sign-in waiting" in browser.text("/login")
    assert events(app, "code_entry") == []


def test_code_page_without_sign_in_redirects_to_login(browser):
    response = browser.get("/login/code")
    assert response.status_code == 302 and response.headers["Location"].endswith("/login")


# --- password check ----------------------------------------------------------------------

def test_wrong_email_and_wrong_password_get_the_same_answer(app, user, browser, monkeypatch):
    calls = []
    real = PasswordHasher.verify

    def counting(self, hash_, password):
        calls.append(hash_)
        return real(self, hash_, password)

    monkeypatch.setattr(PasswordHasher, "verify", counting)
    unknown = browser.log_in("nobody@example.com", "whatever password")
    wrong = browser.log_in(EMAIL, "not the password")
    assert unknown.status_code == wrong.status_code == 200

    def message(response):
        return re.search(r'class="notice notice-error"[^>]*>([^<]+)<',
                         response.get_data(as_text=True)).group(1)

    assert message(unknown) == message(wrong)
    assert len(calls) == 2  # one argon2 verification each: the same work, the same time
    assert sign_ins(app) == []


def test_email_is_kept_after_a_wrong_password(user, browser):
    text = browser.log_in(EMAIL, "nope").get_data(as_text=True)
    assert f'value="{EMAIL}"' in text


def test_login_form_errors_are_plain(browser):
    text = browser.post("/login", {"email": "", "password": ""}).get_data(as_text=True)
    assert "Enter your email address." in text and "Enter your password." in text
    assert "aria-describedby" in text


def test_argon2id_hash(app, user):
    with app.app_context():
        assert passwords.hash_password("x" * 12).startswith("$argon2id$")


def test_outside_the_tests_passwords_cost_the_rfc_9106_low_memory_profile(tmp_path):
    """Only TestConfig lowers the cost; every other configuration hashes with 64 MiB, 3 passes."""
    from app import create_app
    from config import Config, DevelopmentConfig

    assert Config.PASSWORD_HASH_COST is None and DevelopmentConfig.PASSWORD_HASH_COST is None
    production_like = create_app(make_config(tmp_path, PASSWORD_HASH_COST=None))
    with production_like.app_context():
        made = extract_parameters(passwords.hash_password("x" * 12))
    outside_any_app = extract_parameters(passwords.hash_password("x" * 12))  # the bench's
    for made_here in (made, outside_any_app):
        assert (made_here.type.name, made_here.memory_cost, made_here.time_cost,
                made_here.parallelism) == ("ID", 65536, 3, 4)
    production_like.extensions["dispatcher"].stop()


def test_a_weaker_hash_is_made_again_at_the_next_sign_in(tmp_path, smtp):
    """A hash made at a lower cost (here the tests' own) is hashed again at full cost when its
    password is next given, so raising the cost reaches every account that signs in."""
    with running_app(make_config(tmp_path, smtp, PASSWORD_HASH_COST=None)) as application:
        with application.app_context():
            db.session.add(User(email=EMAIL, password_hash=_TEST_HASH))
            db.session.commit()
        assert Browser(application).log_in(EMAIL).status_code == 302
        stored = user_by_email(application, EMAIL).password_hash
    assert extract_parameters(stored).memory_cost == 65536
    assert PasswordHasher().verify(stored, TEST_PASSWORD)


def test_new_sign_in_supersedes_pending_ones(app, user, smtp, deliver, browser):
    start(browser, smtp, deliver)
    start(browser, smtp, deliver)
    start(browser, smtp, deliver)
    assert [s.status for s in sign_ins(app)] == ["superseded", "superseded", "pending"]
    with app.app_context():
        pending = db.session.scalar(select(func.count()).where(SignIn.status == "pending"))
        assert pending == 1
        # Ended sign-ins keep no copy of their code.
        assert all(s.code_encrypted is None for s in sign_ins(app)[:2])


def test_code_stored_only_as_keyed_hash(app, user, smtp, deliver, browser):
    code = start(browser, smtp, deliver)
    sign_in = sign_ins(app)[0]
    assert code not in sign_in.code_hash and len(sign_in.code_hash) == 64
    assert code not in (sign_in.code_encrypted or "")
    with app.app_context():
        assert codes.code_matches(codes.sign_in_scope(sign_in.id), code, sign_in.code_hash)
        # Keyed: the same code for the same sign-in hashes differently under another key.
        app.extensions["clientgate_keys"].clear()
        app.config["SECRET_KEY"] = "another-key-entirely-0123456789abcdef"
        assert not codes.code_matches(codes.sign_in_scope(sign_in.id), code, sign_in.code_hash)


# --- next --------------------------------------------------------------------------------

@pytest.mark.parametrize("target, expected", [
    ("/portal?tab=docs", "/portal?tab=docs"),
    ("https://evil.example/", "/portal"),
    ("//evil.example/", "/portal"),
    ("/\\evil.example", "/portal"),
    ("javascript:alert(1)", "/portal"),
])
def test_next_only_to_this_site(app, user, smtp, deliver, browser, target, expected):
    browser.post(f"/login?next={target}", {"email": EMAIL, "password": TEST_PASSWORD},
                 form_page="/login")
    deliver()
    response = browser.enter_code(smtp.wait_for(1)[-1].code)
    assert response.headers["Location"] == expected


def test_portal_needs_sign_in_and_comes_back(app, user, smtp, deliver, browser):
    response = browser.get("/portal")
    assert response.status_code == 302 and "/login?next=%2Fportal" in response.headers["Location"]


# --- resend ------------------------------------------------------------------------------

def test_resend_sends_the_same_code_with_cooldown_and_limit(app, user, smtp, deliver, browser):
    code = start(browser, smtp, deliver)
    text = browser.post("/login/code/resend", form_page="/login/code", follow_redirects=True)
    assert "Please wait" in text.get_data(as_text=True)
    for n in range(codes.MAX_RESENDS):
        clock.advance(codes.RESEND_COOLDOWN)
        page = browser.post("/login/code/resend", form_page="/login/code",
                            follow_redirects=True).get_data(as_text=True)
        assert "sent the same code" in page
        deliver()
        smtp.wait_for(n + 2)
        assert smtp.messages[-1].code == code
        assert "same code we sent before" in smtp.messages[-1].text
    clock.advance(codes.RESEND_COOLDOWN)
    page = browser.post("/login/code/resend", form_page="/login/code",
                        follow_redirects=True).get_data(as_text=True)
    assert "the most we send" in page
    assert len(smtp.messages) == 1 + codes.MAX_RESENDS
    assert len(sign_ins(app)) == 1
    assert browser.enter_code(code).status_code == 302


def test_resend_without_sign_in(browser):
    response = browser.post("/login/code/resend", form_page="/login")
    assert response.status_code == 302 and response.headers["Location"].endswith("/login")


# --- delivery ----------------------------------------------------------------------------

def test_mail_server_down_then_back(app, user, smtp, deliver, browser):
    smtp.stop()
    response = browser.log_in()
    assert response.status_code == 302  # the password post does not wait for mail
    deliver()
    status = browser.get("/login/code/status").get_json()
    assert status["delivery"]["state"] == "retrying"
    assert "trying again" in browser.text("/login/code")
    assert [e.type for e in events(app, "delivery_retry")] == ["delivery_retry"]

    smtp.start()
    clock.advance(timedelta(seconds=6))
    deliver()
    mail = smtp.wait_for(1)[0]
    assert browser.get("/login/code/status").get_json()["delivery"]["state"] == "sent"
    assert browser.enter_code(mail.code).status_code == 302


def test_one_connection_carries_the_next_message_while_the_server_answers(
        app, user, smtp, deliver, browser, monkeypatch):
    """The dispatcher keeps its mail server connection for the next message (opening one
    costs more than a code), and opens a new one when the server has gone away or it sat idle."""
    from services import delivery

    start(browser, smtp, deliver)
    start(browser, smtp, deliver)  # a second Log In: a new code, sent after the first
    one, two = smtp.wait_for(2)[-2:]
    assert one.peer == two.peer  # the same connection

    smtp.stop()  # the server restarts on the same port: the kept connection is dead
    smtp.start()
    start(browser, smtp, deliver)
    three = smtp.wait_for(3)[-1]
    assert three.peer != two.peer
    assert browser.enter_code(three.code).status_code == 302
    assert not events(app, "delivery_retry")  # nothing was lost or delayed to find that out

    browser.post("/logout", form_page="/portal")
    monkeypatch.setattr(delivery, "SMTP_REUSE_SECONDS", 0)  # idle too long: not reused
    start(browser, smtp, deliver)
    assert smtp.wait_for(4)[-1].peer != three.peer


def test_non_ascii_portal_and_sender_names_arrive_whole(tmp_path, smtp, deliver):
    """A firm's name with umlauts, long enough to be folded, in the subject and the sender."""
    import email
    from email.header import decode_header, make_header

    portal = "Kanzlei Müller & Söhne Steuerberatungsgesellschaft mbH Düsseldorf"
    sender = f"Mandantenportal der {portal} <noreply@example.com>"
    config = make_config(tmp_path, smtp, PORTAL_NAME=portal, MAIL_DEFAULT_SENDER=sender)
    with running_app(config) as application:
        add_user(application)
        b = Browser(application)
        assert b.log_in().status_code == 302
        with application.app_context():
            delivery.run_once()
        mail = smtp.wait_for(1)[0]
    assert mail.subject.startswith(f"{portal} sign-in code, requested at ")
    # Read as RFC 2047 says: the words of a folded name join up again.
    wire = email.message_from_bytes(mail.raw)  # compat32: the header as sent
    assert str(make_header(decode_header(wire["From"]))) == sender
    assert str(make_header(decode_header(wire["Subject"]))) == mail.subject
    head = mail.raw.split(b"\r\n\r\n")[0]
    assert max(len(line) for line in head.split(b"\r\n")) < 80  # folded, not one long line
    assert mail.code and portal in mail.text
    # What mail filters and out-of-office replies read: an id on the sender's own domain
    # (not this machine's name) and that the message is automatic (RFC 3834).
    assert re.fullmatch(r"<[^@<>\s]+@example\.com>", wire["Message-ID"])
    assert wire["Auto-Submitted"] == "auto-generated"


def test_delivery_gives_up_when_the_code_expires(app, user, smtp, deliver, browser):
    smtp.stop()
    browser.log_in()
    for _ in range(20):
        deliver()
        clock.advance(timedelta(seconds=60))
    with app.app_context():
        item = db.session.scalars(select(Delivery)).one()
        assert item.status in ("failed", "cancelled")
        assert item.code_encrypted is None


def test_permanent_refusal_is_shown_as_failed(app, user, smtp, deliver, browser):
    smtp.refuse_with = "550 No such mailbox"
    browser.log_in()
    deliver()
    status = browser.get("/login/code/status").get_json()
    assert status["delivery"]["state"] == "failed"
    # In plain words; the mail server's reason is for support, in the timeline.
    assert status["delivery"]["text"] == "Not delivered."
    assert "refused the address (550)" in events(app, "delivery_failed")[0].detail["reason"]


def test_a_failed_email_says_what_to_do_instead_of_wait(app, user, smtp, deliver, browser):
    smtp.refuse_with = "550 No such mailbox"
    browser.log_in()
    deliver()
    page = browser.text("/login/code")
    assert re.search(r'<p class="hint" data-unless-failed\s+hidden', page)  # not "can take minutes"
    failed = " ".join(re.sub(r"<[^>]+>", " ", page[page.index('id="delivery-failed"'):]).split())
    assert failed.startswith('id="delivery-failed" data-when-failed >')  # shown
    assert "We could not deliver your code to c•••@example.com" in failed
    assert "please contact us" in failed and "Sign in again" in failed
    assert "We tried to send a 6-digit code at" in " ".join(re.sub(r"<[^>]+>|<span[^>]*hidden>[^<]*</span>", " ", page).split())


@pytest.mark.parametrize("reason, shown", [
    ("the mail server could not be reached (ConnectionRefusedError)",
     "the mail server could not be reached"),
    ("the mail server's certificate could not be verified (self-signed certificate)",
     "our mail server could not be reached safely"),
    ("the mail server refused the address (550)", "the mail server refused the address (550)"),
    ("the text message service did not recognise the number (invalid number)",
     "the text message service did not recognise the number (invalid number)"),
])
def test_a_failure_reads_for_clients_without_the_technical_detail(reason, shown):
    item = Delivery(status="failed", channel="email", attempts=3, last_error=reason)
    assert delivery.describe(item) == ("failed", f"Could not be sent: {shown}.")


def test_queued_message_survives_a_restart(tmp_path, smtp):
    """A message queued by one process is sent by the next one started on the same database."""
    from app import create_app
    from tests.conftest import reset_schema

    config = make_config(tmp_path, smtp)
    first = create_app(config)
    reset_schema(first)
    add_user(first)
    b = Browser(first)
    assert b.log_in().status_code == 302
    with first.app_context():
        assert db.session.scalars(select(Delivery)).one().status == "queued"
        db.engine.dispose()
    del first  # "the server stopped" before its dispatcher ran

    second = create_app(config)
    second.extensions["dispatcher"].start()
    try:
        mail = smtp.wait_for(1, timeout=15)[0]
    finally:
        second.extensions["dispatcher"].stop()
    assert mail.code
    with second.app_context():
        assert db.session.scalars(select(Delivery)).one().status == "sent"
        db.session.remove()
        db.engine.dispose()


def test_dispatcher_thread_sends_without_being_asked(app, user, smtp, browser):
    app.extensions["dispatcher"].start()
    browser.log_in()
    mail = smtp.wait_for(1, timeout=15)[0]
    assert browser.enter_code(mail.code).status_code == 302


def test_slow_mail_server_does_not_hold_the_password_post(app, user, smtp, browser):
    """The post only queues; it returns before the server accepts anything."""
    smtp.delay = 3
    app.extensions["dispatcher"].start()
    assert browser.log_in().status_code == 302
    assert smtp.messages == []  # still being accepted when the post has already answered
    mail = smtp.wait_for(1, timeout=20)[0]
    assert mail.code


# --- sessions ----------------------------------------------------------------------------

def test_session_rotated_at_sign_in(app, user, smtp, deliver, browser):
    code = start(browser, smtp, deliver)
    before = browser.client.get_cookie("clientgate_session").value
    browser.enter_code(code)
    after = browser.client.get_cookie("clientgate_session").value
    assert before != after
    # The pre-sign-in cookie does not open the portal.
    stale = app.test_client()
    stale.set_cookie("clientgate_session", before)
    assert stale.get("/portal").status_code == 302


def test_logout_revokes_the_session_on_the_server(app, user, sign_in):
    b = sign_in()
    cookie = b.client.get_cookie("clientgate_session").value
    copy = app.test_client()
    copy.set_cookie("clientgate_session", cookie)
    assert copy.get("/portal").status_code == 200

    response = b.post("/logout", form_page="/portal")
    assert response.status_code == 302
    assert b.get("/portal").status_code == 302
    assert copy.get("/portal").status_code == 302  # a copy of the old cookie is dead too
    assert events(app, "logout")


def test_logout_is_post_only_and_ends_the_session_even_with_a_stale_form(app, user, sign_in):
    # Issue 11, point 10: a logout form of this site whose token went stale still logs out;
    # a GET never does (nor another site's form: tests/hardening/test_expired_forms.py).
    b = sign_in()
    assert b.client.get("/logout").status_code == 405
    assert b.get("/portal").status_code == 200
    b.client.post("/logout", data={}, headers={"Origin": "http://localhost"})
    assert b.get("/portal").status_code == 302


def test_idle_session_ends(app, user, sign_in):
    b = sign_in()
    clock.advance(timedelta(minutes=app.config["SESSION_IDLE_MINUTES"] + 1))
    assert b.get("/portal").status_code == 302


# --- audit -------------------------------------------------------------------------------

def test_every_step_is_audited_with_ip_and_browser(app, user, smtp, deliver, browser):
    browser.log_in(EMAIL, "wrong password")
    code = start(browser, smtp, deliver)
    clock.advance(codes.RESEND_COOLDOWN)
    browser.post("/login/code/resend", form_page="/login/code")
    browser.enter_code("000000" if code != "000000" else "111111")
    browser.enter_code(code)
    browser.post("/logout", form_page="/portal")
    types = [e.type for e in events(app)]
    for expected in ("password_failed", "password_ok", "signin_started", "delivery_queued",
                     "delivery_sent", "code_resend", "code_entry", "signed_in", "logout"):
        assert expected in types, expected
    for event in events(app):
        if event.type in ("password_failed", "password_ok", "code_entry", "logout"):
            assert event.ip == "127.0.0.1"
            assert "Chrome" in event.user_agent
        assert code not in str(event.detail)


# --- pages -------------------------------------------------------------------------------

def test_auth_pages_are_never_cached(app, user, smtp, deliver, browser):
    start(browser, smtp, deliver)
    for path in ("/login", "/login/code", "/login/code/status"):
        assert "no-store" in browser.get(path).headers["Cache-Control"]


def test_healthz(browser):
    response = browser.get("/healthz")
    assert response.status_code == 200
    assert response.get_json()["status"] == "ok"


def test_unknown_page_is_a_plain_404(browser):
    response = browser.get("/no/such/page")
    assert response.status_code == 404
    assert "Page not found" in response.get_data(as_text=True)


def test_dev_outbox_only_in_development(browser):
    assert browser.get("/dev/outbox").status_code == 404


def test_dev_outbox_answers_only_this_machine(tmp_path, smtp):
    """Development answers to "localhost", which any browser can name: a development server
    reachable from elsewhere must still not show the codes to others."""
    from tests.conftest import make_config, running_app

    with running_app(make_config(tmp_path, smtp, DISPATCHER_AUTOSTART=False,
                                 DEV_OUTBOX=True)) as dev:
        assert dev.test_client().get("/dev/outbox").status_code == 200  # 127.0.0.1
        elsewhere = dev.test_client().get(
            "/dev/outbox", environ_base={"REMOTE_ADDR": "203.0.113.9"})
        assert elsewhere.status_code == 404
        assert dev.test_client().get(
            "/dev/outbox", environ_base={"REMOTE_ADDR": "::1"}).status_code == 200


# --- a code already on its way (server side of the tab guard) ----------------------------

def test_login_page_warns_when_this_browser_waits_for_a_code(app, user, smtp, deliver, browser):
    start(browser, smtp, deliver)
    sent = clock.local(sign_ins(app)[0].created_at, "Europe/London").strftime("%H:%M")
    page = re.sub(r"\s+", " ", browser.text("/login"))
    assert "You already have a code on its way" in page
    assert f"We sent a code at <strong>{sent}</strong>" in page
    assert "Enter that code" in page and f"the {sent} code will stop working" in page


def test_another_browser_is_asked_before_superseding(app, user, smtp, deliver):
    first, second = Browser(app), Browser(app)
    code = start(first, smtp, deliver)
    response = second.log_in()
    assert response.status_code == 302 and response.headers["Location"].endswith("/login")
    page = second.text("/login")
    assert "A code is already on its way" in page
    assert 'value="keep" checked' in page
    assert [s.status for s in sign_ins(app)] == ["pending"]  # nothing superseded yet

    # "Use the code already sent": this browser may now enter that code.
    response = second.post("/login", {"action": "keep"})
    assert response.headers["Location"].endswith("/login/code")
    assert len(smtp.messages) == 1
    assert second.enter_code(code).status_code == 302
    assert "signin_kept" in [e.type for e in events(app)]


def test_another_browser_may_send_a_new_code(app, user, smtp, deliver):
    first, second = Browser(app), Browser(app)
    start(first, smtp, deliver)
    second.log_in()
    second.post("/login", {"action": "new"})
    deliver()
    assert [s.status for s in sign_ins(app)] == ["superseded", "pending"]
    assert second.enter_code(smtp.wait_for(2)[-1].code).status_code == 302


def test_choice_without_password_check_does_nothing(app, user, smtp, deliver):
    first, intruder = Browser(app), Browser(app)
    start(first, smtp, deliver)
    response = intruder.post("/login", {"action": "keep"})
    assert response.headers["Location"].endswith("/login")
    assert intruder.get("/login/code").status_code == 302
    assert [s.status for s in sign_ins(app)] == ["pending"]


def test_temporary_refusal_of_the_address_is_retried(app, user, smtp, deliver, browser):
    smtp.refuse_with = "451 Greylisted, try again later"
    browser.log_in()
    deliver()
    assert browser.get("/login/code/status").get_json()["delivery"]["state"] == "retrying"
    smtp.refuse_with = None
    clock.advance(timedelta(seconds=6))
    deliver()
    assert smtp.wait_for(1)[0].code


def test_signed_in_pages_are_not_kept_by_the_browser(app, user, sign_in):
    b = sign_in()
    assert "no-store" in b.get("/portal").headers["Cache-Control"]
    static = b.get("/static/css/app.css")
    static.close()
    assert "no-store" not in static.headers.get("Cache-Control", "")


def test_email_is_matched_whatever_its_case(app, user, browser):
    response = browser.log_in(" Client@Example.COM")
    assert response.status_code == 302 and response.headers["Location"].endswith("/login/code")
    assert [s.status for s in sign_ins(app)] == ["pending"]
