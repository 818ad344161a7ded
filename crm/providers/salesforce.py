"""Salesforce: connected with OAuth 2.0 (web-server flow + PKCE, through the platform's External Client
App). Contacts are found by email with SOQL and written with sObject Collections (200 per call);
a message is recorded as a Task on the contact.

The token answer names the org's `instance_url`: every later call goes there, so it is accepted only
on Salesforce's own domains (or the operator's SALESFORCE_LOGIN_URL host): a token answer must not
be able to steer our calls, and the access token with them, elsewhere."""

from __future__ import annotations

import json as jsonlib
import re
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, ClassVar
from urllib.parse import quote, urlsplit

from crm.net import GuardedClient, Response
from crm.providers.base import (
    BIDI_CONTROLS,
    CONTROL_CHARACTERS,
    ConnectionResult,
    CRMError,
    Field,
    Provider,
    Validation,
)
from crm.providers.contract import (
    Connection,
    ContactData,
    ContactResult,
    FatalCRMError,
    Recorded,
    names_with_last,
    not_accepted,
    wait_before_retry,
)
from crm.providers.oauth import OAuthApp, RenewsOnce, oauth_token_fields
from crm.providers.registry import register

DEFAULT_API_VERSION = "62.0"  # Winter '25; SALESFORCE_API_VERSION overrides it
LOGIN_URLS = {"production": "https://login.salesforce.com", "sandbox": "https://test.salesforce.com"}
SALESFORCE_DOMAINS = (".salesforce.com", ".force.com")
COLLECTION_LIMIT = 200  # records per sObject Collections call
QUERY_LIMIT = 200  # emails per SOQL IN-list
MAX_QUERY_URL = 15_000  # characters of an encoded query, under Salesforce's 16 KB URI limit
FIELD_LIMITS = {"FirstName": 40, "LastName": 80, "Phone": 40}
GONE = {"ENTITY_IS_DELETED", "INVALID_CROSS_REFERENCE_KEY", "MALFORMED_ID", "NOT_FOUND", "INVALID_ID_FIELD"}
SOQL_ESCAPES = {"\\": "\\\\", "'": "\\'", '"': '\\"', "\n": "\\n", "\r": "\\r", "\t": "\\t", "\b": "\\b", "\f": "\\f"}
RECONNECT = "Reconnect Salesforce on Dashboard → Integrations."


def soql_string(value: str) -> str:
    """A SOQL string literal: backslash, quotes and control characters escaped (SOQL reference,
    "Quoted String Escape Sequences"), so no value can end the literal or change the query."""
    return "'" + "".join(SOQL_ESCAPES.get(char, char) for char in value) + "'"


def plain(value: Any, limit: int = 100) -> str:
    """CRM-supplied text fit to show: no control or direction characters, at most `limit` long."""
    text = BIDI_CONTROLS.sub("", CONTROL_CHARACTERS.sub("", str(value or "")))
    return text[:limit]


def trusted_instance(url: Any, override: str | None) -> str:
    """`url` as `https://host` when it is a Salesforce instance (or on the operator's login host);
    else CRMError("invalid_url")."""
    refused = CRMError(
        "invalid_url",
        "Salesforce answered with an instance address outside salesforce.com and force.com, so it was "
        "refused and nothing was saved.",
    )
    if not isinstance(url, str) or len(url) > 255 or any(c.isspace() or c == "\\" for c in url):
        raise refused
    parts = urlsplit(url)
    try:
        port = parts.port
    except ValueError:
        raise refused from None
    host = (parts.hostname or "").lower()
    if parts.username or parts.password or parts.query or parts.fragment or parts.path not in ("", "/"):
        raise refused
    if override:
        allowed = urlsplit(override)
        if parts.scheme == allowed.scheme and host == (allowed.hostname or "").lower():
            return f"{parts.scheme}://{parts.netloc.lower()}"
    if parts.scheme != "https" or port not in (None, 443) or not host.endswith(SALESFORCE_DOMAINS):
        raise refused
    if not re.fullmatch(r"[a-z0-9.-]+", host) or ".." in host:
        raise refused
    return f"https://{host}"


def contact_record(contact: ContactData, remote_id: str | None = None) -> tuple[dict[str, Any], bool]:
    """The Contact sObject, and whether a value had to be shortened to fit Salesforce's field."""
    first, last = names_with_last(contact)  # LastName is required
    values = {"FirstName": first, "LastName": last, "Email": (contact.email or "").strip().lower() or None}
    values["Phone"] = contact.phone or None
    shortened = False
    for name, limit in FIELD_LIMITS.items():
        if values.get(name) and len(values[name]) > limit:
            values[name], shortened = values[name][:limit], True
    record: dict[str, Any] = {"attributes": {"type": "Contact"}}
    if remote_id:
        record["id"] = remote_id
    record.update({k: v for k, v in values.items() if v is not None})
    return record, shortened


def record_problem(errors: Any) -> tuple[str, str]:
    """(statusCode, our words) for one failed record of a collection answer."""
    first = errors[0] if isinstance(errors, list) and errors and isinstance(errors[0], dict) else {}
    code = str(first.get("statusCode") or "")
    code = code if re.fullmatch(r"[A-Z_]{1,60}", code) else "UNKNOWN"
    fields = ", ".join(plain(f, 40) for f in (first.get("fields") or [])[:3] if isinstance(f, str))
    words = {
        "REQUIRED_FIELD_MISSING": f"Salesforce requires a value for {fields or 'a field'} that this contact lacks.",
        "INVALID_EMAIL_ADDRESS": "Salesforce refused the email address.",
        "STRING_TOO_LONG": f"A value is longer than Salesforce allows ({fields or 'a field'}).",
        "DUPLICATES_DETECTED": "A Salesforce duplicate rule blocked this contact.",
        "INSUFFICIENT_ACCESS_OR_READONLY": "The connected user may not create or edit this contact.",
        "FIELD_CUSTOM_VALIDATION_EXCEPTION": "A validation rule in your Salesforce org refused this contact.",
    }
    return code, words.get(code, f"Salesforce did not accept this contact ({code}).")


def first_error(response: Response) -> tuple[str, str]:
    """(errorCode, message) of a REST error answer, an array of {message, errorCode}."""
    body = response.json()
    item = body[0] if isinstance(body, list) and body and isinstance(body[0], dict) else {}
    if isinstance(body, dict):
        item = body
    code = str(item.get("errorCode") or item.get("error") or "")
    return (code if re.fullmatch(r"[A-Za-z_]{1,60}", code) else ""), plain(item.get("message"), 200)


def session_expired(response: Response) -> bool:
    """A 401 on /services/data, or userinfo's 403 Bad_OAuth_Token: the access token is no good."""
    if response.status == 401:
        return True
    return response.status == 403 and response.body[:40].strip() == b"Bad_OAuth_Token"


def error_for(response: Response, api_version: str = DEFAULT_API_VERSION) -> CRMError:
    code, message = first_error(response)
    if session_expired(response):
        return CRMError("auth_failed", f"Salesforce no longer accepts this connection's session. {RECONNECT}")
    if response.status == 403:
        if code == "REQUEST_LIMIT_EXCEEDED":
            return CRMError("rate_limited", "Salesforce's API request limit for this org is used up for now.")
        if code == "API_DISABLED_FOR_ORG" or "API is not enabled" in message:
            return CRMError(
                "insufficient_permissions",
                "Salesforce answered that API access is not enabled for this org or user. It needs an edition "
                "with API access and the API Enabled permission for the connected user.",
            )
        return CRMError(
            "insufficient_permissions",
            "The connected Salesforce user may not do this (Read, Create and Edit on Contacts and Tasks are needed).",
        )
    if response.status == 404:
        return CRMError(
            "not_a_crm",
            f"This Salesforce org does not offer API version {api_version} (SALESFORCE_API_VERSION): "
            "tell the operator.",
        )
    return not_accepted(response, "Salesforce", code)


class SalesforceAPI(RenewsOnce, Connection):
    batch_size = COLLECTION_LIMIT
    concurrency = 2  # long-running requests count against 25 concurrent per org

    def __init__(
        self,
        http: GuardedClient,
        instance_url: str,
        token: str,
        api_version: str = DEFAULT_API_VERSION,
        deadline: float | None = None,
        renew: Callable[[], Mapping[str, Any]] | None = None,
    ):
        self.http = http
        self.instance_url = instance_url.rstrip("/")
        self.token = token
        self.api_version = api_version
        self.deadline = deadline
        self.renew = renew  # gives a live configuration with a refreshed token, after a 401
        self.renewed = False

    @property
    def data_path(self) -> str:
        return f"/services/data/v{self.api_version}"

    # --- transport -------------------------------------------------------------------------------

    def call(self, method: str, path: str, *, json: Any = None, retries: int = 3) -> Response:
        """One call. An expired session is refreshed once (when the caller can); the daily API limit
        ends the run; a concurrency limit (also REQUEST_LIMIT_EXCEEDED) is waited out."""
        for attempt in range(retries + 1):
            headers = {"Authorization": f"Bearer {self.token}", "Accept": "application/json"}
            url = self.instance_url + path
            response = self.http.request(method, url, headers=headers, json=json, deadline=self.deadline)
            if session_expired(response) and self.renew_token():
                continue
            if response.status == 403 and first_error(response)[0] == "REQUEST_LIMIT_EXCEEDED":
                if "TotalRequests" in first_error(response)[1] or attempt == retries:
                    raise FatalCRMError(
                        "rate_limited",
                        "Salesforce's daily API request limit for this org is used up. The sync stops here and "
                        "can continue when the org's rolling 24-hour allowance frees up.",
                    )
                wait_before_retry(2.0 * (attempt + 1), self.deadline, "Salesforce")
                continue
            if response.status == 429 and attempt < retries:
                wait_before_retry(2.0 * (attempt + 1), self.deadline, "Salesforce")
                continue
            return response
        return response

    def expect(self, response: Response, *ok: int) -> Any:
        if response.status in ok:
            body = response.json()
            if body is None:
                raise CRMError("not_a_crm", "This address answered, but not like Salesforce's API.")
            return body
        raise error_for(response, self.api_version)

    # --- contacts --------------------------------------------------------------------------------

    def find_by_email(self, emails: list[str]) -> dict[str, str]:
        """Existing contacts' ids by lower-cased email, with SOQL IN-lists of at most 200 emails.

        200 emails make a query URL of some 7 KB, longer than crm.net lets a URL be (4 KB), so each
        query travels inside a Composite API request (one API call, like the GET it carries)."""
        found: dict[str, str] = {}
        chunk: list[str] = []
        length = len(self._soql([]))
        for email in emails:
            size = len(quote(soql_string(email), safe="")) + 3  # and an encoded comma
            if chunk and (len(chunk) >= QUERY_LIMIT or length + size > MAX_QUERY_URL):
                self._query_into(chunk, found)
                chunk, length = [], len(self._soql([]))
            chunk.append(email)
            length += size
        if chunk:
            self._query_into(chunk, found)
        return found

    def _soql(self, emails: list[str]) -> str:
        literals = ",".join(soql_string(e) for e in emails)  # each escaped: no value can leave its literal
        soql = f"SELECT Id, Email FROM Contact WHERE Email IN ({literals})"  # noqa: S608  # nosec B608  # escaped
        return quote(soql, safe="")

    def _query_into(self, emails: list[str], found: dict[str, str]) -> None:
        query = {"method": "GET", "url": f"{self.data_path}/query?q={self._soql(emails)}", "referenceId": "emails"}
        answer = self.expect(
            self.call("POST", f"{self.data_path}/composite", json={"allOrNone": False, "compositeRequest": [query]}),
            200,
        )
        parts = answer.get("compositeResponse") if isinstance(answer, dict) else None
        part = parts[0] if isinstance(parts, list) and parts and isinstance(parts[0], dict) else {}
        body = part.get("body")
        if part.get("httpStatusCode") != 200 or not isinstance(body, dict):
            status = part.get("httpStatusCode") if isinstance(part.get("httpStatusCode"), int) else 502
            inner = Response(status, {"Content-Type": "application/json"}, jsonlib.dumps(body).encode(), "")
            raise error_for(inner, self.api_version)
        for _ in range(50):  # pages of 2,000 records; duplicates in the org could make a few
            for record in body.get("records") or []:
                if isinstance(record, dict) and record.get("Id") and record.get("Email"):
                    found.setdefault(str(record["Email"]).lower(), str(record["Id"]))
            following = body.get("nextRecordsUrl")
            if body.get("done", True) or not isinstance(following, str):
                return
            if not re.fullmatch(r"/services/data/v[\d.]+/query/[\w-]{1,100}", following):
                return
            body = self.expect(self.call("GET", following), 200)
            if not isinstance(body, dict):
                return

    def upsert_contacts(self, batch: Sequence[ContactData]) -> list[ContactResult]:
        results: dict[str, ContactResult] = {}
        known: list[tuple[ContactData, str]] = []
        by_email: dict[str, ContactData] = {}
        without_email: list[ContactData] = []
        for contact in batch:
            email = (contact.email or "").strip().lower()
            if contact.remote_id:
                known.append((contact, contact.remote_id))
            elif email and email in by_email:
                results[contact.key] = ContactResult.failed(
                    contact.key, "Another of your contacts has the same email; it is synced to one Salesforce contact."
                )
            elif email:
                by_email[email] = contact
            else:
                without_email.append(contact)
        updated = self._write("PATCH", known)
        gone = [c for c, _ in known if updated[c.key] is None]
        results.update({k: r for k, r in updated.items() if r is not None})
        for contact in gone:  # deleted in Salesforce since: find it by email or make it again
            email = (contact.email or "").strip().lower()
            if email and email not in by_email:
                by_email[email] = contact
            elif not email:
                without_email.append(contact)
            else:
                results[contact.key] = ContactResult.failed(contact.key, "Another of your contacts has the same email.")
        existing = self.find_by_email(list(by_email)) if by_email else {}
        matched = [(c, existing[e]) for e, c in by_email.items() if e in existing]
        for key, result in self._write("PATCH", matched).items():
            results[key] = result or ContactResult.failed(key, "The Salesforce contact was deleted during the sync.")
        new = [(c, None) for e, c in by_email.items() if e not in existing] + [(c, None) for c in without_email]
        results.update(self._write("POST", new))
        return [results[c.key] for c in batch]

    def _write(self, method: str, items: list[tuple[ContactData, str | None]]) -> dict[str, ContactResult | None]:
        """Create (POST) or update (PATCH) through sObject Collections, 200 per call. An update of a
        record Salesforce no longer has answers None for that contact."""
        results: dict[str, ContactResult | None] = {}
        for start in range(0, len(items), COLLECTION_LIMIT):
            chunk = items[start : start + COLLECTION_LIMIT]
            built = [contact_record(contact, remote_id) for contact, remote_id in chunk]
            payload = {"allOrNone": False, "records": [record for record, _ in built]}
            response = self.call(method, f"{self.data_path}/composite/sobjects", json=payload)
            answers = response.json() if response.status == 200 else None
            if not isinstance(answers, list) or len(answers) != len(chunk):
                error = error_for(response, self.api_version) if response.status != 200 else None
                if error is not None and error.outcome in ("auth_failed", "insufficient_permissions"):
                    raise error
                message = error.message if error else "Salesforce answered this batch unexpectedly."
                results.update({c.key: ContactResult.failed(c.key, message) for c, _ in chunk})
                continue
            for (contact, remote_id), (_, shortened), answer in zip(chunk, built, answers, strict=True):
                answer = answer if isinstance(answer, dict) else {}
                if answer.get("success") and (answer.get("id") or remote_id):
                    kind = "updated" if method == "PATCH" else "created"
                    note = "The name was shortened to fit Salesforce's field." if shortened else None
                    results[contact.key] = ContactResult(
                        contact.key, kind, str(answer.get("id") or remote_id), note=note
                    )
                    continue
                code, words = record_problem(answer.get("errors"))
                results[contact.key] = (
                    None if method == "PATCH" and code in GONE else ContactResult.failed(contact.key, words)
                )
        return results

    # --- messages --------------------------------------------------------------------------------

    def record_message(self, contact: ContactData, text: str) -> Recorded:
        subject = text.strip().splitlines()[0] if text.strip() else "Message"
        subject = subject if len(subject) <= 80 else subject[:79] + "…"
        task = {
            "WhoId": contact.remote_id,
            "Subject": subject,
            "Description": text[:32000],
            "Status": "Completed",
            "ActivityDate": datetime.now(UTC).strftime("%Y-%m-%d"),
            "TaskSubtype": "Task",
        }
        body = self.expect(self.call("POST", f"{self.data_path}/sobjects/Task", json=task), 200, 201)
        if not isinstance(body, dict) or not body.get("id"):
            raise CRMError("not_a_crm", "Salesforce did not confirm the task.")
        return Recorded("task", str(body["id"]), {"contactId": contact.remote_id, "recordedAs": "a task in Salesforce"})


@register
class Salesforce(Provider):
    id = "SALESFORCE"
    name = "Salesforce"
    description = "Enterprise CRM: contacts sync, messages recorded as tasks. Connect with Salesforce (OAuth)."
    icon = "salesforce.svg"
    features = ("contacts", "notes", "oauth")
    requires_oauth = True
    docs_url = "https://help.salesforce.com/s/articleView?id=sf.remoteaccess_oauth_web_server_flow.htm"
    oauth_app: ClassVar[OAuthApp] = OAuthApp(
        "SALESFORCE_CLIENT_ID",
        "SALESFORCE_CLIENT_SECRET",
        scopes=("api", "refresh_token", "id"),
        default_token_lifetime=7200,  # no expires_in: the org's session timeout, 2 hours by default
    )
    config_fields = (
        Field(
            "environment",
            "Salesforce environment",
            type="select",
            required=True,
            default="production",
            choices=(("production", "Production"), ("sandbox", "Sandbox"), ("my_domain", "My Domain URL")),
            help="Where you sign in: login.salesforce.com (Production), test.salesforce.com (Sandbox), or your "
            "org's My Domain.",
        ),
        Field(
            "my_domain_url",
            "My Domain URL",
            type="url",
            max_length=255,
            placeholder="https://acme.my.salesforce.com",
            help="Setup → My Domain, e.g. https://acme.my.salesforce.com.",
            shown_when=("environment", ("my_domain",)),
        ),
        Field("instance_url", "Instance URL", type="url", oauth_token=True),
        *oauth_token_fields(),
    )
    advice_table: ClassVar[Mapping[str, tuple[str, ...]]] = {
        "auth_failed": (
            "Press Reconnect on the card and sign in to Salesforce again.",
            "An admin may have revoked the app's access, or set its refresh tokens to expire (Setup → External "
            "Client App Manager → Policies).",
        ),
        "insufficient_permissions": (
            "The connected user needs the API Enabled permission (profile or permission set), in an edition "
            "with API access (Enterprise, Unlimited, Developer or Performance).",
            "Contacts sync needs Read, Create and Edit on Contacts; messages need Create on Tasks.",
        ),
        "rate_limited": (
            "Salesforce counts API requests per org over 24 hours (Setup → Company Information → API Requests, "
            "Last 24 Hours): wait, or ask your admin about the org's allowance.",
        ),
        "not_a_crm": ("The platform's Salesforce API version (SALESFORCE_API_VERSION) may not exist in your org.",),
        "invalid_url": ("Salesforce named an instance outside salesforce.com and force.com: connect again.",),
        "server_error": ("Check trust.salesforce.com for incidents on your instance, then test again.",),
    }

    # --- fields ------------------------------------------------------------------------------------

    @classmethod
    def normalize(cls, values: dict[str, Any]) -> dict[str, Any]:
        url = values.get("my_domain_url")
        if isinstance(url, str) and url:
            host = (urlsplit(url).hostname or "").lower()
            # The Lightning address people copy from the browser names the same My Domain.
            host = re.sub(r"\.lightning\.force\.com$", ".my.salesforce.com", host)
            values["my_domain_url"] = f"https://{host}"
        return values

    @classmethod
    def check(cls, values: dict[str, Any], result: Validation) -> None:
        if values.get("environment") != "my_domain":
            return
        url = values.get("my_domain_url")
        host = urlsplit(url).hostname if url else ""
        if not url:
            result.add_error("my_domain_url", "My Domain URL is required for a My Domain sign-in.")
        elif not re.fullmatch(r"[a-z0-9-]+(\.[a-z0-9-]+)*\.my\.salesforce\.com", host or ""):
            result.add_error("my_domain_url", "Enter your org's My Domain, e.g. https://acme.my.salesforce.com.")

    # --- OAuth (crm.providers.oauth) ---------------------------------------------------------------

    @classmethod
    def login_url(cls, settings: Mapping[str, Any], values: Mapping[str, Any]) -> str:
        override = str(settings.get("SALESFORCE_LOGIN_URL") or "").strip().rstrip("/")
        if override:
            return override
        if values.get("environment") == "my_domain" and values.get("my_domain_url"):
            return str(values["my_domain_url"]).rstrip("/")
        return LOGIN_URLS.get(str(values.get("environment") or ""), LOGIN_URLS["production"])

    @classmethod
    def authorize_url(cls, settings: Mapping[str, Any], values: Mapping[str, Any]) -> str:
        return f"{cls.login_url(settings, values)}/services/oauth2/authorize"

    @classmethod
    def token_url(cls, settings: Mapping[str, Any], values: Mapping[str, Any]) -> str:
        return f"{cls.login_url(settings, values)}/services/oauth2/token"

    @classmethod
    def revoke_url(cls, settings: Mapping[str, Any], values: Mapping[str, Any]) -> str:
        return f"{cls.login_url(settings, values)}/services/oauth2/revoke"

    @classmethod
    def accept_token_answer(
        cls,
        settings: Mapping[str, Any],
        values: Mapping[str, Any],
        answer: Mapping[str, Any],
        callback_params: Mapping[str, Any],
    ) -> dict[str, Any]:
        override = str(settings.get("SALESFORCE_LOGIN_URL") or "").strip() or None
        return {"instance_url": trusted_instance(answer.get("instance_url"), override)}

    # --- operations --------------------------------------------------------------------------------

    @classmethod
    def endpoints(cls, settings: Mapping[str, Any], values: Mapping[str, Any]) -> dict[str, Any]:
        version = str(settings.get("SALESFORCE_API_VERSION") or DEFAULT_API_VERSION).strip().lstrip("vV")
        endpoints = {"api_version": version if re.fullmatch(r"\d{2,3}\.0", version) else DEFAULT_API_VERSION}
        endpoints["login_url"] = cls.login_url(settings, values)
        if settings.get("SALESFORCE_LOGIN_URL"):
            endpoints["login_override"] = str(settings["SALESFORCE_LOGIN_URL"]).strip()
        return endpoints

    @classmethod
    def connect(
        cls, config: Mapping[str, Any], http: GuardedClient, deadline: float | None = None, **context: Any
    ) -> SalesforceAPI:
        """`context["renew"]`, when given, answers a live configuration with a refreshed access token
        (crm.providers.oauth.refresh_after_401 bound to the integration): used once, after a 401."""
        if not config.get("access_token") or not config.get("instance_url"):
            raise CRMError("auth_failed", f"This Salesforce connection has no session yet. {RECONNECT}")
        instance = trusted_instance(config["instance_url"], config.get("login_override"))
        version = str(config.get("api_version") or DEFAULT_API_VERSION)
        return SalesforceAPI(http, instance, str(config["access_token"]), version, deadline, context.get("renew"))

    @classmethod
    def test_connection(cls, config: dict[str, Any], http: GuardedClient) -> ConnectionResult:
        api = cls.connect(config, http, time.monotonic() + http.policy.total_timeout)
        info = api.expect(api.call("GET", "/services/oauth2/userinfo", retries=0), 200)
        if not isinstance(info, dict) or not info.get("organization_id"):
            raise CRMError("not_a_crm", "This address answered, but not like Salesforce.")
        user = plain(info.get("preferred_username") or info.get("email") or info.get("name"))
        org_id = plain(info.get("organization_id"), 18)
        limits = api.expect(api.call("GET", f"{api.data_path}/limits", retries=0), 200)
        daily = limits.get("DailyApiRequests") if isinstance(limits, dict) else None
        org_name = ""
        soql = quote("SELECT Name FROM Organization LIMIT 1", safe="")
        named = api.call("GET", f"{api.data_path}/query?q={soql}", retries=0)
        records = (
            (named.json() or {}).get("records") if named.status == 200 and isinstance(named.json(), dict) else None
        )
        if isinstance(records, list) and records and isinstance(records[0], dict):
            org_name = plain(records[0].get("Name"))
        org = f"{org_name} ({org_id})" if org_name else org_id
        verified = [f"Reached Salesforce at {urlsplit(api.instance_url).hostname}", f"Signed in as {user}"]
        if isinstance(daily, dict) and isinstance(daily.get("Remaining"), int) and isinstance(daily.get("Max"), int):
            verified.append(f"API access is enabled ({daily['Remaining']} of {daily['Max']} daily API requests left)")
        else:
            verified.append("API access is enabled")
        verified.append(f"Org {org}")
        details = {"accountName": org_name or org_id, "orgId": org_id, "user": user}
        return ConnectionResult("ok", f"Connected to Salesforce org {org_name or org_id} as {user}.", verified, details)

    @classmethod
    def card_lines(cls, config_summary: Mapping[str, Any]) -> list[str]:
        instance = config_summary.get("instance_url")
        if isinstance(instance, str) and instance:
            return [urlsplit(instance).netloc]
        labels = dict(cls.config_fields[0].choices)
        return (
            [labels.get(str(config_summary.get("environment") or ""), "")] if config_summary.get("environment") else []
        )

    @classmethod
    def default_name(cls, values: Mapping[str, Any], result: ConnectionResult | None = None) -> str:
        org = (result.details.get("accountName") if result else None) or ""
        return f"{cls.name} – {org}" if org else cls.name
