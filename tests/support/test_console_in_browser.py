"""The console with a client's real history, in Chromium: readable at 360 px, accessible."""

from __future__ import annotations

import time

import pytest
from sqlalchemy import func, select

from extensions import db
from models import Delivery

from tests.browser.conftest import (  # noqa: F401  (fixtures used by name)
    DESKTOP, SMALL_PHONE, assert_accessible, assert_fields_labelled, assert_fits_phone,
    chromium, code_from, live_server, log_in, new_context, screenshot, sign_in_through_pages,
)
from tests.conftest import Browser, add_user, user_by_email
from tests.support.conftest import PHONE_UA, wrong

pytestmark = pytest.mark.browser


def troubled_history(app, smtp) -> None:
    """A client's morning: a mix-up between two codes, a wrong code, then a refused email."""
    client = Browser(app, user_agent=PHONE_UA)
    client.log_in()
    first = code_from(smtp, 1)
    client.log_in()
    second = code_from(smtp, 2)
    client.enter_code(first)
    client.enter_code(wrong(second))
    assert client.enter_code(second).status_code == 302
    client.post("/logout", form_page="/portal")
    smtp.refuse_with = "550 no such user"
    client.log_in()
    # The live dispatcher sends in its own thread: wait until the mail server has refused it.
    deadline = time.monotonic() + 10
    while not _failed_deliveries(app):
        assert time.monotonic() < deadline, "the refused email was never tried"
        time.sleep(0.05)
    smtp.refuse_with = None


def _failed_deliveries(app) -> int:
    with app.app_context():
        return db.session.scalar(
            select(func.count()).select_from(Delivery).where(Delivery.status == "failed"))


@pytest.mark.parametrize("viewport", [DESKTOP, SMALL_PHONE], ids=lambda v: f"{v['width']}px")
def test_console_with_history(viewport, live_server, new_context, smtp):
    app = live_server.app
    troubled_history(app, smtp)
    add_user(app, "staff@example.com", role="support")
    sent = len(smtp.messages)
    page = new_context(viewport, phone=viewport["width"] <= 400).new_page()
    sign_in_through_pages(page, live_server, smtp, sent + 1, "staff@example.com")
    client_id = user_by_email(app, "client@example.com").id

    pages = {
        "support-search": "/support?q=client",
        "support-client-history": f"/support/clients/{client_id}",
        "support-give-back": f"/support/clients/{client_id}/actions/give-back",
        "support-confirm": f"/support/clients/{client_id}/actions/end-sign-ins",  # goes on here
    }
    for name, path in pages.items():
        page.goto(live_server(path))
        if name == "support-client-history":
            page.wait_for_selector(".finding-problem")
        assert_fields_labelled(page, name)
        if viewport["width"] <= 400:
            assert_fits_phone(page, name)
        assert_accessible(page, name)
        screenshot(page, name)

    # Confirming without the tick says so next to the box, then the tick ends the sign-in.
    page.get_by_role("button", name="End pending sign-ins").click()
    assert "Tick the box to confirm." in page.content()
    assert_fields_labelled(page, "support-confirm-error")
    page.get_by_label("I have checked who I am talking to", exact=False).check()
    page.get_by_role("button", name="End pending sign-ins").click()
    page.wait_for_url(f"**/support/clients/{client_id}")
    assert "Ended 1 sign-in of client@example.com" in page.content()
