"""Issue 11, point 2 (and /healthz of point 8): in production no code is ever printed.

On the old code an SMS client's code went to the log ("development outbox") when Vonage was
not set up, and the code page said "Handed to the text message service".
"""

from __future__ import annotations

import pytest
from sqlalchemy import select

from app import create_app
from extensions import db
from models import Delivery, User
from services import delivery
from tests.conftest import Browser, add_user
from tests.hardening.conftest import production_config

SMS_EMAIL, SMS_PHONE = "mobile@example.com", "+447400123456"


def test_production_refuses_to_start_without_a_mail_server(tmp_path, smtp):
    with pytest.raises(RuntimeError, match="MAIL_SERVER is not set"):
        create_app(production_config(tmp_path, smtp, MAIL_SERVER=None))


def test_without_vonage_an_sms_client_gets_email_and_is_told(production_app, smtp, capfd):
    add_user(production_app, SMS_EMAIL, channel="sms", phone=SMS_PHONE)
    b = Browser(production_app)
    assert b.log_in(SMS_EMAIL).status_code == 302
    page = b.text("/login/code")
    assert "cannot send text messages at the moment, so this code came by email" in page
    assert "•••• ••• 456" not in page
    with production_app.app_context():
        delivery.run_once()
    mail = smtp.wait_for(1)[0]
    assert mail.to == [SMS_EMAIL] and mail.code
    page = b.text("/login/code")
    assert "Sent. It can take a few minutes to arrive" in page and "mobile network" not in page
    assert mail.code not in capfd.readouterr().out
    assert b.enter_code(mail.code).status_code == 302


def test_without_vonage_text_messages_are_not_offered_in_settings(production_app, smtp):
    add_user(production_app, "client@example.com")
    b = Browser(production_app)
    assert b.log_in().status_code == 302
    with production_app.app_context():
        delivery.run_once()
    assert b.enter_code(smtp.wait_for(1)[0].code).status_code == 302
    page = b.text("/account/security")
    assert "not available at the moment" in page and 'value="sms"' not in page
    response = b.post("/account/security", {"channel": "sms", "phone": "07400 123456"})
    assert response.status_code == 422
    with production_app.app_context():
        assert db.session.scalar(select(User.channel)) == "email"
        assert db.session.scalar(select(Delivery).where(Delivery.channel == "sms")) is None


def test_a_text_left_in_the_queue_fails_rather_than_being_printed(production_app, capfd):
    user_id = add_user(production_app, SMS_EMAIL, channel="sms", phone=SMS_PHONE)
    with production_app.app_context():
        from services import keys

        item = delivery.queue_message(
            user_id=user_id, channel="sms", destination=SMS_PHONE, kind="phone_proof",
            template="phone_proof", values={"expires_at": "10:00"},
            code_encrypted=keys.encrypt_secret("424242"))
        db.session.commit()
        delivery.run_once()
        item = db.session.get(Delivery, item.id)
        assert item.status == "failed" and item.last_error == "text messages are not set up"
    assert "424242" not in capfd.readouterr().out


# --- /healthz ---------------------------------------------------------------------------

def test_healthz_shows_details_only_to_this_machine_or_the_token(tmp_path, smtp):
    from tests.conftest import running_app

    with running_app(production_config(tmp_path, smtp, HEALTHZ_TOKEN="t0ken")) as app:
        client = app.test_client()
        outside = {"REMOTE_ADDR": "203.0.113.9"}
        assert client.get("/healthz", environ_base=outside).get_json() == {"status": "ok"}
        # Relayed by a proxy on this machine: still someone outside.
        relayed = client.get("/healthz", headers={"X-Forwarded-For": "203.0.113.9"})
        assert relayed.get_json() == {"status": "ok"}
        wrong = client.get("/healthz", environ_base=outside,
                           headers={"Authorization": "Bearer nope"})
        assert wrong.get_json() == {"status": "ok"}
        for answer in (client.get("/healthz"),
                       client.get("/healthz", environ_base=outside,
                                  headers={"Authorization": "Bearer t0ken"})):
            body = answer.get_json()
            assert body["dispatcher"]["alive"] is False and body["queue"]["waiting"] == 0
            assert body["missing"] == {"sms": ["VONAGE_API_KEY", "VONAGE_API_SECRET"]}
