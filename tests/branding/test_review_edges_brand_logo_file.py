"""Review of the brand's edges: a PORTAL_LOGO file far too big, or no file at all."""

from __future__ import annotations

import tracemalloc

import pytest

from services import branding


def test_a_huge_logo_file_is_refused_without_reading_it_all(tmp_path):
    """The size was checked after the whole file was read, in every worker at start: a
    PORTAL_LOGO naming a 64 MB file took 64 MB of memory first (a 4 GB one, 4 GB)."""
    big = tmp_path / "logo.png"
    with open(big, "wb") as file:
        file.truncate(64 * 1024 * 1024)
    tracemalloc.start()
    try:
        with pytest.raises(ValueError, match="over 512 KB"):
            branding.read_logo(str(big))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 4 * 1024 * 1024


def test_a_logo_that_is_not_a_file_is_refused(tmp_path):
    (tmp_path / "logo.png").mkdir()
    with pytest.raises(ValueError, match="cannot be read"):
        branding.read_logo(str(tmp_path / "logo.png"))
