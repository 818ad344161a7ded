"""The form factory: one WTForms class per call, built from a provider's field schema."""

import re

import pytest
from werkzeug.datastructures import MultiDict
from wtforms import BooleanField, IntegerField, PasswordField, SelectField, StringField, TextAreaField, URLField

from crm.integrations import service
from crm.integrations.forms import build_form
from crm.providers import get_provider
from crm.providers.base import Field, Provider
from tests.fakes.custom_crm import FakeCustomCRM


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
    inputs = [(spec.part_key(part), part) for spec in provider.fields() if spec.parts for part in spec.parts]
    inputs += [(spec.name, spec) for spec in provider.fields() if not spec.parts]
    assert [form[name].label.text for name, _ in inputs] == [spec.label for _, spec in inputs]


CUSTOM = {"name": "Mine", "crm_name": "Acme", "base_url": "https://api.acme.test"}


def test_custom_crm_has_one_input_per_credential_and_no_json_textarea(app):
    custom = get_provider("CUSTOM")
    with app.test_request_context():
        form = build_form(custom, meta={"csrf": False})
    assert "credentials" not in form
    assert not any(isinstance(f, TextAreaField) for f in form)
    secret = form["credentials.clientSecret"]
    assert type(secret) is PasswordField and type(form["credentials.clientId"]) is StringField
    html = str(secret)
    assert 'type="password"' in html and 'data-shown-when="auth_type=OAUTH2"' in html
    assert 'data-only-for="OAuth 2.0"' in html and 'autocomplete="off"' in html
    assert 'data-only-for="OAuth 2.0"' in str(form["token_url"])


def test_custom_form_values_gather_the_typed_credentials(app):
    data = {
        **CUSTOM,
        "auth_type": "BASIC",
        "credentials.username": " ada ",
        "credentials.password": "pw-123",
        "credentials.apiKey": "",
    }
    form, valid = form_with(app, get_provider("CUSTOM"), data=data)
    assert valid, form.errors
    assert form.values()["credentials"] == {"username": "ada", "password": "pw-123"}


def test_hidden_parts_are_not_validated_by_the_form(app):
    data = {**CUSTOM, "auth_type": "BEARER", "credentials.token": "t", "credentials.apiKey": "x" * 5000}
    form, valid = form_with(app, get_provider("CUSTOM"), data=data)
    assert valid, form.errors
    data["auth_type"] = "API_KEY"
    form, valid = form_with(app, get_provider("CUSTOM"), data=data)
    assert not valid and form["credentials.apiKey"].errors == ["Use at most 2048 characters."]


def test_schema_errors_about_parts_land_beside_their_input(app):
    form, _ = form_with(app, get_provider("CUSTOM"), data={**CUSTOM, "auth_type": "OAUTH2"})
    form.add_errors({"credentials.clientSecret": ["Client Secret is required."], "credentials": ["Enter again."]})
    assert form["credentials.clientSecret"].errors == ["Client Secret is required."]
    assert form["credentials.clientId"].errors == ["Enter again."]  # the first input of the chosen type
    assert form.form_errors == []


def test_typed_secrets_come_back_only_when_the_page_asks(app):
    from flask import render_template_string

    data = {**CUSTOM, "auth_type": "API_KEY", "credentials.apiKey": "TYPED-KEY"}
    form, _ = form_with(app, get_provider("CUSTOM"), data=data, stored={"credentials": {"apiKey": "enc:v1:x:y"}})
    template = '{% from "_macros/forms.html" import schema_fields %}{{ schema_fields(form, echo_typed=echo) }}'
    with app.test_request_context():
        quiet = render_template_string(template, form=form, echo=False)
        echoed = render_template_string(template, form=form, echo=True)
    assert "TYPED-KEY" not in quiet
    assert 'type="password"' in echoed and 'value="TYPED-KEY"' in echoed
    assert "enc:v1" not in quiet + echoed
    assert "Only for OAuth 2.0" in quiet  # without JavaScript every choice's fields show, with a heading


def test_the_test_form_needs_no_name(app):
    chatwoot = get_provider("CHATWOOT")
    data = {"base_url": "https://chat.example.com", "account_id": "3", "api_key": "t"}
    with app.test_request_context(method="POST"):
        form = build_form(chatwoot, formdata=MultiDict(data), meta={"csrf": False}, for_test=True)
        assert form.validate(), form.errors
        assert "name" not in form.values()
        form = build_form(chatwoot, formdata=MultiDict(data), meta={"csrf": False})
        assert not form.validate() and form["name"].errors == ["Integration Name is required."]


# --- through the routes: typed input survives, a test needs no name, advice and hints per provider --

NEW = "/dashboard/integrations/new/crm"
HTMX = {"HX-Request": "true"}


def post(api, path, data, htmx=False):
    headers = {"X-CSRFToken": api.csrf, **(HTMX if htmx else {})}
    return api.client.post(path, data=data, headers=headers)


def password_input(html: str, name: str) -> str:
    match = re.search(rf'<input[^>]*name="{re.escape(name)}"[^>]*>', html)
    assert match, name
    return match.group(0)


@pytest.mark.parametrize("htmx", [False, True], ids=["page", "htmx"])
def test_a_failed_save_gives_back_the_typed_secret_only_to_a_page(api, htmx):
    data = {"name": "", "base_url": "https://chat.example.com", "account_id": "7", "api_key": "TYPED-TOKEN-123"}
    response = post(api, f"{NEW}/CHATWOOT", data, htmx)
    assert response.status_code == 422
    tag = password_input(response.get_data(as_text=True), "api_key")
    assert 'type="password"' in tag
    # Without JavaScript the page is all there is; with htmx the browser keeps what was typed.
    assert ('value="TYPED-TOKEN-123"' in tag) is not htmx
    assert "Integration Name is required." in response.get_data(as_text=True)


def test_a_test_needs_no_name_and_proposes_one(api, allow_local, chatwoot):
    data = {
        "name": "",
        "base_url": chatwoot.url(),
        "account_id": str(chatwoot.account.id),
        "api_key": chatwoot.admin_token,
    }
    response = post(api, f"{NEW}/CHATWOOT/test", data, htmx=True)
    html = response.get_data(as_text=True)
    assert response.status_code == 200 and "Connection works" in html
    proposed = re.search(r'<div[^>]*id="name-field"[^>]*hx-swap-oob="true"[^>]*>.*?</div>', html, re.S)
    assert proposed and 'value="Chatwoot – Acme Support"' in proposed.group(0)
    assert chatwoot.admin_token not in html
    page = post(api, f"{NEW}/CHATWOOT/test", data).get_data(as_text=True)  # without JavaScript
    assert 'value="Chatwoot – Acme Support"' in password_input(page, "name")
    assert "hx-swap-oob" not in page
    named = post(api, f"{NEW}/CHATWOOT/test", {**data, "name": "Mine"}, htmx=True).get_data(as_text=True)
    assert "hx-swap-oob" not in named  # a name the user chose stays


@pytest.fixture
def custom_crm():
    with FakeCustomCRM() as crm:
        yield crm


def custom_form(crm, auth_type, **credentials):
    data = {
        "name": "",
        "crm_name": "Acme CRM",
        "base_url": crm.url() + "/v1",
        "auth_type": auth_type,
        "health_path": "/me",
        "token_url": crm.url() + "/oauth/token",
        "client_auth": "BASIC",
        "api_key_header": "X-API-Key",
    }
    data.update({f"credentials.{key}": value for key, value in credentials.items()})
    return data


def test_custom_crm_oauth_through_the_form_and_only_its_keys_are_stored(api, alice, allow_local, custom_crm):
    data = custom_form(
        custom_crm, "OAUTH2", clientId=custom_crm.client_id, clientSecret=custom_crm.client_secret, apiKey="stray-key"
    )
    response = post(api, f"{NEW}/CUSTOM/test", data, htmx=True)
    html = response.get_data(as_text=True)
    assert "Connection works" in html, html
    assert f'value="127.0.0.1:{custom_crm.port}"' in html  # the proposed name: the host
    data["name"] = "Acme"
    assert post(api, f"{NEW}/CUSTOM", data, htmx=True).status_code == 204
    saved = service.list_integrations(alice)[0]
    assert set(saved.configuration["credentials"]) == {"clientId", "clientSecret"}
    assert "api_key_header" not in saved.configuration
    live = service.live_configuration(alice, saved)
    assert live["credentials"] == {"clientId": custom_crm.client_id, "clientSecret": custom_crm.client_secret}


def test_custom_crm_failure_advice_is_its_own(api, allow_local, custom_crm):
    data = custom_form(custom_crm, "BEARER", token="not-the-token")
    html = post(api, f"{NEW}/CUSTOM/test", data, htmx=True).get_data(as_text=True)
    assert "Connection failed" in html
    assert "Authentication Type" in html
    assert "Chatwoot" not in html and "Profile Settings" not in html


def test_custom_crm_edit_form_hints_each_saved_credential(api, alice, allow_local, custom_crm):
    data = custom_form(custom_crm, "BASIC", username="crm-user-longname", password=custom_crm.password)
    data["name"] = "Acme"
    assert post(api, f"{NEW}/CUSTOM", data, htmx=True).status_code == 204
    saved = service.list_integrations(alice)[0]
    html = api.client.get(f"/dashboard/integrations/{saved.id}/edit", headers=HTMX).get_data(as_text=True)
    assert f"Saved, ending in {custom_crm.password[-4:]}. Leave blank to keep it." in html
    assert custom_crm.password not in html and "enc:v1" not in html
    assert 'value=""' in password_input(html, "credentials.password")
    # Blank credentials keep the saved ones; typing only one of a pair asks for the other.
    half = post(
        api,
        f"/dashboard/integrations/{saved.id}/edit",
        {**data, "credentials.username": "other-user", "credentials.password": ""},
        True,
    )
    assert half.status_code == 422
    assert "Enter the Password as well" in half.get_data(as_text=True)
    kept = {**data, "credentials.username": "", "credentials.password": "", "name": "Acme 2"}
    assert post(api, f"/dashboard/integrations/{saved.id}/edit", kept, True).status_code == 204
    assert service.live_configuration(alice, saved)["credentials"]["password"] == custom_crm.password
