"""One passkey's answer posted to two challenges at once: one is kept, the other told why."""

from __future__ import annotations

import webauthn
from sqlalchemy import func, select

from extensions import db
from models import Passkey
from tests.authenticators.conftest import SoftKey
from tests.conftest import Browser, at_once, pause_in


def test_the_same_passkey_added_twice_at_once_is_kept_once_never_a_500(
        app, sign_in, monkeypatch):
    # Two browsers signed in to the account, each adding a passkey; the same credential is
    # sent to both (a hand-made answer, or a script sending twice). Both passed the "already
    # on your account" check before either was stored: the second was a 500 on PostgreSQL.
    browsers = [sign_in(b=Browser(app)), sign_in(b=Browser(app))]
    key = SoftKey()
    answers = []
    for browser in browsers:
        options = browser.post("/account/passkeys/options", {"name": "Phone"},
                               form_page="/account/security").get_json()["options"]
        answers.append(key.register(options))
    tokens = [browser.csrf_for("/account/security") for browser in browsers]
    restore = pause_in(monkeypatch, webauthn, "verify_registration_response", parties=2)
    results = at_once(*(lambda b=b, answer=answer, token=token: b.post(
        "/account/passkeys/verify", {"credential": answer, "csrf_token": token})
        for b, answer, token in zip(browsers, answers, tokens)))
    restore()

    statuses = sorted(r.status_code for r in results)
    assert statuses == [200, 400], [r.get_data(as_text=True)[:300] for r in results]
    refused = next(r for r in results if r.status_code == 400).get_json()
    assert refused["error"] == "That passkey is already on your account."
    with app.app_context():
        assert db.session.scalar(select(func.count(Passkey.id))) == 1
