"""Custom CRM: any HTTP API, authenticated by API key, Bearer token, Basic auth or OAuth 2.0."""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any, ClassVar

from crm.net import GuardedClient, Response, join_url
from crm.providers import oauth
from crm.providers.base import (
    MAX_TEXT,
    ConnectionResult,
    CRMError,
    Field,
    Provider,
    host_of,
    raise_for_common_status,
)
from crm.providers.registry import register

AUTH_TYPES = (
    ("API_KEY", "API Key"),
    ("BEARER", "Bearer Token"),
    ("BASIC", "Basic Auth"),
    ("OAUTH2", "OAuth 2.0"),
)
HEADER_NAME = r"[A-Za-z0-9!#$%&'*+.^_`|~-]{1,64}"
CLIENT_AUTH = (("BASIC", "HTTP Basic (standard)"), ("BODY", "In the request body"))
GRANTS = (("CLIENT_CREDENTIALS", "Client credentials"), ("AUTHORIZATION_CODE", "Authorization code"))
AUTHORIZATION_CODE = "AUTHORIZATION_CODE"


def credential(key: str, label: str, auth_type: str, secret: bool = True, help: str = "") -> Field:
    """One key of the sealed Credentials object, shown as its own input while `auth_type` is chosen."""
    return Field(
        key,
        label,
        type="password" if secret else "text",
        sensitive=True,
        required=True,
        max_length=MAX_TEXT,
        shown_when=("auth_type", (auth_type,)),
        help=help,
    )


# Every key is sealed (a username or client id is not secret, but it is half of a secret pair).
CREDENTIALS = (
    credential("apiKey", "API Key", "API_KEY"),
    credential("token", "Token", "BEARER", help="Sent as Authorization: Bearer <token>."),
    credential("username", "Username", "BASIC", secret=False),
    credential("password", "Password", "BASIC"),
    credential("clientId", "Client ID", "OAUTH2", secret=False),
    credential("clientSecret", "Client Secret", "OAUTH2"),
)
# The keys each authentication type needs in Credentials.
CREDENTIAL_KEYS = {
    auth_type: tuple(part.name for part in CREDENTIALS if part.shown_when[1] == (auth_type,))
    for auth_type, _ in AUTH_TYPES
}


def credentials_example(auth_type: str) -> str:
    return "{" + ", ".join(f'"{key}": "..."' for key in CREDENTIAL_KEYS[auth_type]) + "}"


@register
class CustomCRM(Provider):
    id = "CUSTOM"
    name = "Custom CRM"
    description = "Any CRM with an HTTP API: API key, Bearer token, Basic auth or OAuth 2.0."
    icon = "custom.svg"
    # "oauth": with the Authorization code grant it connects with "Connect" (crm/oauth), with the
    # user's own app; `uses_oauth(values)` says which of its integrations do.
    features = ("connection_test", "oauth")
    # No operator app: the user's own (oauth_client). The empty names are setting names, not secrets.
    oauth_app: ClassVar[oauth.OAuthApp] = oauth.OAuthApp(client_id_setting="", client_secret_setting="")  # nosec B106
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
            "grant",
            "Grant",
            type="select",
            choices=GRANTS,
            default="CLIENT_CREDENTIALS",
            shown_when=("auth_type", ("OAUTH2",)),
            help="Authorization code: you sign in to your CRM and allow access (Connect) instead of saving.",
        ),
        Field(
            "authorize_url",
            "Authorization URL",
            type="url",
            required=True,
            placeholder="https://auth.example.com/oauth/authorize",
            shown_when=("grant", (AUTHORIZATION_CODE,)),
            help="Your CRM's consent page, where you sign in and allow access.",
        ),
        Field(
            "token_url",
            "Token URL",
            type="url",
            required=True,
            placeholder="https://auth.example.com/oauth/token",
            shown_when=("auth_type", ("OAUTH2",)),
            help="Where access tokens are requested (and refreshed).",
        ),
        Field(
            "client_auth",
            "Client Authentication",
            type="select",
            choices=CLIENT_AUTH,
            default="BASIC",
            shown_when=("auth_type", ("OAUTH2",)),
            help="How the client id and secret reach the token URL; most servers accept HTTP Basic.",
        ),
        Field(
            "scope",
            "Scope",
            max_length=512,
            shown_when=("auth_type", ("OAUTH2",)),
            help="Optional; space-separated scopes your CRM asks for.",
        ),
        *oauth.oauth_token_fields(),
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
            parts=CREDENTIALS,
            help=(
                "The keys of the chosen Authentication Type. API Key: "
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
    advice_table: ClassVar[Mapping[str, tuple[str, ...]]] = {
        "auth_failed": (
            "Check the Authentication Type and the credentials against your CRM's API documentation.",
            "An API key often goes in a particular header: check the API Key Header.",
            "For OAuth 2.0, check the Client Authentication and that the client may use client credentials.",
        ),
        "account_not_found": (
            "The API answered, but not at this path: check the Health Check Path (e.g. /me or /health).",
        ),
        "insufficient_permissions": (
            "The credentials work but may not read this path: check their permissions, or the Scope.",
        ),
        "not_a_crm": (
            "Enter the API Base URL your CRM's API documentation gives, e.g. https://api.example.com/v1.",
            "Then choose a Health Check Path that answers with 200 for valid credentials.",
        ),
    }

    # --- the Authorization code grant, with the user's own app (crm/providers/oauth.py hooks) ---

    @classmethod
    def uses_oauth(cls, values: Mapping[str, Any]) -> bool:
        return values.get("auth_type") == "OAUTH2" and values.get("grant") == AUTHORIZATION_CODE

    @classmethod
    def oauth_client(cls, settings: Mapping[str, Any], values: Mapping[str, Any]) -> tuple[str, str] | None:
        credentials = values.get("credentials")
        if not isinstance(credentials, Mapping):
            return None
        client_id, client_secret = credentials.get("clientId"), credentials.get("clientSecret")
        return (client_id, client_secret) if client_id and client_secret else None

    @classmethod
    def oauth_client_auth(cls, values: Mapping[str, Any]) -> str:
        return "body" if values.get("client_auth") == "BODY" else "basic"

    @classmethod
    def oauth_scopes(cls, values: Mapping[str, Any]) -> tuple[str, ...]:
        return tuple(str(values.get("scope") or "").split())

    @classmethod
    def authorize_url(cls, settings: Mapping[str, Any], values: Mapping[str, Any]) -> str:
        from crm.integrations.service import outbound_client  # the operator's policy (CRM_ALLOW_INSECURE_HTTP)

        url = str(values.get("authorize_url") or "")
        insecure_ok = outbound_client().policy.allow_http
        if not url.lower().startswith("https://") and not (insecure_ok and url.lower().startswith("http://")):
            raise CRMError("invalid_url", "The Authorization URL must start with https://.")
        return url

    @classmethod
    def token_url(cls, settings: Mapping[str, Any], values: Mapping[str, Any]) -> str:
        return str(values["token_url"])  # sent through the guarded client, like every call

    @classmethod
    def revoke_url(cls, settings: Mapping[str, Any], values: Mapping[str, Any]) -> str | None:
        return None

    @classmethod
    def accept_token_answer(cls, settings, values, answer, callback_params) -> dict[str, Any]:
        return {}

    @classmethod
    def card_lines(cls, config_summary: Mapping[str, Any]) -> list[str]:
        lines = [str(config_summary.get("crm_name") or ""), host_of(config_summary.get("base_url"))]
        return [line for line in lines if line]

    @classmethod
    def default_name(cls, values: Mapping[str, Any], result: ConnectionResult | None = None) -> str:
        return host_of(values.get("base_url")) or cls.name

    @classmethod
    def test_connection(cls, config: dict[str, Any], http: GuardedClient) -> ConnectionResult:
        deadline = time.monotonic() + http.policy.total_timeout
        name = config.get("crm_name") or cls.name
        headers, auth, verified = auth_for(config, http, deadline, name)
        url = join_url(config["base_url"], config.get("health_path") or "/")
        response = http.request("GET", url, headers=headers, auth=auth, deadline=deadline)
        if response.status in (401, 403):
            raise CRMError("auth_failed", f"{name} rejected the credentials ({auth_label(config)}). {fix_hint(config)}")
        if response.status == 404 and response.json() is not None:
            raise CRMError(
                "account_not_found",
                f"{name}'s API answered that {url} does not exist. Check the Health Check Path and any "
                "account or workspace it names.",
            )
        if response.status == 404:
            raise CRMError("not_a_crm", f"Nothing answers like an API at {url}. Check the API Base URL.")
        raise_for_common_status(response, name)
        if not 200 <= response.status < 300:
            raise CRMError("not_a_crm", f"{name} answered {url} with an unexpected status ({response.status}).")
        verified.append(f"GET {url} answered {response.status} with {auth_label(config)}")
        return ConnectionResult("ok", f"Connected to {name}.", verified)


def auth_label(config: dict[str, Any]) -> str:
    return dict(AUTH_TYPES)[config.get("auth_type", "API_KEY")]


def fix_hint(config: dict[str, Any]) -> str:
    labels = [part.label for part in CREDENTIALS if part.applies(config)]
    return f"Check the {' and '.join(labels)}, and that they are allowed to call this API."


def auth_for(
    config: dict[str, Any], http: GuardedClient, deadline: float, name: str
) -> tuple[dict[str, str], tuple[str, str] | None, list[str]]:
    """Headers and Basic-auth pair for one call, per Authentication Type."""
    credentials = config.get("credentials") or {}
    auth_type = config.get("auth_type", "API_KEY")
    if auth_type == "API_KEY":
        return {config.get("api_key_header") or "X-API-Key": credentials["apiKey"]}, None, []
    if auth_type == "BEARER":
        return {"Authorization": f"Bearer {credentials['token']}"}, None, []
    if auth_type == "BASIC":
        return {}, (credentials["username"], credentials["password"]), []
    if config.get("grant") == AUTHORIZATION_CODE:
        if not config.get("access_token"):
            raise CRMError("auth_failed", f"Connect {name} first: sign in to it and allow access.")
        return {"Authorization": f"Bearer {config['access_token']}"}, None, []
    token = fetch_client_credentials_token(config, http, deadline, name)
    return {"Authorization": f"Bearer {token}"}, None, [f"The token URL issued an access token for {name}"]


def fetch_client_credentials_token(config: dict[str, Any], http: GuardedClient, deadline: float, name: str) -> str:
    """OAuth 2.0 client credentials (RFC 6749 §4.4) through the same guard as every other call.

    Hand-written rather than through an OAuth library: it is one POST, and it must go through
    the guarded client."""
    credentials = config["credentials"]
    form = {"grant_type": "client_credentials"}
    if config.get("scope"):
        form["scope"] = config["scope"]
    auth = None
    if config.get("client_auth", "BASIC") == "BASIC":
        auth = (credentials["clientId"], credentials["clientSecret"])
    else:
        form.update(client_id=credentials["clientId"], client_secret=credentials["clientSecret"])
    response = http.request(
        "POST", config["token_url"], data=form, auth=auth, headers={"Accept": "application/json"}, deadline=deadline
    )
    return token_from(response, name)


def token_from(response: Response, name: str) -> str:
    body = response.json()
    error = body.get("error") if isinstance(body, dict) else None
    if error == "invalid_scope":
        raise CRMError("insufficient_permissions", f"{name}'s token URL refused the Scope. Check the scopes it allows.")
    if response.status in (400, 401, 403) or error in ("invalid_client", "unauthorized_client", "invalid_grant"):
        raise CRMError(
            "auth_failed",
            f"{name}'s token URL rejected the client id or secret. "
            "Check the Client ID, the Client Secret and the Client Authentication.",
        )
    raise_for_common_status(response, name)
    token = body.get("access_token") if isinstance(body, dict) else None
    if response.status != 200 or not isinstance(token, str) or not token:
        raise CRMError(
            "not_a_crm", "The Token URL did not answer like an OAuth 2.0 token endpoint. Check the Token URL."
        )
    return token
