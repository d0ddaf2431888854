"""Each diagnosis from a real sign-in sequence made through the app, as a client would."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

from extensions import db
from models import SignIn, User
from services import clock
from services.delivery import sms
from services.signin import codes
from services.support import diagnosis
from tests.conftest import Browser, add_user, user_by_email
from tests.support.conftest import (
    CLIENT, DESKTOP_UA, PHONE_UA, finding, hhmm, kinds, start, views, wrong,
)


def sign_ins(app) -> list[SignIn]:
    with app.app_context():
        rows = db.session.scalars(select(SignIn).order_by(SignIn.id)).all()
        db.session.expunge_all()
        return rows


def test_a_smooth_sign_in_has_nothing_wrong(app, client_id, smtp, deliver, phone):
    code = start(phone, smtp, deliver)
    assert phone.enter_code(code).status_code == 302
    [view] = views(app, client_id)
    assert kinds(view) == [diagnosis.SIGNED_IN]
    assert not view.went_wrong
    assert view.device == "Chrome Mobile 120 on Android 14, phone"


def test_code_left_late_says_how_many_minutes(app, client_id, smtp, deliver, phone):
    assert phone.log_in().status_code == 302
    clock.advance(timedelta(minutes=7))  # the dispatcher was held up
    deliver()
    smtp.wait_for(1)
    assert phone.enter_code(smtp.last_to(CLIENT).code).status_code == 302

    [view] = views(app, client_id)
    late = finding(view, diagnosis.LATE)
    item = view.facts.deliveries[0]
    assert "took 7 minutes to leave us" in late.text
    day = view.sign_in.created_at
    assert f"queued at {hhmm(app, item.created_at, day)}" in late.text
    assert f"handed to the mail server at {hhmm(app, item.sent_at, day)}" in late.text
    assert late.severity == diagnosis.WARNING


def test_code_typed_long_after_it_was_sent_suggests_it_arrived_late(
        app, client_id, smtp, deliver, phone):
    code = start(phone, smtp, deliver)
    clock.advance(timedelta(minutes=6))
    assert phone.enter_code(code).status_code == 302

    [view] = views(app, client_id)
    late = finding(view, diagnosis.LATE)
    assert "first code was typed 6 minutes after the message was handed over" in late.text
    assert "junk or spam" in late.text


def test_code_from_an_earlier_sign_in_names_both_times(app, client_id, smtp, deliver, phone):
    old_code = start(phone, smtp, deliver)
    clock.advance(timedelta(minutes=3))
    new_code = start(phone, smtp, deliver)  # Log in pressed again in the same browser
    clock.advance(timedelta(minutes=1))
    assert phone.enter_code(old_code).status_code == 422
    assert phone.enter_code(new_code).status_code == 302

    newer, older = views(app, client_id)
    mix_up = finding(newer, diagnosis.EARLIER_CODE)
    assert mix_up.severity == diagnosis.PROBLEM
    day = newer.sign_in.created_at  # the words are about the newer sign-in
    assert (f"typed the code from their earlier sign-in at "
            f"{hhmm(app, older.sign_in.created_at, day)}, "
            f"not the code sent at {hhmm(app, newer.sign_in.created_at, day)}") in mix_up.text
    # The same story, told from the older sign-in: it was replaced.
    assert diagnosis.RAPID_SIGN_INS in kinds(older)
    assert "from the same browser" in finding(older, diagnosis.RAPID_SIGN_INS).text


def test_code_typed_in_the_tab_whose_sign_in_was_replaced(app, client_id, smtp, deliver):
    laptop, mobile = Browser(app, user_agent=DESKTOP_UA), Browser(app, user_agent=PHONE_UA)
    old_code = start(laptop, smtp, deliver)
    clock.advance(timedelta(minutes=2))
    # Signed in again on the phone, and chose to send a new code.
    mobile.log_in()
    assert mobile.post("/login", {"action": "new"}).status_code == 302
    deliver()
    assert laptop.enter_code(old_code).status_code == 422

    newer, older = views(app, client_id)
    mix_up = finding(older, diagnosis.EARLIER_CODE)
    day = older.sign_in.created_at  # the words are about the older sign-in
    assert (f"typed a code for this sign-in from {hhmm(app, older.sign_in.created_at, day)}, "
            f"but the sign-in at {hhmm(app, newer.sign_in.created_at, day)} had already replaced it"
            ) in mix_up.text
    rapid = finding(older, diagnosis.RAPID_SIGN_INS)
    assert "from a different browser or device" in rapid.text


def test_several_sign_ins_in_a_short_time(app, client_id, smtp, deliver, phone):
    for _ in range(3):
        start(phone, smtp, deliver)  # Back, then Log in, three times
        clock.advance(timedelta(minutes=1))

    newest, middle, oldest = views(app, client_id)
    for view in (newest, middle, oldest):
        day = view.sign_in.created_at
        times = ", ".join(hhmm(app, v.sign_in.created_at, day) for v in (oldest, middle, newest))
        rapid = finding(view, diagnosis.RAPID_SIGN_INS)
        assert f"3 sign-ins within 2 minutes ({times})" in rapid.text
        assert "presses Back, clicks Log in again, or opens a new tab" in rapid.text
    assert "Only this last one's code" in finding(newest, diagnosis.RAPID_SIGN_INS).text
    assert (f"replaced at {hhmm(app, middle.sign_in.created_at, oldest.sign_in.created_at)}"
            in finding(oldest, diagnosis.RAPID_SIGN_INS).text)


def test_sign_ins_far_apart_are_not_a_burst(app, client_id, smtp, deliver, phone):
    code = start(phone, smtp, deliver)
    assert phone.enter_code(code).status_code == 302
    phone.post("/logout", form_page="/portal")
    clock.advance(timedelta(minutes=3))
    start(phone, smtp, deliver)
    assert all(diagnosis.RAPID_SIGN_INS not in kinds(v) for v in views(app, client_id))


def test_delivery_failure_gives_the_reason(app, client_id, smtp, deliver, phone):
    smtp.refuse_with = "550 5.1.1 no such user here"
    assert phone.log_in().status_code == 302
    deliver()

    [view] = views(app, client_id)
    failed = finding(view, diagnosis.DELIVERY_FAILED)
    assert failed.severity == diagnosis.PROBLEM
    assert "the email to c•••@example.com could not be sent: the mail server refused the address" \
        in failed.text
    assert "Check the email address is right" in failed.text


def test_mail_server_down_until_the_code_ran_out(app, client_id, smtp, deliver, phone):
    smtp.stop()
    assert phone.log_in().status_code == 302
    deliver()
    [view] = views(app, client_id)
    retrying = finding(view, diagnosis.DELIVERY_FAILED)
    assert retrying.severity == diagnosis.WARNING
    assert "keeps failing: the mail server could not be reached" in retrying.text

    clock.advance(codes.CODE_LIFETIME + timedelta(seconds=1))
    deliver()
    [view] = views(app, client_id)
    failed = finding(view, diagnosis.DELIVERY_FAILED)
    assert failed.severity == diagnosis.PROBLEM
    assert "could not be sent (the mail server could not be reached" in failed.text
    assert "the message was never handed over" in finding(view, diagnosis.EXPIRED).text


def test_too_many_wrong_tries(app, client_id, smtp, deliver, phone):
    code = start(phone, smtp, deliver)
    for _ in range(codes.MAX_WRONG_CODES):
        phone.enter_code(wrong(code))

    [view] = views(app, client_id)
    assert view.sign_in.status == "locked"
    tries = finding(view, diagnosis.TOO_MANY_TRIES)
    assert f"{codes.MAX_WRONG_CODES} wrong codes typed" in tries.text
    assert "must sign in again" in tries.text
    steps = [s.what for s in view.steps]
    assert steps.count("Code typed: wrong") == codes.MAX_WRONG_CODES


def test_a_few_wrong_tries_are_only_a_note(app, client_id, smtp, deliver, phone):
    code = start(phone, smtp, deliver)
    phone.enter_code(wrong(code))
    assert phone.enter_code(code).status_code == 302
    [view] = views(app, client_id)
    assert finding(view, diagnosis.WRONG_CODES).severity == diagnosis.INFO
    assert not view.went_wrong


def test_expired_code_typed_too_late(app, client_id, smtp, deliver, phone):
    code = start(phone, smtp, deliver)
    clock.advance(codes.CODE_LIFETIME + timedelta(minutes=2))
    assert phone.enter_code(code).status_code == 422

    [view] = views(app, client_id)
    expired = finding(view, diagnosis.EXPIRED)
    day = view.sign_in.created_at
    assert (f"the one sent at {hhmm(app, view.sign_in.created_at, day)} ran out at "
            f"{hhmm(app, view.sign_in.expires_at, day)}") in expired.text
    assert "typed a code at" in expired.text and "2 minutes after that" in expired.text


def test_expired_code_never_typed(app, client_id, smtp, deliver, phone):
    start(phone, smtp, deliver)
    clock.advance(codes.CODE_LIFETIME + timedelta(seconds=1))
    deliver()  # the dispatcher's sweep ends it
    [view] = views(app, client_id)
    expired = finding(view, diagnosis.EXPIRED)
    assert "No code was typed at all: the message may not have arrived" in expired.text


# --- SMS, through the real vonage SDK and the HTTPS stub --------------------------------

def test_sms_to_a_number_that_is_not_a_uk_mobile(app, vonage, deliver, phone, staff):
    # A number saved before the UK-only rule existed, as an old database may hold.
    add_user(app, "abroad@example.com", channel="sms", phone="+12025550123")
    assert phone.log_in("abroad@example.com").status_code == 302
    deliver()

    user_id = user_by_email(app, "abroad@example.com").id
    [view] = views(app, user_id)
    unreachable = finding(view, diagnosis.SMS_UNREACHABLE)
    assert unreachable.severity == diagnosis.PROBLEM
    assert "•••• ••• 123, which is not a UK mobile number" in unreachable.text
    assert "Switch the client to email" in unreachable.text
    page = staff.text(f"/support/clients/{user_id}")
    assert "Not a UK mobile: texts cannot reach it" in page
    assert "which is not a UK mobile number" in page


def test_sms_the_phone_could_not_receive(app, vonage, deliver, phone):
    add_user(app, "mobile@example.com", channel="sms", phone="+447400123456")
    assert phone.log_in("mobile@example.com").status_code == 302
    deliver()
    sent = vonage.wait_for(1)[0]
    with app.app_context():
        # Vonage's receipt: the phone was off for too long (err-code 2).
        result = sms.receive_receipt(vonage.receipt(sent, "failed", err_code="2"))
        db.session.commit()
        assert result.http_status == 200

    [view] = views(app, sign_ins(app)[0].user_id)
    unreachable = finding(view, diagnosis.SMS_UNREACHABLE)
    assert "•••• ••• 456 could not receive it" in unreachable.text
    assert "the phone was switched off or out of signal" in unreachable.text
    assert "Not delivered" in [s.what for s in view.steps]


def test_sms_delivered_late(app, vonage, deliver, phone):
    add_user(app, "mobile@example.com", channel="sms", phone="+447400123456")
    assert phone.log_in("mobile@example.com").status_code == 302
    deliver()
    sent = vonage.wait_for(1)[0]
    clock.advance(timedelta(minutes=4, seconds=30))  # the receipt's time has whole seconds
    stamp = clock.now().strftime("%Y-%m-%d %H:%M:%S")
    with app.app_context():
        sms.receive_receipt(vonage.receipt(sent, "delivered", message_timestamp=stamp))
        db.session.commit()

    [view] = views(app, sign_ins(app)[0].user_id)
    late = finding(view, diagnosis.LATE)
    assert "the phone network took 4 minutes to deliver the text" in late.text
    assert "Delivered" in [s.what for s in view.steps]


def test_sms_refused_by_vonage(app, vonage, deliver, phone):
    add_user(app, "mobile@example.com", channel="sms", phone="+447400123456")
    vonage.refuse_next("7")  # number barred
    assert phone.log_in("mobile@example.com").status_code == 302
    deliver()
    [view] = views(app, sign_ins(app)[0].user_id)
    failed = finding(view, diagnosis.DELIVERY_FAILED)
    assert "the text to •••• ••• 456 could not be sent: this number is barred" in failed.text
    assert "switch the client to email" in failed.text


def test_sign_in_ended_by_an_account_lock(app, client_id, smtp, deliver, phone):
    from services.signin import limits

    start(phone, smtp, deliver)
    with app.app_context():
        limits.lock_account(db.session.get(User, client_id))  # as after many wrong passwords
        db.session.commit()
    [view] = views(app, client_id)
    assert view.sign_in.status == "locked"
    locked = finding(view, diagnosis.ACCOUNT_LOCKED)
    assert "The account was locked at" in locked.text
    assert diagnosis.TOO_MANY_TRIES not in kinds(view)  # it was not this sign-in's wrong codes
    assert "Ended by an account lock" in [s.what for s in view.steps]


def test_recent_problems_across_all_clients(app, smtp, deliver, staff):
    for name in ("fine", "refused", "slow", "mixed"):
        add_user(app, f"{name}@example.com")
    fine = Browser(app)
    assert fine.enter_code(start(fine, smtp, deliver, "fine@example.com")).status_code == 302

    smtp.refuse_with = "550 no such user"
    Browser(app).log_in("refused@example.com")
    deliver()
    smtp.refuse_with = None
    clock.advance(timedelta(minutes=1))

    slow = Browser(app)
    start(slow, smtp, deliver, "slow@example.com")
    clock.advance(timedelta(minutes=1))
    mixed = Browser(app)
    old = start(mixed, smtp, deliver, "mixed@example.com")
    clock.advance(timedelta(seconds=30))
    start(mixed, smtp, deliver, "mixed@example.com")
    mixed.enter_code(old)
    clock.advance(codes.CODE_LIFETIME)
    deliver()  # the slow client's code, and the mixed one's, run out unused

    page = staff.text("/support")
    section = page[page.index("Sign-ins that went wrong lately"):]
    assert "fine@example.com" not in section
    for email in ("refused@example.com", "slow@example.com", "mixed@example.com"):
        assert email in section
    assert section.index("mixed@example.com") < section.index("slow@example.com") \
        < section.index("refused@example.com")  # newest first
    assert "the mail server refused the address" in section
    assert "from their earlier sign-in" in section


def test_only_the_newest_troubled_sign_in_shows_its_steps_open(app, client_id, smtp, deliver,
                                                                 phone, staff):
    """Ten failed attempts must not make a page of ten open tables (9,000 px on a desktop)."""
    for _ in range(3):
        start(phone, smtp, deliver)  # each replaces the one before: all went wrong but the last
        clock.advance(timedelta(minutes=1))
    assert sum(v.went_wrong for v in views(app, client_id)) >= 2
    page = staff.text(f"/support/clients/{client_id}")
    assert page.count('<details class="steps" open>') == 1
    assert page.count('<details class="steps" >') == 2


def test_sms_a_failure_reported_after_delivery_is_not_told_as_not_delivered(app, vonage, deliver,
                                                                            phone):
    """Receipts can come out of order: "delivered", then "failed". The text stays delivered,
    and support is not told it did not arrive."""
    add_user(app, "mobile@example.com", channel="sms", phone="+447400123456")
    assert phone.log_in("mobile@example.com").status_code == 302
    deliver()
    sent = vonage.wait_for(1)[0]
    with app.app_context():
        for status, extra in (("delivered", {}), ("failed", {"err_code": "3"})):
            assert sms.receive_receipt(vonage.receipt(sent, status, **extra)).http_status == 200
            db.session.commit()

    [view] = views(app, sign_ins(app)[0].user_id)
    told = {s.what: s for s in view.steps}
    assert "Delivered" in told and "Not delivered" not in told
    assert ("A late report said it was not delivered (the number is not in use), after the "
            "network had said it reached the phone: it stays delivered."
            ) in told["Phone network update"].detail
    assert not any(f.kind == diagnosis.SMS_UNREACHABLE for f in view.findings)
