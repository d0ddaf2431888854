"""What a worker holds in memory: the big optional libraries load with their first use.

Every worker's resting memory is counted again under argon2id's 64 MiB (bench/run.py's RSS
figure). py_webauthn (with its certificate and ASN.1 libraries, 5 MB) loads with the first
passkey request, segno with the first authenticator app's QR code, ua-parser (2 MB) with the
first support page or trusted device that names a browser, Authlib and joserfc (3.6 MB) with
the first OpenID Connect request, and of the vonage SDK only the SMS API's part loads, with the
first text message: the `vonage` package's own client imports all fifteen of its APIs (10 MB
more). phonenumbers (1 MB) loads with the first phone number judged or written.
The password rules read zxcvbn's lists without importing zxcvbn, which would build all six
of its lists and keep them (17 MB) in any worker that has checked a password.
Each check runs in a fresh interpreter, since this test process has imported everything.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.conftest import free_port

ROOT = Path(__file__).resolve().parents[2]

SCRIPT = """
import json, sys
from app import create_app
from config import TestConfig
from extensions import db
from services.authenticators import passkeys
from services.delivery import sms
from services.delivery.handover import DeliveryError

app = create_app(type("Run", (TestConfig,), {
    "SQLALCHEMY_DATABASE_URI": "sqlite://", "SQLALCHEMY_ENGINE_OPTIONS": {},
    "VONAGE_API_KEY": "key", "VONAGE_API_SECRET": "secret",
    "VONAGE_REST_HOST": "127.0.0.1:%(port)d",  # nothing listens: refused at once
}))
loaded = {}
def note(step):
    loaded[step] = sorted({name.split(".")[0] for name in sys.modules}
                          & {"webauthn", "vonage", "vonage_sms", "pyasn1", "OpenSSL",
                             "segno", "user_agents", "authlib", "joserfc", "phonenumbers"})

with app.app_context():
    db.create_all()
client = app.test_client()
assert client.get("/login").status_code == 200
note("login page")
with app.app_context():
    try:
        sms.send_sms("+447700900123", "Your code is 123456", client_ref="1")
    except DeliveryError as refused:
        assert "could not be reached" in refused.reason, refused.reason
note("a text message")
with app.test_request_context():
    passkeys.authentication_options()
note("a passkey sign-in")
assert client.get("/.well-known/openid-configuration").status_code == 200
note("OpenID Connect")
from services.authenticators import totp
from services.support import timeline
totp.qr_data_uri("otpauth://totp/ClientGate:client@example.com?secret=JBSWY3DPEHPK3PXP")
timeline.device_words("Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0")
note("a QR code and a browser named")
from services import phones
assert phones.check_uk_mobile("07400 123456").ok
note("a phone number judged")
print(json.dumps(loaded))
"""


def test_optional_libraries_load_with_their_first_use():
    run = subprocess.run([sys.executable, "-c", SCRIPT % {"port": free_port()}], cwd=ROOT,
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    loaded = json.loads(run.stdout.splitlines()[-1])
    assert loaded["login page"] == []
    assert loaded["a text message"] == ["vonage_sms"]
    assert loaded["a passkey sign-in"] == ["OpenSSL", "pyasn1", "vonage_sms", "webauthn"]
    assert loaded["OpenID Connect"] == ["OpenSSL", "authlib", "joserfc", "pyasn1", "vonage_sms",
                                        "webauthn"]
    assert loaded["a QR code and a browser named"] == [
        "OpenSSL", "authlib", "joserfc", "pyasn1", "segno", "user_agents", "vonage_sms",
        "webauthn"]
    assert loaded["a phone number judged"] == [
        "OpenSSL", "authlib", "joserfc", "phonenumbers", "pyasn1", "segno", "user_agents",
        "vonage_sms", "webauthn"]


RULES_SCRIPT = """
import json, sys
from services.accounts import policy

answers = [policy.problem(password) for password in ("iloveyou12345", "a quiet walk home")]
print(json.dumps({"answers": answers,
                  "zxcvbn": sorted(name for name in sys.modules if name.startswith("zxcvbn"))}))
"""


def test_the_password_rules_keep_two_lists_not_zxcvbn():
    run = subprocess.run([sys.executable, "-c", RULES_SCRIPT], cwd=ROOT, capture_output=True,
                         text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    result = json.loads(run.stdout.splitlines()[-1])
    assert result["zxcvbn"] == []
    refused, accepted = result["answers"]
    assert "attackers try early" in refused
    assert accepted is None


def test_the_memory_bench_runs_every_step():
    """bench/memory.py, as bench/run.py calls it: every feature used, the peak above them."""
    run = subprocess.run([sys.executable, str(ROOT / "bench" / "memory.py"), "--json"],
                         cwd=ROOT, capture_output=True, text=True, timeout=180)
    assert run.returncode == 0, run.stderr
    result = json.loads(run.stdout.splitlines()[-1])
    assert result["backend"] == "sqlite"
    labels = [label for label, _ in result["steps"]]
    for step in ("the login page served", "a password checked against the rules",
                 "a phone number judged (phonenumbers)", "a text message (the vonage SDK)",
                 "a passkey sign-in begun (py_webauthn)",
                 "OpenID Connect discovery and signing key"):
        assert step in labels, step
    at_rest = result["steps"][-1][1]
    assert result["peak"] > at_rest + 60 * 2**20  # argon2id's 64 MiB, at production's cost
