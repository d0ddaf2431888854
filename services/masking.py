"""Masked destinations, so a page or a support view shows where a code went, not the address."""

from __future__ import annotations


def mask_email(email: str | None) -> str:
    """"j•••@example.com"."""
    if not email or "@" not in email:
        return ""
    local, _, domain = email.rpartition("@")
    return f"{local[:1]}•••@{domain}"


def mask_phone(e164: str | None) -> str:
    """"•••• ••• 456": enough for the owner to recognise, nothing for anyone else."""
    if not e164:
        return ""
    return f"•••• ••• {e164[-3:]}"


def mask_destination(channel: str, destination: str | None) -> str:
    return mask_phone(destination) if channel == "sms" else mask_email(destination)
