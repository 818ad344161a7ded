from flask_wtf import FlaskForm
from flask_wtf.file import FileField, FileRequired
from wtforms import EmailField, StringField, TelField, TextAreaField
from wtforms.validators import InputRequired, Length, Optional, ValidationError

from crm.contacts.service import contact_limit, describe_bytes, import_limit_bytes
from crm.providers.base import unsafe_character_problem


def no_control_characters(form, field) -> None:
    """Line breaks, tabs and direction marks belong in a message; other control characters (NUL, ESC) do not."""
    problem = unsafe_character_problem(field.data or "", line_breaks=True, bidi=True)
    if problem:
        raise ValidationError(problem)


class ContactForm(FlaskForm):
    name = StringField("Name", validators=[Optional(), Length(max=255)])
    email = EmailField("Email", validators=[Optional(), Length(max=254)])
    phone = TelField(
        "Phone", validators=[Optional(), Length(max=32)], description="International format, e.g. +4930123456."
    )


class ImportForm(FlaskForm):
    file = FileField("CSV file", validators=[FileRequired("Choose a CSV file.")])

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.file.description = (
            "Columns: name, email, phone, separated by commas, semicolons or tabs; up to "
            f"{describe_bytes(import_limit_bytes())}. A row whose email or phone you already have updates "
            f"that contact. At most {contact_limit():,} contacts per account."
        )


class MessageForm(FlaskForm):
    text = TextAreaField(
        "Message", validators=[InputRequired("Write a message."), Length(max=150_000), no_control_characters]
    )
