"""Which signed-in clients may open which of the firm's apps, from configuration.

The web server in front of the firm's apps asks /auth/verify about every request; OpenID
Connect asks before it hands an app an id_token. Both ask `decide(user, url)` here, and the
portal home lists `apps_for(user)`. Two settings say it all:

    PROTECTED_HOSTS=files.firm.co.uk,docs.firm.co.uk
    ACCESS_RULES='files.firm.co.uk any Shared files; files.firm.co.uk/admin/ admin;
                  portal.firm.co.uk/wiki/ client,support,admin Knowledge base'

PROTECTED_HOSTS are the host names (besides PORTAL_URL's own) that ClientGate guards, and so
the only hosts a `next` address after sign-in may name. ACCESS_RULES is a list of rules
separated by ";" or new lines, each `WHERE WHO [APP NAME]`: WHERE is a host, optionally with
a path prefix; WHO is `any` (every signed-in user) or roles separated by commas; an APP NAME
puts the address on the portal home of everyone the rule lets in. The longest matching prefix
decides. An address on a listed host that no rule names is open to every signed-in user; an
address on any other host is closed.
"""

from __future__ import annotations

import posixpath
import re
from dataclasses import dataclass
from typing import Optional
from urllib.parse import unquote, urlsplit

from flask import Flask, current_app

from models import ROLES

ANY = "any"
ROLE_WORDS = {"client": "clients", "support": "support staff", "admin": "administrators"}


@dataclass(frozen=True)
class Rule:
    """Who may open the addresses on `host` under `prefix`; `app` names it on the portal."""

    host: str
    prefix: str
    roles: tuple[str, ...]  # empty: any signed-in user
    app: Optional[str] = None

    @property
    def who(self) -> str:
        """Who may enter, in words: "support staff and administrators"."""
        if not self.roles:
            return "every signed-in user"
        words = [ROLE_WORDS.get(role, role) for role in self.roles]
        return words[0] if len(words) == 1 else ", ".join(words[:-1]) + " and " + words[-1]

    def admits(self, role: str) -> bool:
        return not self.roles or role in self.roles

    def covers(self, path: str, folded: bool = False) -> bool:
        """True if `path` is the prefix itself or lies under it (by whole path segments);
        `folded`: `path` is case-folded, so compare it with the prefix case-folded."""
        if self.prefix == "/":
            return True
        base = self.prefix.rstrip("/")
        if folded:
            base = base.casefold()
        return path == base or path.startswith(base + "/")

    def __str__(self) -> str:
        return f"{self.host}{self.prefix} {ANY if not self.roles else ','.join(self.roles)}"


@dataclass(frozen=True)
class Decision:
    """The answer for one user and one address, with the reason in plain words."""

    allowed: bool
    rule: Optional[Rule]
    reason: str


@dataclass(frozen=True)
class App:
    """An app a client may open, as the portal home lists it."""

    name: str
    url: str


@dataclass(frozen=True)
class Policy:
    portal_scheme: str
    portal_host: str
    portal_port: Optional[int]
    hosts: frozenset[str]  # the portal's host and PROTECTED_HOSTS, lower case, no port
    rules: tuple[Rule, ...]


def parse_hosts(text: Optional[str]) -> list[str]:
    """PROTECTED_HOSTS: host names separated by commas or spaces, lower-cased."""
    hosts = []
    for item in (text or "").replace(",", " ").split():
        host = item.strip().lower().rstrip(".")
        if "://" in host or "/" in host or ":" in host or not host:
            raise ValueError(
                f"PROTECTED_HOSTS takes host names only (like files.firm.co.uk), not {item!r}"
            )
        hosts.append(host)
    return hosts


def parse_rules(text: Optional[str], hosts: set[str]) -> list[Rule]:
    """ACCESS_RULES as a list of rules; a ValueError says which rule is wrong and why."""
    rules = []
    for raw in (text or "").replace("\n", ";").split(";"):
        words = raw.split()
        if not words:
            continue
        if len(words) < 2:
            raise ValueError(f"ACCESS_RULES: {raw.strip()!r} needs an address and who may "
                             "enter, like 'files.firm.co.uk/admin/ admin'")
        where, who, name = words[0], words[1], " ".join(words[2:]) or None
        if "://" in where:
            raise ValueError(f"ACCESS_RULES: write {where!r} without http:// or https://")
        host, _, path = where.partition("/")
        host = host.lower().rstrip(".")
        if host not in hosts:
            raise ValueError(f"ACCESS_RULES: {host!r} is neither PORTAL_URL's host nor one of "
                             "PROTECTED_HOSTS; add it to PROTECTED_HOSTS")
        if "\\" in unquote(path):
            raise ValueError(f"ACCESS_RULES: write {where!r} with / between its parts, not \\")
        prefix = normal_path("/" + path)
        if who.lower() in (ANY, "*"):
            roles: tuple[str, ...] = ()
        else:
            roles = tuple(r.strip().lower() for r in who.split(",") if r.strip())
            unknown = [r for r in roles if r not in ROLES]
            if unknown or not roles:
                raise ValueError(f"ACCESS_RULES: {who!r} in {raw.strip()!r} is not 'any' or "
                                 f"roles from {', '.join(ROLES)}")
        rules.append(Rule(host=host, prefix=prefix, roles=roles, app=name))
    return rules


_PATH_PARAMETERS = re.compile(r";[^/]*")
# A path with none of these reads the same every way (path_readings): the common case.
_READ_ALIKE = re.compile(r"[%;\\#]|/\.|//")


def normal_path(path: str) -> str:
    """The path as the app may see it: percent-decoded, no `.`/`..` segments, no `//`, no
    path parameters, and a backslash taken as a slash.

    A rule for /admin/ must also catch /public/../admin/, /%61dmin/ and //admin/; and, for
    the apps that read paths so (Tomcat and Spring drop `;jsessionid=...`-style parameters,
    IIS takes a backslash for a slash), /admin;x=1/ and /admin%5Cusers. A rule's own path
    has neither (";" ends a rule, and a backslash is refused), so every rule covering the path
    as written still covers it read this way.
    """
    path = unquote(path or "/").replace("\\", "/")
    return _merged(_PATH_PARAMETERS.sub("", path))


def _rooted(path: str) -> str:
    return path if path.startswith("/") else "/" + path


def _merged(path: str) -> str:
    """`.`, `..` and `//` resolved as a file system does (`a//../b` is `b`)."""
    path = _rooted(path)
    normal = posixpath.normpath(path)
    normal = "/" + normal.lstrip("/")  # normpath keeps a leading "//"
    if path.endswith("/") and normal != "/":
        normal += "/"
    return normal


def _dot_segments_removed(path: str) -> str:
    """`.` and `..` resolved as RFC 3986 (5.2.4) and WHATWG URLs do: `//` is an empty
    segment that `..` takes away, so `/admin//../x` is `/admin/x`."""
    kept: list[str] = []
    segments = _rooted(path).split("/")[1:]
    for segment in segments:
        if segment == "..":
            if kept:
                kept.pop()
        elif segment != ".":
            kept.append(segment)
    if segments and segments[-1] in (".", ".."):
        kept.append("")
    return "/" + "/".join(kept)


def path_readings(path: str) -> set[str]:
    """Every way an app behind may read `path`, for the rules to judge each one.

    The web server passes the path on as the browser wrote it, and apps read it in different
    ways: as sent (routers matching by prefix take `/admin/../x` for the admin area),
    decoded once or (wrongly) twice, with `;...` parameters dropped before decoding (Tomcat,
    Spring) or after, a backslash as a slash (IIS), `..` resolved with `//` merged (a file
    system) or kept as an empty segment (RFC 3986, WHATWG URLs), a `#` kept in the path.
    normal_path's reading is among them.
    """
    if path.startswith("/") and not _READ_ALIKE.search(path):
        return {path}
    readings: set[str] = set()
    for sent in {path, _PATH_PARAMETERS.sub("", path)}:
        once = unquote(sent)
        for decoded in {sent, once, unquote(once)}:
            for slashed in {decoded, decoded.replace("\\", "/")}:
                for text in {slashed, _PATH_PARAMETERS.sub("", slashed)}:
                    readings.update((_rooted(text), _merged(text),
                                     _dot_segments_removed(text)))
    return readings


def build_policy(config) -> Policy:
    """Read and check PROTECTED_HOSTS and ACCESS_RULES (ValueError with the reason)."""
    portal = urlsplit((config.get("PORTAL_URL") or "http://localhost").rstrip("/"))
    portal_host = (portal.hostname or "").lower()
    hosts = {portal_host, *parse_hosts(config.get("PROTECTED_HOSTS"))}
    rules = parse_rules(config.get("ACCESS_RULES"), hosts)
    return Policy(portal_scheme=portal.scheme or "https", portal_host=portal_host,
                  portal_port=portal.port,
                  hosts=frozenset(hosts), rules=tuple(rules))


def init_app(app: Flask) -> None:
    """Check the rules once at start; a wrong rule stops the start with the reason."""
    try:
        found = app.extensions["access_policy"] = build_policy(app.config)
    except ValueError as error:
        raise RuntimeError(str(error)) from None
    others = found.hosts - {found.portal_host}
    if (others or found.rules) and app.config.get("PROXY_FIX_X_HOST", 0) <= 0:
        app.logger.warning(
            "PROTECTED_HOSTS or ACCESS_RULES are set but PROXY_FIX_X_HOST is 0: /auth/verify "
            "cannot trust the web server's X-Original-URL or X-Forwarded-Host, so it cannot "
            "tell which page was asked for (see the guide, 'In front of the firm's apps').")
    domain = (app.config.get("SESSION_COOKIE_DOMAIN") or "").lower().lstrip(".")
    far = sorted(h for h in others if not domain or not (h == domain or h.endswith("." + domain)))
    if far:
        app.logger.warning(
            "The session cookie does not reach %s: set SESSION_COOKIE_DOMAIN to the domain "
            "they share with the portal, or serve those apps under a path of the portal's host.",
            ", ".join(far))


def policy_hosts(app: Flask) -> list[str]:
    """PROTECTED_HOSTS as checked at start (for Flask's TRUSTED_HOSTS)."""
    policy_ = app.extensions["access_policy"]
    return sorted(policy_.hosts - {policy_.portal_host})


def policy() -> Policy:
    app = current_app._get_current_object()
    found = app.extensions.get("access_policy")
    if found is None:
        found = app.extensions["access_policy"] = build_policy(app.config)
    return found


def is_listed_host(host: Optional[str], policy_: Optional[Policy] = None) -> bool:
    """True for PORTAL_URL's host and the PROTECTED_HOSTS (any port)."""
    return bool(host) and host.lower().rstrip(".") in (policy_ or policy()).hosts


def rule_for(url: str, policy_: Optional[Policy] = None) -> tuple[Optional[Rule], bool]:
    """The rule deciding `url` (longest prefix), and whether its host is a listed one."""
    rule, _, listed = _rules_for(url, policy_ or policy())
    return rule, listed


def _rules_for(url: str, policy_: Policy) -> tuple[Optional[Rule], list[Rule], bool]:
    """The rule deciding normal_path's reading of `url`, the rules deciding each of its other
    readings (path_readings), and whether its host is a listed one."""
    parts = urlsplit(url)
    parts.port  # noqa: B018 - raises ValueError for a port out of range
    host = (parts.hostname or "").lower().rstrip(".")
    if not is_listed_host(host, policy_) or parts.scheme not in ("http", "https"):
        return None, [], False
    rules = [rule for rule in policy_.rules if rule.host == host]
    deciding = _best(rules, normal_path(parts.path))
    readings = path_readings(parts.path or "/")
    if parts.fragment:  # not sent by browsers; a server that keeps it in the path may clean it
        readings |= path_readings((parts.path or "/") + "#" + parts.fragment)
    # Apps that ignore case (IIS, a Windows or macOS file system, routers told to) open
    # /ADMIN/ as /admin/: each reading is judged case-folded too.
    judged = [_best(rules, path) for path in readings]
    judged += [_best(rules, path.casefold(), folded=True) for path in readings]
    others = [rule for rule in judged if rule is not None and rule is not deciding]
    return deciding, others, True


def _best(rules: list[Rule], path: str, folded: bool = False) -> Optional[Rule]:
    best: Optional[Rule] = None
    for rule in rules:
        if rule.covers(path, folded) and (best is None or len(rule.prefix) > len(best.prefix)):
            best = rule
    return best


def decide(user, url: Optional[str], policy_: Optional[Policy] = None) -> Decision:
    """May this user open this address? `user` None means nobody is signed in.

    `url` None means the address is unknown (the web server did not say, or is not
    trusted to): then only a site with no rules at all lets a signed-in user in.
    """
    if user is None or not getattr(user, "is_authenticated", False):
        return Decision(False, None, "Nobody is signed in.")
    if not getattr(user, "is_active", True):
        return Decision(False, None, "This account has been closed.")
    policy_ = policy_ or policy()
    if url is None:
        if policy_.rules:
            return Decision(False, None, "The web server did not say which page was asked "
                                         "for, so the access rules cannot be applied.")
        return Decision(True, None, "There are no access rules: every signed-in user may enter.")
    try:
        rule, others, listed = _rules_for(url, policy_)
    except ValueError:  # a malformed address (e.g. a bad port)
        return Decision(False, None, "That address could not be read.")
    if not listed:
        return Decision(False, None, "That address is not one of the sites this portal guards.")
    # The app may read the path another way than normal_path: a rule closing any reading to
    # this user closes the address.
    refusing = [other for other in others if not other.admits(user.role)]
    if refusing and (rule is None or rule.admits(user.role)):
        rule = max(refusing, key=lambda other: len(other.prefix))
    if rule is None:
        return Decision(True, None, "No rule names this address: every signed-in user may enter.")
    if rule.admits(user.role):
        return Decision(True, rule, f"This address is open to {rule.who}.")
    return Decision(False, rule, f"This address is open only to {rule.who}.")


def app_url(rule: Rule) -> str:
    """The address of a rule's app: the portal's scheme (and port, if PORTAL_URL names one;
    the same web server serves them all), the rule's host and prefix."""
    port = policy().portal_port
    return f"{policy().portal_scheme}://{rule.host}{f':{port}' if port else ''}{rule.prefix}"


def apps_for(user) -> list[App]:
    """The named apps this user may open, in the order of ACCESS_RULES, for the portal home."""
    if user is None or not getattr(user, "is_authenticated", False):
        return []
    apps: list[App] = []
    for rule in policy().rules:
        if rule.app is None:
            continue
        url = app_url(rule)
        if decide(user, url).allowed and all(a.url != url for a in apps):
            apps.append(App(name=rule.app, url=url))
    return apps
