"""Browser fixtures: the app on a real HTTP server, and Debian's Chromium driven by playwright.

One Chromium serves the whole session; every test gets its own server, database, SMTP server
and fresh browser contexts, so tests do not share cookies or sign-ins.
"""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Optional

import pytest
from werkzeug.serving import make_server

from tests.conftest import TEST_PASSWORD, add_user, free_port, make_config, running_app

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run",
]
AXE_JS = ROOT / "node_modules" / "axe-core" / "axe.min.js"
SCREENSHOTS = ROOT / "test-artifacts" / "screenshots"

DESKTOP = {"width": 1280, "height": 900}
PHONE = {"width": 390, "height": 844}
SMALL_PHONE = {"width": 360, "height": 740}
SMS_PHONE = "+447700900123"  # a UK mobile number reserved for drama, never a real one


# --- the app on a real server --------------------------------------------------------------

class LiveServer:
    """The app served over HTTP on 127.0.0.1 in a thread, with its dispatcher running.

    Its address is http://localhost:<port> (PORTAL_URL): a name, not an IP address, as
    passkeys need, and the only host the app answers to."""

    def __init__(self, app, port: int) -> None:
        self.app = app
        self._server = make_server("127.0.0.1", port, closed_before_sending(app), threaded=True)
        self.url = app.config["PORTAL_URL"]
        self._thread = threading.Thread(target=self._server.serve_forever, name="live-server",
                                        daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)

    def __call__(self, path: str = "/") -> str:
        return self.url + path


def closed_before_sending(app):
    """The app with each response read to the end and closed before the server writes it.

    Werkzeug's development server skips a response's close() when the browser drops the
    connection mid-response (the read in its `finally` raises first), so a static file's
    handle was left to the garbage collector, and its ResourceWarning failed whichever test
    was running. Production servers (gunicorn) close it; the test server's responses are small.
    """

    def serve(environ, start_response):
        body = app(environ, start_response)
        try:
            return [b"".join(body)]
        finally:
            if hasattr(body, "close"):
                body.close()

    return serve


@pytest.fixture
def live_server(tmp_path, smtp):
    """The app on http://localhost:<port>, sending codes to the `smtp` fixture's server."""

    # The dispatcher thread starts once the tables exist, not in create_app before them.
    # Email goes to the SMTP fixture; SMS (no Vonage key) to the development outbox page.
    port = free_port()
    with running_app(make_config(tmp_path, smtp, DISPATCHER_AUTOSTART=False, DEV_OUTBOX=True,
                                 PORTAL_URL=f"http://localhost:{port}")) as application:
        application.extensions["dispatcher"].start()
        add_user(application, "client@example.com")
        add_user(application, "texts@example.com", channel="sms", phone=SMS_PHONE)
        server = LiveServer(application, port)
        server.start()
        yield server
        server.stop()


# --- Chromium --------------------------------------------------------------------------------

_running: dict = {}


@pytest.fixture(scope="session")
def chromium():
    """One headless Debian Chromium for the whole run (never `playwright install`)."""
    if "browser" in _running:
        # This fixture imported into another test module: playwright's sync API cannot be
        # started twice in one thread, so that module shares the same browser.
        yield _running["browser"]
        return
    if not Path(CHROMIUM).exists():
        pytest.skip("Debian's chromium is not installed (scripts/test.sh installs it)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        # Playwright turns the back-forward cache off by default; clients' browsers have it on,
        # and Back from the code page must behave with it.
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS,
            ignore_default_args=["--disable-back-forward-cache"],
        )
        _running["browser"] = browser
        try:
            yield browser
        finally:
            del _running["browser"]
            browser.close()


@pytest.fixture
def new_context(chromium):
    """Make browser contexts (separate cookie jars, like separate browsers); closed after.

    Any script error, and anything the page's CSP blocked, fails the test.
    """
    contexts = []
    errors: list[str] = []

    def watch(page) -> None:
        page.on("pageerror", lambda error: errors.append(f"{page.url}: {error}"))
        page.on("console", lambda message: errors.append(f"{page.url}: {message.text}")
                if message.type == "error" and "Content Security Policy" in message.text
                else None)

    def make(viewport: Optional[dict] = None, *, javascript: bool = True, phone: bool = False,
             **options):
        context = chromium.new_context(
            viewport=viewport or DESKTOP, java_script_enabled=javascript, is_mobile=phone,
            has_touch=phone, locale="en-GB", timezone_id="Europe/London", **options,
        )
        context.set_default_timeout(8000)
        context.on("page", watch)
        contexts.append(context)
        return context

    yield make
    for context in contexts:
        context.close()
    assert not errors, "errors in the browser:\n" + "\n".join(errors)


# --- helpers the tests share ------------------------------------------------------------------

def log_in(page, server: LiveServer, email: str = "client@example.com",
           password: str = TEST_PASSWORD) -> None:
    """Fill in the login form as a client would and send it."""
    if "/login" not in page.url or page.locator("[data-login-form]").count() == 0:
        page.goto(server("/login"))
    page.fill("input[name=email]", email)
    page.fill("input[name=password]", password)
    page.locator("[data-login-form] button[type=submit]").click()


def go_back_anyway(page, sent_at: str) -> None:
    """Back from the code page, then "Go back anyway" on its warning: the login page it lands
    on still says a code sent at `sent_at` is on its way."""
    from playwright.sync_api import expect

    page.go_back()
    warning = page.locator("#back-warning")
    expect(warning).to_contain_text("Going back will not bring a new code")
    warning.get_by_role("button", name="Go back anyway").click()
    page.wait_for_url("**/login")
    expect(page.locator('[data-guard="pending"]')).to_contain_text(sent_at)


def sign_in_through_pages(page, server: LiveServer, smtp, count: int,
                          email: str = "client@example.com",
                          password: str = TEST_PASSWORD) -> None:
    """Password, then the code from the `count`-th message, as a client types them; ends on
    the portal."""
    log_in(page, server, email, password)
    page.wait_for_url("**/login/code")
    page.fill("input[name=code]", code_from(smtp, count, email))
    page.get_by_role("button", name="Continue").click()
    page.wait_for_url("**/portal")


def code_from(smtp, count: int, email: str = "client@example.com") -> str:
    """The code of the `count`-th message, once it has reached the SMTP server."""
    smtp.wait_for(count)
    mail = smtp.last_to(email)
    assert mail.code, mail.text
    return mail.code


def styled(page) -> None:
    """Wait for the page's load event, so that its stylesheet is in. A page whose heading is
    already shown may still be waiting for app.css (a click that posts a form comes back before
    it), and boxes, colours and pictures taken then are the browser's unstyled ones."""
    page.wait_for_load_state("load")


_saved: list[Path] = []


def screenshot(page, name: str) -> Path:
    """Save a full-page screenshot under test-artifacts/screenshots/<name>-<width>.png."""
    if not _saved and SCREENSHOTS.exists():
        for old in SCREENSHOTS.glob("*.png"):  # a fresh set each run, no stale pictures
            old.unlink()
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    width = page.viewport_size["width"]
    path = SCREENSHOTS / f"{name}-{width}.png"
    # A page looked at must be the page meant: the server's error page would pass every other
    # check (it is well formed, labelled and fits), so a screenshot of it fails the test.
    assert "Sorry, something went wrong" not in page.locator("h1").all_inner_texts(), name
    styled(page)
    page.screenshot(path=str(path), full_page=True, animations="disabled")
    _saved.append(path)
    return path


_axe_source: Optional[str] = None


def axe_violations(page) -> list[dict]:
    """Run axe-core inside the page; its serious and critical violations.

    The page's CSP allows only this site's scripts, so axe goes in through the DevTools
    protocol (page.evaluate is not subject to CSP) rather than a <script> tag.
    """
    global _axe_source
    styled(page)  # colour contrast is judged with the page's styles
    if _axe_source is None:
        if not AXE_JS.exists():
            pytest.fail("node_modules/axe-core is missing: run `npm ci` (scripts/test.sh does)")
        _axe_source = AXE_JS.read_text(encoding="utf-8")
    if not page.evaluate("() => typeof window.axe !== 'undefined'"):
        page.evaluate(_axe_source + "\n;undefined")
    results = page.evaluate(
        "async () => { const r = await axe.run(document, {resultTypes: ['violations']});"
        " return r.violations.map(v => ({id: v.id, impact: v.impact, help: v.help,"
        " nodes: v.nodes.map(n => n.target.join(' ') + ' :: ' + n.failureSummary)})); }"
    )
    return [v for v in results if v["impact"] in ("serious", "critical")]


def assert_accessible(page, name: str) -> None:
    """No serious or critical axe violation on this page."""
    bad = axe_violations(page)
    assert not bad, f"axe on {name}:\n" + json.dumps(bad, indent=1)


# What a phone user taps: everything interactive except links inside a sentence, which
# WCAG 2.5.8 exempts (their line height is the text's).
TAP_TARGETS_JS = """
() => {
  const out = [];
  const items = document.querySelectorAll(
    'a[href], button, input:not([type=hidden]), select, textarea, summary');
  for (const el of items) {
    const style = getComputedStyle(el);
    if (el.closest('[hidden]') || style.visibility === 'hidden' || style.display === 'none') continue;
    if (el.classList.contains('skip-link') && document.activeElement !== el) continue;
    let box = el.getBoundingClientRect();
    if (box.width === 0 && box.height === 0) continue;
    if (el.tagName === 'A' && el.closest('p, li') && !el.classList.contains('button')) {
      const text = el.closest('p, li').textContent.trim();
      if (text !== el.textContent.trim()) continue;  // inline link in a sentence
    }
    if (el.type === 'radio' || el.type === 'checkbox') {
      // The tap target is the choice box (its label covers it), else the label.
      const label = el.closest('.choice') || el.closest('label')
        || (el.id && document.querySelector(`label[for="${el.id}"]`));
      if (label) box = label.getBoundingClientRect();
    }
    if (box.height < 44 || box.width < 44) {
      out.push(`${el.tagName.toLowerCase()} "${(el.textContent || el.name || '').trim().slice(0, 40)}" `
               + `${Math.round(box.width)}x${Math.round(box.height)}`);
    }
  }
  return out;
}
"""


def assert_fits_phone(page, name: str) -> None:
    """No sideways scrolling, and every tap target at least 44 px each way."""
    styled(page)
    widths = page.evaluate(
        "() => ({scroll: document.documentElement.scrollWidth, inner: window.innerWidth})")
    # Against the phone's own width too: an emulated phone widens its window to a page that
    # overflows (and zooms it out), so scroll <= inner alone passes a page too wide.
    phone = page.viewport_size["width"]
    assert widths["scroll"] <= widths["inner"] <= phone, (
        f"{name} scrolls sideways or is zoomed out: {widths}, phone {phone}")
    small = page.evaluate(TAP_TARGETS_JS)
    assert not small, f"{name}: tap targets under 44 px: {small}"


FIELD_LABELS_JS = """
() => {
  const out = [];
  for (const el of document.querySelectorAll('input:not([type=hidden]), select, textarea')) {
    if (!el.labels || el.labels.length === 0) out.push(`${el.name}: no label`);
    if (el.getAttribute('aria-invalid') === 'true') {
      const ids = (el.getAttribute('aria-describedby') || '').split(/\\s+/).filter(Boolean);
      const texts = ids.map(id => document.getElementById(id)).filter(Boolean)
        .map(n => n.textContent.trim()).join(' ');
      if (!/error/i.test(ids.join(' ')) || !texts) out.push(`${el.name}: error not linked`);
    }
  }
  return out;
}
"""


def assert_fields_labelled(page, name: str) -> None:
    """Every field has a label, and a field in error points at its error message."""
    problems = page.evaluate(FIELD_LABELS_JS)
    assert not problems, f"{name}: {problems}"


def look(page, name: str, *, labelled: bool = True) -> None:
    """The checks a page gets before it is photographed: every field labelled (unless
    `labelled` is False), axe, no sideways scrolling at phone width; then its screenshot."""
    if labelled:
        assert_fields_labelled(page, name)
    assert_accessible(page, name)
    if page.viewport_size["width"] <= 400:
        assert_fits_phone(page, name)
    screenshot(page, name)


def pytest_terminal_summary(terminalreporter):
    """Say where this run's screenshots are, so people look at them."""
    if _saved:
        terminalreporter.write_sep("-", "browser screenshots")
        terminalreporter.write_line(f"{len(_saved)} screenshots (1280 and 390 px wide) in {SCREENSHOTS}")
