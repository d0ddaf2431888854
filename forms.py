"""The forms. Flask-WTF adds a CSRF token to each; every POST has one."""

from __future__ import annotations

from flask_wtf import FlaskForm
from wtforms import (
    EmailField, HiddenField, PasswordField, RadioField, SelectChoice, StringField, SubmitField,
)
from wtforms.validators import DataRequired, Email, Length, ValidationError

from services.codes import normalise_code


class LoginForm(FlaskForm):
    email = EmailField(
        "Email address",
        validators=[DataRequired("Enter your email address."),
                    Length(max=254, message="That email address is too long."),
                    Email("Enter an email address like name@example.com.",
                          check_deliverability=False)],
        render_kw={"autocomplete": "username", "spellcheck": "false", "autocapitalize": "none"},
    )
    password = PasswordField(
        "Password",
        validators=[DataRequired("Enter your password."),
                    Length(max=1024, message="That password is too long.")],
        render_kw={"autocomplete": "current-password"},
    )
    submit = SubmitField("Log in")


class CodeForm(FlaskForm):
    code = StringField(
        "Security code",
        validators=[DataRequired("Enter the 6-digit code from your message.")],
        render_kw={
            "autocomplete": "one-time-code", "inputmode": "numeric",
            "pattern": r"[0-9 \-]*", "maxlength": "20", "spellcheck": "false",
            "autocapitalize": "none",
        },
    )
    submit = SubmitField("Continue")

    def validate_code(self, field) -> None:
        normalised = normalise_code(field.data)
        if normalised is None:
            raise ValidationError("The code is 6 digits, like 123456. Check it and try again.")
        field.data = normalised


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
