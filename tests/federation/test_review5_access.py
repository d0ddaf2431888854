"""Fifth review: an address the rules let through must not be read by the app as a closed one.

nginx and Caddy pass the request's path on to the app as the browser wrote it; ClientGate
judged one reading of it (decoded, parameters dropped, `..` and `//` resolved). An app that
reads the same path another way (by prefix, with `..` left in; resolving `..` without
merging `//`, as WHATWG URLs do; dropping `;...` before decoding, as Tomcat and Spring do;
decoding twice) reached a closed page through an open one.
"""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from flask import Flask

from app import create_app
from services.federation import access
from tests.conftest import make_config

RULES = "files.firm.co.uk any Shared files; files.firm.co.uk/admin/ admin"


def person(role: str = "client"):
    return SimpleNamespace(is_authenticated=True, is_active=True, role=role)


@pytest.fixture(scope="module")
def rules_app(tmp_path_factory):
    app = create_app(make_config(
        tmp_path_factory.mktemp("access5"), PORTAL_URL="https://portal.firm.co.uk",
        PROTECTED_HOSTS="files.firm.co.uk", ACCESS_RULES=RULES,
    ))
    with app.app_context():
        yield app


def flask_app_behind() -> Flask:
    """An app the way many are written: a route per area, matched on the path as sent."""
    behind = Flask("behind")
    behind.add_url_rule("/admin/<path:rest>", "admin", lambda rest: "admin area")
    behind.add_url_rule("/<path:rest>", "open", lambda rest: "open area")
    return behind


@pytest.mark.parametrize("path", [
    "/admin/../report.pdf",          # Flask, Express, Rails: routed to /admin/ by prefix
    "/admin/%2e%2e/report.pdf",
    "/admin/..;/report.pdf",
    "/admin//../report.pdf",         # WHATWG URL: `..` takes the empty segment only
    "/admin;%2F..%2F..%2Freport",    # Tomcat, Spring: `;...` dropped before decoding
    "/%2561dmin/",                   # an app that decodes twice
    "/report#/../admin/users",       # a server that keeps '#' in the path, then cleans it
    "/ADMIN/users",                  # IIS, a Windows or macOS file system: case ignored
    "/Admin",
    "/%41dmin/",
    "/public/../aDmin/x",
])
def test_a_path_the_app_reads_as_closed_is_refused(rules_app, path):
    decision = access.decide(person("client"), "https://files.firm.co.uk" + path)
    assert not decision.allowed, (path, decision)
    assert decision.rule is not None and decision.rule.prefix == "/admin/"
    assert decision.reason == "This address is open only to administrators."
    assert access.decide(person("admin"), "https://files.firm.co.uk" + path).allowed


def test_the_first_of_them_really_opens_the_admin_area_of_a_flask_app():
    # Why it matters: the app behind serves the admin view for it.
    answer = flask_app_behind().test_client().get("/admin/../report.pdf")
    assert answer.get_data(as_text=True) == "admin area"


@pytest.mark.parametrize("path", [
    "/report.pdf", "/reports/2026/", "/a/../report.pdf", "/report;v=2.pdf", "/%7Eanna/",
    "/administrator/..", "/dir/./file", "/admin-notes/../x", "/ADMINISTRATOR/", "/Reports/",
])
def test_open_paths_stay_open(rules_app, path):
    decision = access.decide(person("client"), "https://files.firm.co.uk" + path)
    assert decision.allowed, (path, decision)


def test_a_rule_written_in_capitals_closes_every_spelling(tmp_path):
    app = create_app(make_config(
        tmp_path, PORTAL_URL="https://portal.firm.co.uk", PROTECTED_HOSTS="files.firm.co.uk",
        ACCESS_RULES="files.firm.co.uk any; files.firm.co.uk/Staff/ support",
    ))
    with app.app_context():
        for path in ("/Staff/rota", "/staff/rota", "/STAFF/", "/sTaFf"):
            decision = access.decide(person("client"), "https://files.firm.co.uk" + path)
            assert not decision.allowed, path
            assert decision.reason == "This address is open only to support staff."
            assert access.decide(person("support"), "https://files.firm.co.uk" + path).allowed
        assert access.decide(person("client"), "https://files.firm.co.uk/staffing/").allowed
