"""/healthz tells the operator where the request limits are counted and whether Redis answers.
A Redis that stopped answering, or a RATELIMIT_STORAGE_URI with a wrong password or host, left
each worker counting alone (limits as many times looser as there are workers) with only a
warning in the journal; the health answer said nothing (sixth review)."""

from __future__ import annotations

from app import create_app
from tests.conftest import free_port, make_config


def _details(app) -> dict:
    answer = app.test_client().get("/healthz")  # from 127.0.0.1: the details are shown
    assert answer.status_code == 200
    return answer.get_json()


def test_healthz_says_whether_the_limits_redis_answers(tmp_path, redis_server):
    app = create_app(make_config(tmp_path, RATELIMIT_ENABLED=True,
                                 RATELIMIT_STORAGE_URI=redis_server.url))
    assert _details(app)["limits"] == {"storage": "redis", "reachable": True}
    with redis_server.paused():
        paused = _details(app)
    assert paused["limits"] == {"storage": "redis", "reachable": False}
    assert paused["status"] == "ok"  # sign-in goes on, counted in memory: not a 503


def test_a_redis_address_nobody_listens_on_is_not_reachable(tmp_path):
    app = create_app(make_config(tmp_path, RATELIMIT_ENABLED=True,
                                 RATELIMIT_STORAGE_URI=f"redis://127.0.0.1:{free_port()}/0"))
    assert _details(app)["limits"] == {"storage": "redis", "reachable": False}


def test_limits_in_memory_say_so(tmp_path):
    app = create_app(make_config(tmp_path))
    assert _details(app)["limits"] == {"storage": "memory"}
