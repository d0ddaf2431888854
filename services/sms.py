"""Sending SMS through Vonage's SMS API with the official SDK."""

from __future__ import annotations

from typing import Optional

from flask import current_app
from vonage import Auth, HttpClientOptions, Vonage
from vonage_http_client.errors import HttpRequestError
from vonage_sms import SmsMessage
from vonage_sms.errors import SmsError
from vonage_utils import VonageError

from services.delivery import DeliveryError


def _client() -> Vonage:
    config = current_app.config
    client = Vonage(
        Auth(api_key=config["VONAGE_API_KEY"], api_secret=config["VONAGE_API_SECRET"]),
        HttpClientOptions(rest_host=config["VONAGE_REST_HOST"], timeout=15),
    )
    if config.get("VONAGE_CA_BUNDLE"):
        # Tests trust their stub's own certificate, for this client only.
        client.http_client._session.verify = config["VONAGE_CA_BUNDLE"]
    return client


def send_sms(to: str, text: str, *, client_ref: Optional[str] = None) -> Optional[str]:
    """Hand one SMS to Vonage; returns its message id."""
    message = SmsMessage(
        to=to.lstrip("+"), from_=current_app.config["VONAGE_SMS_FROM"], text=text,
        client_ref=client_ref,
    )
    try:
        response = _client().sms.send(message)
    except SmsError as exc:
        raise DeliveryError(f"the text message service refused it ({exc})", permanent=True) from exc
    except (HttpRequestError, VonageError, OSError) as exc:
        raise DeliveryError(f"the text message service could not be reached ({type(exc).__name__})") from exc
    return response.messages[0].message_id
