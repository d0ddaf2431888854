#!/usr/bin/env python3
"""Instructions per sign-in step, counted by valgrind's callgrind: the same count for the same
code and data whatever else the machine is doing.

    .venv/bin/python bench/instructions.py                          # SQLite
    .venv/bin/python bench/instructions.py --backend postgresql
    .venv/bin/python bench/instructions.py --against HEAD~2         # that commit, then this one

bench/run.py times the sign-in under gunicorn, and on a shared two-core machine its CPU figure
moves by a third from one run to the next; bench/ab.py takes turns to see through that, but a
change worth a millisecond still needs many rounds. This counts instead. One process builds the
app as bench/memory.py does (production's settings, its request limits on, and an argon2id
cost so low that the hash is a rounding error, counted alone and taken off), signs
clients in through Flask's test client (GET /login, POST /login, the dispatcher's send to a
real SMTP server, GET and POST /login/code, GET /portal; the uncounted warm-up sign-ins also
poll the code page's status, as a browser does), and marks the end of each step with
`os.sched_yield()`, at which callgrind writes out what the main thread ran since the last mark.
The SMTP server's thread and the database server's process are not counted: as in bench/run.py,
what is measured is the worker.

It needs valgrind (Debian's `valgrind`) and takes a minute or two a version: the app runs
about fifty times slower under it. What it leaves out: gunicorn's own work per request (the
test client stands in for it), and the kernel's. A count is not a time, but two versions of the
same Python on the same data compare exactly: a change that saves 5% of the instructions saves
about that much of the CPU.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from contextlib import nullcontext
from pathlib import Path

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
STEPS = ("GET /login", "POST /login", "send the code", "GET /login/code", "POST /login/code",
         "GET /portal")
HASH = "the password hash alone"
HELLO = "GET /hello"  # bench/hello.py's bare Flask route: the floor under each request
WARM_UPS = 3  # sign-ins before counting: first requests compile templates and fill caches
CHEAP_HASH = {"time_cost": 1, "memory_cost": 8, "parallelism": 1}


# --- the counted process --------------------------------------------------------------------

def counted(tree: Path, database: str, rounds: int) -> None:
    """Sign clients in, marking each step; print the steps' names, in order, as JSON."""
    sys.path.insert(0, str(BENCH))
    import memory  # puts this checkout on sys.path; `tree` goes in front of it below
    from load import CSRF_IN_PAGE
    from mailsink import MailSink

    sys.path.insert(0, str(tree))
    import dataset
    from extensions import db
    from services import delivery
    from services.signin import passwords

    sink = MailSink().start()
    app = memory.build_app(database, MAIL_PORT=sink.port, PASSWORD_HASH_COST=CHEAP_HASH,
                           SESSION_COOKIE_SECURE=False)
    with app.app_context():
        db.create_all()
        password_hash = passwords.hash_password(dataset.PASSWORD)
    emails = [f"counted-{n}@bench.example" for n in range(WARM_UPS + rounds)]
    addresses = {email: f"10.0.{n // 250}.{n % 250 + 1}" for n, email in enumerate(emails)}
    dataset.add_users(app, emails, password_hash)
    marks: list[str] = []

    def mark(label: str) -> None:
        os.sched_yield()  # callgrind dumps the count since the last mark here
        marks.append(label)

    def send() -> None:
        with app.app_context():
            if delivery.run_once(sweep=False) != 1:
                raise RuntimeError("the dispatcher sent nothing")

    def csrf(page) -> str:
        found = CSRF_IN_PAGE.search(page.data)
        if found is None:
            raise RuntimeError("no csrf_token on the page")
        return found.group(1).decode()

    def sign_in(email: str, step) -> None:
        client = app.test_client()
        # Each client from an address of its own, as a firm's clients are: production's
        # request limits and code caps stay on, and are counted, without one address's
        # limit stopping the run.
        client.environ_base["REMOTE_ADDR"] = addresses[email]
        where = {"base_url": "http://127.0.0.1"}  # PORTAL_URL's host
        page = step("GET /login", lambda: client.get("/login", **where), 200)
        slot = sink.expect(email)
        step("POST /login", lambda: client.post("/login", data={
            "email": email, "password": dataset.PASSWORD, "csrf_token": csrf(page)}, **where),
            302)
        step("send the code", send)
        arrival = sink.wait(slot, 120)
        if arrival is None or not arrival.code:
            raise RuntimeError(f"no code reached the SMTP server for {email}")
        sink.forget(email)
        page = step("GET /login/code", lambda: client.get("/login/code", **where), 200)
        if step is uncounted:  # the page's poll, as in a browser: it opens the fast paths' pool
            checked("status", client.get("/login/code/status", **where), 200)
        step("POST /login/code", lambda: client.post("/login/code", data={
            "code": arrival.code, "csrf_token": csrf(page)}, **where), 302)
        step("GET /portal", lambda: client.get("/portal", **where), 200)

    def uncounted(label, action, status=None):
        return checked(label, action(), status)

    def counted_step(label, action, status=None):
        answer = checked(label, action(), status)
        mark(label)
        return answer

    for email in emails[:WARM_UPS]:
        sign_in(email, uncounted)
    mark("(warm-up)")
    for email in emails[WARM_UPS:]:
        sign_in(email, counted_step)
    with app.app_context():  # an unknown address: one verification of the dummy hash
        for _ in range(rounds):
            passwords.verify_password(None, dataset.PASSWORD)
            mark(HASH)
    import hello

    bare = hello.app.test_client()
    for n in range(WARM_UPS + rounds):
        checked(HELLO, bare.get("/hello"), 200)
        if n >= WARM_UPS:
            mark(HELLO)
    sink.stop()
    print(json.dumps(marks))


def checked(label: str, answer, status):
    if status is not None and answer.status_code != status:
        raise RuntimeError(f"{label} answered {answer.status_code}, not {status}")
    return answer


# --- the driver -----------------------------------------------------------------------------

def count(tree: Path, database: str, rounds: int) -> dict[str, list[int]]:
    """Run the counted process under callgrind; each step's instruction counts, one per round."""
    folder = Path(tempfile.mkdtemp(prefix="clientgate-instructions-"))
    try:
        done = subprocess.run(
            ["valgrind", "--tool=callgrind", "--separate-threads=yes",
             "--dump-before=sched_yield", f"--callgrind-out-file={folder}/counts.%p",
             sys.executable, __file__, "--counted", str(tree), "--database", database,
             "--rounds", str(rounds)],
            cwd=tree, capture_output=True, text=True,
            env={**os.environ, "PYTHONHASHSEED": "0", "CLIENTGATE_ENV": "production"})
        if done.returncode != 0:
            raise SystemExit(f"the counted process failed:\n{done.stderr[-3000:]}")
        marks = json.loads(done.stdout.strip().splitlines()[-1])
        # Thread 1's parts, in order: one per mark, then the rest of the process at its end.
        parts = sorted(folder.glob("counts.*.*-01"), key=lambda p: int(p.name.split(".")[2][:-3]))
        if len(parts) != len(marks):
            raise SystemExit(f"{len(marks)} marks but {len(parts)} dumps: something else in "
                             "the process called sched_yield")
        steps: dict[str, list[int]] = {}
        for label, part in zip(marks, parts):
            steps.setdefault(label, []).append(total_of(part))
        return steps
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def total_of(part: Path) -> int:
    with part.open() as handle:
        for line in handle:
            if line.startswith("summary:") or line.startswith("totals:"):
                return int(line.split()[1])
    raise SystemExit(f"{part} has no total")


def report(name: str, steps: dict[str, list[int]]) -> dict[str, float]:
    """Print each step's count (millions of instructions: the median of the rounds, and how far
    the rounds spread: a garbage collection falls in one round and not the next); return them,
    the password post's without the hash."""
    middle = {label: statistics.median(counts) for label, counts in steps.items()}
    hashing = middle[HASH]
    values = {label: middle[label] - (hashing if label == "POST /login" else 0)
              for label in STEPS}
    values["outside the hash"] = sum(values.values())

    def spread(label: str) -> str:
        counts = steps[label]
        return f"rounds within {(max(counts) - min(counts)) / middle[label] * 100:.1f}%"

    print(f"{name}:")
    for label in STEPS:
        note = "  (the hash taken off)" if label == "POST /login" else ""
        print(f"  {label:<18} {values[label] / 1e6:8.2f} M   {spread(label)}{note}")
    outside, floor = values["outside the hash"], middle[HELLO]
    print(f"  {'a whole sign-in':<18} {outside / 1e6:8.2f} M   (argon2id at this low cost: "
          f"{hashing / 1e6:.2f} M)")
    print(f"  {'GET /hello (bare)':<18} {floor / 1e6:8.2f} M   {spread(HELLO)}  (the same test "
          f"client: a sign-in is {outside / floor:.0f} of these)")
    return values


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backend", choices=("sqlite", "postgresql"), default="sqlite")
    parser.add_argument("--rounds", type=int, default=5, help="counted sign-ins (default 5)")
    parser.add_argument("--against", metavar="REV", help="count that commit too, and compare")
    parser.add_argument("--counted", metavar="TREE", help=argparse.SUPPRESS)
    parser.add_argument("--database", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.counted:
        counted(Path(args.counted), args.database, args.rounds)
        return 0
    if shutil.which("valgrind") is None:
        raise SystemExit("valgrind is not installed (Debian: apt-get install valgrind)")

    sys.path.insert(0, str(BENCH))
    from ab import base_checkout, databases  # bench/ab.py: a commit checked out; a new database

    versions = [("this checkout", None)]
    if args.against:
        versions.insert(0, (args.against, args.against))
    results = {}
    with databases(args.backend) as new_database:
        for n, (name, revision) in enumerate(versions):
            with base_checkout(revision) if revision else nullcontext(ROOT) as tree:
                results[name] = report(name, count(tree, new_database(n), args.rounds))
    if args.against:
        before, after = (results[name] for name, _ in versions)
        print(f"{versions[0][0]} → this checkout:")
        for label in (*STEPS, "outside the hash"):
            change = (after[label] - before[label]) / before[label] * 100
            print(f"  {label:<18} {before[label] / 1e6:8.2f} → {after[label] / 1e6:8.2f} M  "
                  f"({change:+.1f}%)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
