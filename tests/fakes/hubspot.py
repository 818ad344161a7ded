"""A HubSpot CRM v3 API that answers as the real one does (../shared/reference/crm-providers.md §1 and
next-capabilities.md §6.1): Bearer tokens with scopes, the error body shape, contacts batch upsert,
create and update (200/201/207/400/409), notes with an association, and the X-HubSpot-RateLimit-*
headers with 429 for the ten-second and daily policies.

Written by hand from documented behaviour; field names follow the models of HubSpot's Apache-2.0
Python SDK (hubspot/crm/contacts/models: SimplePublicUpsertObject, BatchResponseSimplePublicUpsertObject
WithErrors, StandardError, Error). Nothing of the spec or the SDK is copied.

Benchmark-friendly by default: no burst limit is enforced (`burst_limit=None`) and nothing sleeps
unless `delay` is set. Tests that exercise the 429 path pass `burst_limit` (and a small
`window_seconds`, or a `clock` they advance by hand)."""

from __future__ import annotations

import itertools
import re
import time
import uuid
from collections import deque
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs, urlsplit

from tests.fakes.server import FakeHandler, VendorFake, serve_for_benchmark, vendor_benchmark_args
from tests.fakes.server import Forced as Forced  # kept importable from here, where it was first

READ = "crm.objects.contacts.read"
WRITE = "crm.objects.contacts.write"
ALL_SCOPES = frozenset({READ, WRITE, "oauth"})
BATCH_LIMIT = 100
LIST_LIMIT = 100
NOTE_TO_CONTACT = 202  # HUBSPOT_DEFINED association type id: note -> contact
EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[A-Za-z]{2,}$")
# Properties a standard portal has for contacts (a subset); others fail as PROPERTY_DOESNT_EXIST.
CONTACT_PROPERTIES = frozenset(
    {
        "email", "firstname", "lastname", "phone", "mobilephone", "company", "jobtitle", "website",
        "address", "city", "state", "zip", "country", "lifecyclestage", "hs_lead_status", "hubspot_owner_id",
        "fax", "industry", "salutation", "message", "date_of_birth", "hs_language", "hs_timezone",
    }
)  # fmt: skip
DEFAULT_LIST_PROPERTIES = ("email", "firstname", "lastname")
SYSTEM_PROPERTIES = ("createdate", "hs_object_id", "lastmodifieddate")
# Which scopes each route needs (any one of a list is enough, as HubSpot's granular scopes are).
ROUTE_SCOPES = {
    "contacts.read": [READ],
    "contacts.write": [WRITE],
    "notes.write": [WRITE],
    "account": [],
}


def now_iso() -> str:
    moment = datetime.now(UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def error_body(category: str, message: str, **extra: Any) -> dict:
    """HubSpot's Error schema: status, message, correlationId, category (+ context, errors, links)."""
    return {"status": "error", "message": message, "correlationId": str(uuid.uuid4()), "category": category, **extra}


def invalid_property(name: str, message: str, error: str) -> str:
    return (
        'Property values were not valid: [{"isValid":false,"message":"'
        + message.replace('"', '\\"')
        + f'","error":"{error}","name":"{name}"}}]'
    )


class RollingWindow:
    """HubSpot's TEN_SECONDLY_ROLLING policy: at most `limit` requests in any `seconds` span."""

    def __init__(self, limit: int | None, seconds: float, clock: Callable[[], float]):
        self.limit, self.seconds, self.clock = limit, seconds, clock
        self.stamps: deque[float] = deque()

    def _expire(self, now: float) -> None:
        while self.stamps and self.stamps[0] <= now - self.seconds:
            self.stamps.popleft()

    def admit(self) -> bool:
        if self.limit is None:
            return True
        now = self.clock()
        self._expire(now)
        if len(self.stamps) >= self.limit:
            return False
        self.stamps.append(now)
        return True

    def remaining(self) -> int | None:
        if self.limit is None:
            return None
        self._expire(self.clock())
        return max(0, self.limit - len(self.stamps))


class HubSpotHandler(FakeHandler):
    server_version = "HubSpot-Fake/1.0"


class FakeHubSpot(VendorFake):
    handler_class = HubSpotHandler

    def __init__(
        self,
        tls=None,
        *,
        burst_limit: int | None = None,
        window_seconds: float = 10.0,
        daily_limit: int = 650_000,
        advertised_burst: int = 190,
        clock: Callable[[], float] = time.monotonic,
        portal_id: int = 146_000_123,
    ):
        super().__init__(tls)
        self.ids = itertools.count(1001)
        self.portal_id = portal_id
        self.account = {
            "portalId": portal_id,
            "accountType": "STANDARD",
            "timeZone": "Europe/Berlin",
            "companyCurrency": "EUR",
            "additionalCurrencies": [],
            "utcOffset": "+01:00",
            "utcOffsetMilliseconds": 3_600_000,
            "uiDomain": "app-eu1.hubspot.com",
            "dataHostingLocation": "eu1",
        }
        self.tokens: dict[str, frozenset[str]] = {}
        self.contacts: dict[str, dict] = {}  # id -> {"id", "properties", "createdAt", "updatedAt", "archived"}
        self.by_email: dict[str, str] = {}  # lower-cased email -> id
        self.notes: dict[str, dict] = {}
        self.known_properties = set(CONTACT_PROPERTIES)
        self.strict_batches = False  # True: one invalid input fails the whole batch with 400, nothing written
        # HubSpot does not promise batch results in input order; answering reversed catches code that
        # pairs results with inputs by position instead of by email or id.
        self.reverse_results = True
        self.burst = RollingWindow(burst_limit, window_seconds, clock)
        self.advertised_burst = advertised_burst  # X-HubSpot-RateLimit-Max when no burst limit is enforced
        self.daily_limit = daily_limit
        self.daily_used = 0
        self.count = 0
        self.rate_limited = 0  # 429 answers sent by the limiter (not forced ones)

    # --- test setup -------------------------------------------------------------------------

    def add_token(self, token: str | None = None, scopes=ALL_SCOPES) -> str:
        """A private-app token (pat-eu1-…) with these scopes."""
        token = token or f"pat-eu1-{uuid.uuid4()}"
        with self.lock:
            self.tokens[token] = frozenset(scopes)
        return token

    def add_contact(self, email: str | None = None, **properties: Any) -> dict:
        """A contact that exists in HubSpot already (made there by someone else)."""
        with self.lock:
            if email:
                properties["email"] = email
            return self._create(properties)

    def seed_contacts(self, count: int, email_pattern: str = "existing{i}@example.com") -> list[dict]:
        with self.lock:
            return [
                self._create({"email": email_pattern.format(i=i), "firstname": "Existing", "lastname": str(i)})
                for i in range(count)
            ]

    def exhaust_daily(self) -> None:
        with self.lock:
            self.daily_used = self.daily_limit

    def reset_counters(self) -> None:
        with self.lock:
            super().reset_counters()
            self.count = self.rate_limited = 0

    def contact_by_email(self, email: str) -> dict | None:
        with self.lock:
            contact_id = self.by_email.get(email.lower())
            return self.contacts.get(contact_id) if contact_id else None

    # --- request handling -------------------------------------------------------------------

    def dispatch(self, h: HubSpotHandler) -> None:
        body = h.read_json()
        parts = urlsplit(h.path)
        path = parts.path.rstrip("/") or "/"
        query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
        with self.lock:
            self.count += 1
            forced = self.take_forced(h.command, path, re.sub(r"/contacts/[^/]+$", "/contacts/{id}", path))
        self.pause()
        if forced:
            return self.send_forced(h, forced)
        if path == "/__stats":  # for the benchmark: what this server answered
            with self.lock:
                stats = {"count": self.count, "by_path": dict(self.requests_by_path), "contacts": len(self.contacts)}
            return self.send(h, 200, stats, rate_headers=False)
        token = h.headers.get("Authorization", "").removeprefix("Bearer ").strip()
        scopes = self.tokens.get(token)
        if scopes is None:
            return self.send(
                h,
                401,
                error_body(
                    "INVALID_AUTHENTICATION",
                    "Authentication credentials not found. This API supports OAuth 2.0 authentication and you can "
                    "find more details at https://developers.hubspot.com/docs/methods/auth/oauth-overview",
                ),
                {"x-hubspot-auth-failure": "401 Unauthorized"},
                rate_headers=False,
            )
        with self.lock:
            policy = "DAILY" if self.daily_used >= self.daily_limit else None
            if policy is None and not self.burst.admit():
                policy = "TEN_SECONDLY_ROLLING"
            if policy:
                self.rate_limited += 1
            else:
                self.daily_used += 1
        if policy:
            return self.send(h, 429, self.rate_limit_body(policy))
        route = self.route(h.command, path)
        if route is None:
            return self.send(h, 404, error_body("OBJECT_NOT_FOUND", "resource not found"))
        name, handler = route
        needed = ROUTE_SCOPES[name]
        if needed and not scopes & set(needed):
            return self.send(h, 403, self.missing_scopes_body(needed))
        if isinstance(body, str):
            return self.send(h, 400, error_body("VALIDATION_ERROR", "Invalid input JSON on line 1, column 1"))
        with self.lock:
            try:
                status, payload = handler(path, query, body)
            except (TypeError, AttributeError, ValueError, KeyError):  # a body of the wrong shape
                status, payload = 400, error_body("VALIDATION_ERROR", "Invalid input: the body does not fit the schema")
        return self.send(h, status, payload)

    def route(self, method: str, path: str):
        contacts = "/crm/v3/objects/contacts"
        table = {
            ("GET", "/account-info/v3/details"): ("account", lambda *_: (200, dict(self.account))),
            ("GET", contacts): ("contacts.read", self.list_contacts),
            ("POST", f"{contacts}/batch/upsert"): ("contacts.write", self.batch_upsert),
            ("POST", f"{contacts}/batch/create"): ("contacts.write", self.batch_create),
            ("POST", f"{contacts}/batch/update"): ("contacts.write", self.batch_update),
            ("POST", "/crm/v3/objects/notes"): ("notes.write", self.create_note),
        }
        if (method, path) in table:
            return table[(method, path)]
        if method == "GET" and re.fullmatch(rf"{contacts}/[^/]+", path):
            return "contacts.read", self.get_contact
        return None

    # --- answers ------------------------------------------------------------------------------

    def rate_headers(self) -> dict[str, str]:
        with self.lock:
            remaining = self.burst.remaining()
            limit = self.burst.limit if self.burst.limit is not None else self.advertised_burst
            return {
                "X-HubSpot-RateLimit-Daily": str(self.daily_limit),
                "X-HubSpot-RateLimit-Daily-Remaining": str(max(0, self.daily_limit - self.daily_used)),
                "X-HubSpot-RateLimit-Interval-Milliseconds": str(round(self.burst.seconds * 1000)),
                "X-HubSpot-RateLimit-Max": str(limit),
                "X-HubSpot-RateLimit-Remaining": str(limit if remaining is None else remaining),
            }

    def send(self, h, status: int, payload: Any, headers=None, rate_headers: bool = True) -> None:
        with self.lock:
            self.statuses[status] += 1
        all_headers = {**(self.rate_headers() if rate_headers else {}), **(headers or {})}
        if isinstance(payload, bytes):
            return h.send_body(status, payload, "text/html; charset=utf-8", all_headers)
        return h.send_json(status, payload, all_headers)

    def default_body(self, status: int) -> dict:
        if status == 429:
            return self.rate_limit_body("TEN_SECONDLY_ROLLING")
        if status == 401:
            return error_body("INVALID_AUTHENTICATION", "Authentication credentials not found.")
        if status == 403:
            return self.missing_scopes_body([WRITE])
        if status >= 500:
            return error_body("INTERNAL_ERROR", "internal error")
        return error_body("VALIDATION_ERROR", "Invalid input")

    def rate_limit_body(self, policy: str) -> dict:
        label = {"DAILY": "daily", "TEN_SECONDLY_ROLLING": "ten_secondly_rolling"}[policy]
        return {
            "status": "error",
            "message": f"You have reached your {label} limit.",
            "errorType": "RATE_LIMIT",
            "correlationId": str(uuid.uuid4()),
            "policyName": policy,
            "groupName": f"privateapp:{self.portal_id}",
        }

    @staticmethod
    def missing_scopes_body(scopes: list[str]) -> dict:
        return error_body(
            "MISSING_SCOPES",
            "This app hasn't been granted all required scopes to make this call. "
            "Read more about required scopes here: https://developers.hubspot.com/scopes.",
            errors=[
                {
                    "message": "One or more of the following scopes are required.",
                    "context": {"requiredGranularScopes": list(scopes)},
                }
            ],
            links={"scopes": "https://developers.hubspot.com/scopes"},
        )

    # --- contacts -----------------------------------------------------------------------------

    def _create(self, properties: dict) -> dict:
        contact_id = str(next(self.ids))
        stamp = now_iso()
        props = {k: self._value(v) for k, v in properties.items()}
        if props.get("email"):
            props["email"] = props["email"].lower()
            self.by_email[props["email"]] = contact_id
        props.update({"hs_object_id": contact_id, "createdate": stamp, "lastmodifieddate": stamp})
        contact = {"id": contact_id, "properties": props, "createdAt": stamp, "updatedAt": stamp, "archived": False}
        self.contacts[contact_id] = contact
        return contact

    def _update(self, contact: dict, properties: dict) -> None:
        stamp = now_iso()
        props = {k: self._value(v) for k, v in properties.items()}
        if "email" in props:
            props["email"] = props["email"].lower()
            old = contact["properties"].get("email")
            if old:
                self.by_email.pop(old, None)
            if props["email"]:
                self.by_email[props["email"]] = contact["id"]
        contact["properties"].update(props, lastmodifieddate=stamp)
        contact["updatedAt"] = stamp

    @staticmethod
    def _value(value: Any) -> str:
        if value is None:
            return ""
        if isinstance(value, bool):
            return "true" if value else "false"
        return str(value)

    def _invalid(self, properties: Any) -> str | None:
        """The validation message for these properties, or None when they are fine."""
        if not isinstance(properties, dict):
            return "Invalid input: properties must be an object"
        for name in properties:
            if name not in self.known_properties:
                return invalid_property(name, f'Property "{name}" does not exist', "PROPERTY_DOESNT_EXIST")
        email = properties.get("email")
        if email and not EMAIL.match(str(email)):
            return invalid_property("email", f"Email address {email} is invalid", "INVALID_EMAIL")
        return None

    @staticmethod
    def _shown(contact: dict, sent: dict, trace: str | None = None) -> dict:
        """Batch answers carry the properties that were written plus the system ones (and the
        input's objectWriteTraceId, when it had one)."""
        props = contact["properties"]
        shown = {
            "id": contact["id"],
            "properties": {k: props.get(k) for k in (*sent, *SYSTEM_PROPERTIES)},
            "createdAt": contact["createdAt"],
            "updatedAt": contact["updatedAt"],
            "archived": False,
        }
        if trace is not None:
            shown["objectWriteTraceId"] = trace
        return shown

    def _inputs(self, body: Any) -> tuple[list | None, tuple[int, dict] | None]:
        inputs = body.get("inputs") if isinstance(body, dict) else None
        if not isinstance(inputs, list) or not all(isinstance(i, dict) for i in inputs):
            return None, (400, error_body("VALIDATION_ERROR", "Invalid input: inputs must be a list of objects"))
        if len(inputs) > BATCH_LIMIT:
            message = f"Batch input limit exceeded: {len(inputs)} inputs given, the maximum is {BATCH_LIMIT}."
            return None, (400, error_body("VALIDATION_ERROR", message, context={"size": [str(len(inputs))]}))
        return inputs, None

    @staticmethod
    def _duplicates(keys: list[str]) -> tuple[int, dict] | None:
        duplicates = sorted({k for k in keys if k and keys.count(k) > 1})
        if not duplicates:
            return None
        message = f"Duplicate IDs found in batch input: [{', '.join(duplicates)}]. IDs must be unique"
        return 400, error_body("VALIDATION_ERROR", message, context={"ids": duplicates})

    def _batch_answer(self, results: list, errors: list, ok_status: int = 200) -> tuple[int, dict]:
        stamp = now_iso()
        if self.reverse_results:
            results.reverse()
        answer: dict[str, Any] = {"status": "COMPLETE", "results": results, "startedAt": stamp, "completedAt": stamp}
        if errors:
            answer.update(numErrors=len(errors), errors=errors)
            return 207, answer
        return ok_status, answer

    @staticmethod
    def _input_error(message: str, category: str = "VALIDATION_ERROR", **context: list[str]) -> dict:
        """One entry of a 207's errors[]: the StandardError shape, its context naming the inputs."""
        context = {k: v for k, v in context.items() if v}
        return {"status": "error", "category": category, "message": message, "context": context, "errors": []}

    @staticmethod
    def _trace(item: dict) -> list[str]:
        trace = item.get("objectWriteTraceId")
        return [str(trace)] if trace is not None else []

    def _whole_batch_fails(self, errors: list, multi_status: bool = True) -> tuple[int, dict] | None:
        """Without multi-status (or with `strict_batches`), the first invalid input fails the whole
        batch with 400 and nothing is written."""
        if errors and (self.strict_batches or not multi_status):
            return 400, error_body(errors[0]["category"], errors[0]["message"], context=errors[0]["context"])
        return None

    def batch_upsert(self, path, query, body) -> tuple[int, dict]:
        inputs, problem = self._inputs(body)
        if problem:
            return problem
        keys = [str(i.get("id") or "").strip().lower() for i in inputs]
        if problem := self._duplicates(keys):
            return problem
        for item in inputs:
            if item.get("idProperty") not in (None, "email", "hs_object_id"):
                message = f"Unable to perform update/upsert by non-unique 0-1 property {item.get('idProperty')}"
                return 400, error_body("VALIDATION_ERROR", message)
        results, errors, writes = [], [], []
        for item, key in zip(inputs, keys, strict=True):
            props = item.get("properties") or {}
            if not isinstance(props, dict):
                errors.append(self._input_error("Invalid input: properties must be an object", ids=[key]))
                continue
            props = dict(props)
            by_email = item.get("idProperty") == "email"
            if by_email:
                props["email"] = props.get("email") or key
            message = "Invalid input: id is required" if not key else self._invalid(props)
            if message:
                ids = [str(item.get("id") or "")]
                errors.append(self._input_error(message, ids=ids, objectWriteTraceId=self._trace(item)))
                continue
            writes.append((item, key, props, by_email))
        if problem := self._whole_batch_fails(errors):
            return problem
        for item, key, props, by_email in writes:
            existing_id = self.by_email.get(key) if by_email else key
            contact = self.contacts.get(existing_id or "")
            if contact is None and not by_email:
                errors.append(self._input_error(f"Object {key} not found", "OBJECT_NOT_FOUND", ids=[key]))
                continue
            created = contact is None
            if created:
                contact = self._create(props)
            else:
                self._update(contact, props)
            trace = item.get("objectWriteTraceId")
            results.append({**self._shown(contact, props, trace), "new": created})
        return self._batch_answer(results, errors)

    def batch_create(self, path, query, body) -> tuple[int, dict]:
        """Multi-status (207) only when every input carries an objectWriteTraceId, as HubSpot documents
        for batch create; otherwise one invalid input fails the batch. An existing email: 409."""
        inputs, problem = self._inputs(body)
        if problem:
            return problem
        seen: set[str] = set()
        for item in inputs:
            email = str((item.get("properties") or {}).get("email") or "").lower()
            if email and (email in self.by_email or email in seen):
                existing = self.by_email.get(email, "")
                message = f"Contact already exists. Existing ID: {existing}" if existing else "Duplicate email"
                return 409, error_body("CONFLICT", message)  # the whole batch, nothing written
            seen.add(email)
        traced = all(item.get("objectWriteTraceId") is not None for item in inputs)
        results, errors, writes = [], [], []
        for item in inputs:
            props = item.get("properties") or {}
            message = self._invalid(props)
            if message:
                errors.append(self._input_error(message, objectWriteTraceId=self._trace(item)))
            else:
                writes.append(item)
        if problem := self._whole_batch_fails(errors, multi_status=traced):
            return problem
        for item in writes:
            props = item.get("properties") or {}
            results.append(self._shown(self._create(dict(props)), props, item.get("objectWriteTraceId")))
        return self._batch_answer(results, errors, ok_status=201)

    def batch_update(self, path, query, body) -> tuple[int, dict]:
        inputs, problem = self._inputs(body)
        if problem:
            return problem
        keys = [str(i.get("id") or "") for i in inputs]
        if problem := self._duplicates(keys):
            return problem
        results, errors, missing, writes = [], [], [], []
        for item, key in zip(inputs, keys, strict=True):
            props = item.get("properties") or {}
            contact = self.contacts.get(key)
            if contact is None:
                missing.append(key)
                continue
            message = self._invalid(props)
            email = str(props.get("email") or "").lower()
            if not message and email and self.by_email.get(email, key) != key:
                message = f"Contact already exists. Existing ID: {self.by_email[email]}"
                errors.append(self._input_error(message, "CONFLICT", ids=[key]))
                continue
            if message:
                errors.append(self._input_error(message, ids=[key]))
                continue
            writes.append((item, contact, props))
        if missing:
            message = "Could not get some CONTACT objects, they may be deleted or not exist. Check that ids are valid."
            errors.append(self._input_error(message, "OBJECT_NOT_FOUND", ids=missing))
        if problem := self._whole_batch_fails(errors):
            return problem
        for item, contact, props in writes:
            self._update(contact, props)
            results.append(self._shown(contact, props, item.get("objectWriteTraceId")))
        return self._batch_answer(results, errors)

    def list_contacts(self, path, query, body) -> tuple[int, dict]:
        try:
            limit = min(max(int(query.get("limit", 10)), 1), LIST_LIMIT)
            after = int(query.get("after", 0))
        except ValueError:
            return 400, error_body("VALIDATION_ERROR", "Invalid input: limit and after must be integers")
        wanted = [p for p in query.get("properties", "").split(",") if p] or list(DEFAULT_LIST_PROPERTIES)
        ids = [i for i in self.contacts if int(i) > after]
        page = ids[:limit]
        rows = []
        for contact_id in page:
            contact = self.contacts[contact_id]
            props = {k: contact["properties"].get(k) for k in (*wanted, *SYSTEM_PROPERTIES)}
            rows.append({**{k: v for k, v in contact.items() if k != "properties"}, "properties": props})
        answer: dict[str, Any] = {"results": rows}
        if len(ids) > limit:
            cursor = page[-1]
            link = f"https://api.hubapi.com/crm/v3/objects/contacts?after={cursor}&limit={limit}"
            answer["paging"] = {"next": {"after": cursor, "link": link}}
        return 200, answer

    def get_contact(self, path, query, body) -> tuple[int, dict]:
        key = path.rsplit("/", 1)[1]
        contact_id = self.by_email.get(key.lower()) if query.get("idProperty") == "email" else key
        contact = self.contacts.get(contact_id or "")
        if contact is None:
            return 404, error_body("OBJECT_NOT_FOUND", "resource not found")
        return 200, self._shown(contact, DEFAULT_LIST_PROPERTIES)

    # --- notes --------------------------------------------------------------------------------

    def create_note(self, path, query, body) -> tuple[int, dict]:
        body = body if isinstance(body, dict) else {}
        props = body.get("properties") or {}
        if not props.get("hs_timestamp"):
            return 400, error_body(
                "VALIDATION_ERROR",
                invalid_property("hs_timestamp", "hs_timestamp is required", "REQUIRED_PROPERTY"),
            )
        for association in body.get("associations") or []:
            target = str((association.get("to") or {}).get("id") or "")
            types = association.get("types") or []
            if not any(
                t.get("associationCategory") == "HUBSPOT_DEFINED" and t.get("associationTypeId") == NOTE_TO_CONTACT
                for t in types
            ):
                return 400, error_body("VALIDATION_ERROR", "One or more association types are invalid")
            if target not in self.contacts:
                return 400, error_body(
                    "VALIDATION_ERROR", f"One or more associations are invalid: CONTACT {target} does not exist"
                )
        note_id = str(next(self.ids))
        stamp = now_iso()
        stored = {k: self._value(v) for k, v in props.items()}
        stored.update({"hs_object_id": note_id, "hs_createdate": stamp, "hs_lastmodifieddate": stamp})
        note = {
            "id": note_id,
            "properties": stored,
            "createdAt": stamp,
            "updatedAt": stamp,
            "archived": False,
            "contact_ids": [str(a["to"]["id"]) for a in body.get("associations") or []],
        }
        self.notes[note_id] = note
        return 201, {k: v for k, v in note.items() if k != "contact_ids"}


def main() -> None:
    """Serve a fake HubSpot on its own (for the benchmark): prints `port token`."""
    args = vendor_benchmark_args(window_seconds=10.0, seeded="contacts")
    server = FakeHubSpot(burst_limit=args.burst_limit, window_seconds=args.window_seconds)
    server.delay = args.delay_ms / 1000
    server.seed_contacts(args.seed)
    serve_for_benchmark(server, server.add_token())


if __name__ == "__main__":
    main()
