#!/usr/bin/env python3
"""What forward-auth costs: /auth/verify against the bare Flask ceiling, and a protected page
through nginx against nginx serving the same app unprotected.

    .venv/bin/python bench/forward_auth.py [--seconds 10]   # on its own
    (bench/run.py runs it too, after the sign-in phases)

It starts, on 127.0.0.1: bench/hello.py and ClientGate under gunicorn with the same settings
(sync workers, one per core), a small upstream app under gunicorn, and Debian's nginx with the
operator's guide's configuration (docs/forward-auth/nginx.conf) plus one unprotected location.
The load comes from one process per core, each with several threads in a closed loop, so the
generator is not held back by one interpreter lock. Each figure is requests answered per
second; the ratios are what the issue sets targets for: verify ≥ 1/2 of hello, protected page
≥ 1/3 of the unprotected one. Everything started stops in `finally` blocks.
"""

from __future__ import annotations

import argparse
import http.client
import multiprocessing
import os
import secrets
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable, Optional

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from servers import BENCH_SENDER, Gunicorn, migrate, stop_cleanly_on_sigterm  # noqa: E402

UPSTREAM = '''
def app(environ, start_response):
    body = ("<!doctype html><title>files</title><p>" + environ.get("HTTP_REMOTE_EMAIL", "nobody")
            + " " + environ.get("PATH_INFO", "") + "</p>").encode()
    start_response("200 OK", [("Content-Type", "text/html"), ("Content-Length", str(len(body)))])
    return [body]
'''


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# --- the load -----------------------------------------------------------------------------------

def _worker(port: int, path: str, headers: dict, keep_alive: bool, threads: int, until: float,
            start_at: float, queue) -> None:
    import threading

    counts = [0, 0]  # answered as expected, other
    latencies: list[float] = []
    lock = threading.Lock()

    def loop() -> None:
        conn = None
        ok = bad = 0
        mine: list[float] = []
        while True:
            now = time.monotonic()
            if now >= until:
                break
            try:
                if conn is None:
                    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
                began = time.perf_counter()
                conn.request("GET", path, headers=headers)
                response = conn.getresponse()
                response.read()
                took = time.perf_counter() - began
                if not keep_alive or response.will_close:
                    conn.close()
                    conn = None
                if time.monotonic() >= start_at:
                    if response.status == 200:
                        ok += 1
                        mine.append(took)
                    else:
                        bad += 1
            except (OSError, http.client.HTTPException):
                bad += 1
                if conn is not None:
                    conn.close()
                conn = None
        with lock:
            counts[0] += ok
            counts[1] += bad
            latencies.extend(mine)

    pool = [threading.Thread(target=loop) for _ in range(threads)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()
    queue.put((counts[0], counts[1], latencies))


def measure(port: int, path: str, headers: dict, *, keep_alive: bool, seconds: float,
            processes: int, threads: int, warmup: float = 1.5) -> dict:
    """Requests per second answered 200, with p50/p95 in ms, from `processes` × `threads`."""
    context = multiprocessing.get_context("fork")
    queue = context.Queue()
    start_at = time.monotonic() + warmup
    until = start_at + seconds
    pool = [context.Process(target=_worker, args=(port, path, headers, keep_alive, threads,
                                                   until, start_at, queue))
            for _ in range(processes)]
    for process in pool:
        process.start()
    ok = bad = 0
    latencies: list[float] = []
    for _ in pool:
        a, b, lat = queue.get(timeout=seconds + warmup + 120)
        ok, bad = ok + a, bad + b
        latencies.extend(lat)
    for process in pool:
        process.join(30)
    latencies.sort()

    def pct(p: float) -> float:
        return latencies[min(len(latencies) - 1, int(len(latencies) * p / 100))] * 1000 \
            if latencies else float("nan")

    return {"rate": ok / seconds, "errors": bad, "p50": pct(50), "p95": pct(95), "n": ok}


# --- the servers ----------------------------------------------------------------------------------

def session_cookie(app, email: str) -> tuple[str, str]:
    """A signed-in session for `email`, made as the sign-in makes one: (cookie name, value)."""
    from extensions import db
    from models import User
    from services.signin import sessions

    with app.app_context():
        user = User(email=email, password_hash="x", role="client")
        db.session.add(user)
        db.session.flush()
        token = sessions.open_session(user, amr=["pwd", "otp", "mfa"])
        db.session.commit()
        serializer = app.session_interface.get_signing_serializer(app)
        value = serializer.dumps({"sid": token, "_user_id": str(user.id), "_fresh": True})
    return app.config["SESSION_COOKIE_NAME"], value


def run(workers: int, seconds: float, out: Callable[[str], None]) -> list[tuple[str, bool, str]]:
    """Run the four phases; print figures and ratios; return (target, met, detail) rows."""
    from tests.federation.web_servers import NGINX, Nginx, nginx_site

    if not Path(NGINX).exists():
        out("\n=== forward-auth: skipped (Debian's nginx is not installed) ===")
        return []
    folder = Path(tempfile.mkdtemp(prefix="clientgate-bench-forward-auth-"))
    (folder / "upstream_app.py").write_text(UPSTREAM)
    nginx_port, cg_port, hello_port, up_port = (free_port() for _ in range(4))
    portal = f"http://localhost:{nginx_port}"
    secret = secrets.token_urlsafe(32)
    url = f"sqlite:///{folder / 'bench.db'}"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CLIENTGATE_", "MAIL_"))}
    env.update(CLIENTGATE_ENV="production", SECRET_KEY=secret, DATABASE_URL=url,
               PORTAL_URL=portal, MAIL_SERVER="127.0.0.1", MAIL_PORT=str(free_port()),
               MAIL_DEFAULT_SENDER=BENCH_SENDER,
               SESSION_COOKIE_SECURE="0", PROXY_FIX_X_FOR="1", PROXY_FIX_X_PROTO="1",
               PROXY_FIX_X_HOST="1", TRUSTED_HOSTS="127.0.0.1",
               ACCESS_RULES="localhost/files/ any Shared files", RATELIMIT_ENABLED="0")
    migrate(env)
    os.environ.update({k: env[k] for k in ("PORTAL_URL", "ACCESS_RULES", "PROXY_FIX_X_HOST")})
    from app import create_app
    from config import Config, database_url

    app = create_app(type("BenchConfig", (Config,), {
        "SQLALCHEMY_DATABASE_URI": database_url(url), "SECRET_KEY": secret,
        "DISPATCHER_AUTOSTART": False, "MAIL_SERVER": "127.0.0.1", "PORTAL_URL": portal,
        "MAIL_DEFAULT_SENDER": env["MAIL_DEFAULT_SENDER"],
        "SESSION_COOKIE_SECURE": False, "SESSION_COOKIE_NAME": "clientgate_session",
        "ACCESS_RULES": env["ACCESS_RULES"], "PROXY_FIX_X_HOST": 1,
    }))
    name, value = session_cookie(app, "bench-client@example.com")
    cookie = {"Cookie": f"{name}={value}", "User-Agent": "ClientGateBench/1"}
    site = nginx_site("localhost", nginx_port, cg_port, up_port)
    # nginx serving the same app with no question asked: the baseline of the second ratio.
    site = site.rstrip().rstrip("}") + (
        "    location /open/ {\n        proxy_pass http://files_app;\n"
        "        proxy_set_header Host $host;\n    }\n}\n")
    servers: list = []
    rows: list[tuple[str, bool, str]] = []
    load = {"processes": workers, "threads": 8}
    try:
        for gunicorn in (
            Gunicorn("app:create_app()", cg_port, env, workers, folder / "cg.log", "/healthz"),
            Gunicorn("bench.hello:app", hello_port, env, workers, folder / "hello.log", "/hello"),
            Gunicorn("upstream_app:app", up_port, env, workers, folder / "up.log", "/x",
                     cwd=folder),
        ):
            servers.append(gunicorn)
            gunicorn.start()
        nginx = Nginx(folder, site, nginx_port)
        servers.append(nginx)
        nginx.start()
        host = {"Host": f"localhost:{nginx_port}"}
        verify_headers = {**cookie, "Host": f"localhost:{nginx_port}",
                          "X-Original-URL": portal + "/files/report"}
        check = http.client.HTTPConnection("127.0.0.1", cg_port, timeout=10)
        check.request("GET", "/auth/verify", headers=verify_headers)
        answer = check.getresponse()
        if answer.status != 200 or answer.getheader("Remote-Email") != "bench-client@example.com":
            raise RuntimeError(f"/auth/verify answered {answer.status}, not 200 with the user")
        check.close()

        figures = {
            "hello": measure(hello_port, "/hello", {"Host": "127.0.0.1"}, keep_alive=False,
                             seconds=seconds, **load),
            "verify": measure(cg_port, "/auth/verify", verify_headers, keep_alive=False,
                              seconds=seconds, **load),
            "open": measure(nginx_port, "/open/report", host, keep_alive=True,
                            seconds=seconds, **load),
            "protected": measure(nginx_port, "/files/report", {**cookie, **host},
                                 keep_alive=True, seconds=seconds, **load),
        }
        for server in servers[:1]:
            log = server.log_tail(20000)
            if "database is locked" in log or "Traceback" in log:
                out("  ClientGate's log shows errors: " + log[-1500:])
        titles = {
            "hello": "bare Flask hello, gunicorn direct (ceiling)",
            "verify": "GET /auth/verify (signed in), gunicorn direct",
            "open": "nginx -> app, no question (baseline)",
            "protected": "nginx -> /auth/verify -> app (signed in)",
        }
        out(f"\n=== forward-auth: {workers} sync workers each; load from {workers} processes "
            f"x 8 threads; {seconds:.0f} s per phase ===")
        out(f"  {'phase':<46} {'req/s':>8} {'p50 ms':>7} {'p95 ms':>7} {'errors':>6}")
        for key, figure in figures.items():
            out(f"  {titles[key]:<46} {figure['rate']:8.0f} {figure['p50']:7.1f} "
                f"{figure['p95']:7.1f} {figure['errors']:6d}")
        verify_ratio = figures["verify"]["rate"] / figures["hello"]["rate"]
        page_ratio = figures["protected"]["rate"] / figures["open"]["rate"]
        out(f"  /auth/verify ÷ hello: {verify_ratio:.2f} (target ≥ 0.50)")
        out(f"  protected page ÷ unprotected through nginx: {page_ratio:.2f} (target ≥ 0.33)")
        rows = [
            ("forward-auth: /auth/verify ≥ 1/2 of the hello ceiling", verify_ratio >= 0.5,
             f"{verify_ratio:.2f}"),
            ("forward-auth: protected page ≥ 1/3 of nginx unprotected", page_ratio >= 1 / 3,
             f"{page_ratio:.2f}"),
        ]
        if any(f["errors"] for f in figures.values()):
            rows.append(("forward-auth: no errors", False,
                         ", ".join(f"{k}: {f['errors']}" for k, f in figures.items())))
    finally:
        for server in reversed(servers):
            server.stop()
        with app.app_context():
            from extensions import db

            db.engine.dispose()
        shutil.rmtree(folder, ignore_errors=True)
    return rows


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=10.0, help="measured seconds per phase")
    args = parser.parse_args(argv)
    stop_cleanly_on_sigterm()
    rows = run(os.cpu_count() or 1, args.seconds, lambda line="": print(line, flush=True))
    return 0 if all(ok for _, ok, _ in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
