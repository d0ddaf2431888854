"""A Redis that stops answering (SIGSTOP, a machine gone from the network) held each limited
request for the Redis client's default 5 s before the worker fell back to counting in memory,
and again at every check whether it was back. The limiter's client now gives up after half a
second."""

from __future__ import annotations

from app import create_app
from extensions import limiter
from tests.conftest import Browser, add_user, make_config, reset_schema


def test_the_limiters_redis_client_gives_up_after_half_a_second(tmp_path, redis_server):
    app = create_app(make_config(tmp_path, RATELIMIT_ENABLED=True,
                                 RATELIMIT_STORAGE_URI=redis_server.url))
    with app.app_context():
        pool = limiter._storage.storage.connection_pool
    assert pool.connection_kwargs["socket_timeout"] == 0.5
    assert pool.connection_kwargs["socket_connect_timeout"] == 0.5


def test_with_redis_paused_the_login_page_still_answers(tmp_path, redis_server):
    app = create_app(make_config(tmp_path, RATELIMIT_ENABLED=True,
                                 RATELIMIT_STORAGE_URI=redis_server.url))
    reset_schema(app)
    add_user(app)
    with redis_server.paused():
        answer = Browser(app).log_in(password="not the password")
    assert answer.status_code == 200  # the form again, with its message: counted in memory
