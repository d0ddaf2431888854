#!/usr/bin/env python3
"""Two versions of ClientGate side by side: an earlier commit against this checkout, in turns.

    .venv/bin/python bench/ab.py 575dbeb                       # 4 rounds on SQLite
    .venv/bin/python bench/ab.py HEAD~3 --rounds 6 --backend postgresql

On a shared machine one 15 s phase of busy sign-ins moves by a third from one run to the next
(3 December: the same code measured 17.8 and 41.7 ms outside the hash within half an hour), so
a change of a few milliseconds cannot be seen by running bench/run.py before and after it. Here
the two versions take turns (base, here, here, base, base, here...), each round on a fresh
database under `gunicorn 'app:create_app()'` with bench/run.py's settings, and the medians are
compared: whatever the machine does to one round it does to its neighbours.

Each round: the busy full sign-in (four clients a core, as bench/run.py's "busy" phase) and the
code post alone (prepared sign-ins). The base is checked out with `git worktree` into a
temporary folder and removed after; it must have the same migrations as this checkout, because
the data is set up by this checkout's code.
"""

from __future__ import annotations

import argparse
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import run as bench_run  # bench/run.py: its settings, its sign-in, its data (sets sys.path)
import dataset
from load import run_phase
from mailsink import MailSink, free_port
from servers import Gunicorn, migrate, workers_default

ROOT = bench_run.ROOT


@contextmanager
def base_checkout(revision: str) -> Iterator[Path]:
    if subprocess.run(["git", "diff", "--quiet", revision, "--", "migrations"],
                      cwd=ROOT).returncode != 0:
        raise SystemExit(f"{revision} has other migrations than this checkout: the data this "
                         "bench sets up would not fit it")
    folder = Path(tempfile.mkdtemp(prefix="clientgate-ab-"))
    subprocess.run(["git", "worktree", "add", "--quiet", "--detach", str(folder), revision],
                   cwd=ROOT, check=True)
    try:
        yield folder
    finally:
        subprocess.run(["git", "worktree", "remove", "--force", str(folder)], cwd=ROOT)
        shutil.rmtree(folder, ignore_errors=True)


@contextmanager
def databases(backend: str) -> Iterator:
    """A function that makes a new, empty database for each round and says its URL."""
    if backend == "sqlite":
        folder = Path(tempfile.mkdtemp(prefix="clientgate-ab-sqlite-"))
        try:
            yield lambda n: f"sqlite:///{folder / f'round-{n}.db'}"
        finally:
            shutil.rmtree(folder, ignore_errors=True)
        return
    server, reason = bench_run.postgres_database()
    if server is None:
        raise SystemExit(f"PostgreSQL: {reason}")
    import psycopg

    with server as url:
        plain = url.replace("postgresql+psycopg://", "postgresql://")

        def new(n: int) -> str:
            with psycopg.connect(plain, autocommit=True) as connection:
                connection.execute(f"CREATE DATABASE ab_round_{n}")
            return url.rsplit("/", 1)[0] + f"/ab_round_{n}"

        yield new


def one_round(tree: Path, url: str, workers: int, seconds: float) -> dict[str, float]:
    sink = MailSink().start()
    logs = Path(tempfile.mkdtemp(prefix="clientgate-ab-log-"))
    secret_key = secrets.token_urlsafe(48)
    env = bench_run.server_environment(url, secret_key, sink.port)
    app = None
    server = None
    try:
        migrate(env, cwd=tree)
        app = bench_run.bench_app(url, secret_key, sink.port)
        from services.signin import passwords

        password_hash = passwords.hash_password(dataset.PASSWORD)
        emails = [f"ab-{i}@signin.example" for i in range(int(60 * workers * seconds) + 200)]
        dataset.add_users(app, emails, password_hash)
        users = bench_run.Users(emails)
        port = free_port()
        server = Gunicorn("app:create_app()", port, env, workers, logs / "gunicorn.log",
                          "/healthz", cwd=tree)
        server.start()
        busy = run_phase("busy", bench_run.sign_in_task(port, sink, users),
                         concurrency=4 * workers, seconds=seconds, warmup=2,
                         max_tasks=len(emails), server_cpu=server.cpu_seconds)
        prepared = dataset.prepare_pending(app, 4000, "ab", password_hash)
        posts = run_phase("code_post", bench_run.code_post_task(port, prepared),
                          concurrency=4 * workers,
                          seconds=min(seconds, 10), warmup=2, max_tasks=len(prepared),
                          server_cpu=server.cpu_seconds)
        hash_cpu = statistics.mean(busy.extra.get("hash CPU in the worker") or [float("nan")])
        return {
            "sign-ins/s": busy.rate,
            "CPU a sign-in (ms)": busy.cpu_per_task("server") * 1000,
            "hash in it (ms)": hash_cpu * 1000,
            "outside the hash (ms)": (busy.cpu_per_task("server") - hash_cpu) * 1000,
            "code posts/s": posts.rate,
            "CPU a code post (ms)": posts.cpu_per_task("server") * 1000,
            "errors": busy.error_count + posts.error_count,
        }
    finally:
        if server is not None:
            server.stop()
        sink.stop()
        shutil.rmtree(logs, ignore_errors=True)
        if app is not None:
            from extensions import db

            with app.app_context():
                db.session.remove()
                db.engine.dispose()


def turns(rounds: int) -> list[str]:
    """base, here, here, base, base, here, ...: each side as often first as second."""
    order = []
    while len(order) < rounds:
        order += ["base", "here"] if len(order) % 4 == 0 else ["here", "base"]
    return order[:rounds]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("revision", help="the earlier commit to compare this checkout with")
    parser.add_argument("--rounds", type=int, default=4, help="rounds in all (default 4)")
    parser.add_argument("--seconds", type=float, default=15.0,
                        help="measured seconds of busy sign-ins a round (default 15)")
    parser.add_argument("--backend", choices=("sqlite", "postgresql"), default="sqlite")
    args = parser.parse_args(argv)
    bench_run.stop_cleanly_on_sigterm()
    workers = workers_default()
    print(f"{args.revision} (base) against this checkout (here), {args.backend}, "
          f"{workers} workers, {args.rounds} rounds; load average {bench_run.load_average()}",
          flush=True)
    results: dict[str, list[dict[str, float]]] = {"base": [], "here": []}
    with base_checkout(args.revision) as base, databases(args.backend) as new_database:
        for n, side in enumerate(turns(args.rounds)):
            figures = one_round(base if side == "base" else ROOT, new_database(n), workers,
                                args.seconds)
            results[side].append(figures)
            print(f"  {side}: " + ", ".join(f"{k} {v:.1f}" for k, v in figures.items()
                                            if k != "errors") + f", errors {figures['errors']}",
                  flush=True)
    print("medians:")
    for key in (k for k in results["here"][0] if k != "errors"):
        base_value = statistics.median(r[key] for r in results["base"])
        here_value = statistics.median(r[key] for r in results["here"])
        change = f"{here_value / base_value - 1:+.0%}" if base_value else ""
        print(f"  {key:<24} base {base_value:8.1f}   here {here_value:8.1f}   {change}")
    print("errors: " + ", ".join(f"{side} {sum(r['errors'] for r in results[side])}"
                                 for side in results))
    print(f"load average at the end: {bench_run.load_average()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
