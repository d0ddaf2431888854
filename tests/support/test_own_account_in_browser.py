"""An admin's own page in the console, in Chromium: no switch-off, and a note saying why."""

from __future__ import annotations

import pytest

from tests.browser.conftest import (  # noqa: F401  (fixtures used by name)
    DESKTOP, SMALL_PHONE, assert_accessible, assert_fits_phone, chromium, live_server,
    new_context, screenshot, sign_in_through_pages,
)
from tests.conftest import add_user

pytestmark = pytest.mark.browser


@pytest.mark.parametrize("viewport", [DESKTOP, SMALL_PHONE], ids=lambda v: f"{v['width']}px")
def test_an_admins_own_page_says_why_it_cannot_be_switched_off(viewport, live_server,
                                                               new_context, smtp):
    own = add_user(live_server.app, "admin@example.com", role="admin")
    page = new_context(viewport, phone=viewport["width"] <= 400).new_page()
    sign_in_through_pages(page, live_server, smtp, len(smtp.messages) + 1, "admin@example.com")

    pages = {"support-own-account": f"/support/clients/{own}",
             "support-own-account-switch-off": f"/support/clients/{own}/actions/deactivate"}
    for name, path in pages.items():
        page.goto(live_server(path))
        assert "This is your own account, so you cannot switch it off here" in page.content()
        assert page.get_by_role("link", name="Switch the account off…").count() == 0
        assert page.get_by_role("button", name="Switch the account off").count() == 0
        if viewport["width"] <= 400:
            assert_fits_phone(page, name)
        assert_accessible(page, name)
        screenshot(page, name)
