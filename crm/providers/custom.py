"""Custom CRM: any HTTP API, authenticated by API key, Bearer token, Basic auth or OAuth 2.0."""

from __future__ import annotations

from typing import Any

from crm.providers.base import Field, Provider, Validation
from crm.providers.registry import register

AUTH_TYPES = (
    ("API_KEY", "API Key"),
    ("BEARER", "Bearer Token"),
    ("BASIC", "Basic Auth"),
    ("OAUTH2", "OAuth 2.0"),
)
# The keys each authentication type needs in Credentials.
CREDENTIAL_KEYS = {
    "API_KEY": ("apiKey",),
    "BEARER": ("token",),
    "BASIC": ("username", "password"),
    "OAUTH2": ("clientId", "clientSecret"),
}
HEADER_NAME = r"[A-Za-z0-9!#$%&'*+.^_`|~-]{1,64}"


def credentials_example(auth_type: str) -> str:
    return "{" + ", ".join(f'"{key}": "..."' for key in CREDENTIAL_KEYS[auth_type]) + "}"


@register
class CustomCRM(Provider):
    id = "CUSTOM"
    name = "Custom CRM"
    description = "Any CRM with an HTTP API: API key, Bearer token, Basic auth or OAuth 2.0."
    icon = "custom.svg"
    features = ("connection_test",)
    config_fields = (
        Field("crm_name", "CRM Name", required=True, max_length=100, placeholder="Acme CRM"),
        Field(
            "base_url",
            "API Base URL",
            type="url",
            required=True,
            placeholder="https://api.example.com/v1",
            help="The address your CRM's API documentation gives for every call.",
        ),
        Field(
            "auth_type",
            "Authentication Type",
            type="select",
            required=True,
            choices=AUTH_TYPES,
            default="API_KEY",
        ),
        Field(
            "api_key_header",
            "API Key Header",
            default="X-API-Key",
            pattern=HEADER_NAME,
            pattern_message="Enter an HTTP header name, e.g. X-API-Key.",
            shown_when=("auth_type", ("API_KEY",)),
            help="The request header that carries the API key.",
        ),
        Field(
            "token_url",
            "Token URL",
            type="url",
            required=True,
            placeholder="https://auth.example.com/oauth/token",
            shown_when=("auth_type", ("OAUTH2",)),
            help="Where the client-credentials token is requested.",
        ),
        Field(
            "scope",
            "Scope",
            max_length=512,
            shown_when=("auth_type", ("OAUTH2",)),
            help="Optional; space-separated scopes your CRM asks for.",
        ),
        Field(
            "health_path",
            "Health Check Path",
            default="/",
            max_length=512,
            pattern=r"/[A-Za-z0-9._~!$&'()*+,;=:@/%-]*",
            pattern_message="Enter a path starting with /, e.g. /me or /health.",
            help="Test Connection calls the API Base URL plus this path.",
        ),
        Field(
            "credentials",
            "Credentials",
            type="json",
            sensitive=True,
            required=True,
            help=(
                "A JSON object. API Key: "
                + credentials_example("API_KEY")
                + "; Bearer Token: "
                + credentials_example("BEARER")
                + "; Basic Auth: "
                + credentials_example("BASIC")
                + "; OAuth 2.0: "
                + credentials_example("OAUTH2")
                + "."
            ),
        ),
    )

    @classmethod
    def check(cls, values: dict[str, Any], result: Validation) -> None:
        # Kept credentials are sealed, but their keys are readable: they must suit the auth type too.
        credentials = values.get("credentials") or result.stored.get("credentials") or {}
        auth_type = values.get("auth_type", "API_KEY")
        missing = [key for key in CREDENTIAL_KEYS[auth_type] if key not in credentials]
        if missing:
            label = dict(AUTH_TYPES)[auth_type]
            result.add_error(
                "credentials",
                f"{label} needs {', '.join(missing)}: enter {credentials_example(auth_type)}.",
            )
