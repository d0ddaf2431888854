"""A HEAD request for the export (a link checker, a download manager asking the size first)
ran the export's view, as Flask does for HEAD, and wrote a "timeline exported" record for a
download that never happened. HEAD now answers the headers and records nothing."""

from __future__ import annotations

from sqlalchemy import func, select

from extensions import db
from models import Event


def _exports(app) -> int:
    with app.app_context():
        return db.session.scalar(select(func.count(Event.id))
                                 .where(Event.type == "support_export")) or 0


def test_head_records_no_export_and_get_does(app, client_id, staff):
    url = f"/support/clients/{client_id}/export.csv"
    answer = staff.client.head(url)
    assert answer.status_code == 200
    assert answer.headers["Content-Type"].startswith("text/csv")
    assert _exports(app) == 0
    assert staff.get(url).status_code == 200
    assert _exports(app) == 1
