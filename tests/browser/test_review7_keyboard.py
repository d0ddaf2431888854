"""The seventh review, by keyboard alone and at 320 px: the client journey with Tab, Enter and
Escape only (no clicks), where the focus goes after a problem, and no sideways scrolling.

One live server for the module's journeys; each page is reached by the keyboard."""

from __future__ import annotations

from datetime import timedelta

import pytest
from playwright.sync_api import expect

from services import clock
from tests.browser.conftest import code_from, screenshot
from tests.conftest import TEST_PASSWORD

pytestmark = pytest.mark.browser

NARROW = {"width": 320, "height": 640}     # WCAG 1.4.10: 320 CSS px
ZOOMED = {"width": 640, "height": 450}     # 1280 x 900 at 200% zoom

FOCUSED = """() => { const e = document.activeElement;
  return e ? {tag: e.tagName.toLowerCase(), id: e.id, text: (e.innerText || '').trim(),
              name: e.name || '', role: e.getAttribute('role') || '',
              outline: getComputedStyle(e).outlineStyle,
              width: parseFloat(getComputedStyle(e).outlineWidth)} : null; }"""


def focused(page) -> dict:
    return page.evaluate(FOCUSED)


def press_and_load(page, key: str) -> None:
    """A key that sends a form or follows a link: wait for the page it loads."""
    with page.expect_navigation():
        page.keyboard.press(key)
    page.wait_for_load_state("load")


def tab_to(page, describe, most: int = 25) -> dict:
    """Tab forwards until `describe(focused element)` is true; fails after `most` presses."""
    seen = []
    for _ in range(most):
        page.keyboard.press("Tab")
        now = focused(page)
        seen.append(f"{now['tag']}#{now['id']} {now['name']} {now['text'][:30]!r}")
        if describe(now):
            return now
    raise AssertionError("never reached; the Tab order was:\n" + "\n".join(seen))


def shows_focus(now: dict) -> None:
    assert now["outline"] != "none" and now["width"] >= 2, f"no visible focus on {now}"


def test_sign_in_by_keyboard_alone(live_server, new_context, smtp):
    page = new_context().new_page()
    page.goto(live_server("/login"))

    # Tab order: skip link, the portal's name, email, password, Log in; Enter sends it.
    order = [tab_to(page, lambda e: True) for _ in range(5)]
    assert [(e["tag"], e["name"] or e["text"]) for e in order] == [
        ("a", "Skip to main content"), ("a", "Test Portal"), ("input", "email"),
        ("input", "password"), ("button", "Log in")]
    for each in order:
        shows_focus(each)

    # Nothing typed: the page comes back with the focus on "There is a problem".
    press_and_load(page, "Enter")
    now = focused(page)
    assert now["role"] == "alert" and "There is a problem" in now["text"], now
    shows_focus(now)
    now = tab_to(page, lambda e: e["tag"] == "a")
    assert "email address" in now["text"], "the summary's links come next"

    # A wrong password: the page's alert takes the focus, so it is read out first.
    tab_to(page, lambda e: e["name"] == "email")
    page.keyboard.type("client@example.com")
    page.keyboard.press("Tab")
    page.keyboard.type("not-the-password")
    press_and_load(page, "Enter")
    now = focused(page)
    assert now["role"] == "alert" and "not right" in now["text"], now
    shows_focus(now)

    # The sign-in itself in a fresh tab, so that Back later meets no page a form posted.
    page = page.context.new_page()
    page.goto(live_server("/login"))
    tab_to(page, lambda e: e["name"] == "email")
    page.keyboard.type("client@example.com")
    page.keyboard.press("Tab")
    page.keyboard.type(TEST_PASSWORD)
    press_and_load(page, "Enter")
    assert page.url.endswith("/login/code")

    # The code page: the code box is the first stop after the header.
    now = tab_to(page, lambda e: e["tag"] in ("input", "button", "summary") or e["id"])
    assert now["name"] == "code", now
    # "Not received a code?" opens with Enter; once the wait is over, "Send the code again"
    # is the next stop.
    clock.advance(timedelta(minutes=1))
    page.reload()
    page.wait_for_load_state("load")
    tab_to(page, lambda e: e["tag"] == "summary")
    page.keyboard.press("Enter")
    expect(page.locator("#delivery-help")).to_have_attribute("open", "")
    now = tab_to(page, lambda e: e["tag"] == "button", most=1)
    assert now["text"] == "Send the code again", now
    shows_focus(now)

    # A wrong code: the cursor waits in the code box, which names its error.
    for _ in range(4):  # back up: the summary, Continue, the tick box, the code box
        page.keyboard.press("Shift+Tab")
    expect(page.locator("input[name=code]")).to_be_focused()
    page.keyboard.type("000000" if code_from(smtp, 1) != "000000" else "111111")
    press_and_load(page, "Enter")
    box = page.locator("input[name=code]")
    expect(box).to_be_focused()
    assert box.get_attribute("aria-invalid") == "true" or page.locator("#code-problem").count()

    # Back: the warning takes the focus; Escape (or Enter on "Stay") answers it and the
    # cursor is back in the code box.
    page.go_back()
    warning = page.locator("#back-warning")
    expect(warning).to_contain_text("Going back will not bring a new code")
    stay = warning.get_by_role("button", name="Stay and enter my code")
    expect(stay).to_be_focused()
    shows_focus(focused(page))
    screenshot(page, "review7-back-warning")
    page.keyboard.press("Escape")
    expect(warning).to_be_empty()
    expect(box).to_be_focused()

    page.go_back()
    expect(stay).to_be_focused()
    page.keyboard.press("Tab")
    expect(warning.get_by_role("button", name="Go back anyway")).to_be_focused()
    page.keyboard.press("Enter")
    page.wait_for_url("**/login")
    expect(page.locator('[data-guard="pending"]')).to_be_visible()


FITS = """() => ({scroll: document.documentElement.scrollWidth,
                 client: document.documentElement.clientWidth,
                 cut: [...document.querySelectorAll('main *')].filter(e => {
                   const r = e.getBoundingClientRect();
                   return r.width > 0 && (r.right > document.documentElement.clientWidth + 1 || r.left < -1);
                 }).map(e => e.tagName.toLowerCase() + '.' + e.className).slice(0, 5)})"""


@pytest.mark.parametrize("viewport", [NARROW, ZOOMED], ids=["320px", "640px-is-200pc-zoom"])
def test_client_pages_reflow_without_sideways_scrolling(viewport, live_server, new_context,
                                                          smtp):
    page = new_context(viewport).new_page()

    def fits(name: str) -> None:
        page.wait_for_load_state("load")
        widths = page.evaluate(FITS)
        assert widths["scroll"] <= widths["client"] and not widths["cut"], f"{name}: {widths}"
        screenshot(page, f"review7-{name}")

    page.goto(live_server("/login"))
    fits("login")
    page.fill("input[name=email]", "client@example.com")
    page.locator("input[name=password]").focus()
    press_and_load(page, "Enter")
    fits("login-errors")
    page.fill("input[name=password]", TEST_PASSWORD)
    page.locator("input[name=password]").focus()
    press_and_load(page, "Enter")
    page.locator("#delivery-help summary").focus()
    page.keyboard.press("Enter")
    fits("code")

    # The keep-or-new question, from another browser.
    other = new_context(viewport).new_page()
    other.goto(live_server("/login"))
    other.fill("input[name=email]", "client@example.com")
    other.fill("input[name=password]", TEST_PASSWORD)
    other.locator("input[name=password]").focus()
    press_and_load(other, "Enter")
    expect(other.locator("h1")).to_have_text("A code is already on its way")
    page, mine = other, page
    fits("choice")
    # By keyboard: Tab lands on the chosen answer (keep), Tab again on Continue.
    page.keyboard.press("Tab")
    page.keyboard.press("Tab")
    page.keyboard.press("Tab")
    expect(page.locator("#action-keep")).to_be_focused()
    page.keyboard.press("Tab")
    expect(page.get_by_role("button", name="Continue")).to_be_focused()
    press_and_load(page, "Enter")
    assert page.url.endswith("/login/code")
    page.locator("input[name=code]").focus()
    page.keyboard.type(code_from(smtp, 1))
    press_and_load(page, "Enter")
    assert page.url.endswith("/portal")
    fits("portal")

    page.goto(live_server("/account/security"))
    fits("security")
    clock.advance(timedelta(minutes=11))  # now its changes ask for the password again
    page.goto(live_server("/account/devices"))
    fits("devices")
    link = page.get_by_role("link", name="Sign out everywhere else")
    link.focus()
    press_and_load(page, "Enter")
    expect(page.locator("#sign-out-others-password")).to_be_focused()
    fits("devices-password-again")

    # Logging out by keyboard: the header's "Log out", after Home and Account.
    page.goto(live_server("/portal"))
    tab_to(page, lambda e: e["text"] == "Log out")
    shows_focus(focused(page))
    press_and_load(page, "Enter")
    assert "/login" in page.url or page.locator("h1").inner_text()
    fits("logged-out")
