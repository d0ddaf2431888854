"""The two ways to install psycopg agree: requirements.txt's binary wheel, and
requirements-postgresql.txt's build against the server's libpq (the operator's guide,
section 3). psycopg does not check that its C part is of its own version, so the files must."""

from __future__ import annotations

from importlib import metadata
from pathlib import Path

from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parent.parent


def lines_of(name: str) -> list[str]:
    lines = (line.split("#", 1)[0].strip() for line in (ROOT / name).read_text().splitlines())
    return [line for line in lines if line]


def psycopg_in(name: str) -> Requirement:
    requirements = [Requirement(line) for line in lines_of(name) if not line.startswith("-")]
    (found,) = [requirement for requirement in requirements if requirement.name == "psycopg"]
    return found


def test_the_local_build_adds_to_requirements_txt_and_pins_the_same_psycopg():
    wheel, local = psycopg_in("requirements.txt"), psycopg_in("requirements-postgresql.txt")

    assert "-r requirements.txt" in lines_of("requirements-postgresql.txt")
    assert wheel.extras == {"binary"} and local.extras == {"c"}
    assert str(wheel.specifier).startswith("==") and local.specifier == wheel.specifier


def test_the_installed_psycopg_is_the_pinned_one_with_its_own_c_part():
    pinned = str(psycopg_in("requirements.txt").specifier).removeprefix("==")

    assert metadata.version("psycopg") == pinned
    for c_part in ("psycopg-binary", "psycopg-c"):
        try:
            assert metadata.version(c_part) == pinned, c_part
        except metadata.PackageNotFoundError:
            assert c_part == "psycopg-c"  # the local build is optional
