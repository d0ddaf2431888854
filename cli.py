"""Admin command line: `flask --app app users ...` and `flask --app app demo`."""

from __future__ import annotations

import sys

import click
from flask import Flask, current_app
from flask.cli import AppGroup, ScriptInfo, with_appcontext
from sqlalchemy import func, select
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError

from db_setup import SQLITE_BUSY_TIMEOUT_MS
from extensions import db
from models import CLI_CHANNELS, ROLES, User
from services import audit, clock, emails, phones
from services.signin import limits, passwords, sessions
from services.accounts import invitations, lifecycle, policy


# SQLSTATEs of a table or column that is not there (PostgreSQL): an un-upgraded schema.
_MISSING_SCHEMA = {"42P01", "42703"}


def database_problem(error: DBAPIError, database_url: str | None) -> str:
    """One line for an operator about a database error: what is wrong and what to do."""
    reason = str(getattr(error, "orig", None) or error).strip().splitlines()[0]
    try:
        where = f" at {make_url(database_url).render_as_string(hide_password=True)}"
    except Exception:  # the URL itself is broken: say nothing of it, show no password
        where = ""
    sqlstate = getattr(getattr(error, "orig", None), "sqlstate", None)
    if sqlstate in _MISSING_SCHEMA or reason.startswith(("no such table", "no such column")):
        return (f"The database{where} has no ClientGate tables yet, or those of an older "
                f"release ({reason}). Run `flask --app app db upgrade` first, then this "
                "command again.")
    if reason.startswith("database is locked"):  # SQLite, held past the busy timeout
        return (f"The database{where} is busy: another process has held it for "
                f"{SQLITE_BUSY_TIMEOUT_MS // 1000} seconds "
                f"({reason}). Try again in a minute; if it stays busy, look for a stuck "
                "`sqlite3` session or backup (`fuser` on the file names it).")
    if isinstance(error, (OperationalError, InterfaceError)):
        if (database_url or "").startswith("sqlite"):
            check = ("that the SQLite file's folder exists and the clientgate user may read "
                     "and write it")
        else:
            check = "that PostgreSQL is running (`systemctl status postgresql`)"
        return f"Cannot reach the database{where}: {reason}. Check DATABASE_URL, and {check}."
    return f"The database{where} refused this: {reason}"


def _explained(ctx: click.Context, invoke):
    """Run `invoke`; a database error becomes one line saying what to do (exit code 1)."""
    try:
        return invoke(ctx)
    except DBAPIError as error:
        info = ctx.find_object(ScriptInfo)
        url = info.load_app().config.get("SQLALCHEMY_DATABASE_URI") if info else None
        raise click.ClickException(database_problem(error, url)) from None


def _check_text(ctx: click.Context) -> None:
    """Arguments that are not UTF-8 (a terminal set to Latin-1, a name pasted from a
    Windows-1252 file) reach Python with lone surrogates, which no database or email takes."""
    for param in ctx.command.params:
        value = ctx.params.get(param.name)
        for text in value if isinstance(value, (tuple, list)) else (value,):
            if not isinstance(text, str):
                continue
            try:
                text.encode("utf-8")
            except UnicodeEncodeError:
                raise click.UsageError(
                    f"{param.get_error_hint(ctx)} is not UTF-8 text. Set the terminal to UTF-8 "
                    "(`locale` should say UTF-8) and type it again.", ctx) from None


class AdminCommand(click.Command):
    """A command of the admin line: an argument that is not UTF-8 text, or a database error,
    is one line saying what to do (exit codes 2 and 1), not a traceback."""

    def invoke(self, ctx: click.Context):
        _check_text(ctx)
        return _explained(ctx, super().invoke)


class _ExplainedMigrations(click.Group):
    """Flask-Migrate's `db` group, whose commands' database errors are explained likewise."""

    def invoke(self, ctx: click.Context):
        return _explained(ctx, super().invoke)


def _explain_migrations(app: Flask) -> None:
    """`flask --app app db upgrade` on a stopped PostgreSQL or a missing SQLite folder printed
    a traceback: the same group, with the same commands, now says what to check."""
    group = app.cli.commands.get("db")
    if group is None or not isinstance(group, click.Group):
        return  # a web worker: Flask-Migrate is not loaded (app.register_migrations)
    app.cli.add_command(_ExplainedMigrations(
        name=group.name, commands=group.commands, callback=group.callback, params=group.params,
        help=group.help, short_help=group.short_help))


class AdminGroup(AppGroup):
    """An AppGroup whose commands are AdminCommands."""

    command_class = AdminCommand


users = AdminGroup("users", help="Add and manage users.")

def _find(email: str) -> User:
    """The account EMAIL names: the one stored in exactly the spelling typed, or else the one
    that signs in with it (its canonical spelling). Matching any spelling by lower() could
    pick an old spelling the upgrade to one spelling left beside the account that signs in
    (migration f3a8c1d07e52): `users deactivate` would then leave the live account on."""
    user = db.session.scalar(select(User).where(User.email == email.strip())) \
        or db.session.scalar(select(User).where(User.email == emails.canonical(email)))
    if user is None:
        raise click.UsageError(f"No user has the email address {email}.")
    return user


def _read_password(from_stdin: bool, email: str) -> str:
    """The new password, held to the same rules as the browser's (services.accounts.policy)."""
    if from_stdin:
        try:
            password = sys.stdin.readline().rstrip("\r\n")
            password.encode()  # bytes read under surrogateescape cannot be hashed either
        except UnicodeError:
            raise click.UsageError(
                "The password on standard input is not UTF-8 text. Type it at the prompt "
                "instead (leave out --password-stdin), or pass it as UTF-8.") from None
    else:
        try:
            password = click.prompt("Password", hide_input=True, confirmation_prompt=True)
        except click.Abort:
            if sys.stdin.isatty():
                raise  # Ctrl-C at the prompt: "Aborted!"
            # Standard input ended: a script, or ssh without a terminal.
            click.echo()  # after the "Password: " prompt
            raise click.UsageError(
                "No password was typed: there is no terminal to type it at. Run the command "
                "in a terminal, or pass the password on standard input with "
                "--password-stdin.") from None
    problem = policy.problem(password, email=email,
                             firm=current_app.config["PORTAL_NAME"])
    if problem:
        raise click.UsageError(problem)
    return password


@users.command("add")
@click.argument("email")
@click.option("--role", type=click.Choice(ROLES), default="client", show_default=True)
@click.option("--phone", help="UK mobile number; counts as verified by the firm.")
@click.option("--channel", type=click.Choice(CLI_CHANNELS), default="email", show_default=True)
@click.option("--password-stdin", is_flag=True, help="Read the password from standard input.")
@with_appcontext
def add_user(email: str, role: str, phone: str | None, channel: str, password_stdin: bool):
    """Add a user."""
    email = emails.canonical(email)
    problem = emails.email_problem(email)  # the sign-in form's rule, so the account can sign in
    if problem is not None:
        raise click.UsageError(f"{email!r} is not an email address the sign-in form accepts: "
                               f"{problem}")
    if db.session.scalar(select(User.id).where(func.lower(User.email) == email)):
        raise click.UsageError(f"A user with the email address {email} already exists.")
    e164 = None
    if phone:
        check = phones.check_uk_mobile(phone)
        if not check.ok:
            raise click.UsageError(f"--phone {phone!r}: {check.problem} SMS codes work only "
                                   "for UK mobiles (they start 07); leave out --phone for codes "
                                   "by email.")
        e164 = check.e164
    if channel == "sms" and e164 is None:
        raise click.UsageError("--channel sms needs --phone with a UK mobile number.")
    password = _read_password(password_stdin, email)
    user = User(
        email=email, password_hash=passwords.hash_password(password), role=role,
        channel=channel, phone=e164, phone_verified_at=clock.now() if e164 else None,
        created_at=clock.now(), password_changed_at=clock.now(),
    )
    db.session.add(user)
    db.session.flush()
    audit.record("user_added", user_id=user.id, detail={"role": role, "by": "cli"})
    db.session.commit()
    click.echo(f"Added {email} ({role}, codes by {channel}).")


@users.command("list")
@with_appcontext
def list_users():
    """List every user."""
    rows = db.session.scalars(select(User).order_by(User.email)).all()
    if not rows:
        click.echo("No users yet. Add one with: flask --app app users add EMAIL")
        return
    for user in rows:
        locked = " locked" if user.is_locked(clock.now()) else ""
        locked += "" if user.is_active else " off"
        locked += "" if user.has_password else " invited"
        phone = f" {user.phone}" if user.phone else ""
        click.echo(f"{user.id:>5}  {user.email:<40} {user.role:<8} {user.channel:<5}{phone}{locked}")


@users.command("set-password")
@click.argument("email")
@click.option("--password-stdin", is_flag=True, help="Read the password from standard input.")
@with_appcontext
def set_password(email: str, password_stdin: bool):
    """Set a user's password and end their sessions."""
    user = _find(email)
    lifecycle.set_password(user, _read_password(password_stdin, user.email), by="cli")
    db.session.commit()
    click.echo(f"Password changed for {user.email}; their sessions have ended.")


@users.command("set-role")
@click.argument("email")
@click.argument("role", type=click.Choice(ROLES))
@with_appcontext
def set_role(email: str, role: str):
    """Change a user's role and end their sessions."""
    user = _find(email)
    old = user.role
    user.role = role
    sessions.revoke_all_for(user.id)
    audit.record("role_set", user_id=user.id, detail={"from": old, "to": role, "by": "cli"})
    db.session.commit()
    click.echo(f"{user.email} is now {role} (was {old}).")


@users.command("unlock")
@click.argument("email")
@with_appcontext
def unlock(email: str):
    """Lift an account lockout."""
    user = _find(email)
    was_locked = limits.unlock_account(user)
    db.session.commit()
    click.echo(f"{user.email} is unlocked." if was_locked
               else f"{user.email} is unlocked (it was not locked; its failure count restarts).")


@users.command("invite")
@click.argument("email")
@click.option("--name", default="", help="The client's name, for the invitation's greeting.")
@click.option("--phone", default="", help="UK mobile number; counts as verified by the firm.")
@click.option("--channel", type=click.Choice(CLI_CHANNELS), default="email", show_default=True)
@click.option("--role", type=click.Choice(ROLES), default="client", show_default=True)
@with_appcontext
def invite(email: str, name: str, phone: str, channel: str, role: str):
    """Invite someone by email: they choose their own password from the link (7 days)."""
    candidate = invitations.check(invitations.Candidate(
        email=email, name=name, phone=phone, channel=channel, role=role))
    if not candidate.ok:
        raise click.UsageError(" ".join(candidate.problems))
    invitations.invite(candidate, actor=None, by="cli")
    db.session.commit()
    click.echo(f"Invited {candidate.email} ({role}, codes by {channel}). The invitation email "
               "is queued; its link works for 7 days.")


@users.command("recover")
@click.argument("email")
@click.option("--email", "new_email", default=None,
              help="The owner's own address, to sign in with from now on (if someone else "
                   "changed it).")
@with_appcontext
def recover(email: str, new_email: str | None):
    """Give an account back after someone else got into it (check who is asking first)."""
    user = _find(email)
    if new_email is not None:
        new_email = emails.canonical(new_email)
        problem = lifecycle.owner_address_problem(user, new_email)
        if problem is not None:
            raise click.UsageError(f"--email {new_email!r}: {problem}")
    try:
        done = lifecycle.recover(user, new_email, by="cli")
    except lifecycle.AddressTaken as taken:  # another account took it since the check above
        db.session.rollback()
        raise click.UsageError(f"--email {new_email!r}: {taken}") from None
    db.session.commit()
    click.echo(done.summary(user))


@users.command("deactivate")
@click.argument("email")
@with_appcontext
def deactivate(email: str):
    """Switch an account off: no sign-in, no codes; its sessions end."""
    user = _find(email)
    changed = lifecycle.deactivate(user, None, by="cli")
    db.session.commit()
    click.echo(f"{user.email} is switched off; its sessions have ended." if changed
               else f"{user.email} was already switched off.")


@users.command("reactivate")
@click.argument("email")
@with_appcontext
def reactivate(email: str):
    """Switch an account on again."""
    user = _find(email)
    changed = lifecycle.reactivate(user, None, by="cli")
    db.session.commit()
    click.echo(f"{user.email} is switched on again." if changed
               else f"{user.email} was already switched on.")


DEMO_ACCOUNTS = (
    ("client@example.com", "client", "email", None),
    ("sms-client@example.com", "client", "sms", "+447400123456"),
    ("support@example.com", "support", "email", None),
    ("admin@example.com", "admin", "email", None),
)
DEMO_PASSWORD = "correct horse battery"


@click.command("demo", cls=AdminCommand)
@with_appcontext
def demo():
    """Add demo accounts (development), and print them with their password."""
    for email, role, channel, phone in DEMO_ACCOUNTS:
        if db.session.scalar(select(User.id).where(User.email == email)) is None:
            db.session.add(User(
                email=email, password_hash=passwords.hash_password(DEMO_PASSWORD), role=role,
                channel=channel, phone=phone, phone_verified_at=clock.now() if phone else None,
                created_at=clock.now(),
            ))
    db.session.commit()
    click.echo("Demo accounts (password for each: %r):" % DEMO_PASSWORD)
    for email, role, channel, _ in DEMO_ACCOUNTS:
        click.echo(f"  {email:<26} {role:<8} codes by {channel}")


# --- flask oidc ... : the apps that sign in through ClientGate (OpenID Connect) ------------

oidc_cli = AdminGroup("oidc", help="Apps that sign their users in through ClientGate.")


@oidc_cli.command("add-client")
@click.argument("name")
@click.option("--redirect-uri", "redirect_uris", multiple=True, required=True,
              help="Where the app receives the code; exactly as the app sends it. Repeatable.")
@click.option("--post-logout-uri", "post_logout_uris", multiple=True,
              help="Where the app may send people after logging out. Repeatable.")
@click.option("--public", is_flag=True,
              help="An app that cannot keep a secret (mobile, single-page): PKCE, no secret.")
@with_appcontext
def oidc_add_client(name: str, redirect_uris: tuple[str, ...],
                    post_logout_uris: tuple[str, ...], public: bool):
    """Register an app; prints its client_id (and client_secret, shown only this once)."""
    from services.federation import oidc

    try:
        new = oidc.add_client(name, list(redirect_uris), public=public,
                              post_logout_uris=list(post_logout_uris))
    except ValueError as error:
        raise click.UsageError(str(error)) from None
    db.session.commit()
    click.echo(f"client_id: {new.row.client_id}")
    if new.secret:
        click.echo(f"client_secret: {new.secret}")
        click.echo("Keep the secret now: only its hash is stored, it cannot be shown again.",
                   err=True)


@oidc_cli.command("list-clients")
@with_appcontext
def oidc_list_clients():
    """List the registered apps and their redirect addresses."""
    from services.federation import oidc

    rows = oidc.list_clients()
    if not rows:
        click.echo("No apps yet. Add one with: flask --app app oidc add-client NAME "
                   "--redirect-uri URI")
        return
    for row in rows:
        kind = "public" if row.is_public else "confidential"
        click.echo(f"{row.client_id}  {row.name}  ({kind})")
        for uri in row.redirect_uris:
            click.echo(f"    redirect: {uri}")
        for uri in row.post_logout_redirect_uris:
            click.echo(f"    after logout: {uri}")


@oidc_cli.command("remove-client")
@click.argument("client_id")
@with_appcontext
def oidc_remove_client(client_id: str):
    """Remove an app: its codes and access tokens stop working at once."""
    from services.federation import oidc

    row = oidc.find_client(client_id)
    if row is None:
        raise click.UsageError(f"No app has the client_id {client_id}.")
    name = row.name
    oidc.remove_client(row)
    db.session.commit()
    click.echo(f"Removed {name} ({client_id}).")


@oidc_cli.command("rotate-key")
@click.option("--replace-unreadable", is_flag=True,
              help="SECRET_KEY changed and the old key cannot be read: replace it anyway.")
@with_appcontext
def oidc_rotate_key(replace_unreadable: bool):
    """Make a new id_token signing key; the old one stays published until its tokens expire."""
    from services.federation import oidc

    try:
        row, dropped = oidc.rotate_key(replace_unreadable=replace_unreadable)
    except RuntimeError as error:
        raise click.ClickException(str(error)) from None
    db.session.commit()
    hours = oidc.ID_TOKEN_LIFETIME.total_seconds() / 3600
    click.echo(f"New signing key {row.kid} signs from now on. The previous key stays "
               f"published for {hours:g} hour(s), until the tokens it signed have expired.")
    if dropped:
        click.echo(f"No longer published: {', '.join(dropped)}.")


def register(app: Flask) -> None:
    from services.data_copy import db_copy
    from services.support.retention import prune_command

    _explain_migrations(app)
    app.cli.add_command(users)
    if app.config["ENV_NAME"] != "production":
        # Demo accounts share one known password: never on a production install (issue 11).
        app.cli.add_command(demo)
    app.cli.add_command(prune_command)
    app.cli.add_command(db_copy)
    app.cli.add_command(oidc_cli)
