"""Arguments that are not UTF-8 text (a terminal set to Latin-1, a name pasted from a
Windows-1252 file): Python holds them with lone surrogates, which no database takes. The
command says so in one line, exit code 2, instead of a UnicodeEncodeError traceback."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.conftest import add_user
from tests.production.conftest import ROOT, flask_cli, production_env
from tests.test_cli import invoke

NOT_UTF8 = "J\udce9r\udcf4me"  # "Jérôme" typed in Latin-1, as Python's argv holds it


@pytest.mark.parametrize("args, where", [
    (("users", "unlock", f"{NOT_UTF8}@example.com"), "EMAIL"),
    (("users", "set-role", f"{NOT_UTF8}@example.com", "admin"), "EMAIL"),
    (("users", "deactivate", f"{NOT_UTF8}@example.com"), "EMAIL"),
    (("users", "invite", "new@example.com", "--name", NOT_UTF8), "--name"),
    (("oidc", "add-client", NOT_UTF8, "--redirect-uri", "https://cloud.example.com/cb"),
     "NAME"),
    (("oidc", "add-client", "Cloud", "--redirect-uri", f"https://cloud.example.com/{NOT_UTF8}"),
     "--redirect-uri"),
    (("oidc", "remove-client", NOT_UTF8), "CLIENT_ID"),
    (("db-copy", "--from", f"sqlite:////var/lib/{NOT_UTF8}.db"), "--from"),
])
def test_an_argument_that_is_not_utf8_is_named(app, args, where):
    add_user(app, "someone@example.com")
    result = invoke(app, *args)
    assert result.exit_code == 2, result.output
    assert isinstance(result.exception, SystemExit), result.exception
    assert f"'{where}' is not UTF-8 text" in result.output, result.output


def test_a_latin1_email_from_a_real_terminal_is_a_message(databases):
    url = databases.new()
    flask_cli("db", "upgrade", database_url=url)
    result = subprocess.run(
        [sys.executable.encode(), b"-m", b"flask", b"--app", b"app", b"users", b"unlock",
         "Jérôme@example.com".encode("latin-1")],
        cwd=ROOT, env=production_env(url), capture_output=True, timeout=180)
    output = (result.stdout + result.stderr).decode(errors="replace")
    assert result.returncode == 2, output
    assert "Traceback" not in output
    assert "is not UTF-8 text" in output
