"""Flask extensions, created here and bound to the app in `create_app`."""

import time

from flask_limiter import Limiter
from flask import request
from flask_login import LoginManager
from flask_mail import Mail
from flask_sqlalchemy import SQLAlchemy
from flask_wtf.csrf import CSRFProtect
from limits.storage import MemoryStorage
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


class QuietMemoryStorage(MemoryStorage):
    """limits' "memory://" storage (each process counts on its own), without a thread a hit.

    limits 5.8's MemoryStorage starts a `threading.Timer` on a hit whenever the last one has
    run, and that timer walks every key 10 ms later: 1.4-1.9 threads and about 2 ms of CPU a
    sign-in, in one process signing clients in one after another. The walk only frees
    memory: a count that has run out is dropped when it is read, and a moving window counts
    only its live entries. So here the walk runs in the request that comes `sweep_every`
    seconds after the last walk, and no thread is started.

    Its STORAGE_SCHEME puts it in place of limits' own class for "memory://" URIs (the limits
    registry keeps the last class named for a scheme). `__schedule_expiry` is the hook every
    hit calls: requirements.txt pins limits, and tests/security/test_limit_storage.py checks
    that the pinned version still calls it.
    """

    STORAGE_SCHEME = ["memory"]
    sweep_every = 30.0  # seconds
    clock = staticmethod(time.monotonic)

    def __init__(self, uri=None, wrap_exceptions=False, **options):
        super().__init__(uri, wrap_exceptions=wrap_exceptions, **options)
        self.timer.cancel()  # the one timer the parent starts, before it has run
        self._next_sweep = self.clock() + self.sweep_every

    def _MemoryStorage__schedule_expiry(self) -> None:
        now = self.clock()
        if now >= self._next_sweep:
            self._next_sweep = now + self.sweep_every
            self._MemoryStorage__expire_events()


def client_network() -> str:
    """The client's address for a request limit: IPv4 as it is, IPv6 by its /64."""
    from services.addresses import limit_key

    return limit_key(request.remote_addr)


# A Redis (RATELIMIT_STORAGE_URI) that stops answering must not take the sign-in page down:
# each process counts in memory until it is back; lockout and the caps on codes sent live in
# the database and hold regardless.
limiter = Limiter(key_func=client_network, default_limits=[], headers_enabled=True,
                  in_memory_fallback_enabled=True, swallow_errors=True)
