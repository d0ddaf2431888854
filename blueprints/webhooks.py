"""Callbacks from providers: Vonage delivery receipts."""

from __future__ import annotations

import logging
from typing import Optional

from flask import Blueprint, request

from extensions import csrf, db
from services.delivery import sms

bp = Blueprint("webhooks", __name__)
log = logging.getLogger("clientgate.webhooks")


def _receipt_fields() -> tuple[Optional[dict[str, str]], Optional[str]]:
    """The receipt's fields from the query (GET), a form or a JSON body (POST), or why not."""
    if request.method == "GET":
        source = request.args
    elif request.is_json:
        try:
            body = request.get_json(silent=True)
        except RecursionError:  # "[[[[..." within the size limit: not a ValueError, a 500
            return None, "the body is not a JSON object"
        if not isinstance(body, dict):
            return None, "the body is not a JSON object"
        if not all(isinstance(v, (str, int, float)) and not isinstance(v, bool)
                   for v in body.values()):
            return None, "a field is not a plain value"
        return {str(k): str(v) for k, v in body.items()}, None
    else:
        source = request.form
    # A field given twice could be read one way for the signature and another for the record.
    if any(len(source.getlist(key)) > 1 for key in source.keys()):
        return None, "a field is repeated"
    return source.to_dict(), None


@bp.route("/webhooks/vonage/dlr", methods=["GET", "POST"])
@csrf.exempt  # Vonage cannot send our CSRF token; the signature and client reference stand in
def vonage_dlr():
    fields, problem = _receipt_fields()
    if fields is None:
        log.warning("vonage receipt refused (400): %s", problem)
        return {"error": f"malformed receipt: {problem}", "status": 400}, 400
    result = sms.receive_receipt(fields)
    if result.http_status == 200:
        db.session.commit()
    else:
        db.session.rollback()
        log.warning("vonage receipt refused (%s): %s", result.http_status, result.result)
    body = {"status": result.http_status, "result": result.result}
    if result.http_status >= 400:
        body["error"] = result.result
    return body, result.http_status
