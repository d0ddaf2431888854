#!/usr/bin/env python3
"""What a request costs right after a password check, against the same request warm.

    .venv/bin/python bench/after_hash.py                 # the login page and /favicon.ico
    .venv/bin/python bench/after_hash.py --rounds 6

argon2id fills 64 MiB for every check. That is more than this machine's caches hold (1 MiB of
L2 a core, 32 MiB of L3 shared), so a check leaves nothing of the app's code and data in them,
and the next request on that core reads it all from memory again. Under load each worker
checks a password for most of its time, so most requests run this way. bench/run.py's "CPU
outside the hash" includes this cost; bench/instructions.py (which counts instructions, not
time) and in-process timings do not see it.

One process builds the app as bench/memory.py does. It times each request with
`time.thread_time` in three ways, in turns: warm (the same request just before), after one real
argon2id check (the app's parameters), and after writing 64 MiB of plain memory (no hash: only
the caches emptied). It prints the medians. The argon2id check itself is not timed.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from memory import build_app  # noqa: E402 (puts the checkout on sys.path)
from servers import in_service_environment  # noqa: E402

SWEEP = 64 * 1024 * 1024  # bytes: argon2id's memory cost in this app (64 MiB)
PATHS = ("/login", "/favicon.ico")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=4, help="turns of each way (default 4)")
    parser.add_argument("--requests", type=int, default=60, help="requests a turn (default 60)")
    args = parser.parse_args(argv)

    from extensions import db
    from services.signin import passwords

    folder = tempfile.TemporaryDirectory(prefix="clientgate-after-hash-")
    app = build_app(f"sqlite:///{Path(folder.name) / 'after-hash.db'}")
    with app.app_context():
        db.create_all()
        holder = type("Holder", (), {"password_hash": passwords.hash_password("a password")})
    memory = bytearray(SWEEP)

    def check_a_password():
        with app.app_context():
            passwords.verify_password(holder, "a password")

    def empty_the_caches():
        memory[:] = bytes(SWEEP)

    before = {"warm": lambda: None, "after a password check": check_a_password,
              "after writing 64 MiB": empty_the_caches}
    client = app.test_client()
    client.environ_base["REMOTE_ADDR"] = "10.1.1.1"
    print(f"CPU of one request (ms of thread time, medians of {args.rounds} turns of "
          f"{args.requests}; GLIBC_TUNABLES={os.environ.get('GLIBC_TUNABLES', '')})")
    for path in PATHS:
        for _ in range(50):  # compile its templates, fill the caches
            client.get(path, base_url="http://127.0.0.1")
        turns = {way: [] for way in before}
        for _ in range(args.rounds):
            for way, first in before.items():
                spent = []
                for _ in range(args.requests):
                    first()
                    started = time.thread_time()
                    client.get(path, base_url="http://127.0.0.1")
                    spent.append(time.thread_time() - started)
                turns[way].append(statistics.median(spent))
        warm = statistics.median(turns["warm"])
        figures = ", ".join(
            f"{way} {statistics.median(values) * 1000:.2f}"
            + ("" if way == "warm" else f" (x{statistics.median(values) / warm:.1f})")
            for way, values in turns.items())
        print(f"  GET {path:<14} {figures}")
    folder.cleanup()
    return 0


if __name__ == "__main__":
    in_service_environment()  # the hash as the workers run it
    sys.exit(main())
