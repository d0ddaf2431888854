"""Where a client chose text messages but the server has no text message service (production
without Vonage), their codes come by email, and the code page tells them so. The console said
"Codes go by: text message", so support told them to watch their phone."""

from __future__ import annotations

import re

from tests.conftest import add_user
from tests.support.conftest import CLIENT


def _codes_go_by(page: str) -> str:
    found = re.search(r"<dt>Codes go by</dt><dd>(.*?)</dd>", page, re.S)
    assert found, page
    return re.sub(r"<[^>]+>|\s+", " ", found.group(1)).strip()


def test_an_sms_client_without_a_text_service_is_shown_getting_email(app, staff, phone,
                                                                       smtp, deliver):
    app.config["OUTBOX_WITHOUT_SERVER"] = False  # and no VONAGE_API_KEY: as in production
    client_id = add_user(app, CLIENT, channel="sms", phone="+447400123456")
    assert phone.log_in(CLIENT).status_code == 302
    deliver()
    assert smtp.wait_for(1)[-1].to == [CLIENT]  # the code went by email

    said = _codes_go_by(staff.text(f"/support/clients/{client_id}"))
    assert said.startswith("email"), said
    assert "text message" in said  # what they chose, and why it is not used


def test_an_sms_client_with_a_text_service_is_shown_getting_texts(app, staff):
    client_id = add_user(app, CLIENT, channel="sms", phone="+447400123456")
    assert _codes_go_by(staff.text(f"/support/clients/{client_id}")) == "text message"
