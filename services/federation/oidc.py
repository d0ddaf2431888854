"""ClientGate as an OpenID Connect provider: Authlib's server classes, wrapped thinly.

Only the safe parts of OAuth (RFC 9700): the authorization code flow, PKCE with S256
(required for public clients, accepted for confidential ones), exact redirect URIs, codes
used once and within a minute (a replayed code revokes the tokens it issued), id_tokens
signed with RS256. Every JOSE operation is Authlib's or joserfc's; nothing here builds a
JWT by hand. Client secrets, codes and access tokens are kept only as SHA-256 hashes; the
signing key is kept Fernet-encrypted under a key derived from SECRET_KEY.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import secrets
import threading
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Optional
from urllib.parse import urlsplit

from authlib.integrations.flask_oauth2 import AuthorizationServer, ResourceProtector
from authlib.integrations.flask_oauth2.requests import FlaskOAuth2Payload, FlaskOAuth2Request
from authlib.oauth2.rfc6749 import (
    AccessDeniedError, ClientMixin, InvalidClientError, InvalidGrantError, InvalidRequestError,
    OAuth2Error, OAuth2Request, TokenMixin, UnsupportedResponseTypeError, grants,
)
from authlib.oauth2.rfc6749.util import extract_basic_authorization
from authlib.oauth2.rfc6750 import BearerTokenValidator, InsufficientScopeError
from authlib.oauth2.rfc7636 import CodeChallenge
from authlib.oauth2.rfc9207 import IssuerParameter
from authlib.oidc.core import AuthorizationCodeMixin, UserInfo, UserInfoEndpoint
from authlib.oidc.core.errors import (
    AccountSelectionRequiredError, LoginRequiredError,
    RequestNotSupportedError, RequestURINotSupportedError,
)
from authlib.oidc.core.grants import OpenIDCode
from authlib.oidc.rpinitiated import EndSessionEndpoint
from cryptography.fernet import InvalidToken
from flask import Flask, current_app, g, jsonify, session
from flask import request as flask_request
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet, RSAKey
from sqlalchemy import delete, select, update
from sqlalchemy.orm import joinedload

from db_setup import hold_named_lock
from extensions import db
from models import AuthSession, Event, OAuthClient, OAuthCode, OAuthToken, OIDCSigningKey, User
from services import audit, clock, keys
from services.signin import sessions
from services.federation import access
from services.federation.apps import find_client
from services.urls import absolute_url, origin_of, portal_url

log = logging.getLogger("clientgate.oidc")

CODE_LIFETIME = timedelta(seconds=60)
ACCESS_TOKEN_LIFETIME = timedelta(hours=1)
ID_TOKEN_LIFETIME = timedelta(hours=1)
SCOPES = ("openid", "email", "profile")
SIGNING_ALG = "RS256"
RSA_BITS = 2048
KEY_PURPOSE = b"oidc-signing-key"
# OAuthCode.scope and OAuthCode.nonce are String(255).
MAX_STORED_PARAMETER = 255
# Authorization requests from nobody signed in are noted once per app and address in this
# long: a page left reloading, or a script, must not write a row and a log line a request.
NOTE_WINDOW = timedelta(minutes=10)


def _hash(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


def _fits_a_column(value: Optional[str]) -> bool:
    """None, or text short enough for a String(255) column and free of control characters."""
    if value is None:
        return True
    return isinstance(value, str) and len(value) <= MAX_STORED_PARAMETER \
        and not any(ord(ch) < 32 or 127 <= ord(ch) < 160 for ch in value)


# --- Authlib's view of the rows ---------------------------------------------------------

class Client(ClientMixin):
    """An OAuthClient row as Authlib asks about it."""

    def __init__(self, row: OAuthClient) -> None:
        self.row = row
        self.client_id = row.client_id
        # RP-initiated logout reads the registered post-logout addresses from here: only those
        # given with --post-logout-uri (RP-Initiated Logout 1.0, 3), never the code's
        # redirect_uris, which were registered to receive codes, not people after a logout.
        self.client_metadata = {
            "post_logout_redirect_uris": list(row.post_logout_redirect_uris or []),
            "token_endpoint_auth_method": "none" if row.is_public else "client_secret_basic",
        }

    def get_client_id(self) -> str:
        return self.row.client_id

    def get_default_redirect_uri(self) -> Optional[str]:
        return None  # OpenID Connect: the request always names its redirect_uri

    def get_allowed_scope(self, scope: str) -> str:
        """The scopes asked for that we offer; others are left out, not refused (OIDC Core
        3.1.2.1: scope values not understood SHOULD be ignored), e.g. offline_access."""
        return " ".join(s for s in (scope or "").split() if s in SCOPES)

    def check_redirect_uri(self, redirect_uri: str) -> bool:
        # An exact match (RFC 9700 4.1), and never one registered before _check_uri read the
        # port: sending a browser to a port out of range fails (a 500), so it counts as none.
        return redirect_uri in (self.row.redirect_uris or []) and _port_is_readable(redirect_uri)

    def check_client_secret(self, client_secret: str) -> bool:
        if self.row.secret_hash is None:
            return False
        return hmac.compare_digest(_hash(client_secret), self.row.secret_hash)

    def check_endpoint_auth_method(self, method: str, endpoint: str) -> bool:
        if self.row.is_public:
            return method == "none"
        return method in ("client_secret_basic", "client_secret_post")

    def check_response_type(self, response_type: str) -> bool:
        return response_type == "code"

    def check_grant_type(self, grant_type: str) -> bool:
        return grant_type == "authorization_code"


class Code(AuthorizationCodeMixin):
    """An OAuthCode row as Authlib asks about it."""

    def __init__(self, row: OAuthCode) -> None:
        self.row = row
        self.code_challenge = row.code_challenge
        self.code_challenge_method = row.code_challenge_method

    def get_redirect_uri(self) -> str:
        return self.row.redirect_uri

    def get_scope(self) -> str:
        return self.row.scope

    def get_nonce(self) -> Optional[str]:
        return self.row.nonce

    def get_auth_time(self) -> int:
        return int(self.row.auth_time.timestamp())

    def get_amr(self) -> Optional[list[str]]:
        return list(self.row.amr or []) or None

    def get_acr(self) -> None:
        return None  # no acr_values are offered


def _session_is_live(login: Optional[AuthSession]) -> bool:
    """True while the ClientGate session a code or token was issued under is still live.

    Logout, a password change or reset, "sign out everywhere else", support ending sessions
    and a switched-off account all end sessions, not tokens: what an app holds is worth
    only as much as the sign-in it came from. No session (none recorded, or pruned): dead.
    """
    return login is not None and sessions.is_live(login)


class Token(TokenMixin):
    """An OAuthToken row as Authlib asks about it, with the session it was issued under."""

    def __init__(self, row: OAuthToken, login: Optional[AuthSession] = None) -> None:
        self.row = row
        self.login = login
        self.scope = row.scope

    def check_client(self, client) -> bool:
        return client.row.id == self.row.client_id

    def get_scope(self) -> str:
        return self.row.scope

    def get_expires_in(self) -> int:
        return int((self.row.expires_at - self.row.issued_at).total_seconds())

    def is_expired(self) -> bool:
        return self.row.expires_at <= clock.now()

    def is_revoked(self) -> bool:
        # A token dies with the session it was issued under, and with a switched-off account.
        return self.row.revoked_at is not None or not self.row.user.is_active \
            or not _session_is_live(self.login)

    def get_user(self) -> User:
        return self.row.user

    def get_client(self) -> Client:
        return Client(self.row.client)


# --- clients ----------------------------------------------------------------------------

@dataclass
class NewClient:
    row: OAuthClient
    secret: Optional[str]  # shown once, never stored


def _port_is_readable(uri: str) -> bool:
    """False for a port a browser cannot be sent to: 0, out of range, or not a number."""
    try:
        return urlsplit(uri).port != 0
    except ValueError:
        return False


def _check_uri(uri: str) -> str:
    """An address an app registers: http(s) to a host, no #fragment, no user name or password
    (user:pass@), a port (if any) from 1 to 65535."""
    try:
        parts = urlsplit(uri)
    except ValueError:  # "https://[": an unclosed IPv6 bracket
        raise ValueError(f"{uri!r} is not an address.") from None
    if parts.scheme not in ("https", "http") or not parts.hostname or "#" in uri:
        raise ValueError(f"{uri!r} is not an http(s) address without a #fragment.")
    if not _port_is_readable(uri):
        raise ValueError(f"{uri!r} has no port a browser can use (a number from 1 to 65535).")
    if "@" in parts.netloc:
        raise ValueError(f"{uri!r} has a user name or password in it (before the @): "
                         "register the address without one.")
    if parts.scheme == "http" and parts.hostname not in ("localhost", "127.0.0.1", "::1"):
        raise ValueError(f"{uri!r} must use https (plain http only for localhost).")
    if len(uri) > 512:
        raise ValueError("A redirect address may be at most 512 characters long.")
    return uri


def new_client_id() -> str:
    """A random client_id that a shell command line can always take as an argument: never
    beginning with "-" (which `flask oidc remove-client` would read as an option)."""
    return "cg-" + secrets.token_urlsafe(18)


def add_client(name: str, redirect_uris: list[str], *, public: bool = False,
               post_logout_uris: Optional[list[str]] = None) -> NewClient:
    """Register an app; a confidential one gets a secret, returned here and never again."""
    name = name.strip()
    if not name or len(name) > 120:
        raise ValueError("The name must be 1 to 120 characters long.")
    if not _fits_a_column(name):  # an escape sequence would reach `oidc list-clients`
        raise ValueError("The name must not contain control characters.")
    if not redirect_uris:
        raise ValueError("Give at least one --redirect-uri.")
    uris = [_check_uri(u) for u in redirect_uris]
    after = [_check_uri(u) for u in post_logout_uris or []]
    secret = None if public else secrets.token_urlsafe(32)
    row = OAuthClient(
        client_id=new_client_id(), name=name,
        secret_hash=_hash(secret) if secret else None, redirect_uris=uris,
        post_logout_redirect_uris=after, created_at=clock.now(),
    )
    db.session.add(row)
    db.session.flush()
    audit.record("oidc_client_added", detail={"client_id": row.client_id, "name": name,
                                              "public": public, "by": "cli"})
    return NewClient(row, secret)


def is_browser_app_origin(origin: str) -> bool:
    """True for the origin of a public client's redirect address: a single-page app there may
    read the token and userinfo endpoints' answers (CORS). A confidential client's server
    calls them itself, so its origin gets nothing."""
    registered = db.session.scalars(select(OAuthClient.redirect_uris)
                                    .where(OAuthClient.secret_hash.is_(None)))
    return any(origin_of(uri) == origin for uris in registered for uri in uris or [])


def list_clients() -> list[OAuthClient]:
    return list(db.session.scalars(select(OAuthClient).order_by(OAuthClient.name)))


def remove_client(row: OAuthClient) -> None:
    """Forget an app: its codes and tokens go with it (ON DELETE CASCADE)."""
    db.session.execute(delete(OAuthToken).where(OAuthToken.client_id == row.id))
    db.session.execute(delete(OAuthCode).where(OAuthCode.client_id == row.id))
    audit.record("oidc_client_removed", detail={"client_id": row.client_id, "name": row.name,
                                                "by": "cli"})
    db.session.delete(row)


# --- signing keys -----------------------------------------------------------------------

def _new_key() -> OIDCSigningKey:
    kid = secrets.token_urlsafe(12)
    key = RSAKey.generate_key(RSA_BITS, parameters={"kid": kid, "use": "sig",
                                                   "alg": SIGNING_ALG}, private=True)
    private = json.dumps(key.as_dict(private=True)).encode()
    row = OIDCSigningKey(
        kid=kid, private_key_encrypted=keys.fernet_for(KEY_PURPOSE).encrypt(private).decode(),
        public_jwk=key.as_dict(private=False), created_at=clock.now(),
    )
    db.session.add(row)
    return row


def _published_rows() -> list[OIDCSigningKey]:
    """The current key and every retired key whose id_tokens may still be in use."""
    oldest = clock.now() - ID_TOKEN_LIFETIME
    return list(db.session.scalars(
        select(OIDCSigningKey)
        .where((OIDCSigningKey.retired_at.is_(None)) | (OIDCSigningKey.retired_at > oldest))
        .order_by(OIDCSigningKey.id.desc())
    ))


# The lock for making or rotating keys (db_setup.hold_named_lock).
_KEYS_LOCK = "clientgate:" + KEY_PURPOSE.decode()


def _lock_signing_keys() -> None:
    """Hold the signing keys' lock until commit: one worker at a time makes or rotates a key
    (before the first key there is no row to lock)."""
    hold_named_lock(db.session, _KEYS_LOCK)


def _current_key() -> Optional[OIDCSigningKey]:
    return db.session.scalar(
        select(OIDCSigningKey).where(OIDCSigningKey.retired_at.is_(None))
        .order_by(OIDCSigningKey.id.desc()).limit(1)
    )


def ensure_signing_key() -> OIDCSigningKey:
    """The key that signs now; made (and committed) the first time it is needed.

    Every worker of every server may ask first at the same moment: under the lock, one makes
    the key and the others find it, so all publish the same one key.
    """
    current = _current_key()
    if current is None:
        _lock_signing_keys()
        current = _current_key()  # made by another worker while this one waited?
        if current is None:
            current = _new_key()
            log.info("made the first OpenID Connect signing key %s", current.kid)
        db.session.commit()
    return current


class SigningKeyUnreadable(RuntimeError):
    """The signing key was kept under another SECRET_KEY; the operator must replace it."""


def _private_key(row: OIDCSigningKey) -> RSAKey:
    cache = current_app.extensions.setdefault("oidc_keys", {})
    if row.kid not in cache:
        try:
            data = keys.fernet_for(KEY_PURPOSE).decrypt(row.private_key_encrypted.encode())
        except InvalidToken:
            raise SigningKeyUnreadable(
                "The OpenID Connect signing key cannot be read: SECRET_KEY has changed since "
                "it was made. Run `flask --app app oidc rotate-key --replace-unreadable`."
            ) from None
        cache[row.kid] = RSAKey.import_key(json.loads(data))
    return cache[row.kid]


def jwks() -> dict[str, Any]:
    """The public keys apps check id_tokens with (current first)."""
    ensure_signing_key()
    return {"keys": [dict(row.public_jwk) for row in _published_rows()]}


def rotate_key(*, replace_unreadable: bool = False) -> tuple[OIDCSigningKey, list[str]]:
    """Make a new signing key; the old one stays published until its tokens have expired.

    Returns the new key and the kids of keys dropped because their tokens are all expired.
    """
    _lock_signing_keys()  # not beside a first key being made, nor another rotation
    at = clock.now()
    if not replace_unreadable:
        current = db.session.scalar(select(OIDCSigningKey).where(
            OIDCSigningKey.retired_at.is_(None)).limit(1))
        if current is not None:
            _private_key(current)  # a wrong SECRET_KEY stops here, before anything changes
    db.session.execute(update(OIDCSigningKey).where(OIDCSigningKey.retired_at.is_(None))
                       .values(retired_at=at))
    gone = list(db.session.scalars(select(OIDCSigningKey.kid).where(
        OIDCSigningKey.retired_at <= at - ID_TOKEN_LIFETIME)))
    db.session.execute(delete(OIDCSigningKey).where(
        OIDCSigningKey.retired_at <= at - ID_TOKEN_LIFETIME))
    row = _new_key()
    audit.record("oidc_key_rotated", detail={"kid": row.kid, "dropped": gone, "by": "cli"})
    return row, gone


# --- the people's side: claims ------------------------------------------------------------

def subject(user: User) -> str:
    """The stable `sub` of a user: their id, never the email, which they can change."""
    return str(user.id)


def user_info(user: User, scope: str) -> UserInfo:
    """Claims about the user for the scopes granted (OpenID Connect Core 5.4)."""
    name = user.name or user.email
    # The firm sets every address, and an address change is proved before it is used.
    return UserInfo(sub=subject(user), email=user.email, email_verified=True,
                    name=name).filter(scope)


# --- Authlib's grant, extensions and endpoints -------------------------------------------

class AuthorizationCodeGrant(grants.AuthorizationCodeGrant):
    TOKEN_ENDPOINT_AUTH_METHODS = ["client_secret_basic", "client_secret_post", "none"]

    @staticmethod
    def validate_authorization_redirect_uri(request, client) -> str:
        """The request's redirect_uri, exactly as registered; no default (OpenID Connect).

        Authlib's own check quotes the address in its error, and then refuses to make an
        error whose description holds characters RFC 6749 5.2 forbids there (an "é", a
        quote, a backslash: a ValueError and a 500). Say it without quoting it.
        """
        redirect_uri = request.payload.redirect_uri
        if not redirect_uri:
            raise InvalidRequestError("The redirect_uri is missing.", state=request.payload.state)
        if not client.check_redirect_uri(redirect_uri):
            raise InvalidRequestError("The redirect_uri is not registered for this client.")
        return redirect_uri

    def validate_token_request(self) -> None:
        _refuse_repeated(self.request.form, TOKEN_PARAMETERS)
        super().validate_token_request()

    def save_authorization_code(self, code: str, request) -> None:
        payload = request.payload
        login = current_login()
        db.session.add(OAuthCode(
            code_hash=_hash(code), client_id=request.client.row.id, user_id=request.user.id,
            auth_session_id=login.id if login else None,
            redirect_uri=payload.redirect_uri, scope=request.scope or "",  # as allowed
            nonce=payload.data.get("nonce"),
            code_challenge=payload.data.get("code_challenge"),
            code_challenge_method=payload.data.get("code_challenge_method"),
            auth_time=login.created_at if login else clock.now(),
            amr=list(login.amr or []) if login else [],
            created_at=clock.now(), expires_at=clock.now() + CODE_LIFETIME,
        ))

    def query_authorization_code(self, code: str, client: Client) -> Optional[Code]:
        """The code, claimed for this one use; a second use revokes what the first issued."""
        row = db.session.scalar(select(OAuthCode).where(OAuthCode.code_hash == _hash(code)))
        if row is None or row.client_id != client.row.id:
            return None
        claimed = db.session.execute(
            update(OAuthCode).where(OAuthCode.id == row.id, OAuthCode.used_at.is_(None))
            .values(used_at=clock.now())
        ).rowcount
        if not claimed:
            revoked = db.session.execute(
                update(OAuthToken).where(OAuthToken.code_id == row.id,
                                         OAuthToken.revoked_at.is_(None))
                .values(revoked_at=clock.now())
            ).rowcount
            audit.record("oidc_code_replayed", user_id=row.user_id, outcome="refused",
                         detail={"client_id": client.row.client_id, "client": client.row.name,
                                 "tokens_revoked": revoked})
            db.session.commit()
            return None
        if row.expires_at <= clock.now():
            audit.record("oidc_code_expired", user_id=row.user_id, outcome="refused",
                         detail={"client_id": client.row.client_id, "client": client.row.name})
            db.session.commit()
            return None
        return Code(row)

    def delete_authorization_code(self, authorization_code: Code) -> None:
        pass  # claimed (used_at set) in query_authorization_code, kept to detect a replay

    def authenticate_user(self, authorization_code: Code) -> Optional[User]:
        """The code's user, while their account and the session it was issued under live.

        A code held across a logout (or a password change elsewhere) must not buy a fresh
        id_token; None answers invalid_grant.
        """
        row = authorization_code.row
        login = db.session.get(AuthSession, row.auth_session_id) \
            if row.auth_session_id is not None else None
        if not row.user.is_active or not _session_is_live(login):
            return None
        return row.user

    def validate_requested_scope(self) -> None:
        """The first check once the redirect_uri is known good: scope and nonce must fit
        their columns and carry no control characters (a NUL stops PostgreSQL), so a bad
        one is an invalid_request sent back to the app, never a failed query.

        A scope we do not offer is no error (Authlib's check would make it invalid_scope):
        Client.get_allowed_scope leaves it out next."""
        data = self.request.payload.data
        _refuse_repeated(data, AUTHORIZATION_PARAMETERS)
        _refuse_what_is_not_offered(data)
        _max_age(data)  # a number of seconds, or refused before any sign-in
        for name in ("scope", "nonce"):
            if not _fits_a_column(data.get(name)):
                raise InvalidRequestError(
                    f"{name} must be at most {MAX_STORED_PARAMETER} printable characters.")


# Parameters of an authorization request Authlib does not itself refuse when repeated
# (it checks response_type, client_id, redirect_uri, scope, state and the PKCE pair).
AUTHORIZATION_PARAMETERS = ("nonce", "prompt", "max_age", "id_token_hint", "login_hint",
                            "display", "ui_locales", "acr_values", "claims", "response_mode",
                            "request", "request_uri")
# Every parameter of a token request.
TOKEN_PARAMETERS = ("grant_type", "code", "redirect_uri", "code_verifier", "client_id",
                    "client_secret")


def _refuse_repeated(data, names: tuple[str, ...]) -> None:
    """A parameter given twice is invalid_request (RFC 6749 3.1, 3.2): whatever read the other
    value (a proxy, a log, the app) would see another request than ours."""
    repeated = next((name for name in names if len(data.getlist(name)) > 1), None)
    if repeated is not None:
        raise InvalidRequestError(f"{repeated} is given more than once.")


def _refuse_what_is_not_offered(data) -> None:
    """A request object, a request_uri, a response_mode other than query or a prompt not
    offered would change what the app gets; ignored, the app would never learn they had no
    effect (OIDC Core 6.1, 6.2, 3.1.2.1, and discovery says they are not supported), so each
    is an error sent back to it."""
    if "request" in data:
        raise RequestNotSupportedError("Request objects (request) are not supported.")
    if "request_uri" in data:
        raise RequestURINotSupportedError("request_uri is not supported.")
    if data.get("response_mode", "query") != "query":
        raise InvalidRequestError("Only response_mode=query is offered.")
    _refuse_prompts_not_offered((data.get("prompt") or "").split())


# The prompt values offered (discovery's prompt_values_supported). `consent` is met as well:
# the apps are the firm's own, and the firm gave its clients' consent when it registered one
# (`flask oidc add-client`), so there is nothing more to ask. An app that sends it always
# (some do, to be given a refresh token) must not be turned away for it.
PROMPTS = ("none", "login", "consent")


def _refuse_prompts_not_offered(prompts: list[str]) -> None:
    """prompt=select_account asks for a step ClientGate has no page for (one browser holds
    one person's session), and a code for whoever is signed in would pretend it was taken:
    OIDC Core 3.1.2.1 says such an OP MUST answer with an error. A value not offered at all is
    invalid_request (Initiating User Registration 1.0, 4). `none` with anything else is
    Authlib's invalid_request."""
    if "none" in prompts and len(prompts) > 1:
        return
    if "select_account" in prompts:
        raise AccountSelectionRequiredError("Choosing an account is not offered.")
    if any(prompt not in PROMPTS for prompt in prompts):
        raise InvalidRequestError("Only the prompt values none, login and consent are offered.")


class S256CodeChallenge(CodeChallenge):
    """PKCE with S256 only (RFC 9700 2.1.1): `plain` is refused, and so is a missing method."""

    SUPPORTED_CODE_CHALLENGE_METHOD = ["S256"]
    DEFAULT_CODE_CHALLENGE_METHOD = "S256"

    def validate_code_challenge(self, grant, redirect_uri):
        request = grant.request
        challenge = request.payload.data.get("code_challenge")
        if challenge is None and request.client.row.is_public:
            raise InvalidRequestError("A public client must send a PKCE code_challenge.")
        if challenge is not None and request.payload.data.get("code_challenge_method") != "S256":
            raise InvalidRequestError("code_challenge_method must be S256.")
        return super().validate_code_challenge(grant, redirect_uri)

    def validate_code_verifier(self, grant, result):
        # The code was bound to a verifier: presenting it without one is an invalid grant.
        if grant.request.authorization_code.code_challenge \
                and not grant.request.form.get("code_verifier"):
            raise InvalidGrantError("The code_verifier is missing.")
        try:
            return super().validate_code_verifier(grant, result)
        except InvalidRequestError as error:
            raise InvalidGrantError(error.description) from None


class IDToken(OpenIDCode):
    """The id_token: RS256 with the current key; iss, aud, exp, iat, auth_time, nonce, amr."""

    DEFAULT_EXPIRES_IN = int(ID_TOKEN_LIFETIME.total_seconds())

    def exists_nonce(self, nonce: str, request) -> bool:
        return db.session.scalar(select(OAuthCode.id).where(
            OAuthCode.client_id == request.client.row.id, OAuthCode.nonce == nonce
        ).limit(1)) is not None

    @staticmethod
    def _signing_key() -> tuple[str, RSAKey]:
        """The kid and private key of this request's id_token, looked up once: the header
        and the signature (Authlib asks for each apart) must name the same key, even when
        `rotate-key` on another server commits between the two."""
        if "oidc_signing_key" not in g:
            row = ensure_signing_key()
            g.oidc_signing_key = (row.kid, _private_key(row))
        return g.oidc_signing_key

    def resolve_client_private_key(self, client) -> RSAKey:
        return self._signing_key()[1]

    def get_client_algorithm(self, client) -> str:
        return SIGNING_ALG

    def get_encode_header(self, client) -> dict:
        return {"alg": SIGNING_ALG, "kid": self._signing_key()[0]}

    def get_client_claims(self, client) -> dict:
        return {"iss": portal_url(), "aud": [client.get_client_id()]}

    def generate_user_info(self, user: User, scope: str) -> UserInfo:
        return user_info(user, scope)


class BearerToken(BearerTokenValidator):
    def authenticate_token(self, token_string: str) -> Optional[Token]:
        # One query for the token, its user, its app and the session it was issued under:
        # userinfo needs all four.
        found = db.session.execute(
            select(OAuthToken, AuthSession)
            .outerjoin(AuthSession, AuthSession.id == OAuthToken.auth_session_id)
            .options(joinedload(OAuthToken.user), joinedload(OAuthToken.client))
            .where(OAuthToken.token_hash == _hash(token_string))
        ).first()
        return Token(*found) if found is not None else None


class UserInfoService(UserInfoEndpoint):
    def get_issuer(self) -> str:
        return portal_url()

    def generate_user_info(self, user: User, scope: str) -> UserInfo:
        return user_info(user, scope)

    def resolve_private_key(self) -> RSAKey:
        return _private_key(ensure_signing_key())


class EndSession(EndSessionEndpoint):
    def get_server_jwks(self) -> KeySet:
        return KeySet.import_key_set(jwks())

    def get_algorithms(self) -> list[str]:
        return [SIGNING_ALG]

    def resolve_client_from_id_token_claims(self, id_token_claims: dict) -> Optional[Client]:
        # Our id_tokens name their one app as a one-item list.
        aud = id_token_claims.get("aud")
        if isinstance(aud, list) and len(aud) == 1:
            aud = aud[0]
        return self.server.query_client(aud) if isinstance(aud, str) else None

    def end_session(self, end_session_request) -> None:
        end_browser_session(end_session_request.client.row
                            if end_session_request.client else None)


def current_login() -> Optional[AuthSession]:
    """This browser's live ClientGate session: when it began, and how (amr)."""
    return sessions.session_for_token(session.get("sid"))


def _query_client(client_id: str) -> Optional[Client]:
    row = find_client(client_id)
    return Client(row) if row is not None else None


def _save_token(token: dict, request) -> None:
    code = request.authorization_code
    db.session.add(OAuthToken(
        token_hash=_hash(token["access_token"]), client_id=request.client.row.id,
        user_id=request.user.id, code_id=code.row.id if code else None,
        auth_session_id=code.row.auth_session_id if code else None,
        scope=token.get("scope", ""), issued_at=clock.now(),
        expires_at=clock.now() + timedelta(seconds=int(token["expires_in"])),
    ))


class Issuer(IssuerParameter):
    """`iss` in every authorization response, so an app can tell us from a mix-up (RFC 9207)."""

    def get_issuer(self) -> str:
        return portal_url()


class NoBearerToken(OAuth2Error):
    """A request with no Bearer token at all: 401 naming the scheme, and no error code or
    other error information (RFC 6750 3.1), as for a client unaware it must send one."""

    error = "no_token"
    status_code = 401

    def get_body(self):
        return []

    def get_headers(self):
        return super().get_headers() + [("WWW-Authenticate", "Bearer")]


class TokenSentTwice(InvalidRequestError):
    """The access token in more than one place at once (RFC 6750 2, 3.1)."""

    def get_headers(self):
        return super().get_headers() + [("WWW-Authenticate", 'Bearer error="invalid_request"')]


class ScopeWithoutOpenID(InsufficientScopeError):
    """A token without the scope userinfo needs, with the challenge RFC 6750 3 requires of
    every refusal (Authlib's has none)."""

    def get_headers(self):
        return super().get_headers() + [
            ("WWW-Authenticate", 'Bearer error="insufficient_scope", scope="openid"')]


class BearerProtector(ResourceProtector):
    """Bearer tokens in the Authorization header, or in a POSTed form (RFC 6750 2.1, 2.2).

    Authlib answers a request without one with its own error codes (`missing_authorization`,
    `unsupported_token_type`), which RFC 6750 does not define and apps cannot read."""

    def parse_request_authorization(self, request):
        header = request.headers.get("Authorization")
        in_form = flask_request.form.get("access_token") if flask_request.method == "POST" \
            and flask_request.mimetype == "application/x-www-form-urlencoded" else None
        if header and in_form:
            raise TokenSentTwice("Send the access token in one place only.")
        if in_form:
            return self.get_token_validator("bearer"), in_form
        parts = (header or "").split(None, 1)  # any whitespace after the scheme, as before
        if len(parts) != 2 or parts[0].lower() != "bearer":
            raise NoBearerToken()
        return self.get_token_validator("bearer"), parts[1].strip()

    def validate_request(self, scopes, request, **kwargs):
        try:
            return super().validate_request(scopes, request, **kwargs)
        except InsufficientScopeError:
            raise ScopeWithoutOpenID() from None


class AuthorizationParameters(FlaskOAuth2Payload):
    """An authorization request's parameters: a GET's query, or a POST's form body (OIDC
    Core 3.1.2.1), never the two mixed (Authlib reads both at once)."""

    @property
    def data(self):
        return self._request.form if self._request.method == "POST" else self._request.args


class AuthorizationRequest(FlaskOAuth2Request):
    """Flask's request as Authlib reads an authorization request: AuthorizationParameters."""

    def __init__(self, request) -> None:
        super().__init__(request)
        self.payload = AuthorizationParameters(request)


class Server(AuthorizationServer):
    """Authlib's server, with two answers it would otherwise turn into a 500.

    An unknown response_type is quoted in Authlib's error, which then refuses a description
    with characters RFC 6749 5.2 forbids (ValueError); and Basic credentials that are not
    UTF-8 fail to decode (UnicodeDecodeError). Both are the caller's mistake: a 4xx.
    """

    def create_oauth2_request(self, request):
        if isinstance(request, OAuth2Request):
            return request  # an AuthorizationRequest (validate_authorization, issue_code)
        return super().create_oauth2_request(request)

    def get_authorization_grant(self, request):
        if request.payload.response_type != "code":
            raise UnsupportedResponseTypeError(
                "", "Only response_type=code is offered.",
                redirect_uri=self._checked_redirect_uri(request))
        return super().get_authorization_grant(request)

    def _checked_redirect_uri(self, request) -> Optional[str]:
        """The redirect_uri when it is registered for the request's app, else None: an error
        goes back to the app only then (RFC 6749 4.1.2.1)."""
        client = self.query_client(request.payload.client_id)
        uri = request.payload.redirect_uri
        return uri if client is not None and uri and client.check_redirect_uri(uri) else None

    def authenticate_client(self, request, methods, endpoint="token"):
        try:
            _refuse_two_ways_to_authenticate(request)
            return super().authenticate_client(request, methods, endpoint)
        except UnicodeDecodeError:
            raise InvalidClientError(status_code=401,
                                     description="The client credentials are not text.") from None


def _refuse_two_ways_to_authenticate(request) -> None:
    """Basic credentials and a client_secret in the form at once, or a form client_id naming
    another app than the Basic one: invalid_request (RFC 6749 2.3, 5.2), not whichever
    Authlib happens to try first."""
    client_id, _ = extract_basic_authorization(request.headers)
    if client_id is None:
        return
    form = request.form
    if form.get("client_secret") is not None or form.get("client_id", client_id) != client_id:
        raise InvalidRequestError("Authenticate the client one way only: the Authorization "
                                  "header or the form.")


server = Server()
resource = BearerProtector()


_binding = threading.Lock()
_bound_to: Optional[Flask] = None


def bind(app: Flask) -> None:
    """Bind Authlib's server to the app: the code grant with PKCE and OpenID Connect.

    The blueprint calls this with each request it serves, so this module (and Authlib with
    it) loads with a worker's first OpenID Connect request, not with the app. One server for
    the module, and in tests more than one app in a process: bound again when the app
    changes. Locked, since threads of one worker may ask at once."""
    global _bound_to
    if _bound_to is app:
        return
    with _binding:
        if _bound_to is app:
            return
        app.config.setdefault("OAUTH2_TOKEN_EXPIRES_IN", {
            "authorization_code": int(ACCESS_TOKEN_LIFETIME.total_seconds())})
        app.config.setdefault("OAUTH2_SCOPES_SUPPORTED", list(SCOPES))
        server.init_app(app, query_client=_query_client, save_token=_save_token)
        if not server._token_grants:
            server.register_grant(AuthorizationCodeGrant, [S256CodeChallenge(required=True),
                                                           IDToken(require_nonce=False)])
            resource.register_token_validator(BearerToken())
            server.register_endpoint(UserInfoService(resource_protector=resource))
            server.register_endpoint(EndSession)
            server.register_extension(Issuer())
        _bound_to = app


# --- what the blueprint calls ---------------------------------------------------------------

def discovery() -> dict[str, Any]:
    """The discovery document (OpenID Connect Discovery 1.0, section 3)."""
    return {
        "issuer": portal_url(),
        "authorization_endpoint": absolute_url("oidc.authorize"),
        "token_endpoint": absolute_url("oidc.token"),
        "userinfo_endpoint": absolute_url("oidc.userinfo"),
        "jwks_uri": absolute_url("oidc.jwks_document"),
        "end_session_endpoint": absolute_url("oidc.end_session"),
        "scopes_supported": list(SCOPES),
        "response_types_supported": ["code"],
        "response_modes_supported": ["query"],
        "grant_types_supported": ["authorization_code"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": [SIGNING_ALG],
        "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post",
                                                  "none"],
        "code_challenge_methods_supported": ["S256"],
        "authorization_response_iss_parameter_supported": True,
        "claims_supported": ["sub", "iss", "aud", "exp", "iat", "auth_time", "nonce", "amr",
                             "email", "email_verified", "name"],
        "prompt_values_supported": list(PROMPTS),
        "request_parameter_supported": False,
        "request_uri_parameter_supported": False,
        "claims_parameter_supported": False,
    }


def validate_authorization(user: Optional[User]):
    """Authlib's checks of an authorization request (GET or POST); raises OAuth2Error.
    Returns the grant."""
    return server.get_consent_grant(AuthorizationRequest(flask_request), end_user=user)


def _max_age(data) -> Optional[int]:
    """The request's max_age: a whole number of seconds, 0 or more (OIDC Core 3.1.2.1), or
    None when not sent (or sent empty: RFC 6749 3.1). Checked with the other parameters,
    so a signed-out client is not sent through the sign-in only for the app to get an
    error at the end."""
    raw = data.get("max_age")
    if raw is None or raw == "":
        return None
    if not (raw.isascii() and raw.isdigit()):
        raise InvalidRequestError("max_age must be a whole number of seconds.")
    # More than 12 digits is longer than any sign-in (and int() refuses 4,300 digits).
    return int(raw) if len(raw) <= 12 else None


def login_is_stale(grant, started: Optional[datetime]) -> bool:
    """True when the request's max_age says the sign-in is too old (OIDC Core 3.1.2.1)."""
    max_age = _max_age(grant.request.payload.data)
    if max_age is None or started is None:
        return False
    return (clock.now() - started).total_seconds() > max_age


def issue_code(grant, user: User):
    """Send the browser back to the app with a code (Authlib makes and stores it)."""
    client = grant.client.row
    login = current_login()
    audit.record("oidc_code_issued", user_id=user.id,
                 sign_in_id=login.sign_in_id if login else None, outcome="ok",
                 detail={"client_id": client.client_id, "client": client.name,
                         "redirect_uri": grant.redirect_uri})
    response = server.create_authorization_response(grant.request, grant_user=user,
                                                    grant=grant)
    db.session.commit()
    return response


def error_redirect(error: OAuth2Error):
    """An error the app should hear about, sent to its (already checked) redirect_uri."""
    response = server.handle_error_response(None, error)
    Issuer().add_issuer_parameter(server, response)
    return response


def token_response():
    try:
        response = server.create_token_response()
    except SigningKeyUnreadable as error:
        # Every app's sign-in fails until the key is replaced: the app gets an answer it can
        # read, the operator one line saying what to run (not a traceback per request), and
        # the code stays unused.
        db.session.rollback()
        log.error("/oauth/token could not sign an id_token: %s", error)
        response = jsonify(error="server_error",
                           error_description="The sign-in service cannot sign tokens just now.")
        response.status_code = 500
        return response
    db.session.commit()
    return response


def userinfo_response():
    return server.create_endpoint_response("userinfo")  # reads only: nothing to commit


def validate_end_session():
    """Authlib's checks of a logout request (id_token_hint, post_logout_redirect_uri)."""
    return server.validate_endpoint_request("end_session")


def finish_end_session(request):
    """Sign the browser out; a redirect to the app's registered address, or None."""
    response = server.create_endpoint_response("end_session", request)
    db.session.commit()
    return response


def may_end_at_once(end_request) -> bool:
    """Whether an app's logout request may sign this browser out without asking.

    Only when its id_token_hint is one of ours naming the user signed in on this browser
    (RP-Initiated Logout 1.0, 2): Authlib checks the signature alone, and anyone holds an
    id_token of their own, so a link carrying one must neither sign somebody else out nor
    send them to an app with a `state` its sender chose. With nobody signed in here there
    is nothing to end, and the app's registered post-logout address may be visited. An
    expired hint is still accepted (section 2 asks for that): it is bound to the user.
    """
    claims = end_request.id_token_claims
    if claims is None or claims.get("iss") != portal_url():
        return False
    login = current_login()
    return login is None or claims.get("sub") == str(login.user_id)


def end_browser_session(client: Optional[OAuthClient]) -> None:
    """End this browser's ClientGate session and the tokens issued under it."""
    login = current_login()
    if login is not None:
        db.session.execute(update(OAuthToken).where(
            OAuthToken.auth_session_id == login.id, OAuthToken.revoked_at.is_(None)
        ).values(revoked_at=clock.now()))
        audit.record("logout", user_id=login.user_id,
                     detail={"client_id": client.client_id, "client": client.name}
                     if client else {"by": "app"})
    sessions.revoke(session.get("sid"))


def shows_no_page(grant) -> bool:
    """prompt=none: the app asks that ClientGate show nothing, and answer at once (OIDC Core
    3.1.2.1), so whatever stops the sign-in goes back to the app as an error."""
    return grant.request.payload.data.get("prompt") == "none"


def _our_id_token_claims(id_token: str) -> Optional[dict[str, Any]]:
    """The claims of an id_token this provider signed (expired or not), or None."""
    try:
        token = jwt.decode(id_token, KeySet.import_key_set(jwks()), algorithms=[SIGNING_ALG])
    except (JoseError, ValueError):
        return None
    return token.claims if token.claims.get("iss") == portal_url() else None


def subject_hinted(grant) -> Optional[str]:
    """The `sub` the request's id_token_hint names, when it is one of ours; else None."""
    hint = grant.request.payload.data.get("id_token_hint")
    claims = _our_id_token_claims(hint) if hint else None
    return claims.get("sub") if claims else None


def names_someone_else(grant, user: User, expected: Optional[str]) -> bool:
    """True when the app expects another user than `user` (OIDC Core 3.1.2.1): `expected`
    is the `sub` its id_token_hint named (subject_hinted, or carried through a sign-in),
    and a code for whoever is signed in on this browser (someone else at a shared computer)
    must not be handed over in that person's place.

    A hint we cannot read (not ours, or signed with a key no longer published) names nobody
    we can check: a silent request (prompt=none) is then refused, since it must not guess;
    a request that may show a page goes on as if it had no hint."""
    if expected is None:
        return bool(grant.request.payload.data.get("id_token_hint")) and shows_no_page(grant)
    return expected != subject(user)


def login_required(grant) -> OAuth2Error:
    """prompt=none, but the browser must sign in first: the app hears `login_required`."""
    return LoginRequiredError(redirect_uri=grant.redirect_uri, state=grant.request.payload.state)


def access_denied(grant) -> OAuth2Error:
    """prompt=none, but the access rules keep this user out: the app hears `access_denied`
    (RFC 6749 4.1.2.1), and not the reason, which is the firm's business."""
    return AccessDeniedError(redirect_uri=grant.redirect_uri, state=grant.request.payload.state)


def access_decision(user: User, client: OAuthClient) -> access.Decision:
    """The access rules (services/federation/access.py) for this app, whichever of its
    registered addresses the request names.

    Registering a client is the operator's word that it may use ClientGate; the rules apply
    when they name the host of one of its addresses (PROTECTED_HOSTS), as they do for
    forward-auth. An app is one app at all its addresses: the user must be let in at each
    one on a listed host, so a second address elsewhere (a developer's localhost) opens it
    to nobody the rules keep out.
    """
    decisions = [access.decide(user, uri) for uri in client.redirect_uris or []
                 if access.is_listed_host(urlsplit(uri).hostname)]
    refused = next((decision for decision in decisions if not decision.allowed), None)
    if refused is not None:
        return refused
    if decisions:
        return decisions[0]
    return access.Decision(True, None, "No access rule names this app's addresses.")


def _app(client: Optional[OAuthClient]) -> dict[str, Any]:
    return {"client_id": client.client_id, "client": client.name} if client else {}


def _noted_lately(type_: str, client: Optional[OAuthClient]) -> bool:
    """Whether this address has had a `type_` event about this app (or about an unknown one)
    from nobody signed in within NOTE_WINDOW."""
    details = db.session.scalars(select(Event.detail).where(
        Event.type == type_, Event.created_at > clock.now() - NOTE_WINDOW,
        Event.ip == audit.client_ip(), Event.user_id.is_(None)))
    client_id = client.client_id if client else None
    return any((detail or {}).get("client_id") == client_id for detail in details)


def _first_note(type_: str, client: Optional[OAuthClient]) -> bool:
    """Whether this request is the one to note a `type_` event about this app from this
    address (see _noted_lately); if so, the caller records it and commits.

    Requests arrive at once on several workers and servers, and each would read "not noted
    yet" before any wrote. So one not noted lately takes a lock for this app, address and
    type until commit (there is no row to lock before the note), and asks again: the others
    wait, then find the note. Only the first request in NOTE_WINDOW takes it."""
    if _noted_lately(type_, client):
        return False
    hold_named_lock(db.session,
                    f"oidc-note:{type_}:{audit.client_ip()}:{client.client_id if client else ''}")
    if _noted_lately(type_, client):
        db.session.commit()  # noted meanwhile by another request: let go of the lock
        return False
    return True


def note_app_sign_in(client: OAuthClient, user: Optional[User]) -> None:
    """An app sent the browser to sign in (before anyone is signed in: once per app and
    address in NOTE_WINDOW)."""
    if user is None and not _first_note("oidc_login_asked", client):
        return
    audit.record("oidc_login_asked", user_id=user.id if user else None, detail=_app(client))
    db.session.commit()


def note_refusal(client: OAuthClient, user: User, reason: str) -> None:
    """The access rules stopped this user at ClientGate before the app got anything."""
    login = current_login()
    audit.record("oidc_denied", user_id=user.id, sign_in_id=login.sign_in_id if login else None,
                 outcome="not_allowed", detail={**_app(client), "reason": reason})
    db.session.commit()


def note_bad_request(client: Optional[OAuthClient], error: OAuth2Error,
                     redirect_uri: Optional[str]) -> None:
    """A request we could not send back to the app (unknown app, unregistered address).

    With nobody signed in, once per app and address in NOTE_WINDOW; a signed-in client's
    each time, for their support timeline (the request limit bounds them)."""
    login = current_login()
    if login is None and not _first_note("oidc_bad_request", client):
        return
    detail = {**_app(client), "error": error.error,
              "description": audit.clip(error.description, 200)}
    if redirect_uri:
        detail["redirect_uri"] = audit.clip(redirect_uri, 300)
        if client is not None:
            detail["registered"] = list(client.redirect_uris or [])
    outcome = "redirect_mismatch" if client is not None and redirect_uri and \
        redirect_uri not in (client.redirect_uris or []) else error.error
    audit.record("oidc_bad_request", user_id=login.user_id if login else None,
                 sign_in_id=login.sign_in_id if login else None, outcome=outcome, detail=detail)
    # Before sign-in nobody is known, so the log is where the operator sees it.
    log.warning("refused an authorization request: %s client=%s redirect_uri=%s", outcome,
                client.client_id if client else "unknown", audit.clip(redirect_uri, 300))
    db.session.commit()
