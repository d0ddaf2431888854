"""The load generator: browser-like clients on threads, talking http.client to 127.0.0.1.

A phase runs `concurrency` clients in a closed loop (each starts its next task when the last
one ends) for a fixed time, and stops by itself: every request has a timeout, every task a
count limit, and the threads are joined before the phase returns.
"""

from __future__ import annotations

import http.client
import os
import re
import threading
import time
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Callable, Optional
from urllib.parse import urlencode

CSRF_IN_PAGE = re.compile(rb'name="csrf_token"[^>]*?value="([^"]+)"')
USER_AGENT = "Mozilla/5.0 (X11; Linux x86_64) ClientGateBench/1"


class StepFailed(Exception):
    """A request did not answer as a working sign-in should."""

    def __init__(self, step: str, reason: str) -> None:
        super().__init__(f"{step}: {reason}")
        self.step = step
        self.reason = reason


@dataclass
class Response:
    status: int
    location: str
    body: bytes
    seconds: float
    hash_cpu: float = 0.0  # the worker's argon2 CPU for this request (bench/hash_timing.py)


def hash_cpu_of(server_timing: str) -> float:
    """Seconds from `Server-Timing: hash;dur=<ms>` (bench/hash_timing.py), or 0."""
    for metric in server_timing.split(","):
        name, _, params = metric.strip().partition(";")
        if name == "hash" and params.startswith("dur="):
            try:
                return float(params[4:]) / 1000
            except ValueError:
                return 0.0
    return 0.0


class Browser:
    """One browser: its cookies, a fresh connection per request (gunicorn's sync workers close
    each connection after the response, as they do behind a proxy)."""

    def __init__(self, port: int, timeout: float = 30.0, cookies: Optional[dict] = None) -> None:
        self.port = port
        self.timeout = timeout
        self.cookies: dict[str, str] = dict(cookies or {})

    def request(self, method: str, path: str, fields: Optional[dict] = None) -> Response:
        headers = {"User-Agent": USER_AGENT, "Accept": "text/html,application/json"}
        if self.cookies:
            headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        body = None
        if fields is not None:
            body = urlencode(fields)
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=self.timeout)
        started = time.perf_counter()
        try:
            connection.request(method, path, body=body, headers=headers)
            response = connection.getresponse()
            data = response.read()
            seconds = time.perf_counter() - started
            for value in response.headers.get_all("Set-Cookie") or ():
                self._keep(value)
            return Response(response.status, response.headers.get("Location", ""), data, seconds,
                            hash_cpu_of(response.headers.get("Server-Timing", "")))
        finally:
            connection.close()

    def _keep(self, header: str) -> None:
        pair, _, attributes = header.partition(";")
        name, _, value = pair.strip().partition("=")
        gone = not value or "max-age=0" in attributes.lower() or "1970" in attributes
        if gone:
            self.cookies.pop(name, None)
        else:
            self.cookies[name] = value

    def csrf(self, response: Response, step: str) -> str:
        match = CSRF_IN_PAGE.search(response.body)
        if not match:
            raise StepFailed(step, "no csrf_token on the page")
        return match.group(1).decode()


def expect(step: str, response: Response, status: int, location: str = "") -> Response:
    where = response.location.split("?", 1)[0]  # a ?next=... on the redirect is not checked
    if response.status != status or (location and not where.endswith(location)):
        raise StepFailed(step, f"HTTP {response.status} {response.location or ''}".strip())
    return response


@dataclass
class PhaseResult:
    name: str
    concurrency: int
    seconds: float = 0.0
    completed: int = 0
    steps: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    extra: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    errors: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    error_examples: list[str] = field(default_factory=list)
    # CPU seconds spent inside the measured window, by whom ("server", "bench").
    cpu: dict[str, float] = field(default_factory=dict)

    def cpu_per_task(self, who: str) -> float:
        return self.cpu.get(who, float("nan")) / self.completed if self.completed else float("nan")

    @property
    def rate(self) -> float:
        return self.completed / self.seconds if self.seconds else 0.0

    @property
    def error_count(self) -> int:
        return sum(self.errors.values())


class Recorder:
    """What one task reports: step times and other measures, kept only inside the window."""

    def __init__(self, result: PhaseResult, lock: threading.Lock, window: tuple[float, float]):
        self._result = result
        self._lock = lock
        self._window = window
        self.in_window = False
        self._steps: list[tuple[str, float]] = []
        self._extra: list[tuple[str, float]] = []

    def begin(self) -> None:
        now = time.monotonic()
        self.in_window = self._window[0] <= now < self._window[1]
        self._steps.clear()
        self._extra.clear()

    def step(self, name: str, seconds: float) -> None:
        self._steps.append((name, seconds))

    def measure(self, name: str, value: float) -> None:
        self._extra.append((name, value))

    def commit(self) -> None:
        done = time.monotonic()
        with self._lock:
            if self.in_window:
                for name, seconds in self._steps:
                    self._result.steps[name].append(seconds)
                for name, value in self._extra:
                    self._result.extra[name].append(value)
            if self._window[0] <= done < self._window[1]:
                self._result.completed += 1

    def fail(self, error: Exception) -> None:
        step = error.step if isinstance(error, StepFailed) else type(error).__name__
        with self._lock:
            self._result.errors[step] += 1
            if len(self._result.error_examples) < 5:
                self._result.error_examples.append(str(error)[:200])


def bench_cpu_seconds() -> float:
    """CPU seconds of this process so far: the clients and the SMTP server."""
    times = os.times()
    return times.user + times.system


def run_phase(name: str, task: Callable[[Recorder, int], bool], *, concurrency: int,
              seconds: float, warmup: float = 2.0, max_tasks: int = 1_000_000,
              server_cpu: Optional[Callable[[], float]] = None) -> PhaseResult:
    """Run `task(recorder, client_number)` in a closed loop on `concurrency` threads.

    Throughput counts tasks that end inside the measured window (after `warmup`); latencies
    come from tasks that start inside it. A task returns False when it has no more work (it ran
    out of prepared users, say), which ends that client. Errors are counted, never raised.
    """
    result = PhaseResult(name, concurrency)
    lock = threading.Lock()
    started = time.monotonic()
    window = (started + warmup, started + warmup + seconds)
    budget = [max_tasks]

    def client(number: int) -> None:
        recorder = Recorder(result, lock, window)
        while time.monotonic() < window[1]:
            with lock:
                if budget[0] <= 0:
                    return
                budget[0] -= 1
            recorder.begin()
            try:
                more = task(recorder, number)
            except Exception as error:  # a failed sign-in is a figure, not a crash
                recorder.fail(error)
                continue
            recorder.commit()
            if more is False:
                return

    def account_cpu() -> None:
        """CPU used inside the window: robust where wall-clock rates are not (a busy machine)."""
        probes = {"bench": bench_cpu_seconds}
        if server_cpu is not None:
            probes["server"] = server_cpu
        time.sleep(max(0.0, window[0] - time.monotonic()))
        before = {who: probe() for who, probe in probes.items()}
        while time.monotonic() < window[1] and any(t.is_alive() for t in threads):
            time.sleep(min(0.05, max(0.0, window[1] - time.monotonic())))
        result.cpu = {who: probe() - before[who] for who, probe in probes.items()}

    threads = [threading.Thread(target=client, args=(n,), daemon=True, name=f"{name}-{n}")
               for n in range(concurrency)]
    accountant = threading.Thread(target=account_cpu, daemon=True, name=f"{name}-cpu")
    for thread in threads:
        thread.start()
    accountant.start()
    for thread in threads:
        thread.join(timeout=max(1.0, window[1] - time.monotonic()) + 120)
    result.seconds = min(time.monotonic(), window[1]) - window[0]
    accountant.join(timeout=10)
    if any(thread.is_alive() for thread in threads):
        result.errors["stuck client (not joined)"] += 1
    return result


def percentile(values: list[float], p: float) -> float:
    """Nearest-rank percentile; NaN when there is nothing to rank."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = max(0, min(len(ordered) - 1, int(round(p / 100 * len(ordered) + 0.5)) - 1))
    return ordered[rank]
