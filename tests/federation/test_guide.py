"""The operator's guide shows exactly the web server configurations the tests run."""

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("name", ["nginx.conf", "Caddyfile", "traefik.yml"])
def test_the_guide_shows_the_configuration_the_tests_use(name):
    guide = (ROOT / "docs" / "operators-guide.md").read_text()
    config = (ROOT / "docs" / "forward-auth" / name).read_text().rstrip()
    assert config in guide, f"docs/forward-auth/{name} is not in the guide as it is"
