from flask_wtf import FlaskForm
from flask_wtf.file import FileField, FileRequired
from wtforms import EmailField, StringField, TelField, TextAreaField
from wtforms.validators import InputRequired, Length, Optional


class ContactForm(FlaskForm):
    name = StringField("Name", validators=[Optional(), Length(max=255)])
    email = EmailField("Email", validators=[Optional(), Length(max=254)])
    phone = TelField(
        "Phone", validators=[Optional(), Length(max=32)], description="International format, e.g. +4930123456."
    )


class ImportForm(FlaskForm):
    file = FileField(
        "CSV file",
        validators=[FileRequired("Choose a CSV file.")],
        description="Columns: name,email,phone. Bad rows are reported by line; good rows are kept.",
    )


class MessageForm(FlaskForm):
    text = TextAreaField("Message", validators=[InputRequired("Write a message."), Length(max=150_000)])
