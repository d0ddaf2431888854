"""gunicorn settings the bench gives every app it measures (`gunicorn -c bench/hash_timing.py`).

Each worker times its own argon2 verifications and adds the CPU they took to the response, as
`Server-Timing: hash;dur=<ms>`. The bench subtracts exactly that from the request's CPU to get
what the request cost outside the hash. A hash measured apart, in the bench's own process,
is not the same number: argon2id is memory-hard, and inside a worker, on a machine whose
memory other work shares, one verification cost from 140 to 260 ms of CPU in runs on one day,
more than everything else a sign-in does.

It wraps argon2-cffi's `verify_secret`, which both ClientGate (argon2.PasswordHasher) and the
peer (passlib's argon2 handler) call, so both apps are measured the same way; the apps' own
code is untouched. Process CPU is read around the call because argon2 runs its four lanes in
threads of their own. A sync worker serves one request at a time, but ClientGate's dispatcher
threads may send a message while a hash runs: only one client alone (the bench's per-step
phase) keeps them idle, and that is the phase that uses these figures.
"""

from __future__ import annotations

import time


def post_worker_init(worker) -> None:
    import argon2._password_hasher as password_hasher
    import argon2.low_level as low_level

    spent = [0.0]
    original = low_level.verify_secret

    def timed_verify(*args, **kwargs):
        began = time.process_time()
        try:
            return original(*args, **kwargs)
        finally:
            spent[0] += time.process_time() - began

    low_level.verify_secret = timed_verify
    password_hasher.verify_secret = timed_verify

    app = worker.wsgi

    def reporting(environ, start_response):
        spent[0] = 0.0

        def start(status, headers, exc_info=None):
            if spent[0]:
                headers = [*headers, ("Server-Timing", f"hash;dur={spent[0] * 1000:.3f}")]
            return start_response(status, headers, exc_info)

        return app(environ, start)

    worker.wsgi = reporting
