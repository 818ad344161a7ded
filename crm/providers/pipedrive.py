"""Pipedrive: persons (API v2) for contacts sync, notes for messages. An API token, sent in the
`x-api-token` header (never the query string, where it would reach logs)."""

from __future__ import annotations

import re
import time
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar
from urllib.parse import urlsplit

from crm.net import GuardedClient, Response, join_url
from crm.providers.base import ConnectionResult, CRMError, Field, Provider, Validation
from crm.providers.contract import Connection, ContactData, ContactResult, Recorded, not_accepted, wait_before_retry
from crm.providers.registry import register

DEFAULT_API_URL = "https://{companyDomain}.pipedrive.com"
COMPANY_DOMAIN = r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?"
PAGE_SIZE = 500  # persons per listing page (Pipedrive's maximum)
MAX_INDEXED = 200_000  # persons read into the email/phone index at most
REISSUE_ADVICE = "Copy it again from Pipedrive → Personal preferences → API."


class PipedriveAPI(Connection):
    # No upsert: one contact at a time, matched against an index of the existing persons.
    batch_size = 50
    concurrency = 1

    def __init__(self, http: GuardedClient, api_url: str, token: str, deadline: float | None = None):
        self.http = http
        self.api_url = api_url
        self.token = token
        self.deadline = deadline
        self._index: dict[str, str] | None = None

    def call(self, method: str, path: str, *, json: Any = None, retries: int = 4) -> Response:
        """One call that respects the 2-second window: waits when none is left, and after a 429."""
        headers = {"x-api-token": self.token, "Accept": "application/json"}
        url = join_url(self.api_url, path)
        for attempt in range(retries + 1):
            response = self.http.request(method, url, headers=headers, json=json, deadline=self.deadline)
            reset = reset_seconds(response.headers)
            if response.status != 429:
                if response.headers.get("x-ratelimit-remaining") == "0":
                    wait_before_retry(reset, self.deadline, "Pipedrive")  # pace the next call
                return response
            if attempt == retries:
                return response
            wait_before_retry(reset, self.deadline, "Pipedrive")
        return response

    def expect(self, response: Response, *ok: int) -> Any:
        body = response.json()
        if response.status in ok and isinstance(body, dict):
            return body.get("data")
        raise error_for(response)

    # --- contacts --------------------------------------------------------------------------------

    def index(self) -> dict[str, str]:
        """Existing persons by email and phone, read once per connection (the search endpoint allows
        only 10 calls per 2 seconds, so a first sync lists instead of searching)."""
        if self._index is None:
            index: dict[str, str] = {}
            cursor = None
            while len(index) < MAX_INDEXED:
                query = f"api/v2/persons?limit={PAGE_SIZE}" + (f"&cursor={cursor}" if cursor else "")
                response = self.call("GET", query)
                data = self.expect(response, 200) or []
                for person in data:
                    if not isinstance(person, dict) or person.get("id") is None:
                        continue
                    for key in person_keys(person):
                        index.setdefault(key, str(person["id"]))
                cursor = ((response.json() or {}).get("additional_data") or {}).get("next_cursor")
                if not cursor or not isinstance(cursor, str) or len(cursor) > 512:
                    break
            self._index = index
        return self._index

    def upsert_contacts(self, batch: Sequence[ContactData]) -> list[ContactResult]:
        return [self.upsert(contact) for contact in batch]

    def upsert(self, contact: ContactData) -> ContactResult:
        try:
            remote_id = contact.remote_id
            if remote_id and self._patch(remote_id, contact):
                return ContactResult(contact.key, "updated", remote_id)
            remote_id = next((self.index()[k] for k in contact_keys(contact) if k in self.index()), None)
            if remote_id and self._patch(remote_id, contact):
                return ContactResult(contact.key, "updated", remote_id)
            created = self.expect(self.call("POST", "api/v2/persons", json=person_body(contact)), 200, 201)
            remote_id = str(created["id"])
            for key in contact_keys(contact):
                self.index()[key] = remote_id
            return ContactResult(contact.key, "created", remote_id)
        except CRMError as exc:
            if exc.outcome in ("auth_failed", "insufficient_permissions"):
                raise
            return ContactResult.failed(contact.key, exc.message)

    def _patch(self, remote_id: str, contact: ContactData) -> bool:
        """Update a person; False when it no longer exists in Pipedrive (then it is created again)."""
        response = self.call("PATCH", f"api/v2/persons/{remote_id}", json=person_body(contact))
        if response.status == 404:
            return False
        self.expect(response, 200)
        return True

    def record_message(self, contact: ContactData, text: str) -> Recorded:
        body = {"content": text, "person_id": int(contact.remote_id)}
        note = self.expect(self.call("POST", "v1/notes", json=body), 200, 201) or {}
        return Recorded("note", str(note.get("id")), {"personId": contact.remote_id})


def person_body(contact: ContactData) -> dict[str, Any]:
    body: dict[str, Any] = {"name": contact.name or contact.email or contact.phone or "Contact"}
    if contact.email:
        body["emails"] = [{"value": contact.email, "primary": True, "label": "work"}]
    if contact.phone:
        body["phones"] = [{"value": contact.phone, "primary": True, "label": "work"}]
    return body


def contact_keys(contact: ContactData) -> list[str]:
    keys = [f"email:{contact.email.strip().lower()}"] if contact.email else []
    return keys + ([f"phone:{digits(contact.phone)}"] if contact.phone and digits(contact.phone) else [])


def person_keys(person: Mapping[str, Any]) -> list[str]:
    keys = []
    for kind, items in (("email", person.get("emails")), ("phone", person.get("phones"))):
        for item in items or []:
            value = item.get("value") if isinstance(item, dict) else item
            if isinstance(value, str) and value.strip():
                keys.append(f"email:{value.strip().lower()}" if kind == "email" else f"phone:{digits(value)}")
    return keys


def digits(phone: str) -> str:
    return re.sub(r"\D", "", phone or "")


def reset_seconds(headers: Mapping[str, str]) -> float:
    try:
        return min(max(float(headers.get("x-ratelimit-reset") or 2), 0.0), 2.0)
    except ValueError:
        return 2.0


def error_for(response: Response) -> CRMError:
    if response.status == 401:
        return CRMError("auth_failed", f"Pipedrive rejected the API token. {REISSUE_ADVICE}")
    if response.status == 403:
        return CRMError(
            "insufficient_permissions",
            "Pipedrive refused this for the token's user. An admin may have turned off API access for your user.",
        )
    if response.status == 404:
        return CRMError(
            "account_not_found",
            "Pipedrive answered that this was not found. Check the company domain (the part before .pipedrive.com).",
        )
    return not_accepted(response, "Pipedrive")


@register
class Pipedrive(Provider):
    id = "PIPEDRIVE"
    name = "Pipedrive"
    description = "Sales pipeline CRM: contacts sync to persons, messages recorded as notes."
    icon = "pipedrive.svg"
    features = ("contacts", "notes")
    docs_url = "https://pipedrive.readme.io/docs/how-to-find-the-api-token"
    config_fields = (
        Field(
            "company_domain",
            "Company Domain",
            required=True,
            max_length=253,
            placeholder="acme",
            help="The part before .pipedrive.com in your Pipedrive address, e.g. acme for acme.pipedrive.com.",
        ),
        Field(
            "api_token",
            "API Token",
            type="password",
            sensitive=True,
            required=True,
            max_length=256,
            help="Pipedrive → Personal preferences → API.",
        ),
    )

    advice_table: ClassVar[Mapping[str, tuple[str, ...]]] = {
        "auth_failed": (
            "Copy the API token again: Pipedrive → Personal preferences → API.",
            "A token that was regenerated in Pipedrive stops working at once: paste the new one.",
        ),
        "account_not_found": (
            "The Company Domain is the part before .pipedrive.com in the address you open Pipedrive at.",
        ),
        "insufficient_permissions": (
            "A Pipedrive admin may have turned off API access for your user: ask them to allow it, or use an "
            "admin's API token.",
        ),
        "not_a_crm": ("Check the Company Domain: it must be your company's Pipedrive address.",),
        "dns_error": ("Check the Company Domain: acme for acme.pipedrive.com.",),
        "rate_limited": (
            "Pipedrive allows a few calls per 2 seconds per user and a daily budget per company, shared by every "
            "app: wait a minute and test again.",
        ),
        "server_error": ("Pipedrive is having trouble: check status.pipedrive.com, then test again.",),
    }

    @classmethod
    def card_lines(cls, config_summary: Mapping[str, Any]) -> list[str]:
        domain = config_summary.get("company_domain")
        return [f"{domain}.pipedrive.com"] if domain else []

    @classmethod
    def default_name(cls, values: Mapping[str, Any], result: ConnectionResult | None = None) -> str:
        company = (result.details.get("accountName") if result else None) or values.get("company_domain") or ""
        return f"{cls.name} – {company}" if company else cls.name

    @classmethod
    def normalize(cls, values: dict[str, Any]) -> dict[str, Any]:
        domain = values.get("company_domain")
        if isinstance(domain, str):
            domain = domain.strip().lower()
            host = urlsplit(domain).hostname if "://" in domain else domain.split("/")[0]
            values["company_domain"] = (host or "").removesuffix(".pipedrive.com")
        return values

    @classmethod
    def check(cls, values: dict[str, Any], result: Validation) -> None:
        if not re.fullmatch(COMPANY_DOMAIN, values.get("company_domain") or ""):
            result.add_error(
                "company_domain", "Enter the part before .pipedrive.com, e.g. acme (letters, digits and -)."
            )

    @classmethod
    def endpoints(cls, settings: Mapping[str, Any], values: Mapping[str, Any]) -> dict[str, Any]:
        pattern = settings.get("PIPEDRIVE_API_URL") or DEFAULT_API_URL
        return {"api_url": pattern.replace("{companyDomain}", values.get("company_domain") or "").rstrip("/")}

    @classmethod
    def connect(
        cls, config: Mapping[str, Any], http: GuardedClient, deadline: float | None = None, **context: Any
    ) -> PipedriveAPI:
        api_url = config.get("api_url") or cls.endpoints({}, config)["api_url"]
        return PipedriveAPI(http, api_url, config["api_token"], deadline)

    @classmethod
    def test_connection(cls, config: dict[str, Any], http: GuardedClient) -> ConnectionResult:
        api = cls.connect(config, http, time.monotonic() + http.policy.total_timeout)
        me = api.expect(api.call("GET", "v1/users/me", retries=0), 200)
        if not isinstance(me, dict):
            raise CRMError("not_a_crm", "This address answered, but not like Pipedrive's API.")
        user = str(me.get("name") or me.get("email") or "")[:100]
        company = str(me.get("company_name") or "")[:100]
        domain = str(me.get("company_domain") or "")[:100]
        verified = ["Reached Pipedrive's API", f"The API token is valid (user {user})"]
        details = {"accountName": company or domain, "user": user, "companyDomain": domain}
        if domain and domain != config.get("company_domain"):
            message = (
                f"Connected as {user}, but the token belongs to company {company or domain} ({domain}.pipedrive.com),"
                f" not {config.get('company_domain')}. Change the company domain to {domain}."
            )
            details["warning"] = "company_mismatch"
            return ConnectionResult("ok", message, verified, details)
        verified.append(f"Company {company or domain}")
        return ConnectionResult("ok", f"Connected to Pipedrive ({company or domain}) as {user}.", verified, details)


# --- inbound webhooks (crm/webhooks) ----------------------------------------------------------------


def _pipedrive_verify_webhook(
    cls, user: str | None, password: str | None, headers: Mapping[str, str], body: bytes
) -> tuple[bool, bool, str | None]:
    """(accepted, verified, delivery key): Pipedrive signs nothing, so each subscription gets random
    HTTP Basic credentials, compared here in constant time (both parts, always)."""
    import base64
    import binascii
    import hmac

    if not user or not password:
        return False, False, None
    scheme, _, encoded = (headers.get("Authorization") or "").partition(" ")
    try:
        given = base64.b64decode(encoded.strip(), validate=True) if scheme.lower() == "basic" else b""
    except (binascii.Error, ValueError):
        given = b""
    given_user, _, given_password = given.partition(b":")
    user_ok = hmac.compare_digest(given_user, user.encode())
    password_ok = hmac.compare_digest(given_password, password.encode())
    if not (user_ok and password_ok):
        return False, False, None
    return True, True, None  # the key comes from the body (meta.id, else its hash)


Pipedrive.verify_webhook = classmethod(_pipedrive_verify_webhook)
