"""PORTAL_CONTACT: where a page or an email tells the client to contact the firm, it says how;
unset, the words are today's."""

from __future__ import annotations

import pytest

from extensions import db
from models import User
from services import clock, contact
from services.signin import limits
from tests.conftest import Browser, add_user, make_config, running_app

CLIENT = "client@example.com"
HOW = "call 020 7946 0000 or email help@smithco.co.uk"


@pytest.fixture
def firm(tmp_path, smtp):
    """The app with PORTAL_CONTACT set, and a client."""
    with running_app(make_config(tmp_path, smtp, PORTAL_CONTACT=f"  {HOW}. ")) as application:
        add_user(application, CLIENT)
        yield application


def _deliver(app) -> None:
    from services import delivery

    with app.app_context():
        delivery.run_once()


def _switch_off(app, email: str) -> None:
    with app.app_context():
        user = db.session.scalar(db.select(User).where(User.email == email))
        user.deactivated_at = clock.now()
        db.session.commit()


def test_a_page_says_how_with_the_number_and_address_as_links(firm):
    page = Browser(firm).post("/password/forgot", {"email": CLIENT}).get_data(as_text=True)
    assert ('If you still get nothing, please contact us: call '
            '<a href="tel:02079460000">020 7946 0000</a> or email '
            '<a href="mailto:help@smithco.co.uk">help@smithco.co.uk</a>.</p>') in page


def test_without_the_setting_the_page_keeps_its_words(app):
    page = Browser(app).post("/password/forgot", {"email": CLIENT}).get_data(as_text=True)
    assert "If you still get nothing, please contact us.</p>" in page
    assert "tel:" not in page and "Contact us:" not in page


def test_a_refusal_flashed_on_the_login_page_says_how(firm):
    _switch_off(firm, CLIENT)
    page = Browser(firm).log_in(CLIENT).get_data(as_text=True)
    assert f"If you think this is a mistake, please contact us: {HOW}." in page


def test_an_email_that_says_contact_us_ends_with_how(firm, smtp):
    b = Browser(firm)
    for attempt in range(limits.FAILURES_BEFORE_LOCK):
        b.log_in(CLIENT, f"not my password {attempt}")
    _deliver(firm)
    mail = smtp.wait_for(1)[-1]
    assert "paused signing in" in mail.text
    assert mail.text.rstrip().endswith(f"Contact us: {HOW}.")


def test_a_reply_to_any_email_goes_to_the_firms_address(firm, smtp):
    """"I never got my code", written as a reply to an email, went to the sender address,
    where no one reads; with an email address in PORTAL_CONTACT, it reaches the firm."""
    Browser(firm).log_in(CLIENT)
    _deliver(firm)
    mail = smtp.wait_for(1)[-1]
    assert mail.code and mail.headers["Reply-To"] == "help@smithco.co.uk"


def test_without_an_address_to_write_to_an_email_has_no_reply_to(app, user, smtp, deliver):
    Browser(app).log_in(CLIENT)
    deliver()
    assert "Reply-To" not in smtp.wait_for(1)[-1].headers


def test_without_the_setting_the_email_keeps_its_words(app, user, smtp, deliver):
    b = Browser(app)
    for attempt in range(limits.FAILURES_BEFORE_LOCK):
        b.log_in(CLIENT, f"not my password {attempt}")
    deliver()
    mail = smtp.wait_for(1)[-1]
    assert mail.text.rstrip().endswith("we will never ask you for one.")
    assert "Contact us:" not in mail.text


def test_the_code_page_gives_its_script_the_words_without_markup(firm):
    b = Browser(firm)
    b.log_in(CLIENT)
    page = b.text("/login/code")
    assert f'data-tell-us="please tell us: {HOW}"' in page


def test_the_setting_is_text_not_markup(tmp_path, smtp):
    config = make_config(tmp_path, smtp, PORTAL_CONTACT='<b onclick="x()">call</b> 020 7946 0000')
    with running_app(config) as application:
        page = Browser(application).post("/password/forgot", {"email": CLIENT})
        text = page.get_data(as_text=True)
    assert "&lt;b onclick=&#34;x()&#34;&gt;call&lt;/b&gt;" in text
    assert "<b onclick" not in text


@pytest.mark.parametrize("given,link", [
    ("+44 (0)20 7946 0000", '<a href="tel:+442079460000">+44 (0)20 7946 0000</a>'),
    ("07700 900123", '<a href="tel:07700900123">07700 900123</a>'),
    ("help@smithco.co.uk.", '<a href="mailto:help@smithco.co.uk">help@smithco.co.uk</a>.'),
    ("Mon to Fri, 9 to 5", "Mon to Fri, 9 to 5"),
])
def test_numbers_and_addresses_become_links(given, link):
    assert str(contact.linked(given)) == link
