"""`flask users recover`: an account someone else got into is given back to its owner. The
intruder may have moved the sign-in address, added a passkey, set up an authenticator app and
a mobile number: after it, none of those lets them in, and the owner chooses a new password
from a link sent to their own address."""

from __future__ import annotations

from sqlalchemy import func, select

from extensions import db
from models import AuthSession, Event, Passkey, TotpAuthenticator, User
from tests.authenticators.conftest import SoftKey, add_passkey, sign_in_with
from tests.conftest import Browser, add_user

OWNER, INTRUDER = "client@example.com", "intruder@example.net"


def _cli(app, *args):
    return app.test_cli_runner().invoke(args=["users", *args])


def test_an_intruders_ways_back_in_all_end(app, user, sign_in, set_up_app, smtp, deliver):
    intruder = sign_in()
    key = SoftKey()
    add_passkey(intruder, key, name="Not mine")
    set_up_app()  # in a second browser of theirs
    with app.app_context():
        row = db.session.get(User, user)
        row.email, row.phone, row.channel = INTRUDER, "+447400123456", "sms"
        db.session.commit()

    result = _cli(app, "recover", INTRUDER, "--email", "Client@Example.com")
    assert result.exit_code == 0, result.output
    assert result.output.startswith(f"{INTRUDER}: now signs in with {OWNER}; ended ")
    assert "1 passkey, the authenticator app, the mobile number" in result.output
    assert f"A link to choose a new password is on its way to {OWNER}" in result.output

    with app.app_context():
        row = db.session.get(User, user)
        assert (row.email, row.phone, row.channel) == (OWNER, None, "email")
        assert db.session.scalar(select(func.count(Passkey.id))) == 0
        assert db.session.scalar(select(func.count(TotpAuthenticator.id))) == 0
        assert db.session.scalar(select(Event.detail).where(
            Event.type == "account_recovered"))["by"] == "cli"
    assert intruder.get("/portal").status_code == 302  # signed out
    with app.app_context():
        assert db.session.scalar(select(func.count(AuthSession.id)).where(
            AuthSession.revoked_at.is_(None))) == 0
    assert sign_in_with(Browser(app), key).status_code != 200  # the passkey is gone
    count = len(smtp.messages)
    deliver()
    smtp.wait_for(count + 1)
    assert "/password/reset/" in smtp.last_to(OWNER).text


def test_recover_refuses_another_accounts_address(app, user):
    add_user(app, "someone.else@example.com")
    result = _cli(app, "recover", OWNER, "--email", "someone.else@example.com")
    assert result.exit_code == 2
    assert "someone.else@example.com is another account's sign-in address" in result.output
    with app.app_context():
        assert db.session.get(User, user).email == OWNER


def test_an_account_switched_off_first_is_switched_on_with_the_link(app, user, smtp, deliver):
    """The guide says to switch the account off at once; recovering it switches it on again,
    since only the owner's mailbox can finish a sign-in now, and the link is sent."""
    assert _cli(app, "deactivate", OWNER).exit_code == 0
    result = _cli(app, "recover", OWNER)
    assert result.exit_code == 0, result.output
    assert "The account is switched on again." in result.output
    with app.app_context():
        assert db.session.get(User, user).is_active
    count = len(smtp.messages)
    deliver()
    smtp.wait_for(count + 1)
    # One email says it all: the account back and on again, and the link; no second one
    # saying only that it is switched on (and to sign in with the password).
    sent = [m.text for m in smtp.messages[count:] if OWNER in m.to]
    [mail] = [text for text in sent if "/password/reset/" in text]
    assert "It is switched on again." in mail
    assert not any("has been switched on again" in text for text in sent)


def test_an_address_taken_during_the_command_is_refused_in_one_line(app, user, monkeypatch):
    """Another account can take the owner's address between the command's check and its
    change (lifecycle._move_to checks again under the account's lock): one line, no
    traceback, nothing changed."""
    from services.accounts import lifecycle

    def taken_meanwhile(account, new_email):
        raise lifecycle.AddressTaken(f"{new_email} is another account's sign-in address. "
                                     "Nothing has changed.")

    monkeypatch.setattr(lifecycle, "_move_to", taken_meanwhile)
    result = _cli(app, "recover", OWNER, "--email", "owner@example.org")
    assert result.exit_code == 2, result.output
    assert "owner@example.org is another account's sign-in address. Nothing has changed." \
        in result.output
    assert "Traceback" not in result.output
    with app.app_context():
        assert db.session.get(User, user).email == OWNER
