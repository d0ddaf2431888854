"""Review of the brand's edges: a hostile PORTAL_LOGO address."""

from __future__ import annotations

import pytest

from app import create_app
from tests.conftest import make_config


@pytest.mark.parametrize("value", [
    # A ";" ends img-src in every page's policy and starts directives of its own.
    "https://cdn.firm.example; frame-src *; worker-src */logo.png",
    "https://cdn.firm.example,evil.example/logo.png",
    "https://cdn.firm.example\tscript-src/logo.png",
    "https://cdn.firm.example /logo.png",
    # A user and password would be in every page's headers (and are no valid CSP source).
    "https://user:secret@cdn.firm.example/logo.png",
    # Any https image at all.
    "https://*/logo.png",
    "https://cdn.firm.example:99999/logo.png",
])
def test_a_logo_address_cannot_write_the_content_security_policy(tmp_path, value):
    with pytest.raises(RuntimeError, match="PORTAL_LOGO must be an https:// address"):
        create_app(make_config(tmp_path, PORTAL_LOGO=value))


def test_a_logo_address_with_a_port_is_allowed_by_its_origin(tmp_path):
    app = create_app(make_config(tmp_path, PORTAL_LOGO="https://cdn.firm.example:8443/a/l.svg"))
    policy = app.test_client().get("/login").headers["Content-Security-Policy"]
    assert "img-src 'self' data: https://cdn.firm.example:8443;" in policy
