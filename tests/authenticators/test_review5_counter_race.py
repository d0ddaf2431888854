"""Two answers with the same signature counter, checked at once: one is a copy of the key."""

from __future__ import annotations

import webauthn
from sqlalchemy import select

from extensions import db
from models import Event, Passkey
from tests.authenticators.conftest import SoftKey, add_passkey, passkey_options
from tests.conftest import Browser, at_once, pause_in


def test_a_copied_key_answering_at_the_same_moment_is_still_a_clone_warning(
        app, sign_in, monkeypatch):
    b = sign_in()
    key = SoftKey(counter_starts=1)
    assert add_passkey(b, key)["status"] == 200

    # The client's key and a copy of it (same key, same counter) each answer a challenge of
    # their own, with the same next count, checked by two workers at once. Each read count 1
    # before either wrote 2: both were let in, and no clone warning was recorded.
    browsers = [Browser(app), Browser(app)]
    answers = []
    for browser in browsers:
        answers.append(key.sign(passkey_options(browser), count=2))
    restore = pause_in(monkeypatch, webauthn, "verify_authentication_response", parties=2)
    # The CSRF tokens are read first, so the two posts overlap only in the check.
    for browser in browsers:
        browser.csrf_for("/login")
    results = at_once(*(lambda b=b, answer=answer: b.post(
        "/login/passkey/verify", {"credential": answer}, form_page="/login")
        for b, answer in zip(browsers, answers)))
    restore()

    statuses = sorted(r.status_code for r in results)
    assert statuses == [200, 403], [r.get_data(as_text=True) for r in results]
    with app.app_context():
        assert db.session.scalar(select(Passkey.sign_count)) == 2
        assert db.session.scalar(select(Event.id).where(
            Event.type == "passkey_clone_warning")) is not None
