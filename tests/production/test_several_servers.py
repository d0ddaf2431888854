"""Two ClientGate servers behind one load balancer, sharing one PostgreSQL and one Redis.

Each server is `gunicorn 'app:create_app()'` with two workers in a process group of its own,
as two machines would be. A client's requests land on either: a sign-in begun on one ends on
the other, logout on one ends the session on both, request limits count across both (Redis),
every queued message is sent once by whichever dispatcher claims it, and when one server is
killed mid-send the other sends what it had claimed once the claim runs out.

The second round's features hold across both too: /auth/verify on either answers for a
session of the other and refuses it on every worker as soon as it is logged out; both publish
one and the same OpenID Connect signing key (made once, however many workers ask first), a
code from one is redeemed at the other, and a rotation shows on both; a passkey challenge
made by one is answered on the other, once; a device trusted on one skips the code on the
other until it is forgotten on either.
"""

from __future__ import annotations

import json
import os
import re
import threading
import time
from collections import Counter, defaultdict
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from urllib.parse import parse_qs, urlsplit

import pytest
from joserfc import jwt
from joserfc.jwk import KeySet
from sqlalchemy import func, select

from extensions import db
from models import Delivery, Event, OIDCSigningKey, Passkey, SignIn, TrustedDevice, User
from services import clock, delivery
from services.signin import limits
from tests.authenticators.conftest import ORIGIN, SoftKey
from tests.conftest import AS_SERVERS_HASH, TEST_PASSWORD, SMTPServer, add_user, make_config
from tests.oidc.conftest import authorize_url, exchange, pkce, register
from tests.production.conftest import (
    DATABASE_KIND, Databases, Gunicorn, WebClient, flask_cli, wait_until,
)

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        DATABASE_KIND != "postgresql",
        reason="several servers share one PostgreSQL, as in production; this module runs in "
               "the PostgreSQL pass (scripts/pgtemp.py run -- pytest)",
    ),
]

# Short, so the test of a server killed mid-send is quick; production keeps 90 s. The start
# check wants it three times MAIL_TIMEOUT, which must outlast the slow mail server's 2 s.
CLAIM_SECONDS, MAIL_TIMEOUT = 9, 3

# Behind one load balancer both servers have one public address (a passkey's origin, the
# OpenID Connect issuer) and sit behind the web server that asks /auth/verify, as in
# docs/forward-auth/: files.localhost is a protected app on a host of its own.
FORWARD_AUTH = dict(
    PORTAL_URL=ORIGIN, TRUSTED_HOSTS="127.0.0.1", PROXY_FIX_X_HOST="1", PROXY_FIX_X_PROTO="1",
    PROTECTED_HOSTS="files.localhost",
    ACCESS_RULES="files.localhost any Shared files; files.localhost/admin/ admin",
)


class TimedSMTP(SMTPServer):
    """The real SMTP server, noting when (wall clock) each message arrived."""

    def __init__(self) -> None:
        super().__init__()
        self.arrived_at: list[float] = []

    def _received(self, mail) -> None:
        with self._cond:
            self.arrived_at.append(time.time())
        super()._received(mail)

    def by_ref(self, since: int = 0) -> dict[str, list[float]]:
        """X-ClientGate-Ref -> the times each copy arrived."""
        with self._cond:
            pairs = list(zip(self.messages[since:], self.arrived_at[since:]))
        found: dict[str, list[float]] = defaultdict(list)
        for mail, at in pairs:
            found[mail.headers.get("X-ClientGate-Ref")].append(at)
        return found


@pytest.fixture(scope="module")
def smtp_server():
    server = TimedSMTP()
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def cluster(tmp_path_factory, smtp_server, redis_server):
    """Servers A and B on one migrated PostgreSQL database and one Redis."""
    databases = Databases(tmp_path_factory.mktemp("db"))
    url = databases.new()
    flask_cli("db", "upgrade", database_url=url)
    servers = {}
    try:
        for name in ("A", "B"):
            servers[name] = Gunicorn(
                url, smtp_server, tmp_path_factory.mktemp(f"server-{name}"), workers=2,
                own_group=True, RATELIMIT_ENABLED="1",
                RATELIMIT_STORAGE_URI=redis_server.url,
                DISPATCHER_CLAIM_SECONDS=str(CLAIM_SECONDS), MAIL_TIMEOUT=str(MAIL_TIMEOUT),
                **FORWARD_AUTH,
            )
            servers[name].start()
        yield servers
    finally:
        for server in servers.values():
            server.stop()
        databases.drop_all()


@pytest.fixture(scope="module")
def db_app(cluster, tmp_path_factory):
    """This test process's own app on the servers' database, to set up and to inspect."""
    from app import create_app

    application = create_app(make_config(
        tmp_path_factory.mktemp("inspect"), SQLALCHEMY_DATABASE_URI=cluster["A"].database_url,
        **AS_SERVERS_HASH))
    yield application
    with application.app_context():
        db.session.remove()
        db.engine.dispose()



def worker_pids(server: Gunicorn) -> set[int]:
    """The worker processes of a gunicorn master (its children)."""
    found = set()
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                with open(f"/proc/{entry.name}/stat") as handle:
                    fields = handle.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == server.process.pid:
                found.add(int(entry.name))
    return found


def claimer_pid(row: Delivery) -> int:
    return int(row.claimed_by.rsplit(":", 1)[1])


def _cut_short_hand_overs(app) -> set[str]:
    """The client_refs of messages one of whose hand-overs was cut short at its deadline."""
    with app.app_context():
        found = db.session.execute(
            select(Delivery.client_ref, Event.detail).join(Event, Event.delivery_id == Delivery.id)
            .where(Event.type == "delivery_retry")).all()
        db.session.remove()
    return {ref for ref, detail in found if "too slow" in (detail or {}).get("reason", "")}


def rows(app, **where) -> list[Delivery]:
    with app.app_context():
        found = db.session.scalars(select(Delivery).filter_by(**where)).all()
        db.session.expunge_all()
        db.session.remove()
        return found


def code_for(smtp_server: TimedSMTP, email: str, since: int, timeout: float = 30) -> str:
    """The code in the newest message to `email` that arrived after message number `since`."""
    def newest():
        for mail in reversed(smtp_server.messages[since:]):
            if email in mail.to and mail.code:
                return mail.code
        return None

    code = wait_until(newest, timeout)
    assert code, f"no code reached {email}"
    return code


def password_on(client: WebClient, server: Gunicorn, email: str, password: str = TEST_PASSWORD):
    client.server = server
    assert client.get("/login")[0] == 200
    return client.post("/login", {"email": email, "password": password})


def answer_choice(client: WebClient, page: str, action: str):
    """Post "keep" or "new" with the question's one-time nonce, as the choice page's form does."""
    nonce = re.search(r'name="nonce" type="hidden" value="([^"]*)"', page)
    fields = {"action": action, **({"nonce": nonce.group(1)} if nonce else {})}
    return client.post("/login", fields)


def status_of(client: WebClient, server: Gunicorn, sign_in: int | None = None) -> dict:
    client.server = server
    path = "/login/code/status" + (f"?sign_in={sign_in}" if sign_in else "")
    status, _, text = client.get(path)
    assert status in (200, 404), text
    return json.loads(text)


def assert_clean_logs(cluster) -> None:
    for server in cluster.values():
        log = server.log()
        assert "Traceback" not in log and " ERROR " not in log, log[-4000:]


# --- sessions --------------------------------------------------------------------------

def test_signed_in_on_one_is_signed_in_on_the_other_and_logout_ends_both(
        cluster, smtp_server, db_app):
    a, b = cluster["A"], cluster["B"]
    add_user(db_app, "roaming@example.com")
    client = WebClient(a, ip="198.51.100.10")
    since = len(smtp_server.messages)
    status, headers, _ = password_on(client, a, "roaming@example.com")
    assert (status, headers["Location"]) == (302, "/login/code")
    code = code_for(smtp_server, "roaming@example.com", since)

    client.server = b  # the load balancer sends the code page and the code to B
    assert client.get("/login/code")[0] == 200
    status, headers, _ = client.post("/login/code", {"code": code})
    assert (status, headers["Location"]) == (302, "/portal")
    for server in (a, b, a):
        client.server = server
        status, _, text = client.get("/portal")
        assert status == 200 and "Log out" in text, server.port

    stolen = dict(client.cookies)  # as if the cookie had been copied before logout
    client.server = b
    status, headers, _ = client.post("/logout", {})
    assert (status, headers["Location"]) == (302, "/login")
    for server in (a, b):
        replay = WebClient(server, ip="198.51.100.10")
        replay.cookies = dict(stolen)
        status, headers, _ = replay.get("/portal")
        assert status == 302 and headers["Location"].startswith("/login"), server.port
    assert_clean_logs(cluster)


# --- request limits --------------------------------------------------------------------

def _per_minute(name: str) -> int:
    first = limits.DEFAULT_RATE_LIMITS[name].split(";")[0]
    return int(re.match(r"(\d+) per minute", first).group(1))


def test_request_limits_count_across_both_servers(cluster, db_app):
    """40 wrong passwords spread over both meet a 429 exactly where one server would."""
    a, b = cluster["A"], cluster["B"]
    # From one address, each for a different (unknown) email: the per-address limit.
    per_ip = _per_minute("login_per_ip")
    answers = []
    for n in range(40):
        client = WebClient(a if n % 2 == 0 else b, ip="198.51.100.20")
        client.get("/login")
        answers.append(client.post("/login", {"email": f"nobody{n}@example.com",
                                              "password": "wrong password"})[0])
    assert answers == [200] * per_ip + [429] * (40 - per_ip), answers

    # For one account, each from a different address: the per-account limit.
    add_user(db_app, "targeted@example.com")
    per_account = _per_minute("login_per_account")
    answers = []
    for n in range(40):
        client = WebClient(b if n % 2 == 0 else a, ip=f"198.51.100.{100 + n}")
        client.get("/login")
        answers.append(client.post("/login", {"email": "targeted@example.com",
                                              "password": "wrong password"})[0])
    assert answers == [200] * per_account + [429] * (40 - per_account), answers
    assert_clean_logs(cluster)


# --- the tab guard and "keep the code already sent, or send a new one?" ---------------------

def test_tab_guard_and_keep_or_new_when_tabs_land_on_different_servers(
        cluster, smtp_server, db_app):
    a, b = cluster["A"], cluster["B"]
    add_user(db_app, "two-tabs@example.com")
    email = "two-tabs@example.com"

    # A laptop's tab signs in on A; its second tab lands on B and is warned before it
    # sends a new code, with the sign-in the first tab started.
    laptop = WebClient(a, ip="198.51.100.30")
    since = len(smtp_server.messages)
    assert password_on(laptop, a, email)[0] == 302
    first = status_of(laptop, a)
    assert first["status"] == "pending"
    laptop.server = b
    status, _, page = laptop.get("/login")
    assert status == 200 and "You already have a code on its way" in page
    assert f'data-sign-in="{first["sign_in"]}"' in page
    assert status_of(laptop, b)["sign_in"] == first["sign_in"]

    # A phone posts the password on B: asked whether to keep that code; it answers on A.
    phone = WebClient(b, ip="198.51.100.31")
    status, headers, _ = password_on(phone, b, email)
    assert (status, headers["Location"]) == (302, "/login")
    phone.server = a
    status, _, page = phone.get("/login")
    assert status == 200 and "A code is already on its way" in page
    status, headers, _ = answer_choice(phone, page, "keep")
    assert (status, headers["Location"]) == (302, "/login/code")
    assert status_of(phone, b)["sign_in"] == first["sign_in"]
    code = code_for(smtp_server, email, since)
    phone.server = b
    phone.get("/login/code")
    status, headers, _ = phone.post("/login/code", {"code": code})
    assert (status, headers["Location"]) == (302, "/portal")
    assert status_of(laptop, a)["status"] == "completed"  # the laptop's tab can say so

    # Again, and this time the phone asks for a new code: the laptop's tab (on either
    # server) learns its code was replaced, and by which sign-in.
    since = len(smtp_server.messages)
    phone2 = WebClient(a, ip="198.51.100.32")
    laptop2 = WebClient(b, ip="198.51.100.33")
    assert password_on(laptop2, b, email)[0] == 302
    old = status_of(laptop2, b)
    old_code = code_for(smtp_server, email, since)
    status, headers, _ = password_on(phone2, a, email)
    assert (status, headers["Location"]) == (302, "/login")
    phone2.server = b
    page = phone2.get("/login")[2]
    assert "A code is already on its way" in page
    status, headers, _ = answer_choice(phone2, page, "new")
    assert (status, headers["Location"]) == (302, "/login/code")
    new = status_of(phone2, a)
    assert new["status"] == "pending" and new["sign_in"] != old["sign_in"]
    seen = status_of(laptop2, a)
    assert seen["status"] == "superseded" and seen["newer"]["sign_in"] == new["sign_in"]
    laptop2.server = a
    laptop2.get("/login/code")
    status, _, page = laptop2.post("/login/code", {"code": old_code})
    # The page names the newer sign-in, and where its code went.
    assert status == 422 and "you signed in again at" in page
    assert "The new code went to" in page
    since_new = wait_until(lambda: next(
        (m.code for m in reversed(smtp_server.messages[since:])
         if email in m.to and m.code and m.code != old_code), None), 30)
    phone2.server = a
    phone2.get("/login/code")
    status, headers, _ = phone2.post("/login/code", {"code": since_new})
    assert (status, headers["Location"]) == (302, "/portal")
    assert_clean_logs(cluster)


# --- the features of the second round: forward-auth, OpenID Connect, passkeys, devices -------

def signed_in_on(client: WebClient, server: Gunicorn, smtp_server: TimedSMTP, email: str,
                 **code_fields) -> None:
    """Password and emailed code, both posted to `server` (code_fields: e.g. remember)."""
    since = len(smtp_server.messages)
    status, headers, _ = password_on(client, server, email)
    assert (status, headers["Location"]) == (302, "/login/code")
    code = code_for(smtp_server, email, since)
    assert client.get("/login/code")[0] == 200
    status, headers, _ = client.post("/login/code", {"code": code, **code_fields})
    assert (status, headers["Location"]) == (302, "/portal")


def copy_of(client: WebClient, server: Gunicorn) -> WebClient:
    """Another tab of this browser, or a copy of its cookies: same cookies, same CSRF token."""
    twin = WebClient(server, ip=client.ip)
    twin.cookies, twin.csrf = dict(client.cookies), client.csrf
    return twin


def count_of(app, column, *where) -> int:
    with app.app_context():
        found = db.session.scalar(select(func.count(column)).where(*where))
        db.session.remove()
        return found


def settled(cluster, app) -> None:
    """Every message the test caused has reached the mail server (so none arrives during a
    later test's count), and neither server logged an error."""
    assert wait_until(lambda: count_of(
        app, Delivery.id, Delivery.status.in_(("queued", "sending"))) == 0, 30)
    assert_clean_logs(cluster)


# What the web server sends with its question (docs/forward-auth/): nginx's auth_request for
# an app under the portal's own host, and Caddy's forward_auth for one on a sibling host.
NGINX_ASKS = {"Host": "localhost", "X-Forwarded-Proto": "http", "X-Forwarded-Host": "localhost",
              "X-Original-URL": "http://localhost/files/report.pdf"}
CADDY_ASKS = {"Host": "files.localhost", "X-Forwarded-Method": "GET",
              "X-Forwarded-Proto": "http", "X-Forwarded-Host": "files.localhost",
              "X-Forwarded-Uri": "/report.pdf"}


def verify(server: Gunicorn, client: WebClient, asks: dict, **more: str):
    """The web server's question about this browser's request: (status, headers)."""
    headers = {**asks, **more, "X-Forwarded-For": client.ip}
    if client.cookies:
        headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in client.cookies.items())
    status, answer, _ = server.request("GET", "/auth/verify", headers=headers)
    return status, answer


def test_forward_auth_answers_for_a_session_of_either_server_and_logout_ends_it_on_both(
        cluster, smtp_server, db_app):
    a, b = cluster["A"], cluster["B"]
    email = "forwarded@example.com"
    user_id = add_user(db_app, email)
    client = WebClient(a, ip="198.51.100.40")
    signed_in_on(client, a, smtp_server, email)

    # Asked eight times each, so (almost surely) both workers of each server answer, and
    # remember the cookie's signature as the fast path does for a minute.
    for server in (b, a) * 4:
        for asks in (NGINX_ASKS, CADDY_ASKS):
            status, headers = verify(server, client, asks)
            assert status == 200, (server.port, asks)
            assert (headers["Remote-User"], headers["Remote-Email"],
                    headers["Remote-Groups"]) == (str(user_id), email, "client")
        # The access rules are the same on both: a client is kept out of the admin pages.
        assert verify(server, client, CADDY_ASKS, **{"X-Forwarded-Uri": "/admin/"})[0] == 403

    # Logout on B, from another tab of the same browser; the cookie the web server has just
    # been shown (a request racing the logout, or a copy) must now fail on every worker.
    tab = copy_of(client, b)
    assert tab.get("/portal")[0] == 200
    status, headers, _ = tab.post("/logout", {})
    assert (status, headers["Location"]) == (302, "/login")
    for server in (a, b) * 4:  # at once, on every worker of both
        for browser in (client, tab):
            assert verify(server, browser, NGINX_ASKS)[0] == 401, server.port
            status, headers = verify(server, browser, CADDY_ASKS)
            assert status == 302 and headers["Location"].startswith(
                "http://localhost/login?next=http"), (server.port, status)
            assert "Remote-User" not in headers
    settled(cluster, db_app)


class TokenEndpointCaller:
    """An app's back end calling one server's token endpoint, as tests/oidc's exchange() does
    with Flask's test client."""

    def __init__(self, server: Gunicorn, ip: str) -> None:
        self.server, self.ip = server, ip

    def post(self, path: str, data: dict, headers: dict):
        status, _, text = self.server.request(
            "POST", path, data, {**headers, "X-Forwarded-For": self.ip})
        assert status == 200, text
        return json.loads(text)


def published_keys(server: Gunicorn) -> dict:
    status, _, text = server.request("GET", "/oauth/jwks",
                                     headers={"X-Forwarded-For": "198.51.100.59"})
    assert status == 200, text
    return json.loads(text)


def code_through(client: WebClient, server: Gunicorn, rp) -> tuple[str, str, str]:
    """Authorize on `server` for a signed-in browser: (code, PKCE verifier, nonce)."""
    verifier, challenge = pkce()
    path = authorize_url(rp, challenge)
    client.server = server
    status, headers, text = client.get(path)
    assert status == 302, text[:500]
    back = parse_qs(urlsplit(headers["Location"]).query)
    assert headers["Location"].startswith(rp.redirect_uri + "?") and back["iss"] == [ORIGIN]
    return back["code"][0], verifier, parse_qs(urlsplit(path).query)["nonce"][0]


def checked_id_token(id_token: str, keys: dict, rp, nonce: str, user_id: int):
    token = jwt.decode(id_token, KeySet.import_key_set(keys), algorithms=["RS256"])
    jwt.JWTClaimsRegistry(iss={"essential": True, "value": ORIGIN},
                          aud={"essential": True, "value": rp.client_id},
                          sub={"essential": True, "value": str(user_id)},
                          nonce={"essential": True, "value": nonce}).validate(token.claims)
    return token


def test_openid_connect_one_signing_key_codes_redeemed_anywhere_and_rotation(
        cluster, smtp_server, db_app):
    a, b = cluster["A"], cluster["B"]
    # No app has asked yet: the database holds no signing key. Now eight ask both servers
    # (four workers) at the same moment, so each would make a key of its own if it could.
    assert count_of(db_app, OIDCSigningKey.id) == 0
    gate = threading.Barrier(8)

    def fetch(server):
        gate.wait(30)
        return published_keys(server)

    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(fetch, [a, b] * 4))
    assert count_of(db_app, OIDCSigningKey.id) == 1
    first = answers[0]
    assert len(first["keys"]) == 1 and all(answer == first for answer in answers), answers

    # A code issued through A is redeemed at B; the id_token checks out against B's keys,
    # and the access token B issued is good at A's userinfo.
    rp = register(db_app, "Files")
    email = "oidc@example.com"
    user_id = add_user(db_app, email)
    browser = WebClient(a, ip="198.51.100.50")
    signed_in_on(browser, a, smtp_server, email)
    code, verifier, nonce = code_through(browser, a, rp)
    tokens = exchange(TokenEndpointCaller(b, "198.51.100.51"), rp, code, verifier)
    old_id_token = tokens["id_token"]
    old = checked_id_token(old_id_token, published_keys(b), rp, nonce, user_id)
    assert old.header["kid"] == first["keys"][0]["kid"]
    status, _, text = a.request("GET", "/oauth/userinfo", headers={
        "Authorization": f"Bearer {tokens['access_token']}", "X-Forwarded-For": "198.51.100.51"})
    assert status == 200 and json.loads(text)["email"] == email, text
    # The code is used up for both: redeemed again at A, it is refused.
    status, _, text = a.request("POST", "/oauth/token", {
        "grant_type": "authorization_code", "code": code, "redirect_uri": rp.redirect_uri,
        "code_verifier": verifier, "client_id": rp.client_id, "client_secret": rp.secret},
        {"X-Forwarded-For": "198.51.100.51"})
    assert status == 400 and json.loads(text)["error"] == "invalid_grant", text

    # After `flask oidc rotate-key`, both publish the new key beside the old, and a token
    # signed with the new one through B checks out against A's keys.
    flask_cli("oidc", "rotate-key", database_url=a.database_url)
    after = [published_keys(server) for server in (a, b) * 3]
    kids = [key["kid"] for key in after[0]["keys"]]
    assert len(kids) == 2 and kids[1] == first["keys"][0]["kid"], kids
    assert all(answer == after[0] for answer in after), after
    code, verifier, nonce = code_through(browser, b, rp)
    tokens = exchange(TokenEndpointCaller(a, "198.51.100.51"), rp, code, verifier)
    new = checked_id_token(tokens["id_token"], published_keys(a), rp, nonce, user_id)
    assert new.header["kid"] == kids[0]
    # An id_token signed before the rotation still checks out against the new set.
    checked_id_token(old_id_token, after[0], rp, old.claims["nonce"], user_id)
    settled(cluster, db_app)


def post_answer(client: WebClient, path: str, credential: str):
    """The page's script posting a passkey's answer: (status, JSON)."""
    status, _, text = client.post(path, {"credential": credential})
    return status, json.loads(text)


def test_passkey_challenges_from_one_server_are_answered_on_the_other_once(
        cluster, smtp_server, db_app):
    a, b = cluster["A"], cluster["B"]
    email = "passkey@example.com"
    user_id = add_user(db_app, email)
    key = SoftKey()

    # Adding a passkey: A makes the challenge, B checks the answer.
    laptop = WebClient(a, ip="198.51.100.60")
    signed_in_on(laptop, a, smtp_server, email)
    assert laptop.get("/account/security")[0] == 200
    status, _, text = laptop.post("/account/passkeys/options", {"name": "Work laptop"})
    assert status == 200, text
    options = json.loads(text)["options"]
    stolen = copy_of(laptop, a)
    laptop.server = b
    status, answer = post_answer(laptop, "/account/passkeys/verify", key.register(options))
    assert status == 200 and answer["redirect"].endswith("/account/security#passkeys"), answer
    # Answered once: the same challenge answered again (by another key) at A is refused.
    status, _ = post_answer(stolen, "/account/passkeys/verify", SoftKey().register(options))
    assert status == 400
    assert count_of(db_app, Passkey.id, Passkey.user_id == user_id) == 1

    # Signing in: A makes the challenge, B checks the answer and signs the browser in. The
    # passkey sends a counter of 0 (as synced passkeys do), so only the challenge can stop a
    # replayed answer.
    phone = WebClient(a, ip="198.51.100.61")
    assert phone.get("/login")[0] == 200
    status, _, text = phone.post("/login/passkey/options", {})
    assert status == 200, text
    options = json.loads(text)["options"]
    signed = key.sign(options, count=0)
    stolen = copy_of(phone, a)
    phone.server = b
    status, answer = post_answer(phone, "/login/passkey/verify", signed)
    assert status == 200 and answer["redirect"] == "/portal", answer
    for server in (a, b):
        phone.server = server
        status, _, page = phone.get("/portal")
        assert status == 200 and "Log out" in page, server.port
    # The same signed answer, replayed to A with a copy of the cookie naming the challenge.
    status, answer = post_answer(stolen, "/login/passkey/verify", signed)
    assert status == 403, answer
    assert stolen.get("/portal")[0] == 302
    settled(cluster, db_app)


def test_a_device_trusted_on_one_server_skips_the_code_on_the_other_until_forgotten(
        cluster, smtp_server, db_app):
    a, b = cluster["A"], cluster["B"]
    email = "trusted@example.com"
    user_id = add_user(db_app, email)

    def codes_queued() -> int:
        return count_of(db_app, Delivery.id, Delivery.user_id == user_id,
                        Delivery.kind.in_(limits.CODE_KINDS))

    device = WebClient(a, ip="198.51.100.70")
    signed_in_on(device, a, smtp_server, email, remember="y")
    assert device.cookies.get("cg-device")
    assert device.get("/portal")[0] == 200
    assert device.post("/logout", {})[0] == 302

    # On B the password is still asked, and then no code: the device is known there.
    before = codes_queued()
    status, headers, _ = password_on(device, b, email)
    assert (status, headers["Location"]) == (302, "/portal")
    assert codes_queued() == before
    device.server = a
    assert device.get("/portal")[0] == 200

    # "Forget this device" on B: A asks for a code again.
    device.server = b
    assert "Forget this device" in device.get("/account/devices")[2]
    with db_app.app_context():
        device_id = db.session.scalar(select(TrustedDevice.id).where(
            TrustedDevice.user_id == user_id))
        db.session.remove()
    status, headers, _ = device.post(f"/account/devices/trusted/{device_id}/forget", {})
    assert status == 302 and "forgotten" in device.get("/account/devices")[2]
    assert device.post("/logout", {})[0] == 302
    status, headers, _ = password_on(device, a, email)
    assert (status, headers["Location"]) == (302, "/login/code")
    assert codes_queued() == before + 1
    settled(cluster, db_app)


# --- the outbox ------------------------------------------------------------------------

def test_hundred_messages_with_both_dispatchers_running_are_each_sent_once(
        cluster, smtp_server, db_app):
    count = 100
    since = len(smtp_server.messages)
    smtp_server.delay = 0.02  # a mail server that takes its time, so the workers overlap
    try:
        with db_app.app_context():
            for i in range(count):
                delivery.queue_message(
                    user_id=None, channel="email", destination=f"many{i}@example.com",
                    kind="notice", template="security_change",
                    values={"when": "10:05", "change": f"message {i}"},
                )
            db.session.commit()  # all due at once, for all four dispatchers to race for
            db.session.remove()

        def all_sent():
            found = [r for r in rows(db_app, kind="notice")
                     if r.destination.startswith("many")]
            return len(found) == count and all(r.status == "sent" for r in found)

        assert wait_until(all_sent, timeout=90)
        smtp_server.wait_for(since + count, timeout=30)
        time.sleep(1)  # a second copy on its way would arrive now
    finally:
        smtp_server.delay = 0

    sent = [r for r in rows(db_app, kind="notice") if r.destination.startswith("many")]
    arrived = smtp_server.by_ref(since)
    assert {ref: len(times) for ref, times in arrived.items()} == {r.client_ref: 1 for r in sent}
    assert all(r.attempts == 1 for r in sent)
    by_server = Counter("A" if claimer_pid(r) in worker_pids(cluster["A"]) else
                        "B" if claimer_pid(r) in worker_pids(cluster["B"]) else "?"
                        for r in sent)
    assert by_server["A"] and by_server["B"] and not by_server["?"], by_server
    assert_clean_logs(cluster)


def test_a_server_killed_mid_send_its_claims_go_out_from_the_other(
        cluster, smtp_server, db_app):
    """SIGKILL server A while it hands messages to a slow mail server: B sends what A had
    claimed once the claim runs out, none twice within the claim, none lost."""
    a, b = cluster["A"], cluster["B"]
    a_workers, b_workers = worker_pids(a), worker_pids(b)
    count = 16
    since = len(smtp_server.messages)
    smtp_server.delay = 2.0
    try:
        with db_app.app_context():
            for i in range(count):
                delivery.queue_message(
                    user_id=None, channel="email", destination=f"crash{i}@example.com",
                    kind="notice", template="security_change",
                    values={"when": "10:05", "change": f"message {i}"},
                )
            db.session.commit()
            db.session.remove()

        def held_by_a():
            found = [r for r in rows(db_app, kind="notice")
                     if r.destination.startswith("crash") and r.status == "sending"
                     and r.claimed_by and claimer_pid(r) in a_workers]
            return found

        assert wait_until(held_by_a, timeout=30, every=0.05), "A never claimed a message"
        time.sleep(0.5)  # A is now talking to the mail server
        a.kill_group()
        killed_at = time.time()
        orphans = {r.id: r for r in rows(db_app, kind="notice")
                   if r.destination.startswith("crash") and r.status == "sending"
                   and claimer_pid(r) in a_workers}
        assert orphans, "A finished its messages before it was killed"

        def all_sent():
            found = [r for r in rows(db_app, kind="notice") if r.destination.startswith("crash")]
            return len(found) == count and all(r.status == "sent" for r in found)

        assert wait_until(all_sent, timeout=60), Counter(
            r.status for r in rows(db_app, kind="notice") if r.destination.startswith("crash"))
        time.sleep(2.5)  # a duplicate on its way would arrive now
    finally:
        smtp_server.delay = 0

    sent = {r.id: r for r in rows(db_app, kind="notice") if r.destination.startswith("crash")}
    arrived = smtp_server.by_ref(since)
    # None lost: every message reached the mail server.
    assert set(arrived) >= {r.client_ref for r in sent.values()}
    for delivery_id, orphan in orphans.items():
        row = sent[delivery_id]
        assert claimer_pid(row) in b_workers and row.attempts == 2
        # B's copy came only after A's claim had run out.
        lease_end = orphan.claimed_until.timestamp()
        assert min(arrived[row.client_ref]) >= lease_end - 0.5, (
            arrived[row.client_ref], lease_end, killed_at)
    cut_short = _cut_short_hand_overs(db_app)
    for ref, times in arrived.items():
        times = sorted(times)
        # A second copy within the claim time comes only from a hand-over cut short at its
        # deadline that the mail server, slow to answer, took all the same (SECURITY.md: a
        # send cut off after acceptance may repeat), which a loaded machine can cause. Else
        # only from a message A had handed over in full but not yet marked sent when it died.
        assert ref in cut_short or all(later - earlier >= CLAIM_SECONDS - 1
                                       for earlier, later in zip(times, times[1:])), (ref, times)
    log = b.log()
    assert "Traceback" not in log and " ERROR " not in log, log[-4000:]
