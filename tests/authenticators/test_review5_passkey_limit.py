"""An account with the most passkeys it may have is told so before the device makes another."""

from __future__ import annotations

from sqlalchemy import func, select

from extensions import db
from models import Passkey, WebAuthnChallenge
from services.authenticators import passkeys
from tests.authenticators.conftest import SoftKey, add_passkey


def test_at_the_most_passkeys_no_challenge_is_offered_so_no_passkey_is_left_on_the_device(
        app, sign_in):
    b = sign_in()
    for number in range(passkeys.MAX_PASSKEYS):
        assert add_passkey(b, SoftKey(), name=f"Key {number}")["status"] == 200

    # Options would have the phone make (and keep) a passkey the server then refuses: one
    # the client's password manager offers for ever, which then "is not one we know".
    answer = b.post("/account/passkeys/options", {"name": "One too many"},
                    form_page="/account/security")
    assert answer.status_code == 422
    body = answer.get_json()
    assert "options" not in body
    assert f"You have {passkeys.MAX_PASSKEYS} passkeys" in body["error"]
    with app.app_context():
        assert db.session.scalar(select(func.count(Passkey.id))) == passkeys.MAX_PASSKEYS
        assert db.session.scalar(select(func.count(WebAuthnChallenge.id)).where(
            WebAuthnChallenge.purpose == passkeys.REGISTER)) == 0
