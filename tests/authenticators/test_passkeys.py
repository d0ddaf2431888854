"""Passkeys through the front door, answered by a software passkey (SoftKey)."""

from __future__ import annotations

import json
import os
from datetime import timedelta

import cbor2
from sqlalchemy import func, select

from extensions import db
from models import AuthSession, Event, Passkey, SignIn, WebAuthnChallenge
from services import clock
from services.authenticators import passkeys
from tests.authenticators.conftest import (
    SoftKey, add_passkey, passkey_options, sign_in_with, unb64,
)
from tests.conftest import TEST_PASSWORD, Browser, add_user


def _events(app, type_: str) -> list[Event]:
    with app.app_context():
        return list(db.session.scalars(select(Event).where(Event.type == type_)
                                       .order_by(Event.id)))


def test_add_a_passkey_and_sign_in_with_it_without_password_or_code(app, sign_in, smtp):
    b = sign_in()
    options = json.loads(b.post("/account/passkeys/options", {"name": "x"},
                                form_page="/account/security").get_data(as_text=True))["options"]
    # The relying party is PORTAL_URL's host; a discoverable credential, verification required.
    assert options["rp"]["id"] == "localhost"
    assert options["authenticatorSelection"]["residentKey"] == "required"
    assert options["authenticatorSelection"]["userVerification"] == "required"
    assert unb64(options["user"]["id"]) != b"1" and "client" not in options["user"]["id"]

    key = SoftKey()
    added = add_passkey(b, key, name="  Kitchen   iPad ")
    assert added["status"] == 200 and added["redirect"].endswith("/account/security#passkeys")
    page = b.text("/account/security")
    assert "Kitchen iPad" in page and "Not used yet." in page

    fresh = Browser(app)
    count = len(smtp.messages)
    answer = sign_in_with(fresh, key)
    assert answer.status_code == 200 and answer.get_json()["redirect"] == "/portal"
    assert fresh.get("/portal").status_code == 200
    assert len(smtp.messages) == count  # no code
    with app.app_context():
        row = db.session.scalars(select(AuthSession).order_by(AuthSession.id.desc())).first()
        assert row.amr == ["hwk", "user", "mfa"]
        assert db.session.scalar(select(Passkey.last_used_at)) is not None
    used = _events(app, "passkey_used")[-1]
    assert used.detail["authenticator"] == "multi-factor cryptographic"
    assert used.detail["name"] == "Kitchen iPad"
    assert "Last used" in fresh.text("/account/security")


def test_a_synced_passkey_is_recorded_as_a_software_key(app, sign_in):
    """RFC 8176's "hwk" is a key kept in the device's hardware; a passkey the browser says is
    backed up (synced between the client's devices) is "swk"."""
    key = SoftKey(synced=True)
    add_passkey(sign_in(), key, name="Synced")
    assert sign_in_with(Browser(app), key).status_code == 200
    with app.app_context():
        assert db.session.scalar(select(Passkey.backed_up)) is True
        row = db.session.scalars(select(AuthSession).order_by(AuthSession.id.desc())).first()
        assert row.amr == ["swk", "user", "mfa"]


def test_a_challenge_answers_once(app, sign_in):
    key = SoftKey()
    add_passkey(sign_in(), key)
    b = Browser(app)
    options = passkey_options(b)
    cookie_name = app.config["SESSION_COOKIE_NAME"]
    naming_the_challenge = b.client.get_cookie(cookie_name).value
    answer = key.sign(options)
    with app.app_context():
        assert db.session.scalar(select(func.count(WebAuthnChallenge.id))) == 1
    assert b.post("/login/passkey/verify", {"credential": answer},
                  form_page="/login").status_code == 200
    with app.app_context():
        assert db.session.scalar(select(func.count(WebAuthnChallenge.id))) == 0
    # The same signed answer again, from a copy of the cookie that named the challenge.
    replay = Browser(app)
    replay.client.set_cookie(cookie_name, naming_the_challenge)
    again = replay.post("/login/passkey/verify", {"credential": answer}, form_page="/login")
    assert again.status_code == 403
    assert replay.get("/portal").status_code == 302


def test_no_user_verification_another_origin_and_a_stale_challenge_are_refused(app, sign_in):
    key = SoftKey()
    add_passkey(sign_in(), key)
    b = Browser(app)
    assert sign_in_with(b, key, verified=False).status_code == 400
    assert sign_in_with(b, key, origin="https://phish.example").status_code == 400
    assert sign_in_with(b, key, rp_id="phish.example").status_code == 400
    options = passkey_options(b)
    clock.advance(timedelta(minutes=6))
    late = b.post("/login/passkey/verify", {"credential": key.sign(options)}, form_page="/login")
    assert late.status_code == 403 and "took too long" in late.get_json()["error"]
    assert b.get("/portal").status_code == 302
    assert [e.outcome for e in _events(app, "passkey_refused")] == ["invalid"] * 3


def test_a_credential_id_longer_than_webauthn_allows_is_refused(app, sign_in):
    b, key = sign_in(), SoftKey()
    key.credential_id = os.urandom(passkeys.MAX_CREDENTIAL_ID_BYTES + 1)
    assert add_passkey(b, key)["status"] == 400  # not a 500 on PostgreSQL: it would not fit
    assert [e.outcome for e in _events(app, "passkey_refused")] == ["invalid"]
    key.credential_id = os.urandom(passkeys.MAX_CREDENTIAL_ID_BYTES)  # the most allowed
    assert add_passkey(b, key)["status"] == 200


def test_a_public_key_that_could_never_sign_in_is_refused_not_kept(app, sign_in):
    b = sign_in()
    # An empty or list-shaped key once reached plain indexing inside py_webauthn (a 500); a
    # lone 0x04, the start of an uncompressed point, was kept with no point to check with.
    for malformed in (cbor2.dumps(b""), cbor2.dumps([]), cbor2.dumps("a"), cbor2.dumps(4),
                      cbor2.dumps({1: 2, 3: -7, -1: 1, -2: b"x", -3: b"y"})):
        key = SoftKey()
        key.public_key_cbor = malformed
        assert add_passkey(b, key)["status"] == 400, malformed
    with app.app_context():
        assert db.session.scalar(select(func.count(Passkey.id))) == 0
    assert [e.outcome for e in _events(app, "passkey_refused")] == ["invalid"] * 5
    assert add_passkey(b, SoftKey())["status"] == 200


def test_a_passkey_sign_in_ends_a_sign_in_left_waiting_for_a_code(app, sign_in, smtp, deliver):
    """As a code's success does: the lockout counts wrong codes only on sign-ins begun since
    the last success, so one left waiting would take its wrong codes uncounted."""
    key = SoftKey()
    add_passkey(sign_in(), key)
    other = Browser(app)  # someone with the password, waiting for the code
    assert other.log_in().status_code == 302
    assert sign_in_with(Browser(app), key).status_code == 200
    with app.app_context():
        waiting = db.session.scalars(select(SignIn).where(SignIn.channel == "email")
                                     .order_by(SignIn.id.desc())).first()
        assert waiting.status == "cancelled"
    response = other.enter_code("123456")
    assert "This sign-in has ended" in response.get_data(as_text=True)
    assert [e.detail["by"] for e in _events(app, "signin_cancelled")] == ["passkey"]


def test_a_counter_that_goes_back_is_a_clone_warning(app, sign_in):
    key = SoftKey(counter_starts=10)
    add_passkey(sign_in(), key)
    assert sign_in_with(Browser(app), key).status_code == 200  # count 11
    copy = Browser(app)
    refused = sign_in_with(copy, key, count=5)
    assert refused.status_code == 403
    assert "to keep your account safe" in refused.get_json()["error"]
    warning = _events(app, "passkey_clone_warning")[-1]
    assert warning.detail["stored_count"] == 11 and warning.detail["given_count"] == 5
    assert copy.get("/portal").status_code == 302


def test_adding_needs_a_recent_sign_in_or_the_password(app, sign_in):
    b = sign_in()
    clock.advance(timedelta(minutes=11))
    asked = b.post("/account/passkeys/options", {"name": "Phone"}, form_page="/account/security")
    assert asked.status_code == 422 and "Enter your password" in asked.get_json()["error"]
    wrong = b.post("/account/passkeys/options", {"name": "Phone", "password": "nope"},
                   form_page="/account/security")
    assert wrong.status_code == 422 and "4 tries left" in wrong.get_json()["error"]
    assert add_passkey(b, SoftKey(), password=TEST_PASSWORD)["status"] == 200


def test_a_removed_passkey_no_longer_signs_in_and_others_cannot_remove_it(app, sign_in, smtp,
                                                                           deliver):
    key = SoftKey()
    owner = sign_in()
    add_passkey(owner, key, name="Old phone")
    with app.app_context():
        passkey_id = db.session.scalar(select(Passkey.id))
    add_user(app, "other@example.com")
    intruder = sign_in("other@example.com", b=Browser(app))
    intruder.post(f"/account/passkeys/{passkey_id}/remove", form_page="/account/security")
    with app.app_context():
        assert db.session.scalar(select(func.count(Passkey.id))) == 1

    owner.post(f"/account/passkeys/{passkey_id}/remove", form_page="/account/security")
    assert "We have removed the passkey “Old phone”" in owner.text("/account/security")
    answer = sign_in_with(Browser(app), key)
    assert answer.status_code == 403 and "do not know that passkey" in answer.get_json()["error"]
    deliver()
    assert any("was removed from your account" in m.text for m in smtp.messages)


def test_removing_a_passkey_after_ten_minutes_asks_for_the_password(app, sign_in):
    """As adding one does: a session left open must not take the client's way in away."""
    b = sign_in()
    add_passkey(b, SoftKey(), name="Old phone")
    with app.app_context():
        passkey_id = db.session.scalar(select(Passkey.id))
    clock.advance(timedelta(minutes=11))
    page = b.text("/account/security")
    step = f"/account/security?remove={passkey_id}#passkey-{passkey_id}"
    assert f'href="{step}"' in page
    assert f'id="passkey-remove-password-{passkey_id}"' not in page
    asked = b.text(f"/account/security?remove={passkey_id}")
    assert f'id="passkey-remove-password-{passkey_id}"' in asked and ">Cancel</a>" in asked

    refused = b.post(f"/account/passkeys/{passkey_id}/remove", form_page="/account/security")
    assert refused.status_code == 302 and refused.location.endswith(step)
    shown = b.text(refused.location)
    # Beside the box on that row, where the browser has scrolled to; not at the page's top.
    error = shown.split(f'id="passkey-remove-password-{passkey_id}-error"', 1)[1]
    assert error.split("</p>", 1)[0].endswith("Enter your password to make this change: you "
                                               "signed in more than 10 minutes ago.")
    assert 'class="flashes"' not in shown
    wrong = b.post(f"/account/passkeys/{passkey_id}/remove", {"password": "not it"},
                   form_page="/account/security")
    assert "That password is not right. Nothing has changed." in b.text(wrong.location)
    with app.app_context():
        assert db.session.scalar(select(func.count(Passkey.id))) == 1
    b.post(f"/account/passkeys/{passkey_id}/remove", {"password": TEST_PASSWORD},
           form_page="/account/security")
    assert "We have removed the passkey “Old phone”" in b.text("/account/security")
    with app.app_context():
        assert db.session.scalar(select(func.count(Passkey.id))) == 0


def test_removing_a_passkey_ends_the_sessions_it_opened_but_not_this_one(app, sign_in):
    key, mine = SoftKey(), SoftKey()
    owner = sign_in()
    add_passkey(owner, key, name="Spare key")
    add_passkey(owner, mine, name="My phone")
    elsewhere, here, by_code = Browser(app), Browser(app), sign_in(b=Browser(app))
    assert sign_in_with(elsewhere, key).status_code == 200
    assert sign_in_with(here, key).status_code == 200
    assert sign_in_with(Browser(app), mine).status_code == 200
    with app.app_context():
        spare = db.session.scalar(select(Passkey.id).where(Passkey.name == "Spare key"))

    here.post(f"/account/passkeys/{spare}/remove", form_page="/account/security")
    assert elsewhere.get("/portal").status_code == 302  # opened by the removed passkey
    assert here.get("/portal").status_code == 200  # where it was removed
    assert by_code.get("/portal").status_code == 200 and owner.get("/portal").status_code == 200
    assert _events(app, "passkey_removed")[-1].detail["sessions_ended"] == 1


def test_signing_in_again_with_a_passkey_ends_the_session_it_replaces(app, sign_in):
    key = SoftKey()
    b = sign_in()
    add_passkey(b, key)
    old = b.client.get_cookie("clientgate_session").value
    copy = app.test_client()
    copy.set_cookie("clientgate_session", old)
    assert copy.get("/portal").status_code == 200
    options = b.post("/login/passkey/options", form_page="/portal").get_json()["options"]
    answer = b.post("/login/passkey/verify", {"credential": key.sign(options)},
                    form_page="/portal")
    assert answer.status_code == 200
    assert b.client.get_cookie("clientgate_session").value != old
    assert b.get("/portal").status_code == 200
    assert copy.get("/portal").status_code == 302  # a copy of the replaced cookie is dead


def test_a_password_reset_removes_every_passkey_and_the_notice_says_so(app, sign_in, smtp,
                                                                        deliver):
    """A reset is how a client shuts someone else out of the account. A passkey signs in
    without the password, so one added during a hijacked session must not outlive it."""
    from tests.accounts.test_passwords import ask_for_reset, set_new

    owners, intruders = SoftKey(), SoftKey()
    add_passkey(sign_in(), owners, name="My phone")
    add_passkey(sign_in(b=Browser(app)), intruders, name="Spare key")
    assert sign_in_with(Browser(app), intruders).status_code == 200

    assert set_new(Browser(app), ask_for_reset(Browser(app), smtp, deliver)).status_code == 302
    for key in (owners, intruders):
        answer = sign_in_with(Browser(app), key)
        assert answer.status_code == 403, answer.get_data(as_text=True)
    with app.app_context():
        assert db.session.scalar(select(func.count(Passkey.id))) == 0
    removed = _events(app, "passkeys_removed")[-1]
    assert removed.detail == {"count": 2, "reason": "password reset"}
    deliver()
    notice = smtp.last_to("client@example.com")
    assert "changed" in notice.subject
    assert "removed the account's passkeys (My phone, Spare key)" in notice.text


def test_changing_the_password_keeps_the_passkeys(app, sign_in, smtp, deliver):
    key = SoftKey()
    b = sign_in()
    add_passkey(b, key)
    new = "plum tree by the river"
    answer = b.post("/account/password", {"current_password": TEST_PASSWORD,
                                          "password": new, "confirm": new})
    assert answer.status_code == 302
    assert sign_in_with(Browser(app), key).status_code == 200
    deliver()
    assert "passkeys" not in smtp.last_to("client@example.com").text


def test_without_javascript_the_buttons_say_so(app, sign_in):
    b = Browser(app)
    page = b.text("/login")
    assert ">Sign in with a passkey</button>" in page
    b.post("/login/passkey", form_page="/login")
    assert "Passkeys need JavaScript" in b.text("/login")
    signed = sign_in()
    signed.post("/account/passkeys", {"name": "x"}, form_page="/account/security")
    assert "Adding a passkey needs JavaScript" in signed.text("/account/security")


def test_bad_answers_are_4xx_never_500(app, sign_in):
    b = Browser(app)
    for junk in ("", "{}", "[]", "not json", json.dumps({"id": "x", "rawId": "x", "response": {}}),
                 "\x00" * 100):
        passkey_options(b)
        response = b.post("/login/passkey/verify", {"credential": junk}, form_page="/login")
        assert 400 <= response.status_code < 500, (junk, response.status_code)
    signed = sign_in()
    for junk in ("{}", "nonsense"):
        signed.post("/account/passkeys/options", {"name": "x"}, form_page="/account/security")
        response = signed.post("/account/passkeys/verify", {"credential": junk},
                               form_page="/account/security")
        assert 400 <= response.status_code < 500
    no_csrf = Browser(app).client.post("/login/passkey/options", data={})
    assert no_csrf.status_code in (302, 400)
