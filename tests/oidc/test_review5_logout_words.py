"""The logout pages say only what ClientGate does.

Logging out here ends the ClientGate session and the tokens issued under it; an app that
keeps a sign-in of its own (Nextcloud's cookie, say) is not told (no front- or back-channel
logout is offered). The pages said the opposite: "This ends your sign-in here and in every
app that uses it on this device", and "You are no longer signed in to ... or <app>", so a
client at a shared computer could walk away from an app still open in their name.
"""

from __future__ import annotations

from urllib.parse import urlencode

from tests.oidc.conftest import authorize_url, code_from, exchange, pkce, register

BYE = "https://files.example.com/bye"


def test_the_logout_pages_do_not_promise_the_apps_are_signed_out(app, user, sign_in):
    rp = register(app, "Files", post_logout=())
    b = sign_in()
    asked = b.get("/oauth/logout?" + urlencode({"client_id": rp.client_id})).get_data(
        as_text=True)
    assert "Log out of" in asked and "every app" not in asked
    assert "Files keeps its own sign-in" in asked

    verifier, challenge = pkce()
    back = code_from(b.get(authorize_url(rp, challenge)))
    hint = exchange(b.client, rp, back["code"], verifier).get_json()["id_token"]
    done = b.get("/oauth/logout?" + urlencode({"id_token_hint": hint})).get_data(as_text=True)
    assert "You have logged out" in done and "or Files" not in done
    assert "Files keeps its own sign-in" in done
