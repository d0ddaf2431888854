"""/account/security as a client reads it: one password box at a time after ten minutes, and
a number being proved leads the page (UX review of the security page)."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest

from services import clock
from tests.authenticators.conftest import SoftKey, add_passkey, secret_from
from tests.conftest import TEST_PASSWORD, user_by_email
from tests.sms.conftest import SMS_PHONE

PAGE = "/account/security"
EMAIL = "client@example.com"
PASSWORD_BOX = re.compile(r'<input[^>]*type="password"[^>]*>')


@pytest.fixture
def client_in(app, user, sign_in):
    """An email client, signed in a moment ago."""
    return sign_in()


def _password_boxes(page: str) -> list[str]:
    """The id of each password box on the page, in order."""
    return [re.search(r'id="([^"]+)"', box).group(1) for box in PASSWORD_BOX.findall(page)]


def _form_around(page: str, marker: str) -> str:
    """The opening tag of the <form> that holds `marker`."""
    at = page.index(marker)
    return page[page.rindex("<form", 0, at):page.index(">", page.rindex("<form", 0, at)) + 1]


# --- after ten minutes: one password box, on the form in use -----------------------------------

def test_within_ten_minutes_no_form_asks_and_each_button_does_its_work(client_in):
    page = client_in.text(PAGE)
    assert _password_boxes(page) == []
    assert 'name="confirm"' not in page
    assert "data-passkey-add" in _form_around(page, "Add a passkey</button>")
    assert 'method="post"' in _form_around(page, "Set up an authenticator app</button>")


def test_after_ten_minutes_only_the_settings_form_asks(client_in):
    clock.advance(timedelta(minutes=11))
    page = client_in.text(PAGE)
    assert _password_boxes(page) == ["password"]  # the settings form's; not three of them
    assert "more than 10 minutes ago" in page
    # The other buttons open their own step first: a plain GET, nothing changed yet.
    passkey_step = _form_around(page, "Add a passkey</button>")
    # (passkey-add.js marks it only to say early that a browser cannot make passkeys; with no
    # data-options-url it makes none from it.)
    assert 'method="get"' in passkey_step and "data-options-url" not in passkey_step
    assert 'method="get"' in _form_around(page, "Set up an authenticator app</button>")
    assert 'name="confirm" value="passkey-add"' in page
    assert 'name="confirm" value="totp-start"' in page


def test_a_chosen_step_asks_for_the_password_there_alone(client_in):
    clock.advance(timedelta(minutes=11))
    page = client_in.text(f"{PAGE}?confirm=totp-start")
    assert _password_boxes(page) == ["totp-password"]
    app_form = _form_around(page, 'name="form" value="totp-start"')
    assert 'method="post"' in app_form
    assert 'href="/account/security#authenticator-app">Cancel</a>' in page

    page = client_in.text(f"{PAGE}?confirm=passkey-add&name=Work+laptop")
    assert _password_boxes(page) == ["passkey-password"]
    assert "data-passkey-add" in _form_around(page, 'id="passkey-password"')
    assert 'value="Work laptop"' in page  # the name typed before the step comes with it
    assert 'href="/account/security#passkeys">Cancel</a>' in page

    assert _password_boxes(client_in.text(f"{PAGE}?confirm=nonsense")) == ["password"]


def test_a_passkeys_remove_step_takes_the_box_from_the_settings_form(app, client_in):
    add_passkey(client_in, SoftKey(), name="Old phone")
    clock.advance(timedelta(minutes=11))
    page = client_in.text(PAGE)
    passkey_id = re.search(r'\?remove=(\d+)', page).group(1)
    asked = client_in.text(f"{PAGE}?remove={passkey_id}")
    assert _password_boxes(asked) == [f"passkey-remove-password-{passkey_id}"]


def test_the_server_still_asks_for_the_password(app, client_in):
    """The steps are only where the box is shown: every change still needs the password."""
    clock.advance(timedelta(minutes=11))
    refused = client_in.post(PAGE, {"form": "totp-start"})
    assert refused.status_code == 302
    assert refused.location == "/account/security?confirm=totp-start#authenticator-app"
    page = client_in.text(refused.location)
    assert _password_boxes(page) == ["totp-password"]
    assert 'id="totp-password-error"' in page and 'id="totp-secret"' not in page

    wrong = client_in.post(PAGE, {"form": "totp-start", "password": "not it"})
    assert "That password is not right" in client_in.text(wrong.location)
    started = client_in.post(PAGE, {"form": "totp-start", "password": TEST_PASSWORD})
    assert started.status_code == 302
    secret_from(client_in.text(PAGE))  # the setup began

    asked = client_in.post("/account/passkeys/options", {"name": "Phone"}, form_page=PAGE)
    assert asked.status_code == 422 and "Enter your password" in asked.get_json()["error"]


def test_saving_where_no_box_was_shown_asks_calmly_on_that_form(app, client_in, vonage, deliver):
    """Settings sent from a page where another step held the password box (or one shown
    within the ten minutes): the form comes back, as sent, with its box, not as a mistake."""
    clock.advance(timedelta(minutes=11))
    asked = client_in.post(PAGE, {"channel": "sms", "phone": "07400 123456"})
    assert asked.status_code == 422
    page = asked.get_data(as_text=True)
    assert _password_boxes(page) == ["password"]
    assert re.search(r'<input[^>]*autofocus[^>]*id="password"', page)
    assert "There is a problem" not in page and 'aria-invalid="true"' not in page
    assert 'value="07400 123456"' in page  # what the client chose is kept
    deliver()
    assert vonage.received == [] and user_by_email(app, EMAIL).phone is None

    empty = client_in.post(PAGE, {"channel": "sms", "phone": "07400 123456", "password": ""})
    assert empty.status_code == 422 and "There is a problem" in empty.get_data(as_text=True)
    done = client_in.post(PAGE, {"channel": "sms", "phone": "07400 123456",
                                 "password": TEST_PASSWORD})
    assert done.status_code == 302
    deliver()
    assert vonage.last_to(SMS_PHONE).code


# --- a number being proved leads the page ------------------------------------------------------

def _prove(client_in, vonage, deliver, **extra) -> str:
    assert client_in.post(PAGE, {"channel": "sms", "phone": "07400 123456",
                                 **extra}).status_code == 302
    deliver()
    return vonage.last_to(SMS_PHONE).code


def test_a_number_being_proved_leads_the_page(client_in, vonage, deliver):
    _prove(client_in, vonage, deliver)
    page = client_in.text(PAGE)
    assert "<title>Confirm your new number" in page
    assert re.search(r"<h1[^>]*>Confirm your new number</h1>", page)
    assert "How you get your sign-in codes</h1>" not in page
    code_box = page.index('name="code"')
    folded = re.search(r'<details class="help" id="other-settings">\s*<summary>'
                       r'Use a different number, or change something else</summary>', page)
    assert folded, "the settings are folded away, closed"
    assert code_box < folded.start() < page.index('name="phone"') < page.index("</details>")
    assert "Send a new code" in page and "Stop: keep things as they are" in page
    # Folded there, the request as made, to correct a mistyped number.
    assert re.search(r'<input checked id="channel-1" name="channel"[^>]*value="sms"', page)
    assert 'value="07400 123456"' in page[folded.start():]
    # The other sections wait until the number is confirmed or the proof stopped.
    assert 'id="passkeys"' not in page and 'id="authenticator-app"' not in page
    assert "once you\n        confirm the number or stop" in page


def test_the_folded_settings_open_when_the_client_used_them(client_in, vonage, deliver):
    _prove(client_in, vonage, deliver)
    wrong = client_in.post(PAGE, {"channel": "sms", "phone": "07400 12"})
    assert wrong.status_code == 422
    page = wrong.get_data(as_text=True)
    assert '<details class="help" id="other-settings" open>' in page
    assert "That is not a complete UK phone number" in page


def test_after_the_proof_the_page_is_whole_again(app, client_in, vonage, deliver):
    code = _prove(client_in, vonage, deliver)
    assert client_in.post(PAGE, {"code": code, "channel": "sms"}).status_code == 302
    page = client_in.text(PAGE)
    assert re.search(r"<h1>How you get your sign-in codes</h1>", page)
    assert 'id="other-settings"' not in page and 'id="passkeys"' in page
    assert user_by_email(app, EMAIL).phone == SMS_PHONE


def test_an_app_setup_begun_here_is_not_hidden_by_a_proof(client_in, vonage, deliver):
    client_in.post(PAGE, {"form": "totp-start"})
    secret = secret_from(client_in.text(PAGE))
    _prove(client_in, vonage, deliver)
    page = client_in.text(PAGE)
    assert re.search(r"<h1[^>]*>Confirm your new number</h1>", page)
    assert secret_from(page) == secret and 'id="authenticator-app"' in page


def test_a_step_just_opened_waits_in_its_password_box(client_in):
    """The client pressed a button that asks for the password first: the cursor is in the
    box (on a phone, the keyboard opens), and only there; the plain page focuses nothing."""
    add_passkey(client_in, SoftKey(), name="Old phone")
    clock.advance(timedelta(minutes=11))
    assert "autofocus" not in client_in.text(PAGE)
    passkey_id = re.search(r'\?remove=(\d+)', client_in.text(PAGE)).group(1)
    for step, box in [("?confirm=passkey-add", "passkey-password"),
                      ("?confirm=totp-start", "totp-password"),
                      (f"?remove={passkey_id}", f"passkey-remove-password-{passkey_id}")]:
        page = client_in.text(PAGE + step)
        focused = [b for b in PASSWORD_BOX.findall(page) if "autofocus" in b]
        assert len(focused) == 1 and f'id="{box}"' in focused[0], step
        assert page.count("autofocus") == 1, step
