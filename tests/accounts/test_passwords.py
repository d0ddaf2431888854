"""Forgotten passwords, reset links, changing a password, and the password rules."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

from extensions import db
from models import AccountToken, Delivery, SignIn, User
from services import clock
from services.signin import passwords
from services.accounts import policy
from tests.accounts.conftest import link_in, path_of
from tests.conftest import TEST_PASSWORD, Browser, request_code, user_by_email

NEW = "plum tree by the river"
CLIENT = "client@example.com"


def ask_for_reset(b: Browser, smtp, deliver, email: str = CLIENT) -> str:
    """Ask for a reset link as a client would; the path of the link that arrived."""
    count = len(smtp.messages)
    response = b.post("/password/forgot", {"email": email})
    assert response.status_code == 200
    assert "Check your email" in response.get_data(as_text=True)
    deliver()
    smtp.wait_for(count + 1)
    mail = smtp.last_to(email)
    return path_of(link_in(mail.text, "/password/reset/"))


def set_new(b: Browser, path: str, password: str = NEW, confirm: str | None = None):
    return b.post(path, {"password": password, "confirm": password if confirm is None
                         else confirm})


def test_login_page_links_to_forgotten_password(browser):
    assert 'href="/password/forgot"' in browser.text("/login")
    assert "Forgotten your password?" in browser.text("/login")


def test_reset_through_the_front_door(app, user, smtp, deliver, browser, sign_in):
    other = Browser(app)
    sign_in(b=other)  # a session elsewhere, which the reset must end
    path = ask_for_reset(browser, smtp, deliver)
    mail = smtp.last_to(CLIENT)
    assert mail.subject == "Test Portal: set a new password"
    assert "one hour" in mail.text
    # An HTML part too, with the firm's name and the same absolute link.
    assert "Test Portal" in mail.html and 'lang="en-GB"' in mail.html
    assert link_in(mail.text, "/password/reset/") in mail.html

    page = browser.text(path)
    assert "Choose a new password" in page
    assert page.count('type="password"') == 2
    response = set_new(browser, path)
    assert response.status_code == 302 and response.headers["Location"] == "/login"

    assert other.get("/portal").status_code == 302  # every session ended
    count = len(smtp.messages)
    with app.app_context():
        stored = db.session.get(User, user)
        assert passwords.verify_password(stored, NEW)
        assert not passwords.verify_password(stored, TEST_PASSWORD)
    # The notice of the change reaches the client.
    deliver()
    notice = smtp.wait_for(count + 1) and smtp.last_to(CLIENT)
    assert "password" in notice.subject and "changed" in notice.subject
    assert "http://localhost/password/forgot" in notice.text and notice.html

    # After a reset the client still signs in with password and code.
    fresh = Browser(app)
    assert fresh.log_in(CLIENT, TEST_PASSWORD).status_code == 200  # old password refused
    count = len(smtp.messages)
    assert fresh.log_in(CLIENT, NEW).headers["Location"] == "/login/code"
    deliver()
    code = smtp.wait_for(count + 1) and smtp.last_to(CLIENT).code
    assert fresh.enter_code(code).headers["Location"] == "/portal"


def test_a_link_page_sends_no_referer_with_its_token(app, user, smtp, deliver, browser):
    """The token is in the address: the page's own stylesheet and form get only the origin."""
    path = ask_for_reset(browser, smtp, deliver)
    assert browser.get(path).headers["Referrer-Policy"] == "strict-origin"
    assert browser.get("/password/forgot").headers["Referrer-Policy"] == "same-origin"
    assert set_new(browser, path).status_code == 302  # the form still works


def test_reset_link_works_once(app, user, smtp, deliver, browser):
    path = ask_for_reset(browser, smtp, deliver)
    assert set_new(browser, path).status_code == 302
    again = Browser(app)
    page = again.get(path)
    assert page.status_code == 410
    assert "already been used" in page.get_data(as_text=True)
    replay = again.client.post(path, data={"password": "another fine phrase", "confirm":
                                           "another fine phrase",
                                           "csrf_token": again.csrf_for("/password/forgot")})
    assert replay.status_code == 410
    with app.app_context():
        assert passwords.verify_password(db.session.get(User, user), NEW)


def test_reset_link_runs_out_after_an_hour(app, user, smtp, deliver, browser):
    path = ask_for_reset(browser, smtp, deliver)
    clock.advance(timedelta(minutes=61))
    try:
        page = browser.get(path)
    finally:
        clock.reset()
    assert page.status_code == 410
    assert "run out" in page.get_data(as_text=True)


def test_reset_link_dies_when_the_password_changes(app, user, smtp, deliver, browser, sign_in):
    path = ask_for_reset(browser, smtp, deliver)
    client = sign_in()
    answer = client.post("/account/password", {"current_password": TEST_PASSWORD,
                                                "password": NEW, "confirm": NEW})
    assert answer.status_code == 302
    assert Browser(app).get(path).status_code == 410


def test_a_newer_reset_link_replaces_the_older(app, user, smtp, deliver, browser):
    first = ask_for_reset(browser, smtp, deliver)
    clock.advance(timedelta(seconds=61))
    second = ask_for_reset(browser, smtp, deliver)
    assert first != second
    assert browser.get(first).status_code == 410
    assert browser.get(second).status_code == 200


def test_a_double_click_on_send_me_a_link_sends_one_that_works(app, user, smtp, deliver,
                                                                browser):
    # Two links would be two emails, and the first to arrive would be the one that no longer
    # works: the second request finds the first link on its way and sends nothing.
    browser.post("/password/forgot", {"email": CLIENT})
    second = browser.post("/password/forgot", {"email": CLIENT})
    assert "Check your email" in second.get_data(as_text=True)  # the same page as ever
    deliver()
    smtp.wait_for(1)
    deliver()
    assert len([m for m in smtp.messages if CLIENT in m.to]) == 1
    assert browser.get(path_of(link_in(smtp.last_to(CLIENT).text, "/password/reset/"))) \
        .status_code == 200
    with app.app_context():
        held = db.session.scalars(select(Delivery).where(Delivery.status == "cancelled")).all()
    assert [item.last_error for item in held] == [
        "no link sent: a link asked for under a minute before still works"]


def test_forgot_says_the_same_for_unknown_addresses_and_sends_nothing(app, user, smtp, deliver,
                                                                      browser):
    known = browser.post("/password/forgot", {"email": CLIENT}).get_data(as_text=True)
    unknown = browser.post("/password/forgot", {"email": "nobody@example.com"}) \
        .get_data(as_text=True)
    strip = lambda text, email: text.replace(email, "EMAIL")  # noqa: E731
    assert strip(known, CLIENT) == strip(unknown, "nobody@example.com")
    deliver()
    smtp.wait_for(1)
    assert all("nobody@example.com" not in m.to for m in smtp.messages)
    with app.app_context():
        # Nothing was sent from inside the request: the outbox sent it afterwards.
        assert db.session.scalar(select(Delivery.status).where(Delivery.kind == "reset")) == "sent"


def test_forgot_does_not_flood_an_inbox(app, user, smtp, deliver, browser):
    for _ in range(5):
        browser.post("/password/forgot", {"email": CLIENT})
        deliver()
        clock.advance(timedelta(seconds=61))  # not a double click
    smtp.wait_for(3)
    with app.app_context():
        resets = db.session.scalars(select(Delivery).where(Delivery.kind == "reset")).all()
        held = db.session.scalars(select(Delivery).where(Delivery.status == "cancelled")).all()
    assert len(resets) == 3 and len(held) == 2
    assert all("capped" in item.last_error for item in held)
    assert len([m for m in smtp.messages if CLIENT in m.to]) == 3


def test_tokens_are_stored_only_as_hashes(app, user, smtp, deliver, browser):
    path = ask_for_reset(browser, smtp, deliver)
    token = path.rsplit("/", 1)[1]
    assert len(token) >= 43  # 256 bits, base64
    with app.app_context():
        row = db.session.scalar(select(AccountToken))
        assert token not in (row.token_hash, row.bound_to)
        sent = db.session.scalar(select(Delivery).where(Delivery.kind == "reset"))
        assert sent.code_encrypted is None and token not in str(sent.payload)


WEAK = [
    ("short one", "at least 12"),
    ("password1234", "passwords people use most often"),
    ("1qaz2wsx3edc", "passwords people use most often"),
    ("aaaaaaaaaaaaaaaa", "same few characters"),
    ("client rules the world", "email address"),
    ("test portal forever", "Test Portal"),
]


def test_weak_new_passwords_are_refused_with_the_reason(app, user, smtp, deliver, browser):
    path = ask_for_reset(browser, smtp, deliver)
    for password, why in WEAK:
        answer = set_new(browser, path, password)
        assert answer.status_code == 422, password
        assert why in answer.get_data(as_text=True), password
    assert browser.get(path).status_code == 200  # the link still works


def test_long_and_unusual_passwords_are_accepted(app, user, smtp, deliver, browser):
    long_one = "ünïcödé and emoji 🐱 " * 4 + "x" * 40  # over 64 characters
    assert len(long_one) > 64
    path = ask_for_reset(browser, smtp, deliver)
    assert set_new(browser, path, long_one).status_code == 302
    with app.app_context():
        stored = db.session.get(User, user)
        # Normalised: the same password typed with decomposed accents still matches.
        import unicodedata

        assert passwords.verify_password(stored, unicodedata.normalize("NFD", long_one))


def test_two_password_boxes_must_match(app, user, smtp, deliver, browser):
    path = ask_for_reset(browser, smtp, deliver)
    answer = set_new(browser, path, NEW, confirm=NEW + "x")
    assert answer.status_code == 422
    assert "not the same" in answer.get_data(as_text=True)


def test_policy_needs_no_network():
    assert policy.problem("iloveyou12345") is not None
    assert policy.problem("a quiet walk to the harbour") is None


def test_the_rules_know_every_word_on_zxcvbns_lists():
    from zxcvbn.frequency_lists import FREQUENCY_LISTS as lists

    common, words = policy._common(), policy._words()
    assert all(word in common for word in lists["passwords"])
    assert all(word in words for word in lists["english_wikipedia"] + lists["us_tv_and_film"])
    assert len(common) == len(set(lists["passwords"]))
    for unlisted in ("a quiet walk to the harbour", "plum tree by the river", "zq"):
        assert unlisted not in common and unlisted not in words


# --- changing the password when signed in ----------------------------------------------

def test_change_password_keeps_this_session_and_ends_others(app, user, smtp, deliver, sign_in):
    here, there = Browser(app), Browser(app)
    sign_in(b=there)
    sign_in(b=here)
    answer = here.post("/account/password", {"current_password": TEST_PASSWORD,
                                             "password": NEW, "confirm": NEW})
    assert answer.status_code == 302
    assert "signed you out everywhere else" in here.text("/account/password")
    assert here.get("/portal").status_code == 200
    assert there.get("/portal").status_code == 302
    deliver()
    smtp.wait_for(3)
    assert "changed" in smtp.last_to(CLIENT).subject


def test_change_password_needs_the_current_one(app, user, sign_in):
    b = sign_in()
    answer = b.post("/account/password", {"current_password": "not my password at all",
                                          "password": NEW, "confirm": NEW})
    assert answer.status_code == 422
    assert "not right" in answer.get_data(as_text=True)
    with app.app_context():
        assert passwords.verify_password(db.session.get(User, user), TEST_PASSWORD)


def test_change_password_is_audited(app, user, sign_in):
    b = sign_in()
    b.post("/account/password", {"current_password": TEST_PASSWORD, "password": NEW,
                                 "confirm": NEW})
    staff_view = user_by_email(app, CLIENT)
    assert staff_view.password_changed_at is not None
    from models import Event

    with app.app_context():
        event = db.session.scalar(select(Event).where(Event.type == "password_set"))
        assert event.detail["by"] == "change" and event.user_id == user


def test_reset_form_has_csrf(app, user, smtp, deliver, browser):
    path = ask_for_reset(browser, smtp, deliver)
    forged = browser.client.post(path, data={"password": NEW, "confirm": NEW})
    # Nothing saved; as for a form left open past its token's hour, the same link's form
    # comes back saying so, and the link is not used up.
    assert (forged.status_code, forged.headers["Location"]) == (302, path)
    page = browser.get(path)
    assert page.status_code == 200
    assert "open too long, so nothing was saved" in page.get_data(as_text=True)
    with app.app_context():
        assert passwords.verify_password(db.session.get(User, user), TEST_PASSWORD)
    assert set_new(browser, path).status_code == 302
    # The address is built again, quoted: a token part holding a newline is no error.
    odd = browser.client.post("/password/reset/%0Ax", data={"password": NEW, "confirm": NEW})
    assert (odd.status_code, odd.headers["Location"]) == (302, "/password/reset/%0Ax")


def test_request_code_still_works(app, user, smtp, deliver, browser):
    assert request_code(browser, smtp, deliver)


def test_a_question_the_old_password_earned_starts_nothing_after_a_reset(app, user, smtp,
                                                                       deliver):
    """'Keep the code already sent, or send a new one?' is asked after a right password;
    answered after that password was reset, it must not start a sign-in."""
    assert Browser(app).log_in().status_code == 302  # the client's sign-in, waiting
    other = Browser(app)
    assert other.log_in().status_code == 302  # the old password: the question
    assert 'name="nonce"' in other.text("/login")
    assert set_new(Browser(app), ask_for_reset(Browser(app), smtp, deliver)).status_code == 302
    answer = other.post("/login", {"action": "new", "csrf_token": other.last_csrf,
                                   "nonce": other.last_nonce})
    assert answer.status_code == 302 and answer.headers["Location"] == "/login"
    assert "That question had expired" in other.text("/login")
    with app.app_context():
        assert db.session.scalars(select(SignIn).where(SignIn.status == "pending")).all() == []
