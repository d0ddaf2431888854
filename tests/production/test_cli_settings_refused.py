"""A setting production refuses (config.SettingsError) is one line from an operator's command,
with exit code 1; a server's start (gunicorn, no command) keeps the whole traceback."""

from __future__ import annotations

import pytest

from tests.production.conftest import flask_cli


@pytest.mark.parametrize("setting, words", [
    ({"SECRET_KEY": "short"}, "SECRET_KEY is too short"),
    ({"PORTAL_URL": "portal.example.co.uk"}, "PORTAL_URL must be a full address"),
    ({"MAIL_USE_TLS": "1", "MAIL_USE_SSL": "1"}, "MAIL_USE_TLS"),
    ({"PORTAL_LOGO": "https://cdn.example;script-src"}, "PORTAL_LOGO"),
    # Read when config.py is imported, before the command runs: refused when the app is built.
    ({"RETENTION_DAYS": "abc"}, "RETENTION_DAYS must be a whole number, not 'abc'"),
    ({"SESSION_COOKIE_SECURE": "ture"}, "SESSION_COOKIE_SECURE must be 1 or 0"),
], ids=["secret-key", "portal-url", "mail", "logo", "number", "yes-or-no"])
def test_a_refused_setting_is_one_line_not_a_traceback(databases, setting, words):
    result = flask_cli("users", "list", database_url=databases.new(), check=False, **setting)
    assert result.returncode == 1
    assert "Traceback" not in result.stderr and "SettingsError" not in result.stderr
    [line] = [line for line in result.stderr.splitlines() if line.strip()]
    assert line.startswith("Error: ") and words in line


def test_the_app_built_outside_a_command_still_raises():
    """gunicorn builds the app with no click context: the error is raised as it was."""
    from app import create_app
    from config import Config, SettingsError

    class Refused(Config):
        SECRET_KEY = "short"

    with pytest.raises(SettingsError, match="SECRET_KEY is too short"):
        create_app(Refused)


@pytest.mark.parametrize("value, read", [
    ("1", True), ("yes", True), (" ON ", True), ("True", True),
    ("0", False), ("no", False), ("off", False), ("FALSE", False), ("", None),
])
def test_yes_or_no_settings_read_both_ways(monkeypatch, value, read):
    from config import env_bool

    monkeypatch.setenv("SESSION_COOKIE_SECURE", value)
    assert env_bool("SESSION_COOKIE_SECURE", None) is read  # unset or blank: the default


def test_an_unreadable_value_is_refused_when_the_app_is_built_outside_a_command():
    """gunicorn's start keeps raising SettingsError, now from create_app, not the import."""
    from app import create_app
    from config import Config, SettingsError, Unreadable

    class Typo(Config):
        MAIL_PORT = Unreadable("MAIL_PORT must be a whole number, not '25a'")

    with pytest.raises(SettingsError, match="MAIL_PORT must be a whole number"):
        create_app(Typo)
