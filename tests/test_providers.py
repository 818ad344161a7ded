"""The provider registry and the schemas users fill in: labels exactly as the guide words them."""

import pytest

from crm.providers import REGISTRY, all_providers, get_provider
from crm.providers.base import FIELD_TYPES, OUTCOMES, ConnectionResult, Field, camel_case


def labels(provider_id):
    return [f.label for f in get_provider(provider_id).fields()]


def test_registry_has_every_provider_in_display_order():
    assert [p.id for p in all_providers()] == ["CHATWOOT", "SALESFORCE", "HUBSPOT", "ZOHO", "PIPEDRIVE", "CUSTOM"]
    available = {p.id for p in all_providers() if p.is_available()}
    assert {"CHATWOOT", "HUBSPOT", "PIPEDRIVE", "CUSTOM"} <= available
    assert get_provider("chatwoot") is REGISTRY["CHATWOOT"]
    assert [p.name for p in all_providers()] == [
        "Chatwoot",
        "Salesforce",
        "HubSpot",
        "Zoho CRM",
        "Pipedrive",
        "Custom CRM",
    ]


def test_chatwoot_schema_uses_the_guides_words():
    assert labels("CHATWOOT") == [
        "Integration Name",
        "Chatwoot Base URL",
        "Account ID",
        "API Access Token",
        "Auto-create Inboxes",
        "Auto-create Agent Bots",
        "Sync Contacts",
    ]
    chatwoot = get_provider("CHATWOOT")
    assert [f.name for f in chatwoot.sensitive_fields()] == ["api_key"]
    assert "app.chatwoot.com" in chatwoot.field("base_url").help
    assert "Settings → Account" in chatwoot.field("account_id").help
    assert "Profile Settings → Access Token" in chatwoot.field("api_key").help
    features = [f for f in chatwoot.fields() if f.group == "features"]
    assert [f.api_name for f in features] == ["autoCreateInboxes", "autoCreateBots", "syncContacts"]
    assert all(f.default is True for f in features)


def test_custom_schema_uses_the_guides_words():
    assert labels("CUSTOM") == [
        "Integration Name",
        "CRM Name",
        "API Base URL",
        "Authentication Type",
        "API Key Header",
        "Grant",
        "Authorization URL",
        "Token URL",
        "Client Authentication",
        "Scope",
        "Health Check Path",
        "Credentials",
    ]
    custom = get_provider("CUSTOM")
    assert [label for _, label in custom.field("auth_type").choices] == [
        "API Key",
        "Bearer Token",
        "Basic Auth",
        "OAuth 2.0",
    ]
    assert custom.field("credentials").sensitive
    assert custom.field("credentials").type == "json"


@pytest.mark.parametrize("provider", list(REGISTRY))
def test_every_provider_declares_its_metadata(provider):
    cls = get_provider(provider)
    described = cls.describe()
    assert described["id"] == provider
    assert described["name"] and described["description"] and described["icon"].endswith(".svg")
    assert described["availability"] in ("available", "coming_soon")
    assert isinstance(described["requiresOAuth"], bool)
    assert described["fields"][0]["name"] == "name"
    for field in cls.fields():
        assert field.type in FIELD_TYPES
        if field.sensitive:
            assert field.type in ("password", "json")


def test_api_names_are_camel_case():
    assert camel_case("base_url") == "baseUrl"
    assert camel_case("api_key") == "apiKey"
    assert get_provider("CUSTOM").field("auth_type").api_name == "authType"


def test_unknown_field_type_is_refused():
    with pytest.raises(ValueError, match="unknown field type"):
        Field("x", "X", type="colour")


@pytest.mark.parametrize(
    ("pasted", "base_url", "account_id"),
    [
        ("https://chat.example.com/", "https://chat.example.com", None),
        ("https://Chat.Example.com/app/accounts/12/dashboard", "https://chat.example.com", 12),
        ("https://example.com/chatwoot/app/login", "https://example.com/chatwoot", None),
        ("https://app.chatwoot.com", "https://app.chatwoot.com", None),
    ],
)
def test_chatwoot_normalises_pasted_addresses(pasted, base_url, account_id):
    result = get_provider("CHATWOOT").validate({"name": "n", "base_url": pasted, "api_key": "t"})
    assert result.values["base_url"] == base_url
    if account_id:
        assert result.values["account_id"] == account_id
        assert not result.errors
    else:
        assert "account_id" in result.errors


def test_hidden_fields_are_dropped_and_defaults_applied():
    custom = get_provider("CUSTOM")
    result = custom.validate(
        {
            "name": "n",
            "crm_name": "c",
            "base_url": "https://a.example",
            "auth_type": "BEARER",
            "token_url": "https://t.example",
            "credentials": {"token": "t"},
        }
    )
    assert not result.errors
    assert "token_url" not in result.values
    assert "api_key_header" not in result.values
    assert result.values["health_path"] == "/"


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("api_key_header", "Bad Header", "header name"),
        ("health_path", "health", "starting with /"),
        ("auth_type", "KERBEROS", "Choose one of"),
        ("credentials", "[1, 2]", "JSON object"),
        ("credentials", "{not json", "JSON object"),
        ("credentials", {"apiKey": 5}, "non-empty text"),
        ("credentials", {"bad key": "x"}, "Keys must be names"),
    ],
)
def test_custom_field_validation(field, value, message):
    raw = {
        "name": "n",
        "crm_name": "c",
        "base_url": "https://a.example",
        "auth_type": "API_KEY",
        "credentials": {"apiKey": "k"},
    }
    raw[field] = value
    result = get_provider("CUSTOM").validate(raw)
    assert any(message in text for text in result.errors[field])


# --- Custom CRM credentials: one part per key, following the Authentication Type -----------------

CUSTOM_BASE = {"name": "n", "crm_name": "Acme", "base_url": "https://a.example"}


def test_custom_credentials_declare_one_part_per_key_of_each_auth_type():
    credentials = get_provider("CUSTOM").field("credentials")
    shown = {part.name: part.shown_when for part in credentials.parts}
    assert shown == {
        "apiKey": ("auth_type", ("API_KEY",)),
        "token": ("auth_type", ("BEARER",)),
        "username": ("auth_type", ("BASIC",)),
        "password": ("auth_type", ("BASIC",)),
        "clientId": ("auth_type", ("OAUTH2",)),
        "clientSecret": ("auth_type", ("OAUTH2",)),
    }
    assert {p.name for p in credentials.parts if p.type == "password"} == {
        "apiKey",
        "token",
        "password",
        "clientSecret",
    }
    assert [p["name"] for p in credentials.describe()["parts"]] == list(shown)


def test_parts_of_other_auth_types_are_neither_checked_nor_kept():
    typed = {"token": "t-123", "apiKey": "x" * 5000, "username": "ignored", "unknown": "dropped"}
    result = get_provider("CUSTOM").validate({**CUSTOM_BASE, "auth_type": "BEARER", "credentials": typed})
    assert not result.errors
    assert result.values["credentials"] == {"token": "t-123"}


def test_each_missing_part_is_named_beside_its_own_input():
    custom = get_provider("CUSTOM")
    result = custom.validate({**CUSTOM_BASE, "auth_type": "OAUTH2", "token_url": "https://a.example/token"})
    assert result.errors == {
        "credentials.clientId": ["Client ID is required."],
        "credentials.clientSecret": ["Client Secret is required."],
    }
    typed = {"clientId": "id"}
    result = custom.validate(
        {**CUSTOM_BASE, "auth_type": "OAUTH2", "token_url": "https://t.example", "credentials": typed}
    )
    assert result.errors == {"credentials.clientSecret": ["Client Secret is required."]}


def test_saved_parts_are_kept_whole_or_replaced_together():
    custom = get_provider("CUSTOM")
    stored = {"credentials": {"username": "enc:v1:a:b", "password": "enc:v1:c:d"}}
    kept = custom.validate({**CUSTOM_BASE, "auth_type": "BASIC"}, stored_secrets=stored)
    assert not kept.errors and "credentials" not in kept.values
    half = custom.validate({**CUSTOM_BASE, "auth_type": "BASIC", "credentials": {"username": "u"}}, stored)
    assert "replaced together" in half.errors["credentials.password"][0]
    other_type = custom.validate({**CUSTOM_BASE, "auth_type": "BEARER"}, stored_secrets=stored)
    assert other_type.errors == {"credentials.token": ["Token is required."]}


@pytest.mark.parametrize(
    "configuration",
    [
        {"credentials": {"clientId": "id", "clientSecret": "s"}},  # the guide's nested object
        {"credentials": '{"clientId": "id", "clientSecret": "s"}'},  # or its JSON text
        {"clientId": "id", "clientSecret": "s"},  # or flat keys
        {"credentials": {"clientId": "id", "clientSecret": "s", "apiKey": {"configured": True}}},
    ],
)
def test_the_api_accepts_nested_or_flat_credentials(configuration):
    custom = get_provider("CUSTOM")
    values = custom.values_from_api({"authType": "OAUTH2", "tokenUrl": "https://a.example/t", **configuration})
    result = custom.validate({**CUSTOM_BASE, **values})
    assert not result.errors, result.errors
    assert result.values["credentials"] == {"clientId": "id", "clientSecret": "s"}


def test_a_redacted_credentials_object_means_keep_them():
    custom = get_provider("CUSTOM")
    assert "credentials" not in custom.values_from_api({"credentials": {"apiKey": {"configured": True}}})


# --- what each provider says: advice, card lines, a proposed name --------------------------------


def test_advice_comes_from_the_provider():
    chatwoot, custom = get_provider("CHATWOOT"), get_provider("CUSTOM")
    assert any("Profile Settings" in line for line in chatwoot.advice("auth_failed"))
    for outcome in OUTCOMES:
        assert not any("Chatwoot" in line for line in custom.advice(outcome)), outcome
    assert any("Authentication Type" in line for line in custom.advice("auth_failed"))
    assert custom.advice("timeout") == chatwoot.advice("timeout")  # the network's advice is shared
    assert custom.advice("ok") == []


def test_card_lines_and_proposed_names():
    chatwoot, custom = get_provider("CHATWOOT"), get_provider("CUSTOM")
    assert chatwoot.card_lines({"base_url": "https://chat.example.com", "account_id": 3}) == [
        "chat.example.com",
        "Account 3",
    ]
    assert custom.card_lines({"crm_name": "Acme", "base_url": "https://api.acme.test:8443/v1"}) == [
        "Acme",
        "api.acme.test:8443",
    ]
    green = ConnectionResult("ok", "Connected.", details={"accountName": "Acme"})
    assert chatwoot.default_name({}, green) == "Chatwoot – Acme"
    assert chatwoot.default_name({}, ConnectionResult("ok", "Connected.")) == "Chatwoot"
    assert custom.default_name({"base_url": "https://api.acme.test/v1"}, green) == "api.acme.test"
