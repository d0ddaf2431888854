"""The seventh review: the operator changes SECRET_KEY on a live install (it leaked in a pasted
config, or a restore onto a new server used the wrong env file). Everything kept under the old
key meets the new one; each test starts the app again with another key on the same database
(review7_new_key) and checks what a client, support or the operator then meets."""

from __future__ import annotations

import html
import re

from sqlalchemy import select

from extensions import db
from models import Delivery, SignIn
from services.signin import codes
from tests.authenticators.conftest import give_confirmed_app, totp_now
from tests.conftest import Browser
from tests.security.review7_new_key import restarted_with_new_key, run_dispatcher, same_browser


def _newest_sign_in(application) -> SignIn:
    with application.app_context():
        return db.session.scalars(select(SignIn).order_by(SignIn.id.desc())).first()


# --- the authenticator app ---------------------------------------------------------------

def test_an_app_kept_under_the_old_key_no_longer_asks_for_its_codes_a_code_comes_by_email(
        app, user, smtp, tmp_path):
    """Its secret cannot be read, so every code the phone shows would be "not right" (and,
    before, a 500): the sign-in goes by email instead, as if there were no app."""
    give_confirmed_app(app)
    with restarted_with_new_key(tmp_path, smtp) as new:
        client = Browser(new)
        assert client.log_in().location.endswith("/login/code")
        assert _newest_sign_in(new).channel == "email"
        run_dispatcher(new)
        answer = client.enter_code(smtp.last_to("client@example.com").code)
        assert answer.status_code == 302 and answer.location.endswith("/portal")


def test_an_app_code_for_a_sign_in_begun_before_the_change_is_answered_not_a_500(
        app, user, smtp, tmp_path):
    secret = give_confirmed_app(app)
    before = Browser(app)
    assert before.log_in().location.endswith("/login/code")  # waiting for the app's code
    with restarted_with_new_key(tmp_path, smtp) as new:
        moved = same_browser(before, new)
        # Posted from the code page still open (its form as it was): an answer, not a 500.
        answer = moved.post("/login/code", {"code": totp_now(secret),
                                            "csrf_token": before.last_csrf})
        assert answer.status_code == 302 and answer.location.endswith("/login/code")
        assert "Please try again" in moved.text("/login")  # sign in afresh: a code by email
        assert moved.log_in().location.endswith("/login/code")
        assert _newest_sign_in(new).channel == "email"


def test_a_sign_in_begun_before_the_change_is_not_offered_again_its_code_cannot_work(
        app, user, smtp, tmp_path):
    """The password again asked "use the code already sent?"; keeping it led to a code that,
    made under the old key, could only be "not right", each try counting towards the lock.
    The sign-in is ended instead (the code page and support say why), and a new code sent."""
    before = Browser(app)
    assert before.log_in().location.endswith("/login/code")
    old = _newest_sign_in(app)
    with restarted_with_new_key(tmp_path, smtp) as new:
        client = same_browser(before, new)
        assert client.log_in().location.endswith("/login/code")  # no question: a new code
        with new.app_context():
            ended = db.session.get(SignIn, old.id)
            assert ended.status == "cancelled"
            assert codes.cancelled_because(ended) == "our server's settings were changed"
        run_dispatcher(new)
        answer = client.enter_code(smtp.last_to("client@example.com").code)
        assert answer.status_code == 302 and answer.location.endswith("/portal")


# --- messages queued under the old key ---------------------------------------------------

def _only_delivery_to(application, address: str) -> Delivery:
    with application.app_context():
        return db.session.scalars(select(Delivery).where(Delivery.destination == address)).one()


def test_a_code_queued_under_the_old_key_fails_saying_why_and_what_to_do(
        app, user, smtp, tmp_path, caplog):
    """Not dropped: failed, with a reason support can act on (not "the code"), a line in the
    operator's log, and signing in again (a new code) gets the client in."""
    before = Browser(app)
    before.log_in()  # its code is queued, not yet sent, when the server restarts
    with restarted_with_new_key(tmp_path, smtp) as new:
        run_dispatcher(new)
        item = _only_delivery_to(new, "client@example.com")
        assert item.status == "failed" and item.code_encrypted is None
        assert "earlier secret key" in item.last_error
        assert "signing in again sends a new code" in item.last_error
        assert any("cannot be read back" in record.getMessage() and record.levelname == "WARNING"
                   for record in caplog.records)
        client = same_browser(before, new)
        assert client.log_in().location.endswith("/login/code")  # a new code, no question
        run_dispatcher(new)
        answer = client.enter_code(smtp.last_to("client@example.com").code)
        assert answer.status_code == 302 and answer.location.endswith("/portal")


def test_an_invitation_queued_under_the_old_key_fails_as_a_link_to_send_again(
        app, smtp, tmp_path):
    assert app.test_cli_runner().invoke(args=["users", "invite", "new@example.com"]).exit_code == 0
    with restarted_with_new_key(tmp_path, smtp) as new:
        run_dispatcher(new)
        item = _only_delivery_to(new, "new@example.com")
        assert item.status == "failed"
        assert item.last_error.startswith("its link was kept under the server's earlier secret")
        assert item.last_error.endswith("a new link is needed: send it again")


# --- what does not depend on SECRET_KEY, and what simply asks again ----------------------

def test_after_the_change_sessions_ask_to_sign_in_again_but_passkeys_and_sent_links_work(
        app, user, smtp, deliver, sign_in, tmp_path):
    from tests.authenticators.conftest import SoftKey, add_passkey, sign_in_with

    signed_in = sign_in()
    key = SoftKey()
    assert add_passkey(signed_in, key)["status"] == 200
    Browser(app).post("/password/forgot", {"email": "client@example.com"})
    deliver()
    reset = next(word for word in smtp.last_to("client@example.com").text.split()
                 if "/password/reset/" in word)
    with restarted_with_new_key(tmp_path, smtp) as new:
        old = same_browser(signed_in, new)
        assert old.get("/portal").location.endswith("/login?next=%2Fportal")
        assert old.get("/auth/verify").status_code == 401
        assert old.get("/login/code/status").status_code == 404
        # A passkey answers a challenge with its own private key: nothing of SECRET_KEY's.
        assert sign_in_with(Browser(new), key).get_json() == {"redirect": "/portal"}
        # Link tokens are random and stored as plain hashes: a link sent before still works.
        assert "Choose a new password" in Browser(new).text(reset[len("http://localhost"):])


def test_a_client_whose_app_cannot_be_read_can_remove_it_and_set_it_up_again(
        app, user, smtp, tmp_path):
    from tests.authenticators.conftest import secret_from

    give_confirmed_app(app)
    with restarted_with_new_key(tmp_path, smtp) as new:
        client = Browser(new)
        client.log_in()
        run_dispatcher(new)
        client.enter_code(smtp.last_to("client@example.com").code)
        # The page said "Your codes come from your authenticator app" and nothing more.
        page = " ".join(html.unescape(re.sub(r"<[^>]+>", "", client.text("/account/security")))
                        .split())
        assert "Your authenticator app has to be set up again" in page
        assert "codes come by email to client@example.com until you do" in page
        assert "Your codes come from your authenticator app" not in page
        removed = client.post("/account/security", {"form": "totp-remove"})
        assert removed.status_code == 302
        started = client.post("/account/security", {"form": "totp-start"})
        assert started.status_code == 302, started.get_data(as_text=True)[:300]
        secret = secret_from(client.text("/account/security"))
        confirmed = client.post("/account/security", {"form": "totp-confirm",
                                                      "code": totp_now(secret)})
        assert confirmed.status_code == 302
        with new.app_context():
            from models import User
            assert db.session.scalar(select(User.channel)) == "totp"


# --- OpenID Connect ------------------------------------------------------------------------

def test_an_app_asking_for_tokens_before_the_key_is_replaced_gets_json_and_one_log_line(
        app, user, smtp, tmp_path, caplog):
    """The signing key, kept under the old SECRET_KEY, cannot sign an id_token until the
    operator runs `oidc rotate-key --replace-unreadable`. The token endpoint answered the app
    with an HTML 500 page and logged a traceback as an unhandled error; it now answers in JSON,
    as the app expects, and logs the one line that says what to run."""
    import logging

    from tests.oidc.conftest import authorize_url, code_from, exchange, pkce, register
    from tests.oidc.conftest import signed_in

    rp = register(app)
    assert Browser(app).get("/oauth/jwks").status_code == 200  # the key made, under the old key
    with restarted_with_new_key(tmp_path, smtp) as new:
        b = signed_in(new, smtp)
        verifier, challenge = pkce()
        code = code_from(b.get(authorize_url(rp, challenge)))["code"]
        with caplog.at_level(logging.ERROR):
            answer = exchange(b.client, rp, code, verifier)
        assert answer.status_code == 500
        assert answer.get_json()["error"] == "server_error"
        assert "no-store" in answer.headers["Cache-Control"]
        logged = [r for r in caplog.records if r.levelno >= logging.ERROR]
        assert [r.exc_info for r in logged] == [None]  # one line, no traceback
        assert "--replace-unreadable" in logged[0].getMessage()
        assert new.test_cli_runner().invoke(
            args=["oidc", "rotate-key", "--replace-unreadable"]).exit_code == 0
        code = code_from(b.get(authorize_url(rp, challenge)))["code"]
        assert exchange(b.client, rp, code, verifier).status_code == 200
