"""Forms built at run time from a provider's field schema: one factory, a fresh class per call."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from flask_wtf import FlaskForm
from wtforms import BooleanField, Field, PasswordField, SelectField, StringField, TextAreaField
from wtforms.fields import IntegerField, URLField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import InputRequired, Length, Optional, Regexp, StopValidation

from crm.providers.base import Field as SchemaField
from crm.providers.base import Provider

SECRET_INPUT = {"autocomplete": "off", "autocapitalize": "off", "spellcheck": "false"}


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


def _render_kw(spec: SchemaField) -> dict[str, Any]:
    render_kw: dict[str, Any] = {}
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


def build_field(spec: SchemaField, keeps_secret: bool = False) -> Field:
    kwargs: dict[str, Any] = {
        "label": spec.label,
        "description": spec.help,
        "validators": _validators(spec, keeps_secret),
        "render_kw": _render_kw(spec),
    }
    if spec.type == "select":
        kwargs["choices"] = [SelectChoice(value, label) for value, label in spec.choices]
    if spec.type == "password":
        kwargs["render_kw"]["type"] = "password"
    if spec.default is not None and not spec.sensitive:
        kwargs["default"] = spec.default
    if spec.type == "json" and spec.sensitive:
        kwargs["render_kw"]["rows"] = 4
        kwargs["render_kw"]["placeholder"] = kwargs["render_kw"].get("placeholder") or '{"apiKey": "..."}'
    return FIELD_BUILDERS[spec.type](**kwargs)


class IntegrationForm(FlaskForm):
    """Base of every schema-built form; the factory adds the provider's fields."""

    provider: type[Provider]
    secret_hints: dict[str, str]

    def values(self) -> dict[str, Any]:
        """The form's data keyed by schema field name, for the service (blank secrets left blank)."""
        result: dict[str, Any] = {}
        for spec in self.provider.fields():
            data = self[spec.name].data
            if spec.sensitive and not data:
                continue
            result[spec.name] = data.strip() if isinstance(data, str) else data
        return result

    def add_errors(self, errors: Mapping[str, list[str]]) -> None:
        for name, messages in errors.items():
            target = self._fields.get(name)
            if target is None:
                self.form_errors.extend(messages)
            else:
                target.errors = [*target.errors, *messages]


def build_form(
    provider: type[Provider],
    stored: Mapping[str, Any] | None = None,
    secret_hints: Mapping[str, str] | None = None,
    **kwargs: Any,
) -> IntegrationForm:
    """A fresh form class for `provider`, instantiated. `stored` prefills an edit form with the
    saved non-sensitive values; sensitive inputs always start empty."""

    class ProviderForm(IntegrationForm):
        pass

    stored = stored or {}
    for spec in provider.fields():
        setattr(ProviderForm, spec.name, build_field(spec, keeps_secret=spec.sensitive and spec.name in stored))
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
