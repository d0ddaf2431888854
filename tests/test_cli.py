"""The admin command line, through click's runner."""

from __future__ import annotations

from sqlalchemy import select

from extensions import db
from models import AuthSession, User
from services import clock
from services.signin import passwords
from tests.conftest import add_user

PASSWORD = "a long enough password"


def invoke(app, *args, input=None):
    return app.test_cli_runner().invoke(args=list(args), input=input)


def user(app, email):
    with app.app_context():
        return db.session.scalar(select(User).where(User.email == email))


def test_add_user_with_password_stdin(app):
    result = invoke(app, "users", "add", "New@Example.com", "--role", "support",
                    "--phone", "07400 123456", "--channel", "sms", "--password-stdin",
                    input=PASSWORD + "\n")
    assert result.exit_code == 0, result.output
    added = user(app, "new@example.com")
    assert added.role == "support" and added.channel == "sms"
    assert added.phone == "+447400123456" and added.phone_verified_at is not None
    with app.app_context():
        assert passwords.verify_password(added, PASSWORD)


def test_add_user_prompts_for_the_password(app):
    result = invoke(app, "users", "add", "p@example.com", input=f"{PASSWORD}\n{PASSWORD}\n")
    assert result.exit_code == 0, result.output
    assert user(app, "p@example.com").channel == "email"


def test_add_user_refuses_bad_input(app):
    add_user(app, "taken@example.com")
    cases = [
        (["users", "add", "taken@example.com", "--password-stdin"], "already exists"),
        (["users", "add", "not-an-email", "--password-stdin"], "not an email address"),
        (["users", "add", "x@example.com", "--phone", "+33612345678", "--password-stdin"],
         "UK mobile"),
        (["users", "add", "x@example.com", "--channel", "sms", "--password-stdin"], "needs --phone"),
        (["users", "add", "x@example.com", "--password-stdin"], "at least 12"),
        (["users", "add", "x@example.com", "--role", "boss", "--password-stdin"], "Invalid value"),
    ]
    for args, message in cases:
        result = invoke(app, *args, input="short\n")
        assert result.exit_code == 2, (args, result.output)
        assert message in result.output, (args, result.output)
    assert user(app, "x@example.com") is None


def test_list_set_password_set_role_unlock(app):
    uid = add_user(app, "c@example.com")
    with app.app_context():
        db.session.add(AuthSession(token_hash="x" * 64, user_id=uid))
        found = db.session.get(User, uid)
        found.locked_until = clock.now().replace(year=clock.now().year + 1)
        db.session.commit()

    listing = invoke(app, "users", "list")
    assert "c@example.com" in listing.output and "locked" in listing.output

    result = invoke(app, "users", "set-password", "c@example.com", "--password-stdin",
                    input=PASSWORD + "\n")
    assert result.exit_code == 0, result.output
    with app.app_context():
        assert passwords.verify_password(db.session.get(User, uid), PASSWORD)
        assert db.session.scalars(select(AuthSession)).one().revoked_at is not None

    assert invoke(app, "users", "set-role", "c@example.com", "admin").exit_code == 0
    assert user(app, "c@example.com").role == "admin"

    assert invoke(app, "users", "unlock", "c@example.com").exit_code == 0
    assert user(app, "c@example.com").locked_until is None

    missing = invoke(app, "users", "unlock", "nobody@example.com")
    assert missing.exit_code == 2 and "No user" in missing.output


def test_dev_script_serves_this_machine_only():
    """scripts/dev.sh prints the demo password and every code: it refuses --host first."""
    import subprocess
    from pathlib import Path

    script = Path(__file__).resolve().parent.parent / "scripts" / "dev.sh"
    for args in (["--host", "0.0.0.0"], ["--host=0.0.0.0"], ["-h", "0.0.0.0"]):
        done = subprocess.run([str(script), *args], capture_output=True, text=True, timeout=30)
        assert done.returncode == 2 and "localhost only" in done.stderr, args


def test_a_password_that_is_not_utf8_text_is_refused_with_a_reason(app):
    add_user(app, "c@example.com")
    not_utf8 = b"\xff\xfe a long enough password\n"
    for args in (["users", "add", "new@example.com", "--password-stdin"],
                 ["users", "set-password", "c@example.com", "--password-stdin"]):
        result = invoke(app, *args, input=not_utf8)
        assert result.exit_code == 2, (args, result.output)
        assert "not UTF-8 text" in result.output, result.output
    assert user(app, "new@example.com") is None


def test_prune_refuses_more_days_than_it_can_count_back(app):
    result = invoke(app, "prune", "--days", "1000000")
    assert result.exit_code == 2 and "--days" in result.output, result.output
    assert "36500" in result.output
    assert invoke(app, "prune", "--days", "36500").exit_code == 0

    app.config["RETENTION_DAYS"] = 1000000
    result = invoke(app, "prune")
    assert result.exit_code == 2, result.output
    assert "RETENTION_DAYS must be at most 36500" in result.output


def test_db_copy_says_what_a_database_url_looks_like(app):
    for args in (["--from", "nonsense"], ["--from", "sqlite://", "--to", "nonsense"]):
        result = invoke(app, "db-copy", *args)
        assert result.exit_code == 1, (args, result.output)
        assert "'nonsense' is not a database URL" in result.output, result.output
        assert "sqlite:////var/lib/clientgate/clientgate.db" in result.output
        assert isinstance(result.exception, SystemExit)  # a message, not a traceback


def test_names_with_control_characters_are_refused_not_printed_to_the_terminal(app):
    """`users list` and `oidc list-clients` print names as they are: an escape sequence in one
    would be run by the operator's terminal."""
    invited = invoke(app, "users", "invite", "anna@example.com", "--name", "Anna\x1b[2J")
    assert invited.exit_code != 0 and "control character" in invited.output
    assert user(app, "anna@example.com") is None
    added = invoke(app, "oidc", "add-client", "Files\x1b]0;x\x07",
                   "--redirect-uri", "https://files.example.com/cb")
    assert added.exit_code != 0 and "control characters" in added.output
    assert "\x1b" not in invoke(app, "oidc", "list-clients").output
    # Nor a name that turns itself around: "\u202enimda" shows as "admin".
    turned = invoke(app, "users", "invite", "turned@example.com", "--name", "\u202enimda")
    assert turned.exit_code != 0 and "turns the text around" in turned.output
    # A name in any script, with its joiners, is still welcome.
    assert invoke(app, "users", "invite", "zoe@example.com", "--name", "Zoë Brontë").exit_code == 0
