"""Flask extensions, created here and bound to the app in `create_app`."""

from flask_limiter import Limiter
from flask import request
from flask_login import LoginManager
from flask_mail import Mail
from flask_sqlalchemy import SQLAlchemy
from flask_wtf.csrf import CSRFProtect
from sqlalchemy import MetaData
from sqlalchemy.orm import DeclarativeBase

# Named constraints keep Alembic migrations the same on SQLite and PostgreSQL.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


db = SQLAlchemy(model_class=Base)
login_manager = LoginManager()
csrf = CSRFProtect()
mail = Mail()
# A Redis (RATELIMIT_STORAGE_URI) that stops answering must not take the sign-in page down:
# each process counts in memory until it is back; lockout and the caps on codes sent live in
# the database and hold regardless.
def client_network() -> str:
    """The client's address for a request limit: IPv4 as it is, IPv6 by its /64."""
    from services.addresses import limit_key

    return limit_key(request.remote_addr)


limiter = Limiter(key_func=client_network, default_limits=[], headers_enabled=True,
                  in_memory_fallback_enabled=True, swallow_errors=True)
