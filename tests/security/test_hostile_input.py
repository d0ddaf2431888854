"""Hostile input at every route (property-based, with hypothesis).

Random, huge, binary and unicode values, missing fields, wrong methods and missing or forged
CSRF tokens are thrown at every route of the app's url_map, as an anonymous visitor, a browser
waiting for its code, a signed-in client and a signed-in member of staff. No answer may be a
5xx; a request without a valid CSRF token (or with a wrong method) changes nothing at all in
the database; and a request with a valid token but junk values signs nobody in and changes no
account.
"""

from __future__ import annotations

import io
import re
from urllib.parse import quote

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from tests.conftest import Browser, add_user
from tests.security.conftest import table_rows

CLIENT, STAFF = "client@example.com", "staff@example.com"
FIELD_NAMES = ["email", "password", "code", "channel", "phone", "action", "submit", "next",
               "q", "sign_in", "before", "csrf_token", "status", "messageId", "to", "msisdn",
               "client-ref", "sig", "timestamp"]
ALL_METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE"]
# Tables whose rows are an account's identity: junk may never change them.
IDENTITY = ("id", "email", "password_hash", "role", "channel", "phone", "phone_verified_at")

HOSTILE_SETTINGS = settings(
    max_examples=120, deadline=None, derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                           HealthCheck.data_too_large],
)

# --- strategies ---------------------------------------------------------------------------------

no_surrogates = st.characters(blacklist_categories=("Cs",))
small_values = st.one_of(
    st.text(no_surrogates, max_size=40),
    st.text(st.sampled_from("0123456789 -+()."), max_size=30),  # digits: codes and phones
    st.sampled_from(["", " ", "0", "-1", "123456", "１２３４５６", "07700900123", "+447700900123",
                     "email", "sms", "keep", "new", "resend", "cancel", "null", "[]", "{}",
                     "' OR 1=1 --", "<script>alert(1)</script>", "../../etc/passwd",
                     "%00", "\x00", "\u202e", "a" * 255, "client@example.com",
                     "//evil.example/", "https://evil.example/", "\\\\evil"]),
    st.integers(min_value=-(2**70), max_value=2**70).map(str),  # numbers no column holds
)
text_values = st.one_of(
    small_values,
    st.integers(min_value=1_000, max_value=80_000).map(lambda n: "é" * n),  # huge
)
field_dicts = st.dictionaries(
    st.one_of(st.sampled_from(FIELD_NAMES), st.text(no_surrogates, min_size=1, max_size=12)),
    text_values, max_size=6,
)
bodies = st.one_of(
    st.tuples(st.just("form"), field_dicts),
    st.tuples(st.just("raw"), st.binary(max_size=300)),  # not even well-formed
    st.tuples(st.just("json"), st.recursive(
        st.none() | st.booleans() | st.integers() | st.text(no_surrogates, max_size=20),
        lambda inner: st.lists(inner, max_size=4) | st.dictionaries(
            st.text(no_surrogates, max_size=8), inner, max_size=4),
        max_leaves=10)),
    st.tuples(st.just("multipart"), field_dicts),
    st.tuples(st.just("files"), st.dictionaries(st.sampled_from(FIELD_NAMES),
                                                st.binary(max_size=200), min_size=1, max_size=3)),
    st.tuples(st.just("huge"), st.integers(min_value=60_000, max_value=200_000)),
)
path_values = st.one_of(st.integers(min_value=-5, max_value=10**20).map(str),
                        st.text(no_surrogates, min_size=1, max_size=30))
queries = st.dictionaries(st.sampled_from(FIELD_NAMES + ["x"]), small_values, max_size=3)
STATES = ["anonymous", "waiting", "client", "staff"]


def rules_of(app) -> list[tuple[str, list[str]]]:
    return sorted((rule.rule, sorted(rule.methods - {"HEAD", "OPTIONS"}))
                  for rule in app.url_map.iter_rules())


def unsafe_or_wrong(app) -> list[tuple[str, str]]:
    """(rule, method) pairs that must be refused: a method the route does not take, or one
    that changes things (which then needs a CSRF token). The Vonage webhook takes no token
    by design; forged receipts to it are tested with the webhooks."""
    pairs = []
    for rule, methods in rules_of(app):
        for method in ALL_METHODS:
            if method not in methods or (method != "GET" and rule != "/webhooks/vonage/dlr"):
                pairs.append((rule, method))
    return pairs


def concrete_path(rule: str, values: list[str]) -> str:
    """The rule with each <converter:name> filled in with a hostile value."""
    parts = iter(values)
    return re.sub(r"<[^>]+>", lambda _: quote(next(parts, "1"), safe=""), rule)


def send(browser: Browser, method: str, path: str, body, query: dict, csrf: str | None):
    kind, payload = body
    kwargs: dict = {"query_string": query, "method": method}
    if kind in ("form", "multipart"):
        data = dict(payload)
        if csrf is not None:
            data["csrf_token"] = csrf
        kwargs["data"] = data
        if kind == "multipart":
            kwargs["content_type"] = "multipart/form-data"
    elif kind == "files":  # an upload where a form takes text
        data = {name: (io.BytesIO(content), "evil.txt") for name, content in payload.items()}
        if csrf is not None:
            data["csrf_token"] = csrf
        kwargs.update(data=data, content_type="multipart/form-data")
    elif kind == "raw":
        kwargs.update(data=payload, content_type="application/x-www-form-urlencoded")
    elif kind == "json":
        kwargs["json"] = payload
        if csrf is not None:
            kwargs["headers"] = {"X-CSRFToken": csrf}
    else:
        kwargs.update(data=b"x=" + b"A" * payload,
                      content_type="application/x-www-form-urlencoded")
    response = browser.client.open(path, **kwargs)
    response.close()
    event(f"{method} {response.status_code}")  # shown by --hypothesis-show-statistics
    return response


# --- the people sending it ----------------------------------------------------------------------

@pytest.fixture
def visitors(app, smtp, deliver, sign_in):
    """One browser per state, with the CSRF token of its session."""
    add_user(app, CLIENT)
    add_user(app, STAFF, role="support")
    add_user(app, "other@example.com")
    anonymous = Browser(app)
    anonymous.get("/login")
    waiting = Browser(app)
    waiting.log_in("other@example.com")
    waiting.get("/login/code")
    client = sign_in(CLIENT, Browser(app))
    client.get("/portal")
    staff = sign_in(STAFF, Browser(app))
    staff.get("/portal")
    browsers = {"anonymous": anonymous, "waiting": waiting, "client": client, "staff": staff}
    assert all(b.last_csrf for b in browsers.values())
    return browsers


def user_identities(rows: dict) -> list[tuple]:
    from models import User

    columns = [c.name for c in User.__table__.columns]
    return [tuple(row[columns.index(name)] for name in IDENTITY) for row in rows["users"]]


# --- the properties -----------------------------------------------------------------------------

@HOSTILE_SETTINGS
@given(data=st.data())
def test_no_csrf_or_wrong_method_never_errors_and_changes_nothing(app, visitors, data):
    rule, method = data.draw(st.sampled_from(unsafe_or_wrong(app)), label="route")
    state = data.draw(st.sampled_from(STATES), label="state")
    values = data.draw(st.lists(path_values, min_size=3, max_size=3), label="path values")
    body = data.draw(bodies, label="body")
    query = data.draw(queries, label="query")
    forged = data.draw(st.sampled_from([None, "forged", "", "ImFiYyI.ZZZ.ZZZ"]), label="csrf")
    before = table_rows(app)
    response = send(visitors[state], method, concrete_path(rule, values), body, query, forged)
    assert response.status_code < 500, (method, rule, response.status_code)
    assert table_rows(app) == before, (method, rule, state)


@HOSTILE_SETTINGS
@given(data=st.data())
def test_safe_methods_with_junk_never_error_and_change_no_account(app, visitors, data):
    rule, methods = data.draw(st.sampled_from(
        [r for r in rules_of(app) if "GET" in r[1]]), label="rule")
    state = data.draw(st.sampled_from(STATES), label="state")
    values = data.draw(st.lists(path_values, min_size=3, max_size=3), label="path values")
    query = data.draw(queries, label="query")
    before = table_rows(app)
    response = send(visitors[state], "GET", concrete_path(rule, values), ("form", {}), query,
                    None)
    assert response.status_code < 500, (rule, response.status_code)
    after = table_rows(app)
    assert user_identities(after) == user_identities(before)
    assert len(after["auth_sessions"]) == len(before["auth_sessions"])
    assert len(after["sign_ins"]) == len(before["sign_ins"])


@HOSTILE_SETTINGS
@given(data=st.data())
def test_junk_with_a_valid_csrf_token_never_errors_and_signs_nobody_in(app, visitors, data):
    rule, methods = data.draw(st.sampled_from(
        [r for r in rules_of(app) if "POST" in r[1]]), label="rule")
    state = data.draw(st.sampled_from(STATES), label="state")
    values = data.draw(st.lists(st.one_of(path_values, st.sampled_from(
        ["1", "2", "3", "unlock", "end-sign-ins", "switch-to-email"])), min_size=3, max_size=3),
        label="path values")
    body = data.draw(bodies, label="body")
    query = data.draw(queries, label="query")
    browser = visitors[state]
    before = table_rows(app)
    response = send(browser, "POST", concrete_path(rule, values), body, query, browser.last_csrf)
    assert response.status_code < 500, (rule, state, response.status_code)
    after = table_rows(app)
    assert user_identities(after) == user_identities(before), (rule, state)
    assert len(after["auth_sessions"]) == len(before["auth_sessions"]), "someone signed in"


# --- integers of any size (issue 11: ?sign_in=9223372036854775808 was a 500) ----------------------

# Where a database integer ends: PostgreSQL's INTEGER (2**31), SQLite's and BIGINT's (2**63),
# and past anything (2**64); each side of each edge, and negative.
INTEGER_EDGES = [2**31 - 1, 2**31, 2**63 - 1, 2**63, 2**64, 10**30, 0, -1, -(2**31) - 1,
                 -(2**63) - 1]


@settings(max_examples=12, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(number=st.one_of(st.sampled_from(INTEGER_EDGES), st.integers()))
def test_integers_of_any_size_in_paths_and_queries_never_error(app, visitors, number):
    """Every GET route, in every state, with the number in every path slot and query field."""
    value = str(number)
    query = {name: value for name in FIELD_NAMES if name != "csrf_token"}
    before = table_rows(app)
    for rule, _ in [r for r in rules_of(app) if "GET" in r[1]]:
        for state in STATES:
            response = send(visitors[state], "GET", concrete_path(rule, [value] * 3),
                            ("form", {}), query, None)
            assert response.status_code < 500, (rule, state, value, response.status_code)
    assert user_identities(table_rows(app)) == user_identities(before)


# --- values that broke parsers and PostgreSQL (NUL, unclosed IPv6 brackets, long text) ----------

# What apps and their users send to the OpenID Connect routes, on top of FIELD_NAMES.
OIDC_NAMES = ["client_id", "redirect_uri", "response_type", "scope", "nonce", "state", "prompt",
              "max_age", "code_challenge", "code_challenge_method", "id_token_hint",
              "post_logout_redirect_uri", "cg_reauth", "login_hint", "grant_type"]
NASTY = ["\x00", "a\x00b", "http://[", "//[x", "https://[::1", "é" * 300, "a" * 5000, '"\\',
         "\r\nX-Injected: 1", "%00", "cg-" + "A" * 24 + "\x00"]


@pytest.mark.parametrize("value", NASTY, ids=range(len(NASTY)))
def test_every_get_route_with_nasty_values_in_every_query_field_never_errors(app, visitors, value):
    """Each value in every query field at once (each field's own checks come first in some
    routes, others read them later), on every GET route, in every state: a 4xx or a page,
    never a 500, on SQLite and PostgreSQL (which refuses a NUL in any query)."""
    query = {name: value for name in FIELD_NAMES + OIDC_NAMES if name != "csrf_token"}
    before = table_rows(app)
    for rule, _ in [r for r in rules_of(app) if "GET" in r[1]]:
        for state in STATES:
            response = visitors[state].client.get(concrete_path(rule, [value] * 3),
                                                  query_string=query)
            response.close()
            assert response.status_code < 500, (rule, state, repr(value), response.status_code)
    assert user_identities(table_rows(app)) == user_identities(before)


def test_a_nul_in_a_form_or_a_query_is_refused_with_a_message(app, visitors):
    """Before any query (PostgreSQL refuses a NUL in one): a staff form, a pasted or uploaded
    import, the text-message receipt webhook. On SQLite these were accepted or refused; on
    PostgreSQL each was a 500."""
    staff = visitors["staff"]
    before = table_rows(app)
    for path, fields in (
        ("/support/clients/new", {"email": "ann@example.com", "name": "Ann\x00Smith",
                                  "channel": "email"}),
        ("/support/clients/import", {"text": "bad\x00@example.com,Ann,"}),
        ("/support/clients/import", {"text": "ann@example.com,Ann\x00Smith,",
                                     "confirmed": "yes"}),
    ):
        answer = staff.post(path, fields, form_page="/support/clients/new")
        assert answer.status_code == 400, (path, answer.status_code)
        assert "not text (a NUL)" in answer.get_data(as_text=True)
    upload = staff.client.post("/support/clients/import", data={
        "csrf_token": staff.csrf_for("/support/clients/import"),
        "file": (io.BytesIO(b"email,name\nann@example.com,Ann\x00Smith\n"), "clients.csv")},
        content_type="multipart/form-data")
    assert upload.status_code == 422 and "not text (a NUL)" in upload.get_data(as_text=True)
    receipt = visitors["anonymous"].client.get(
        "/webhooks/vonage/dlr", query_string={"messageId": "0C000000DEADBEEF",
                                              "status": "delivered", "client-ref": "a\x00b"})
    assert receipt.status_code == 400
    assert table_rows(app) == before


@pytest.mark.parametrize("raw", ["[1, 2]", '"s"', "1", "{bad"])
def test_a_json_body_without_a_token_is_refused_everywhere_never_a_500(app, visitors, raw):
    """/logout's expired-token answer built its form from the body: a JSON array, a string or
    malformed JSON raised inside the error handler (a 500). The 415 now comes first."""
    for rule, methods in rules_of(app):
        if rule == "/webhooks/vonage/dlr":
            continue
        path = concrete_path(rule, ["1", "1", "1"])
        for state in STATES:
            for method in ("POST", "PUT", "PATCH", "DELETE"):
                response = visitors[state].client.open(
                    path, method=method, data=raw, content_type="application/json")
                response.close()
                assert response.status_code < 500, (method, rule, state, response.status_code)
