"""What a form sent too late still holds.

A form posted after its session ended (left open past the idle timeout, or signed out from
another device), or after a sign-in in another tab gave the session a new token, is refused
and nothing is done. So that nothing typed is lost either, the boxes it held come back filled
in on the same page, after a sign-in if one is needed: never a password or a code, and only
from a form of this site's own pages (another site's form must not fill in a phone number for
the client to save without noticing).

They wait in the session cookie (signed), a few hundred characters at most, and are given
back once, to the account that typed them.
"""

from __future__ import annotations

from typing import Optional
from urllib.parse import urlsplit

from flask import flash, request, session, url_for

from services import urls

# The boxes kept, by the endpoint of the page whose form they are in.
KEPT_FIELDS = {
    "auth.login": ("email",),
    "passwords.forgot": ("email",),
    "email_change.change": ("email",),
    "account.security": ("channel", "phone"),
    "support.new_client": ("email", "name", "phone", "channel", "role"),
    # Giving an account back: the owner's own address, typed while on the phone to them.
    "support.action": ("owner_email",),
}
# Characters kept of each: more than any of those boxes takes (the forms refuse longer).
KEPT_LONGEST = 320
# The forms at those addresses that hold a one-time code (the new number's, the app's) are
# not the ones above, and keep nothing.
_CODE_FIELD = "code"


def posted_from_this_site() -> bool:
    """True when the browser says the form came from one of this site's pages.

    Browsers send Origin with every POST and Sec-Fetch-Site with every request; a request
    with neither is not from a browser form, so it is not trusted either.
    """
    if request.headers.get("Sec-Fetch-Site") == "same-origin":
        return True
    origin = request.headers.get("Origin", "")
    return bool(origin) and origin in (urls.portal_origin(), request.host_url.rstrip("/"))


def page_posted_from() -> str:
    """The page a POST's form was on, to go back to after signing in: the Referer, when this
    site's; else the form's own address when that is a page too (not a POST-only action)."""
    page = urlsplit(request.referrer or "")
    if posted_from_this_site() and page.path.startswith("/"):
        return page.path + (f"?{page.query}" if page.query else "")
    if request.url_rule is not None and "GET" in (request.url_rule.methods or ()):
        return request.path
    return url_for("portal.home")


def keep(user_id: Optional[int]) -> bool:
    """Keep what this refused form held for its page, for `user_id` (None: a form used
    before signing in). True when something was kept."""
    names = KEPT_FIELDS.get(request.endpoint or "", ())
    if not names or _CODE_FIELD in request.form or not posted_from_this_site():
        return False
    typed = {name: request.form[name][:KEPT_LONGEST]
             for name in names if request.form.get(name, "").strip()}
    if not typed:
        return False
    session["kept_form"] = {"path": request.path, "user": user_id, "fields": typed}
    return True


def carry_over(user_id: int, next_url: Optional[str]) -> Optional[dict]:
    """At a sign-in, which clears the session: what was kept, if this account typed it on the
    page of this site the sign-in goes on to. Put back into the new session with `restore`."""
    kept = session.get("kept_form")
    going_to = urlsplit(next_url or "")
    if (not isinstance(kept, dict) or kept.get("user") != user_id or going_to.netloc
            or going_to.path != kept.get("path")):
        return None
    return {**kept, "after_sign_in": True}


def restore(kept: Optional[dict]) -> None:
    if kept is not None:
        session["kept_form"] = kept


def fill(form, user_id: Optional[int] = None) -> None:
    """For a page's GET: the boxes its form held when it was refused, into the form, once.
    After a sign-in between, the page says why it is filled in."""
    for name, value in _typed_before(user_id).items():
        if name in form:
            form[name].data = value


def _typed_before(user_id: Optional[int]) -> dict:
    """What this page's form held when it was refused, taken from the session ({} when nothing
    was kept for this page and `user_id`, or on anything but a GET)."""
    kept = session.get("kept_form")
    if (request.method != "GET" or not isinstance(kept, dict)
            or kept.get("path") != request.path):
        return {}
    session.pop("kept_form")
    fields = kept.get("fields")
    if kept.get("user") != user_id or not isinstance(fields, dict):
        return {}
    if kept.get("after_sign_in"):
        flash("Nothing was saved when your session ended. What you typed is filled in again "
              "below: check it, then send it again.", "info")
    names = KEPT_FIELDS.get(request.endpoint or "", ())
    return {name: value for name, value in fields.items()
            if name in names and isinstance(value, str)}
