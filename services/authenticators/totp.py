"""Authenticator apps (TOTP, RFC 6238), wrapped thinly around pyotp, with segno's QR code.

* The secret is 160 random bits (pyotp.random_base32), kept Fernet-encrypted with a key of its
  own derived from SECRET_KEY; it is shown to the client once, at setup, as a QR code and as
  text, and confirmed by one code from the app before it is used.
* A code is accepted for the current 30-second step or one step either side (a phone's clock a
  little off, or a code typed as it changed), and never for a step already used: the newest
  accepted step is stored, so a code seen over a shoulder cannot be replayed.
* A code that matches a step further away (up to five minutes) is still wrong, but it is noted,
  so the support console, the setup page and (for a clock that is behind) the code page can
  say "the phone's clock is off".
* Wrong codes count towards the sign-in's five tries and the account lockout, as email codes do.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Optional

import pyotp
from flask import current_app
from cryptography.fernet import InvalidToken
from pyotp.utils import strings_equal
from sqlalchemy import select

from extensions import db
from models import TotpAuthenticator, User
from services import audit, clock
from services.keys import fernet_for

STEP_SECONDS = 30
# How long a started setup waits for its first code (time to install an app); after that
# its secret is no longer shown, nor accepted, and setting up starts again.
SETUP_LIFETIME = timedelta(minutes=30)
# Steps either side of now that are accepted (RFC 6238 section 5.2 allows this much).
WINDOW = 1
# Steps either side looked at only to explain a wrong code: ten steps is five minutes.
DRIFT_LOOKAROUND = 10
DIGITS = 6
# RFC 8176: a password, then a one-time password from the app: two factors.
AMR = ["pwd", "otp", "mfa"]

ACCEPTED, WRONG, REPLAYED = "accepted", "wrong", "replayed"
# The setup's first code came after SETUP_LIFETIME.
SETUP_EXPIRED = "setup_expired"


def _fernet():
    return fernet_for(b"totp-secret")


def step_at(moment: datetime) -> int:
    """The RFC 6238 time step of a moment."""
    return int(moment.timestamp()) // STEP_SECONDS


def authenticator_of(user: User) -> Optional[TotpAuthenticator]:
    return db.session.scalar(
        select(TotpAuthenticator).where(TotpAuthenticator.user_id == user.id))


def confirmed_authenticator(user: User) -> Optional[TotpAuthenticator]:
    """The app this client signs in with, if it can still check codes. One whose secret was
    kept under another SECRET_KEY (the key was changed) can check none: its sign-ins go by
    email until the client sets the app up again, rather than asking for codes that would all
    be "not right" and count towards the lock."""
    found = authenticator_of(user)
    if found is None or found.confirmed_at is None:
        return None
    return found if secret_of(found) is not None else None


def secret_of(found: TotpAuthenticator) -> Optional[str]:
    """The app's secret, or None if it cannot be read (SECRET_KEY changed since it was kept)."""
    try:
        return _fernet().decrypt(found.secret_encrypted.encode()).decode()
    except (InvalidToken, ValueError):
        return None


# --- setting it up --------------------------------------------------------------------

def begin_setup(user: User) -> TotpAuthenticator:
    """A new secret waiting for its first code; replaces an unconfirmed one, never a live one."""
    found = authenticator_of(user)
    if found is not None and found.confirmed_at is not None:
        return found
    secret = pyotp.random_base32()
    if found is None:
        found = TotpAuthenticator(user_id=user.id)
        db.session.add(found)
    found.secret_encrypted = _fernet().encrypt(secret.encode()).decode()
    found.created_at = clock.now()
    found.last_step = None
    db.session.flush()
    audit.record("totp_setup_started", user_id=user.id)
    return found


def provisioning_uri(user: User, secret: str) -> str:
    """The otpauth:// address the QR code holds: the app's label and the secret."""
    return pyotp.TOTP(secret, digits=DIGITS, interval=STEP_SECONDS).provisioning_uri(
        name=user.email, issuer_name=current_app.config["PORTAL_NAME"])


def qr_data_uri(uri: str) -> str:
    """The QR code as an SVG data: URI for an <img> (the CSP allows data: images).

    segno loads here, with a worker's first setup page, not in every worker (bench/memory.py)."""
    import segno

    return segno.make(uri, error="m").svg_data_uri(scale=5, border=2, dark="#000", light="#fff")


def grouped(secret: str) -> str:
    """"ABCD EFGH ...": the secret in fours, easier to type into an app by hand."""
    return " ".join(secret[i:i + 4] for i in range(0, len(secret), 4))


def setup_waiting(user: User) -> Optional[TotpAuthenticator]:
    """A setup started less than SETUP_LIFETIME ago and not yet confirmed: its secret may be
    shown. One left longer is not shown again, so a session left open cannot read it later."""
    found = authenticator_of(user)
    if found is None or found.confirmed_at is not None:
        return None
    return found if clock.now() < found.created_at + SETUP_LIFETIME else None


def confirm_setup(user: User, code: str) -> "TotpCheck":
    """The first code from the app: when right, the app becomes how this client signs in."""
    found = authenticator_of(user)
    if found is None or found.confirmed_at is not None:
        return TotpCheck(WRONG)
    if setup_waiting(user) is None:
        return TotpCheck(SETUP_EXPIRED)
    check = check_code(found, code)
    audit.record("totp_setup_code", user_id=user.id, outcome=check.outcome,
                 detail={"steps_off": check.steps_off} if check.steps_off else {})
    if check.outcome == ACCEPTED:
        found.confirmed_at = clock.now()
        user.channel = "totp"
        audit.record("totp_confirmed", user_id=user.id, outcome="ok")
    return check


def remove(user: User) -> bool:
    """Stop using the app: its secret goes, and codes come by email again."""
    found = authenticator_of(user)
    if found is None:
        return False
    was_live = found.confirmed_at is not None
    db.session.delete(found)
    if user.channel == "totp":
        user.channel = "email"
    audit.record("totp_removed", user_id=user.id, detail={"was_confirmed": was_live})
    if was_live:
        _end_sign_ins_waiting_for_the_app(user)
    return was_live


def _end_sign_ins_waiting_for_the_app(user: User) -> None:
    """A sign-in waiting for an app code could never be finished now: every code the phone
    still shows would be "not right", counted towards the lock. Ended, its code page says
    so and signing in again sends a code by email."""
    # codes imports this module (it judges app codes with it).
    from services.signin import codes

    codes.end_pending_sign_ins(user, by="totp_removed", channel="totp")


# --- checking a code ------------------------------------------------------------------

@dataclass
class TotpCheck:
    outcome: str
    step: Optional[int] = None
    # For a wrong code that an app with a wrong clock would show: how many steps off (+ ahead).
    steps_off: int = 0


def check_code(found: TotpAuthenticator, code: str) -> TotpCheck:
    """Judge a 6-digit code against the app's secret now; a right code uses up its step."""
    secret = secret_of(found)
    if secret is None:  # kept under another SECRET_KEY: no code can be right
        return TotpCheck(WRONG)
    totp = pyotp.TOTP(secret, digits=DIGITS, interval=STEP_SECONDS)
    now_step = step_at(clock.now())
    # Newest first, so a code typed just as it changed is matched to its own step.
    for offset in (0, -1, 1)[: 2 * WINDOW + 1]:
        step = now_step + offset
        if strings_equal(totp.generate_otp(step), code):
            if found.last_step is not None and step <= found.last_step:
                return TotpCheck(REPLAYED, step)
            found.last_step = step
            found.last_used_at = clock.now()
            return TotpCheck(ACCEPTED, step)
    for distance in range(WINDOW + 1, DRIFT_LOOKAROUND + 1):
        for offset in (-distance, distance):
            if strings_equal(totp.generate_otp(now_step + offset), code):
                return TotpCheck(WRONG, steps_off=offset)
    return TotpCheck(WRONG)


def drift_hint_at_sign_in(steps_off: int) -> Optional[str]:
    """What the code page may say of a wrong code that an app with a wrong clock would show.
    Only a clock that is behind: a past step's code never works again. A future step's code
    will work once its time comes, so naming it would tell someone guessing (who has the
    password) which code to type again a few minutes later; the support console still
    sees how far off it was."""
    return drift_words(steps_off) if steps_off < 0 else None


def drift_words(steps_off: int) -> str:
    """"about 2 minutes behind" for a phone whose clock is this many steps off."""
    seconds = abs(steps_off) * STEP_SECONDS
    minutes = round(seconds / 60)
    amount = f"about {minutes} minute{'s' if minutes != 1 else ''}" if minutes else \
        f"about {seconds} seconds"
    return f"{amount} {'behind' if steps_off < 0 else 'ahead'}"
