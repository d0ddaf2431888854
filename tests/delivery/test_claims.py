"""A claimed message is handed over well within its claim, and only the claim's holder marks
it sent: no message goes out twice because a slow hand-over outlasted its claim.

MAIL_TIMEOUT bounds a whole hand-over (connecting, TLS, login, every command), not each step;
a text's hand-over to Vonage is bounded likewise (VONAGE_TIMEOUT). Tests check outcomes, never
how long anything took.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import threading
import time
from datetime import timedelta

from aiosmtpd.controller import Controller
from sqlalchemy import select

from extensions import db
from models import Delivery, Event
from services import clock, delivery, keys
from services.delivery.handover import HandedOver
from tests.conftest import (
    Browser, SMTPServer, _Handler, add_user, free_port, make_config, running_app,
)
from tests.delivery.test_transport_security import only_delivery, run
from tests.sms.conftest import SMS_EMAIL, SMS_PHONE
from tests.vonage_stub import VonageStub


class _SlowHandler(_Handler):
    """Answers every step of the conversation after `server.step_delay` seconds."""

    async def _pause(self) -> None:
        await asyncio.sleep(self.server.step_delay)

    async def handle_EHLO(self, server, session, envelope, hostname, responses):
        await self._pause()
        session.host_name = hostname
        return responses

    async def handle_MAIL(self, server, session, envelope, address, mail_options):
        await self._pause()
        envelope.mail_from = address
        return "250 OK"

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        await self._pause()
        return await super().handle_RCPT(server, session, envelope, address, rcpt_options)


class SlowSMTPServer(SMTPServer):
    """A mail server answering each step well within MAIL_TIMEOUT, but all of them not."""

    step_delay = 0.6

    def start(self) -> None:
        self._controller = Controller(_SlowHandler(self), hostname="127.0.0.1", port=self.port)
        self._controller.start()


def _signed_in(app) -> Browser:
    add_user(app)
    b = Browser(app)
    assert b.log_in().status_code == 302
    return b


def test_a_server_slow_at_every_step_is_cut_short_at_mail_timeout_and_retried(tmp_path):
    """Four steps of 0.6 s each: every one within MAIL_TIMEOUT=1, the hand-over not. It was
    let run for 2.4 s; with a 3 s claim, past the claim's share, where another worker may send
    it again. (The claim here is longer, so that a busy machine's slow start of the send cannot
    use up the claim before the hand-over begins, which is another refusal.)"""
    server = SlowSMTPServer()
    server.start()
    try:
        with running_app(make_config(tmp_path, server, MAIL_TIMEOUT=1,
                                     DISPATCHER_CLAIM_SECONDS=20)) as app:
            b = _signed_in(app)
            run(app)
            item = only_delivery(app)
            assert (item.status, item.attempts) == ("queued", 1)  # retried, not dropped
            assert item.last_error == "the mail server was too slow (not done within 1 second)"
            assert item.claimed_until is None
            assert "we are trying again" in b.text("/login/code")

            server.step_delay = 0  # the server recovers: the retry delivers it, once
            clock.advance(timedelta(seconds=10))
            run(app)
            clock.advance(timedelta(minutes=1))  # past any claim: nothing is sent again
            run(app)
            assert only_delivery(app).status == "sent"
            assert len(server.wait_for(1)) == 1
    finally:
        server.stop()


class TricklingServer:
    """Says its greeting one byte every 0.2 s: each read gets a byte well within MAIL_TIMEOUT,
    the greeting takes many times it."""

    def __init__(self) -> None:
        self.port = free_port()
        self.messages: list = []
        self._listener = socket.create_server(("127.0.0.1", self.port))
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        self._listener.settimeout(0.1)
        while not self._stop.is_set():
            try:
                conn, _ = self._listener.accept()
            except TimeoutError:
                continue
            with conn:
                for byte in b"220 mail.example.co.uk ESMTP a very slow greeting indeed\r\n":
                    if self._stop.wait(0.2):
                        return
                    try:
                        conn.sendall(bytes([byte]))
                    except OSError:
                        break  # the client gave up

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self._listener.close()


def test_a_server_trickling_its_replies_is_cut_short_at_mail_timeout(tmp_path):
    server = TricklingServer()
    try:
        with running_app(make_config(tmp_path, server, MAIL_TIMEOUT=1,
                                     DISPATCHER_CLAIM_SECONDS=3)) as app:
            _signed_in(app)
            run(app)
            item = only_delivery(app)
            assert (item.status, item.attempts) == ("queued", 1)
            assert item.last_error == "the mail server was too slow (not done within 1 second)"
    finally:
        server.stop()


def test_a_message_sent_after_its_claim_was_taken_over_is_not_marked_by_the_late_sender(
        app, smtp, monkeypatch, caplog):
    """Whatever kept the first sender past its claim (a stopped process, a database slow to
    answer), the message is the new holder's: the late sender does not mark it sent over the
    new claim, and says what happened in the trail and the log."""
    _signed_in(app)
    taken_over = []

    def outlasts_its_claim(item, *args, **kwargs):
        clock.advance(delivery.claim_lease() + timedelta(seconds=1))
        with app.app_context():  # another server's worker, on the same database
            taken_over.extend(delivery.claim_due(worker="other-server:4242"))
        return HandedOver()

    monkeypatch.setattr(delivery, "hand_over", outlasts_its_claim)
    with caplog.at_level(logging.WARNING, logger="clientgate.delivery"):
        with app.app_context():
            [delivery_id] = delivery.claim_due()
            assert delivery.process(delivery_id) == "claim lost"
    assert taken_over == [delivery_id]
    item = only_delivery(app)
    assert (item.status, item.claimed_by, item.attempts) == ("sending", "other-server:4242", 2)
    assert item.code_encrypted is not None  # the new holder still has the code to send
    with app.app_context():
        sent = db.session.scalars(select(Event).where(Event.type == "delivery_sent")).one()
    assert sent.detail["claim_lost"] is True
    assert "handed over after its claim ran out" in caplog.text


def test_the_claims_holder_marks_it_sent(app, smtp):
    _signed_in(app)
    with app.app_context():
        [delivery_id] = delivery.claim_due()
        assert delivery.process(delivery_id) == "sent"
    assert only_delivery(app).status == "sent"


def test_a_slow_text_message_service_is_cut_short_and_retried_once_per_claim(
        tmp_path, smtp):
    """Vonage's client had a 15 s timeout per step and retried a refused connection 4 times,
    none of it counted against the claim."""
    stub = VonageStub(tmp_path)
    stub.start()
    answer = stub._answer

    def slow_answer(received):
        time.sleep(stub.delay)
        return answer(received)

    stub.delay = 1.5
    stub._answer = slow_answer
    try:
        with running_app(make_config(tmp_path, smtp, VONAGE_TIMEOUT=1,
                                     **stub.app_config())) as app:
            add_user(app, SMS_EMAIL, channel="sms", phone=SMS_PHONE)
            assert Browser(app).log_in(SMS_EMAIL).status_code == 302
            run(app)
            item = only_delivery(app)
            assert (item.status, item.attempts) == ("queued", 1)
            assert item.last_error == \
                "the text message service could not be reached (ReadTimeout)"
            assert len(stub.wait_for(1)) == 1  # one request, no retries inside the client

            stub.delay = 0
            clock.advance(timedelta(seconds=10))
            run(app)
            assert only_delivery(app).status == "sent"
    finally:
        stub.stop()


def test_a_failed_hand_over_does_not_overwrite_a_claim_taken_over_meanwhile(app, smtp,
                                                                            monkeypatch):
    """A sender whose hand-over failed checks that it still holds the claim, then queues the
    message again. Another server could claim the message between the two (its claim had run
    out): the retry wrote over that claim, so the new holder's send was recorded against a
    row that said "queued", and the message could be claimed a third time. The check now
    holds the row, so the other server's claim waits for the retry and then finds the
    message not yet due."""
    _signed_in(app)
    taken_over = []

    def too_slow(item, *args, **kwargs):
        clock.advance(delivery.claim_lease() + timedelta(seconds=1))
        raise delivery.DeliveryError("the mail server was too slow")

    def another_server_claims():
        with app.app_context():  # another server's worker, on the same database
            taken_over.extend(delivery.claim_due(worker="other-server:4242"))
            db.session.remove()

    retry_or_fail = delivery._retry_or_fail
    other = threading.Thread(target=another_server_claims)

    def checked_then_raced(item, reason, **kwargs):
        other.start()
        other.join(0.5)  # done at once unless the row is held
        retry_or_fail(item, reason, **kwargs)

    monkeypatch.setattr(delivery, "hand_over", too_slow)
    monkeypatch.setattr(delivery, "_retry_or_fail", checked_then_raced)
    with app.app_context():
        [delivery_id] = delivery.claim_due()
        delivery.process(delivery_id)
    other.join(10)
    item = only_delivery(app)
    if taken_over:  # the other server's claim came first: the row must still say so
        assert (item.status, item.claimed_by) == ("sending", "other-server:4242")
    else:  # the retry came first: queued for its backoff, claimed by nobody
        assert (item.status, item.claimed_until) == ("queued", None)
        assert item.last_error == "the mail server was too slow"


def test_a_code_whose_time_ran_out_before_it_was_ever_tried_is_not_sent(app, smtp):
    """Only a message tried before was given up when its time ran out. A check of a new mobile
    number (10 minutes) still queued when the server stopped, or in a backup restored later,
    went out hours after its check had ended: a code nobody could use. (A notice still goes:
    `tests/security/test_limits.py::test_lock_delays_grow_and_mail_once_per_lock` sends lock
    emails days after they were queued.)"""
    with app.app_context():
        item = delivery.queue_message(
            user_id=None, channel="email", destination="late@example.com", kind="phone_proof",
            template="account_reactivated",
            values={"when": "10:05", "login_url": "http://localhost/login",
                    "forgot_url": "http://localhost/password/forgot"},
            code_encrypted=keys.encrypt_secret("123456"),
            give_up_at=clock.now() + timedelta(minutes=10))
        db.session.commit()
        delivery_id = item.id
    clock.advance(timedelta(minutes=11))
    with app.app_context():
        delivery.run_once()
        item = db.session.get(Delivery, delivery_id)
        assert (item.status, item.attempts) == ("failed", 0)
        assert "ran out before it could be sent" in item.last_error
    assert not [m for m in smtp.messages if m.to == ["late@example.com"]]
