"""The seventh review: every email as a client reads it on a phone.

Each kind of message is made to happen through the front door (the Flask test client, as a
client and as staff in the console) and read as it arrived at the test SMTP server: the headers,
the plain-text part beside the HTML part, and the HTML part in headless Chromium at 360 and
600 px wide, light and dark."""

from __future__ import annotations

import email
import email.policy
import re
from email.header import decode_header, make_header
from html.parser import HTMLParser

import pytest

from services import delivery
from services.signin import limits
from tests.accounts.conftest import DESKTOP_UA, PHONE_UA, link_in
from tests.browser.conftest import chromium, screenshot  # noqa: F401  (one Chromium a run)
from tests.conftest import (TEST_PASSWORD, Browser, add_user, make_config, running_app,
                            user_by_email)

PORTAL = "Smith & Søn"
# A host name without hyphens: a long address has nowhere a browser may break a line on its own.
PORTAL_URL = "https://clientportal.smithandsonaccountantsllp.co.uk"
CONTACT = "call 020 7946 0000 or email help@smithandson.co.uk"
CLIENT = "client@example.com"
NEW_ADDRESS = "new.address@example.com"
NEW_PASSWORD = "plum tree by the river"
STAFF = "staff@example.com"
# A name typed by staff (or read from a CSV) with a line break: it must not become a header.
NAME = "Anna\r\nBcc: mallory@example.net\r\nSmith <b>Ltd</b>"
LINK = re.compile(r"https?://[^\s<>\"]+")


@pytest.fixture
def firm(tmp_path, smtp):
    """The app of a firm whose name has a letter beyond ASCII, behind https PORTAL_URL.

    Requests come to it as `localhost` (TRUSTED_HOSTS): every link must still name PORTAL_URL,
    never the Host a request named."""
    config = make_config(tmp_path, smtp, PORTAL_NAME=PORTAL, PORTAL_URL=PORTAL_URL,
                         PORTAL_CONTACT=CONTACT, TRUSTED_HOSTS=["localhost"],
                         MAIL_DEFAULT_SENDER=f"{PORTAL} <no-reply@smithandson.co.uk>")
    with running_app(config) as application:
        yield application


def _arrived(smtp, deliver, count: int, to: str):
    deliver()
    smtp.wait_for(count)
    return smtp.last_to(to)


def every_email(app, smtp) -> dict:
    """Each kind of email, made to happen as clients and staff make it; by template name."""

    def deliver() -> None:
        with app.app_context():
            delivery.run_once()

    mails: dict = {}
    add_user(app, CLIENT)
    add_user(app, STAFF, role="support")

    def code_of(b: Browser, email: str = CLIENT) -> str:
        count = len(smtp.messages)
        assert b.log_in(email).status_code == 302
        return _arrived(smtp, deliver, count + 1, email).code

    # A sign-in code, and the "don't ask again on this device" notice.
    client = Browser(app, user_agent=PHONE_UA)
    count = len(smtp.messages)
    assert client.log_in().status_code == 302
    mails["code"] = _arrived(smtp, deliver, count + 1, CLIENT)
    count = len(smtp.messages)
    assert client.post("/login/code", {"code": mails["code"].code, "remember": "y"}) \
        .status_code == 302
    mails["security_change"] = _arrived(smtp, deliver, count + 1, CLIENT)

    # Staff invite a client by name.
    staff = Browser(app, user_agent=DESKTOP_UA)
    staff.enter_code(code_of(staff, STAFF))
    count = len(smtp.messages)
    assert staff.post("/support/clients/new", {"email": "anna@example.com", "name": NAME,
                                               "phone": "", "channel": "email"}).status_code == 302
    mails["invitation"] = _arrived(smtp, deliver, count + 1, "anna@example.com")

    # A new sign-in address: the link to it, the note to the old one, the note of the change.
    count = len(smtp.messages)
    assert client.post("/account/email", {"email": NEW_ADDRESS,
                                          "current_password": TEST_PASSWORD}).status_code == 302
    deliver()
    smtp.wait_for(count + 2)
    mails["email_proof"] = smtp.last_to(NEW_ADDRESS)
    mails["email_change_requested"] = smtp.last_to(CLIENT)
    count = len(smtp.messages)
    confirm = link_in(mails["email_proof"].text, "/account/email/confirm/")
    assert client.post(confirm[len(PORTAL_URL):], {}).status_code == 302
    mails["email_changed"] = _arrived(smtp, deliver, count + 1, CLIENT)
    count = len(smtp.messages)
    assert client.post("/account/email", {"email": STAFF,
                                          "current_password": TEST_PASSWORD}).status_code == 302
    mails["email_in_use"] = _arrived(smtp, deliver, count + 1, STAFF)

    # A new password, asked for and then changed.
    count = len(smtp.messages)
    Browser(app).post("/password/forgot", {"email": NEW_ADDRESS})
    mails["password_reset"] = _arrived(smtp, deliver, count + 1, NEW_ADDRESS)
    count = len(smtp.messages)
    assert client.post("/account/password", {"current_password": TEST_PASSWORD,
                                             "password": NEW_PASSWORD,
                                             "confirm": NEW_PASSWORD}).status_code == 302
    mails["password_changed"] = _arrived(smtp, deliver, count + 1, NEW_ADDRESS)

    # Switched off and on by staff.
    user_id = user_by_email(app, NEW_ADDRESS).id
    for action, template in (("deactivate", "account_deactivated"),
                             ("reactivate", "account_reactivated")):
        count = len(smtp.messages)
        assert staff.post(f"/support/clients/{user_id}/actions/{action}",
                          {"confirm": "y"}).status_code == 302
        mails[template] = _arrived(smtp, deliver, count + 1, NEW_ADDRESS)

    # Too many wrong passwords.
    count = len(smtp.messages)
    stranger = Browser(app)
    for _ in range(limits.FAILURES_BEFORE_LOCK):
        assert stranger.log_in(NEW_ADDRESS, "not the password").status_code in (200, 429)
    mails["lockout"] = _arrived(smtp, deliver, count + 1, NEW_ADDRESS)

    # Staff give the account back to the address it had.
    count = len(smtp.messages)
    assert staff.post(f"/support/clients/{user_id}/actions/give-back",
                      {"owner_email": CLIENT, "confirm": "y"}).status_code == 302
    mails["password_reset_given_back"] = _arrived(smtp, deliver, count + 1, CLIENT)
    return mails



class _Visible(HTMLParser):
    """The text a reader sees in an HTML part, and the addresses its links go to."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.hrefs: list[str] = []
        self._hidden = 0

    def handle_starttag(self, tag, attrs) -> None:
        if tag in ("head", "style", "title"):
            self._hidden += 1
        if tag == "a" and dict(attrs).get("href"):
            self.hrefs.append(dict(attrs)["href"])
        if tag in ("p", "div", "br"):
            self.parts.append("\n")

    def handle_endtag(self, tag) -> None:
        if tag in ("head", "style", "title"):
            self._hidden -= 1

    def handle_data(self, data) -> None:
        if not self._hidden:
            self.parts.append(data)

    @property
    def text(self) -> str:
        return " ".join("".join(self.parts).split())


def visible(html: str) -> _Visible:
    reader = _Visible()
    reader.feed(html)
    return reader


TIMES = re.compile(r"\b\d{1,2}:\d{2}\b|\b\d{1,2} (?:January|February|March|April|May|June|July|"
                   r"August|September|October|November|December) \d{4}\b")


def problems_of(name: str, mail) -> list[str]:
    """What is wrong with one email as it arrived, in words."""
    found = []
    wire = email.message_from_bytes(mail.raw, policy=email.policy.default)
    for header in ("Date", "Message-ID", "MIME-Version", "From", "To", "Subject"):
        if not wire[header]:
            found.append(f"no {header}")
    if str(make_header(decode_header(email.message_from_bytes(mail.raw)["From"]))) \
            != f"{PORTAL} <no-reply@smithandson.co.uk>":
        found.append(f"From reads {wire['From']!r}")
    alternatives = [part for part in wire.walk()
                    if part.get_content_type() == "multipart/alternative"]
    if len(alternatives) != 1:
        found.append("no multipart/alternative")
    else:
        inner = [part.get_content_type() for part in alternatives[0].iter_parts()]
        if inner != ["text/plain", "text/html"]:
            found.append(f"alternative parts {inner}")
    for part in wire.walk():
        if part.get_content_maintype() == "text" and part.get_content_charset() != "utf-8":
            found.append(f"{part.get_content_type()} in {part.get_content_charset()}")
    if PORTAL not in mail.text or PORTAL not in mail.subject:
        found.append("the firm's name is not whole in the text or the subject")
    for leak in ("&amp;", "&#", "&lt;", "{{", "{%", "}}", "<p", "<a "):
        if leak in mail.text or leak in mail.subject:
            found.append(f"{leak!r} in the text or subject")
    # RFC 5322 2.1.1: no line over 998 characters (the parts go as 8bit, unwrapped).
    if max(len(line) for line in mail.raw.split(b"\r\n")) > 998:
        found.append("a line over 998 characters")
    html = visible(mail.html)
    for leak in ("&amp;", "&#", "&lt;", "{{", "{%", "}}"):
        if leak in html.text:
            found.append(f"{leak!r} shown in the HTML part")
    if PORTAL not in html.text:
        found.append("the firm's name is not whole in the HTML part")
    text_links = [link.rstrip(".,;:") for link in LINK.findall(mail.text)]
    html_links = [href for href in html.hrefs if href.startswith("http")]
    for link in text_links + html_links:
        if not link.startswith(PORTAL_URL + "/") and link != PORTAL_URL:
            found.append(f"a link not at PORTAL_URL: {link}")
    if sorted(set(text_links)) != sorted(set(html_links)):
        found.append(f"links differ: text {text_links}, HTML {html_links}")
    if sorted(set(TIMES.findall(mail.text))) != sorted(set(TIMES.findall(html.text))):
        found.append(f"times differ: text {TIMES.findall(mail.text)}, "
                     f"HTML {TIMES.findall(html.text)}")
    codes_text, codes_html = re.findall(r"\b\d{6}\b", mail.text), re.findall(r"\b\d{6}\b", html.text)
    if sorted(set(codes_text)) != sorted(set(codes_html)):
        found.append(f"codes differ: text {codes_text}, HTML {codes_html}")
    return [f"{name}: {problem}" for problem in found]



def test_every_email_arrives_whole_and_its_two_parts_say_the_same(firm, smtp):
    """Headers, both parts, the same links (all at PORTAL_URL), times and code in each."""
    mails = every_email(firm, smtp)
    assert len(mails) == 13
    problems = [problem for name, mail in mails.items() for problem in problems_of(name, mail)]
    assert not problems, "\n".join(problems)
    # A client's name is words in the body, never a header of its own.
    invitation = mails["invitation"]
    assert invitation.to == ["anna@example.com"] and "mallory" not in invitation.to
    head = invitation.raw.split(b"\r\n\r\n")[0].decode()
    assert "Bcc" not in head and "mallory" not in head
    assert "Hello Anna Bcc: mallory@example.net Smith <b>Ltd</b>," in invitation.text
    assert "Smith &lt;b&gt;Ltd&lt;/b&gt;" in invitation.html


def test_a_masked_address_in_an_email_is_words_not_a_link(firm, smtp):
    """"n•••@example.com" (shown in part, to keep it private) is no address to write to:
    as a mailto: link, a tap on a phone opened a new email to it, which could not be sent."""
    mails = every_email(firm, smtp)
    for name in ("email_change_requested", "email_changed"):
        html = visible(mails[name].html)
        assert "n•••@example.com" in html.text and "n•••@example.com" in mails[name].text, name
        assert not [href for href in html.hrefs if "•" in href], (name, html.hrefs)
    # The firm's own address stays a link, one tap away.
    assert "mailto:help@smithandson.co.uk" in visible(mails["email_changed"].html).hrefs


PHONE_WIDTHS = ({"width": 360, "height": 740}, {"width": 600, "height": 900})

LOOK_JS = """
(width) => {
  // The phone's width, not window.innerWidth: a phone zooms out to show a page wider than
  // itself, and innerWidth grows with it.
  const out = [];
  if (document.documentElement.scrollWidth > width)
    out.push(`scrolls sideways: ${document.documentElement.scrollWidth} > ${width}`);
  for (const el of document.querySelectorAll('body *')) {
    const box = el.getBoundingClientRect();
    if (box.width && box.right > width + 0.5)
      out.push(`cut off: ${el.tagName} ${el.textContent.trim().slice(0, 40)}`);
  }
  for (const img of document.querySelectorAll('img'))
    if (!img.hasAttribute('alt')) out.push('an image without alt');
  for (const a of document.querySelectorAll('a[href]')) {
    const box = a.getBoundingClientRect();
    const alone = a.closest('p') && a.closest('p').textContent.trim() === a.textContent.trim();
    if (alone && (box.height < 44 || box.width < 44))
      out.push(`small button: ${a.textContent.trim()} ${box.width}x${box.height}`);
  }
  for (const p of document.querySelectorAll('p'))
    if (parseFloat(getComputedStyle(p).fontSize) < 14)
      out.push(`small text: ${p.textContent.trim().slice(0, 40)}`);
  // Every text colour stands on a background the email sets itself, with WCAG AA contrast:
  // a mail program in dark mode that darkens only what an email leaves unset cannot then
  // put dark text on a dark page.
  const rgb = s => s.match(/[\\d.]+/g).map(Number);
  const lum = c => { const [r, g, b] = c.slice(0, 3).map(v => { v /= 255;
    return v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4; });
    return 0.2126 * r + 0.7152 * g + 0.0722 * b; };
  const backgroundOf = el => {
    for (let n = el; n && n !== document.documentElement; n = n.parentElement) {
      const c = rgb(getComputedStyle(n).backgroundColor);
      if (c.length < 4 || c[3] > 0) return c;
    }
    return null; };
  for (const el of document.querySelectorAll('body *')) {
    if (![...el.childNodes].some(n => n.nodeType === 3 && n.textContent.trim())) continue;
    const back = backgroundOf(el);
    if (!back) { out.push(`no background of its own: ${el.textContent.trim().slice(0, 40)}`); continue; }
    const [hi, lo] = [lum(rgb(getComputedStyle(el).color)), lum(back)].sort((x, y) => y - x);
    if ((hi + 0.05) / (lo + 0.05) < 4.5)
      out.push(`low contrast: ${el.textContent.trim().slice(0, 40)}`);
  }
  return out;
}
"""


@pytest.mark.browser
def test_every_email_on_a_phone_in_light_and_dark(firm, smtp, chromium):
    """Each email's HTML part in Chromium at 360 and 600 px, light and dark: nothing cut off
    or scrolling sideways, buttons big enough to tap, text readable; the code large, copied
    whole with a double tap, and accepted as copied. Screenshots to look at."""
    mails = every_email(firm, smtp)
    problems = []
    for viewport in PHONE_WIDTHS:
        for scheme in ("light", "dark"):
            context = chromium.new_context(viewport=viewport, is_mobile=True, has_touch=True,
                                           color_scheme=scheme, locale="en-GB")
            page = context.new_page()
            for name, mail in mails.items():
                page.set_content(mail.html)
                problems += [f"{name} at {viewport['width']} px, {scheme}: {problem}"
                             for problem in page.evaluate(LOOK_JS, viewport["width"])]
                screenshot(page, f"review7-email-{name}-{scheme}")
            context.close()
    assert not problems, "\n".join(problems)

    # The code: large, one word (a double click selects all of it), and what is copied works.
    context = chromium.new_context(viewport=PHONE_WIDTHS[0])
    page = context.new_page()
    page.set_content(mails["code"].html)
    box = page.get_by_text(mails["code"].code, exact=True)
    assert box.evaluate("e => parseFloat(getComputedStyle(e).fontSize)") >= 24
    box.dblclick(position={"x": 40, "y": box.bounding_box()["height"] / 2})
    copied = page.evaluate("() => window.getSelection().toString()")
    context.close()
    assert copied.strip() == mails["code"].code, copied

    b = Browser(firm, user_agent=PHONE_UA)
    count = len(smtp.messages)
    assert b.log_in(STAFF).status_code == 302
    with firm.app_context():
        delivery.run_once()
    smtp.wait_for(count + 1)
    copied = smtp.last_to(STAFF).code.join(copied.split(mails["code"].code))
    assert b.enter_code(copied).headers.get("Location") == "/portal"



def test_the_firms_number_is_one_tap_away_in_every_email_that_names_it(firm, smtp):
    """PORTAL_CONTACT's number was a tel: link in the invitation and the new-password email
    (their own HTML) but words in every notice, "contact us straight away" ones included."""
    mails = every_email(firm, smtp)
    naming = {name: mail for name, mail in mails.items() if "020 7946 0000" in mail.text}
    assert {"invitation", "lockout", "email_changed", "password_changed"} <= set(naming)
    for name, mail in naming.items():
        hrefs = visible(mail.html).hrefs
        assert "tel:02079460000" in hrefs and "mailto:help@smithandson.co.uk" in hrefs, \
            (name, hrefs)


def _png(width: int, height: int) -> bytes:
    """A plain light-grey PNG of this size (a firm's logo)."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))

    rows = b"".join(b"\x00" + b"\xe0\xe4\xea" * width for _ in range(height))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b""))


@pytest.mark.browser
@pytest.mark.parametrize("width, height", [(600, 50), (200, 100)])
def test_a_wide_logo_fits_a_phone_and_keeps_its_shape(tmp_path, smtp, chromium, width, height):
    """PORTAL_LOGO of 600 x 50 px was drawn 432 px wide (36 px high) in a 360 px phone's
    email: the phone zoomed out, or the client scrolled sideways to read every line. A logo
    that fits is still drawn 36 px high."""
    logo = tmp_path / "logo.png"
    logo.write_bytes(_png(width, height))
    config = make_config(tmp_path, smtp, PORTAL_NAME=PORTAL, PORTAL_URL=PORTAL_URL,
                         PORTAL_LOGO=str(logo), TRUSTED_HOSTS=["localhost"])
    with running_app(config) as app:
        add_user(app, CLIENT)
        Browser(app).post("/password/forgot", {"email": CLIENT})
        with app.app_context():
            delivery.run_once()
        mail = smtp.wait_for(1)[0]
    assert f'src="{PORTAL_URL}/brand/logo"' in mail.html
    context = chromium.new_context(viewport=PHONE_WIDTHS[0], is_mobile=True, has_touch=True)
    page = context.new_page()
    page.route(f"{PORTAL_URL}/brand/logo",
               lambda route: route.fulfill(body=logo.read_bytes(), content_type="image/png"))
    page.set_content(mail.html, wait_until="load")
    shape = page.evaluate("""() => { const i = document.querySelector('img');
        const box = i.getBoundingClientRect();
        return {loaded: i.naturalWidth, ratio: box.width / box.height, right: box.right,
                height: box.height}; }""")
    problems = page.evaluate(LOOK_JS, PHONE_WIDTHS[0]["width"])
    screenshot(page, f"review7-email-logo-{width}x{height}")
    context.close()
    assert shape["loaded"] == width
    assert not problems, problems
    assert shape["right"] <= PHONE_WIDTHS[0]["width"], shape
    assert abs(shape["ratio"] - width / height) < 0.2, shape  # its own shape
    assert shape["height"] <= 36.5 and (width / height > 8 or shape["height"] > 35.5), shape
