"""A passkey being added while support gives the account back (or a new password or switching
the account off ends its session): the request passed login_required before that committed,
and its passkey was saved after the passkeys were removed, so the intruder kept a way in."""

from __future__ import annotations

from sqlalchemy import func, select

from blueprints import authenticators as views
from extensions import db
from models import Passkey, User
from services.accounts import lifecycle
from tests.authenticators.conftest import SoftKey, add_passkey


def test_a_passkey_added_as_the_account_is_given_back_is_not_kept(app, sign_in, monkeypatch):
    intruder = sign_in()
    held = views.codes.hold_account

    def given_back_meanwhile(user):
        # Support's give-back commits while this request is on its way: it holds the account
        # first, so here is where the request meets it.
        lifecycle.recover(db.session.get(User, user.id), by="support")
        db.session.commit()
        held(user)

    monkeypatch.setattr(views.codes, "hold_account", given_back_meanwhile)
    done = add_passkey(intruder, SoftKey(), name="Mine now")
    assert done["status"] == 401
    assert done["error"] == "You have been signed out, so the passkey was not added."
    assert done["redirect"] == "/login"
    with app.app_context():
        assert db.session.scalar(select(func.count(Passkey.id))) == 0


def test_a_live_session_still_adds_its_passkey(app, sign_in):
    done = add_passkey(sign_in(), SoftKey())
    assert done["status"] == 200, done
