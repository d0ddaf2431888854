"""/account/security: choosing email or SMS, proving a new number, re-asking the password."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from sqlalchemy import select

from extensions import db
from models import Event, PhoneProof
from services import clock
from tests.conftest import TEST_PASSWORD, add_user, user_by_email, wrong_code
from tests.sms.conftest import SMS_EMAIL, SMS_PHONE

PAGE = "/account/security"
EMAIL = "client@example.com"


@pytest.fixture
def client_in(app, user, sign_in):
    """An email client, signed in a moment ago."""
    return sign_in()


def _ask_for_sms(b, phone="07400 123456", **extra):
    return b.post(PAGE, {"channel": "sms", "phone": phone, **extra})


def _notices(smtp) -> list:
    return [m for m in smtp.messages if "sign-in settings have changed" in m.subject]


def _events(app, type_: str) -> list[Event]:
    with app.app_context():
        rows = db.session.scalars(select(Event).where(Event.type == type_).order_by(Event.id)).all()
        db.session.expunge_all()
        return rows


def test_needs_sign_in(browser):
    response = browser.get(PAGE)
    assert response.status_code == 302 and "/login" in response.headers["Location"]
    assert browser.client.post(PAGE, data={"channel": "sms"}).status_code in (302, 400)


def test_page_shows_the_current_channel(client_in):
    page = client_in.text(PAGE)
    assert "Your codes come by <strong>email</strong> to <strong>client@example.com" in page
    assert 'name="channel"' in page and 'name="phone"' in page
    assert 'name="password"' not in page  # signed in a moment ago
    assert re.search(r'<input checked id="channel-0" name="channel"[^>]*value="email"', page)
    assert not re.search(r'<input checked[^>]*value="sms"', page)


def test_account_link_in_the_header(client_in):
    assert 'href="/account/security"' in client_in.text("/portal")


@pytest.mark.parametrize("typed", ["07400 123456", "+44 7400 123456", "447400123456",
                                   "+44 (0)7400-123-456"])
def test_prove_a_number_then_codes_come_by_sms(app, client_in, vonage, smtp, deliver, typed):
    response = _ask_for_sms(client_in, typed)
    assert response.status_code == 302
    # Nothing changes until the number is proved.
    user = user_by_email(app, EMAIL)
    assert user.channel == "email" and user.phone is None

    deliver()
    proof_sms = vonage.last_to(SMS_PHONE)
    assert proof_sms.code and "confirm this mobile number" in proof_sms.text
    assert f"@localhost #{proof_sms.code}" in proof_sms.text
    page = client_in.text(PAGE)
    assert "Confirm your new number" in page and "07400 123456" in page
    assert 'autocomplete="one-time-code"' in page
    with app.app_context():
        proof = db.session.scalars(select(PhoneProof)).one()
        assert proof.code_hash and proof_sms.code not in proof.code_hash

    response = client_in.post(PAGE, {"code": proof_sms.code, "channel": "sms"})
    assert response.status_code == 302
    user = user_by_email(app, EMAIL)
    assert (user.channel, user.phone) == ("sms", SMS_PHONE)
    assert user.phone_verified_at is not None
    page = client_in.text(PAGE)
    assert "is confirmed" in page and "text message" in page
    # One way of writing the number in one sentence, not "07400 123456 ... •••• ••• 456"
    # (issue 11, point 12): on their own page the client sees their own number.
    confirmation = page.split("notice-success", 1)[1].split("</div>", 1)[0]
    assert "07400 123456 is confirmed" in confirmation and "•" not in confirmation

    deliver()
    [notice] = _notices(smtp)
    assert notice.to == [EMAIL]
    assert "•••• ••• 456" in notice.text and "text message" in notice.text
    assert proof_sms.code not in notice.text
    assert _events(app, "security_changed")[0].detail["after"]["channel"] == "sms"


def test_next_sign_in_uses_the_proved_number(app, client_in, vonage, smtp, deliver,
                                             sms_sign_in, browser):
    _ask_for_sms(client_in)
    deliver()
    client_in.post(PAGE, {"code": vonage.last_to(SMS_PHONE).code, "channel": "sms"})
    client_in.post("/logout", {}, form_page="/portal")
    before = len(vonage.received)
    sms_sign_in(EMAIL, SMS_PHONE, b=client_in)
    assert len(vonage.received) == before + 1
    assert client_in.get("/portal").status_code == 200


@pytest.mark.parametrize("typed, words", [
    ("020 7946 0000", "landline"),
    ("0161 496 0000", "landline"),
    ("09098 790000", "not a mobile"),
    ("+1 202 555 0136", "not a UK number"),
    ("+33 6 12 34 56 78", "not a UK number"),
    ("+44 7624 123456", "Isle of Man"),
    ("07400 12345", "not a complete"),
    ("07400 HELLO1", "only digits"),
    ("0" * 60, "too long"),
    ("7" * 5000, "too long"),
    ("\x01\x02\x03", "only digits"),  # (a NUL is refused before any form: app.py)
])
def test_refused_numbers_change_nothing(app, client_in, vonage, smtp, deliver, typed, words):
    response = _ask_for_sms(client_in, typed)
    assert response.status_code == 422
    page = response.get_data(as_text=True)
    assert words in page
    assert "work only for UK mobile numbers" in page and "by email instead" in page
    assert 'aria-invalid="true"' in page
    user = user_by_email(app, EMAIL)
    assert (user.channel, user.phone) == ("email", None)
    deliver()
    assert vonage.received == [] and _notices(smtp) == []


def test_refused_number_keeps_an_sms_client_on_sms(app, sms_user, sms_sign_in, vonage):
    b = sms_sign_in()
    response = b.post(PAGE, {"channel": "sms", "phone": "+1 202 555 0136"})
    assert response.status_code == 422
    user = user_by_email(app, SMS_EMAIL)
    assert (user.channel, user.phone) == ("sms", SMS_PHONE)


def test_sms_without_a_number(app, client_in):
    response = client_in.post(PAGE, {"channel": "sms", "phone": ""})
    assert response.status_code == 422
    assert "Enter your UK mobile number" in response.get_data(as_text=True)
    assert user_by_email(app, EMAIL).channel == "email"


@pytest.mark.parametrize("data", [
    {"channel": "fax", "phone": ""},
    {"channel": "", "phone": "07400 123456"},
    {"phone": "07400 123456"},
    {"channel": "sms" * 1000},
])
def test_bad_channel(app, client_in, data):
    response = client_in.post(PAGE, data)
    assert response.status_code == 422
    assert "Choose email or text message" in response.get_data(as_text=True)
    assert user_by_email(app, EMAIL).channel == "email"


def test_switch_back_to_email_keeps_the_number(app, sms_user, sms_sign_in, smtp, deliver):
    b = sms_sign_in()
    assert b.post(PAGE, {"channel": "email", "phone": "07400 123456"}).status_code == 302
    user = user_by_email(app, SMS_EMAIL)
    assert (user.channel, user.phone) == ("email", SMS_PHONE)
    deliver()
    [notice] = _notices(smtp)
    assert "come by email" in notice.text


def test_proved_number_needs_no_new_proof(app, vonage, smtp, deliver, sign_in):
    add_user(app, EMAIL, channel="email", phone=SMS_PHONE)
    b = sign_in()
    sent_before = len(vonage.received)
    assert b.post(PAGE, {"channel": "sms", "phone": "+44 7400 123456"}).status_code == 302
    assert user_by_email(app, EMAIL).channel == "sms"
    deliver()
    assert len(vonage.received) == sent_before  # no proof was needed
    assert len(_notices(smtp)) == 1


def test_remove_the_number(app, sms_user, sms_sign_in, smtp, deliver):
    b = sms_sign_in()
    assert b.post(PAGE, {"channel": "email", "phone": ""}).status_code == 302
    user = user_by_email(app, SMS_EMAIL)
    assert (user.channel, user.phone, user.phone_verified_at) == ("email", None, None)
    deliver()
    assert "ending 456 was removed" in _notices(smtp)[0].text


def test_nothing_changed(app, client_in, smtp, deliver):
    response = client_in.post(PAGE, {"channel": "email", "phone": ""})
    assert response.status_code == 302
    assert "Nothing has changed" in client_in.text(PAGE)
    deliver()
    assert _notices(smtp) == []


def test_proving_a_number_while_keeping_email(app, client_in, vonage, deliver):
    client_in.post(PAGE, {"channel": "email", "phone": "07400 123456"})
    deliver()
    page = client_in.text(PAGE)
    assert 'id="proof-channel" name="channel" type="hidden" value="email"' in page
    client_in.post(PAGE, {"code": vonage.last_to(SMS_PHONE).code, "channel": "email"})
    user = user_by_email(app, EMAIL)
    assert (user.channel, user.phone) == ("email", SMS_PHONE)


def test_proving_a_number_keeps_the_authenticator_app(app, client_in, vonage, deliver):
    """Adding a number (for a fallback) must not move an app user's codes to texts."""
    from tests.authenticators.conftest import secret_from, totp_now

    client_in.post(PAGE, {"form": "totp-start"})
    secret = secret_from(client_in.text(PAGE))
    client_in.post(PAGE, {"form": "totp-confirm", "code": totp_now(secret)})
    assert user_by_email(app, EMAIL).channel == "totp"
    client_in.post(PAGE, {"channel": "totp", "phone": "07400 123456"})
    deliver()
    page = client_in.text(PAGE)
    assert 'id="proof-channel" name="channel" type="hidden" value="totp"' in page
    client_in.post(PAGE, {"code": vonage.last_to(SMS_PHONE).code, "channel": "totp"})
    user = user_by_email(app, EMAIL)
    assert (user.channel, user.phone) == ("totp", SMS_PHONE)
    assert "still come from your authenticator app" in client_in.text(PAGE)


# --- the proof's code -----------------------------------------------------------------

def _start_proof(client_in, vonage, deliver) -> str:
    assert _ask_for_sms(client_in).status_code == 302
    deliver()
    return vonage.last_to(SMS_PHONE).code


_wrong = wrong_code


def test_wrong_codes_then_locked(app, client_in, vonage, deliver):
    code = _start_proof(client_in, vonage, deliver)
    for left in (4, 3, 2, 1):
        response = client_in.post(PAGE, {"code": _wrong(code), "channel": "sms"})
        assert response.status_code == 422
        text = response.get_data(as_text=True)
        assert "That code is not right" in text
        assert f"{left} {'try' if left == 1 else 'tries'} left" in text
    response = client_in.post(PAGE, {"code": _wrong(code), "channel": "sms"})
    assert response.status_code == 302
    assert "too many wrong codes" in client_in.text(PAGE)
    # Even the right code no longer works.
    client_in.post(PAGE, {"code": code, "channel": "sms"})
    user = user_by_email(app, EMAIL)
    assert (user.channel, user.phone) == ("email", None)
    outcomes = [e.outcome for e in _events(app, "phone_proof_entry")]
    assert outcomes == ["wrong"] * 4 + ["locked", "locked"]
    with app.app_context():
        details = " ".join(str(e.detail) for e in db.session.scalars(select(Event)))
    assert code not in details


def test_code_runs_out_after_10_minutes(app, client_in, vonage, deliver):
    code = _start_proof(client_in, vonage, deliver)
    clock.advance(timedelta(minutes=10, seconds=1))
    response = client_in.post(PAGE, {"code": code, "channel": "sms"})
    assert response.status_code == 302
    assert "ran out" in client_in.text(PAGE)
    assert user_by_email(app, EMAIL).phone is None


def test_code_with_spaces_and_full_width_digits(app, client_in, vonage, deliver):
    code = _start_proof(client_in, vonage, deliver)
    typed = " ".join([code[:3], code[3:]]).translate(str.maketrans("0123456789", "０１２３４５６７８９"))
    assert client_in.post(PAGE, {"code": typed, "channel": "sms"}).status_code == 302
    assert user_by_email(app, EMAIL).phone == SMS_PHONE


@pytest.mark.parametrize("typed", ["", "12345", "abcdef", "1" * 5000, "\x01" * 6])
def test_malformed_codes(app, client_in, vonage, deliver, typed):
    _start_proof(client_in, vonage, deliver)
    response = client_in.post(PAGE, {"code": typed, "channel": "sms"})
    assert response.status_code == 422
    assert "6 digits" in response.get_data(as_text=True) or "Enter the 6-digit code" in \
        response.get_data(as_text=True)
    assert _events(app, "phone_proof_entry") == []  # not counted as a try


def test_code_with_no_proof_waiting(app, client_in):
    response = client_in.post(PAGE, {"code": "123456", "channel": "sms"})
    assert response.status_code == 302
    assert "no new number waiting" in client_in.text(PAGE)
    assert user_by_email(app, EMAIL).phone is None


def test_a_sign_in_code_does_not_prove_a_number(app, client_in, vonage, deliver, smtp):
    _start_proof(client_in, vonage, deliver)
    sign_in_code = smtp.last_to(EMAIL).code
    client_in.post(PAGE, {"code": sign_in_code, "channel": "sms"})
    assert user_by_email(app, EMAIL).phone is None


def test_new_code_replaces_the_old_one(app, client_in, vonage, deliver):
    first = _start_proof(client_in, vonage, deliver)
    response = client_in.post(PAGE, {"action": "resend"})
    assert response.status_code == 302
    assert "Please wait" in client_in.text(PAGE)

    clock.advance(timedelta(seconds=31))
    client_in.post(PAGE, {"action": "resend"})
    deliver()
    second = vonage.last_to(SMS_PHONE).code
    assert len(vonage.received) == 2
    if second != first:
        client_in.post(PAGE, {"code": first, "channel": "sms"})
        assert user_by_email(app, EMAIL).phone is None
    client_in.post(PAGE, {"code": second, "channel": "sms"})
    assert user_by_email(app, EMAIL).phone == SMS_PHONE


def test_at_most_five_proofs_an_hour(app, client_in, vonage, deliver):
    for number in range(5):
        assert _ask_for_sms(client_in, f"07400 12345{number}").status_code == 302
        clock.advance(timedelta(seconds=31))
    _ask_for_sms(client_in, "07400 123459")
    assert "the most we send" in client_in.text(PAGE)
    deliver()
    assert len(vonage.received) == 1  # each new number cancelled the last one's unsent code
    for _ in range(3):  # an hour later, with the session kept alive
        clock.advance(timedelta(minutes=20))
        assert client_in.get(PAGE).status_code == 200
    assert _ask_for_sms(client_in, "07400 123459", password=TEST_PASSWORD).status_code == 302
    assert "Confirm your new number" in client_in.text(PAGE)


def test_stop_proving(app, client_in, vonage, deliver):
    _start_proof(client_in, vonage, deliver)
    client_in.post(PAGE, {"action": "cancel"})
    page = client_in.text(PAGE)
    assert "We have stopped checking 07400 123456" in page
    assert "Confirm your new number" not in page


def test_proof_sms_refused_shows_why(app, client_in, vonage, deliver):
    vonage.refuse_next("7")
    _ask_for_sms(client_in)
    deliver()
    page = client_in.text(PAGE)
    assert "Could not be sent: this number is barred from receiving text messages" in page


# --- the password again ---------------------------------------------------------------

def test_password_needed_after_ten_minutes(app, client_in, vonage, deliver):
    clock.advance(timedelta(minutes=11))
    page = client_in.text(PAGE)
    assert 'name="password"' in page and "more than 10 minutes ago" in page

    response = _ask_for_sms(client_in)
    assert response.status_code == 422
    assert "Enter your password to make this change" in response.get_data(as_text=True)
    response = _ask_for_sms(client_in, password="not my password")
    assert response.status_code == 422
    assert "That password is not right" in response.get_data(as_text=True)
    deliver()
    assert vonage.received == []

    assert _ask_for_sms(client_in, password=TEST_PASSWORD).status_code == 302
    deliver()
    code = vonage.last_to(SMS_PHONE).code
    # Entering the code needs no password: the change was allowed when it began.
    assert client_in.post(PAGE, {"code": code, "channel": "sms"}).status_code == 302
    assert user_by_email(app, EMAIL).channel == "sms"


def test_five_wrong_passwords_sign_out(app, client_in):
    clock.advance(timedelta(minutes=11))
    cookie = client_in.client.get_cookie(app.config["SESSION_COOKIE_NAME"]).value
    for _ in range(4):
        assert _ask_for_sms(client_in, password="wrong").status_code == 422
    response = _ask_for_sms(client_in, password="wrong")
    assert response.status_code == 302 and "/login" in response.headers["Location"]
    assert client_in.get("/portal").status_code == 302
    assert len(_events(app, "reauth_failed")) == 5
    # The count and the sign-out live on the server: replaying the old cookie gets nowhere.
    replay = app.test_client()
    replay.set_cookie(app.config["SESSION_COOKIE_NAME"], cookie)
    assert replay.get("/portal").status_code == 302
    assert replay.get(PAGE).status_code == 302


def test_csrf_is_required(app, client_in):
    response = client_in.post(PAGE, {"channel": "sms", "phone": "07400 123456"}, csrf=False)
    assert response.status_code == 302
    assert "open too long" in client_in.text(PAGE)
    response = client_in.post(PAGE, {"channel": "sms", "phone": "07400 123456",
                                      "csrf_token": "forged"}, csrf=False)
    assert response.status_code == 302
    assert user_by_email(app, EMAIL).phone is None
    assert _events(app, "phone_proof_started") == []


def test_proving_a_number_counts_towards_the_hourly_code_cap(app, client_in, vonage, smtp,
                                                             deliver):
    app.config["CODES_PER_ACCOUNT_PER_HOUR"] = 1  # the sign-in code used the only one
    _ask_for_sms(client_in)
    assert "the most we send" in client_in.text(PAGE)
    deliver()
    assert vonage.received == []
    with app.app_context():
        assert db.session.scalars(select(PhoneProof)).all() == []
