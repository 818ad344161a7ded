"""Zoho CRM: connected with OAuth 2.0 through the platform's server-based client, on the user's data
center. Contacts are upserted by email (100 per call, Zoho answering per record); a message is
recorded as a note on the contact. Every call carries `Authorization: Zoho-oauthtoken <token>`.

Where tokens and calls go is decided by Zoho's answers (the callback's `accounts-server`, the token
answer's `api_domain`), so both are accepted only from Zoho's own data-center list, or from the host
of the operator's ZOHO_ACCOUNTS_URL."""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, ClassVar
from urllib.parse import urlsplit

from crm.net import GuardedClient, Response
from crm.providers.base import (
    BIDI_CONTROLS,
    CONTROL_CHARACTERS,
    ConnectionResult,
    CRMError,
    Field,
    Provider,
)
from crm.providers.contract import (
    Connection,
    ContactData,
    ContactResult,
    Recorded,
    names_with_last,
    not_accepted,
    wait_before_retry,
)
from crm.providers.oauth import OAuthApp, RenewsOnce, oauth_token_fields
from crm.providers.registry import register

# Data center -> (accounts server, API domain). Zoho's multi-DC list; CA's accounts server is zohocloud.ca.
DATA_CENTERS = {
    "US": ("https://accounts.zoho.com", "https://www.zohoapis.com"),
    "EU": ("https://accounts.zoho.eu", "https://www.zohoapis.eu"),
    "IN": ("https://accounts.zoho.in", "https://www.zohoapis.in"),
    "AU": ("https://accounts.zoho.com.au", "https://www.zohoapis.com.au"),
    "JP": ("https://accounts.zoho.jp", "https://www.zohoapis.jp"),
    "CA": ("https://accounts.zohocloud.ca", "https://www.zohoapis.ca"),
    "SA": ("https://accounts.zoho.sa", "https://www.zohoapis.sa"),
    "UK": ("https://accounts.zoho.uk", "https://www.zohoapis.uk"),
    "CN": ("https://accounts.zoho.com.cn", "https://www.zohoapis.com.cn"),
}
DC_LABELS = (
    ("US", "United States (zoho.com)"),
    ("EU", "Europe (zoho.eu)"),
    ("IN", "India (zoho.in)"),
    ("AU", "Australia (zoho.com.au)"),
    ("JP", "Japan (zoho.jp)"),
    ("CA", "Canada (zohocloud.ca)"),
    ("SA", "Saudi Arabia (zoho.sa)"),
    ("UK", "United Kingdom (zoho.uk)"),
    ("CN", "China (zoho.com.cn)"),
)
ACCOUNTS_SERVERS = {accounts for accounts, _ in DATA_CENTERS.values()}
API_DOMAINS = {api for _, api in DATA_CENTERS.values()}
WRITE_LIMIT = 100  # records per insert/update/upsert call
RETRY_SECONDS = (1.0, 2.0, 4.0, 8.0)
RECONNECT = "Reconnect Zoho CRM on Dashboard → Integrations."


def plain(value: Any, limit: int = 100) -> str:
    text = BIDI_CONTROLS.sub("", CONTROL_CHARACTERS.sub("", str(value or "")))
    return text[:limit]


def trusted_origin(url: Any, allowed: set[str], override: str | None, what: str) -> str:
    """`url` as an origin when it is one of Zoho's (`allowed`) or on the operator's override host;
    else CRMError("invalid_url"): a forged address must not receive our client secret or tokens."""
    refused = CRMError("invalid_url", f"Zoho answered with an {what} outside Zoho's data centers, so it was refused.")
    if not isinstance(url, str) or len(url) > 255 or any(c.isspace() or c == "\\" for c in url):
        raise refused
    parts = urlsplit(url.strip())
    if parts.username or parts.password or parts.query or parts.fragment or parts.path not in ("", "/"):
        raise refused
    origin = f"{parts.scheme.lower()}://{parts.netloc.lower()}"
    if origin in allowed:
        return origin
    if override:
        expected = urlsplit(override)
        if (
            parts.scheme.lower() == expected.scheme.lower()
            and (parts.hostname or "") == (expected.hostname or "").lower()
        ):
            return origin
    raise refused


def contact_record(contact: ContactData, remote_id: str | None = None) -> dict[str, Any]:
    first, last = names_with_last(contact)  # Last_Name is mandatory
    record: dict[str, Any] = {"id": remote_id} if remote_id else {}
    record.update(Last_Name=last[:80])
    if first:
        record["First_Name"] = first[:40]
    if contact.email:
        record["Email"] = contact.email.strip().lower()
    if contact.phone:
        record["Phone"] = contact.phone[:30]
    return record


def record_problem(answer: Mapping[str, Any]) -> str:
    code = str(answer.get("code") or "")
    details = answer.get("details") if isinstance(answer.get("details"), dict) else {}
    field = plain(details.get("api_name"), 40)
    if code == "MANDATORY_NOT_FOUND":
        return f"Zoho CRM requires {field or 'a field'}, which this contact lacks."
    if code == "INVALID_DATA" and field == "Email":
        return "Zoho CRM refused the email address."
    if code == "INVALID_DATA":
        return f"Zoho CRM refused a value ({field or 'a field'})."
    if code == "DUPLICATE_DATA":
        return "Another Zoho CRM contact already has this email."
    shown = code if re.fullmatch(r"[A-Z_]{1,60}", code) else "an error"
    return f"Zoho CRM did not accept this contact ({shown})."


def error_code(response: Response) -> str:
    body = response.json()
    code = body.get("code") if isinstance(body, dict) else None
    return code if isinstance(code, str) and re.fullmatch(r"[A-Z_]{1,60}", code) else ""


def error_for(response: Response) -> CRMError:
    code = error_code(response)
    if response.status == 401 and code == "OAUTH_SCOPE_MISMATCH":
        return CRMError(
            "insufficient_permissions",
            f"Zoho CRM refused this for the access the connection was granted. {RECONNECT}",
        )
    if response.status == 401:
        return CRMError("auth_failed", f"Zoho CRM no longer accepts this connection's token. {RECONNECT}")
    if response.status == 403:
        return CRMError(
            "insufficient_permissions",
            "The connected Zoho CRM user may not do this: their profile needs API access and permission "
            "to read, create and edit contacts and notes.",
        )
    if response.status == 404:
        return CRMError("not_a_crm", "This address answered, but not like Zoho CRM's API.")
    return not_accepted(response, "Zoho CRM", code)


class ZohoAPI(RenewsOnce, Connection):
    batch_size = WRITE_LIMIT
    concurrency = 2  # Zoho allows 5 to 25 concurrent calls per org, 10 for bulk writes

    def __init__(
        self,
        http: GuardedClient,
        api_domain: str,
        token: str,
        deadline: float | None = None,
        renew: Callable[[], Mapping[str, Any]] | None = None,
    ):
        self.http = http
        self.api_domain = api_domain.rstrip("/")
        self.token = token
        self.deadline = deadline
        self.renew = renew  # gives a live configuration with a refreshed token, after a 401
        self.renewed = False

    def call(self, method: str, path: str, *, json: Any = None, retries: int = 4) -> Response:
        """One call: an expired token is refreshed once (when the caller can); 429 is waited out with
        growing pauses within the deadline (Zoho sends no rate-limit headers to go by)."""
        for attempt in range(retries + 1):
            headers = {"Authorization": f"Zoho-oauthtoken {self.token}", "Accept": "application/json"}
            url = f"{self.api_domain}/crm/v8/{path.lstrip('/')}"
            response = self.http.request(method, url, headers=headers, json=json, deadline=self.deadline)
            expired = response.status == 401 and error_code(response) in ("INVALID_TOKEN", "AUTHENTICATION_FAILURE")
            if expired and self.renew_token():
                continue
            if response.status == 429 and attempt < retries:
                wait_before_retry(retry_after(response, attempt), self.deadline, "Zoho CRM")
                continue
            return response
        return response

    def expect(self, response: Response, *ok: int) -> Any:
        body = response.json()
        if response.status in ok and isinstance(body, dict):
            return body
        raise error_for(response)

    # --- contacts --------------------------------------------------------------------------------

    def upsert_contacts(self, batch: Sequence[ContactData]) -> list[ContactResult]:
        results: dict[str, ContactResult] = {}
        known: list[ContactData] = []
        others: list[ContactData] = []
        emails: set[str] = set()
        for contact in batch:
            email = (contact.email or "").strip().lower()
            if contact.remote_id:
                known.append(contact)
            elif email and email in emails:
                results[contact.key] = ContactResult.failed(
                    contact.key, "Another of your contacts has the same email; Zoho CRM keeps one contact per email."
                )
            else:
                emails.add(email)
                others.append(contact)
        gone: list[ContactData] = []
        for contact, answer in self._write("PUT", "Contacts", known):
            if isinstance(answer, ContactResult):
                results[contact.key] = answer
            elif answer.get("status") == "success":
                results[contact.key] = ContactResult(contact.key, "updated", contact.remote_id)
            elif answer.get("code") == "INVALID_DATA" and (answer.get("details") or {}).get("api_name") == "id":
                gone.append(contact)  # deleted in Zoho since: upsert it again
            else:
                results[contact.key] = ContactResult.failed(contact.key, record_problem(answer))
        again = [ContactData(c.key, c.name, c.email, c.phone, None) for c in gone]
        for contact, answer in self._write("POST", "Contacts/upsert", others + again):
            if isinstance(answer, ContactResult):
                results[contact.key] = answer
                continue
            record_id = (answer.get("details") or {}).get("id")
            if answer.get("status") == "success" and record_id:
                kind = "created" if answer.get("action") == "insert" else "updated"
                results[contact.key] = ContactResult(contact.key, kind, str(record_id))
            else:
                results[contact.key] = ContactResult.failed(contact.key, record_problem(answer))
        return [results[c.key] for c in batch]

    def _write(self, method: str, path: str, contacts: list[ContactData]) -> list[tuple[ContactData, Any]]:
        """(contact, Zoho's answer for its record) for each contact, 100 per call; a whole-call
        failure answers a failed ContactResult for each contact of that call."""
        answers: list[tuple[ContactData, Any]] = []
        for start in range(0, len(contacts), WRITE_LIMIT):
            chunk = contacts[start : start + WRITE_LIMIT]
            body: dict[str, Any] = {
                "data": [contact_record(c, c.remote_id if method == "PUT" else None) for c in chunk]
            }
            if method == "POST":
                body["duplicate_check_fields"] = ["Email"]
            response = self.call(method, path, json=body)
            data = (response.json() or {}).get("data") if isinstance(response.json(), dict) else None
            if response.status in (200, 201, 202, 207, 400) and isinstance(data, list) and len(data) == len(chunk):
                answers += [(c, a if isinstance(a, dict) else {}) for c, a in zip(chunk, data, strict=True)]
                continue
            error = error_for(response)
            if error.outcome in ("auth_failed", "insufficient_permissions"):
                raise error
            answers += [(c, ContactResult.failed(c.key, error.message)) for c in chunk]
        return answers

    # --- messages --------------------------------------------------------------------------------

    def record_message(self, contact: ContactData, text: str) -> Recorded:
        title = text.strip().splitlines()[0] if text.strip() else "Message"
        title = title if len(title) <= 80 else title[:79] + "…"
        body = {"data": [{"Note_Title": title, "Note_Content": text}]}
        answer = self.expect(self.call("POST", f"Contacts/{contact.remote_id}/Notes", json=body), 200, 201)
        data = answer.get("data")
        first = data[0] if isinstance(data, list) and data and isinstance(data[0], dict) else {}
        note_id = (first.get("details") or {}).get("id") if first.get("status") == "success" else None
        if not note_id:
            raise CRMError("not_a_crm", "Zoho CRM did not confirm the note.")
        return Recorded("note", str(note_id), {"contactId": contact.remote_id})


def retry_after(response: Response, attempt: int) -> float:
    try:
        return min(max(float(response.headers.get("Retry-After") or 0), RETRY_SECONDS[min(attempt, 3)]), 60.0)
    except ValueError:
        return RETRY_SECONDS[min(attempt, 3)]


@register
class ZohoCRM(Provider):
    id = "ZOHO"
    name = "Zoho CRM"
    description = "Zoho CRM: contacts sync, messages recorded as notes. Connect with Zoho (OAuth)."
    icon = "zoho.svg"
    features = ("contacts", "notes", "oauth")
    requires_oauth = True
    docs_url = "https://www.zoho.com/crm/developer/docs/api/v8/oauth-overview.html"
    oauth_app: ClassVar[OAuthApp] = OAuthApp(
        "ZOHO_CLIENT_ID",
        "ZOHO_CLIENT_SECRET",
        scopes=("ZohoCRM.modules.contacts.ALL", "ZohoCRM.modules.notes.ALL", "ZohoCRM.users.READ", "ZohoCRM.org.READ"),
        # offline + consent: a refresh token every time, also for a user who connected before.
        extra_authorize_params={"access_type": "offline", "prompt": "consent"},
        scope_separator=",",
    )
    config_fields = (
        Field(
            "data_center",
            "Data center",
            type="select",
            required=True,
            default="US",
            choices=DC_LABELS,
            help="Where your Zoho account lives: the domain you sign in at, e.g. crm.zoho.eu is Europe.",
        ),
        Field("accounts_server", "Accounts server", type="url", oauth_token=True),
        Field("api_domain", "API domain", type="url", oauth_token=True),
        *oauth_token_fields(),
    )
    advice_table: ClassVar[Mapping[str, tuple[str, ...]]] = {
        "auth_failed": (
            "Press Reconnect on the card and sign in to Zoho again.",
            "A Zoho user keeps at most 20 refresh tokens per app: connecting more often than that ends the "
            "oldest connection.",
        ),
        "insufficient_permissions": (
            "The connected user's profile needs API access and permission to read, create and edit Contacts "
            "and Notes (Setup → Users and Control → Security Control → Profiles).",
            "Reconnect and accept every permission Zoho asks for.",
        ),
        "rate_limited": (
            "Zoho CRM limits API credits per 24 hours and calls in flight per org: wait a few minutes, then "
            "test again.",
        ),
        "invalid_url": ("Zoho named an address outside its data centers: connect again.",),
        "server_error": ("Check status.zoho.com for incidents in your data center, then test again.",),
    }

    # --- OAuth (crm.providers.oauth) ---------------------------------------------------------------

    @classmethod
    def override(cls, settings: Mapping[str, Any]) -> str | None:
        return str(settings.get("ZOHO_ACCOUNTS_URL") or "").strip().rstrip("/") or None

    @classmethod
    def accounts_url(cls, settings: Mapping[str, Any], values: Mapping[str, Any]) -> str:
        """The accounts server: the operator's, else the one Zoho's callback named (checked), else the
        data center's."""
        override = cls.override(settings)
        stored = values.get("accounts_server")
        if stored:
            return trusted_origin(stored, ACCOUNTS_SERVERS, override, "accounts server")
        if override:
            return override
        return DATA_CENTERS.get(str(values.get("data_center") or "US"), DATA_CENTERS["US"])[0]

    @classmethod
    def authorize_url(cls, settings: Mapping[str, Any], values: Mapping[str, Any]) -> str:
        override = cls.override(settings)
        accounts = override or DATA_CENTERS.get(str(values.get("data_center") or "US"), DATA_CENTERS["US"])[0]
        return f"{accounts}/oauth/v2/auth"

    @classmethod
    def token_url(cls, settings: Mapping[str, Any], values: Mapping[str, Any]) -> str:
        return f"{cls.accounts_url(settings, values)}/oauth/v2/token"

    @classmethod
    def revoke_url(cls, settings: Mapping[str, Any], values: Mapping[str, Any]) -> str:
        return f"{cls.accounts_url(settings, values)}/oauth/v2/token/revoke"

    @classmethod
    def accept_token_answer(
        cls,
        settings: Mapping[str, Any],
        values: Mapping[str, Any],
        answer: Mapping[str, Any],
        callback_params: Mapping[str, Any],
    ) -> dict[str, Any]:
        override = cls.override(settings)
        accepted: dict[str, Any] = {}
        server = callback_params.get("accounts-server")
        if server is not None:
            accepted["accounts_server"] = trusted_origin(server, ACCOUNTS_SERVERS, override, "accounts server")
        domain = answer.get("api_domain")
        if domain is None:  # a refresh answer may leave it out: keep the stored one, else the DC's
            domain = (
                values.get("api_domain")
                or DATA_CENTERS.get(str(values.get("data_center") or "US"), DATA_CENTERS["US"])[1]
            )
        accepted["api_domain"] = trusted_origin(domain, API_DOMAINS, override, "API domain")
        for center, (accounts, _) in DATA_CENTERS.items():
            if accepted.get("accounts_server") == accounts:
                accepted["data_center"] = center  # the account lives there, whatever was picked
        return accepted

    # --- operations --------------------------------------------------------------------------------

    @classmethod
    def endpoints(cls, settings: Mapping[str, Any], values: Mapping[str, Any]) -> dict[str, Any]:
        override = cls.override(settings)
        return {"accounts_override": override} if override else {}

    @classmethod
    def connect(
        cls, config: Mapping[str, Any], http: GuardedClient, deadline: float | None = None, **context: Any
    ) -> ZohoAPI:
        """`context["renew"]`, when given, answers a live configuration with a refreshed access token
        (crm.providers.oauth.refresh_after_401 bound to the integration): used once, after a 401."""
        if not config.get("access_token") or not config.get("api_domain"):
            raise CRMError("auth_failed", f"This Zoho CRM connection has no token yet. {RECONNECT}")
        domain = trusted_origin(config["api_domain"], API_DOMAINS, config.get("accounts_override"), "API domain")
        return ZohoAPI(http, domain, str(config["access_token"]), deadline, context.get("renew"))

    @classmethod
    def test_connection(cls, config: dict[str, Any], http: GuardedClient) -> ConnectionResult:
        api = cls.connect(config, http, time.monotonic() + http.policy.total_timeout)
        users = api.expect(api.call("GET", "users?type=CurrentUser", retries=0), 200).get("users")
        user_info = users[0] if isinstance(users, list) and users and isinstance(users[0], dict) else None
        if user_info is None:
            raise CRMError("not_a_crm", "This address answered, but not like Zoho CRM's API.")
        user = plain(user_info.get("email") or user_info.get("full_name"))
        verified = [f"Reached Zoho CRM at {urlsplit(api.api_domain).hostname}", f"Signed in as {user}"]
        org_name = ""
        org_answer = api.call("GET", "org", retries=0)
        orgs = (
            (org_answer.json() or {}).get("org")
            if org_answer.status == 200 and isinstance(org_answer.json(), dict)
            else None
        )
        if isinstance(orgs, list) and orgs and isinstance(orgs[0], dict):
            org_name = plain(orgs[0].get("company_name") or orgs[0].get("domain_name"))
            verified.append(f"Organization {org_name}")
        details = {"accountName": org_name, "user": user}
        where = f" organization {org_name}" if org_name else ""
        return ConnectionResult("ok", f"Connected to Zoho CRM{where} as {user}.", verified, details)

    @classmethod
    def card_lines(cls, config_summary: Mapping[str, Any]) -> list[str]:
        center = str(config_summary.get("data_center") or "")
        label = dict(DC_LABELS).get(center)
        return [f"Data center: {label}"] if label else []

    @classmethod
    def default_name(cls, values: Mapping[str, Any], result: ConnectionResult | None = None) -> str:
        org = (result.details.get("accountName") if result else None) or ""
        return f"{cls.name} – {org}" if org else cls.name


# --- inbound webhooks (crm/webhooks) ----------------------------------------------------------------


def _zoho_verify_webhook(
    cls, token: str | None, channel_id: str | None, body: bytes
) -> tuple[bool, bool, str | None]:
    """(accepted, verified, delivery key): Zoho signs nothing; the notification echoes the `token` we
    set on the watch channel and its `channel_id`. Both must match (compared in constant time)."""
    import hmac
    import json

    if not token or not channel_id:
        return False, False, None
    try:
        payload = json.loads(body)
    except ValueError:
        return False, False, None
    if not isinstance(payload, dict):
        return False, False, None
    token_ok = hmac.compare_digest(str(payload.get("token") or "").encode(), token.encode())
    channel_ok = hmac.compare_digest(str(payload.get("channel_id") or "").encode(), channel_id.encode())
    return (True, True, None) if token_ok and channel_ok else (False, False, None)


ZohoCRM.verify_webhook = classmethod(_zoho_verify_webhook)
