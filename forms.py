"""The forms. Flask-WTF adds a CSRF token to each; every POST has one."""

from __future__ import annotations

from functools import cache

from flask_wtf import FlaskForm as _FlaskForm
from flask_wtf.file import FileField
from markupsafe import Markup, escape
from wtforms import (
    BooleanField, EmailField, HiddenField, PasswordField, RadioField, SelectChoice, StringField,
    SubmitField, TextAreaField,
)
from wtforms.validators import (
    AnyOf, DataRequired, EqualTo, Length, Optional, ValidationError,
)
from wtforms.widgets import Input
from wtforms.widgets.core import clean_key

from services.accounts import lifecycle
from services.signin.codes import normalise_code
from services.emails import as_typed, canonical, email_problem
from services.phones import ONLY_UK_MOBILES


# --- writing a field's attributes ------------------------------------------------------------
#
# WTForms' inputs write their attributes through the widget's `html_params`, which formats
# each one through `Markup.format` (Python's string.Formatter): 85 µs for the code box's
# twelve, and a sixth of the login page's instructions (bench/instructions.py). `html_params` is a static method of each input
# widget so that it can be replaced; every form here replaces it with `quick_html_params`,
# which writes the same text directly (tests/test_form_markup.py compares the two on every
# field of every form).

def quick_html_params(**attributes) -> Markup:
    """The text of wtforms.widgets.html_params, the same for the same arguments: sorted by
    name, `class_` as `class`, `data_`/`aria_` names with hyphens, True as the bare name,
    False left out, and each value escaped, its quotes too when it is already markup."""
    written = []
    for name, value in sorted(attributes.items()):
        name = clean_key(name)
        if value is True:
            written.append(name)
        elif value is not False:
            # str(): Markup.replace would escape "&quot;" itself.
            text = str(escape(value)).replace('"', "&quot;")
            written.append(f'{escape(name)}="{text}"')
    return Markup(" ".join(written))


@cache
def _quick_class(widget_class: type) -> type:
    return type(widget_class.__name__, (widget_class,),
                {"html_params": staticmethod(quick_html_params), "__module__": __name__})


@cache
def quick_widget(widget):
    """`widget` (an instance, shared by every field of its kind) with quick_html_params: a
    copy, made once, of the same class but for that method."""
    if not isinstance(widget, Input):
        return widget
    copy = object.__new__(_quick_class(type(widget)))
    copy.__dict__.update(widget.__dict__)
    return copy


class FlaskForm(_FlaskForm):
    """Flask-WTF's form (CSRF and all) whose fields write their attributes quickly."""

    class Meta:
        def bind_field(self, form, unbound_field, options):
            field = super().bind_field(form, unbound_field, options)
            field.widget = quick_widget(field.widget)
            if hasattr(field, "option_widget"):  # each radio button of a RadioField
                field.option_widget = quick_widget(field.option_widget)
            return field


def one_email_rule(form, field) -> None:
    """services/emails.py: the same rule as `flask users add` and the invitations."""
    problem = email_problem(field.data)
    if problem is not None:
        raise ValidationError(problem)


class LoginForm(FlaskForm):
    email = EmailField(
        "Email address",
        validators=[DataRequired("Enter your email address."),
                    Length(max=254, message="That email address is too long."),
                    one_email_rule],
        # Phones often add a space after an autocompleted address; a pasted one may bring a
        # name or invisible characters (services.emails.as_typed).
        filters=[lambda value: as_typed(value) if isinstance(value, str) else value],
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
    # services/authenticators/trusted_devices.py: the password is still asked on this device.
    remember = BooleanField("Don't ask for a code on this device for 30 days")
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
    # Ties the answer to the one question this browser was asked; the first answer uses it up.
    nonce = HiddenField()
    submit = SubmitField("Continue")


class LogoutForm(FlaskForm):
    submit = SubmitField("Log out")


class SecurityForm(FlaskForm):
    """/account/security: how codes reach the client, and their mobile number."""

    channel = RadioField(
        "How would you like to get your sign-in codes?",
        choices=[SelectChoice("email", "By email"),
                 SelectChoice("sms", "By text message to a UK mobile"),
                 SelectChoice("totp", "From my authenticator app")],
        validate_choice=False,  # AnyOf says it in plain English instead
        validators=[DataRequired("Choose email or text message."),
                    AnyOf(("email", "sms", "totp"), message="Choose email or text message.")],
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

    def action_values(self) -> dict:
        """What the action is given besides the account and the staff member."""
        return {}


class GiveBackForm(SupportActionForm):
    """Giving an account back (the console's `users recover`): the owner's own address when
    someone else changed the account's; empty keeps it."""

    owner_email = EmailField(
        "The owner's own email address",
        validators=[Optional(), Length(max=254, message="That email address is too long.")],
        filters=[lambda value: canonical(value) if isinstance(value, str) else value],
        render_kw={"spellcheck": "false", "autocapitalize": "none", "autocomplete": "off"},
    )

    # The address the account signed in with when the page was shown: left empty, the box
    # keeps that one, and the intruder may have moved the account since (a link to a new
    # address asked for, then used while support was on the phone).
    account_email = HiddenField(validators=[Length(max=254)])

    def __init__(self, account, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.account = account
        if not self.is_submitted():
            self.account_email.data = account.email

    def validate_owner_email(self, field) -> None:
        problem = lifecycle.owner_address_problem(self.account, field.data)
        if problem is not None:
            raise ValidationError(problem)

    def validate(self, extra_validators=None) -> bool:
        valid = super().validate(extra_validators)
        # Only a box left empty keeps whatever address the account has: an address typed is
        # where the account goes, however it moved meanwhile.
        moved = None if self.owner_email.data else lifecycle.moved_since_shown(
            self.account, self.account_email.data)
        if moved is not None:
            # Shown again for the address as it is now, which a second confirm then accepts.
            self.account_email.data = self.account.email
            self.owner_email.errors = [*self.owner_email.errors, moved]
            return False
        return valid

    def action_values(self) -> dict:
        return {"owner_email": self.owner_email.data or None,
                "shown_email": self.account_email.data or None}


# --- accounts without a shell (issue 12) -------------------------------------------------

class SignOutElsewhereForm(FlaskForm):
    submit = SubmitField("Sign out everywhere else")


def _email_field(label: str, missing: str, **render_kw) -> EmailField:
    return EmailField(
        label,
        validators=[DataRequired(missing),
                    Length(max=254, message="That email address is too long."),
                    one_email_rule],
        filters=[lambda value: canonical(value) if isinstance(value, str) else value],
        render_kw={"spellcheck": "false", "autocapitalize": "none", **render_kw},
    )


def _new_password_fields():
    """The new password twice; both are type=password and must match."""
    password = PasswordField(
        "New password",
        validators=[DataRequired("Enter your new password."),
                    Length(max=1024, message="That password is too long (1,024 characters "
                                             "at most).")],
        render_kw={"autocomplete": "new-password", "maxlength": "1024"},
    )
    confirm = PasswordField(
        "Type the new password again",
        validators=[DataRequired("Type the new password again."),
                    EqualTo("password", "The two passwords are not the same. Type them "
                                        "again.")],
        render_kw={"autocomplete": "new-password", "maxlength": "1024"},
    )
    return password, confirm


class ForgotPasswordForm(FlaskForm):
    email = _email_field("Email address", "Enter your email address.", autocomplete="username")
    submit = SubmitField("Send me a link")


class NewPasswordForm(FlaskForm):
    """/password/reset/<token> and /welcome/<token>."""

    password, confirm = _new_password_fields()
    submit = SubmitField("Save my password")


class ChangePasswordForm(FlaskForm):
    current_password = PasswordField(
        "Your current password",
        validators=[DataRequired("Enter your current password."),
                    Length(max=1024, message="That password is too long.")],
        render_kw={"autocomplete": "current-password"},
    )
    password, confirm = _new_password_fields()
    submit = SubmitField("Change my password")


class ChangeEmailForm(FlaskForm):
    email = _email_field("New email address", "Enter your new email address.",
                         autocomplete="email")
    current_password = PasswordField(
        "Your password",
        validators=[DataRequired("Enter your password."),
                    Length(max=1024, message="That password is too long.")],
        render_kw={"autocomplete": "current-password"},
    )
    submit = SubmitField("Send a link to the new address")


class ConfirmForm(FlaskForm):
    submit = SubmitField("Confirm")


class ConfirmNewEmailForm(ConfirmForm):
    """A new address confirmed in a browser not signed in to the account: the link alone came
    to whoever owns that address, a stranger if the client mistyped it."""

    current_password = PasswordField(
        "Your password",
        validators=[DataRequired("Enter your password."),
                    Length(max=1024, message="That password is too long.")],
        render_kw={"autocomplete": "current-password"},
    )


class NewClientForm(FlaskForm):
    """Support: invite one client."""

    email = _email_field("Email address", "Enter the client's email address.")
    name = StringField(
        "Name (optional)", validators=[Length(max=200, message="That name is too long.")],
        render_kw={"autocomplete": "off"},
    )
    phone = StringField(
        "UK mobile number (optional)",
        validators=[Optional(), Length(max=100, message="That is too long to be a phone number.")],
        render_kw={"inputmode": "tel", "autocomplete": "off", "spellcheck": "false"},
    )
    channel = RadioField(
        "How should their sign-in codes come?",
        choices=[SelectChoice("email", "By email"),
                 SelectChoice("sms", "By text message to their UK mobile")],
        default="email", validate_choice=False,
        validators=[DataRequired("Choose email or text message."),
                    AnyOf(("email", "sms"), message="Choose email or text message.")],
    )
    role = RadioField(
        "Role",
        choices=[SelectChoice("client", "Client"), SelectChoice("support", "Support staff"),
                 SelectChoice("admin", "Admin")],
        default="client", validate_choice=False,
        validators=[AnyOf(("client", "support", "admin"), message="Choose a role.")],
    )
    submit = SubmitField("Send the invitation")


class ImportClientsForm(FlaskForm):
    """Support: a CSV of clients, uploaded or pasted; checked, then imported on confirm."""

    file = FileField("CSV file")
    text = TextAreaField("Or paste the rows here",
                         validators=[Length(max=60000, message="That is too much text.")],
                         render_kw={"rows": "6", "spellcheck": "false"})
    confirmed = HiddenField()
    submit = SubmitField("Check the file")


class StaffRoleForm(FlaskForm):
    """Admins: change a user's role."""

    role = RadioField(
        "Role",
        choices=[SelectChoice("client", "Client (no console)"),
                 SelectChoice("support", "Support: the console, clients' accounts only"),
                 SelectChoice("admin", "Admin: also staff accounts and roles")],
        validate_choice=False,
        validators=[DataRequired("Choose a role."),
                    AnyOf(("client", "support", "admin"), message="Choose a role.")],
    )
    confirm = BooleanField(validators=[DataRequired("Tick the box to confirm.")])
    submit = SubmitField("Change the role")

# --- Fewer codes: passkeys, authenticator apps, trusted devices ---------------------------

class PasskeyAddForm(FlaskForm):
    """Name a new passkey; static/js/passkey-add.js then asks the browser to make it."""

    name = StringField(
        "A name for this passkey",
        validators=[Optional(), Length(max=60, message="Keep the name under 60 characters.")],
        render_kw={"autocomplete": "off", "maxlength": "60",
                   "placeholder": "For example: My phone"},
    )
    password = PasswordField(
        "Your password",
        validators=[Length(max=1024, message="That password is too long.")],
        render_kw={"autocomplete": "current-password"},
    )
    submit = SubmitField("Add a passkey")


class PasskeySignInForm(FlaskForm):
    """The login page's passkey button; static/js/passkey-sign-in.js takes it over."""

    submit = SubmitField("Sign in with a passkey")


class PasskeyAnswerForm(FlaskForm):
    """The browser's answer (a JSON credential) to a passkey challenge, sent by static/js."""

    credential = HiddenField(validators=[DataRequired(), Length(max=20_000)])


class RemoveForm(FlaskForm):
    """Remove a passkey, stop using the authenticator app, or forget a trusted device."""

    submit = SubmitField("Remove")


class TotpConfirmForm(FlaskForm):
    """The first code from a newly set-up authenticator app."""

    code = one_time_code_field("Code from your authenticator app",
                               "Enter the 6-digit code your app shows.")
    submit = SubmitField("Confirm and use this app")
