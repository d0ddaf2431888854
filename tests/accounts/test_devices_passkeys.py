"""/account/devices lists the account's passkeys, which sign in without the password, so that
its advice for shutting out an intruder (sign out everywhere else, remove passkeys you do not
recognise, change the password) is complete and true."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import func, select

from extensions import db
from models import Passkey
from services import clock
from tests.authenticators.conftest import SoftKey, add_passkey, sign_in_with
from tests.conftest import TEST_PASSWORD, Browser

DEVICES = "/account/devices"
NEW_PASSWORD = "plum tree by the river"


def _passkey_id(app) -> int:
    with app.app_context():
        return db.session.scalar(select(Passkey.id))


def test_following_the_devices_page_advice_shuts_out_an_intruder_with_a_passkey(
        app, user, smtp, deliver, sign_in):
    intruder = sign_in(b=Browser(app))
    owner = sign_in(b=Browser(app))
    key = SoftKey()
    assert add_passkey(intruder, key, "Laptop")["status"] == 200

    page = owner.text(DEVICES)
    assert "remove any" in page and 'href="#passkeys"' in page  # the advice names passkeys
    passkeys = page[page.index('id="passkeys"'):page.index('id="recent"')]
    assert "Laptop" in passkeys and "Added " in passkeys and "Not used yet." in passkeys
    passkey_id = _passkey_id(app)
    assert f'action="/account/passkeys/{passkey_id}/remove"' in passkeys

    # The advice, in its order.
    owner.post("/account/devices/sign-out-others", form_page=DEVICES)
    removed = owner.post(f"/account/passkeys/{passkey_id}/remove", form_page=DEVICES)
    assert removed.status_code == 302
    owner.post("/account/password", {"current_password": TEST_PASSWORD,
                                      "password": NEW_PASSWORD, "confirm": NEW_PASSWORD})
    assert intruder.get("/portal").status_code == 302
    again = Browser(app)
    answer = sign_in_with(again, key)
    assert "redirect" not in (answer.get_json() or {})
    assert again.get("/portal").status_code == 302
    assert "Laptop" not in owner.text(DEVICES)


def test_after_ten_minutes_removing_a_passkey_here_asks_for_the_password(app, user, sign_in):
    owner = sign_in()
    add_passkey(owner, SoftKey(), "Old phone")
    passkey_id = _passkey_id(app)
    clock.advance(timedelta(minutes=11))
    page = owner.text(DEVICES)
    step = f"/account/devices?remove={passkey_id}#passkey-{passkey_id}"
    assert f'href="{step}"' in page
    assert f'id="passkey-remove-password-{passkey_id}"' not in page
    asked = owner.text(f"/account/devices?remove={passkey_id}")
    assert f'id="passkey-remove-password-{passkey_id}"' in asked and ">Cancel</a>" in asked
    assert 'name="password" autocomplete="current-password"' in asked

    assert '<input type="hidden" name="back" value="devices">' in asked

    form_page = f"/account/devices?remove={passkey_id}"
    refused = owner.post(f"/account/passkeys/{passkey_id}/remove", {"back": "devices"},
                         form_page=form_page)
    assert refused.location.endswith(step)  # back to this page, asking for the password
    with app.app_context():
        assert db.session.scalar(select(func.count(Passkey.id))) == 1  # no password, no change
    done = owner.post(f"/account/passkeys/{passkey_id}/remove",
                      {"password": TEST_PASSWORD, "back": "devices"}, form_page=form_page)
    assert done.location.endswith("/account/devices#passkeys")
    assert "We have removed the passkey “Old phone”" in owner.text(DEVICES)
    with app.app_context():
        assert db.session.scalar(select(func.count(Passkey.id))) == 0


def test_no_passkeys_says_so_and_where_to_add_one(app, user, sign_in):
    page = sign_in().text(DEVICES)
    passkeys = page[page.index('id="passkeys"'):page.index('id="recent"')]
    assert "None." in passkeys and 'href="/account/security#passkeys"' in passkeys


def test_a_new_password_says_that_passkeys_still_sign_in(app, user, sign_in):
    owner = sign_in()
    add_passkey(owner, SoftKey(), "My phone")
    owner.post("/account/password", {"current_password": TEST_PASSWORD,
                                      "password": NEW_PASSWORD, "confirm": NEW_PASSWORD})
    page = owner.text("/account/password")
    assert "Your passkeys still sign you in without it" in page
    assert "“Your devices” page" in page
