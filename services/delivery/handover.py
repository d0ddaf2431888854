"""What a channel (the SMTP server, Vonage) says when it cannot take a message."""

from __future__ import annotations


class DeliveryError(Exception):
    """A message could not be handed over. `permanent` means retrying will not help."""

    def __init__(self, reason: str, *, permanent: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        self.permanent = permanent
