"""Gunicorn under the bench: start it, wait until every worker answers, watch the workers'
memory, and stop it however the run ends."""

from __future__ import annotations

import http.client
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Optional

ROOT = Path(__file__).resolve().parent.parent
VENV_BIN = ROOT / ".venv" / "bin"
HASH_TIMING = Path(__file__).resolve().parent / "hash_timing.py"
# Production refuses to start with a sender at localhost (config.check_sender).
BENCH_SENDER = "Bench <portal@bench.example>"
SERVICE_FILE = ROOT / "docs" / "clientgate.service"


def service_environment() -> dict[str, str]:
    """The `Environment=` settings of the systemd unit production runs gunicorn with
    (docs/clientgate.service). Every server the bench starts gets them too."""
    settings = {}
    for line in SERVICE_FILE.read_text().splitlines():
        if line.startswith("Environment="):
            name, _, value = line.removeprefix("Environment=").partition("=")
            settings[name] = value
    return settings


def in_service_environment() -> None:
    """Restart this process with the service's environment, unless it has it already. glibc
    reads GLIBC_TUNABLES only when a process starts, and the bench's own measurements (the
    hash measured apart, bench/memory.py's process) must be made as the workers run."""
    wanted = service_environment()
    if any(os.environ.get(name) != value for name, value in wanted.items()):
        os.execve(sys.executable, [sys.executable, *sys.argv], {**os.environ, **wanted})


def migrate(env: dict, cwd: Path = ROOT) -> None:
    """`flask db upgrade` with the environment gunicorn will get, in the checkout at `cwd`."""
    done = subprocess.run([str(VENV_BIN / "flask"), "--app", "app", "db", "upgrade"], cwd=cwd,
                          env=env, capture_output=True, text=True, timeout=300)
    if done.returncode != 0:
        raise RuntimeError(f"flask db upgrade failed:\n{done.stderr[-3000:]}")


def stop_cleanly_on_sigterm() -> None:
    """`kill` (SIGTERM) ends the bench through its `finally` blocks, as Ctrl-C does, so the
    servers it started stop too instead of running on as orphans."""
    def _raise(signum, frame):
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, _raise)


def workers_default() -> int:
    return os.cpu_count() or 1


def _children(pid: int) -> list[int]:
    found = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat") as handle:
                fields = handle.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.append(int(entry.name))
    return found


def cpu_of(pid: int) -> float:
    """CPU seconds (user + system, every thread) a process has used so far."""
    try:
        with open(f"/proc/{pid}/stat") as handle:
            fields = handle.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def memory_of(pid: int) -> Optional[tuple[int, int]]:
    """(RSS, peak RSS) of a process in bytes, from /proc/<pid>/status."""
    values = {}
    try:
        with open(f"/proc/{pid}/status") as handle:
            for line in handle:
                if line.startswith(("VmRSS:", "VmHWM:")):
                    name, amount, _unit = line.split()
                    values[name[:-1]] = int(amount) * 1024
    except OSError:
        return None
    if "VmRSS" not in values:
        return None
    return values["VmRSS"], values.get("VmHWM", values["VmRSS"])


class Gunicorn:
    """`gunicorn APP` with `workers` sync workers on 127.0.0.1:`port`."""

    def __init__(self, app: str, port: int, env: dict, workers: int, log_path: Path,
                 ready_path: str, cwd: Path = ROOT) -> None:
        # Every app is served with the hash timing (bench/hash_timing.py); it adds a header
        # only to responses whose request verified a password.
        self.argv = [str(VENV_BIN / "gunicorn"), "--config", str(HASH_TIMING),
                     "--workers", str(workers), "--bind", f"127.0.0.1:{port}", app]
        self.port = port
        self.env = {**env, **service_environment()}
        self.workers = workers
        self.log_path = log_path
        self.ready_path = ready_path
        self.cwd = cwd
        self.process: Optional[subprocess.Popen] = None
        self.peak_rss: dict[int, int] = {}
        self._sampling = threading.Event()
        self._sampler: Optional[threading.Thread] = None

    def __enter__(self) -> "Gunicorn":
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def start(self, timeout: float = 60) -> None:
        log = open(self.log_path, "ab")
        self.process = subprocess.Popen(self.argv, cwd=self.cwd, env=self.env, stdout=log,
                                        stderr=subprocess.STDOUT, start_new_session=True)
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"gunicorn exited with {self.process.returncode}; "
                                   f"see {self.log_path}:\n{self.log_tail()}")
            if len(self.worker_pids()) >= self.workers and self._answers():
                break
            time.sleep(0.2)
        else:
            raise RuntimeError(f"gunicorn did not answer within {timeout} s:\n{self.log_tail()}")
        # Each worker builds the app on its first import; let all of them finish before timing.
        for _ in range(self.workers * 4):
            self._answers()
        self._sampling.clear()
        self._sampler = threading.Thread(target=self._sample, daemon=True, name="rss-sampler")
        self._sampler.start()

    def _answers(self) -> bool:
        try:
            connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
            connection.request("GET", self.ready_path)
            status = connection.getresponse().status
            connection.close()
            return status == 200
        except OSError:
            return False

    def worker_pids(self) -> list[int]:
        return _children(self.process.pid) if self.process else []

    def cpu_seconds(self) -> float:
        """CPU seconds all workers have used so far."""
        return sum(cpu_of(pid) for pid in self.worker_pids())

    def _sample(self) -> None:
        while not self._sampling.wait(0.5):
            for pid in self.worker_pids():
                memory = memory_of(pid)
                if memory:
                    self.peak_rss[pid] = max(self.peak_rss.get(pid, 0), memory[0])

    def memory(self) -> dict[int, tuple[int, int, int]]:
        """Per worker: (RSS now, highest RSS sampled under load, kernel's peak RSS)."""
        result = {}
        for pid in self.worker_pids():
            memory = memory_of(pid)
            if memory:
                result[pid] = (memory[0], max(self.peak_rss.get(pid, 0), memory[0]), memory[1])
        return result

    def log_tail(self, size: int = 3000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-size:]
        except OSError:
            return ""

    def stop(self) -> None:
        self._sampling.set()
        if self.process is None or self.process.poll() is not None:
            return
        try:
            os.killpg(self.process.pid, signal.SIGTERM)
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)
        except ProcessLookupError:
            pass
