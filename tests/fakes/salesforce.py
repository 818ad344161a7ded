"""Salesforce as the platform meets it (../shared/reference/crm-providers.md §3): the OAuth 2.0 web-server
flow with PKCE on the login host (consent page, token endpoint, revocation), and an org's REST API on
the instance: userinfo, limits, SOQL queries, sObject Collections create/update and Task records.

Written by hand from Salesforce's documented behaviour; nothing of Salesforce's or simple-salesforce's
code is copied. Real behaviours kept on purpose:
- the token answer has no `expires_in` (access tokens live as long as the org's session timeout), and
  carries `instance_url` and `id` (the identity URL naming org and user);
- REST errors are a JSON array of {message, errorCode}; an expired or revoked token is 401
  INVALID_SESSION_ID on /services/data, but 403 "Bad_OAuth_Token" (text) on /services/oauth2/userinfo;
- the daily API limit is 403 REQUEST_LIMIT_EXCEEDED (no 429), and every /services/data answer carries
  `Sforce-Limit-Info: api-usage=N/M`;
- SOQL string literals use backslash escapes; a bad literal is 400 MALFORMED_QUERY;
- collections take at most 200 records and answer one result per record, in input order.

One server plays both the login host and the instance (`instance_url` defaults to its own URL; set it
to a foreign address to test that a forged one is refused).
"""

from __future__ import annotations

import base64
import itertools
import re
import secrets
import time
from typing import Any
from urllib.parse import parse_qs, urlsplit

from tests.fakes.server import FakeHandler
from tests.fakes.vendor_oauth import AuthorizationServer, OAuthError, OAuthVendorFake, consent_page

CLIENT_ID = "3MVG9fake.salesforce.consumer.key"
CLIENT_SECRET = "fake-salesforce-consumer-secret"
SCOPES = ("api", "refresh_token", "id")
COLLECTION_LIMIT = 200
QUERY_BATCH = 2000  # records per query page
MAX_URI = 16_384  # longer request lines are refused with 414, as Salesforce's front end does
EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[A-Za-z]{2,}$")
CONTACT_FIELDS = {"FirstName": 40, "LastName": 80, "Email": 80, "Phone": 40, "Description": 32000}
TASK_FIELDS = {"WhoId", "Subject", "Description", "Status", "ActivityDate", "Priority", "TaskSubtype"}
VERSION = re.compile(r"^/services/data/v(\d+\.\d)(/.*)?$")
SESSION_EXPIRED = [{"message": "Session expired or invalid", "errorCode": "INVALID_SESSION_ID"}]


def sf_error(code: str, message: str, fields: list[str] | None = None) -> list[dict]:
    error: dict[str, Any] = {"message": message, "errorCode": code}
    if fields is not None:
        error["fields"] = fields
    return [error]


def record_error(code: str, message: str, fields: list[str] | None = None) -> dict:
    return {"statusCode": code, "message": message, "fields": fields or []}


class SOQLError(ValueError):
    pass


def parse_literals(text: str) -> list[str]:
    """The string literals of "('a','b\\'c')" with SOQL's backslash escapes undone."""
    escapes = {"'": "'", '"': '"', "\\": "\\", "n": "\n", "r": "\r", "t": "\t", "b": "\b", "f": "\f"}
    values: list[str] = []
    i = 0
    text = text.strip()
    if not text.startswith("(") or not text.endswith(")"):
        raise SOQLError("expecting a left parentheses")
    body = text[1:-1]
    while i < len(body):
        while i < len(body) and body[i] == " ":
            i += 1
        if i >= len(body) or body[i] != "'":
            raise SOQLError(f"unexpected token: {body[i : i + 20]!r}")
        i += 1
        value = []
        while True:
            if i >= len(body):
                raise SOQLError("unterminated string literal")
            char = body[i]
            if char == "\\":
                if i + 1 >= len(body) or body[i + 1] not in escapes:
                    raise SOQLError("Invalid string literal: illegal escape sequence")
                value.append(escapes[body[i + 1]])
                i += 2
                continue
            if char == "'":
                i += 1
                break
            value.append(char)
            i += 1
        values.append("".join(value))
        while i < len(body) and body[i] == " ":
            i += 1
        if i < len(body):
            if body[i] != ",":
                raise SOQLError(f"unexpected token: {body[i : i + 20]!r}")
            i += 1
    return values


class SalesforceHandler(FakeHandler):
    server_version = "SFDC-Fake/1.0"


class FakeSalesforce(OAuthVendorFake):
    """Constructor options: `client_id`/`client_secret` (the External Client App), `redirect_uris`
    (registered callbacks; empty = any), `access_token_ttl` (seconds; the org's session timeout),
    `rotate_refresh_tokens`, `revoke_on_reuse`, `daily_limit`, `api_enabled`, `clock`.

    Test helpers: `issue_tokens()` (tokens as if the user had consented), `consent(url, approve)` (the
    redirect the consent page would make), `expire_access_tokens()`, `revoke_all()`, `add_contact()`,
    `seed_contacts(n)`, `delete_contact(id)`, `force_status(...)`, `exhaust_daily()`, and counters:
    `calls(method, suffix)`, `oauth.counts` ("authorize", "approve", "deny", "code", "refresh", "revoke",
    "refused"), `token_requests` (by grant_type)."""

    handler_class = SalesforceHandler

    def __init__(
        self,
        tls=None,
        *,
        client_id: str = CLIENT_ID,
        client_secret: str = CLIENT_SECRET,
        redirect_uris: tuple[str, ...] = (),
        access_token_ttl: float = 7200.0,
        rotate_refresh_tokens: bool = True,
        revoke_on_reuse: bool = True,
        daily_limit: int = 100_000,
        api_enabled: bool = True,
        clock=time.time,
    ):
        oauth = AuthorizationServer(
            client_id=client_id,
            client_secret=client_secret,
            redirect_uris=redirect_uris,
            token_prefix="00DFAKE!",
            access_token_ttl=access_token_ttl,
            rotate_refresh_tokens=rotate_refresh_tokens,
            revoke_on_reuse=revoke_on_reuse,
            require_pkce=True,  # External Client Apps require PKCE by default
            clock=clock,
        )
        super().__init__(tls, oauth)
        self.org_id = "00D5g000004FAKEEAG"
        self.org_name = "Acme Test Org"
        self.user_id = "0055g00000FAKEUAAW"
        self.user = {"name": "Ann Admin", "email": "ann@example.com", "preferred_username": "ann@acme.example"}
        self.instance_url: str | None = None  # None: this server's own URL
        self.api_enabled = api_enabled
        self.daily_limit = daily_limit
        self.daily_used = 0
        self.ids = itertools.count(1)
        self.contacts: dict[str, dict] = {}
        self.deleted: set[str] = set()
        self.tasks: dict[str, dict] = {}

    # --- test setup -------------------------------------------------------------------------------

    @property
    def login_url(self) -> str:
        return self.url()

    def api_base(self) -> str:
        return self.instance_url or self.url()

    def issue_tokens(self, scopes: tuple[str, ...] = SCOPES) -> dict[str, Any]:
        """A token answer as after consent (access_token, refresh_token, instance_url, id, ...)."""
        grant, access = self.oauth.issue(tuple(scopes))
        return self.token_answer(grant.scopes, access, grant.refresh_token)

    def add_contact(self, email: str | None = None, last_name: str = "Existing", **fields: Any) -> dict:
        with self.lock:
            return self._create({"LastName": last_name, **({"Email": email} if email else {}), **fields})

    def seed_contacts(self, count: int, pattern: str = "existing{i}@example.com") -> list[dict]:
        with self.lock:
            return [self._create({"LastName": f"Existing{i}", "Email": pattern.format(i=i)}) for i in range(count)]

    def delete_contact(self, contact_id: str) -> None:
        with self.lock:
            self.contacts.pop(contact_id, None)
            self.deleted.add(contact_id)

    def contact_by_email(self, email: str) -> dict | None:
        with self.lock:
            return next((c for c in self.contacts.values() if (c.get("Email") or "").lower() == email.lower()), None)

    def exhaust_daily(self) -> None:
        with self.lock:
            self.daily_used = self.daily_limit

    def calls(self, method: str, suffix: str) -> int:
        """Requests answered whose normalised path ends with `suffix`, e.g. ("GET", "/query")."""
        with self.lock:
            return sum(
                n for key, n in self.requests_by_path.items() if key.startswith(method + " ") and key.endswith(suffix)
            )

    # --- dispatch ------------------------------------------------------------------------------------

    def dispatch(self, h: SalesforceHandler) -> None:
        raw, path, query = self.read_request(h)
        forced = self.take_forced(h.command, path, re.sub(r"/(003|00T)[A-Za-z0-9]{12,15}$", "/{id}", path))
        self.pause()
        if forced:
            return self.send_forced(h, forced)
        if len(h.path) > MAX_URI:
            return self.send(h, 414, b"<html><body>414 URI Too Long</body></html>")
        if path == "/services/oauth2/authorize" and h.command == "GET":
            return self.authorize(h, query)
        consent = re.fullmatch(r"/__consent/([\w-]+)/(approve|deny)", path)
        if consent and h.command == "GET":
            location = self.oauth.answer(consent.group(1), consent.group(2) == "approve")
            if location is None:
                return self.send(h, 400, b"<html><body>This authorization request has expired.</body></html>")
            return self.redirect(h, location)
        if path == "/services/oauth2/token" and h.command == "POST":
            return self.token_endpoint(h, raw)
        if path == "/services/oauth2/revoke" and h.command == "POST":
            return self.revoke_endpoint(h, raw, query)
        if path == "/services/oauth2/userinfo" and h.command == "GET":
            return self.userinfo(h)
        if path == "/services/data" and h.command == "GET":
            return self.send(h, 200, [{"label": "Winter '25", "url": "/services/data/v62.0", "version": "62.0"}])
        match = VERSION.match(path)
        if match:
            return self.data_api(h, match.group(1), match.group(2) or "", query, raw)
        return self.send(h, 404, sf_error("NOT_FOUND", "The requested resource does not exist"))

    def send(self, h, status: int, payload: Any, headers: dict[str, str] | None = None) -> None:
        with self.lock:
            self.statuses[status] += 1
        if isinstance(payload, bytes):
            return h.send_body(status, payload, "text/html; charset=utf-8", headers)
        if isinstance(payload, str):
            return h.send_body(status, payload.encode(), "text/plain; charset=utf-8", headers)
        return h.send_json(status, payload, headers)

    def default_body(self, status: int) -> Any:
        if status == 401:
            return SESSION_EXPIRED
        if status == 403:
            return sf_error("REQUEST_LIMIT_EXCEEDED", "TotalRequests Limit exceeded.")
        if status >= 500:
            return sf_error("UNKNOWN_EXCEPTION", "An unexpected error occurred. Please include this ErrorId.")
        return sf_error("MALFORMED_QUERY", "malformed request")

    # --- OAuth --------------------------------------------------------------------------------------

    def authorize(self, h, query: dict[str, str]) -> None:
        if query.get("response_type") != "code":
            return self.send(h, 400, b"<html><body>error=unsupported_response_type</body></html>")
        try:
            consent = self._start(query)
        except OAuthError as exc:  # shown on Salesforce's own page: never redirected to an unknown URI
            return self.send(h, 400, f"<html><body>error={exc.error}: {exc.description}</body></html>".encode())
        if self.auto_consent:
            return self.redirect(h, self.oauth.answer(consent.id, self.auto_consent == "approve"))
        return self.send(h, 200, consent_page("Salesforce", consent, ""))

    def token_answer(self, scopes, access: str, refresh: str | None) -> dict[str, Any]:
        answer = {
            "access_token": access,
            "signature": base64.b64encode(secrets.token_bytes(32)).decode(),
            "scope": " ".join(scopes),
            "instance_url": self.api_base(),
            "id": f"{self.url()}/id/{self.org_id}/{self.user_id}",
            "token_type": "Bearer",
            "issued_at": str(int(self.oauth.clock() * 1000)),
        }
        if refresh:
            answer["refresh_token"] = refresh
        return answer

    def token_endpoint(self, h, raw: bytes) -> None:
        self.grant_tokens(h, {k: v[-1] for k, v in parse_qs(raw.decode("utf-8", "replace")).items()})

    def token_refused(self, h, exc: OAuthError) -> None:
        return self.send(h, exc.status, {"error": exc.error, "error_description": exc.description})

    def revoke_endpoint(self, h, raw: bytes, query: dict[str, str]) -> None:
        form = {k: v[-1] for k, v in parse_qs(raw.decode("utf-8", "replace")).items()}
        token = form.get("token") or query.get("token") or ""
        if not self.oauth.revoke(token):
            return self.send(
                h, 400, {"error": "unsupported_token_type", "error_description": "this token type is not supported"}
            )
        return h.send_body(200, b"", "text/html")

    def bearer(self, h) -> tuple[str, Any]:
        token = h.headers.get("Authorization", "").removeprefix("Bearer ").strip()
        return self.oauth.check_access(token)

    def userinfo(self, h) -> None:
        state, token = self.bearer(h)
        if state != "ok":
            return self.send(h, 403, "Bad_OAuth_Token")
        if not {"id", "openid", "profile", "full"} & set(token.scopes):
            return self.send(h, 403, "Insufficient_Scope")
        return self.send(
            h,
            200,
            {
                "sub": f"{self.url()}/id/{self.org_id}/{self.user_id}",
                "user_id": self.user_id,
                "organization_id": self.org_id,
                "preferred_username": self.user["preferred_username"],
                "nickname": "ann",
                "name": self.user["name"],
                "email": self.user["email"],
                "email_verified": True,
                "zoneinfo": "Europe/Berlin",
                "locale": "en_US",
                "user_type": "STANDARD",
                "urls": {"rest": f"{self.api_base()}/services/data/v{{version}}/"},
            },
        )

    # --- the REST API --------------------------------------------------------------------------------

    def data_api(self, h, version: str, rest: str, query: dict[str, str], raw: bytes) -> None:
        state, token = self.bearer(h)
        if state != "ok" or ("api" not in token.scopes and "full" not in token.scopes):
            return self.send(h, 401, SESSION_EXPIRED)
        if not self.api_enabled:
            return self.send(
                h, 403, sf_error("API_DISABLED_FOR_ORG", "The REST API is not enabled for this Organization.")
            )
        with self.lock:
            if self.daily_used >= self.daily_limit:
                return self.send(h, 403, sf_error("REQUEST_LIMIT_EXCEEDED", "TotalRequests Limit exceeded."))
            self.daily_used += 1
            usage = {"Sforce-Limit-Info": f"api-usage={self.daily_used}/{self.daily_limit}"}
        if float(version) < 31.0 or float(version) > 66.0:
            return self.send(h, 404, sf_error("NOT_FOUND", "The requested resource does not exist"), usage)
        body: Any = None
        if raw:
            import json

            try:
                body = json.loads(raw)
            except ValueError:
                return self.send(h, 400, sf_error("JSON_PARSER_ERROR", "Unexpected character"), usage)
        routes = {
            ("GET", "/limits"): self.limits,
            ("GET", "/query"): self.query,
            ("POST", "/composite"): self.composite,
            ("POST", "/composite/sobjects"): self.collection_create,
            ("PATCH", "/composite/sobjects"): self.collection_update,
            ("POST", "/sobjects/Task"): self.create_task,
        }
        handler = routes.get((h.command, rest))
        if handler is None and h.command == "GET" and rest.startswith("/query/"):
            handler = self.query_more
        if handler is None:
            return self.send(h, 404, sf_error("NOT_FOUND", "The requested resource does not exist"), usage)
        with self.lock:
            try:
                status, payload = handler(version, rest, query, body)
            except (TypeError, AttributeError, KeyError, ValueError):
                status, payload = 400, sf_error("JSON_PARSER_ERROR", "Cannot deserialize instance")
        return self.send(h, status, payload, usage)

    def limits(self, version, rest, query, body):
        remaining = max(0, self.daily_limit - self.daily_used)
        return 200, {
            "DailyApiRequests": {"Max": self.daily_limit, "Remaining": remaining},
            "ConcurrentAsyncGetReportInstances": {"Max": 200, "Remaining": 200},
            "DataStorageMB": {"Max": 1024, "Remaining": 1000},
        }

    def _create(self, fields: dict) -> dict:
        contact_id = f"003{next(self.ids):012d}AAA"
        contact = {"Id": contact_id, **{k: v for k, v in fields.items() if k != "attributes"}}
        self.contacts[contact_id] = contact
        return contact

    def query(self, version, rest, query, body):
        soql = query.get("q", "")
        contact = re.fullmatch(r"SELECT Id, Email FROM Contact WHERE Email IN (\(.*\))", soql.strip(), re.S)
        if re.fullmatch(r"SELECT (Id, )?Name FROM Organization( LIMIT 1)?", soql.strip()):
            attributes = {
                "type": "Organization",
                "url": f"/services/data/v{version}/sobjects/Organization/{self.org_id}",
            }
            records = [{"attributes": attributes, "Id": self.org_id, "Name": self.org_name}]
            return 200, {"totalSize": 1, "done": True, "records": records}
        if not contact:
            return 400, sf_error("MALFORMED_QUERY", "unexpected token: this fake knows two queries")
        try:
            emails = {e.lower() for e in parse_literals(contact.group(1))}
        except SOQLError as exc:
            return 400, sf_error("MALFORMED_QUERY", str(exc))
        found = [
            {
                "attributes": {"type": "Contact", "url": f"/services/data/v{version}/sobjects/Contact/{c['Id']}"},
                "Id": c["Id"],
                "Email": c.get("Email"),
            }
            for c in self.contacts.values()
            if (c.get("Email") or "").lower() in emails
        ]
        return 200, self._page(version, found, 0)

    def composite(self, version, rest, query, body):
        """The Composite API, for what the provider sends through it: GET query subrequests (at most
        25 subrequests, 5 of them queries). One call against the API limit, whatever it holds."""
        requests = body.get("compositeRequest") if isinstance(body, dict) else None
        if not isinstance(requests, list) or not requests or len(requests) > 25:
            return 400, sf_error("INVALID_INPUT", "compositeRequest must hold 1 to 25 subrequests")
        answers = []
        for sub in requests:
            url = str(sub.get("url") or "") if isinstance(sub, dict) else ""
            parts = urlsplit(url)
            match = VERSION.match(parts.path)
            if sub.get("method") != "GET" or not match or match.group(2) != "/query":
                status, payload = 400, sf_error("INVALID_INPUT", "this fake runs GET query subrequests only")
            else:
                sub_query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
                status, payload = self.query(match.group(1), "/query", sub_query, None)
            answers.append(
                {"body": payload, "httpHeaders": {}, "httpStatusCode": status, "referenceId": sub.get("referenceId")}
            )
        return 200, {"compositeResponse": answers}

    def _page(self, version: str, records: list[dict], start: int) -> dict:
        page = records[start : start + QUERY_BATCH]
        answer: dict[str, Any] = {
            "totalSize": len(records),
            "done": start + QUERY_BATCH >= len(records),
            "records": page,
        }
        if not answer["done"]:
            locator = f"01gFAKE{secrets.token_hex(4)}"
            self._cursors = getattr(self, "_cursors", {})
            self._cursors[locator] = records
            answer["nextRecordsUrl"] = f"/services/data/v{version}/query/{locator}-{start + QUERY_BATCH}"
        return answer

    def query_more(self, version, rest, query, body):
        locator, _, start = rest.removeprefix("/query/").rpartition("-")
        records = getattr(self, "_cursors", {}).get(locator)
        if records is None or not start.isdigit():
            return 400, sf_error("INVALID_QUERY_LOCATOR", "invalid query locator")
        return 200, self._page(version, records, int(start))

    def _problems(self, record: dict, creating: bool) -> dict | None:
        for name in record:
            if name not in CONTACT_FIELDS and name not in ("attributes", "id", "Id"):
                return record_error("INVALID_FIELD", f"No such column '{name}' on sobject of type Contact", [name])
        if creating and not str(record.get("LastName") or "").strip():
            return record_error("REQUIRED_FIELD_MISSING", "Required fields are missing: [LastName]", ["LastName"])
        for name, limit in CONTACT_FIELDS.items():
            if len(str(record.get(name) or "")) > limit:
                return record_error("STRING_TOO_LONG", f"{name}: data value too large", [name])
        email = record.get("Email")
        if email and not EMAIL.match(str(email)):
            return record_error("INVALID_EMAIL_ADDRESS", f"Email: invalid email address: {email}", ["Email"])
        return None

    def _collection(self, body) -> tuple[list | None, tuple | None]:
        records = body.get("records") if isinstance(body, dict) else None
        if not isinstance(records, list) or not all(isinstance(r, dict) for r in records):
            return None, (400, sf_error("JSON_PARSER_ERROR", "records must be an array of sObjects"))
        if len(records) > COLLECTION_LIMIT:
            message = f"Record limit reached. Cannot submit more than {COLLECTION_LIMIT} records into this call"
            return None, (400, sf_error("EXCEEDED_ID_LIMIT", message))
        for record in records:
            if (record.get("attributes") or {}).get("type") != "Contact":
                return None, (400, sf_error("INVALID_TYPE", "This fake handles Contact collections only"))
        return records, None

    def _finish(self, results: list[dict], writes: list, all_or_none: bool) -> tuple[int, list]:
        if all_or_none and any(not r["success"] for r in results if r):
            rolled = record_error(
                "ALL_OR_NONE_OPERATION_ROLLED_BACK",
                "Record rolled back because not all records were valid and the request was using AllOrNone header",
            )
            return 200, [r if r and not r["success"] else {"success": False, "errors": [rolled]} for r in results]
        for index, write in writes:
            results[index] = write()
        return 200, results

    def collection_create(self, version, rest, query, body):
        records, problem = self._collection(body)
        if problem:
            return problem
        results: list[dict] = [{} for _ in records]
        writes = []
        for index, record in enumerate(records):
            error = self._problems(record, creating=True) or (
                record_error("INVALID_FIELD", "Id not allowed on create", ["Id"])
                if record.get("id") or record.get("Id")
                else None
            )
            if error:
                results[index] = {"success": False, "errors": [error]}
            else:
                writes.append((index, lambda r=record: {"id": self._create(r)["Id"], "success": True, "errors": []}))
        return self._finish(results, writes, bool(body.get("allOrNone")))

    def collection_update(self, version, rest, query, body):
        records, problem = self._collection(body)
        if problem:
            return problem
        results: list[dict] = [{} for _ in records]
        writes = []
        for index, record in enumerate(records):
            record_id = str(record.get("id") or record.get("Id") or "")
            error = self._problems(record, creating=False)
            if not record_id:
                error = record_error("MISSING_ARGUMENT", "Id not specified in an update call", ["Id"])
            elif record_id in self.deleted:
                error = record_error("ENTITY_IS_DELETED", "entity is deleted")
            elif record_id not in self.contacts:
                error = record_error("INVALID_CROSS_REFERENCE_KEY", "invalid cross reference id")
            if error:
                results[index] = {"id": record_id or None, "success": False, "errors": [error]}
                continue

            def write(r=record, rid=record_id):
                fields = {k: v for k, v in r.items() if k not in ("attributes", "id", "Id")}
                self.contacts[rid].update(fields)
                return {"id": rid, "success": True, "errors": []}

            writes.append((index, write))
        return self._finish(results, writes, bool(body.get("allOrNone")))

    def create_task(self, version, rest, query, body):
        if not isinstance(body, dict):
            return 400, sf_error("JSON_PARSER_ERROR", "body must be an object")
        unknown = [name for name in body if name not in TASK_FIELDS]
        if unknown:
            return 400, sf_error("INVALID_FIELD", f"No such column '{unknown[0]}' on sobject of type Task", unknown[:1])
        who = str(body.get("WhoId") or "")
        if who and who not in self.contacts:
            return 400, sf_error("FIELD_INTEGRITY_EXCEPTION", f"Name ID: id value of incorrect type: {who}", ["WhoId"])
        if len(str(body.get("Subject") or "")) > 255:
            return 400, sf_error("STRING_TOO_LONG", "Subject: data value too large", ["Subject"])
        task_id = f"00T{next(self.ids):012d}AAA"
        self.tasks[task_id] = {"Id": task_id, **body}
        return 201, {"id": task_id, "success": True, "errors": []}
