"""The forms. Flask-WTF adds a CSRF token to each; every POST has one."""

from __future__ import annotations

from flask_wtf import FlaskForm
from wtforms import (
    BooleanField, EmailField, HiddenField, PasswordField, RadioField, SelectChoice, StringField,
    SubmitField,
)
from wtforms.validators import AnyOf, DataRequired, Email, Length, Optional, ValidationError

from services.codes import normalise_code
from services.phones import ONLY_UK_MOBILES


class LoginForm(FlaskForm):
    email = EmailField(
        "Email address",
        validators=[DataRequired("Enter your email address."),
                    Length(max=254, message="That email address is too long."),
                    Email("Enter an email address like name@example.com.",
                          check_deliverability=False)],
        # Phones often add a space after an autocompleted address.
        filters=[lambda value: value.strip() if isinstance(value, str) else value],
        render_kw={"autocomplete": "username", "spellcheck": "false", "autocapitalize": "none"},
    )
    password = PasswordField(
        "Password",
        validators=[DataRequired("Enter your password."),
                    Length(max=1024, message="That password is too long.")],
        render_kw={"autocomplete": "current-password"},
    )
    submit = SubmitField("Log in")


def _six_digits(form, field) -> None:
    """Take the code as people copy it ("123 456", "123-456") and keep it as 6 digits."""
    normalised = normalise_code(field.data)
    if normalised is None:
        raise ValidationError("The code is 6 digits, like 123456. Check it and try again.")
    field.data = normalised


def one_time_code_field(label: str, missing: str) -> StringField:
    """A code box phones can fill from the message (autocomplete, numeric keypad)."""
    return StringField(
        label,
        validators=[DataRequired(missing), _six_digits],
        render_kw={
            "autocomplete": "one-time-code", "inputmode": "numeric",
            "pattern": r"[0-9 \-]*", "maxlength": "20", "spellcheck": "false",
            "autocapitalize": "none",
        },
    )


class CodeForm(FlaskForm):
    code = one_time_code_field("Security code", "Enter the 6-digit code from your message.")
    submit = SubmitField("Continue")


class ResendForm(FlaskForm):
    channel = HiddenField()
    submit = SubmitField("Send the code again")


class ChoiceForm(FlaskForm):
    """Another window already has a code on its way: keep it, or send a new one."""

    action = RadioField(
        "What would you like to do?",
        choices=[SelectChoice("keep", "Use the code already sent"),
                 SelectChoice("new", "Send a new code")],
        default="keep",
        validators=[DataRequired("Choose one.")],
    )
    submit = SubmitField("Continue")


class LogoutForm(FlaskForm):
    submit = SubmitField("Log out")


class SecurityForm(FlaskForm):
    """/account/security: how codes reach the client, and their mobile number."""

    channel = RadioField(
        "How would you like to get your sign-in codes?",
        choices=[SelectChoice("email", "By email"),
                 SelectChoice("sms", "By text message to a UK mobile")],
        validate_choice=False,  # AnyOf says it in plain English instead
        validators=[DataRequired("Choose email or text message."),
                    AnyOf(("email", "sms"), message="Choose email or text message.")],
    )
    phone = StringField(
        "UK mobile number",
        validators=[Optional(),
                    Length(max=100, message=f"That is too long to be a phone number. "
                                            f"{ONLY_UK_MOBILES}")],
        render_kw={"autocomplete": "tel", "inputmode": "tel", "spellcheck": "false"},
    )
    password = PasswordField(
        "Your password",
        validators=[Length(max=1024, message="That password is too long.")],
        render_kw={"autocomplete": "current-password"},
    )
    submit = SubmitField("Save changes")


class PhoneProofForm(FlaskForm):
    """The code sent by SMS to a new number, which proves the number is the client's."""

    code = one_time_code_field("Code from the text message",
                               "Enter the 6-digit code from the text message.")
    # The channel asked for when the proof began; it applies once the number is proved.
    channel = HiddenField(id="proof-channel")
    submit = SubmitField("Confirm number")


class PhoneProofActionForm(FlaskForm):
    """Send a new code to the number being proved, or stop proving it."""

    action = HiddenField()


class SupportActionForm(FlaskForm):
    """A support action on a client's account, done only once the box is ticked."""

    confirm = BooleanField(validators=[DataRequired("Tick the box to confirm.")])
    submit = SubmitField("Confirm")


# --- accounts without a shell (issue 12) -------------------------------------------------

class SignOutElsewhereForm(FlaskForm):
    submit = SubmitField("Sign out everywhere else")
