"""The same install started again with another SECRET_KEY, on the same database: what an
operator's restart after changing the key (a leaked key replaced, a restore with the wrong
env file) leaves every browser, message and stored secret to meet."""

from __future__ import annotations

from contextlib import contextmanager

from app import create_app
from services import delivery
from tests.conftest import Browser, _pooled, let_go, make_config

NEW_SECRET_KEY = "a-new-secret-key-after-the-old-one-leaked-0123456789"


@contextmanager
def restarted_with_new_key(tmp_path, smtp):
    """The app again, as after a restart with a new SECRET_KEY: its own processes' caches
    (derived keys, the fast path's serializer, signing keys read) start empty, its tables are
    the old app's."""
    application = create_app(_pooled(make_config(tmp_path, smtp, SECRET_KEY=NEW_SECRET_KEY)))
    try:
        yield application
    finally:
        let_go(application)


def same_browser(old: Browser, application) -> Browser:
    """The browser that used the old app, with the cookies it kept, now talking to this one."""
    moved = Browser(application)
    moved.client.environ_base.update(old.client.environ_base)
    moved.client._cookies.update(old.client._cookies)
    return moved


def run_dispatcher(application) -> int:
    with application.app_context():
        return delivery.run_once()
