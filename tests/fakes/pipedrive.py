"""A Pipedrive API that answers as the real one does (../shared/reference/crm-providers.md §2 and
next-capabilities.md §6.2): the `x-api-token` header (and the legacy `api_token` query parameter,
recorded so tests can prove we never use it), `/v1/users/me`, persons API v2 with cursor paging,
search with its own 10-per-2-seconds limit, notes, and `x-ratelimit-*` headers with 429.

Written by hand from documented behaviour; field names follow the models of Pipedrive's MIT
Node.js SDK (src/versions/v2/models/add-person-request*.ts, get-person-search-response*.ts,
src/versions/v1/models/base-user.ts, get-current-user-response*.ts, add-note-request*.ts).
Nothing of the spec or the SDK is copied.

Benchmark-friendly by default: the general burst budget is not enforced (`burst_limit=None`),
only search has its documented limit, and nothing sleeps unless `delay` is set."""

from __future__ import annotations

import base64
import bisect
import itertools
import json
import math
import re
import secrets
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs, urlsplit

from tests.fakes.server import FakeHandler, VendorFake, serve_for_benchmark, vendor_benchmark_args

ERROR_INFO = "Please check developers.pipedrive.com for more information about Pipedrive API."
UNAUTHORIZED = {
    "success": False,
    "error": "unauthorized access",
    "errorCode": 401,
    "error_info": "Please check developers.pipedrive.com",
}
LIST_LIMIT = 500
ID_SEGMENT = re.compile(r"^(.*/(?:persons|notes))/\d+$")
ID_PLACEHOLDER = r"\1/{id}"
EMAIL_LABELS = frozenset({"work", "home", "other"})
PHONE_LABELS = frozenset({"work", "home", "mobile", "other"})


def now_iso() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def failure(message: str, **extra: Any) -> dict:
    return {
        "success": False,
        "error": message,
        "error_info": ERROR_INFO,
        "data": None,
        "additional_data": None,
        **extra,
    }


def encode_cursor(last_id: int) -> str:
    """An opaque cursor like Pipedrive's: unpadded base64url of a small JSON object."""
    raw = json.dumps(
        {"field": "id", "fieldValue": last_id, "sortDirection": "asc", "id": last_id}, separators=(",", ":")
    )
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> int:
    raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
    return int(json.loads(raw)["id"])


class FixedWindow:
    """A budget of `limit` requests per `seconds`; `reset_in` is what x-ratelimit-reset reports."""

    def __init__(self, limit: int | None, seconds: float, clock: Callable[[], float]):
        self.limit, self.seconds, self.clock = limit, seconds, clock
        self.started = clock()
        self.used = 0

    def _roll(self) -> float:
        now = self.clock()
        if now - self.started >= self.seconds:
            self.started, self.used = now, 0
        return now

    def admit(self) -> bool:
        self._roll()
        if self.limit is not None and self.used >= self.limit:
            return False
        self.used += 1
        return True

    def remaining(self) -> int | None:
        self._roll()
        return None if self.limit is None else max(0, self.limit - self.used)

    def reset_in(self) -> float:
        return max(0.0, self.seconds - (self._roll() - self.started))


@dataclass
class User:
    id: int
    name: str
    email: str
    company_id: int
    company_name: str
    company_domain: str


class PipedriveHandler(FakeHandler):
    server_version = "Pipedrive-Fake/1.0"


class FakePipedrive(VendorFake):
    handler_class = PipedriveHandler

    def __init__(
        self,
        tls=None,
        *,
        company_domain: str = "acme",
        company_name: str = "Acme Ltd",
        burst_limit: int | None = None,
        search_limit: int | None = 10,
        window_seconds: float = 2.0,
        advertised_limit: int = 80,
        clock: Callable[[], float] = time.monotonic,
    ):
        super().__init__(tls)
        self.ids = itertools.count(1)
        self.note_ids = itertools.count(1)
        self.user_ids = itertools.count(1001)
        self.company_id = 5_550_001
        self.company_domain = company_domain
        self.company_name = company_name
        self.tokens: dict[str, User] = {}
        self.persons: dict[int, dict] = {}
        self.notes: dict[int, dict] = {}
        self.burst = FixedWindow(burst_limit, window_seconds, clock)
        self.search_window = FixedWindow(search_limit, window_seconds, clock)
        self.advertised_limit = advertised_limit  # x-ratelimit-limit when no burst limit is enforced
        self.count = 0
        self.search_calls = 0  # GET /api/v2/persons/search, answered or refused
        self.query_token_uses = 0  # requests that carried the token in the URL (?api_token=)
        self.rate_limited = 0  # 429 answers sent by the limiter (not forced ones)

    # --- test setup -------------------------------------------------------------------------

    def add_user(
        self,
        token: str | None = None,
        name: str = "Ann Admin",
        email: str = "ann@acme.example",
        company_domain: str | None = None,
    ) -> str:
        """A user with an API token. `company_domain` other than the server's = a token of another company."""
        token = token or secrets.token_hex(20)  # 40 hex characters, like a real API token
        with self.lock:
            other = company_domain not in (None, self.company_domain)
            self.tokens[token] = User(
                next(self.user_ids),
                name,
                email,
                self.company_id + 1 if other else self.company_id,
                f"{company_domain.title()} Inc" if other else self.company_name,
                company_domain if other else self.company_domain,
            )
        return token

    def add_person(self, name: str, email: str | None = None, phone: str | None = None, **fields: Any) -> dict:
        """A person that exists in Pipedrive already (made there by someone else)."""
        body: dict[str, Any] = {"name": name, **fields}
        if email:
            body["emails"] = [{"value": email, "primary": True, "label": "work"}]
        if phone:
            body["phones"] = [{"value": phone, "primary": True, "label": "mobile"}]
        with self.lock:
            return self._create(body, owner_id=1001)

    def seed_persons(self, count: int, email_pattern: str = "existing{i}@example.com", with_phone: bool = False):
        """`count` existing persons, person i with email `email_pattern.format(i=i)`."""
        with self.lock:
            return [
                self._create(
                    {
                        "name": f"Existing {i}",
                        "emails": [{"value": email_pattern.format(i=i), "primary": True, "label": "work"}],
                        "phones": [{"value": f"+4930{i:07d}", "primary": True, "label": "mobile"}]
                        if with_phone
                        else [],
                    },
                    owner_id=1001,
                )
                for i in range(count)
            ]

    def reset_counters(self) -> None:
        with self.lock:
            super().reset_counters()
            self.count = self.search_calls = self.query_token_uses = self.rate_limited = 0

    def persons_with_email(self, email: str) -> list[dict]:
        wanted = email.lower()
        with self.lock:
            return [p for p in self.persons.values() if any(e["value"].lower() == wanted for e in p["emails"])]

    # --- request handling -------------------------------------------------------------------

    def dispatch(self, h: PipedriveHandler) -> None:
        body = h.read_json()
        parts = urlsplit(h.path)
        path = parts.path.rstrip("/") or "/"
        query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
        with self.lock:
            self.count += 1
            if "api_token" in query:
                self.query_token_uses += 1
            forced = self.take_forced(h.command, path, ID_SEGMENT.sub(ID_PLACEHOLDER, path))
        self.pause()
        if forced:
            return self.send_forced(h, forced)
        if path == "/__stats":  # for the benchmark: what this server answered
            with self.lock:
                stats = {"count": self.count, "by_path": dict(self.requests_by_path), "persons": len(self.persons)}
            return self.send(h, 200, stats, rate_headers=False)
        user = self.tokens.get(h.headers.get("x-api-token") or query.get("api_token") or "")
        if user is None:
            headers = {"x-401-by-gw": "true", "x-correlation-id": str(uuid.uuid4())}
            return self.send(h, 401, UNAUTHORIZED, headers, rate_headers=False)
        searching = h.command == "GET" and path == "/api/v2/persons/search"
        with self.lock:
            if searching:
                self.search_calls += 1
            refused_by = None
            if not self.burst.admit():
                refused_by = "burst"
            elif searching and not self.search_window.admit():
                refused_by = "search"
            if refused_by:
                self.rate_limited += 1
        if refused_by:
            return self.send(h, 429, self.default_body(429), search=refused_by == "search")
        if isinstance(body, str):
            return self.send(h, 400, failure("Invalid JSON in request body"))
        with self.lock:
            try:
                status, payload = self.route(h.command, path, query, body or {}, user)
            except (TypeError, AttributeError, ValueError, KeyError):  # a body of the wrong shape
                status, payload = 400, failure("Validation failed", code="ERR_SCHEMA_VALIDATION_FAILED")
        return self.send(h, status, payload, search=searching)

    def route(self, method: str, path: str, query: dict, body: Any, user: User) -> tuple[int, dict]:
        if not isinstance(body, dict):
            return 400, failure("Request body must be a JSON object")
        if (method, path) == ("GET", "/v1/users/me"):
            return 200, {"success": True, "data": self.me(user)}
        if (method, path) == ("GET", "/api/v2/persons"):
            return self.list_persons(query)
        if (method, path) == ("POST", "/api/v2/persons"):
            problem = self._invalid(body, creating=True)
            if problem:
                return 400, problem
            return 200, {"success": True, "data": self._create(body, owner_id=user.id)}
        if (method, path) == ("GET", "/api/v2/persons/search"):
            return self.search(query)
        match = re.fullmatch(r"/api/v2/persons/(\d+)", path)
        if match and method in ("GET", "PATCH"):
            person = self.persons.get(int(match.group(1)))
            if person is None or person["is_deleted"]:
                return 404, failure("Person not found", code="ERR_NOT_FOUND")
            if method == "GET":
                return 200, {"success": True, "data": person}
            problem = self._invalid(body, creating=False)
            if problem:
                return 400, problem
            self._update(person, body)
            return 200, {"success": True, "data": person}
        if (method, path) == ("POST", "/v1/notes"):
            return self.add_note(body, user)
        return 404, failure("Unknown method .")

    # --- answers ------------------------------------------------------------------------------

    def send(self, h, status: int, payload: Any, headers=None, rate_headers: bool = True, search: bool = False):
        with self.lock:
            self.statuses[status] += 1
            window = self.search_window if search else self.burst
            extra: dict[str, str] = {}
            if rate_headers:
                remaining = window.remaining()
                limit = window.limit if window.limit is not None else self.advertised_limit
                left = window.reset_in()
                # Whole seconds, as Pipedrive sends; fractions only for the sub-second windows of tests.
                reset = str(math.ceil(left)) if window.seconds >= 1 else f"{left:.3f}"
                extra = {
                    "x-ratelimit-limit": str(limit),
                    "x-ratelimit-remaining": str(limit if remaining is None else remaining),
                    "x-ratelimit-reset": reset,
                }
        extra.update(headers or {})
        if isinstance(payload, bytes):
            return h.send_body(status, payload, "text/html; charset=utf-8", extra)
        return h.send_json(status, payload, extra)

    @staticmethod
    def default_body(status: int) -> dict:
        if status == 401:
            return dict(UNAUTHORIZED)
        if status == 429:
            # The exact wording is not documented (crm-providers.md §2.5); the shape is.
            return {"success": False, "error": "Request over limit", "errorCode": 429, "error_info": ERROR_INFO}
        if status == 403:
            return {"success": False, "error": "Scope and URL mismatch", "errorCode": 403}
        if status >= 500:
            return {"success": False, "error": "Internal server error", "errorCode": status, "error_info": ERROR_INFO}
        return failure("Bad request")

    def me(self, user: User) -> dict:
        return {
            "id": user.id,
            "name": user.name,
            "default_currency": "EUR",
            "locale": "en_US",
            "lang": 1,
            "email": user.email,
            "phone": None,
            "activated": True,
            "last_login": "2026-11-25 09:00:00",
            "created": "2024-03-01 10:00:00",
            "modified": None,
            "has_created_company": True,
            "access": [{"app": "sales", "admin": True, "permission_set_id": "62a4d3c1-0a1b-4c2d-9e8f-0123456789ab"}],
            "active_flag": True,
            "timezone_name": "Europe/Berlin",
            "timezone_offset": "+01:00",
            "role_id": 1,
            "icon_url": None,
            "is_you": True,
            "is_deleted": False,
            "company_id": user.company_id,
            "company_name": user.company_name,
            "company_domain": user.company_domain,
            "company_country": "DE",
            "company_industry": "Software",
            "language": {"language_code": "en", "country_code": "US"},
        }

    # --- persons ------------------------------------------------------------------------------

    @staticmethod
    def _invalid(body: dict, creating: bool) -> dict | None:
        """Pipedrive's 400 for a body that breaks the schema, or None."""
        if creating and not str(body.get("name") or "").strip():
            return failure("Validation failed: name: Parameter 'name' is required", code="ERR_SCHEMA_VALIDATION_FAILED")
        if "name" in body and not str(body.get("name") or "").strip():
            return failure(
                "Validation failed: name: Parameter 'name' can not be empty", code="ERR_SCHEMA_VALIDATION_FAILED"
            )
        for key, labels in (("emails", EMAIL_LABELS), ("phones", PHONE_LABELS)):
            items = body.get(key)
            if items is None:
                continue
            if not isinstance(items, list) or not all(
                isinstance(i, dict) and isinstance(i.get("value"), str) for i in items
            ):
                message = f"Validation failed: {key}: Parameter '{key}' must be an array of objects with a value"
                return failure(message, code="ERR_SCHEMA_VALIDATION_FAILED")
            if any(i.get("label") is not None and i["label"] not in labels for i in items):
                message = f"Validation failed: {key}: label must be one of {', '.join(sorted(labels))}"
                return failure(message, code="ERR_SCHEMA_VALIDATION_FAILED")
        return None

    @staticmethod
    def _contacts(items: list[dict] | None, default_label: str) -> list[dict]:
        rows = [
            {"value": i["value"], "primary": bool(i.get("primary")), "label": i.get("label") or default_label}
            for i in items or []
        ]
        if rows and not any(r["primary"] for r in rows):
            rows[0]["primary"] = True
        return rows

    def _create(self, body: dict, owner_id: int) -> dict:
        stamp = now_iso()
        name = str(body["name"]).strip()
        first, _, last = name.partition(" ")
        person = {
            "id": next(self.ids),
            "name": name,
            "first_name": first,
            "last_name": last or None,
            "owner_id": body.get("owner_id") or owner_id,
            "org_id": body.get("org_id"),
            "add_time": stamp,
            "update_time": stamp,
            "emails": self._contacts(body.get("emails"), "work"),
            "phones": self._contacts(body.get("phones"), "work"),
            "is_deleted": False,
            "visible_to": body.get("visible_to", 3),
            "label_ids": body.get("label_ids", []),
            "picture_id": None,
            "custom_fields": body.get("custom_fields") or {},
        }
        self.persons[person["id"]] = person
        return person

    def _update(self, person: dict, body: dict) -> None:
        for key in ("owner_id", "org_id", "visible_to", "label_ids"):
            if key in body:
                person[key] = body[key]
        if "name" in body:
            person["name"] = str(body["name"]).strip()
            first, _, last = person["name"].partition(" ")
            person["first_name"], person["last_name"] = first, last or None
        for key in ("emails", "phones"):
            if key in body:  # a list replaces the person's list
                person[key] = self._contacts(body[key], "work")
        if "custom_fields" in body:
            person["custom_fields"].update(body["custom_fields"] or {})
        person["update_time"] = now_iso()

    def list_persons(self, query: dict) -> tuple[int, dict]:
        try:
            limit = int(query.get("limit", 100))
            after = decode_cursor(query["cursor"]) if query.get("cursor") else 0
        except (ValueError, KeyError, TypeError, UnicodeDecodeError):
            return 400, failure("Invalid cursor or limit", code="ERR_SCHEMA_VALIDATION_FAILED")
        if not 1 <= limit <= LIST_LIMIT:
            return 400, failure(
                f"Validation failed: limit: must be between 1 and {LIST_LIMIT}", code="ERR_SCHEMA_VALIDATION_FAILED"
            )
        ids = list(self.persons)  # ascending: ids come from one counter
        start = bisect.bisect_right(ids, after)
        rows = [p for p in (self.persons[i] for i in ids[start:]) if not p["is_deleted"]][: limit + 1]
        next_cursor = None
        if len(rows) > limit:
            rows = rows[:limit]
            next_cursor = encode_cursor(rows[-1]["id"])
        return 200, {"success": True, "data": rows, "additional_data": {"next_cursor": next_cursor}}

    def search(self, query: dict) -> tuple[int, dict]:
        term = query.get("term", "")
        exact = query.get("exact_match", "").lower() == "true"
        if len(term) < (1 if exact else 2):
            return 400, failure(
                "Validation failed: term: must be at least 2 characters long", code="ERR_SCHEMA_VALIDATION_FAILED"
            )
        fields = [f for f in query.get("fields", "custom_fields,email,notes,phone,name").split(",") if f]
        wanted = term.lower()

        def hit(value: str) -> bool:
            return value.lower() == wanted if exact else wanted in value.lower()

        items = []
        for person in self.persons.values():
            values = []
            if "email" in fields:
                values += [e["value"] for e in person["emails"]]
            if "phone" in fields:
                values += [p["value"] for p in person["phones"]]
            if "name" in fields:
                values.append(person["name"])
            if any(hit(v) for v in values):
                items.append(
                    {
                        "result_score": 1.0 if exact else 0.5,
                        "item": {
                            "id": person["id"],
                            "type": "person",
                            "name": person["name"],
                            "phones": [p["value"] for p in person["phones"]],
                            "emails": [e["value"] for e in person["emails"]],
                            "visible_to": person["visible_to"],
                            "owner": {"id": person["owner_id"]},
                            "organization": None,
                            "custom_fields": [],
                            "notes": [],
                            "update_time": person["update_time"],
                        },
                    }
                )
        limit = min(int(query.get("limit", 100) or 100), 500)
        return 200, {"success": True, "data": {"items": items[:limit]}, "additional_data": {"next_cursor": None}}

    # --- notes --------------------------------------------------------------------------------

    def add_note(self, body: dict, user: User) -> tuple[int, dict]:
        content = body.get("content")
        if not isinstance(content, str) or not content.strip():
            return 400, failure("Note content is required")
        targets = [k for k in ("person_id", "deal_id", "org_id", "lead_id", "project_id") if body.get(k)]
        if not targets:
            return 400, failure("At least one of deal_id, lead_id, person_id, org_id or project_id must be given")
        person_id = body.get("person_id")
        if person_id is not None:
            person_id = int(person_id) if str(person_id).isdigit() else -1
            person = self.persons.get(person_id)
            if person is None or person["is_deleted"]:
                return 404, failure("Person not found")
        stamp = now_iso().replace("T", " ").rstrip("Z")  # v1 timestamps: "YYYY-MM-DD HH:MM:SS"
        note = {
            "id": next(self.note_ids),
            "active_flag": True,
            "add_time": stamp,
            "content": content,
            "deal_id": body.get("deal_id"),
            "lead_id": body.get("lead_id"),
            "org_id": body.get("org_id"),
            "person_id": person_id,
            "project_id": body.get("project_id"),
            "pinned_to_deal_flag": False,
            "pinned_to_organization_flag": False,
            "pinned_to_person_flag": bool(body.get("pinned_to_person_flag")),
            "last_update_user_id": None,
            "update_time": stamp,
            "user_id": user.id,
            "person": {"name": self.persons[person_id]["name"]} if person_id else None,
        }
        self.notes[note["id"]] = note
        return 201, {"success": True, "data": note}


def main() -> None:
    """Serve a fake Pipedrive on its own (for the benchmark): prints `port token`."""
    args = vendor_benchmark_args(window_seconds=2.0, seeded="persons")
    server = FakePipedrive(burst_limit=args.burst_limit, window_seconds=args.window_seconds)
    server.delay = args.delay_ms / 1000
    server.seed_persons(args.seed)
    serve_for_benchmark(server, server.add_user())



# --- webhooks: POST/GET /v1/webhooks, DELETE /v1/webhooks/{id}, and delivering (v2 bodies, Basic auth) ---

_route_without_webhooks = FakePipedrive.route


def _route(self, method: str, path: str, query: dict, body: Any, user: User) -> tuple[int, dict]:
    hooks = self.__dict__.setdefault("webhooks", {})
    if path == "/v1/webhooks" and method == "GET":
        return 200, {"success": True, "status": "ok", "data": list(hooks.values())}
    if path == "/v1/webhooks" and method == "POST":
        url = body.get("subscription_url")
        if not isinstance(url, str) or not url.startswith(("http://", "https://")):
            return 400, failure("subscription_url is invalid", code="ERR_SCHEMA_VALIDATION_FAILED")
        if body.get("event_action") not in ("create", "change", "delete", "*") or not body.get("event_object"):
            return 400, failure("event_action and event_object are required", code="ERR_SCHEMA_VALIDATION_FAILED")
        if len(hooks) >= 40:
            return 400, failure("Webhooks limit reached")
        hook = {
            "id": next(self.__dict__.setdefault("_hook_ids", itertools.count(1))),
            "user_id": user.id,
            "event_action": body["event_action"],
            "event_object": body["event_object"],
            "subscription_url": url,
            "version": body.get("version", "1.0"),
            "is_active": 1,
            "http_auth_user": body.get("http_auth_user"),
            "http_auth_password": body.get("http_auth_password"),
        }
        hooks[hook["id"]] = hook
        public = {k: v for k, v in hook.items() if k != "http_auth_password"}
        return 201, {"success": True, "status": "ok", "data": public}
    match = re.fullmatch(r"/v1/webhooks/(\d+)", path)
    if match and method == "DELETE":
        if hooks.pop(int(match.group(1)), None) is None:
            return 404, failure("Webhook not found", code="ERR_NOT_FOUND")
        return 200, {"success": True, "status": "ok"}
    return _route_without_webhooks(self, method, path, query, body, user)


def _deliver(self, entity: str, action: str, data: dict, meta_id: str | None = None) -> list[int]:
    """Send a v2 webhook to every matching subscription, with its Basic credentials, over real HTTP."""
    import base64
    import json as json_module
    import uuid

    import requests

    statuses = []
    for hook in list(self.__dict__.get("webhooks", {}).values()):
        if hook["event_object"] not in (entity, "*") or hook["event_action"] not in (action, "*"):
            continue
        meta = {"id": meta_id or str(uuid.uuid4()), "action": action, "entity": entity, "version": "2.0"}
        body = json_module.dumps({"data": data, "previous": None, "meta": meta}).encode()
        headers = {"Content-Type": "application/json"}
        if hook["http_auth_user"]:
            pair = f"{hook['http_auth_user']}:{hook['http_auth_password']}".encode()
            headers["Authorization"] = "Basic " + base64.b64encode(pair).decode()
        statuses.append(requests.post(hook["subscription_url"], data=body, headers=headers, timeout=5).status_code)
    return statuses


FakePipedrive.route = _route
FakePipedrive.deliver = _deliver


if __name__ == "__main__":
    main()
