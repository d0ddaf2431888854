"""/healthz: 200 {"status": "ok"} while the database answers, with the dispatcher and queue."""

from __future__ import annotations

from datetime import timedelta

from app import create_app
from extensions import db
from services import clock, delivery
from tests.conftest import make_config


def health(browser) -> dict:
    response = browser.get("/healthz")
    assert response.status_code == 200
    body = response.get_json()
    assert body["status"] == "ok" and body["database"] == "ok"
    return body


def test_healthz_reports_a_dead_then_live_dispatcher(app, browser):
    assert health(browser)["dispatcher"] == {
        "alive": False, "workers": 0, "last_beat_seconds_ago": None}
    with app.app_context():
        delivery.beat("host:1")
        delivery.beat("host:2")
    live = health(browser)["dispatcher"]
    assert (live["alive"], live["workers"]) == (True, 2)
    assert 0 <= live["last_beat_seconds_ago"] < 30

    clock.advance(timedelta(seconds=31))  # three beats missed: that process is gone
    dead = health(browser)["dispatcher"]
    assert (dead["alive"], dead["workers"]) == (False, 0)
    assert dead["last_beat_seconds_ago"] >= 31
    with app.app_context():
        delivery.beat("host:2")
    assert health(browser)["dispatcher"]["workers"] == 1


def test_healthz_counts_the_messages_waiting(app, user, browser, deliver):
    assert health(browser)["queue"] == {"waiting": 0, "oldest_waiting_seconds": None}
    assert browser.log_in().status_code == 302
    clock.advance(timedelta(seconds=5))
    queue = health(browser)["queue"]
    assert queue["waiting"] == 1 and 5 <= queue["oldest_waiting_seconds"] < 60
    deliver()
    assert health(browser)["queue"] == {"waiting": 0, "oldest_waiting_seconds": None}


def test_healthz_is_503_when_the_database_does_not_answer(tmp_path):
    app = create_app(make_config(
        tmp_path, SQLALCHEMY_DATABASE_URI=f"sqlite:///{tmp_path}/no-such-dir/x.db"))
    response = app.test_client().get("/healthz")
    assert response.status_code == 503
    assert response.get_json() == {"status": "error", "database": "unreachable"}
    with app.app_context():
        db.engine.dispose()


def test_healthz_before_the_schema_exists_says_what_to_do(tmp_path):
    app = create_app(make_config(tmp_path, SQLALCHEMY_DATABASE_URI=f"sqlite:///{tmp_path}/e.db"))
    response = app.test_client().get("/healthz")
    assert response.status_code == 200  # the database answers; the tables are not there yet
    body = response.get_json()
    assert body["status"] == "ok" and body["dispatcher"]["alive"] is None
    assert "flask db upgrade" in body["detail"]
    with app.app_context():
        db.engine.dispose()
