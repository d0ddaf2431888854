"""Nothing secret is kept: after a full run of sign-ins through real SMTP, the codes that were
sent appear in no log line, no printed output and no column of any table; codes are kept only
as keyed hashes, and the encrypted copy kept for resends is gone once each sign-in ends."""

from __future__ import annotations

import hashlib
import json
import logging
import re
from datetime import date, datetime, timedelta

from sqlalchemy import select

from extensions import db
from models import Delivery, SignIn
from services import clock
from services.signin import codes
from tests.conftest import Browser, wrong_code

EMAIL = "client@example.com"
ISO_TIME = re.compile(r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}:\d{2}(\.\d+)?([+-]\d{2}:?\d{2}|Z)?")
# Loggers of the test's own SMTP server, which of course sees the messages it receives.
TEST_SERVER_LOGGERS = ("mail.log",)


wrong = wrong_code


def contains_code(text: str, code: str) -> bool:
    """The code as a number of its own in `text`; timestamps (whose microseconds are six
    digits) are taken out first so that they cannot match by chance."""
    return re.search(rf"(?<!\d){code}(?!\d)", ISO_TIME.sub(" ", text)) is not None


def every_stored_text(app) -> list[tuple[str, str, str]]:
    """(table, column, text) for every value of every row of every table."""
    found = []
    with app.app_context():
        for table in db.metadata.sorted_tables:
            for row in db.session.execute(select(table)).mappings():
                for column, value in row.items():
                    if value is None or isinstance(value, (datetime, date, bool)):
                        continue  # a time or a flag cannot hold a code
                    text = json.dumps(value) if isinstance(value, (dict, list)) else str(value)
                    found.append((table.name, column, text))
    return found


def run_every_kind_of_sign_in(app, smtp, deliver) -> None:
    """Right code, resend, wrong codes, a superseded code, an expired one, a locked one."""
    first = Browser(app)
    first.log_in()
    deliver()
    code_a = smtp.wait_for(1)[-1].code
    clock.advance(codes.RESEND_COOLDOWN)
    first.post("/login/code/resend", form_page="/login/code")
    deliver()
    smtp.wait_for(2)
    first.enter_code(wrong(code_a))

    second = Browser(app)  # signs in again elsewhere: the first code is superseded
    second.log_in()
    second.post("/login", {"action": "new"})  # "send a new code" rather than keep the first
    deliver()
    code_b = smtp.wait_for(3)[-1].code
    assert "superseded" in first.get("/login/code/status").get_data(as_text=True)
    first.enter_code(code_a)  # an older code: named, not accepted
    assert second.enter_code(code_b).status_code == 302
    second.post("/logout", form_page="/portal")

    expiring = Browser(app)
    expiring.log_in()
    deliver()
    smtp.wait_for(4)
    clock.advance(codes.CODE_LIFETIME + timedelta(seconds=1))
    deliver()  # the dispatcher's sweep ends the sign-in

    guessing = Browser(app)
    guessing.log_in()
    deliver()
    code_d = smtp.wait_for(5)[-1].code
    for _ in range(codes.MAX_WRONG_CODES):
        guessing.enter_code(wrong(code_d))

    smtp.stop()  # the mail server is down: the code waits, encrypted, for a retry
    retried = Browser(app)
    retried.log_in()
    deliver()
    smtp.start()
    clock.advance(timedelta(seconds=30))
    deliver()
    code_e = smtp.wait_for(6)[-1].code
    assert retried.enter_code(code_e).status_code == 302


def test_codes_sent_appear_in_no_log_and_no_table(app, user, smtp, deliver, caplog, capsys):
    caplog.set_level(logging.DEBUG)
    run_every_kind_of_sign_in(app, smtp, deliver)
    sent = {mail.code for mail in smtp.messages}
    assert len(sent) == 5 and None not in sent  # five sign-ins, one code each (a resend reuses)

    logged = [(record.name, record.getMessage() + (record.exc_text or ""))
              for record in caplog.records if not record.name.startswith(TEST_SERVER_LOGGERS)]
    assert len(logged) > 20  # the audit trail does log every step, without the digits
    printed = capsys.readouterr()
    stored = every_stored_text(app)
    for code in sent:
        for name, message in logged:
            assert not contains_code(message, code), f"code in log {name}: {message}"
        assert not contains_code(printed.out + printed.err, code), "code printed"
        for table, column, text in stored:
            assert not contains_code(text, code), f"code in {table}.{column}"


def test_codes_are_kept_only_as_keyed_hashes_and_the_copy_is_wiped(app, user, smtp, deliver):
    run_every_kind_of_sign_in(app, smtp, deliver)
    sent = {mail.code for mail in smtp.messages}
    with app.app_context():
        sign_ins = db.session.scalars(select(SignIn).order_by(SignIn.id)).all()
        deliveries = db.session.scalars(select(Delivery)).all()
        ids = [s.id for s in sign_ins]
        assert [s.status for s in sign_ins] == [
            "superseded", "completed", "expired", "locked", "completed"]
        # Every sign-in has ended: no copy of any code is left, encrypted or not.
        assert all(s.code_encrypted is None for s in sign_ins)
        assert all(d.code_encrypted is None for d in deliveries)
        # The stored hash needs SECRET_KEY: it is an HMAC bound to the sign-in, not a plain hash.
        for s in sign_ins:
            assert len(s.code_hash) == 64
            matching = [c for c in sent if codes.code_matches(codes.sign_in_scope(s.id), c,
                                                              s.code_hash)]
            assert len(matching) == 1
    stored = "\n".join(text for _, _, text in every_stored_text(app))
    for code in sent:
        for sign_in_id in ids:
            for message in (code, f"signin:{sign_in_id}:{code}", f"{sign_in_id}:{code}"):
                for algorithm in ("md5", "sha1", "sha256", "sha512"):
                    digest = hashlib.new(algorithm, message.encode()).hexdigest()
                    assert digest not in stored, f"unkeyed {algorithm} of a code is stored"


def test_secret_key_is_never_logged_or_stored(app, user, smtp, deliver, caplog):
    caplog.set_level(logging.DEBUG)
    run_every_kind_of_sign_in(app, smtp, deliver)
    secret = app.config["SECRET_KEY"]
    assert secret not in caplog.text
    assert not any(secret in text for _, _, text in every_stored_text(app))


def test_codes_are_six_digits_from_the_csprng_and_live_ten_minutes(monkeypatch):
    """ASVS 6.5.3/6.5.4/6.5.5 and SP 800-63B out-of-band verifiers: CSPRNG, ~20 bits, 10 min."""
    asked = []
    real = codes.secrets.randbelow

    def spy(n):
        asked.append(n)
        return real(n)

    monkeypatch.setattr(codes.secrets, "randbelow", spy)
    made = [codes.new_code() for _ in range(200)]
    assert asked == [10 ** 6] * 200  # every code is one draw over all 10^6 values (19.9 bits)
    assert all(len(code) == 6 and code.isdigit() for code in made)
    assert len(set(made)) > 190
    assert codes.CODE_LIFETIME <= timedelta(minutes=10)
    assert codes.MAX_WRONG_CODES <= 5
