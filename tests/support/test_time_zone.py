"""Every time the console shows is in PORTAL_TIMEZONE, whatever the server's zone."""

from __future__ import annotations

import pytest

from services import clock
from tests.conftest import make_config, running_app
from tests.support.conftest import CLIENT, start, views

ZONE = "Asia/Tokyo"  # nine hours from UTC all year, so never equal to London's time


@pytest.fixture
def app(tmp_path, smtp):
    """The shared test app, but with the portal in Tokyo."""
    with running_app(make_config(tmp_path, smtp, PORTAL_TIMEZONE=ZONE)) as application:
        yield application


def test_page_findings_and_export_use_the_portal_time_zone(app, client_id, smtp, deliver,
                                                          phone, staff):
    start(phone, smtp, deliver)
    [view] = views(app, client_id)
    began = view.sign_in.created_at
    tokyo = clock.local(began, ZONE)
    london = clock.local(began, "Europe/London")
    assert tokyo.strftime("%H:%M") != london.strftime("%H:%M")

    page = staff.text(f"/support/clients/{client_id}")
    assert f"Times are {ZONE} time." in page
    assert tokyo.strftime("%-d %b %Y, %H:%M") in page  # the sign-in's heading
    assert f"made at {tokyo:%H:%M}, it works until" in page  # the diagnosis
    assert london.strftime("%-d %b %Y, %H:%M") not in page

    export = staff.get(f"/support/clients/{client_id}/export.csv").get_data(as_text=True)
    assert f"began ({ZONE})" in export and tokyo.strftime("%Y-%m-%d %H:%M") in export
    assert CLIENT in staff.text(f"/support?q={CLIENT}")
