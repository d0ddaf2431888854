"""The emails of the account lifecycle, queued in the durable outbox (never sent in a request).

A link's token travels encrypted in the outbox row, like a sign-in code, and is wiped once
the message has gone; the text, HTML and absolute link are made only at send time.
"""

from __future__ import annotations

from datetime import datetime
from typing import Optional

from flask import current_app

from models import AccountToken, Delivery, User
from services import clock, delivery, keys
from services.urls import absolute_url

# Where each kind of link leads (the endpoint gets the token as `token`).
LINK_ENDPOINTS = {
    "invitation": "passwords.welcome",
    "reset": "passwords.reset",
    "email": "email_change.confirm",
}
DELIVERY_KINDS = {"invitation": "invitation", "reset": "reset", "email": "email_proof"}


def when(moment: datetime) -> str:
    """"10:05 on 1 December 2026" in the portal's time zone."""
    return clock.local(moment, current_app.config["PORTAL_TIMEZONE"]).strftime(
        "%H:%M on %-d %B %Y")


def common_links() -> dict:
    return {"login_url": absolute_url("auth.login"),
            "forgot_url": absolute_url("passwords.forgot")}


def queue_link(user: User, row: AccountToken, token: str, template: str, *,
               destination: Optional[str] = None, values: Optional[dict] = None) -> Delivery:
    """Queue the email carrying a link; it is not sent once the link has run out."""
    return delivery.queue_message(
        user_id=user.id, channel="email", destination=destination or user.email,
        kind=DELIVERY_KINDS[row.purpose], template=template,
        values={"link_endpoint": LINK_ENDPOINTS[row.purpose], "expires": when(row.expires_at),
                **common_links(), **(values or {})},
        code_encrypted=keys.encrypt_secret(token), give_up_at=row.expires_at,
    )


def queue_notice(user: User, template: str, *, destination: Optional[str] = None,
                 values: Optional[dict] = None) -> Delivery:
    """Queue a notice about the account (no secret in it)."""
    return delivery.queue_message(
        user_id=user.id, channel="email", destination=destination or user.email,
        kind="notice", template=template,
        values={"when": when(clock.now()), **common_links(), **(values or {})},
    )
