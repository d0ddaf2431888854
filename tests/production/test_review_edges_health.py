"""Review of /healthz's edges: who learns what, and what the operator learns when it fails."""

from __future__ import annotations

import logging

import pytest

from app import create_app
from extensions import db
from tests.conftest import make_config

FAR = {"REMOTE_ADDR": "203.0.113.9"}


def test_a_database_that_does_not_answer_is_logged_for_the_operator(tmp_path, caplog):
    """The 503 says only "unreachable" (to anyone); the operator its monitor wakes found
    nothing in the log about why."""
    caplog.set_level(logging.WARNING)
    app = create_app(make_config(
        tmp_path, SQLALCHEMY_DATABASE_URI=f"sqlite:///{tmp_path}/no-such-dir/x.db"))
    try:
        response = app.test_client().get("/healthz", environ_base=FAR)
        assert response.status_code == 503
        assert response.get_json() == {"status": "error", "database": "unreachable"}
        assert response.headers["Cache-Control"] == "no-store"
        assert "healthz: the database did not answer (OperationalError" in caplog.text
        assert "unable to open database file" in caplog.text
    finally:
        with app.app_context():
            db.engine.dispose()


@pytest.mark.parametrize("authorization", [
    None, "Bearer wrong-token", "Bearer the-health-token ", "bearer the-health-token",
    "Bearer the-health-toke", "Basic the-health-token",
])
def test_only_the_exact_token_shows_the_details_from_elsewhere(app, authorization):
    app.config["HEALTHZ_TOKEN"] = "the-health-token"
    headers = {"Authorization": authorization} if authorization else {}
    response = app.test_client().get("/healthz", environ_base=FAR, headers=headers)
    assert response.status_code == 200 and response.get_json() == {"status": "ok"}
    assert response.headers["Cache-Control"] == "no-store"
    shown = app.test_client().get("/healthz", environ_base=FAR,
                                  headers={"Authorization": "Bearer the-health-token"})
    assert "dispatcher" in shown.get_json()
