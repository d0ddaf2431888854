"""The access rules: who may open which of the firm's apps (services/federation/access.py)."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from app import create_app
from services.federation import access
from tests.conftest import make_config

RULES = (
    "files.firm.co.uk any Shared files; files.firm.co.uk/admin/ admin;\n"
    "portal.firm.co.uk/wiki/ client,support Knowledge base\n"
    "books.firm.co.uk support,admin Invoices"
)


def person(role: str = "client", active: bool = True):
    return SimpleNamespace(is_authenticated=True, is_active=active, role=role)


@pytest.fixture(scope="module")
def rules_app(tmp_path_factory):
    app = create_app(make_config(
        tmp_path_factory.mktemp("access"), PORTAL_URL="https://portal.firm.co.uk",
        PROTECTED_HOSTS="files.firm.co.uk, books.firm.co.uk", ACCESS_RULES=RULES,
    ))
    with app.app_context():
        yield app


@pytest.mark.parametrize("role,url,allowed", [
    ("client", "https://files.firm.co.uk/", True),
    ("client", "https://files.firm.co.uk/report.pdf?x=1", True),
    ("client", "https://files.firm.co.uk/admin/", False),
    ("client", "https://files.firm.co.uk/admin", False),
    ("client", "https://files.firm.co.uk/admin/users?id=2", False),
    ("client", "https://files.firm.co.uk/administrator", True),  # whole segments only
    ("admin", "https://files.firm.co.uk/admin/users", True),
    ("client", "https://FILES.firm.co.uk./admin/", False),
    # The app would see these as /admin/...: the rule must see them so too.
    ("client", "https://files.firm.co.uk/public/../admin/", False),
    ("client", "https://files.firm.co.uk/%61dmin/", False),
    ("client", "https://files.firm.co.uk//admin/", False),
    ("client", "https://files.firm.co.uk/./admin/x", False),
    # Apps that drop path parameters (Tomcat, Spring) or take a backslash as a slash (IIS).
    ("client", "https://files.firm.co.uk/admin;x=1/", False),
    ("client", "https://files.firm.co.uk/admin;jsessionid=1", False),
    ("client", "https://files.firm.co.uk/admin%3B/users", False),
    ("client", "https://files.firm.co.uk/admin\\users", False),
    ("client", "https://files.firm.co.uk/admin%5Cusers", False),
    ("client", "https://files.firm.co.uk/report;v=2.pdf", True),
    ("client", "https://portal.firm.co.uk/wiki/page", True),
    ("admin", "https://portal.firm.co.uk/wiki/page", False),
    ("admin", "https://portal.firm.co.uk/other", True),  # listed host, no rule
    ("client", "https://books.firm.co.uk/", False),
    ("support", "https://books.firm.co.uk:8443/inv/1", True),
    ("admin", "https://evil.example/", False),
    ("admin", "https://files.firm.co.uk.evil.example/", False),
    ("admin", "javascript://files.firm.co.uk/", False),
])
def test_decide(rules_app, role, url, allowed):
    decision = access.decide(person(role), url)
    assert decision.allowed is allowed, decision
    assert decision.reason


def test_the_rule_and_reason_name_who_may_enter(rules_app):
    decision = access.decide(person("client"), "https://files.firm.co.uk/admin/x")
    assert decision.rule.prefix == "/admin/" and decision.rule.roles == ("admin",)
    assert decision.reason == "This address is open only to administrators."
    assert access.decide(person("admin"), "https://files.firm.co.uk/admin/x").allowed


def test_nobody_and_closed_accounts_are_refused(rules_app):
    assert not access.decide(None, "https://files.firm.co.uk/").allowed
    assert not access.decide(person(active=False), "https://files.firm.co.uk/").allowed
    # An address the web server did not name cannot be judged when there are rules.
    assert not access.decide(person("admin"), None).allowed


def test_bad_addresses_are_refused_not_raised(rules_app):
    for url in ("https://files.firm.co.uk:99999/", "http://[::1/", "", "/admin/"):
        assert not access.decide(person("admin"), url).allowed


def test_apps_for_lists_what_each_role_may_open(rules_app):
    assert access.apps_for(person("client")) == [
        access.App("Shared files", "https://files.firm.co.uk/"),
        access.App("Knowledge base", "https://portal.firm.co.uk/wiki/"),
    ]
    assert [a.name for a in access.apps_for(person("support"))] == [
        "Shared files", "Knowledge base", "Invoices"]
    assert [a.name for a in access.apps_for(person("admin"))] == ["Shared files", "Invoices"]
    assert access.apps_for(None) == []


def test_without_rules_every_signed_in_user_may_enter(tmp_path):
    app = create_app(make_config(tmp_path, PORTAL_URL="https://portal.firm.co.uk"))
    with app.app_context():
        assert access.decide(person(), "https://portal.firm.co.uk/x").allowed
        assert access.decide(person(), None).allowed
        assert not access.decide(person(), "https://files.firm.co.uk/").allowed
        assert access.apps_for(person()) == []


@pytest.mark.parametrize("hosts,rules,words", [
    ("files.firm.co.uk", "elsewhere.example admin", "PROTECTED_HOSTS"),
    ("files.firm.co.uk", "files.firm.co.uk", "needs an address and who"),
    ("files.firm.co.uk", "files.firm.co.uk/ staff", "not 'any' or roles"),
    ("files.firm.co.uk", "https://files.firm.co.uk/ any", "without http"),
    ("https://files.firm.co.uk", "", "host names only"),
    ("files.firm.co.uk", "files.firm.co.uk/admin\\x admin", "with / between its parts"),
])
def test_a_wrong_setting_stops_the_start_with_the_reason(tmp_path, hosts, rules, words):
    with pytest.raises(RuntimeError, match=words):
        create_app(make_config(tmp_path, PORTAL_URL="https://portal.firm.co.uk",
                               PROTECTED_HOSTS=hosts, ACCESS_RULES=rules))
