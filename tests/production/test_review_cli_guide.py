"""The operator's guide's own command lines, copied as written, do what it says."""

from __future__ import annotations

import re
import subprocess
import sys

from tests.production.conftest import ROOT, flask_cli, production_env

DOCS = [ROOT / "README.md", ROOT / "docs" / "operators-guide.md"]
PASSWORD = "a long enough password for the guide"


def _phones_in_docs() -> list[str]:
    found = []
    for path in DOCS:
        for match in re.finditer(r'--phone (?:"([^"]+)"|([^\s`\]]+))', path.read_text()):
            value = match.group(1) or match.group(2)
            if value != "NUMBER":
                found.append(value)
    return found


def test_every_phone_number_the_docs_show_is_one_the_command_takes(databases):
    url = databases.new()
    flask_cli("db", "upgrade", database_url=url)
    phones = _phones_in_docs()
    assert phones
    for n, phone in enumerate(phones):
        # As section 8 writes it: users add EMAIL --phone NUMBER --channel sms.
        result = subprocess.run(
            [sys.executable, "-m", "flask", "--app", "app", "users", "add",
             f"client{n}@example.com", "--phone", phone, "--channel", "sms", "--password-stdin"],
            cwd=ROOT, env=production_env(url), input=PASSWORD + "\n", capture_output=True,
            text=True, timeout=180)
        assert result.returncode == 0, (phone, result.stdout + result.stderr)
