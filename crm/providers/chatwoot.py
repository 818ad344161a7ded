"""Chatwoot: customer conversations; the platform's primary CRM."""

from __future__ import annotations

import random
import re
import time
from collections.abc import Mapping
from email.utils import parsedate_to_datetime
from typing import Any, ClassVar

from crm.net import GuardedClient, Response, join_url
from crm.providers.base import ConnectionResult, CRMError, Field, Provider, raise_for_common_status
from crm.providers.registry import register

# A pasted dashboard address, e.g. https://chat.example.com/app/accounts/3/inbox/1.
DASHBOARD_PATH = re.compile(r"/app(/.*)?$")
ACCOUNT_IN_PATH = re.compile(r"/app/accounts/(\d+)")
ADMIN_ROLE = "administrator"
ADMIN_FEATURES = ("auto_create_inboxes", "auto_create_bots")  # creating inboxes and bots is admin-only
# nginx drops header names with underscores unless told otherwise; Chatwoot reads both spellings.
TOKEN_HEADERS = ("api_access_token", "Api-Access-Token")
COPY_AGAIN_HINT = "Copy it again from Chatwoot → Profile Settings → Access Token (resetting it there changes it)."
# Longest a call without a deadline of its own (a job's) waits out throttling, retries included.
JOB_PATIENCE_SECONDS = 120.0


class ChatwootAPI:
    """Chatwoot's application API for one account, over the guarded client."""

    name = "Chatwoot"

    def __init__(
        self,
        http: GuardedClient,
        base_url: str,
        account_id: int,
        token: str,
        deadline: float | None = None,
        retry_base: float = 1.0,
    ):
        self.http = http
        self.base_url = base_url
        self.account_id = account_id
        self.token = token
        self.deadline = deadline
        self.retry_base = retry_base
        self.token_header = TOKEN_HEADERS[0]

    def call(
        self, method: str, path: str, *, json: Any = None, authenticated: bool = True, deadline: float | None = None
    ) -> Response:
        url = join_url(self.base_url, path)
        headers = {"Accept": "application/json"}
        if authenticated:
            headers[self.token_header] = self.token
        deadline = deadline or self.deadline
        response = self.http.request(method, url, headers=headers, json=json, deadline=deadline)
        if authenticated and _devise_401(response) and self.token_header == TOKEN_HEADERS[0]:
            # The token never arrived: a proxy dropped the underscore header. Try the other spelling once.
            self.token_header = TOKEN_HEADERS[1]
            headers.pop(TOKEN_HEADERS[0])
            headers[self.token_header] = self.token
            response = self.http.request(method, url, headers=headers, json=json, deadline=deadline)
        return response

    def patient_call(self, method: str, path: str, *, json: Any = None, retries: int = 5) -> Response:
        """A call that waits out throttling, within its deadline: Chatwoot's 429 "Retry later" has no
        Retry-After, so back off exponentially, with jitter so that parallel workers do not retry in
        step; a Retry-After, when a proxy sends one, is honoured. A wait that would pass the deadline
        is not started: the 429 is answered at once (callers report rate_limited)."""
        deadline = self.deadline or time.monotonic() + JOB_PATIENCE_SECONDS
        for attempt in range(retries + 1):
            response = self.call(method, path, json=json, deadline=deadline)
            if response.status != 429 or attempt == retries:
                return response
            wait = min(60.0, self.retry_base * 2**attempt) * random.uniform(0.5, 1.5)  # noqa: S311  # nosec B311  # back-off jitter, not a secret
            wait = max(wait, retry_after_seconds(response.headers.get("Retry-After", "")))
            if time.monotonic() + wait >= deadline:
                return response
            time.sleep(wait)
        return response

    def account_call(self, method: str, *parts: str | int, json: Any = None, query: str = "") -> Any:
        """An account-scoped call whose success is any 2xx; answers the JSON body (or None)."""
        response = self.patient_call(method, self.account_path(*parts) + query, json=json)
        if 200 <= response.status < 300 and not response.body.strip():
            return None  # e.g. set_agent_bot answers `head :ok`
        return self.expect_json(response)

    def account_path(self, *parts: str | int) -> str:
        return "/".join(["api/v1/accounts", str(self.account_id), *map(str, parts)])

    def version(self) -> str | None:
        """Chatwoot's version from GET /api, which needs no token; None when it does not answer so."""
        response = self.call("GET", "api", authenticated=False)
        body = response.json() if response.status == 200 else None
        version = body.get("version") if isinstance(body, dict) else None
        return version if isinstance(version, str) and len(version) <= 32 else None

    def profile(self) -> dict[str, Any]:
        response = self.call("GET", "api/v1/profile")
        body = self.expect_json(response, not_found="not_a_crm")
        if not isinstance(body, dict) or not isinstance(body.get("accounts"), list):
            raise CRMError("not_a_crm", not_chatwoot_message())
        return body

    def expect_json(self, response: Response, not_found: str = "account_not_found") -> Any:
        """The JSON body of a successful answer, or a CRMError that says what went wrong."""
        if response.status == 401:
            raise classify_401(response, self.account_id)
        if response.status == 402:
            raise CRMError(
                "insufficient_permissions",
                "Your Chatwoot plan's limit is reached. Upgrade the plan or remove unused inboxes or bots.",
            )
        if response.status == 403:
            raise CRMError("insufficient_permissions", "Chatwoot refused this action for the token's user.")
        if response.status == 404:
            if not_found == "not_a_crm":
                raise CRMError("not_a_crm", not_chatwoot_message())
            raise CRMError("account_not_found", account_missing_message(self.account_id))
        raise_for_common_status(response, self.name)
        body = response.json()
        if not 200 <= response.status < 300 or body is None:
            raise CRMError("not_a_crm", not_chatwoot_message())
        return body


def retry_after_seconds(value: str) -> float:
    """Retry-After as seconds (a number or an HTTP date); 0 when absent or unreadable."""
    value = (value or "").strip()[:64]
    if value.isdigit():
        return float(value)
    try:
        return max(0.0, parsedate_to_datetime(value).timestamp() - time.time())
    except (TypeError, ValueError, IndexError, OverflowError):
        return 0.0


def _devise_401(response: Response) -> bool:
    body = response.json() if response.status == 401 else None
    return isinstance(body, dict) and "errors" in body and "error" not in body


def not_chatwoot_message() -> str:
    return (
        "This address answered, but not like Chatwoot's API. Enter the address you open Chatwoot at, "
        "e.g. https://app.chatwoot.com, without /app/... at the end."
    )


def account_missing_message(account_id: int) -> str:
    return (
        f"The token works, but its user is not a member of account {account_id}. Check the Account ID "
        "(Chatwoot → Settings → Account, or the number after /app/accounts/ in the dashboard address)."
    )


def classify_401(response: Response, account_id: int) -> CRMError:
    body = response.json()
    error = body.get("error") if isinstance(body, dict) else None
    if error == "You are not authorized to access this account":
        return CRMError("account_not_found", account_missing_message(account_id))
    if error == "Account is suspended":
        return CRMError("account_not_found", f"Chatwoot account {account_id} is suspended. Reactivate it first.")
    if error == "You are not authorized to do this action":
        return CRMError(
            "insufficient_permissions",
            "The token's user may not do this: it needs the administrator role in this Chatwoot account.",
        )
    if error == "Access to this endpoint is not authorized for bots":
        return CRMError("auth_failed", f"This is an agent bot's token, not a user's. {COPY_AGAIN_HINT}")
    if isinstance(body, dict) and "errors" in body:
        return CRMError(
            "auth_failed",
            "Chatwoot did not receive the token: a proxy in front of it may drop the api_access_token header "
            "(nginx needs `underscores_in_headers on`).",
        )
    return CRMError("auth_failed", f"Chatwoot rejected the API Access Token. {COPY_AGAIN_HINT}")


@register
class Chatwoot(Provider):
    id = "CHATWOOT"
    name = "Chatwoot"
    description = "Open-source customer engagement: inboxes, agent bots, contacts and conversations."
    icon = "chatwoot.svg"
    features = ("inboxes", "agent_bots", "contacts", "messages")
    can_operate = True
    docs_url = "https://www.chatwoot.com/developers/api/"
    config_fields = (
        Field(
            "base_url",
            "Chatwoot Base URL",
            type="url",
            required=True,
            placeholder="https://app.chatwoot.com",
            help="Chatwoot Cloud: https://app.chatwoot.com, or your own domain, e.g. https://chat.example.com.",
        ),
        Field(
            "account_id",
            "Account ID",
            type="number",
            required=True,
            placeholder="1",
            help="Chatwoot → Settings → Account; it is also the number after /app/accounts/ in the dashboard address.",
        ),
        Field(
            "api_key",
            "API Access Token",
            type="password",
            sensitive=True,
            required=True,
            max_length=256,
            help="Chatwoot → Profile Settings → Access Token.",
        ),
        Field(
            "auto_create_inboxes",
            "Auto-create Inboxes",
            type="checkbox",
            default=True,
            group="features",
            help="Create an API inbox for the platform's conversations (needs an administrator token).",
        ),
        Field(
            "auto_create_bots",
            "Auto-create Agent Bots",
            type="checkbox",
            default=True,
            group="features",
            help="Create an agent bot and attach it to that inbox (needs an administrator token).",
        ),
        Field(
            "sync_contacts",
            "Sync Contacts",
            type="checkbox",
            default=True,
            group="features",
            help="Keep your contacts in Chatwoot up to date.",
        ),
    )

    advice_table: ClassVar[Mapping[str, tuple[str, ...]]] = {
        "invalid_url": ("Enter the full address, starting with https://, e.g. https://app.chatwoot.com.",),
        "auth_failed": (
            "Copy the token again: Chatwoot → Profile Settings → Access Token.",
            "A token that was reset in Chatwoot stops working: paste the new one.",
        ),
        "account_not_found": (
            "The Account ID is the number after /app/accounts/ in your Chatwoot address.",
            "The token's user must be a member of that account.",
        ),
        "insufficient_permissions": (
            "Creating inboxes and agent bots needs an administrator's token.",
            "Or turn off Auto-create Inboxes and Auto-create Agent Bots.",
        ),
        "not_a_crm": ("Enter the address you open Chatwoot at, without /app/... or /api/... at the end.",),
    }

    @classmethod
    def card_lines(cls, config_summary: Mapping[str, Any]) -> list[str]:
        lines = super().card_lines(config_summary)
        if config_summary.get("account_id"):
            lines.append(f"Account {config_summary['account_id']}")
        return lines

    @classmethod
    def default_name(cls, values: Mapping[str, Any], result: ConnectionResult | None = None) -> str:
        account_name = (result.details.get("accountName") if result else None) or ""
        return f"{cls.name} – {account_name}" if account_name else cls.name

    @classmethod
    def normalize(cls, values: dict[str, Any]) -> dict[str, Any]:
        base_url = values.get("base_url")
        if base_url:
            path_match = DASHBOARD_PATH.search(base_url)
            if path_match:
                account = ACCOUNT_IN_PATH.search(base_url)
                if account and "account_id" not in values:
                    values["account_id"] = int(account.group(1))
                values["base_url"] = base_url[: path_match.start()]
        return values

    @classmethod
    def test_connection(cls, config: dict[str, Any], http: GuardedClient) -> ConnectionResult:
        deadline = time.monotonic() + http.policy.total_timeout
        api = ChatwootAPI(http, config["base_url"], config["account_id"], config["api_key"], deadline)
        version = api.version()
        profile = api.profile()
        verified = [f"Reached Chatwoot{' ' + version if version else ''} at {config['base_url']}"]
        verified.append("The API Access Token is valid")
        account = next((a for a in profile["accounts"] if isinstance(a, dict) and a.get("id") == api.account_id), None)
        if account is None:
            raise CRMError("account_not_found", account_missing_message(api.account_id))
        if account.get("status") == "suspended":
            raise CRMError("account_not_found", f"Chatwoot account {api.account_id} is suspended. Reactivate it first.")
        role = account.get("role") if account.get("role") in ("administrator", "agent") else "unknown"
        account_name = str(account.get("name") or api.account_id)[:100]
        verified.append(f"Account {api.account_id} ({account_name}) is active; your role is {role}")
        details = {"version": version, "role": role, "accountName": account_name}
        wants_admin = [
            label
            for name, label in (
                ("auto_create_inboxes", "Auto-create Inboxes"),
                ("auto_create_bots", "Auto-create Agent Bots"),
            )
            if config.get(name)
        ]
        if wants_admin and role != ADMIN_ROLE:
            message = (
                f"Connected, but the token's user is an {role}, not an administrator, so "
                f"{' and '.join(wants_admin)} will fail. Use an administrator's access token, "
                "or turn those features off."
            )
            return ConnectionResult("insufficient_permissions", message, verified, details)
        return ConnectionResult("ok", f"Connected to Chatwoot account {account_name} as {role}.", verified, details)
