"""Forgetting old sign-in history: `flask --app app prune` deletes what is older than N days.

Deletes in small batches, each its own transaction, so that pruning months of a busy portal
never holds a long lock on SQLite or PostgreSQL while clients are signing in. Every batch is
found through an index (created_at, sign_in_id or the primary key), and the columns that
point at deleted rows are indexed too, so the database's own ON DELETE work stays cheap.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

import click
from flask import current_app
from flask.cli import with_appcontext
from sqlalchemy import delete, or_, select

from cli import AdminCommand
from config import RETENTION_MAX_DAYS
from extensions import db
from models import (
    AccountToken, AuthSession, Delivery, DispatcherBeat, Event, OAuthCode, OAuthToken, PhoneProof,
    SignIn, TrustedDevice, WebAuthnChallenge,
)
from services import clock
from services.signin.limits import LOCK_MEMORY

BATCH = 2000
FINISHED_DELIVERIES = ("sent", "delivered", "failed", "cancelled")
# The fewest days kept: account locks grow with the locks of the last LOCK_MEMORY, read from
# the audit trail, so pruning sooner would let a guesser meet the first, shortest lock forever.
MIN_DAYS = LOCK_MEMORY.days


@dataclass
class PruneResult:
    """How many rows of each kind were deleted, and the cut-off time."""

    cutoff: datetime
    sign_ins: int = 0
    events: int = 0
    deliveries: int = 0
    sessions: int = 0
    phone_proofs: int = 0


def _delete_ids(model, ids: list[int]) -> int:
    """Delete these rows; returns how many this call deleted. Another server's prune may have
    deleted some of them since they were found, and it counts those."""
    return db.session.execute(delete(model).where(model.id.in_(ids))).rowcount or 0


def _batches_before(model, cutoff: datetime, batch: int):
    """Ids of `model`'s rows created before `cutoff`, oldest first along the created_at index,
    `batch` at a time; the caller deletes each batch before asking for the next."""
    while True:
        ids = db.session.scalars(
            select(model.id).where(model.created_at < cutoff)
            .order_by(model.created_at).limit(batch)
        ).all()
        if not ids:
            return
        yield list(ids)


def _prune_sign_ins(cutoff: datetime, batch: int, result: PruneResult) -> None:
    # A day-old sign-in is over even if still marked pending: its code lived 10 minutes.
    for ids in _batches_before(SignIn, cutoff, batch):
        # Their events and messages go with them, even the odd one newer than the cut-off.
        result.events += db.session.execute(
            delete(Event).where(Event.sign_in_id.in_(ids))).rowcount or 0
        result.deliveries += db.session.execute(
            delete(Delivery).where(Delivery.sign_in_id.in_(ids))).rowcount or 0
        result.sign_ins += _delete_ids(SignIn, ids)
        db.session.commit()


def _prune_events(cutoff: datetime, batch: int, result: PruneResult) -> None:
    for ids in _batches_before(Event, cutoff, batch):
        result.events += _delete_ids(Event, ids)
        db.session.commit()


def _prune_by_id(model, conditions, batch: int) -> int:
    """Delete rows matching `conditions`, walking the primary key once from start to end."""
    deleted, after = 0, 0
    while True:
        ids = db.session.scalars(
            select(model.id).where(model.id > after, *conditions).order_by(model.id).limit(batch)
        ).all()
        if not ids:
            return deleted
        deleted += _delete_ids(model, list(ids))
        db.session.commit()
        after = ids[-1]


def prune(days: int, *, batch: int = BATCH) -> PruneResult:
    """Delete sign-ins, events, finished messages, ended sessions and mobile number checks
    older than `days` days."""
    if days < MIN_DAYS:
        raise ValueError(f"days must be at least {MIN_DAYS}")
    cutoff = clock.now() - timedelta(days=days)
    result = PruneResult(cutoff=cutoff)
    _prune_events(cutoff, batch, result)
    _prune_sign_ins(cutoff, batch, result)
    # Messages of no sign-in (notices, number proofs), found through sign_in_id IS NULL.
    result.deliveries += _prune_by_id(
        Delivery, (Delivery.sign_in_id.is_(None), Delivery.created_at < cutoff,
                   Delivery.status.in_(FINISHED_DELIVERIES)), batch)
    # Sessions logged out, or idle since before the cut-off (long dead by the idle timeout).
    result.sessions = _prune_by_id(
        AuthSession, (or_(AuthSession.revoked_at < cutoff, AuthSession.last_seen_at < cutoff),),
        batch)
    # Checks of a new mobile number: each lives 10 minutes and counts towards the hourly cap
    # for an hour (services/signin/phone_proofs.py); the support timeline tells them from
    # their events, which go at the same cut-off.
    result.phone_proofs = _prune_by_id(PhoneProof, (PhoneProof.created_at < cutoff,), batch)
    # OpenID Connect access tokens and codes long expired (services/federation/oidc.py).
    _prune_by_id(OAuthToken, (OAuthToken.expires_at < cutoff,), batch)
    _prune_by_id(OAuthCode, (OAuthCode.expires_at < cutoff,), batch)
    # Invitation, reset and email links long expired (services/accounts/tokens.py).
    _prune_by_id(AccountToken, (AccountToken.expires_at < cutoff,), batch)
    # Trusted-device marks forgotten or run out, and passkey challenges nobody answered.
    _prune_by_id(TrustedDevice, (or_(TrustedDevice.ended_at < cutoff,
                                     TrustedDevice.expires_at < cutoff),), batch)
    _prune_by_id(WebAuthnChallenge, (WebAuthnChallenge.expires_at < cutoff,), batch)
    # Heartbeats of worker processes long gone (each gunicorn restart adds one).
    db.session.execute(delete(DispatcherBeat).where(DispatcherBeat.beat_at < cutoff))
    db.session.commit()
    return result


@click.command("prune", cls=AdminCommand)
@click.option("--days", type=click.IntRange(min=MIN_DAYS, max=RETENTION_MAX_DAYS), default=None,
              help=f"Keep this many days of history, from {MIN_DAYS} to {RETENTION_MAX_DAYS} "
                   "(default: RETENTION_DAYS, 90).")
@with_appcontext
def prune_command(days: int | None) -> None:
    """Delete sign-ins, events, finished messages, ended sessions and number checks older
    than N days."""
    days = days or current_app.config["RETENTION_DAYS"]
    if days < MIN_DAYS:
        raise click.UsageError(f"RETENTION_DAYS must be at least {MIN_DAYS} (account locks "
                               f"remember the last {MIN_DAYS} days), not {days}.")
    if days > RETENTION_MAX_DAYS:
        raise click.UsageError(f"RETENTION_DAYS must be at most {RETENTION_MAX_DAYS} (a hundred "
                               f"years), not {days}.")
    result = prune(days)
    cutoff = clock.local(result.cutoff, current_app.config["PORTAL_TIMEZONE"])
    click.echo(
        f"Deleted what was older than {days} days (before {cutoff:%-d %b %Y, %H:%M}): "
        f"{result.sign_ins} sign-ins, {result.events} events, {result.deliveries} messages, "
        f"{result.sessions} ended sessions, {result.phone_proofs} mobile number checks."
    )
