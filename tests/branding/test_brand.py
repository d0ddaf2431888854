"""The firm's look: PORTAL_COLOUR kept at WCAG AA, PORTAL_LOGO served safely, a useful home."""

from __future__ import annotations

import logging
import re

import pytest

from app import create_app
from services import branding
from tests.conftest import make_config, running_app

# A 1x1 PNG.
PNG = bytes.fromhex(
    "89504e470d0a1a0a0000000d49484452000000010000000108060000001f15c4890000000d4944415478"
    "9c6360f8cfc0f01f0005000201e2278bd40000000049454e44ae426082")


def test_contrast_follows_wcag():
    assert round(branding.contrast("#000000", "#ffffff"), 1) == 21.0
    assert round(branding.contrast("#767676", "#ffffff"), 2) == 4.54
    assert branding.normal_hex("ABC") == "#aabbcc"


@pytest.mark.parametrize("given", ["#1f4e8c", "#0b3d2e", "#6a1b9a"])
def test_a_dark_enough_colour_is_used_as_it_is(tmp_path, given, caplog):
    app = create_app(make_config(tmp_path, PORTAL_COLOUR=given))
    assert app.extensions["brand"].colour == given
    assert "too light" not in caplog.text


@pytest.mark.parametrize("given", ["#ffcc00", "#7fb3ff", "#fff", "#e30613"])
def test_a_light_colour_is_darkened_to_aa_and_the_log_says_so(tmp_path, given, caplog):
    caplog.set_level(logging.WARNING)
    app = create_app(make_config(tmp_path, PORTAL_COLOUR=given))
    used = app.extensions["brand"].colour
    assert used != branding.normal_hex(given)
    for background in branding.BACKGROUNDS:
        assert branding.contrast(used, background) >= 4.5
    assert f"PORTAL_COLOUR {branding.normal_hex(given)} is too light" in caplog.text
    assert used in caplog.text


@pytest.mark.parametrize("setting,value,words", [
    ("PORTAL_COLOUR", "blue", "must be a colour"),
    ("PORTAL_COLOUR", "#12345", "must be a colour"),
    ("PORTAL_LOGO", "http://cdn.example/logo.png", "https://"),
    ("PORTAL_LOGO", "/nonexistent/logo.png", "cannot be read"),
    ("PORTAL_LOGO", "/etc/passwd", "must be a .png"),
])
def test_a_wrong_setting_stops_the_start(tmp_path, setting, value, words):
    with pytest.raises(RuntimeError, match=words):
        create_app(make_config(tmp_path, **{setting: value}))


@pytest.fixture
def branded(tmp_path, smtp):
    logo = tmp_path / "logo.png"
    logo.write_bytes(PNG)
    with running_app(make_config(
        tmp_path, smtp, PORTAL_COLOUR="#ffcc00", PORTAL_LOGO=str(logo),
        PROTECTED_HOSTS="files.localhost",
        ACCESS_RULES="files.localhost any Shared files; localhost/staff/ support,admin Staff area",
    )) as application:
        yield application


def test_every_page_carries_the_colour_and_logo_without_inline_style(branded):
    client = branded.test_client()
    page = client.get("/login").get_data(as_text=True)
    css = re.search(r'href="(/brand\.css\?v=\w+)"', page).group(1)
    version = branded.extensions["brand"].version
    assert f'<img class="brand-logo" src="/brand/logo?v={version}" alt="">' in page
    assert "style=" not in page
    sheet = client.get(css)
    assert sheet.mimetype == "text/css"
    colour = branded.extensions["brand"].colour
    assert f"--brand: {colour};" in sheet.get_data(as_text=True)

    logo = client.get(f"/brand/logo?v={version}")
    assert logo.status_code == 200 and logo.mimetype == "image/png" and logo.data == PNG
    assert "sandbox" in logo.headers["Content-Security-Policy"]
    # The error pages are branded too.
    assert "/brand.css?v=" in client.get("/no-such-page").get_data(as_text=True)


def test_a_logo_address_is_allowed_by_the_policy_and_nothing_more(tmp_path):
    app = create_app(make_config(tmp_path, PORTAL_LOGO="https://cdn.firm.example/a/logo.svg"))
    response = app.test_client().get("/login")
    policy = response.headers["Content-Security-Policy"]
    assert "img-src 'self' data: https://cdn.firm.example;" in policy
    assert 'src="https://cdn.firm.example/a/logo.svg"' in response.get_data(as_text=True)
    assert app.test_client().get("/brand/logo").status_code == 404


def test_no_brand_no_extra_stylesheet(tmp_path):
    app = create_app(make_config(tmp_path))
    page = app.test_client().get("/login").get_data(as_text=True)
    assert "brand.css" not in page and "brand-logo" not in page


def deliver_with(app) -> int:
    """Run the branded app's dispatcher once (the `deliver` fixture drives another app)."""
    from services import delivery

    with app.app_context():
        return delivery.run_once()


def test_the_home_lists_the_apps_this_client_may_open(branded, smtp):
    from tests.conftest import Browser, add_user, request_code

    def deliver():
        return deliver_with(branded)

    add_user(branded, "client@example.com")
    add_user(branded, "staff@example.com", role="support")
    client = Browser(branded)
    client.enter_code(request_code(client, smtp, deliver))
    home = client.text("/portal")
    assert 'href="http://files.localhost/"' in home and "Shared files" in home
    assert "Staff area" not in home
    assert "/account/devices" in home and "/account/security" in home

    staff = Browser(branded)
    staff.enter_code(request_code(staff, smtp, deliver, "staff@example.com"))
    home = staff.text("/portal")
    assert "Shared files" in home and 'href="http://localhost/staff/"' in home


def test_the_html_emails_carry_the_colour_and_logo(branded, smtp):
    from tests.conftest import Browser, add_user, request_code

    add_user(branded, "client@example.com")
    request_code(Browser(branded), smtp, lambda: deliver_with(branded))
    mail = smtp.last_to("client@example.com")
    colour = branded.extensions["brand"].colour
    assert mail.html, "the code email has an HTML part"
    assert f"background:{colour}" in mail.html
    assert '<img src="http://localhost/brand/logo" alt=""' in mail.html
    assert "#1f4e8c" not in mail.html
