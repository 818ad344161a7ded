"""Zoho CRM as the platform meets it (../shared/reference/crm-providers.md §4): the accounts server's
OAuth 2.0 (consent page, token endpoint, revocation) and the CRM API v8 on the api domain: current
user, org, Contacts upsert and update (100 records per call, one answer per record), and notes.

Written by hand from Zoho's documented behaviour; nothing of Zoho's SDK or OpenAPI files is copied.
Real behaviours kept on purpose:
- the callback carries `location` and `accounts-server` beside code and state (multi-DC apps);
- the token endpoint answers **HTTP 200** with {"error": "invalid_code"} for a bad, used or revoked
  code or refresh token (and invalid_client / invalid_client_secret / invalid_redirect_uri);
- refresh tokens do not rotate (`rotate_refresh_tokens=True` makes them, for rotation tests);
- the token answer carries `api_domain` and `expires_in` (3600);
- API errors are {"code", "details", "message", "status": "error"}; an expired token is 401
  INVALID_TOKEN; a scope the token lacks is 401 OAUTH_SCOPE_MISMATCH; throttling is 429
  TOO_MANY_REQUESTS [unverified code];
- write answers hold one entry per record, in input order: SUCCESS with action insert/update, or
  MANDATORY_NOT_FOUND, INVALID_DATA, DUPLICATE_DATA; 200 when all succeeded, 207 when some did, 400
  when none did [status codes unverified].

One server plays both the accounts server and the api domain (`accounts_server` and `api_domain`
default to its own URL; set them to foreign addresses to test that forged ones are refused).
"""

from __future__ import annotations

import itertools
import json
import re
import time
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs

from tests.fakes.hubspot import RollingWindow
from tests.fakes.server import FakeHandler
from tests.fakes.vendor_oauth import AuthorizationServer, OAuthError, OAuthVendorFake, consent_page

CLIENT_ID = "1000.FAKEZOHOCLIENTID0000000000000"
CLIENT_SECRET = "fake-zoho-client-secret"
SCOPES = ("ZohoCRM.modules.contacts.ALL", "ZohoCRM.modules.notes.ALL", "ZohoCRM.users.READ", "ZohoCRM.org.READ")
WRITE_LIMIT = 100
EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[A-Za-z]{2,}$")
CONTACT_FIELDS = {"First_Name": 40, "Last_Name": 80, "Email": 100, "Phone": 30, "Description": 32000, "id": 30}
# Zoho's token-endpoint error names for what the shared authorization server refuses.
TOKEN_ERRORS = {
    "invalid_grant": "invalid_code",
    "invalid_client_id": "invalid_client",
    "invalid_client": "invalid_client_secret",
    "redirect_uri_mismatch": "invalid_redirect_uri",
}
# Which scopes a route needs (any one of them).
ROUTE_SCOPES = {
    "users": ("ZohoCRM.users.READ", "ZohoCRM.users.ALL"),
    "org": ("ZohoCRM.org.READ", "ZohoCRM.org.ALL"),
    "contacts": ("ZohoCRM.modules.contacts.ALL", "ZohoCRM.modules.ALL", "ZohoCRM.modules.contacts.WRITE"),
    "notes": ("ZohoCRM.modules.notes.ALL", "ZohoCRM.modules.ALL", "ZohoCRM.modules.notes.CREATE"),
}


def zoho_error(code: str, message: str, **details: Any) -> dict:
    return {"code": code, "details": details, "message": message, "status": "error"}


def now_iso() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S+00:00")


class ZohoHandler(FakeHandler):
    server_version = "ZGS"


class FakeZoho(OAuthVendorFake):
    """Constructor options: `client_id`/`client_secret` (the server-based client), `redirect_uris`
    (empty = any), `access_token_ttl` (3600), `rotate_refresh_tokens` (False, as Zoho), `revoke_on_reuse`,
    `burst_limit`/`window_seconds` (429 beyond), `location` ("us"), `clock`.

    Test helpers: `issue_tokens()`, `consent(url, approve)`, `expire_access_tokens()`, `revoke_all()`,
    `add_contact()`, `seed_contacts(n)`, `delete_contact(id)`, `force_status(...)`, `contact_by_email()`;
    counters `calls(method, path)` ("{id}" stands for a record id), `oauth.counts`, `token_requests`."""

    handler_class = ZohoHandler
    scope_separator = ","

    def __init__(
        self,
        tls=None,
        *,
        client_id: str = CLIENT_ID,
        client_secret: str = CLIENT_SECRET,
        redirect_uris: tuple[str, ...] = (),
        access_token_ttl: float = 3600.0,
        rotate_refresh_tokens: bool = False,
        revoke_on_reuse: bool = False,
        burst_limit: int | None = None,
        window_seconds: float = 1.0,
        location: str = "us",
        clock=time.time,
    ):
        oauth = AuthorizationServer(
            client_id=client_id,
            client_secret=client_secret,
            redirect_uris=redirect_uris,
            token_prefix="1000.",
            access_token_ttl=access_token_ttl,
            rotate_refresh_tokens=rotate_refresh_tokens,
            revoke_on_reuse=revoke_on_reuse,
            require_pkce=False,  # not part of Zoho's documented server-based flow; checked when sent
            clock=clock,
        )
        super().__init__(tls, oauth)
        self.location = location
        self.accounts_server: str | None = None  # None: this server's own URL
        self.api_domain: str | None = None
        self.api_permission = True  # False: NO_PERMISSION (the profile lacks API access)
        self.user = {"id": "5725767000000411001", "full_name": "Ann Admin", "email": "ann@example.com"}
        self.org = {"id": "5725767000000012345", "company_name": "Acme Zoho Org", "domain_name": "org78512345"}
        self.ids = itertools.count(1)
        self.contacts: dict[str, dict] = {}
        self.by_email: dict[str, str] = {}  # lower-cased email -> id
        self.notes: dict[str, dict] = {}
        self.burst = RollingWindow(burst_limit, window_seconds, time.monotonic)
        self.rate_limited = 0

    # --- test setup -------------------------------------------------------------------------------

    def accounts_url(self) -> str:
        return self.accounts_server or self.url()

    def api_url(self) -> str:
        return self.api_domain or self.url()

    def issue_tokens(self, scopes: tuple[str, ...] = SCOPES) -> dict[str, Any]:
        grant, access = self.oauth.issue(tuple(scopes))
        return self.token_answer(grant.scopes, access, grant.refresh_token)

    def callback_extra(self, approve: bool) -> dict[str, str]:
        return {"location": self.location, "accounts-server": self.accounts_url()} if approve else {}

    def add_contact(self, email: str | None = None, last_name: str = "Existing", **fields: Any) -> dict:
        with self.lock:
            return self._create({"Last_Name": last_name, **({"Email": email} if email else {}), **fields})

    def seed_contacts(self, count: int, pattern: str = "existing{i}@example.com") -> list[dict]:
        with self.lock:
            return [self._create({"Last_Name": f"Existing{i}", "Email": pattern.format(i=i)}) for i in range(count)]

    def delete_contact(self, contact_id: str) -> None:
        with self.lock:
            contact = self.contacts.pop(contact_id, None)
            if contact and contact.get("Email"):
                self.by_email.pop(str(contact["Email"]).lower(), None)

    def contact_by_email(self, email: str) -> dict | None:
        with self.lock:
            contact_id = self.by_email.get(email.lower())
            return self.contacts.get(contact_id) if contact_id else None

    # --- dispatch ------------------------------------------------------------------------------------

    def dispatch(self, h: ZohoHandler) -> None:
        raw, path, query = self.read_request(h)
        forced = self.take_forced(h.command, path, re.sub(r"/Contacts/\d+", "/Contacts/{id}", path))
        self.pause()
        if forced:
            return self.send_forced(h, forced)
        if path == "/oauth/v2/auth" and h.command == "GET":
            return self.authorize(h, query)
        consent = re.fullmatch(r"/__consent/([\w-]+)/(approve|deny)", path)
        if consent and h.command == "GET":
            approve = consent.group(2) == "approve"
            location = self.oauth.answer(consent.group(1), approve, **self.callback_extra(approve))
            if location is None:
                return self.send(h, 400, b"<html><body>This request has expired.</body></html>")
            return self.redirect(h, location)
        if path == "/oauth/v2/token" and h.command == "POST":
            return self.token_endpoint(h, {**query, **self.form(raw)})
        if path == "/oauth/v2/token/revoke" and h.command == "POST":
            return self.revoke_endpoint(h, {**query, **self.form(raw)})
        if path.startswith("/crm/v8/"):
            return self.crm_api(h, path.removeprefix("/crm/v8"), query, raw)
        return self.send(
            h, 404, zoho_error("INVALID_URL_PATTERN", "Please check if the URL trying to access is a correct one")
        )

    @staticmethod
    def form(raw: bytes) -> dict[str, str]:
        return {k: v[-1] for k, v in parse_qs(raw.decode("utf-8", "replace")).items()}

    def send(self, h, status: int, payload: Any, headers: dict[str, str] | None = None) -> None:
        with self.lock:
            self.statuses[status] += 1
        if isinstance(payload, bytes):
            return h.send_body(status, payload, "text/html; charset=utf-8", headers)
        return h.send_json(status, payload, headers)

    def default_body(self, status: int) -> Any:
        if status == 401:
            return zoho_error("INVALID_TOKEN", "invalid oauth token")
        if status == 403:
            return zoho_error("NO_PERMISSION", "permission denied", permissions=["Crm_Implied_Api_Access"])
        if status == 429:
            return zoho_error("TOO_MANY_REQUESTS", "too many requests")
        if status >= 500:
            return zoho_error("INTERNAL_ERROR", "Internal Server Error")
        return zoho_error("INVALID_DATA", "invalid data")

    # --- OAuth --------------------------------------------------------------------------------------

    def authorize(self, h, query: dict[str, str]) -> None:
        if query.get("response_type") != "code":
            return self.send(h, 400, b"<html><body>Invalid response type</body></html>")
        try:
            consent = self._start(query)
        except OAuthError as exc:
            return self.send(h, 400, f"<html><body>{TOKEN_ERRORS.get(exc.error, exc.error)}</body></html>".encode())
        if self.auto_consent:
            approve = self.auto_consent == "approve"
            return self.redirect(h, self.oauth.answer(consent.id, approve, **self.callback_extra(approve)))
        return self.send(h, 200, consent_page("Zoho CRM", consent, "", allow="Accept", deny="Reject"))

    def token_answer(self, scopes, access: str, refresh: str | None) -> dict[str, Any]:
        answer: dict[str, Any] = {"access_token": access}
        if refresh:
            answer["refresh_token"] = refresh
        answer.update(
            scope=" ".join(scopes),
            api_domain=self.api_url(),
            token_type="Bearer",
            expires_in=int(self.oauth.access_token_ttl),
        )
        return answer

    def token_endpoint(self, h, form: dict[str, str]) -> None:
        self.grant_tokens(h, form)

    def token_refused(self, h, exc: OAuthError) -> None:  # Zoho: HTTP 200 with an error field
        return self.send(h, 200, {"error": TOKEN_ERRORS.get(exc.error, exc.error)})

    def revoke_endpoint(self, h, form: dict[str, str]) -> None:
        if not self.oauth.revoke(form.get("token", "")):
            return self.send(h, 400, {"status": "failure", "error": "invalid_token"})
        return self.send(h, 200, {"status": "success"})

    # --- the CRM API ---------------------------------------------------------------------------------

    def crm_api(self, h, path: str, query: dict[str, str], raw: bytes) -> None:
        header = h.headers.get("Authorization", "")
        state, token = ("invalid", None)
        if header.startswith("Zoho-oauthtoken "):
            state, token = self.oauth.check_access(header.removeprefix("Zoho-oauthtoken ").strip())
        if state != "ok":
            return self.send(h, 401, zoho_error("INVALID_TOKEN", "invalid oauth token"))
        with self.lock:
            admitted = self.burst.admit()
            if not admitted:
                self.rate_limited += 1
        if not admitted:
            return self.send(h, 429, zoho_error("TOO_MANY_REQUESTS", "too many requests"))
        route = self.route(h.command, path)
        if route is None:
            return self.send(
                h, 404, zoho_error("INVALID_URL_PATTERN", "Please check if the URL trying to access is a correct one")
            )
        name, handler, record_id = route
        if not set(ROUTE_SCOPES[name]) & set(token.scopes):
            return self.send(h, 401, zoho_error("OAUTH_SCOPE_MISMATCH", "invalid oauth scope to access this URL"))
        if not self.api_permission:
            return self.send(
                h, 403, zoho_error("NO_PERMISSION", "permission denied", permissions=["Crm_Implied_Api_Access"])
            )
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            return self.send(h, 400, zoho_error("INVALID_DATA", "invalid data"))
        with self.lock:
            try:
                status, payload = handler(query, body, record_id)
            except (TypeError, AttributeError, KeyError, ValueError):
                status, payload = 400, zoho_error("INVALID_DATA", "invalid data")
        if payload is None:
            return h.send_body(status, b"", "application/json")
        return self.send(h, status, payload)

    def route(self, method: str, path: str):
        table = {
            ("GET", "/users"): ("users", self.current_user),
            ("GET", "/org"): ("org", self.get_org),
            ("POST", "/Contacts/upsert"): ("contacts", self.upsert),
            ("PUT", "/Contacts"): ("contacts", self.update),
        }
        if (method, path) in table:
            name, handler = table[(method, path)]
            return name, handler, None
        note = re.fullmatch(r"/Contacts/(\d+)/Notes", path)
        if method == "POST" and note:
            return "notes", self.add_note, note.group(1)
        return None

    def current_user(self, query, body, _):
        if query.get("type") != "CurrentUser":
            return 400, zoho_error("INVALID_DATA", "this fake answers type=CurrentUser only")
        user = {**self.user, "role": {"name": "CEO", "id": "1"}, "profile": {"name": "Administrator", "id": "2"}}
        return 200, {
            "users": [{**user, "status": "active"}],
            "info": {"per_page": 200, "count": 1, "page": 1, "more_records": False},
        }

    def get_org(self, query, body, _):
        return 200, {"org": [{**self.org, "currency": "EUR", "time_zone": "Europe/Berlin", "country_code": "DE"}]}

    def _create(self, fields: dict) -> dict:
        contact_id = f"57257670{next(self.ids):011d}"
        contact = {"id": contact_id, **{k: v for k, v in fields.items() if k != "id"}, "Created_Time": now_iso()}
        self.contacts[contact_id] = contact
        self._index(contact, None)
        return contact

    def _index(self, contact: dict, old_email: str | None) -> None:
        if old_email:
            self.by_email.pop(old_email.lower(), None)
        if contact.get("Email"):
            self.by_email[str(contact["Email"]).lower()] = contact["id"]

    def _problem(self, record: Any, index: int, creating: bool) -> dict | None:
        if not isinstance(record, dict):
            return zoho_error("INVALID_DATA", "invalid data", json_path=f"$.data[{index}]")
        for name, value in record.items():
            if name not in CONTACT_FIELDS:
                return zoho_error("INVALID_DATA", "invalid field", api_name=name, json_path=f"$.data[{index}].{name}")
            if value is not None and len(str(value)) > CONTACT_FIELDS[name]:
                path = f"$.data[{index}].{name}"
                return zoho_error(
                    "INVALID_DATA", "invalid data", api_name=name, json_path=path, maximum_length=CONTACT_FIELDS[name]
                )
        if creating and not str(record.get("Last_Name") or "").strip():
            return zoho_error(
                "MANDATORY_NOT_FOUND",
                "required field not found",
                api_name="Last_Name",
                json_path=f"$.data[{index}].Last_Name",
            )
        email = record.get("Email")
        if email and not EMAIL.match(str(email)):
            return zoho_error(
                "INVALID_DATA",
                "invalid data",
                expected_data_type="email",
                api_name="Email",
                json_path=f"$.data[{index}].Email",
            )
        return None

    def _records(self, body) -> tuple[list | None, tuple | None]:
        data = body.get("data") if isinstance(body, dict) else None
        if not isinstance(data, list) or not data:
            return None, (
                400,
                zoho_error("MANDATORY_NOT_FOUND", "required field not found", api_name="data", json_path="$.data"),
            )
        if len(data) > WRITE_LIMIT:
            return None, (
                400,
                zoho_error("LIMIT_EXCEEDED", "Exceeded the maximum number of records allowed", limit=WRITE_LIMIT),
            )
        return data, None

    @staticmethod
    def _answer(results: list[dict]) -> tuple[int, dict]:
        ok = sum(1 for r in results if r["status"] == "success")
        status = 200 if ok == len(results) else 207 if ok else 400
        return status, {"data": results}

    def _done(self, contact: dict, action: str, duplicate_field: str | None = None) -> dict:
        stamp = now_iso()
        who = {"name": self.user["full_name"], "id": self.user["id"]}
        details = {
            "Modified_Time": stamp,
            "Modified_By": who,
            "Created_Time": contact["Created_Time"],
            "id": contact["id"],
            "Created_By": who,
        }
        message = "record added" if action == "insert" else "record updated"
        return {
            "code": "SUCCESS",
            "duplicate_field": duplicate_field,
            "action": action,
            "details": details,
            "message": message,
            "status": "success",
        }

    def upsert(self, query, body, _):
        data, problem = self._records(body)
        if problem:
            return problem
        checks = body.get("duplicate_check_fields") or ["Email"]
        if checks != ["Email"]:
            return 400, zoho_error(
                "INVALID_DATA", "this fake checks duplicates on Email only", api_name="duplicate_check_fields"
            )
        results, seen = [], {}
        for index, record in enumerate(data):
            error = self._problem(record, index, creating=True)
            email = str(record.get("Email") or "").lower() if isinstance(record, dict) else ""
            if error is None and email and email in seen:
                error = zoho_error(
                    "DUPLICATE_DATA",
                    "duplicate data",
                    api_name="Email",
                    json_path=f"$.data[{index}].Email",
                    duplicate_record={"id": seen[email]},
                )
            if error:
                results.append(error)
                continue
            existing = self.contact_by_email(email) if email else None
            if existing:
                old = existing.get("Email")
                existing.update(record)
                self._index(existing, old)
                results.append(self._done(existing, "update", "Email"))
            else:
                existing = self._create(record)
                results.append(self._done(existing, "insert"))
            if email:
                seen[email] = existing["id"]
        return self._answer(results)

    def update(self, query, body, _):
        data, problem = self._records(body)
        if problem:
            return problem
        results = []
        for index, record in enumerate(data):
            error = self._problem(record, index, creating=False)
            contact = self.contacts.get(str(record.get("id") or "")) if isinstance(record, dict) else None
            if error is None and contact is None:
                error = zoho_error(
                    "INVALID_DATA", "the id given seems to be invalid", api_name="id", json_path=f"$.data[{index}].id"
                )
            email = str(record.get("Email") or "").lower() if error is None else ""
            other = self.contact_by_email(email) if email else None
            if error is None and other is not None and other["id"] != contact["id"]:
                error = zoho_error(
                    "DUPLICATE_DATA",
                    "duplicate data",
                    api_name="Email",
                    json_path=f"$.data[{index}].Email",
                    duplicate_record={"id": other["id"]},
                )
            if error:
                results.append(error)
                continue
            old = contact.get("Email")
            contact.update({k: v for k, v in record.items() if k != "id"})
            self._index(contact, old)
            results.append(self._done(contact, "update"))
        return self._answer(results)

    def add_note(self, query, body, contact_id):
        data, problem = self._records(body)
        if problem:
            return problem
        if contact_id not in self.contacts:
            return 400, {
                "data": [
                    zoho_error(
                        "INVALID_DATA",
                        "the related id given seems to be invalid",
                        api_name="Parent_Id",
                        json_path="$.data[0].Parent_Id",
                    )
                ]
            }
        results = []
        for index, note in enumerate(data):
            if not isinstance(note, dict) or not str(note.get("Note_Content") or "").strip():
                results.append(
                    zoho_error(
                        "MANDATORY_NOT_FOUND",
                        "required field not found",
                        api_name="Note_Content",
                        json_path=f"$.data[{index}].Note_Content",
                    )
                )
                continue
            note_id = f"57257671{next(self.ids):011d}"
            self.notes[note_id] = {"id": note_id, "Parent_Id": contact_id, **note}
            results.append(
                {
                    "code": "SUCCESS",
                    "details": {"id": note_id, "Created_Time": now_iso()},
                    "message": "record added",
                    "status": "success",
                }
            )
        status, payload = self._answer(results)
        return (201 if status == 200 else status), payload
