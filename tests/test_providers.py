"""The provider registry and the schemas users fill in: labels exactly as the guide words them."""

import pytest

from crm.providers import REGISTRY, all_providers, get_provider
from crm.providers.base import FIELD_TYPES, Field, camel_case


def labels(provider_id):
    return [f.label for f in get_provider(provider_id).fields()]


def test_registry_has_every_provider_in_display_order():
    assert [p.id for p in all_providers()] == ["CHATWOOT", "SALESFORCE", "HUBSPOT", "ZOHO", "PIPEDRIVE", "CUSTOM"]
    assert {p.id for p in all_providers() if p.is_available()} == {"CHATWOOT", "CUSTOM"}
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
