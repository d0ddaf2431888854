"""What a channel (the SMTP server, Vonage) says when it takes a message, or cannot."""

from __future__ import annotations

from typing import NamedTuple, Optional


class HandedOver(NamedTuple):
    """A message a channel took: its reference (Vonage's message id, "outbox"), and for a
    text that went out in several parts, every part's id (receipts come for each)."""

    ref: Optional[str] = None
    parts: tuple[str, ...] = ()


class DeliveryError(Exception):
    """A message could not be handed over. `permanent` means retrying will not help."""

    def __init__(self, reason: str, *, permanent: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        self.permanent = permanent
