"""The emails of the account lifecycle, queued in the durable outbox (never sent in a request).

A link's token travels encrypted in the outbox row, like a sign-in code, and is wiped once
the message has gone; the text, HTML and absolute link are made only at send time. Just
before it goes, the dispatcher asks whether the link still works (`link_still_works`): an
email whose link was withdrawn, replaced or used, or whose account changed or was switched
off, is cancelled rather than sent.
"""

from __future__ import annotations

from datetime import datetime
from typing import Optional

from models import AccountToken, Delivery, User
from services import audit, clock, delivery, keys
from services.accounts import tokens
from services.urls import absolute_url

# Where each kind of link leads (the endpoint gets the token as `token`).
LINK_ENDPOINTS = {
    "invitation": "passwords.welcome",
    "reset": "passwords.reset",
    "email": "email_change.confirm",
}
DELIVERY_KINDS = {"invitation": "invitation", "reset": "reset", "email": "email_proof"}
# The link each kind of message carries.
LINK_PURPOSES = {kind: purpose for purpose, kind in DELIVERY_KINDS.items()}
# Why a link's email was not sent after all, for support and the outbox.
NOT_SENT = {
    tokens.USED: "its link had been used already",
    tokens.REVOKED: "its link had been withdrawn or replaced by a newer one",
    tokens.EXPIRED: "its link had run out",
    tokens.STALE: "the account had changed since (a new password or email address)",
    tokens.UNKNOWN: "its link no longer exists",
}


def when(moment: datetime) -> str:
    """"10:05 on 1 December 2026" in the portal's time zone."""
    return clock.local(moment).strftime("%H:%M on %-d %B %Y")


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


def link_still_works(item: Delivery) -> Optional[str]:
    """In the dispatcher, just before a link's email goes: None while its link still works,
    else why it is not sent. The message then ends cancelled (not failed), and the account's
    trail says so; a link nobody can use must not reach an inbox as if it could be."""
    token = keys.decrypt_secret(item.code_encrypted) if item.code_encrypted else None
    if token is None:
        return None  # the dispatcher fails it: a link it cannot read back is a fault to show
    check = tokens.check(token, LINK_PURPOSES[item.kind])
    if check.ok:
        return None
    if check.user is not None and not check.user.is_active:
        reason = "the account is switched off"
    else:
        reason = NOT_SENT.get(check.outcome, "its link no longer works")
    audit.record("link_email_cancelled", user_id=item.user_id, delivery_id=item.id,
                 outcome=check.outcome, detail={"kind": item.kind, "reason": reason})
    return f"not sent: {reason}"


for _kind in LINK_PURPOSES:
    delivery.PREPARERS[_kind] = link_still_works
