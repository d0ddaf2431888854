def test_login_page(browser):
    r = browser.get("/login")
    assert r.status_code == 200
    assert "Log in" in r.get_data(as_text=True)


def test_email_sign_in(app, user, smtp, deliver, browser):
    r = browser.log_in()
    assert r.status_code == 302 and r.headers["Location"].endswith("/login/code")
    deliver()
    mail = smtp.wait_for(1)[0]
    assert mail.code
    r = browser.enter_code(mail.code)
    assert r.status_code == 302, r.get_data(as_text=True)
    assert browser.get("/portal").status_code == 200
