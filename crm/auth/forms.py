from flask_wtf import FlaskForm
from wtforms import EmailField, PasswordField
from wtforms.validators import Email, EqualTo, InputRequired, Length, Regexp

from crm.auth.service import MIN_PASSWORD_LENGTH


def _strip(value: str | None) -> str | None:
    return value.strip() if isinstance(value, str) else value


# No control characters in an address: a NUL cannot even be looked up on PostgreSQL (a 500 otherwise).
PRINTABLE = Regexp(r"^[^\x00-\x1f\x7f]*$", message="An email address cannot contain control characters.")


class LoginForm(FlaskForm):
    email = EmailField("Email", filters=[_strip], validators=[InputRequired(), Length(max=254), PRINTABLE])
    password = PasswordField(
        "Password", validators=[InputRequired(), Length(max=1024)], render_kw={"autocomplete": "current-password"}
    )


class RegisterForm(FlaskForm):
    email = EmailField(
        "Email",
        filters=[_strip],
        validators=[InputRequired(), Length(max=254), PRINTABLE, Email(check_deliverability=False)],
    )
    password = PasswordField(
        "Password",
        validators=[
            InputRequired(),
            Length(
                min=MIN_PASSWORD_LENGTH,
                max=1024,
                message=f"Use at least {MIN_PASSWORD_LENGTH} characters (at most 1024).",
            ),
        ],
        description=f"At least {MIN_PASSWORD_LENGTH} characters.",
        render_kw={"autocomplete": "new-password"},  # password managers offer to generate and save one
    )
    confirm = PasswordField(
        "Repeat password",
        validators=[InputRequired(), EqualTo("password", "The passwords differ.")],
        render_kw={"autocomplete": "new-password"},
    )
