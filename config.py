"""Configuration read from the environment (and a `.env` file beside this one)."""

from __future__ import annotations

import os
import re
import secrets
from email.utils import parseaddr, quote, unquote
from pathlib import Path
from urllib.parse import urlsplit

from dotenv import load_dotenv
from sqlalchemy.pool import NullPool

BASE_DIR = Path(__file__).resolve().parent
INSTANCE_DIR = BASE_DIR / "instance"

load_dotenv(BASE_DIR / ".env")


class SettingsError(RuntimeError):
    """A setting with which ClientGate must not start; the message says what to change."""


class Unreadable:
    """An environment value that could not be read, kept until the app is built.

    The settings are read when this module is imported, before any command has a chance to
    turn an error into one line; refusing there would give the operator a traceback with the
    reason last. `refuse_unreadable` raises it when the app is built (app.create_app).
    """

    def __init__(self, problem: str):
        self.problem = problem

    def __repr__(self) -> str:
        return f"Unreadable({self.problem!r})"


def env_bool(name: str, default: bool = False) -> bool | Unreadable:
    """Read a yes/no environment variable: "1", "true", "yes", "on" or "0", "false", "no", "off".

    Anything else is refused rather than read as no: `SESSION_COOKIE_SECURE=ture` must not
    quietly turn the cookie's Secure flag off.
    """
    value = (os.environ.get(name) or "").strip().lower()
    if not value:
        return default
    if value in {"1", "true", "yes", "on"}:
        return True
    if value in {"0", "false", "no", "off"}:
        return False
    return Unreadable(f"{name} must be 1 or 0 (yes or no), not {os.environ[name].strip()!r}")


def env_int(name: str, default: int) -> int | Unreadable:
    value = os.environ.get(name, "").strip()
    if not value:
        return default
    try:
        return int(value)
    except ValueError:
        return Unreadable(f"{name} must be a whole number, not {value!r}")


def refuse_unreadable(config: dict) -> None:
    """Refuse to start with a setting whose environment value could not be read."""
    for value in config.values():
        if isinstance(value, Unreadable):
            raise SettingsError(value.problem)


def database_url(raw: str | None) -> str:
    """Normalise DATABASE_URL; PostgreSQL URLs use the psycopg 3 driver."""
    if not raw:
        INSTANCE_DIR.mkdir(exist_ok=True)
        return f"sqlite:///{INSTANCE_DIR / 'clientgate.db'}"
    for prefix in ("postgres://", "postgresql://"):
        if raw.startswith(prefix):
            return "postgresql+psycopg://" + raw[len(prefix):]
    return raw


class Config:
    """Production settings: everything comes from the environment."""

    ENV_NAME = "production"
    DEBUG = False
    TESTING = False

    SECRET_KEY = os.environ.get("SECRET_KEY")
    SQLALCHEMY_DATABASE_URI = database_url(os.environ.get("DATABASE_URL"))
    # A database error never writes the statement's values (hashes, encrypted codes) into a
    # log line. A connection PostgreSQL dropped (restart) is replaced, not shown as an error:
    # db_setup.check_before_use. The pool hands out the connection used last, so in quiet
    # hours one connection stays in use and the others wait unpinged.
    SQLALCHEMY_ENGINE_OPTIONS = {
        "hide_parameters": True,
        **({"pool_use_lifo": True} if SQLALCHEMY_DATABASE_URI.startswith("postgresql") else {}),
    }

    MAIL_SERVER = os.environ.get("MAIL_SERVER") or None
    MAIL_PORT = env_int("MAIL_PORT", 25)
    MAIL_USE_TLS = env_bool("MAIL_USE_TLS")
    MAIL_USE_SSL = env_bool("MAIL_USE_SSL")
    MAIL_USERNAME = os.environ.get("MAIL_USERNAME") or None
    MAIL_PASSWORD = os.environ.get("MAIL_PASSWORD") or None
    MAIL_DEFAULT_SENDER = os.environ.get("MAIL_DEFAULT_SENDER") or "ClientGate <no-reply@localhost>"
    MAIL_TIMEOUT = env_int("MAIL_TIMEOUT", 20)
    # The mail server's certificate is checked against the system's CAs (SSL_CERT_FILE names
    # another bundle). Only for tests: a CA bundle that the mail connection alone trusts.
    MAIL_CA_BUNDLE: str | None = None
    MAIL_SUPPRESS_SEND = False

    VONAGE_API_KEY = os.environ.get("VONAGE_API_KEY") or None
    VONAGE_API_SECRET = os.environ.get("VONAGE_API_SECRET") or None
    VONAGE_SMS_FROM = os.environ.get("VONAGE_SMS_FROM") or "ClientGate"
    VONAGE_REST_HOST = os.environ.get("VONAGE_REST_HOST") or "rest.nexmo.com"
    VONAGE_SIGNATURE_SECRET = os.environ.get("VONAGE_SIGNATURE_SECRET") or None
    # Only for tests: a CA bundle that the Vonage client alone trusts.
    VONAGE_CA_BUNDLE: str | None = None
    # Seconds one text's hand-over to Vonage may take in all (connecting, TLS, the answer), as
    # MAIL_TIMEOUT is for an email; the claim must outlast it (check_claim_time). Not read
    # from the environment: Vonage answers in a second or two.
    VONAGE_TIMEOUT = 20

    PORTAL_NAME = os.environ.get("PORTAL_NAME") or "Client Portal"
    # How clients reach the firm, e.g. "call 020 7946 0000 or email help@smithco.co.uk":
    # said wherever a page or message tells them to contact us (services/contact.py).
    PORTAL_CONTACT = (os.environ.get("PORTAL_CONTACT") or "").strip() or None
    # The address clients use, e.g. https://portal.firm.co.uk (services/urls.py). Links in
    # messages, the WebOTP line of a text, the OpenID Connect issuer come from it.
    PORTAL_URL = (os.environ.get("PORTAL_URL") or "").strip() or None
    PORTAL_TIMEZONE = os.environ.get("PORTAL_TIMEZONE") or "Europe/London"

    # Sessions: HttpOnly and SameSite=Lax always, Secure unless told otherwise.
    SESSION_COOKIE_NAME = "clientgate_session"
    SESSION_COOKIE_HTTPONLY = True
    SESSION_COOKIE_SAMESITE = "Lax"
    SESSION_COOKIE_SECURE = env_bool("SESSION_COOKIE_SECURE", True)
    SESSION_IDLE_MINUTES = env_int("SESSION_IDLE_MINUTES", 30)
    SESSION_ABSOLUTE_HOURS = env_int("SESSION_ABSOLUTE_HOURS", 12)
    WTF_CSRF_TIME_LIMIT = None  # the token lives as long as the session

    # The delivery dispatcher runs inside each app process.
    DISPATCHER_AUTOSTART = env_bool("DISPATCHER_AUTOSTART", True)
    DISPATCHER_POLL_SECONDS = 2.0
    # Messages each process hands over at once: a mail server taking 3 s per message still
    # keeps up with the ~7 sign-ins a second one process's password checks allow.
    DISPATCHER_SENDERS = env_int("DISPATCHER_SENDERS", 32)
    # How long a claimed message is left to the process that claimed it before any other
    # (on any server) may send it: a process killed mid-send delays its messages this long.
    # At least three times the longest hand-over (MAIL_TIMEOUT, VONAGE_TIMEOUT), which is cut
    # short two thirds into the claim at the latest, so none is sent twice.
    DISPATCHER_CLAIM_SECONDS = env_int("DISPATCHER_CLAIM_SECONDS", 90)

    # Password hashes: argon2id with argon2-cffi's defaults (RFC 9106 low-memory profile,
    # 64 MiB and 3 passes). Not read from the environment: only the tests lower it.
    PASSWORD_HASH_COST = None

    # Rate limits (Flask-Limiter); memory by default, Redis by URI.
    RATELIMIT_STORAGE_URI = os.environ.get("RATELIMIT_STORAGE_URI") or "memory://"
    RATELIMIT_ENABLED = env_bool("RATELIMIT_ENABLED", True)
    # A Redis that stops answering (paused, or its machine gone) costs a request half a second,
    # not the Redis client's 5 s, before the worker counts in memory; one that answers does
    # so in well under a millisecond, on this machine or the next.
    RATELIMIT_STORAGE_OPTIONS = {"socket_timeout": 0.5, "socket_connect_timeout": 0.5}
    # Hourly caps on codes sent (services/signin/limits.py), per account and per client IP address.
    CODES_PER_ACCOUNT_PER_HOUR = env_int("CODES_PER_ACCOUNT_PER_HOUR", 10)
    CODES_PER_IP_PER_HOUR = env_int("CODES_PER_IP_PER_HOUR", 30)

    # Behind a reverse proxy: how many proxies set X-Forwarded-* headers.
    PROXY_FIX_X_FOR = env_int("PROXY_FIX_X_FOR", 0)
    PROXY_FIX_X_PROTO = env_int("PROXY_FIX_X_PROTO", 0)
    PROXY_FIX_X_HOST = env_int("PROXY_FIX_X_HOST", 0)

    # Days of sign-in history `flask prune` keeps (services/support/retention.py).
    RETENTION_DAYS = env_int("RETENTION_DAYS", 90)

    # Host names this site answers to besides PORTAL_URL's own (comma-separated). Flask
    # refuses a request naming any other host (400); see trusted_hosts() below.
    TRUSTED_HOSTS = [h.strip() for h in os.environ.get("TRUSTED_HOSTS", "").split(",")
                     if h.strip()] or None

    # Shows messages on /dev/outbox instead of sending them when no server is set.
    DEV_OUTBOX = False
    # Messages for a channel without a server (no MAIL_SERVER, no Vonage key) are printed to
    # the console. Never in production: a code must not reach a log line (issue 11).
    OUTBOX_WITHOUT_SERVER = False

    # --- issue 11: request size, health details, receipt signatures --------------------
    # Flask defines MAX_CONTENT_LENGTH as None (no cap); every form here is a few fields.
    MAX_CONTENT_LENGTH = 64 * 1024
    MAX_FORM_MEMORY_SIZE = 64 * 1024
    # /healthz shows its details (workers, queue, missing settings) only to a request from
    # this machine or one carrying "Authorization: Bearer <HEALTHZ_TOKEN>".
    HEALTHZ_TOKEN = os.environ.get("HEALTHZ_TOKEN") or None
    # The signature method chosen in the Vonage dashboard: md5hash, md5, sha1, sha256, sha512.
    VONAGE_SIGNATURE_METHOD = (os.environ.get("VONAGE_SIGNATURE_METHOD") or "md5hash").strip()

    # --- in front of the firm's portal (services/federation/access.py, /auth/verify) ---
    # Host names besides PORTAL_URL's that ClientGate guards; `next` may name only these.
    PROTECTED_HOSTS = os.environ.get("PROTECTED_HOSTS") or ""
    # Who may open what: "WHERE WHO [APP NAME]; ..." (see services/federation/access.py).
    ACCESS_RULES = os.environ.get("ACCESS_RULES") or ""
    # Apps on sibling subdomains (files.firm.co.uk beside portal.firm.co.uk) need the session
    # cookie sent to them too: SESSION_COOKIE_DOMAIN=firm.co.uk. It costs the __Host- cookie
    # prefix (app.py): the cookie becomes __Secure-, which every host under the domain can set.
    SESSION_COOKIE_DOMAIN = (os.environ.get("SESSION_COOKIE_DOMAIN") or "").strip() or None

    # --- the firm's look (services/branding.py) ---
    # The firm's logo: a .png/.jpg/.gif/.webp/.svg file the app serves, or an https:// address.
    PORTAL_LOGO = (os.environ.get("PORTAL_LOGO") or "").strip() or None
    # The brand colour (#rrggbb), darkened at start if white text on it would be hard to read.
    PORTAL_COLOUR = (os.environ.get("PORTAL_COLOUR") or "").strip() or None

    @classmethod
    def check(cls, config: dict) -> None:
        """Refuse to start without the settings production cannot do without."""
        check_secret_key(config.get("SECRET_KEY"))
        check_portal_url(config.get("PORTAL_URL"))
        if not config.get("MAIL_SERVER"):
            raise SettingsError(
                "MAIL_SERVER is not set. Production sends every sign-in code through a mail "
                "server (codes are never written to the log): set MAIL_SERVER, MAIL_PORT and "
                "the other MAIL_ settings in the environment or in .env."
            )
        check_mail_settings(config)
        check_sender(config.get("MAIL_DEFAULT_SENDER"))
        check_text_message_settings(config)
        check_claim_time(config.get("DISPATCHER_CLAIM_SECONDS"), config.get("MAIL_TIMEOUT"),
                         config.get("VONAGE_TIMEOUT") if config.get("VONAGE_API_KEY") else None)
        check_retention_days(config.get("RETENTION_DAYS"))


SIGNATURE_METHODS = ("md5hash", "md5", "sha1", "sha256", "sha512")

# Whoever knows SECRET_KEY can sign a session cookie for anyone (and read every code kept
# encrypted): the example file's placeholder is public, and a short key can be guessed.
SECRET_KEY_MIN_LENGTH = 32
PLACEHOLDER_SECRET_KEYS = ("replace-me-with-the-output-of-the-command-above",)
MAKE_SECRET_KEY = "python3 -c 'import secrets; print(secrets.token_urlsafe(48))'"


def check_secret_key(value: str | None) -> None:
    """SECRET_KEY must be set, not the example's placeholder, and long enough not to guess."""
    if not value or not value.strip():
        raise SettingsError(
            "SECRET_KEY is not set. Put a long random value in the environment or in .env, "
            f"for example the output of: {MAKE_SECRET_KEY}")
    if value.strip() in PLACEHOLDER_SECRET_KEYS:
        raise SettingsError(
            "SECRET_KEY is still the example file's placeholder, which anyone can read. "
            f"Replace it with the output of: {MAKE_SECRET_KEY}")
    if len(value) < SECRET_KEY_MIN_LENGTH:
        raise SettingsError(
            f"SECRET_KEY is too short: it needs at least {SECRET_KEY_MIN_LENGTH} characters "
            f"(this one has {len(value)}). A short key can be guessed, and whoever has it can "
            f"sign in as anyone. Replace it with the output of: {MAKE_SECRET_KEY}")


# "Name <address>", the name quoted or not.
_NAMED_ADDRESS = re.compile(r"\s*(?P<name>.*?)\s*<(?P<address>[^<>]*)>\s*", re.DOTALL)
# The characters that make a name in a header ambiguous unless it is quoted (RFC 5322).
_SPECIALS = re.compile(r'[][\\()<>@,:;".]')


def sender_pair(value) -> tuple[str, str]:
    """MAIL_DEFAULT_SENDER as (name, address): it may be "Name <address>", an address, or
    (name, address). The name is everything before the "<", quoted or not: a firm called
    "Smith, Jones & Co <portal@smithjones.co.uk>" is one sender, where email.utils.parseaddr
    reads two addresses and keeps "Smith"."""
    if isinstance(value, (tuple, list)):
        return str(value[0] or ""), str(value[1] or "")
    named = _NAMED_ADDRESS.fullmatch(value or "")
    if named is None:
        return "", parseaddr(value or "")[1]
    return unquote(named["name"]), named["address"].strip()


def sender_address(value) -> str:
    """The address in MAIL_DEFAULT_SENDER."""
    return sender_pair(value)[1]


def sender_text(value) -> str:
    """MAIL_DEFAULT_SENDER written so that Flask-Mail reads it back as the same sender: its
    name in quotes when it holds a comma or another special character (Flask-Mail parses the
    sender with parseaddr for every message)."""
    name, address = sender_pair(value)
    if not name:
        return address
    return f'"{quote(name)}" <{address}>' if _SPECIALS.search(name) else f"{name} <{address}>"


def check_sender(value) -> None:
    """MAIL_DEFAULT_SENDER must be an address at a real domain. Left unset it is
    no-reply@localhost, which mail providers refuse or file as junk, while the mail server
    still takes the message and the support console shows it "handed over"."""
    address = sender_address(value)
    domain = address.rpartition("@")[2].rstrip(".").lower()
    if "@" in address and "." in domain and not domain.endswith(".localhost"):
        return
    raise SettingsError(
        f"MAIL_DEFAULT_SENDER must be an address at your firm's domain, not {value!r}: mail "
        "from it would be refused or put in junk by clients' mail providers. Set it, for "
        "example MAIL_DEFAULT_SENDER='Smith & Co <portal@smithandco.co.uk>', using an address "
        "your mail server may send from.")


# A mail relay on this machine: MAIL_PASSWORD sent to it without TLS never leaves the server.
LOCAL_MAIL_SERVERS = ("127.0.0.1", "localhost", "::1")


def check_mail_settings(config: dict, *, password_in_clear: bool = False) -> None:
    """Refuse MAIL_ settings with which no message could be sent (each would be retried as a
    passing failure until its code ran out) or which would send MAIL_PASSWORD across the
    network in clear; `password_in_clear` allows the last (development)."""
    starttls, implicit_tls = config.get("MAIL_USE_TLS"), config.get("MAIL_USE_SSL")
    if starttls and implicit_tls:
        raise SettingsError(
            "MAIL_USE_TLS and MAIL_USE_SSL are both on, and no mail server can do both: every "
            "message would fail. Keep one: MAIL_USE_SSL=1 for a server that speaks TLS from "
            "the start (usually port 465), or MAIL_USE_TLS=1 for one that starts it with "
            "STARTTLS (usually port 587); set the other to 0.")
    username, password = config.get("MAIL_USERNAME"), config.get("MAIL_PASSWORD")
    server = str(config.get("MAIL_SERVER") or "").strip().strip("[]").rstrip(".").lower()
    local = server in LOCAL_MAIL_SERVERS
    # Half a login logs in as no one. A relay on this machine usually takes mail without a
    # login, so there it is only unused, and the dispatcher says so in the log instead.
    if username and not password and not local:
        raise SettingsError(
            "MAIL_USERNAME is set but MAIL_PASSWORD is not, so ClientGate would not log in to "
            "the mail server at all. Set MAIL_PASSWORD too, or remove MAIL_USERNAME if the "
            "server takes mail without a login.")
    if password and not username and not local:
        raise SettingsError(
            "MAIL_PASSWORD is set but MAIL_USERNAME is not, so ClientGate would not log in to "
            "the mail server at all. Set MAIL_USERNAME to the account the password is for.")
    if password and not (starttls or implicit_tls) and not local and not password_in_clear:
        raise SettingsError(
            f"MAIL_PASSWORD would be sent to {config.get('MAIL_SERVER')} in clear: set "
            "MAIL_USE_TLS=1 (STARTTLS, usually port 587) or MAIL_USE_SSL=1 (usually port "
            "465). Only a relay on this machine (MAIL_SERVER=localhost, 127.0.0.1 or ::1) "
            "may be given a password without TLS.")
    port = config.get("MAIL_PORT")
    if port is not None and not 1 <= int(port) <= 65535:
        raise SettingsError(
            f"MAIL_PORT must be a port number from 1 to 65535, not {port}: usually 587 with "
            "MAIL_USE_TLS, 465 with MAIL_USE_SSL, or 25 for a relay on this machine.")
    timeout = config.get("MAIL_TIMEOUT")
    if timeout is not None and int(timeout) <= 0:
        raise SettingsError(
            f"MAIL_TIMEOUT must be a number of seconds above 0 (20 by default), not "
            f"{timeout}: it is how long ClientGate waits for the mail server before trying "
            "again later.")


def check_claim_time(claim_seconds, mail_timeout, vonage_timeout=None) -> None:
    """A message is claimed for DISPATCHER_CLAIM_SECONDS, and its hand-over is cut short two
    thirds into the claim at the latest (services.delivery._deadline), so that it is over, and
    recorded, before another worker may claim it and send it again. The claim must be at least
    three times the longest hand-over (MAIL_TIMEOUT for an email, VONAGE_TIMEOUT for a text
    when Vonage is set up), or slow hand-overs would be cut short before their time."""
    if claim_seconds is None or mail_timeout is None:
        return
    longest, what = int(mail_timeout), f"MAIL_TIMEOUT ({mail_timeout} s)"
    if vonage_timeout is not None and vonage_timeout > longest:
        longest, what = int(vonage_timeout), f"the {vonage_timeout} s a text message may take"
    if int(claim_seconds) < 3 * longest:
        raise SettingsError(
            f"DISPATCHER_CLAIM_SECONDS ({claim_seconds}) must be at least three times "
            f"{what}, that is {3 * longest}: a message is left to one worker that long, and "
            "its hand-over must be over well within it, or another worker could send it "
            "again. Raise DISPATCHER_CLAIM_SECONDS (90 by default) or lower MAIL_TIMEOUT.")


# The most days of history `prune` keeps (a hundred years): further back than that is no date
# Python can count to, and no retention anyone means.
RETENTION_MAX_DAYS = 36500


def check_retention_days(value) -> None:
    """RETENTION_DAYS must be a number of days `prune` can count back."""
    if value is not None and not 1 <= int(value) <= RETENTION_MAX_DAYS:
        raise SettingsError(
            f"RETENTION_DAYS must be a number of days up to {RETENTION_MAX_DAYS} (a hundred "
            f"years), not {value}: it is how much sign-in history `flask prune` keeps (90 by "
            "default, 7 at least).")


def check_portal_url(value: str | None) -> None:
    """PORTAL_URL must be an absolute http(s) address with a host name."""
    if not value:
        raise SettingsError(
            "PORTAL_URL is not set. Set it to the address clients use, for example "
            "PORTAL_URL=https://portal.firm.co.uk: links in messages and the code line of a "
            "text message name it, and requests for any other host are refused."
        )
    parts = urlsplit(value)
    try:
        parts.port  # a port that is not a number, or over 65535, raises here
        usable = parts.scheme.lower() in ("http", "https") and bool(parts.hostname)
    except ValueError:
        usable = False
    if not usable:
        raise SettingsError(
            f"PORTAL_URL must be a full address like https://portal.firm.co.uk, not {value!r}")


# What Vonage's guide to sender identity allows in `from`: a name of up to 11 letters and
# digits without spaces (at least one letter), or a number of up to 15 digits in international
# form without a leading + or 00. Anything else "might be modified in transit or not
# delivered at all".
_SMS_SENDER_NAME = re.compile(r"(?=[0-9]*[A-Za-z])[A-Za-z0-9]{1,11}")
_SMS_SENDER_NUMBER = re.compile(r"[1-9][0-9]{6,14}")


def check_sms_sender(value) -> None:
    """VONAGE_SMS_FROM must be a sender networks take. Any other may be changed on the way or
    never delivered, which the firm would learn from clients waiting for their codes."""
    text = str(value or "").strip()
    if _SMS_SENDER_NUMBER.fullmatch(text):
        return
    if _SMS_SENDER_NAME.fullmatch(text):
        return
    raise SettingsError(
        f"VONAGE_SMS_FROM must be the name clients see as the sender, up to 11 letters and "
        f"digits with no spaces (for example SmithCo), or a phone number of your Vonage "
        f"account in international form without the + (447700900123), not {value!r}.")


def check_text_message_settings(config: dict) -> None:
    """The Vonage settings production and development both check at the start."""
    check_signature_method(config.get("VONAGE_SIGNATURE_METHOD"))
    if config.get("VONAGE_API_KEY"):
        check_sms_sender(config.get("VONAGE_SMS_FROM"))


def check_signature_method(value: str | None) -> None:
    if value not in SIGNATURE_METHODS:
        raise SettingsError(
            f"VONAGE_SIGNATURE_METHOD must be one of {', '.join(SIGNATURE_METHODS)}, "
            f"not {value!r}")


def trusted_hosts(config: dict, also: tuple[str, ...] = ()) -> list[str] | None:
    """PORTAL_URL's host, any TRUSTED_HOSTS the operator adds, and `also`."""
    hosts = list(config.get("TRUSTED_HOSTS") or ())
    if config.get("PORTAL_URL"):
        hosts.insert(0, urlsplit(config["PORTAL_URL"]).hostname or "")
    hosts.extend(also)
    hosts = list(dict.fromkeys(h for h in hosts if h))
    return hosts or None


def _instance_secret_key() -> str:
    """A development key made once and kept in instance/, so sessions survive restarts."""
    INSTANCE_DIR.mkdir(exist_ok=True)
    path = INSTANCE_DIR / "dev-secret-key"
    if not path.exists():
        path.write_text(secrets.token_urlsafe(48))
        path.chmod(0o600)
    return path.read_text().strip()


class DevelopmentConfig(Config):
    """Local development: a kept secret key, plain-HTTP cookies and a development outbox."""

    ENV_NAME = "development"
    PORTAL_URL = Config.PORTAL_URL or f"http://localhost:{os.environ.get('PORT') or 5000}"
    DEBUG = True
    SESSION_COOKIE_SECURE = False
    DEV_OUTBOX = True
    OUTBOX_WITHOUT_SERVER = True
    # http://127.0.0.1:5000 keeps working on this machine (development only).
    DEVELOPMENT_HOSTS = ("localhost", "127.0.0.1")

    @classmethod
    def check(cls, config: dict) -> None:
        if not config.get("SECRET_KEY"):
            config["SECRET_KEY"] = _instance_secret_key()
        check_portal_url(config.get("PORTAL_URL"))
        check_text_message_settings(config)
        if config.get("MAIL_SERVER"):  # else messages go to the console and /dev/outbox
            check_mail_settings(config, password_in_clear=True)


class TestConfig(Config):
    """Tests: a throwaway database, CSRF on, and the dispatcher driven by the tests."""

    ENV_NAME = "testing"
    TESTING = True
    SECRET_KEY = "test-secret-key-not-for-production-use-0123456789"
    SQLALCHEMY_DATABASE_URI = database_url(os.environ.get("TEST_DATABASE_URL")) \
        if os.environ.get("TEST_DATABASE_URL") else "sqlite://"
    # Statement values show in test failures. On PostgreSQL no connection waits idle in a
    # pool, so an app a test lets go of leaves no open connection behind (psycopg warns
    # about those, and warnings are errors). The tests' running_app, which always closes its
    # app, pools them (tests/conftest.py).
    SQLALCHEMY_ENGINE_OPTIONS = (
        {"poolclass": NullPool} if SQLALCHEMY_DATABASE_URI.startswith("postgresql") else {}
    )
    SESSION_COOKIE_SECURE = False
    DISPATCHER_AUTOSTART = False
    MAIL_SERVER = None
    VONAGE_API_KEY = None
    VONAGE_API_SECRET = None
    VONAGE_SIGNATURE_SECRET = None
    PORTAL_NAME = "Test Portal"
    PORTAL_CONTACT = None  # the pages' own words; a test that wants the line sets it
    PORTAL_URL = "http://localhost"
    PORTAL_TIMEZONE = "Europe/London"
    RATELIMIT_STORAGE_URI = "memory://"
    # The least argon2id work (one pass over 8 KiB) for the tests' own passwords: a sign-in's
    # hash would otherwise take a quarter of a second of CPU, in hundreds of tests. Servers the
    # tests start as operators do (gunicorn, CLIENTGATE_ENV=production) keep the real cost.
    PASSWORD_HASH_COST = {"time_cost": 1, "memory_cost": 8, "parallelism": 1}
    DEV_OUTBOX = False
    OUTBOX_WITHOUT_SERVER = True
    VONAGE_SIGNATURE_METHOD = "md5hash"

    @classmethod
    def check(cls, config: dict) -> None:
        check_portal_url(config.get("PORTAL_URL"))


CONFIGS = {
    "production": Config,
    "development": DevelopmentConfig,
    "testing": TestConfig,
}


def config_from_environment() -> type[Config]:
    """CLIENTGATE_ENV picks the configuration; production unless told otherwise."""
    name = (os.environ.get("CLIENTGATE_ENV") or "production").strip().lower()
    try:
        return CONFIGS[name]
    except KeyError:
        raise SettingsError(
            f"CLIENTGATE_ENV must be one of {', '.join(CONFIGS)}, not {name!r}"
        ) from None
