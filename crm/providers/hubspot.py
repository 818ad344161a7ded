"""HubSpot: contacts by batch upsert, messages recorded as notes. A private-app access token (or a
Service Key): both are a Bearer token with the contacts scopes."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, ClassVar

from crm.net import GuardedClient, Response, join_url
from crm.providers.base import ConnectionResult, CRMError, Field, Provider
from crm.providers.contract import (
    Connection,
    ContactData,
    ContactResult,
    FatalCRMError,
    Recorded,
    not_accepted,
    split_name,
    wait_before_retry,
)
from crm.providers.registry import register

DEFAULT_API_URL = "https://api.hubapi.com"
BATCH_LIMIT = 100  # inputs per batch call
NOTE_TO_CONTACT = 202  # HubSpot-defined association type: note → contact
CONTACT_SCOPES = ("crm.objects.contacts.read", "crm.objects.contacts.write")
REISSUE_ADVICE = (
    "Copy the access token again from HubSpot → Settings → Integrations → Private Apps (or Development → "
    "Keys → Service keys)."
)


class HubSpotAPI(Connection):
    batch_size = BATCH_LIMIT
    concurrency = 4  # 4 batches in flight stay well inside 100 requests per 10 s

    def __init__(self, http: GuardedClient, api_url: str, token: str, deadline: float | None = None):
        self.http = http
        self.api_url = api_url
        self.token = token
        self.deadline = deadline

    # --- transport -------------------------------------------------------------------------------

    def call(self, method: str, path: str, *, json: Any = None, retries: int = 4) -> Response:
        """One call that waits out the ten-second window on 429, within the deadline; a daily limit
        ends the run at once."""
        headers = {"Authorization": f"Bearer {self.token}", "Accept": "application/json"}
        url = join_url(self.api_url, path)
        for attempt in range(retries + 1):
            response = self.http.request(method, url, headers=headers, json=json, deadline=self.deadline)
            if response.status != 429 or attempt == retries:
                return response
            body = response.json() if isinstance(response.json(), dict) else {}
            if str(body.get("policyName", "")).upper() == "DAILY":
                raise FatalCRMError(
                    "rate_limited",
                    "HubSpot's daily API limit for this account is used up. The sync stops here and can "
                    "continue after midnight in the HubSpot account's time zone.",
                )
            wait_before_retry(window_seconds(response.headers), self.deadline, "HubSpot")
        return response

    def expect(self, response: Response, *ok: int) -> Any:
        if response.status in ok:
            return response.json() or {}
        raise error_for(response)

    # --- capabilities ----------------------------------------------------------------------------

    def upsert_contacts(self, batch: Sequence[ContactData]) -> list[ContactResult]:
        results: dict[str, ContactResult] = {}
        by_id, by_email, without_email = [], {}, []
        for contact in batch:
            email = (contact.email or "").strip().lower()
            if contact.remote_id:
                by_id.append(contact)
            elif email and email in by_email:
                results[contact.key] = ContactResult.failed(
                    contact.key, "Another of your contacts has the same email; HubSpot keeps one contact per email."
                )
            elif email:
                by_email[email] = contact
            else:
                without_email.append(contact)
        for done in (
            self._update(by_id),
            self._upsert_by_email(list(by_email.values())),
            self._create(without_email),
        ):
            results.update(done)
        return [results[c.key] for c in batch]

    def _upsert_by_email(self, contacts: list[ContactData]) -> dict[str, ContactResult]:
        if not contacts:
            return {}
        inputs = [{"idProperty": "email", "id": c.email.strip().lower(), "properties": properties(c)} for c in contacts]
        body = self._batch("crm/v3/objects/contacts/batch/upsert", inputs, contacts)
        failed = body.get("_failed", {})
        found = {
            str((r.get("properties") or {}).get("email") or r.get("id")).lower(): r
            for r in body.get("results") or []
            if isinstance(r, dict)
        }
        results = dict(failed)
        for contact in contacts:
            if contact.key in failed:
                continue
            record = found.get(contact.email.strip().lower())
            if record is None:
                results[contact.key] = ContactResult.failed(contact.key, batch_error(body, contact.email))
            else:
                kind = "created" if record.get("new") else "updated"
                results[contact.key] = ContactResult(contact.key, kind, str(record["id"]))
        return results

    def _update(self, contacts: list[ContactData]) -> dict[str, ContactResult]:
        if not contacts:
            return {}
        inputs = [{"id": c.remote_id, "properties": properties(c)} for c in contacts]
        body = self._batch("crm/v3/objects/contacts/batch/update", inputs, contacts)
        failed = body.get("_failed", {})
        updated = {str(r.get("id")) for r in body.get("results") or [] if isinstance(r, dict)}
        results = dict(failed)
        missing = []
        for contact in contacts:
            if contact.key in failed:
                continue
            if contact.remote_id in updated:
                results[contact.key] = ContactResult(contact.key, "updated", contact.remote_id)
            else:
                missing.append(contact)  # deleted in HubSpot: make it again
        again = [ContactData(c.key, c.name, c.email, c.phone, None) for c in missing]
        results.update(self._upsert_by_email([c for c in again if c.email]))
        results.update(self._create([c for c in again if not c.email]))
        return results

    def _create(self, contacts: list[ContactData]) -> dict[str, ContactResult]:
        """Contacts without an email: HubSpot cannot upsert them, so create and remember the id."""
        if not contacts:
            return {}
        inputs = [{"properties": properties(c), "objectWriteTraceId": c.key} for c in contacts]
        body = self._batch("crm/v3/objects/contacts/batch/create", inputs, contacts)
        failed = body.get("_failed", {})
        records = [r for r in body.get("results") or [] if isinstance(r, dict)]
        traced = {str(r.get("objectWriteTraceId")): r for r in records if r.get("objectWriteTraceId")}
        results = dict(failed)
        for index, contact in enumerate(contacts):
            if contact.key in failed:
                continue
            record = traced.get(contact.key) or (records[index] if not traced and index < len(records) else None)
            if record is None:
                results[contact.key] = ContactResult.failed(contact.key, batch_error(body, None))
            else:
                results[contact.key] = ContactResult(contact.key, "created", str(record["id"]))
        return results

    def _batch(self, path: str, inputs: list[dict], contacts: list[ContactData]) -> dict[str, Any]:
        """Send one batch call (at most BATCH_LIMIT inputs). A 400 that names its bad inputs is sent
        again without them (HubSpot may refuse a whole batch for one bad email); any other failure of
        the whole call fails each of its contacts."""
        body: dict[str, Any] = {}
        failed = body.setdefault("_failed", {})
        for start in range(0, len(inputs), BATCH_LIMIT):
            chunk = list(zip(inputs[start : start + BATCH_LIMIT], contacts[start : start + BATCH_LIMIT], strict=True))
            while chunk:
                response = self.call("POST", path, json={"inputs": [sent for sent, _ in chunk]})
                if response.status in (200, 201, 207):
                    part = response.json() or {}
                    body.setdefault("results", []).extend(part.get("results") or [])
                    body.setdefault("errors", []).extend(part.get("errors") or [])
                    break
                error = error_for(response)
                if isinstance(error, FatalCRMError) or error.outcome in ("auth_failed", "insufficient_permissions"):
                    raise error
                named = refused_inputs(response) if response.status == 400 else set()
                bad = [(sent, c) for sent, c in chunk if input_key(sent) in named]
                reason = "HubSpot refused this contact's values (is the email address valid?)."
                failed.update({c.key: ContactResult.failed(c.key, reason) for _, c in bad})
                if not bad:
                    failed.update({c.key: ContactResult.failed(c.key, error.message) for _, c in chunk})
                    break
                chunk = [pair for pair in chunk if pair not in bad]
        if not failed:
            del body["_failed"]
        return body

    def record_message(self, contact: ContactData, text: str) -> Recorded:
        now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")
        payload = {
            "properties": {"hs_note_body": text, "hs_timestamp": now},
            "associations": [
                {
                    "to": {"id": contact.remote_id},
                    "types": [{"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": NOTE_TO_CONTACT}],
                }
            ],
        }
        body = self.expect(self.call("POST", "crm/v3/objects/notes", json=payload), 200, 201)
        return Recorded("note", str(body.get("id")), {"contactId": contact.remote_id})


def properties(contact: ContactData) -> dict[str, str]:
    first, last = split_name(contact.name)
    values = {"firstname": first, "lastname": last}
    if contact.email:
        values["email"] = contact.email.strip().lower()
    if contact.phone:
        values["phone"] = contact.phone
    return values


def input_key(sent: Mapping[str, Any]) -> str:
    return str(sent.get("id") or sent.get("objectWriteTraceId") or "").lower()


def refused_inputs(response: Response) -> set[str]:
    """The inputs a whole-batch 400 names as the bad ones (its context ids), lower-cased."""
    body = response.json() if isinstance(response.json(), dict) else {}
    context = body.get("context") if isinstance(body.get("context"), dict) else {}
    return {str(value).lower() for values in context.values() if isinstance(values, list) for value in values}


def window_seconds(headers: Mapping[str, str]) -> float:
    """How long until HubSpot's rate window frees up: its interval header, else ten seconds."""
    try:
        interval = int(headers.get("X-HubSpot-RateLimit-Interval-Milliseconds") or 10_000) / 1000
    except ValueError:
        interval = 10.0
    return min(max(interval, 0.1), 10.0)


def batch_error(body: dict[str, Any], email: str | None) -> str:
    """HubSpot's reason for one input of a 207 answer, in our words where we can."""
    for error in body.get("errors") or []:
        context = error.get("context") or {} if isinstance(error, dict) else {}
        ids = [str(v).lower() for values in context.values() if isinstance(values, list) for v in values]
        if email is None or email.strip().lower() in ids or not ids:
            category = str(error.get("category") or "")
            if category == "VALIDATION_ERROR":
                return "HubSpot refused this contact's values (is the email address valid?)."
            return "HubSpot did not accept this contact."
    return "HubSpot did not accept this contact."


def error_for(response: Response) -> CRMError:
    body = response.json() if isinstance(response.json(), dict) else {}
    category = str(body.get("category") or "")
    if response.status == 401:
        if category == "EXPIRED_AUTHENTICATION":
            return CRMError("auth_failed", "The HubSpot access token has expired. Connect HubSpot again.")
        return CRMError("auth_failed", f"HubSpot rejected the access token. {REISSUE_ADVICE}")
    if response.status == 403:
        missing = missing_scopes(body)
        named = ", ".join(missing) if missing else ", ".join(CONTACT_SCOPES)
        return CRMError(
            "insufficient_permissions",
            f"The token works, but it lacks the scopes {named}. Add them to the private app in HubSpot, "
            "then copy its token again.",
        )
    if response.status == 404:
        return CRMError("not_a_crm", "This address answered, but not like HubSpot's API.")
    return not_accepted(response, "HubSpot")


def missing_scopes(body: Mapping[str, Any]) -> list[str]:
    scopes: list[str] = []
    for error in body.get("errors") or []:
        context = error.get("context") if isinstance(error, dict) else None
        for key in ("requiredGranularScopes", "requiredScopes"):
            for scope in (context or {}).get(key) or []:
                if isinstance(scope, str) and len(scope) <= 80 and scope not in scopes:
                    scopes.append(scope)
    return scopes[:10]


@register
class HubSpot(Provider):
    id = "HUBSPOT"
    name = "HubSpot"
    description = "Marketing, sales and service hub: contacts sync, messages recorded as notes."
    icon = "hubspot.svg"
    features = ("contacts", "notes")
    docs_url = "https://developers.hubspot.com/docs/api/private-apps"
    config_fields = (
        Field(
            "access_token",
            "Private App Access Token",
            type="password",
            sensitive=True,
            required=True,
            max_length=512,
            help=(
                "HubSpot → Settings → Integrations → Private Apps (or Development → Keys → Service keys), with "
                "the scopes crm.objects.contacts.read and crm.objects.contacts.write."
            ),
        ),
    )

    advice_table: ClassVar[Mapping[str, tuple[str, ...]]] = {
        "auth_failed": (
            "Copy the token again: HubSpot → Settings → Integrations → Private Apps → your app → Auth → Show "
            "token (or Development → Keys → Service keys).",
            "A token that was rotated in HubSpot stops working at once: paste the new one.",
        ),
        "insufficient_permissions": (
            "In the private app's Scopes tab, add crm.objects.contacts.read and crm.objects.contacts.write "
            "(the message above names the missing ones), commit the changes, then test again.",
        ),
        "not_a_crm": (
            "The platform's HubSpot address (HUBSPOT_API_URL) does not answer like HubSpot: tell the operator.",
        ),
        "rate_limited": (
            "HubSpot allows 100 to 190 calls per 10 seconds and a daily total per account, shared by every app: "
            "wait a minute and test again.",
        ),
        "server_error": ("HubSpot is having trouble: check status.hubspot.com, then test again.",),
    }

    @classmethod
    def card_lines(cls, config_summary: Mapping[str, Any]) -> list[str]:
        return []  # only the token is stored; the portal goes into the proposed name

    @classmethod
    def default_name(cls, values: Mapping[str, Any], result: ConnectionResult | None = None) -> str:
        portal = (result.details.get("portalId") if result else None) or ""
        return f"{cls.name} – portal {portal}" if portal else cls.name

    @classmethod
    def endpoints(cls, settings: Mapping[str, Any], values: Mapping[str, Any]) -> dict[str, Any]:
        return {"api_url": (settings.get("HUBSPOT_API_URL") or DEFAULT_API_URL).rstrip("/")}

    @classmethod
    def connect(
        cls, config: Mapping[str, Any], http: GuardedClient, deadline: float | None = None, **context: Any
    ) -> HubSpotAPI:
        return HubSpotAPI(http, config.get("api_url") or DEFAULT_API_URL, config["access_token"], deadline)

    @classmethod
    def test_connection(cls, config: dict[str, Any], http: GuardedClient) -> ConnectionResult:
        api = cls.connect(config, http, time.monotonic() + http.policy.total_timeout)
        api.expect(api.call("GET", "crm/v3/objects/contacts?limit=1&archived=false", retries=0), 200)
        verified = ["Reached HubSpot's API", "The access token is valid and may read contacts"]
        details: dict[str, Any] = {}
        info = api.call("GET", "account-info/v3/details", retries=0)
        body = info.json() if info.status == 200 else None
        if isinstance(body, dict) and body.get("portalId"):
            portal = str(body.get("portalId"))[:20]
            domain = str(body.get("uiDomain") or "")[:100]
            details = {"portalId": portal, "accountName": f"portal {portal}"}
            verified.append(f"HubSpot account {portal}{f' ({domain})' if domain else ''}")
        name = f" account {details['portalId']}" if details else ""
        return ConnectionResult("ok", f"Connected to HubSpot{name}.", verified, details)


# --- inbound webhooks (crm/webhooks) ----------------------------------------------------------------

WEBHOOK_WINDOW_MS = 300_000  # HubSpot: reject a request timestamp older than 5 minutes
# The escapes HubSpot decodes in the URI it signs (its v3 validation docs); the query's own "?" stays.
HUBSPOT_URI_DECODES = {
    "%3A": ":", "%2F": "/", "%3F": "?", "%40": "@", "%21": "!", "%24": "$", "%27": "'",
    "%28": "(", "%29": ")", "%2A": "*", "%2C": ",", "%3B": ";",
}  # fmt: skip


def hubspot_signed_uri(uri: str) -> str:
    """The URI as HubSpot signs it: the listed percent-escapes decoded (either case), nothing else."""
    import re as _re

    return _re.sub(r"%[0-9A-Fa-f]{2}", lambda m: HUBSPOT_URI_DECODES.get(m.group().upper(), m.group()), uri)


def _hubspot_verify_webhook(
    cls,
    secret: str | None,
    method: str,
    uri: str,
    headers: Mapping[str, str],
    body: bytes,
    *,
    now: float | None = None,
) -> tuple[bool, bool, str | None]:
    """(accepted, verified, delivery key): v3 signature, base64 HMAC-SHA256(app client secret,
    METHOD + URI + raw body + X-HubSpot-Request-Timestamp), the timestamp (ms) within 300 s."""
    import base64
    import hashlib
    import hmac

    signature = (headers.get("X-HubSpot-Signature-v3") or "").strip()
    timestamp = (headers.get("X-HubSpot-Request-Timestamp") or "").strip()
    if not secret or not signature or not timestamp.isascii() or not timestamp.isdigit() or len(timestamp) > 15:
        return False, False, None
    now_ms = (time.time() if now is None else now) * 1000
    if abs(now_ms - int(timestamp)) > WEBHOOK_WINDOW_MS:
        return False, False, None
    signed = (method.upper() + hubspot_signed_uri(uri)).encode() + body + timestamp.encode()
    expected = base64.b64encode(hmac.new(secret.encode(), signed, hashlib.sha256).digest())
    if not hmac.compare_digest(expected, signature.encode("latin-1", "replace")):
        return False, False, None
    return True, True, None  # the key comes from the events' eventIds


HubSpot.verify_webhook = classmethod(_hubspot_verify_webhook)
