"""The client's timeline says who gave the account back, and only that.

Before, every "Account given back" row began "By the operator (users recover)", and one given
back from the console then went on "By support@example.com": two answers to who did it.
"""

from __future__ import annotations

import html
import re

from tests.support.conftest import CLIENT, STAFF


def _given_back_row(page: str) -> str:
    text = html.unescape(re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", page)))
    match = re.search(r"Account given back (.*?)\.(?: By [^ ]+\.| From the server's command "
                      r"line\.)", text)
    assert match, text
    return match.group(0)


def test_given_back_from_the_console_names_the_staff_member_not_the_operator(
        app, client_id, staff):
    url = f"/support/clients/{client_id}/actions/give-back"
    assert staff.post(url, {"owner_email": "", "confirm": "y"}).status_code == 302
    row = _given_back_row(staff.text(f"/support/clients/{client_id}"))
    assert row.endswith(f"By {STAFF}."), row
    assert "operator" not in row and "users recover" not in row, row


def test_given_back_on_the_server_says_so_once(app, client_id, staff):
    runner = app.test_cli_runner()
    result = runner.invoke(args=["users", "recover", CLIENT])
    assert result.exit_code == 0, result.output
    row = _given_back_row(staff.text(f"/support/clients/{client_id}"))
    assert row.endswith("From the server's command line."), row
    assert "operator" not in row, row
