"""A sign-in the client's own doing ended (sign out everywhere else, a passkey, a new password)
is not put down to staff: "Ended by staff" sends support looking for a colleague who did
nothing, while the client's real step goes unsaid."""

from __future__ import annotations

from flask import request
from sqlalchemy import select

from extensions import db
from models import SignIn, User
from services.authenticators import sign_ins
from tests.conftest import Browser
from tests.support.conftest import CLIENT, PHONE_UA, start, views


def _only_sign_in(app, user_id: int) -> SignIn:
    with app.app_context():
        row = db.session.scalar(select(SignIn).where(SignIn.user_id == user_id))
        db.session.expunge(row)
        return row


def test_sign_out_everywhere_else_is_not_put_down_to_staff(app, client_id, smtp, deliver,
                                                            sign_in, staff):
    signed_in = sign_in(CLIENT)  # the client's own browser, signed in
    other = Browser(app, user_agent=PHONE_UA)
    start(other, smtp, deliver)  # a sign-in waiting for its code elsewhere
    response = signed_in.post("/account/devices/sign-out-others", {},
                              form_page="/account/devices")
    assert response.status_code in (302, 303)

    [ended] = [v for v in views(app, client_id) if v.sign_in.status == "cancelled"]
    words = " ".join([ended.ending] + [f.text for f in ended.findings])
    assert "staff" not in words, words
    assert "everywhere else" in words, words
    page = staff.text(f"/support/clients/{client_id}")
    assert "Ended by staff" not in page


def test_a_passkey_sign_in_that_ends_a_waiting_code_is_not_put_down_to_staff(
        app, client_id, smtp, deliver, phone, staff):
    start(phone, smtp, deliver)  # waiting for its code
    with app.test_request_context("/passkeys/sign-in", method="POST"):
        assert request.method == "POST"
        user = db.session.get(User, client_id)
        sign_ins.record_codeless(user, sign_ins.PASSKEY, "My phone")
        db.session.commit()

    [ended] = [v for v in views(app, client_id) if v.sign_in.status == "cancelled"]
    told = [(s.what, s.detail) for s in ended.steps]
    words = " ".join([ended.ending] + [f.text for f in ended.findings]
                     + [f"{what} {detail}" for what, detail in told])
    assert "staff" not in words and "support console" not in words, words
    assert "passkey" in words, words
    page = staff.text(f"/support/clients/{client_id}")
    assert "Ended by staff" not in page and "from the support console" not in page


def test_a_sign_in_staff_ended_still_names_them(app, client_id, smtp, deliver, phone, staff):
    start(phone, smtp, deliver)
    staff.post(f"/support/clients/{client_id}/actions/end-sign-ins", {"confirm": "y"})
    [ended] = [v for v in views(app, client_id) if v.sign_in.status == "cancelled"]
    assert "Ended by support@example.com" in " ".join(f.text for f in ended.findings)
    assert ended.ending.startswith("Ended by staff at") or "support@example.com" in ended.ending


def test_a_sign_in_ended_by_removing_the_app_says_so(app, client_id, smtp, deliver, phone):
    from services.signin import codes

    start(phone, smtp, deliver)  # waiting for its code
    with app.app_context():
        codes.end_pending_sign_ins(db.session.get(User, client_id), by="totp_removed")
        db.session.commit()
    [ended] = [v for v in views(app, client_id) if v.sign_in.status == "cancelled"]
    words = " ".join([ended.ending] + [f.text for f in ended.findings])
    assert "stopped using the authenticator app" in words and "staff" not in words, words
