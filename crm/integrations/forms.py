"""Forms built at run time from a provider's field schema: one factory, a fresh class per call."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import Any

from flask_wtf import FlaskForm
from wtforms import BooleanField, Field, PasswordField, SelectField, StringField, TextAreaField
from wtforms.fields import IntegerField, URLField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import InputRequired, Length, Optional, Regexp, StopValidation
from wtforms.widgets import Input, PasswordInput

from crm.providers.base import NAME_FIELD, Provider
from crm.providers.base import Field as SchemaField

SECRET_INPUT = {"autocomplete": "off", "autocapitalize": "off", "spellcheck": "false"}


class SecretInput(PasswordInput):
    """A password input that never shows a stored value. What the user typed comes back only when
    the page asks (`echo_typed=True`: a form re-rendered without JavaScript, which would otherwise
    lose it); with htmx the browser keeps the typed value itself."""

    def __call__(self, field, echo_typed: bool = False, **kwargs):
        kwargs["value"] = field._value() if echo_typed and not field.errors else ""  # a refused one is retyped
        return Input.__call__(self, field, **kwargs)


class OnlyWhenShown:
    """A part of a parted field (e.g. the Token of Bearer auth): checked only while it applies and
    filled in. Which parts are missing is the schema's decision (it knows the stored ones)."""

    def __init__(self, spec: SchemaField):
        self.spec = spec

    def __call__(self, form, field):
        values = {name: f.data for name, f in form._fields.items()}
        if not self.spec.applies(values) or not (field.data or "").strip():
            field.errors[:] = []
            raise StopValidation()


class RequiredWhenShown:
    """Required only while the field applies (e.g. Token URL only for OAuth 2.0)."""

    def __init__(self, spec: SchemaField):
        self.spec = spec

    def __call__(self, form, field):
        values = {name: f.data for name, f in form._fields.items()}
        if not self.spec.applies(values):
            field.errors[:] = []
            raise StopValidation()
        if field.data in (None, "") or (isinstance(field.data, str) and not field.data.strip()):
            raise StopValidation(f"{self.spec.label} is required.")


def _validators(spec: SchemaField, keeps_secret: bool) -> list[Callable]:
    validators: list[Callable] = []
    if spec.shown_when:
        validators.append(RequiredWhenShown(spec) if spec.required else Optional())
    elif spec.required and not keeps_secret and spec.type != "checkbox":
        validators.append(InputRequired(message=f"{spec.label} is required."))
    else:
        validators.append(Optional())
    if spec.max_length and spec.type not in ("number", "checkbox", "select"):
        validators.append(Length(max=spec.max_length, message=f"Use at most {spec.max_length} characters."))
    if spec.pattern:
        validators.append(Regexp(f"^(?:{spec.pattern})$", message=spec.pattern_message))
    return validators


def _render_kw(spec: SchemaField, only_for: str = "") -> dict[str, Any]:
    render_kw: dict[str, Any] = {}
    if only_for:
        render_kw["data-only-for"] = only_for
    if spec.placeholder:
        render_kw["placeholder"] = spec.placeholder
    if spec.sensitive:
        render_kw.update(SECRET_INPUT)
    if spec.shown_when:
        other, values = spec.shown_when
        render_kw["data-shown-when"] = f"{other}={'|'.join(values)}"
    if spec.required and spec.type not in ("checkbox",) and not spec.shown_when:
        render_kw["aria-required"] = "true"
    return render_kw


FIELD_BUILDERS: dict[str, Callable[..., Field]] = {
    "text": StringField,
    "url": URLField,
    "password": PasswordField,
    "number": IntegerField,
    "checkbox": BooleanField,
    "select": SelectField,
    "textarea": TextAreaField,
    "json": TextAreaField,
}


def build_field(spec: SchemaField, keeps_secret: bool = False, only_for: str = "") -> Field:
    kwargs: dict[str, Any] = {
        "label": spec.label,
        "description": spec.help,
        "validators": _validators(spec, keeps_secret),
        "render_kw": _render_kw(spec, only_for),
    }
    if spec.type == "select":
        kwargs["choices"] = [SelectChoice(value, label) for value, label in spec.choices]
    if spec.type == "password":
        kwargs["render_kw"]["type"] = "password"
        kwargs["widget"] = SecretInput()
    if spec.default is not None and not spec.sensitive:
        kwargs["default"] = spec.default
    if spec.type == "json" and spec.sensitive:
        kwargs["render_kw"]["rows"] = 4
        kwargs["render_kw"]["placeholder"] = kwargs["render_kw"].get("placeholder") or '{"apiKey": "..."}'
    return FIELD_BUILDERS[spec.type](**kwargs)


def build_part(parent: SchemaField, part: SchemaField, only_for: str = "") -> Field:
    """One input per part of a parted field, named e.g. "credentials.apiKey"."""
    render_kw = _render_kw(part, only_for)
    render_kw.pop("aria-required", None)
    validators: list[Callable] = [OnlyWhenShown(part)]
    if part.max_length:
        validators.append(Length(max=part.max_length, message=f"Use at most {part.max_length} characters."))
    kwargs: dict[str, Any] = {
        "label": part.label,
        "description": part.help,
        "validators": validators,
        "render_kw": {**render_kw, **SECRET_INPUT},
        "name": parent.part_key(part),
    }
    if part.type == "password":
        return PasswordField(widget=SecretInput(), **kwargs)
    return StringField(**kwargs)


def condition_text(provider: type[Provider], spec: SchemaField) -> str:
    """ "API Key" for a field shown only while Authentication Type is API Key: the heading a page
    without JavaScript shows, since it cannot hide the fields of other choices."""
    if not spec.shown_when:
        return ""
    other, allowed = spec.shown_when
    choices = dict(next((f.choices for f in provider.fields() if f.name == other), ()))
    return " or ".join(choices.get(value, value) for value in allowed)


class IntegrationForm(FlaskForm):
    """Base of every schema-built form; the factory adds the provider's fields."""

    provider: type[Provider]
    secret_hints: dict[str, str]

    def values(self) -> dict[str, Any]:
        """The form's data keyed by schema field name, for the service (blank secrets left blank; a
        blank name is left out, so a test can go without one)."""
        result: dict[str, Any] = {}
        for spec in self.provider.fields():
            if spec.parts:
                typed = {part.name: self[spec.part_key(part)].data for part in spec.parts}
                typed = {key: value.strip() for key, value in typed.items() if value and value.strip()}
                if typed:
                    result[spec.name] = typed
                continue
            data = self[spec.name].data
            if spec.name == "name" and not (data or "").strip():
                continue
            if spec.sensitive and not data:
                continue
            result[spec.name] = data.strip() if isinstance(data, str) else data
        return result

    def add_errors(self, errors: Mapping[str, list[str]]) -> None:
        for name, messages in errors.items():
            target = self._fields.get(name) or self._first_shown_part(name)
            if target is None:
                self.form_errors.extend(messages)
            else:
                target.errors = [*target.errors, *messages]


    def _first_shown_part(self, name: str) -> Field | None:
        """Where an error about a whole parted field goes (e.g. "enter the credentials again")."""
        spec = next((f for f in self.provider.fields() if f.name == name and f.parts), None)
        if spec is None:
            return None
        values = {key: f.data for key, f in self._fields.items()}
        part = next((p for p in spec.parts if p.applies(values)), None)
        return self._fields.get(spec.part_key(part)) if part else None


def build_form(
    provider: type[Provider],
    stored: Mapping[str, Any] | None = None,
    secret_hints: Mapping[str, str] | None = None,
    for_test: bool = False,
    **kwargs: Any,
) -> IntegrationForm:
    """A fresh form class for `provider`, instantiated. `stored` prefills an edit form with the
    saved non-sensitive values; sensitive inputs always start empty. `for_test`: the form of Test
    Connection, which needs only what the connection needs (no Integration Name)."""

    class ProviderForm(IntegrationForm):
        pass

    stored = stored or {}
    for spec in provider.fields():
        if spec.parts:
            for part in spec.parts:
                setattr(ProviderForm, spec.part_key(part), build_part(spec, part, condition_text(provider, part)))
            continue
        keeps_secret = spec.sensitive and spec.name in stored
        field = build_field(spec, keeps_secret, condition_text(provider, spec))
        if spec is NAME_FIELD and for_test:
            field = build_field(replace(spec, required=False))  # a test needs no name; one is proposed
        setattr(ProviderForm, spec.name, field)
    ProviderForm.provider = provider
    ProviderForm.secret_hints = dict(secret_hints or {})
    data = {
        spec.name: value
        for spec in provider.fields()
        if not spec.sensitive
        for value in [stored.get(spec.name)]
        if value is not None
    }
    return ProviderForm(data=data, **kwargs)
