"""The support console names the app that started a sign-in, and diagnoses an app's address
that does not match its registration and an app the access rules keep the client out of."""

from __future__ import annotations

import html

from tests.conftest import Browser, add_user, make_config, running_app
from tests.oidc.conftest import REDIRECT, authorize_url, pkce, register

CLIENT, STAFF = "client@example.com", "support@example.com"


def _sign_in(app, smtp, b: Browser, email: str, via: str = "/login") -> None:
    from services import delivery

    count = len(smtp.messages)
    b.get(via)
    response = b.post(via, {"email": email, "password": "correct horse battery"}, form_page=via)
    assert response.status_code == 302
    with app.app_context():
        delivery.run_once()
    smtp.wait_for(count + 1)
    assert b.enter_code(smtp.last_to(email).code).status_code == 302


def test_console_names_the_app_and_diagnoses_its_failures(smtp, tmp_path):
    config = make_config(tmp_path, smtp, PROTECTED_HOSTS="files.example.com",
                         ACCESS_RULES="files.example.com/admin/ admin")
    with running_app(config) as app:
        client_id = add_user(app, CLIENT)
        add_user(app, STAFF, role="support")
        files = register(app, "Files")
        admin_app = register(app, "Admin area", ("https://files.example.com/admin/cb",))

        # The client starts at the app, signs in at ClientGate, and goes back with a code.
        b = Browser(app)
        first = b.get(authorize_url(files, pkce()[1]))
        _sign_in(app, smtp, b, CLIENT, via=first.headers["Location"])
        assert b.get(authorize_url(files, pkce()[1])).status_code == 302
        # Then an app with a wrong address, and one the rules keep them out of.
        assert b.get(authorize_url(files, pkce()[1], redirect_uri=REDIRECT + "x")) \
            .status_code == 400
        assert b.get(authorize_url(admin_app, pkce()[1])).status_code == 403

        staff = Browser(app)
        _sign_in(app, smtp, staff, STAFF)
        page = html.unescape(staff.text(f"/support/clients/{client_id}"))
        assert "Started by an app" in page and "Files sent the client here to sign in." in page
        assert "Sent on to the app" in page and "Files received the sign-in." in page
        assert "the access rules kept them out of Admin area" in page
        assert "open only to admin" in page
        assert f"Files asked to send the client back to {REDIRECT}x" in page
        assert f"registered: {REDIRECT}" in page
        overview = html.unescape(staff.text("/support"))
        assert CLIENT in overview  # listed among sign-ins that went wrong lately
