"""The peer: Flask-Security-Too's email two-factor sign-in, as the bench runs it beside ClientGate.

    gunicorn 'bench.peer_fst:create_app()'      # same workers, same bind, same machine

A minimal app as Flask-Security-Too's own quick start builds it: its SQLAlchemy models
(fsqla_v3), its login and two-factor views and templates, CSRF on (Flask-WTF), two-factor
required with email the only method, and the code sent by Flask-Mail to the bench's SMTP
server from inside the password post (Flask-Security-Too has no outbox). The password hash is
argon2id with ClientGate's parameters (argon2-cffi's RFC 9106 low-memory profile: 3 passes,
64 MiB, 4 lanes), through the same argon2-cffi. SQLite gets the same WAL and busy-timeout
settings ClientGate uses, so both have the same database under them.

Settings from the environment: DATABASE_URL, SECRET_KEY, MAIL_SERVER, MAIL_PORT.
"""

from __future__ import annotations

import os
from typing import Sequence

from argon2 import PasswordHasher
from flask import Flask, render_template_string
from flask_mail import Mail
from flask_security import Security, SQLAlchemyUserDatastore, auth_required, current_user
from flask_security.models import fsqla_v3 as fsqla
from flask_sqlalchemy import SQLAlchemy
from flask_wtf import CSRFProtect
from sqlalchemy import event, insert

db = SQLAlchemy()
fsqla.FsModels.set_db_info(db)


class Role(db.Model, fsqla.FsRoleMixin):
    pass


class User(db.Model, fsqla.FsUserMixin):
    pass


class WebAuthn(db.Model, fsqla.FsWebAuthnMixin):
    pass


# ClientGate's hash (services/signin/passwords.py): PasswordHasher() with argon2-cffi's defaults.
_ARGON2 = PasswordHasher()
ARGON2_OPTIONS = {
    "argon2__type": "ID",
    "argon2__time_cost": _ARGON2.time_cost,
    "argon2__memory_cost": _ARGON2.memory_cost,
    "argon2__parallelism": _ARGON2.parallelism,
    "argon2__salt_size": 16,
    "argon2__digest_size": _ARGON2.hash_len,
}

PORTAL = """<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Portal</title>
</head><body><h1>Welcome, {{ current_user.email }}</h1>
<form method="post" action="{{ url_for_security('logout') }}">
<input type="hidden" name="csrf_token" value="{{ csrf_token() }}">
<button type="submit">Log out</button></form></body></html>"""


def _sqlite_pragmas(engine) -> None:
    @event.listens_for(engine, "connect")
    def pragmas(dbapi_connection, _record) -> None:
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA busy_timeout = 15000")
        cursor.execute("PRAGMA journal_mode = WAL")
        cursor.execute("PRAGMA synchronous = NORMAL")
        cursor.close()


def create_app(database_url: str | None = None, secret_key: str | None = None) -> Flask:
    """The peer app; the bench's own process passes what gunicorn's get from the environment
    (the password hash is keyed with the secret, so both must have the same)."""
    url = database_url or os.environ["DATABASE_URL"]
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url[len("postgresql://"):]
    secret = secret_key or os.environ["SECRET_KEY"]
    app = Flask(__name__)
    app.config.update(
        SECRET_KEY=secret,
        SQLALCHEMY_DATABASE_URI=url,
        SQLALCHEMY_ENGINE_OPTIONS={"pool_pre_ping": True},
        SESSION_COOKIE_SECURE=False,  # plain HTTP on 127.0.0.1, as ClientGate in the bench
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        WTF_CSRF_ENABLED=True,
        WTF_CSRF_TIME_LIMIT=None,
        MAIL_SERVER=os.environ.get("MAIL_SERVER", "127.0.0.1"),
        MAIL_PORT=int(os.environ.get("MAIL_PORT", "25")),
        MAIL_DEFAULT_SENDER="Portal <no-reply@localhost>",
        SECURITY_PASSWORD_SALT=secret[:24],
        SECURITY_PASSWORD_HASH="argon2",
        SECURITY_PASSWORD_HASH_PASSLIB_OPTIONS=ARGON2_OPTIONS,
        SECURITY_TOTP_SECRETS={"1": secret},
        SECURITY_TOTP_ISSUER="Peer",
        SECURITY_TWO_FACTOR=True,
        SECURITY_TWO_FACTOR_REQUIRED=True,
        SECURITY_TWO_FACTOR_ENABLED_METHODS=["email"],
        SECURITY_TWO_FACTOR_ALWAYS_VALIDATE=True,
        SECURITY_EMAIL_VALIDATOR_ARGS={"check_deliverability": False},
        SECURITY_EMAIL_SENDER="no-reply@localhost",
        SECURITY_POST_LOGIN_VIEW="/portal",
        SECURITY_TRACKABLE=False,
    )
    db.init_app(app)
    CSRFProtect(app)
    Mail(app)
    app.security = Security(app, SQLAlchemyUserDatastore(db, User, Role))
    if url.startswith("sqlite"):
        with app.app_context():
            _sqlite_pragmas(db.engine)

    @app.route("/portal")
    @auth_required()
    def portal():
        return render_template_string(PORTAL, current_user=current_user)

    return app


def add_users(app: Flask, emails: Sequence[str], password: str) -> str:
    """Make the tables and these accounts, each with email two-factor set up, one hash for all;
    returns the hash's parameters ("$argon2id$v=19$m=65536,t=3,p=4")."""
    import uuid

    from flask_security.utils import hash_password

    with app.app_context():
        db.create_all()
        stored = hash_password(password)
        totp = app.security._totp_factory
        rows = [{
            "email": email, "password": stored, "active": True,
            "fs_uniquifier": uuid.uuid4().hex, "tf_primary_method": "email",
            "tf_totp_secret": totp.generate_totp_secret(),
        } for email in emails]
        for start in range(0, len(rows), 1000):
            db.session.execute(insert(User), rows[start:start + 1000])
        db.session.commit()
        db.session.remove()
        db.engine.dispose()
    return "$".join(stored.split("$")[:4])


def version() -> str:
    from importlib.metadata import version as installed

    return installed("Flask-Security-Too")
