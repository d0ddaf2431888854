"""A mail server refusing our login or our sender is this firm's setup, not the client's
address: retried (the client sees a delay), and logged at ERROR for the operator. A refused
recipient stays a permanent failure."""

from __future__ import annotations

import logging
from datetime import timedelta

import pytest
import trustme
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult

from services import clock, delivery
from tests.conftest import SMTPServer, _Handler, make_config, running_app
from tests.delivery.test_transport_security import (
    MAIL_PASSWORD, TLSSMTPServer, only_delivery, run, sign_in_and_deliver, tls_app,
)


@pytest.fixture
def ca(tmp_path):
    """A CA the mail connection alone trusts (MAIL_CA_BUNDLE=ca.path)."""
    authority = trustme.CA()
    authority.path = str(tmp_path / "ca.pem")
    authority.cert_pem.write_to_path(authority.path)
    return authority


class LoginRefusingServer(TLSSMTPServer):
    """Refuses every login with 535 until told otherwise."""

    accept_logins = False

    def _authenticate(self, server, session, envelope, mechanism, auth_data):
        if not self.accept_logins:
            return AuthResult(success=False, handled=False)  # "535 5.7.8 ... invalid"
        return super()._authenticate(server, session, envelope, mechanism, auth_data)


class _SenderRefusingHandler(_Handler):
    async def handle_MAIL(self, server, session, envelope, address, mail_options):
        if self.server.refuse_sender:
            return "550 5.7.1 Sender address not allowed for this login"
        envelope.mail_from = address
        return "250 OK"


class SenderRefusingServer(SMTPServer):
    refuse_sender = True

    def start(self) -> None:
        self._controller = Controller(_SenderRefusingHandler(self), hostname="127.0.0.1",
                                      port=self.port)
        self._controller.start()


def test_a_refused_login_is_retried_and_told_to_the_operator_not_failed(
        tmp_path, ca, caplog):
    server = LoginRefusingServer(ca, implicit=True)
    server.start()
    try:
        with tls_app(tmp_path, server, MAIL_CA_BUNDLE=ca.path) as app:
            with caplog.at_level(logging.ERROR, logger="clientgate.delivery"):
                b = sign_in_and_deliver(app)
            item = only_delivery(app)
            assert (item.status, item.attempts) == ("queued", 1)  # retried, not failed
            assert item.last_error == "the mail server did not accept our login (535)"
            assert delivery.describe(item)[0] == "retrying"
            assert "we are trying again" in b.text("/login/code")
            errors = [r for r in caplog.records if r.levelno == logging.ERROR]
            assert len(errors) == 1
            assert "did not accept our login (535 5.7.8 Authentication credentials invalid)" \
                in errors[0].getMessage()
            assert "check MAIL_USERNAME and MAIL_PASSWORD" in errors[0].getMessage()
            assert MAIL_PASSWORD not in caplog.text

            server.accept_logins = True  # the operator mends the password
            clock.advance(timedelta(seconds=10))  # past the first backoff
            run(app)
            assert server.wait_for(1)[0].code
            assert only_delivery(app).status == "sent"
    finally:
        server.stop()


def test_a_refused_sender_is_retried_and_told_to_the_operator_not_failed(tmp_path, caplog):
    server = SenderRefusingServer()
    server.start()
    try:
        with running_app(make_config(tmp_path, server)) as app:
            with caplog.at_level(logging.ERROR, logger="clientgate.delivery"):
                sign_in_and_deliver(app)
            item = only_delivery(app)
            assert (item.status, item.attempts) == ("queued", 1)
            assert item.last_error == "the mail server did not accept our sender address (550)"
            assert "check that the mail server lets this login send as MAIL_DEFAULT_SENDER" \
                in caplog.text
            assert "Sender address not allowed for this login" in caplog.text

            server.refuse_sender = False
            clock.advance(timedelta(seconds=10))
            run(app)
            assert server.wait_for(1)[0].code
            assert only_delivery(app).status == "sent"
    finally:
        server.stop()


@pytest.mark.parametrize("answer", ["550 5.1.1 No such user", "553 mailbox name not allowed"])
def test_a_refused_recipient_still_fails_at_once(tmp_path, smtp, answer, caplog):
    smtp.refuse_with = answer
    with running_app(make_config(tmp_path, smtp)) as app:
        sign_in_and_deliver(app)
        item = only_delivery(app)
        assert item.status == "failed" and item.attempts == 1
        assert item.last_error == f"the mail server refused the address ({answer[:3]})"
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
