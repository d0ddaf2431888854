"""The CSV export of a client's timeline, and that no page or export shows a code."""

from __future__ import annotations

import csv
import io
from datetime import timedelta

import pytest
from sqlalchemy import select

from extensions import db
from models import Event
from services import clock
from services.signin import codes
from tests.conftest import Browser, add_user, user_by_email
from tests.support.conftest import CLIENT, STAFF, assert_no_code, sent_codes, start, wrong


def read_csv(response) -> list[dict]:
    """The sign-ins' rows; the account's own events follow with no sign-in (issue 11, tested in
    tests/hardening/test_support_console.py)."""
    rows = csv.DictReader(io.StringIO(response.get_data(as_text=True)))
    return [row for row in rows if row["sign-in"]]


def test_export_is_a_csv_of_every_step(app, client_id, staff, smtp, deliver, phone):
    old = start(phone, smtp, deliver)
    clock.advance(timedelta(minutes=2))
    new = start(phone, smtp, deliver)
    phone.enter_code(old)
    phone.enter_code(new)

    response = staff.get(f"/support/clients/{client_id}/export.csv")
    assert response.status_code == 200
    assert response.mimetype == "text/csv"
    assert "attachment" in response.headers["Content-Disposition"]
    assert "no-store" in response.headers["Cache-Control"]
    rows = read_csv(response)
    tz = app.config["PORTAL_TIMEZONE"]
    assert f"step time ({tz})" in rows[0]
    sign_in_ids = [r["sign-in"] for r in rows]
    assert len(set(sign_in_ids)) == 2
    assert int(sign_in_ids[0]) > int(sign_in_ids[-1])  # newest sign-in first
    steps = [r["step"] for r in rows]
    for expected in ("Password accepted", "Code queued", "Handed over",
                     "Code typed: from an earlier sign-in", "Code typed: right", "Signed in",
                     "Replaced"):
        assert expected in steps
    assert all(r["sent to"] == "c•••@example.com" for r in rows)
    assert "from their earlier sign-in" in rows[0]["diagnosis"]
    assert rows[0]["browser and device"] == "Chrome Mobile 120 on Android 14, phone"

    [event] = db_events(app, "support_export")
    assert event.actor_id == user_by_email(app, STAFF).id and event.user_id == client_id


@pytest.mark.parametrize("site", ["cross-site", "same-site"])
def test_a_link_from_another_site_exports_nothing(app, client_id, staff, site):
    # The staff cookie comes along with a top-level GET from anywhere (SameSite=Lax): such a
    # link lands on the client's page, with no download and no record of one.
    response = staff.get(f"/support/clients/{client_id}/export.csv",
                         headers={"Sec-Fetch-Site": site})
    assert response.status_code == 303
    assert response.headers["Location"] == f"/support/clients/{client_id}"
    assert "use the button on this page" in staff.text(f"/support/clients/{client_id}")
    assert db_events(app, "support_export") == []
    # From the page itself (or typed into the address bar) it downloads as ever.
    for own in ("same-origin", "none"):
        response = staff.get(f"/support/clients/{client_id}/export.csv",
                             headers={"Sec-Fetch-Site": own})
        assert response.status_code == 200 and response.mimetype == "text/csv"
    assert len(db_events(app, "support_export")) == 2


def db_events(app, type_):
    with app.app_context():
        rows = db.session.scalars(select(Event).where(Event.type == type_).order_by(Event.id)).all()
        db.session.expunge_all()
        return rows


def test_export_cells_cannot_run_as_spreadsheet_formulas(app, client_id, staff, smtp, deliver):
    evil = Browser(app, user_agent="=HYPERLINK(\"http://evil.example/\",\"x\")")
    start(evil, smtp, deliver)
    rows = read_csv(staff.get(f"/support/clients/{client_id}/export.csv"))
    assert rows and all(not r["browser and device"].startswith("=") for r in rows)
    for row in rows:
        assert not any(str(value).startswith(("=", "+", "-", "@")) for value in row.values())


def test_export_of_a_client_with_no_sign_ins(app, client_id, staff):
    rows = read_csv(staff.get(f"/support/clients/{client_id}/export.csv"))
    assert rows == []


def test_export_runs_in_batches_over_many_sign_ins(app, client_id, staff, monkeypatch):
    from services import support

    monkeypatch.setattr(support, "EXPORT_BATCH", 3)
    with app.app_context():
        from models import User

        client = db.session.get(User, client_id)
        for _ in range(7):
            codes.start_sign_in(client, ip="127.0.0.1", user_agent="test")
            db.session.commit()
            clock.advance(timedelta(minutes=1))
    rows = read_csv(staff.get(f"/support/clients/{client_id}/export.csv"))
    assert len({r["sign-in"] for r in rows}) == 7


def test_no_page_or_export_shows_a_code(app, client_id, smtp, deliver, phone, staff):
    """Every code that reached an inbox, hunted for on every console page and in the export."""
    add_user(app, "other@example.com")
    other = Browser(app)
    # A busy morning: a mix-up, wrong tries, a resend, an expired code and a success.
    first = start(phone, smtp, deliver)
    clock.advance(timedelta(minutes=1))
    second = start(phone, smtp, deliver)
    phone.enter_code(first)
    phone.enter_code(wrong(second))
    clock.advance(timedelta(seconds=31))
    phone.post("/login/code/resend", form_page="/login/code")
    deliver()
    phone.enter_code(second)
    start(other, smtp, deliver, email="other@example.com")
    clock.advance(codes.CODE_LIFETIME + timedelta(minutes=1))
    deliver()

    codes_sent = sent_codes(smtp)
    assert len(codes_sent) >= 4
    other_id = user_by_email(app, "other@example.com").id
    pages = ["/support", f"/support?q={CLIENT}", "/support?q=example",
             f"/support/clients/{client_id}", f"/support/clients/{other_id}",
             f"/support/clients/{client_id}/actions/end-sign-ins",
             f"/support/clients/{client_id}/actions/unlock",
             f"/support/clients/{client_id}/actions/switch-to-email",
             f"/support/clients/{client_id}/export.csv",
             f"/support/clients/{other_id}/export.csv"]
    seen = ""
    for path in pages:
        response = staff.get(path)
        assert response.status_code == 200, path
        text = response.get_data(as_text=True)
        assert_no_code(text, codes_sent, path)
        seen += text
    # The pages did show this morning's story, so the search above looked at something.
    assert "from their earlier sign-in" in seen and "Client asked for the code again" in seen
    assert "Code typed: wrong" in seen and "Code ran out" in seen

    # Nor does the audit trail hold one.
    with app.app_context():
        trail = " ".join(f"{e.type} {e.outcome} {e.detail}" for e in
                         db.session.scalars(select(Event)))
    assert_no_code(trail, codes_sent, "in the audit trail")


def test_no_code_field_is_loaded_for_the_console(app, client_id, smtp, deliver, phone):
    """The queries refuse to load code columns, so no template can show one by mistake."""
    import pytest
    from sqlalchemy.exc import InvalidRequestError

    from models import User
    from services import support

    start(phone, smtp, deliver)
    with app.app_context():
        page = support.client_page(db.session.get(User, client_id), None, "Europe/London")
        with pytest.raises(InvalidRequestError):
            page.views[0].sign_in.code_hash
