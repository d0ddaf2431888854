#!/usr/bin/env python3
"""A benchmark of the whole sign-in, on SQLite and on PostgreSQL.

    .venv/bin/python bench/run.py            # the full run (1,000,000 sign-ins loaded)
    .venv/bin/python bench/run.py --quick    # a smaller, shorter run to try it out

It starts ClientGate under gunicorn (as many sync workers as cores), an SMTP server on
127.0.0.1 and browser-like clients that go through the whole sign-in: open /login, post the
password, read the code from the message that reached the SMTP server, open and post the code
page, open /portal. In the same run it serves a bare Flask "hello" route with the same gunicorn
settings and prints every figure also as a ratio to that ceiling. It installs nothing and leaves
nothing running: gunicorn, the SMTP server and PostgreSQL stop in `finally` blocks.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import logging
import math
import os
import platform
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Callable, Iterator, Optional

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

# The bench's own app (for setting data up) must read the same settings as gunicorn's.
os.environ["SESSION_COOKIE_SECURE"] = "0"  # plain HTTP on 127.0.0.1
os.environ["CLIENTGATE_ENV"] = "production"
os.environ.setdefault("PORTAL_URL", "http://127.0.0.1")  # production requires it (issue 11)

logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s %(message)s")
logging.getLogger("app").setLevel(logging.ERROR)

from load import Browser, PhaseResult, StepFailed, expect, percentile, run_phase  # noqa: E402
from mailsink import MailSink, free_port  # noqa: E402
from servers import (  # noqa: E402
    BENCH_SENDER, VENV_BIN, Gunicorn, in_service_environment, migrate, service_environment,
    stop_cleanly_on_sigterm,
)
import oidc as oidc_bench  # noqa: E402 - the OpenID Connect phases (bench/oidc.py)

# All the bench's traffic comes from 127.0.0.1, so per-address limits would stop it within
# seconds. They are lifted through configuration only (no code path is changed), and said so.
LIMITS_ENV = {
    "RATELIMIT_ENABLED": "0",  # Flask-Limiter's per-IP and per-account request limits: off
    "CODES_PER_IP_PER_HOUR": "1000000",  # the hourly cap on codes sent to one IP: raised
}

MB = 1024 * 1024
NAN = float("nan")


# --- the machine and the hash ---------------------------------------------------------------

def machine() -> dict:
    model = "unknown"
    try:
        with open("/proc/cpuinfo") as handle:
            for line in handle:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return {"nproc": os.cpu_count() or 1, "cpu": model, "python": platform.python_version(),
            "system": f"{platform.system()} {platform.release()}"}


def load_average() -> str:
    try:
        with open("/proc/loadavg") as handle:
            return " ".join(handle.read().split()[:3])
    except OSError:
        return "unknown"


def hash_cpu_seconds(rounds: int = 5, per_round: int = 6) -> float:
    """CPU seconds (time.process_time, every thread) of one password verification, as the
    app does it: the median of a few rounds."""
    from services.signin import passwords

    from dataset import PASSWORD

    holder = SimpleNamespace(password_hash=passwords.hash_password(PASSWORD))
    passwords.verify_password(holder, PASSWORD)
    samples = []
    for _ in range(rounds):
        started = time.process_time()
        for _ in range(per_round):
            if not passwords.verify_password(holder, PASSWORD):
                raise RuntimeError("the password did not verify")
        samples.append((time.process_time() - started) / per_round)
    return statistics.median(samples)


# --- one backend -----------------------------------------------------------------------------

@dataclass
class Settings:
    workers: int
    seconds: float
    warmup: float
    sign_ins: int
    light: int
    busy: int
    slow_delay: float = 3.0
    profile: Optional[Path] = None
    peer: bool = True


@dataclass
class BackendReport:
    name: str
    phases: dict[str, PhaseResult] = field(default_factory=dict)
    hello_memory: dict = field(default_factory=dict)
    memory: dict = field(default_factory=dict)
    every_feature: Optional[dict] = None  # bench/memory.py's figures, or {"error": why}
    server_errors: list[str] = field(default_factory=list)
    failed_deliveries: int = 0
    bulk: Optional[dict] = None
    scale: dict = field(default_factory=dict)
    support: str = "not run"
    step_cpu: dict = field(default_factory=dict)
    # The argon2 CPU of one password post, as the workers report it (bench/hash_timing.py).
    step_hash: float = 0.0
    notes: list[str] = field(default_factory=list)
    # The peer (Flask-Security-Too, bench/peer_fst.py), measured in the same run.
    peer_step_cpu: dict = field(default_factory=dict)
    peer_step_hash: float = 0.0
    peer_memory: dict = field(default_factory=dict)
    peer_errors: list[str] = field(default_factory=list)


def server_environment(url: str, secret_key: str, mail_port: int) -> dict:
    """The environment gunicorn serves ClientGate with: production's settings, this bench's
    database and mail sink, the limits lifted (LIMITS_ENV)."""
    env = dict(os.environ)
    env.update({
        "CLIENTGATE_ENV": "production", "SECRET_KEY": secret_key, "DATABASE_URL": url,
        "MAIL_SERVER": "127.0.0.1", "MAIL_PORT": str(mail_port),
        "MAIL_DEFAULT_SENDER": BENCH_SENDER,
        "SESSION_COOKIE_SECURE": "0",  # plain HTTP on 127.0.0.1
        # Production answers only its own host: the clients ask for 127.0.0.1 (any port).
        "PORTAL_URL": "http://127.0.0.1",
        **LIMITS_ENV,
    })
    return env


def bench_app(url: str, secret_key: str, mail_port: int):
    """The app in this process, for setting data up (no dispatcher: gunicorn's workers send)."""
    from app import create_app
    from config import Config, database_url

    config = type("BenchConfig", (Config,), {
        "SQLALCHEMY_DATABASE_URI": database_url(url), "SECRET_KEY": secret_key,
        "DISPATCHER_AUTOSTART": False, "MAIL_SERVER": "127.0.0.1", "MAIL_PORT": mail_port,
        "RATELIMIT_ENABLED": False, "PORTAL_URL": "http://127.0.0.1",
        "MAIL_DEFAULT_SENDER": BENCH_SENDER,
    })
    return create_app(config)


class Users:
    """A pool of prepared client accounts; each full sign-in takes a fresh one."""

    def __init__(self, emails: list[str]) -> None:
        self._emails = iter(emails)
        self._lock = threading.Lock()

    def take(self) -> Optional[str]:
        with self._lock:
            return next(self._emails, None)


def sign_in_task(port: int, sink: MailSink, users: Users,
                 mail_timeout: float = 20.0) -> Callable:
    """A phase's task: a full sign-in for the next of `users` (dataset.PASSWORD); False when
    none is left."""
    import dataset

    def sign_in(rec, n):
        email = users.take()
        if email is None:
            return False
        full_sign_in(port, sink, email, dataset.PASSWORD, rec, mail_timeout)
        return True

    return sign_in


def code_post_task(port: int, prepared: list) -> Callable:
    """A phase's task: the right code posted for the next of `prepared` (dataset.prepare_pending),
    each once; False when none is left."""
    import dataset

    waiting = Users(prepared)

    def code_post(rec, n):
        item = waiting.take()
        if item is None:
            return False
        response = Browser(port, cookies=item.cookies).request(
            "POST", "/login/code", {"code": dataset.PREPARED_CODE, "csrf_token": item.csrf})
        expect("POST /login/code", response, 302, "/portal")
        rec.step("POST /login/code", response.seconds)

    return code_post


@dataclass(frozen=True)
class Flow:
    """Where a sign-in's pages are: ClientGate's, or the peer's (Flask-Security-Too)."""

    code_page: str = "/login/code"
    portal: str = "/portal"


CLIENTGATE = Flow()
PEER = Flow(code_page="/tf-validate")


def full_sign_in(port: int, sink: MailSink, email: str, password: str, rec=None,
                 mail_timeout: float = 20.0, flow: Flow = CLIENTGATE) -> Browser:
    """One client through the front door; each step's time goes to `rec`."""
    record = rec.step if rec is not None else (lambda *_: None)
    measure = rec.measure if rec is not None else (lambda *_: None)
    code_page = flow.code_page
    browser = Browser(port)
    page = expect("GET /login", browser.request("GET", "/login"), 200)
    record("GET /login", page.seconds)
    slot = sink.expect(email)
    posted = browser.request("POST", "/login", {
        "email": email, "password": password, "csrf_token": browser.csrf(page, "GET /login")})
    expect("POST /login", posted, 302, code_page)
    record("POST /login", posted.seconds)
    if posted.hash_cpu:
        measure("hash CPU in the worker", posted.hash_cpu)
    after_post = time.monotonic()
    arrival = sink.wait(slot, mail_timeout)
    if arrival is None or not arrival.code:
        raise StepFailed("read code from mail", f"no code for {email} within {mail_timeout} s")
    in_hand = time.monotonic()
    record("read code from mail", in_hand - after_post)
    measure("message at SMTP server", arrival.arrived - after_post)
    sink.forget(email)
    page = expect(f"GET {code_page}", browser.request("GET", code_page), 200)
    record(f"GET {code_page}", page.seconds)
    posted = browser.request("POST", code_page, {
        "code": arrival.code, "csrf_token": browser.csrf(page, f"GET {code_page}")})
    expect(f"POST {code_page}", posted, 302, flow.portal)
    record(f"POST {code_page}", posted.seconds)
    portal = expect(f"GET {flow.portal}", browser.request("GET", flow.portal), 200)
    record(f"GET {flow.portal}", portal.seconds)
    return browser


@contextmanager
def profiling(directory: Optional[Path], label: str, pids: list[int], seconds: float):
    """With --profile: py-spy samples every worker through the phase (collapsed stacks,
    one file per worker, for speedscope or flamegraph.pl)."""
    if directory is None:
        yield
        return
    spy = VENV_BIN / "py-spy"
    if not spy.exists():
        raise SystemExit("--profile needs py-spy: .venv/bin/pip install -r requirements-dev.txt")
    directory.mkdir(parents=True, exist_ok=True)
    samplers = [subprocess.Popen(
        [str(spy), "record", "--pid", str(pid), "--duration", str(math.ceil(seconds)),
         "--rate", "200", "--format", "raw", "--output", str(directory / f"{label}-{pid}.txt")],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) for pid in pids]
    try:
        yield
    finally:
        for sampler in samplers:
            try:
                sampler.wait(timeout=30)
            except subprocess.TimeoutExpired:
                sampler.kill()
                sampler.wait()


def step_cpu(port: int, sink: MailSink, server: Gunicorn, users: "Users", password: str,
             rounds: int = 40, flow: Flow = CLIENTGATE) -> tuple[dict[str, float], float]:
    """Where a sign-in's CPU goes: one client alone, the workers' CPU read before and after
    each step (the kernel counts in 10 ms ticks, so this is a mean over `rounds`); and the
    mean CPU of the password hash inside the password post, as the worker timed it."""
    spent: dict[str, float] = {}
    hashed = 0.0

    def timed(name: str, action, settle: float = 0.03):
        before = server.cpu_seconds()
        result = action()
        time.sleep(settle)  # let the worker finish what the response did not wait for
        spent[name] = spent.get(name, 0.0) + server.cpu_seconds() - before
        return result

    done = 0
    for _ in range(rounds):
        email = users.take()
        if email is None:
            break
        browser = Browser(port)
        page = timed("GET /login", lambda: expect("GET /login", browser.request("GET", "/login"),
                                                  200))
        slot = sink.expect(email)
        fields = {"email": email, "password": password,
                  "csrf_token": browser.csrf(page, "GET /login")}
        code_page, portal = flow.code_page, flow.portal
        posted = timed("POST /login", lambda: expect("POST /login", browser.request(
            "POST", "/login", fields), 302, code_page), settle=0)
        hashed += posted.hash_cpu
        arrival = timed("dispatcher: send the code" if flow is CLIENTGATE else
                        "(code sent inside POST /login)", lambda: sink.wait(slot, 20))
        if arrival is None or not arrival.code:
            raise StepFailed("read code from mail", f"no code for {email}")
        sink.forget(email)
        page = timed(f"GET {code_page}", lambda: expect(
            f"GET {code_page}", browser.request("GET", code_page), 200))
        fields = {"code": arrival.code, "csrf_token": browser.csrf(page, f"GET {code_page}")}
        timed(f"POST {code_page}", lambda: expect(f"POST {code_page}", browser.request(
            "POST", code_page, fields), 302, portal))
        timed(f"GET {portal}", lambda: expect(f"GET {portal}", browser.request("GET", portal),
                                              200))
        done += 1
    if not done:
        return {}, 0.0
    return {name: total / done for name, total in spent.items()}, hashed / done


def server_problems(log_path: Path) -> list[str]:
    """Lines in gunicorn's log that mean something went wrong on the server's side."""
    problems = []
    try:
        lines = log_path.read_text(errors="replace").splitlines()
    except OSError:
        return ["gunicorn log unreadable"]
    markers = (" ERROR ", "Traceback", "[CRITICAL]", "WORKER TIMEOUT", "[ERROR]", "retrying")
    for line in lines:
        if any(marker in line for marker in markers):
            problems.append(line.strip()[:240])
    return problems


# --- more phases: the peer, and bench modules of other features ------------------------------

# Bench modules of other features (bench/forward_auth.py, bench/oidc.py, ...). Each one that
# exists has `run(bench: Bench) -> None`, called while ClientGate serves the empty database;
# it measures with `bench.phase(key, title, task, concurrency)`, and its phases are printed
# with the others (steps not in STEP_ORDER come after them). Add a name here to add a module.
# bench/oidc.py is called directly (oidc_bench.measure); bench/forward_auth.py starts its own
# servers (nginx in front), so main() calls it once, after the backends.
EXTRA_PHASES: list[str] = []


@dataclass
class Bench:
    """What an extra phase module gets: the running server and the bench's tools."""

    backend: str  # "sqlite" or "postgresql"
    port: int  # ClientGate under gunicorn on 127.0.0.1
    server: Gunicorn
    app: object  # ClientGate in this process (no dispatcher), for setting data up
    sink: MailSink
    users: "Users"  # fresh client accounts; take() one per sign-in
    password: str
    settings: Settings
    phase: Callable  # phase(key, title, task(rec, n), concurrency) -> PhaseResult
    sign_in: Callable  # sign_in(email, rec=None) -> Browser signed in through the front door
    out: Callable


def run_extra_phases(bench: Bench, report: BackendReport) -> None:
    for module_name in EXTRA_PHASES:
        if importlib.util.find_spec(module_name) is None:
            continue
        try:
            runner = getattr(importlib.import_module(module_name), "run", None)
            if runner is not None:
                runner(bench)
        except Exception as error:  # one module's failure is reported, not fatal
            note = f"extra phases {module_name}: {type(error).__name__}: {error}"
            report.notes.append(note)
            bench.out(f"  {note}")


def peer_database(url: str, workdir: Path) -> str:
    """A database of its own for the peer, on the same server as ClientGate's."""
    if url.startswith("sqlite"):
        return f"sqlite:///{workdir / 'peer.db'}"
    import psycopg

    with psycopg.connect(url, autocommit=True) as connection:
        connection.execute("DROP DATABASE IF EXISTS peer_fst")
        connection.execute("CREATE DATABASE peer_fst")
    head, _, _ = url.rpartition("/")
    return f"{head}/peer_fst"


def run_peer(name: str, url: str, settings: Settings, hash_cpu: float, env: dict,
             workdir: Path, sink: MailSink, report: BackendReport, phase, out) -> None:
    """Flask-Security-Too's email two-factor sign-in, same gunicorn, driver, mail server."""
    import peer_fst
    from services.signin import passwords

    peer_url = peer_database(url, workdir)
    hash_bound = settings.workers / hash_cpu
    needed = int(hash_bound * (settings.seconds + settings.warmup + 5) * 2 * 1.5) + 200
    # Below 100,000 so no address has six digits in a row (the sink reads the first six).
    emails = [f"peer-{i}@signin.example" for i in range(needed)]
    import dataset

    peer_app = peer_fst.create_app(peer_url, secret_key=env["SECRET_KEY"])
    parameters = peer_fst.add_users(peer_app, emails, dataset.PASSWORD)
    ours = "$".join(passwords.hash_password(dataset.PASSWORD).split("$")[:4])
    out(f"  peer's password hash {parameters}, ClientGate's {ours}")
    if parameters != ours:
        raise RuntimeError("the peer's argon2 parameters differ from ClientGate's")
    users = Users(emails)
    peer_env = dict(env, DATABASE_URL=peer_url)
    port = free_port()
    server = Gunicorn("bench.peer_fst:create_app()", port, peer_env, settings.workers,
                      workdir / "peer.log", "/login")

    def sign_in(rec, n):
        email = users.take()
        if email is None:
            return False
        full_sign_in(port, sink, email, dataset.PASSWORD, rec, flow=PEER)
        return True

    try:
        server.start()
        report.peer_step_cpu, report.peer_step_hash = step_cpu(
            port, sink, server, users, dataset.PASSWORD, flow=PEER)
        out(f"  peer (Flask-Security-Too {peer_fst.version()}): server CPU per sign-in, one "
            f"client alone: {sum(report.peer_step_cpu.values()) * 1000:.0f} ms")
        phase("peer_fast_light", "peer: sign-in, light load", sign_in, settings.light, server)
        phase("peer_fast_busy", "peer: sign-in, busy", sign_in, settings.busy, server)
    finally:
        report.peer_memory = server.memory()
        server.stop()
        report.peer_errors = server_problems(workdir / "peer.log")


def run_backend(name: str, url: str, settings: Settings, hash_cpu: float, out) -> BackendReport:
    from extensions import db
    from models import Delivery
    from services.signin import passwords
    from sqlalchemy import func, select

    import dataset

    report = BackendReport(name)
    workdir = Path(tempfile.mkdtemp(prefix=f"clientgate-bench-{name}-"))
    sink = MailSink().start()
    secret_key = secrets.token_urlsafe(48)
    env = server_environment(url, secret_key, sink.port)
    app = None
    try:
        out(f"\n=== {name} ===")
        started = time.monotonic()
        migrate(env)
        app = bench_app(url, secret_key, sink.port)
        password_hash = passwords.hash_password(dataset.PASSWORD)
        hash_bound = settings.workers / hash_cpu
        per_phase = settings.seconds + settings.warmup + 5
        needed = int(hash_bound * per_phase * 6 * 1.5) + 500
        emails = [f"user-{i}@signin.example" for i in range(needed)]
        dataset.add_users(app, emails, password_hash)
        dataset.add_users(app, ["support@staff.example"], password_hash, role="support")
        users = Users(emails)
        out(f"  schema and {needed:,} users ready in {time.monotonic() - started:.1f} s")

        def phase(key: str, title: str, task, concurrency: int, on: Gunicorn,
                  warmup: float = None, max_tasks: int = 10_000_000) -> PhaseResult:
            warmup = settings.warmup if warmup is None else warmup
            with profiling(settings.profile, f"{name}-{key}", on.worker_pids(),
                           warmup + settings.seconds):
                result = run_phase(key, task, concurrency=concurrency, seconds=settings.seconds,
                                   warmup=warmup, max_tasks=max_tasks, server_cpu=on.cpu_seconds)
            report.phases[key] = result
            errors = f", {result.error_count} errors" if result.error_count else ""
            out(f"  {title:<50} {result.rate:8.1f}/s  CPU/op: server "
                f"{result.cpu_per_task('server') * 1000:6.2f} ms, bench "
                f"{result.cpu_per_task('bench') * 1000:5.2f} ms  ({concurrency} clients{errors})")
            for example in result.error_examples[:3]:
                out(f"      error: {example}")
            return result

        # 1. The ceiling: a bare Flask route under the same gunicorn settings.
        def hello(rec, n):
            response = expect("GET /hello", Browser(hello_port).request("GET", "/hello"), 200)
            rec.step("GET /hello", response.seconds)

        hello_port = free_port()
        with Gunicorn("bench.hello:app", hello_port, env, settings.workers,
                      workdir / "hello.log", "/hello") as hello_server:
            phase("hello_light", "bare Flask hello (ceiling), light load", hello, settings.light,
                  hello_server)
            phase("hello_busy", "bare Flask hello (ceiling), busy", hello, settings.busy,
                  hello_server)
            report.hello_memory = hello_server.memory()

        # 2. ClientGate on an empty database.
        port = free_port()
        sign_in = sign_in_task(port, sink, users)
        slow_sign_in = sign_in_task(port, sink, users,
                                    mail_timeout=settings.slow_delay * 20 + 30)
        app_log = workdir / "gunicorn.log"
        server = Gunicorn("app:create_app()", port, env, settings.workers, app_log, "/healthz")
        try:
            server.start()
            report.step_cpu, report.step_hash = step_cpu(
                port, sink, server, users, dataset.PASSWORD)
            out(f"  server CPU per sign-in, one client alone: "
                f"{sum(report.step_cpu.values()) * 1000:.0f} ms "
                f"(password hash {report.step_hash * 1000:.0f} ms inside the worker, "
                f"{hash_cpu * 1000:.0f} ms measured apart)")
            phase("fast_light", "sign-in, fast mail, light load", sign_in, settings.light, server)
            fast = phase("fast_busy", "sign-in, fast mail, busy", sign_in, settings.busy, server)
            if settings.peer:
                # Right after ClientGate's, so the two see the same machine.
                run_peer(name, url, settings, hash_cpu, env, workdir, sink, report, phase, out)
            sink.delay = settings.slow_delay
            phase("slow_light", f"sign-in, mail server {settings.slow_delay:.0f} s/message, light",
                  slow_sign_in, settings.light, server, warmup=settings.slow_delay + 2)
            slow_clients = settings.busy + math.ceil(
                max(fast.rate, 1.0) * (settings.slow_delay + 1.5))
            phase("slow_busy", f"sign-in, mail server {settings.slow_delay:.0f} s/message, busy",
                  slow_sign_in, slow_clients, server, warmup=settings.slow_delay + 3)
            sink.delay = 0.0
            time.sleep(settings.slow_delay + 1)

            hello_rate = report.phases["hello_busy"].rate
            # Enough for the code post at half the ceiling's rate; what is left is ended after.
            code_count = min(20_000, int(hello_rate / 2 * (settings.seconds + settings.warmup)))
            prepared = dataset.prepare_pending(app, code_count, f"code-{name}", password_hash)
            phase("code_post", "code post alone (prepared sign-ins)",
                  code_post_task(port, prepared), settings.busy, server, max_tasks=len(prepared))
            # Unused prepared sign-ins would all expire at once ten minutes later, and the
            # dispatcher's sweep would end them in the middle of a later phase.
            dataset.end_prepared(app, [item.sign_in_id for item in prepared])
            watching = dataset.prepare_pending(app, 200, f"status-{name}", password_hash)

            def status(rec, n):
                item = watching[(n * 7919 + int(time.monotonic() * 1000)) % len(watching)]
                response = Browser(port, cookies=item.cookies).request("GET", "/login/code/status")
                expect("GET /login/code/status", response, 200)
                rec.step("GET /login/code/status", response.seconds)

            phase("status", "status endpoint", status, settings.busy, server)
            oidc_bench.measure(app, port, server, phase, settings, out)

            run_extra_phases(Bench(
                backend=name, port=port, server=server, app=app, sink=sink, users=users,
                password=dataset.PASSWORD, settings=settings,
                phase=lambda key, title, task, concurrency, **kw: phase(
                    key, title, task, concurrency, server, **kw),
                sign_in=lambda email, rec=None: full_sign_in(port, sink, email,
                                                             dataset.PASSWORD, rec),
                out=out), report)
        finally:
            report.memory.update(server.memory())
            server.stop()

        # 3. A million sign-ins, then the pages that read them.
        plan = dataset.BulkPlan(settings.sign_ins)
        out(f"  loading {plan.sign_ins:,} sign-ins for {plan.users:,} clients "
            f"(+{plan.watched} with {plan.watched_sign_ins} each, full trail) ...")
        report.bulk = dataset.load_million(app, plan, password_hash, progress=out)
        report.scale = dataset.scale(app)
        counts = ", ".join(f"{v:,} {k}" for k, v in report.scale.items())
        bulk = report.bulk
        out(f"  loaded in {bulk['seconds']:.0f} s (rows {bulk['rows_seconds']:.0f} s, "
            f"indexes {bulk['index_seconds']:.0f} s); the database holds {counts}")

        server = Gunicorn("app:create_app()", port, env, settings.workers, app_log, "/healthz")
        try:
            server.start()
            phase("fast_busy_1m", "sign-in, fast mail, busy, at this scale", sign_in,
                  settings.busy, server)
            watching = dataset.prepare_pending(app, 200, f"status1m-{name}", password_hash)
            phase("status_1m", "status endpoint at this scale", status, settings.busy, server)

            has_support_page = any(rule.rule.startswith("/support/clients/")
                                   for rule in app.url_map.iter_rules())
            if not has_support_page:
                report.support = "not available (no /support/clients/<id> route in the app yet)"
                out(f"  support client page: {report.support}")
            else:
                staff = full_sign_in(port, sink, "support@staff.example", dataset.PASSWORD)
                watched = report.bulk["watched"]

                def support_page(rec, n):
                    client_id = watched[(n + int(time.monotonic() * 10)) % len(watched)]
                    response = Browser(port, cookies=staff.cookies).request(
                        "GET", f"/support/clients/{client_id}")
                    expect("GET /support/clients/<id>", response, 200)
                    rec.step("GET /support/clients/<id>", response.seconds)

                phase("support_1m", "support client page at this scale", support_page,
                      settings.light, server)
                report.support = "measured"
        finally:
            for pid, values in server.memory().items():
                report.memory[pid] = values
            server.stop()

        with app.app_context():
            report.failed_deliveries = db.session.scalar(
                select(func.count(Delivery.id)).where(Delivery.status == "failed")) or 0
        report.server_errors = server_problems(app_log)
        report.every_feature = every_feature_memory(url)
        return report
    finally:
        sink.stop()
        if app is not None:
            with app.app_context():
                db.session.remove()
                db.engine.dispose()
        shutil.rmtree(workdir, ignore_errors=True)


def every_feature_memory(url: str) -> dict:
    """bench/memory.py on this database, in a fresh interpreter: what a process holds once it
    has used every feature, and its peak with a password check on top."""
    try:
        run = subprocess.run([sys.executable, str(Path(__file__).with_name("memory.py")),
                              "--database", url, "--json"], cwd=ROOT, capture_output=True,
                             text=True, timeout=300)
    except subprocess.TimeoutExpired:
        return {"error": "bench/memory.py took over 300 s"}  # the phases' figures still print
    if run.returncode != 0 or not run.stdout.strip():
        lines = run.stderr.strip().splitlines() or ["no output"]
        raised = [line for line in lines if "Error: " in line or "Exception: " in line]
        return {"error": f"bench/memory.py failed: {(raised or lines)[-1][:200]}"}
    return json.loads(run.stdout.strip().splitlines()[-1])


# --- backends -------------------------------------------------------------------------------

@contextmanager
def sqlite_database() -> Iterator[str]:
    directory = Path(tempfile.mkdtemp(prefix="clientgate-bench-sqlite-"))
    try:
        yield f"sqlite:///{directory / 'bench.db'}"
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def postgres_database():
    """scripts/pgtemp.py's throwaway server, or None with the reason it cannot run."""
    path = ROOT / "scripts" / "pgtemp.py"
    if not path.exists():
        return None, "scripts/pgtemp.py is not there"
    spec = importlib.util.spec_from_file_location("pgtemp", path)
    pgtemp = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(pgtemp)
    try:
        pgtemp.find_bin_dir()
    except RuntimeError as error:
        return None, str(error)
    return pgtemp.temporary_postgres(), ""


# --- the report -----------------------------------------------------------------------------

def ms(seconds: float) -> str:
    return "    n/a" if seconds != seconds else f"{seconds * 1000:7.1f}"


def ratio(value: float, ceiling: float) -> str:
    if not ceiling or value != value or ceiling != ceiling:
        return "   n/a"
    return f"{value / ceiling:6.3f}"


STEP_ORDER = ("GET /login", "POST /login", "read code from mail", "GET /login/code",
              "POST /login/code", "GET /tf-validate", "POST /tf-validate", "GET /portal",
              "GET /login/code/status", "GET /support/clients/<id>", *oidc_bench.STEPS,
              "GET /hello")


def hash_in(result: Optional[PhaseResult], apart: float) -> float:
    """The password hash's CPU per post as the workers timed it in this phase (the
    Server-Timing of bench/hash_timing.py), or the hash measured apart if none was timed.

    A phase's CPU is compared with the hash of the same phase. On a shared machine, runs in
    one afternoon timed the hash at 253-299 ms apart and 244-256 ms inside the workers, and
    every millisecond of that difference lands in "outside the hash": a slow measurement
    apart once made 63 ms outside the hash read as 11. The workers' own figure
    counts any dispatcher thread that ran beside the hash too, so it errs the other way, by
    the few milliseconds a message send costs."""
    timed = result.extra.get("hash CPU in the worker") if result is not None else None
    return statistics.fmean(timed) if timed else apart


def outside_hash(steps: dict[str, float], hash_cpu: float) -> dict[str, float]:
    """Per request CPU with the password hash (as the worker timed it) taken out of the
    password post."""
    return {name: seconds - (hash_cpu if name == "POST /login" else 0.0)
            for name, seconds in steps.items()}


def side_by_side(report: BackendReport, settings: Settings, hash_cpu: float, out) -> None:
    """ClientGate and the peer in the same run: rates, CPU outside the hash, memory."""
    phases = report.phases
    if "peer_fast_busy" not in phases:
        return
    ours, peer = phases["fast_busy"], phases["peer_fast_busy"]
    hashes = [hash_in(r, hash_cpu) for r in (ours, peer)]
    out(f"\n--- {report.name}: ClientGate and Flask-Security-Too (email two-factor), same run, "
        "same gunicorn, argon2id, driver and mail server ---")
    out(f"  {'':44} {'ClientGate':>12} {'FST peer':>12}")

    def row(label: str, a: str, b: str) -> None:
        out(f"  {label:<44} {a:>12} {b:>12}")

    row("full sign-ins/s, busy", f"{ours.rate:.1f}", f"{peer.rate:.1f}")
    row("hash CPU per post, in the busy workers (ms)", *(f"{h * 1000:.0f}" for h in hashes))
    row("÷ hash-bound limit", *(f"{r.rate * h / settings.workers:.0%}"
                                for r, h in zip((ours, peer), hashes)))
    row("÷ hash-bound limit, by CPU (server + bench)",
        *(f"{h / (r.cpu_per_task('server') + r.cpu_per_task('bench')):.0%}"
          for r, h in zip((ours, peer), hashes)))
    row("server CPU per sign-in, busy (ms)",
        *(f"{r.cpu_per_task('server') * 1000:.1f}" for r in (ours, peer)))
    row("  outside the hash (ms)",
        *(f"{(r.cpu_per_task('server') - h) * 1000:.1f}" for r, h in zip((ours, peer), hashes)))
    row("bench's own CPU per sign-in (ms)",
        *(f"{r.cpu_per_task('bench') * 1000:.1f}" for r in (ours, peer)))
    if report.step_cpu and report.peer_step_cpu:
        a = outside_hash(report.step_cpu, report.step_hash or hash_cpu)
        b = outside_hash(report.peer_step_cpu, report.peer_step_hash or hash_cpu)
        row("one client alone, outside the hash (ms)", f"{sum(a.values()) * 1000:.1f}",
            f"{sum(b.values()) * 1000:.1f}")
        for ours_step, peer_step in zip(a.items(), b.items()):
            row(f"  {ours_step[0]} | {peer_step[0]}"[:44], f"{ours_step[1] * 1000:.1f}",
                f"{peer_step[1] * 1000:.1f}")
    worst = [max((v[1] for v in memory.values()), default=0)
             for memory in (report.memory, report.peer_memory)]
    row("RSS per worker, highest under load (MB)", *(f"{v / MB:.0f}" for v in worst))
    out(f"  peer errors: {peer.error_count + phases['peer_fast_light'].error_count} client, "
        f"{len(report.peer_errors)} server")
    for line in report.peer_errors[:3]:
        out(f"      peer server: {line}")


def print_report(report: BackendReport, settings: Settings, hash_cpu: float, out) -> list:
    phases = report.phases
    hello_busy = phases["hello_busy"]
    hello_light = phases["hello_light"]
    ceiling = hello_busy.rate

    def hello_p(phase_key: str, p: float) -> float:
        base = hello_light if phase_key.endswith("light") else hello_busy
        return percentile(base.steps["GET /hello"], p)

    out(f"\n--- {report.name}: figures (ratios are to the bare Flask hello in the same run) ---")
    out(f"  ceiling: bare hello {ceiling:.0f} requests/s busy, p50 "
        f"{percentile(hello_busy.steps['GET /hello'], 50) * 1000:.1f} ms busy / "
        f"{percentile(hello_light.steps['GET /hello'], 50) * 1000:.1f} ms light")
    out(f"  {'phase':<15} {'rate/s':>8} {'÷hello':>7}  {'step':<26} {'p50 ms':>7} {'p95 ms':>7} "
        f"{'p99 ms':>7}  {'p50,p95,p99 ÷hello':>20} {'n':>6}")
    for key, result in phases.items():
        first = True
        for step in [s for s in STEP_ORDER if s in result.steps] + [
                s for s in result.steps if s not in STEP_ORDER]:
            values = result.steps[step]
            p = [percentile(values, q) for q in (50, 95, 99)]
            rel = ",".join(ratio(v, hello_p(key, q)).strip() for v, q in zip(p, (50, 95, 99)))
            head = (f"  {key:<15} {result.rate:8.1f} {ratio(result.rate, ceiling)} "
                    if first else " " * 35)
            out(f"{head} {step:<26} {ms(p[0])} {ms(p[1])} {ms(p[2])}  {rel:>20} {len(values):>6}")
            first = False
        for measure, values in result.extra.items():
            p = [percentile(values, q) for q in (50, 95, 99)]
            out(f"{' ' * 35} {measure:<26} {ms(p[0])} {ms(p[1])} {ms(p[2])}")
    if report.step_cpu:
        total = sum(report.step_cpu.values())
        in_worker = report.step_hash or hash_cpu
        out(f"  where a sign-in's server CPU goes (one client alone; the hash is "
            f"{in_worker * 1000:.0f} ms of POST /login, as the worker timed it):")
        for name, seconds in report.step_cpu.items():
            out(f"    {name:<28} {seconds * 1000:7.1f} ms  {seconds / total:6.1%}")
        out(f"    {'all but the hash':<28} {(total - in_worker) * 1000:7.1f} ms  "
            f"{(total - in_worker) / total:6.1%}")
    busy = phases["fast_busy"]
    busy_hash = hash_in(busy, hash_cpu)
    outside = busy.cpu_per_task("server") - busy_hash
    out(f"  CPU outside the hash per full sign-in, busy: {outside * 1000:.1f} ms of the workers "
        f"(+ {busy.cpu_per_task('bench') * 1000:.1f} ms of the bench's clients and mail server), "
        f"with the hash as the busy workers timed it ({busy_hash * 1000:.0f} ms a post; "
        f"{hash_cpu * 1000:.0f} ms measured apart); 90% of the hash-bound limit leaves "
        f"{busy_hash / 9 * 1000:.1f} ms")
    side_by_side(report, settings, hash_cpu, out)
    errors = sum(r.error_count for r in phases.values())
    out(f"  client errors: {errors}; server log problems: {len(report.server_errors)}; "
        f"failed deliveries: {report.failed_deliveries}")
    for line in report.server_errors[:5]:
        out(f"      server: {line}")
    hello_rss = max((v[1] for v in report.hello_memory.values()), default=0)
    for pid, (now, busy_peak, kernel_peak) in sorted(report.memory.items()):
        out(f"  worker {pid}: RSS {now / MB:.0f} MB now, {busy_peak / MB:.0f} MB highest sampled "
            f"under load ({ratio(busy_peak, hello_rss).strip()}× hello worker's "
            f"{hello_rss / MB:.0f} MB), {kernel_peak / MB:.0f} MB kernel peak (VmHWM)")
    if report.support != "measured":
        out(f"  support client page: {report.support}")

    # Targets
    def p95(key: str, step: str) -> float:
        result = phases.get(key)
        return percentile(result.steps[step], 95) if result else float("nan")

    # Each phase against the hash as its own workers timed it (hash_in; busy_hash above).
    hash_bound = settings.workers / busy_hash
    fast = phases["fast_busy"].rate
    slow = phases["slow_busy"].rate
    rss_worst = max((v[1] for v in report.memory.values()), default=0)
    def cpu_op(key: str) -> float:
        """Server and bench CPU seconds per operation: what the rate would be limited by on
        an otherwise idle machine, however busy this one was."""
        result = phases.get(key)
        return result.cpu_per_task("server") + result.cpu_per_task("bench") if result else NAN

    def by_cpu(share: float) -> str:
        return "n/a" if share != share else f"{share:.0%}"

    at_rest = max((v[0] for v in report.memory.values()), default=0)
    cpu_outside = phases["fast_busy"].cpu_per_task("server") - busy_hash
    targets = [
        ("zero errors", errors == 0 and not report.server_errors
         and report.failed_deliveries == 0,
         f"{errors} client, {len(report.server_errors)} server, "
         f"{report.failed_deliveries} failed deliveries"),
        ("sign-ins/s >= 90% of hash-bound limit", fast >= 0.9 * hash_bound,
         f"{fast:.1f}/s vs {hash_bound:.1f}/s ({fast / hash_bound:.0%}; by CPU "
         f"{by_cpu(busy_hash / cpu_op('fast_busy'))}; hash {busy_hash * 1000:.0f} ms)"),
        ("CPU outside the hash <= hash / 9 per sign-in",
         cpu_outside <= busy_hash / 9,
         f"{cpu_outside * 1000:.1f} ms vs {busy_hash / 9 * 1000:.1f} ms (workers, busy)"),
        ("slow-mail rate >= 90% of fast-mail rate", slow >= 0.9 * fast,
         f"{slow:.1f}/s vs {fast:.1f}/s ({slow / fast if fast else 0:.0%}; by CPU "
         f"{by_cpu(cpu_op('fast_busy') / cpu_op('slow_busy'))})"),
    ]
    for key, label in (("code_post", "code post"), ("status", "status endpoint"),
                       ("status_1m", "status endpoint at 1M")):
        rate = phases[key].rate if key in phases else 0.0
        targets.append((f"{label} >= 1/3 of bare ceiling", rate >= ceiling / 3,
                        f"{rate:.0f}/s vs {ceiling / 3:.0f}/s ({rate / ceiling:.2f} of ceiling; "
                        f"by CPU {cpu_op('hello_busy') / cpu_op(key):.2f})"))
    for key, label in (("fast_light", "fast mail"), ("slow_light", "slow mail")):
        value = p95(key, "POST /login")
        limit_post = hash_in(phases.get(key), hash_cpu) + 0.050
        targets.append((f"password post p95 <= hash + 50 ms ({label})", value <= limit_post,
                        f"{value * 1000:.0f} ms vs {limit_post * 1000:.0f} ms"))
    for key, label in (("fast_light", "light"), ("fast_busy", "busy")):
        value = percentile(phases[key].extra["message at SMTP server"], 95)
        targets.append((f"message at SMTP within 1 s p95 ({label})", value <= 1.0,
                        f"{value * 1000:.0f} ms"))
    if report.support == "measured":
        value = p95("support_1m", "GET /support/clients/<id>")
        targets.append(("support page < 50 ms p95 at 1M", value < 0.050,
                        f"{value * 1000:.1f} ms"))
    else:
        targets.append(("support page < 50 ms p95 at 1M", None, report.support))
    targets.append(("< 150 MB RSS per worker", rss_worst < 150 * MB if rss_worst else None,
                    f"{rss_worst / MB:.0f} MB highest under load, {at_rest / MB:.0f} MB at rest"))
    every = report.every_feature or {"error": "not measured"}
    if "peak" in every:
        targets.append(("< 150 MB, a process that used every feature", every["peak"] < 150 * MB,
                        f"{every['peak'] / MB:.0f} MB peak with a hash, "
                        f"{every['steps'][-1][1] / MB:.0f} MB at rest (bench/memory.py)"))
    else:
        targets.append(("< 150 MB, a process that used every feature", None, every["error"]))
    out(f"\n--- {report.name}: targets ---")
    for label, met, detail in targets:
        verdict = "met" if met else ("n/a" if met is None else "NOT MET")
        out(f"  [{verdict:^7}] {label:<48} {detail}")
    return targets


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sign-ins", type=int, default=1_000_000,
                        help="synthetic sign-ins to load before the scale phases (default 1M)")
    parser.add_argument("--seconds", type=float, default=None,
                        help="measured seconds per phase (default 15, or 6 with --quick)")
    parser.add_argument("--backends", default="sqlite,postgresql",
                        help="comma-separated: sqlite, postgresql")
    parser.add_argument("--profile", type=Path, metavar="DIR",
                        help="sample the workers with py-spy in every phase; stacks go to DIR")
    parser.add_argument("--no-peer", action="store_true",
                        help="skip the Flask-Security-Too peer (bench/peer_fst.py)")
    parser.add_argument("--quick", action="store_true",
                        help="100,000 sign-ins and 6 s phases, to try the bench out")
    parser.add_argument("--no-forward-auth", action="store_true",
                        help="skip bench/forward_auth.py (/auth/verify and nginx in front)")
    args = parser.parse_args(argv)
    stop_cleanly_on_sigterm()
    if args.quick:
        args.sign_ins = min(args.sign_ins, 100_000)
    if args.seconds is None:  # on a loaded machine, longer phases still see sign-ins end
        args.seconds = 6.0 if args.quick else 15.0

    def out(line: str = "") -> None:
        print(line, flush=True)

    info = machine()
    workers = info["nproc"]
    settings = Settings(workers=workers, seconds=args.seconds, warmup=2.0,
                        sign_ins=args.sign_ins, light=workers, busy=4 * workers,
                        profile=args.profile, peer=not args.no_peer)
    began = time.monotonic()
    out("ClientGate sign-in benchmark")
    out(f"  load average at start: {load_average()} (other work on the machine skews every "
        "wall-clock figure; compare ratios within one run)")
    out(f"  machine: {info['nproc']} cores, {info['cpu']}, Python {info['python']}, "
        f"{info['system']}")
    out(f"  gunicorn: {workers} sync workers (one per core) on 127.0.0.1; clients: "
        f"{settings.light} (light) or {settings.busy} (busy), closed loop, "
        f"{settings.seconds:.0f} s measured per phase after a warm-up")
    out("  every server (and this process) with the systemd unit's environment "
        "(docs/clientgate.service): "
        + ", ".join(f"{k}={v}" for k, v in service_environment().items()))
    out("  rate limits raised through configuration only, because every request comes from "
        "127.0.0.1: " + ", ".join(f"{k}={v}" for k, v in LIMITS_ENV.items()))
    hash_cpu = hash_cpu_seconds()
    out(f"  one password verification (argon2id), measured apart: {hash_cpu * 1000:.1f} ms CPU; "
        f"hash-bound limit = {workers} cores / that = {workers / hash_cpu:.1f} sign-ins/s (the "
        "targets use the hash as each phase's workers timed it)")

    reports = []
    for name in [b.strip() for b in args.backends.split(",") if b.strip()]:
        if name == "sqlite":
            database = sqlite_database()
        elif name in ("postgresql", "postgres", "pg"):
            name = "postgresql"
            database, reason = postgres_database()
            if database is None:
                out(f"\n=== postgresql: skipped ({reason}) ===")
                continue
        else:
            parser.error(f"unknown backend {name!r}")
        with database as url:
            report = run_backend(name, url, settings, hash_cpu, out)
        reports.append((report, print_report(report, settings, hash_cpu, out)))

    if not args.no_forward_auth:  # issue 13: what forward-auth costs (bench/forward_auth.py)
        import forward_auth

        reports.append((SimpleNamespace(name="forward-auth"),
                        forward_auth.run(workers, args.seconds, out)))

    out("\n=== summary ===")
    for report, targets in reports:
        met = sum(1 for _, ok, _ in targets if ok)
        out(f"  {report.name}: {met} of {len(targets)} targets met")
        for label, ok, detail in targets:
            if ok is False:
                out(f"    not met: {label} ({detail})")
    out(f"  whole run: {(time.monotonic() - began) / 60:.1f} min; load average at the end: "
        f"{load_average()}")
    return 0


if __name__ == "__main__":
    in_service_environment()  # so the hash measured apart is measured as the workers run it
    sys.exit(main())
