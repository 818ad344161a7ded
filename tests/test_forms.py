"""The form factory: one WTForms class per call, built from a provider's field schema."""

import pytest
from werkzeug.datastructures import MultiDict
from wtforms import BooleanField, IntegerField, PasswordField, SelectField, StringField, TextAreaField, URLField

from crm.integrations.forms import build_form
from crm.providers import get_provider
from crm.providers.base import Field, Provider


class EveryType(Provider):
    id = "EVERY"
    name = "Every type"
    config_fields = (
        Field("text", "Text", required=True, max_length=5),
        Field("url", "URL", type="url"),
        Field("secret", "Secret", type="password", sensitive=True, required=True),
        Field("number", "Number", type="number"),
        Field("flag", "Flag", type="checkbox", default=True),
        Field("choice", "Choice", type="select", choices=(("A", "Alpha"), ("B", "Beta")), default="A"),
        Field("notes", "Notes", type="textarea"),
        Field("creds", "Creds", type="json", sensitive=True),
        Field("code", "Code", pattern=r"[A-Z]{3}", pattern_message="Three capitals."),
        Field("only_b", "Only for B", required=True, shown_when=("choice", ("B",))),
    )


def form_with(app, provider=EveryType, data=None, **kwargs):
    with app.test_request_context(method="POST"):
        form = build_form(provider, formdata=MultiDict(data or {}), meta={"csrf": False}, **kwargs)
        valid = form.validate()
        return form, valid


def test_every_field_type_gets_its_widget(app):
    form, _ = form_with(app)
    expected = {
        "name": StringField,
        "text": StringField,
        "url": URLField,
        "secret": PasswordField,
        "number": IntegerField,
        "flag": BooleanField,
        "choice": SelectField,
        "notes": TextAreaField,
        "creds": TextAreaField,
        "code": StringField,
    }
    for name, kind in expected.items():
        assert type(form[name]) is kind, name
    assert [(c.value, c.label) for c in form["choice"].choices] == [("A", "Alpha"), ("B", "Beta")]
    assert form["secret"].render_kw["autocomplete"] == "off"


def test_each_call_builds_a_fresh_class(app):
    with app.test_request_context():
        first = build_form(EveryType, meta={"csrf": False})
        second = build_form(get_provider("CHATWOOT"), meta={"csrf": False})
    assert type(first) is not type(second)
    assert "text" in first and "text" not in second
    assert not hasattr(type(second), "text")


def test_required_and_length_and_pattern(app):
    form, valid = form_with(app, data={"name": "n", "text": "toolong", "code": "abc"})
    assert not valid
    assert form["secret"].errors == ["Secret is required."]
    assert form["text"].errors == ["Use at most 5 characters."]
    assert form["code"].errors == ["Three capitals."]
    form, valid = form_with(app, data={"name": "n", "text": "ok", "secret": "s", "code": "ABC"})
    assert valid, form.errors


def test_shown_when_fields_are_required_only_when_they_apply(app):
    base = {"name": "n", "text": "ok", "secret": "s"}
    _, valid = form_with(app, data={**base, "choice": "A"})
    assert valid
    form, valid = form_with(app, data={**base, "choice": "B"})
    assert not valid and form["only_b"].errors == ["Only for B is required."]
    html = str(form["only_b"])
    assert 'data-shown-when="choice=B"' in html


def test_sensitive_fields_render_empty_even_with_input_or_stored_values(app):
    data = {"name": "n", "secret": "TYPED-SECRET", "creds": '{"k": "TYPED-CRED"}'}
    form, _ = form_with(app, data=data, stored={"secret": "enc:v1:abcd1234:stored", "creds": {"k": "enc:v1:x:y"}})
    assert 'value=""' in str(form["secret"]) and "TYPED-SECRET" not in str(form["secret"])
    with app.test_request_context():
        from flask import render_template_string

        html = render_template_string(
            '{% from "_macros/forms.html" import schema_fields %}{{ schema_fields(form) }}', form=form
        )
    assert "TYPED-SECRET" not in html and "TYPED-CRED" not in html and "enc:v1" not in html


def test_edit_form_prefills_non_sensitive_values_and_keeps_secrets_optional(app):
    stored = {
        "name": "Mine",
        "base_url": "https://chat.example.com",
        "account_id": 3,
        "api_key": "enc:v1:x:y",
        "auto_create_inboxes": False,
    }
    with app.test_request_context():
        form = build_form(
            get_provider("CHATWOOT"), stored=stored, secret_hints={"api_key": "Saved."}, meta={"csrf": False}
        )
    assert form["name"].data == "Mine"
    assert form["account_id"].data == 3
    assert form["auto_create_inboxes"].data is False
    assert form["api_key"].data is None
    assert form.secret_hints == {"api_key": "Saved."}
    form, valid = form_with(
        app,
        get_provider("CHATWOOT"),
        data={"name": "Mine", "base_url": "https://chat.example.com", "account_id": "3"},
        stored=stored,
    )
    assert valid, form.errors
    assert "api_key" not in form.values()  # blank: the service keeps the stored one


@pytest.mark.parametrize("provider_id", ["CHATWOOT", "CUSTOM"])
def test_labels_are_the_schema_labels(app, provider_id):
    provider = get_provider(provider_id)
    with app.test_request_context():
        form = build_form(provider, meta={"csrf": False})
    assert [form[spec.name].label.text for spec in provider.fields()] == [spec.label for spec in provider.fields()]
