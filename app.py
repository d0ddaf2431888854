"""ClientGate: sign-in with one-time codes for a small firm's client portal."""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Optional

import click
from flask import (
    Flask, current_app, flash, g, make_response, redirect, render_template, request,
    send_from_directory, session, url_for,
)
from flask.globals import request_ctx
from flask_login import current_user, login_url
from flask_wtf.csrf import CSRFError
from werkzeug.exceptions import HTTPException
from werkzeug.middleware.proxy_fix import ProxyFix

from blueprints import kept_forms
from blueprints.safety import CSP, HSTS, SECURITY_HEADERS
from config import (
    INSTANCE_DIR, Config, SettingsError, config_from_environment, refuse_unreadable,
    sender_text, trusted_hosts,
)
from db_setup import database_away
from extensions import csrf, db, limiter, login_manager, mail
from heap_setup import give_back
from services import clock, delivery
from services.signin import limits, passwords, sessions
from template_setup import AppEnvironment

log = logging.getLogger("clientgate")


def create_app(config_class: Optional[type[Config]] = None) -> Flask:
    """Build the app: configuration, extensions, blueprints, CLI, error pages, headers."""
    try:
        return _build_app(config_class)
    except SettingsError as refused:
        if click.get_current_context(silent=True) is None:
            raise  # a server's start: the journal keeps it whole
        # A command (`clientgate users list`): the setting's problem on one line, exit 1.
        raise click.ClickException(str(refused)) from None


def _build_app(config_class: Optional[type[Config]]) -> Flask:
    config_class = config_class or config_from_environment()
    app = Flask(__name__, instance_path=str(INSTANCE_DIR))
    # Each template compiled, its scraps freed; macros imported without a walk of the globals.
    app.jinja_environment = AppEnvironment
    app.config.from_object(config_class)
    refuse_unreadable(app.config)
    config_class.check(app.config)
    secure, cookie = app.config["SESSION_COOKIE_SECURE"], app.config["SESSION_COOKIE_NAME"]
    if secure and not cookie.startswith("__"):
        # "__Host-": browsers keep the cookie only if Secure, for path / and this host alone (no
        # Domain), so a sibling subdomain cannot plant or overwrite it. Plain HTTP cannot use it.
        # With SESSION_COOKIE_DOMAIN (apps on sibling hosts) only "__Secure-" is possible.
        prefix = "__Secure-" if app.config.get("SESSION_COOKIE_DOMAIN") else "__Host-"
        app.config["SESSION_COOKIE_NAME"] = prefix + cookie
    # Requests must name PORTAL_URL's host (or one the operator adds): no Host header can put
    # another name into a page or a message (issue 11).
    app.config["TRUSTED_HOSTS"] = trusted_hosts(
        app.config, getattr(config_class, "DEVELOPMENT_HOSTS", ()))

    # Every <int:...> in a route takes only a row id in range (issue 11: an integer from a
    # request too large for the database was a 500).
    from blueprints.safety import IdConverter

    app.url_map.converters["int"] = IdConverter

    register_logging(app)
    register_proxy(app)
    # Before the extensions' own hooks: CSRFProtect would otherwise read a JSON body first.
    register_body_checks(app)
    register_extensions(app)
    register_federation(app)
    register_fast_paths(app)
    register_branding(app)
    register_blueprints(app)
    register_errorhandlers(app)
    register_headers(app)
    register_favicon(app)
    register_template_helpers(app)
    register_cli(app)
    start_background(app)
    return app


def register_logging(app: Flask) -> None:
    """One line per event on standard error, with the configured secrets blanked out."""
    import log_setup

    log_setup.configure(app.config)


def register_proxy(app: Flask) -> None:
    """Trust X-Forwarded-* only from as many proxies as the operator says there are."""
    x_for, x_proto, x_host = (
        app.config["PROXY_FIX_X_FOR"], app.config["PROXY_FIX_X_PROTO"],
        app.config["PROXY_FIX_X_HOST"],
    )
    if x_for or x_proto or x_host:
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=x_for, x_proto=x_proto, x_host=x_host)


def register_extensions(app: Flask) -> None:
    db.init_app(app)
    register_migrations(app)
    csrf.init_app(app)
    # Flask-Mail reads the sender with parseaddr, for which an unquoted comma in the firm's
    # name ("Smith, Jones & Co <...>") separates two addresses: the name goes in quotes.
    if app.config.get("MAIL_DEFAULT_SENDER"):
        app.config["MAIL_DEFAULT_SENDER"] = sender_text(app.config["MAIL_DEFAULT_SENDER"])
    mail.init_app(app)
    limiter.init_app(app)
    login_manager.init_app(app)
    login_manager.login_view = "auth.login"
    login_manager.login_message = "Please sign in to see that page."
    login_manager.login_message_category = "info"
    login_manager.session_protection = None  # the server-side session row does this job
    delivery.init_app(app)
    with app.app_context():
        from db_setup import configure_engine

        configure_engine(db.engine)


def register_migrations(app: Flask) -> None:
    """`flask db ...` (Flask-Migrate), where the app is made by the flask command. A web
    worker never migrates, and Alembic with what it imports (Mako, Pygments) would cost each
    worker 11 MB of its memory."""
    if click.get_current_context(silent=True) is None:
        return
    from flask_migrate import Migrate

    Migrate(app, db, render_as_batch=True, directory=str(app.root_path + "/migrations"))


@login_manager.user_loader
def load_user(user_id: str):
    """A user comes only from a live server-side session, so logout and timeouts hold."""
    return sessions.user_for_token(session.get("sid"), user_id)


@login_manager.unauthorized_handler
def sign_in_first():
    """A signed-in page asked without a live session: sign in, then back to it.

    A form sent after the session ended (its token still good, as the browser kept the
    cookie) says that nothing was done, and keeps what was typed for after the sign-in, as
    the stale-token page does (kept_forms). The passkey page's script gets JSON to follow.
    """
    ended = sessions.ended_user(session.get("sid"))
    if request.method == "POST":
        kept = kept_forms.keep(ended.id if ended is not None else None)
        flash("Your session had ended, so nothing you sent was saved. Sign in again" +
              (", and what you typed will be filled in again (never a password)." if kept
               else ", then try again."), "warning")
        back = kept_forms.page_posted_from()
        if request.accept_mimetypes.best == "application/json":
            return {"error": "signed_out", "redirect": login_url("auth.login", back)}, 401
    else:
        flash("Your session had ended. Please sign in again." if ended is not None
              else login_manager.login_message, "info")
        back = request.full_path.rstrip("?")
    return redirect(login_url("auth.login", back))


def register_fast_paths(app: Flask) -> None:
    """The forward-auth question and the code page's poll: their common answers skip Flask
    (blueprints/fast_path.py). Inside ProxyFix, if any, so forwarded headers count."""
    from blueprints.auth import StatusFastPath
    from blueprints.forward_auth import VerifyFastPath

    for fast_path in (VerifyFastPath, StatusFastPath):
        if isinstance(app.wsgi_app, ProxyFix):
            app.wsgi_app.app = fast_path(app, app.wsgi_app.app)
        else:
            app.wsgi_app = fast_path(app, app.wsgi_app)


def register_federation(app: Flask) -> None:
    """Forward-auth and its access rules (services/federation); a wrong rule stops the start."""
    from services.federation import access

    access.init_app(app)
    # The web server may ask /auth/verify with a protected app's host (Caddy keeps the
    # browser's Host; X-Forwarded-Host under PROXY_FIX_X_HOST): those hosts are the firm's own.
    extra = access.policy_hosts(app)
    hosts = app.config.get("TRUSTED_HOSTS")
    if hosts:
        app.config["TRUSTED_HOSTS"] = list(dict.fromkeys([*hosts, *extra]))
    if extra:
        # After the code, the browser is sent on to the app it asked for; a form's redirect
        # must be allowed by form-action, or the browser stops on the code page.
        scheme = app.extensions["access_policy"].portal_scheme
        extend_csp(app, "form-action", *(f"{scheme}://{host}:*" for host in extra))


def register_branding(app: Flask) -> None:
    """The firm's logo and colour (services/branding.py); a wrong setting stops the start."""
    from services import branding

    try:
        brand = app.extensions["brand"] = branding.load(app.config)
    except ValueError as error:
        raise SettingsError(str(error)) from None
    if branding.logo_origin(brand):
        extend_csp(app, "img-src", branding.logo_origin(brand))
    app.jinja_env.globals["brand"] = brand
    # Emails need the logo's full address; a file is served under PORTAL_URL.
    app.jinja_env.globals["brand_logo_email"] = brand.logo_url or (
        (app.config.get("PORTAL_URL") or "").rstrip("/") + "/brand/logo"
        if brand.logo_file and app.config.get("PORTAL_URL") else None)


def register_blueprints(app: Flask) -> None:
    from blueprints import (
        account, auth, authenticators, branding, dev, forward_auth, health, portal, support,
        webhooks,
    )

    app.register_blueprint(auth.bp)
    app.register_blueprint(authenticators.bp)  # passkeys and trusted devices
    app.register_blueprint(portal.bp)
    app.register_blueprint(account.bp)
    app.register_blueprint(support.bp)
    app.register_blueprint(webhooks.bp)
    app.register_blueprint(health.bp)
    app.register_blueprint(forward_auth.bp)
    app.register_blueprint(branding.bp)
    if app.config["DEV_OUTBOX"]:
        app.register_blueprint(dev.bp)
    register_account_blueprints(app)
    register_oidc_provider(app)


def register_account_blueprints(app: Flask) -> None:
    """Accounts without a shell (issue 12): devices, passwords, invitations, email changes."""
    from blueprints import devices, email_change, passwords

    app.register_blueprint(devices.bp)
    app.register_blueprint(passwords.bp)
    app.register_blueprint(email_change.bp)


def register_oidc_provider(app: Flask) -> None:
    """ClientGate as an OpenID Connect provider (issue 14): its routes. Authlib's server is
    bound to the app with the first request they serve (blueprints/oidc.py)."""
    from blueprints import oidc

    app.register_blueprint(oidc.bp)


# Forms a client can come back to: a stale token sends them back there with a message.
RETRYABLE_FORMS = ("/login", "/login/code", "/account/security",
                   "/password/forgot", "/account/password", "/account/email",
                   "/support/clients/new")
# The forms of emailed links (a new password, an invitation, a new address): a GET of the same
# address shows the form again and uses nothing up.
LINK_FORMS = ("/password/reset/", "/welcome/", "/account/email/confirm/")


def register_errorhandlers(app: Flask) -> None:
    @app.errorhandler(CSRFError)
    def csrf_error(error: CSRFError):
        if request.path in ("/login", "/login/code") and current_user.is_authenticated:
            # Signed in meanwhile, in another tab of this browser: its sign-in gave the session
            # a new token, so this older page's form no longer matches. Nothing was lost.
            flash("You are already signed in: you finished signing in in another tab or window.",
                  "info")
            return redirect(request.full_path.rstrip("?"))
        if request.path in RETRYABLE_FORMS:
            kept = kept_forms.keep(current_user.id if current_user.is_authenticated else None)
            flash("That page had been open too long, so nothing was sent. " +
                  ("What you typed is filled in again (never a password): check it and send "
                   "it again." if kept else "Please try again."), "warning")
            # With its query: /login?next=... must still lead back to the app asked for.
            return redirect(request.full_path.rstrip("?"))
        if request.path.startswith(LINK_FORMS) and request.endpoint:
            flash("That page had been open too long, so nothing was saved. Please try again.",
                  "warning")
            # Built again from the route, not request.path: the token part is the client's
            # text, decoded, and may hold anything (a newline would make no Location header).
            return redirect(url_for(request.endpoint, **(request.view_args or {})))
        if request.path == "/logout":
            # Whoever presses "Log out" on a page left open too long wants out (issue 11), so
            # a form from this site logs out anyway. Another site's form is no wish of the
            # client's: it gets a page with a fresh "Log out" button and changes nothing.
            from blueprints.auth import end_session
            from forms import LogoutForm

            if kept_forms.posted_from_this_site():
                end_session()
                flash("You have logged out.", "success")
                return redirect("/login")
            return render_error(400, "That page had been open too long. Press Log out to "
                                "log out.", logout_form=LogoutForm(formdata=None))
        if request.path == "/login/code/resend":
            flash("That page had been open too long, so nothing was sent. Please enter your "
                  "email and password again to get a code.", "warning")
            return redirect("/login")
        return render_error(400, "That form had expired. Go back, reload the page and try again.")

    @app.errorhandler(HTTPException)
    def http_error(error: HTTPException):
        original = getattr(error, "original_exception", None)
        if original is not None and database_away(original):
            # Raised after the route, while its answer was finished (an after_request hook
            # that reads the database): Flask hands it over as a 500.
            return database_away_page(original)
        messages = {
            400: "The request could not be understood.",
            404: "There is nothing at this address.",
            405: "That page cannot be used that way.",
            413: "That was far more data than any form here takes.",
            429: "Too many attempts. Please wait a little and try again.",
        }
        return render_error(error.code or 500, messages.get(error.code, error.description))

    @app.errorhandler(429)
    def too_many_requests(error: HTTPException):
        """A request limit was hit: say how long to wait, in words and in Retry-After."""
        seconds = limits.limit_wait_seconds()
        if request.endpoint == "auth.login" and request.method == "POST":
            # A paused address is told so, not "try again in a minute" (issue 11). The pause
            # is the address's (limits.paused_until: one rule for an account and for none),
            # never the account's own lock: only the right password may see that, and a
            # limited request checks no password, or the limit would stop no guessing (a
            # locked account would answer every guess) nor any argon2 work.
            until = limits.paused_until(request.form.get("email", type=str) or "")
            if until is not None and until > clock.now() + timedelta(seconds=seconds):
                from blueprints.auth import paused_page
                from forms import LoginForm

                return paused_page(LoginForm(), None, until)
        if error.response is not None:  # a limit that answers in its own words (on_breach)
            response = error.response
        else:
            response = make_response(render_error(429, limits.limited_message(seconds)))
        response.headers["Retry-After"] = str(seconds)
        return response

    @app.errorhandler(Exception)
    def server_error(error: Exception):
        if database_away(error):
            return database_away_page(error)
        # The route's rule, not the path: a link's one-time token is in the path.
        log.exception("unhandled error on %s %s", request.method,
                      request.url_rule.rule if request.url_rule else request.path)
        db.session.rollback()
        return render_error(500, "Something went wrong on our side. Please try again.")


# The database restarting, failing over or locked by a backup: a minute is what it takes.
DATABASE_AWAY_SECONDS = 60
DATABASE_AWAY_WORDS = "We could not reach our records just now. Please try again in a minute."


def database_away_page(error: Exception):
    """503 with Retry-After and plain words, for a database that cannot be reached or is locked
    (db_setup.database_away): passing trouble, not a fault, so one log line, no traceback. The
    page asks nothing more of the database, and the sign-in form comes back with its email."""
    why = (str(getattr(error, "orig", None) or error).strip().splitlines() or [""])[0][:300]
    log.warning("the database could not be reached for %s %s (%s: %s); asked to try again",
                request.method, request.url_rule.rule if request.url_rule else request.path,
                type(error).__name__, why)
    try:
        db.session.rollback()
    except Exception:  # noqa: BLE001 - a connection already lost: the pool replaces it
        pass
    if "_login_user" not in g:
        # Who is signed in is the database's to say, and it is away: the page's menu (base.html)
        # must not ask it, or this page fails too and the client gets a bare 500.
        g._login_user = login_manager.anonymous_user()
    headers = {"Retry-After": str(DATABASE_AWAY_SECONDS)}
    if request.blueprint == "forward_auth":
        from blueprints import forward_auth

        response = forward_auth.database_away(DATABASE_AWAY_WORDS)
        response.headers.update(headers)
        return response
    if request.endpoint == "auth.login" and request.method == "POST" and "email" in request.form:
        from forms import LoginForm

        flash(DATABASE_AWAY_WORDS, "error")
        page = render_template("auth/login.html", form=LoginForm(), waiting=None)
        return page, 503, headers
    response = make_response(render_error(503, DATABASE_AWAY_WORDS, headers=headers))
    response.headers.update(headers)
    return response


def render_error(status: int, message: str, **extra):
    if request_ctx.url_adapter is None:
        # The request named a host this site does not answer to (TRUSTED_HOSTS): no page can
        # be built for it, so a line of text says where the site is.
        return (f"This site is at {current_app.config['PORTAL_URL']}\n", status,
                {"Content-Type": "text/plain; charset=utf-8"})
    if request.accept_mimetypes.best == "application/json" or request.path.startswith(
        ("/login/code/status", "/healthz", "/webhooks/")
    ):
        return {"error": message, "status": status}, status, extra.get("headers", {})
    return render_template("errors/error.html", status=status, message=message, **extra), status


def extend_csp(app: Flask, directive: str, *sources: str) -> None:
    """Allow more sources in one directive of this app's Content-Security-Policy."""
    parts = [p.strip() for p in app.config.get("CONTENT_SECURITY_POLICY", CSP).split(";")]
    parts = [f"{p} {' '.join(sources)}" if p.split()[0] == directive else p for p in parts]
    app.config["CONTENT_SECURITY_POLICY"] = "; ".join(parts)


def register_headers(app: Flask) -> None:
    @app.after_request
    def security_headers(response):
        response.headers.setdefault("Content-Security-Policy",
                                    app.config.get("CONTENT_SECURITY_POLICY", CSP))
        for name, value in SECURITY_HEADERS:
            response.headers.setdefault(name, value)
        if request.endpoint != "static":
            # Every page here is personal or changes by the minute: after logout, Back must
            # not show the portal from the browser's cache.
            response.headers.setdefault("Cache-Control", "no-store")
        if request.is_secure:
            response.headers.setdefault(*HSTS)
        return response


# The only form that takes a file: support's CSV of clients to invite (within MAX_CONTENT_LENGTH).
UPLOAD_ENDPOINTS = ("support.import_clients",)


def register_favicon(app: Flask) -> None:
    """/favicon.ico, which browsers ask for on every site whatever the page links to."""

    @app.route("/favicon.ico")
    def favicon():
        response = send_from_directory(app.static_folder, "favicon.ico",
                                       mimetype="image/vnd.microsoft.icon", max_age=86400)
        response.headers["Cache-Control"] = "public, max-age=86400"
        return response


def register_body_checks(app: Flask) -> None:
    """The pages take HTML forms of text fields; a JSON body or a file upload gets a 415."""

    @app.before_request
    def text_forms_only():
        if request.method in ("GET", "HEAD", "OPTIONS"):
            return None
        # Flask-WTF would read a JSON body as form data, and a file where a form wants text;
        # both end in a 500 for a JSON array or an upload. Only the Vonage webhook takes JSON.
        if (request.is_json and request.blueprint != "webhooks") or (
                request.files and request.endpoint not in UPLOAD_ENDPOINTS):
            return render_error(415, "This address takes a form of text fields, nothing else.")
        return None

    @app.before_request
    def no_nul_characters():
        # No one types a NUL, and PostgreSQL refuses one in any statement: a field holding it
        # would end in a 500 wherever it reached a query. Refused here, for every form and
        # query, but OpenID Connect's, which answer apps in OAuth's own error format and
        # check their parameters themselves (tests/oidc/test_bad_input.py).
        if request.blueprint == "oidc":
            return None
        fields = (request.args, request.form)
        if any("\x00" in key or "\x00" in value
               for given in fields for key, value in given.items(multi=True)):
            return render_error(400, "The form held a character that is not text (a NUL). "
                                     "Please type it again.")
        return None


def register_template_helpers(app: Flask) -> None:
    from services.masking import mask_destination

    tz = app.config["PORTAL_TIMEZONE"]

    @app.template_filter("hhmm")
    def hhmm(moment) -> str:
        """"10:05" in the portal's time zone."""
        return clock.hhmm(moment, tz) if moment else ""

    @app.template_filter("when")
    def when(moment) -> str:
        """"27 Nov 2026, 10:05" in the portal's time zone."""
        return clock.local(moment, tz).strftime("%-d %b %Y, %H:%M") if moment else ""

    app.jinja_env.globals["mask_destination"] = mask_destination
    # The sign-in pages' "a code is on its way" is not true of a message that failed.
    app.jinja_env.globals["message_failed"] = delivery.failed_for
    app.jinja_env.globals["portal_name"] = app.config["PORTAL_NAME"]


def register_cli(app: Flask) -> None:
    from cli import register

    register(app)


def shared_limits_missing(config) -> bool:
    """Whether production counts request limits in each worker's memory (no Redis set)."""
    return (bool(config["RATELIMIT_ENABLED"]) and not config["OUTBOX_WITHOUT_SERVER"]
            and config["RATELIMIT_STORAGE_URI"].startswith("memory://"))


def start_background(app: Flask) -> None:
    """Start the dispatcher where the app serves requests, and say where messages go."""
    context = click.get_current_context(silent=True)
    serving = context is None or context.info_name == "run"
    if not serving:
        return
    for channel, names in delivery.missing_settings(app.config).items():
        if app.config["OUTBOX_WITHOUT_SERVER"]:
            also = " and to /dev/outbox" if app.config["DEV_OUTBOX"] else ""
            app.logger.warning(
                "No %s is set: %s messages go to the console%s, not to clients.",
                " or ".join(names), channel, also,
            )
        elif channel == "sms":
            app.logger.warning(
                "No %s is set: text messages are not offered; clients who chose them get "
                "their codes by email.", " or ".join(names))
    if shared_limits_missing(app.config):
        app.logger.warning(
            "RATELIMIT_STORAGE_URI is not set: each gunicorn worker counts the request limits "
            "on its own, so with several workers they are that many times looser. Set "
            "RATELIMIT_STORAGE_URI=redis://127.0.0.1:6379/0 (operator's guide, section 2).")
    with app.app_context():
        passwords.warm_up()
    give_back()  # what building the app and the dummy hash left free in the heap
    if app.config["DISPATCHER_AUTOSTART"]:
        app.extensions["dispatcher"].start()
