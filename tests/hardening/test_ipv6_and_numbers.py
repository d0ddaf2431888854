"""Issue 11, points 6 and 7: per-address limits count an IPv6 /64 as one client; every
integer from a request is range-checked.

On the old code rotating through addresses of one IPv6 /64 escaped every per-IP limit, and
`GET /login/code/status?sign_in=9223372036854775808` with a pending sign-in was a 500.
"""

from __future__ import annotations

import pytest

from services.addresses import limit_key, same_client
from tests.conftest import Browser, add_user
from tests.security.conftest import limits_on  # noqa: F401 - a fixture, used by name


def _from(app, address: str) -> Browser:
    b = Browser(app)
    b.client.environ_base["REMOTE_ADDR"] = address
    return b


def test_password_checks_per_ip_count_an_ipv6_64_as_one(app, limits_on):
    limits_on(login_per_ip="3 per minute", login_per_account="100 per minute")
    answers = [_from(app, f"2001:db8:1:2::{n:x}").post(
        "/login", {"email": f"nobody{n}@example.com", "password": "wrong password"}).status_code
        for n in range(1, 5)]
    assert answers == [200, 200, 200, 429]
    # Another /64 is another client; an IPv4 address is still itself.
    assert _from(app, "2001:db8:1:3::1").post(
        "/login", {"email": "x@example.com", "password": "wrong password"}).status_code == 200
    assert _from(app, "203.0.113.7").post(
        "/login", {"email": "x@example.com", "password": "wrong password"}).status_code == 200


def test_the_hourly_code_cap_per_address_counts_an_ipv6_64(app):
    app.config["CODES_PER_IP_PER_HOUR"] = 3
    for n in range(4):
        add_user(app, f"c{n}@example.com")
    answers = [_from(app, f"2001:db8:aa:bb:{n + 1:x}::9").log_in(f"c{n}@example.com").status_code
               for n in range(4)]
    assert answers == [302, 302, 302, 429]
    assert _from(app, "2001:db8:aa:bc::1").log_in("c3@example.com").status_code == 302


def test_limit_keys():
    assert limit_key("2001:db8:1:2:aaaa:bbbb:cccc:dddd") == "2001:db8:1:2::/64"
    assert limit_key("::ffff:203.0.113.7") == "203.0.113.7" == limit_key("203.0.113.7")
    assert limit_key("fe80::1%eth0") == "fe80::/64"
    assert limit_key("not an address") == "not an address" and limit_key(None) == "unknown"
    assert same_client("2001:db8:1:2::1", "2001:0db8:0001:0002:ffff::1")
    assert not same_client("2001:db8:1:2::1", "2001:db8:1:3::1")


@pytest.mark.parametrize("number", ["9223372036854775808", "2147483648", "-1", "0",
                                    "99999999999999999999999"])
def test_a_huge_sign_in_number_is_no_500(app, user, browser, number):
    assert browser.log_in().status_code == 302
    response = browser.get(f"/login/code/status?sign_in={number}")
    assert response.status_code == 200
    assert response.get_json()["status"] == "pending"  # this browser's own sign-in


@pytest.mark.parametrize("path", ["/support/clients/9223372036854775808",
                                  "/support/clients/2147483648",
                                  "/support/clients/2147483648/export.csv"])
def test_a_huge_id_in_a_path_is_a_404(app, smtp, deliver, sign_in, path):
    add_user(app, "staff@example.com", role="support")
    staff = sign_in("staff@example.com")
    assert staff.get(path).status_code == 404


def test_a_huge_page_marker_is_ignored(app, smtp, deliver, sign_in):
    client_id = add_user(app, "client@example.com")
    add_user(app, "staff@example.com", role="support")
    staff = sign_in("staff@example.com")
    response = staff.get(f"/support/clients/{client_id}?before=9223372036854775808")
    assert response.status_code == 200
