"""A worker's heap: it gives back the pages that compiling a template leaves free
(heap_setup), and under the systemd unit argon2id's 64 MiB comes in huge pages.

Each worker's resting memory is counted again under argon2id's 64 MiB (bench/run.py's RSS
figure), so pages kept for nothing after a one-off step count twice over.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
from pathlib import Path

import pytest

import heap_setup
from bench.servers import service_environment

ROOT = Path(__file__).resolve().parents[2]

# A fresh interpreter builds the app (with the trim, or with it switched off), then compiles
# a long template three times, each time with objects made after it that stay, as a worker's
# compiled templates and caches do. It prints how much its RSS grew.
SCRIPT = """
import json, sys
sys.path.insert(0, "bench")
import heap_setup
if sys.argv[1] == "off":
    heap_setup._trim = None
from app import create_app
from config import TestConfig
from memory import rss  # bench/memory.py's reading of this process's RSS

app = create_app(type("Run", (TestConfig,), {
    "SQLALCHEMY_DATABASE_URI": "sqlite://", "SQLALCHEMY_ENGINE_OPTIONS": {}}))
source = "".join(
    "{%% if n > %(i)d %%}<p>{{ n * %(i)d }} {{ words[%(w)d] | upper }}</p>{%% endif %%}"
    % {"i": i, "w": i % 7} for i in range(300))
kept = []
before = rss()
for _ in range(3):
    kept.append(app.jinja_env.from_string(source))
    kept.append([object() for _ in range(2000)])
print(json.dumps(rss() - before))
"""


def grown(trim: str) -> int:
    answer = subprocess.run([sys.executable, "-c", SCRIPT, trim], cwd=ROOT, capture_output=True,
                            text=True, timeout=120, check=True)
    return json.loads(answer.stdout.strip().splitlines()[-1])


def test_this_machine_has_glibc_malloc_trim():
    # Debian, as in production: the trim is not silently off where the tests run.
    assert platform.libc_ver()[0] == "glibc"
    assert heap_setup._trim is not None


def test_the_app_renders_with_the_giving_back_environment(app):
    assert isinstance(app.jinja_env, heap_setup.GivingBackEnvironment)


def test_each_template_compiled_gives_back_once_and_a_cached_one_does_not(app, monkeypatch):
    calls = []
    monkeypatch.setattr(heap_setup, "_trim", calls.append)
    client = app.test_client()

    assert client.get("/login").status_code == 200
    first = len(calls)
    assert client.get("/login").status_code == 200

    assert first >= 2  # the login page and the base it extends
    assert calls == [0] * first  # malloc_trim(0): every free page, not only the heap's top


def test_compiling_templates_keeps_far_less_memory_with_the_trim():
    kept_with, kept_without = grown("on"), grown("off")

    assert kept_with < kept_without / 2, (kept_with, kept_without)


def test_give_back_does_nothing_without_glibc(monkeypatch):
    monkeypatch.setattr(heap_setup, "_trim", None)

    heap_setup.give_back()


# --- argon2id's memory in huge pages (docs/clientgate.service) ------------------------------

# A fresh interpreter takes 64 MiB through glibc's malloc and writes all of it, as argon2id does
# for each password check, and prints how much of its memory is in transparent huge pages (kB).
HUGE_PAGES_SCRIPT = """
import ctypes
libc = ctypes.CDLL("libc.so.6")
libc.malloc.restype = ctypes.c_void_p
size = 64 * 1024 * 1024
block = libc.malloc(size)
ctypes.memset(block, 1, size)
for line in open("/proc/self/smaps_rollup"):
    if line.startswith("AnonHugePages:"):
        print(line.split()[1])
"""
THP_MODE = Path("/sys/kernel/mm/transparent_hugepage/enabled")


def in_huge_pages(extra_environment: dict) -> int:
    answer = subprocess.run([sys.executable, "-c", HUGE_PAGES_SCRIPT], capture_output=True,
                            text=True, timeout=60, check=True,
                            env={**os.environ, **extra_environment})
    return int(answer.stdout.split()[-1]) * 1024


def test_the_service_asks_glibc_for_huge_pages():
    assert service_environment() == {"GLIBC_TUNABLES": "glibc.malloc.hugetlb=1"}


def huge_page_fallbacks() -> int:
    """How often the kernel had no free huge page to give (it then gives small ones)."""
    for line in Path("/proc/vmstat").read_text().splitlines():
        if line.startswith("thp_fault_fallback "):
            return int(line.split()[1])
    return 0


def test_with_the_service_settings_a_password_checks_memory_is_in_huge_pages():
    mode = THP_MODE.read_text() if THP_MODE.exists() else "[never]"
    if "[never]" in mode:
        pytest.skip("this kernel has transparent huge pages switched off")
    without = {"GLIBC_TUNABLES": ""}

    fallbacks = huge_page_fallbacks()
    with_setting = in_huge_pages(service_environment())
    if with_setting < 60 * 2**20 and huge_page_fallbacks() > fallbacks:
        pytest.skip("the kernel had no free huge pages to give (memory too fragmented)")
    assert with_setting >= 60 * 2**20
    if "[madvise]" in mode:  # Debian's default: only memory that asks for them
        assert in_huge_pages(without) == 0
