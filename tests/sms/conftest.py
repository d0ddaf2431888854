"""SMS fixtures: the HTTPS Vonage stub, an app that sends through it, and SMS sign-in helpers."""

from __future__ import annotations

from typing import Optional

import pytest
from sqlalchemy import select

from extensions import db
from models import Delivery, Event
from tests.conftest import Browser, add_user
from tests.vonage_stub import VonageStub

SMS_EMAIL = "mobile@example.com"
SMS_PHONE = "+447400123456"


@pytest.fixture
def vonage(tmp_path):
    """Vonage's SMS API on 127.0.0.1, over HTTPS with its own certificate."""
    stub = VonageStub(tmp_path)
    stub.start()
    yield stub
    stub.stop()


@pytest.fixture
def app(app, vonage):
    """The shared test app, its Vonage client pointed at the stub (and trusting only its CA)."""
    app.config.update(vonage.app_config())
    return app


@pytest.fixture
def sms_user(app) -> int:
    """A client whose codes come by SMS to a proved UK mobile."""
    return add_user(app, SMS_EMAIL, channel="sms", phone=SMS_PHONE)


@pytest.fixture
def sms_sign_in(app, vonage, deliver, browser):
    """Sign an SMS client in through the front door, reading the code from the stub."""

    def run(email: str = SMS_EMAIL, phone: str = SMS_PHONE, b: Optional[Browser] = None):
        b = b or browser
        count = len(vonage.received)
        assert b.log_in(email).status_code == 302
        deliver()
        vonage.wait_for(count + 1)
        response = b.enter_code(vonage.last_to(phone).code)
        assert response.status_code == 302, response.get_data(as_text=True)
        return b

    return run


# --- delivery receipts ------------------------------------------------------------------

@pytest.fixture
def sent(app, sms_user, vonage, deliver, browser):
    """An SMS sign-in whose code the stub accepted; returns what the stub received."""
    assert browser.log_in(SMS_EMAIL).status_code == 302
    deliver()
    return vonage.last_to(SMS_PHONE)


def only_delivery(app) -> Delivery:
    """The one message in the outbox, as it is now."""
    with app.app_context():
        item = db.session.scalars(select(Delivery)).one()
        db.session.expunge(item)
        return item


def receipt_events(app) -> list[Event]:
    """The receipts recorded, oldest first."""
    with app.app_context():
        rows = db.session.scalars(select(Event).where(Event.type == "delivery_receipt")
                                  .order_by(Event.id)).all()
        db.session.expunge_all()
        return rows
