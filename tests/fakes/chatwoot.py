"""A Chatwoot that answers as the real one does (../shared/reference/chatwoot-api.md):
same paths, status codes and body shapes, including the ones the OpenAPI document gets wrong."""

from __future__ import annotations

import itertools
import re
import secrets
import threading
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlsplit

from tests.fakes.server import FakeHandler, FakeServer, serve_for_benchmark

SIGN_IN = {"errors": ["You need to sign in or sign up before continuing."]}
INVALID_TOKEN = {"error": "Invalid Access Token"}
NOT_MEMBER = {"error": "You are not authorized to access this account"}
SUSPENDED = {"error": "Account is suspended"}
NOT_ALLOWED = {"error": "You are not authorized to do this action"}
BOT_TOKEN = {"error": "Access to this endpoint is not authorized for bots"}
NOT_FOUND = {"error": "Resource could not be found"}
E164 = re.compile(r"^\+[1-9]\d{1,14}$")
DASHBOARD_HTML = b"<!DOCTYPE html><html><head><title>Chatwoot</title></head><body><div id=app></div></body></html>"


@dataclass
class Account:
    id: int
    name: str
    status: str = "active"
    inboxes: dict[int, dict] = field(default_factory=dict)
    bots: dict[int, dict] = field(default_factory=dict)
    inbox_bot: dict[int, int] = field(default_factory=dict)
    contacts: dict[int, dict] = field(default_factory=dict)
    conversations: dict[int, dict] = field(default_factory=dict)
    messages: list[dict] = field(default_factory=list)
    # Unique keys (as Chatwoot's indexes): identifier exact, email and phone case-insensitive.
    index: dict[tuple[str, str], int] = field(default_factory=dict)
    webhooks: dict[int, dict] = field(default_factory=dict)  # account webhooks (with their secret)


@dataclass
class UserRecord:
    id: int
    name: str
    email: str
    roles: dict[int, str]  # account id -> administrator | agent
    is_bot: bool = False


class ChatwootHandler(FakeHandler):
    pass


class FakeChatwoot(FakeServer):
    handler_class = ChatwootHandler

    def __init__(self, tls=None):
        super().__init__(tls)
        self.lock = threading.RLock()
        self.ids = itertools.count(1)
        self.version = "4.15.1"
        self.accounts: dict[int, Account] = {}
        self.tokens: dict[str, UserRecord] = {}
        self.strip_underscore_headers = False  # like an nginx without underscores_in_headers
        self.strip_token_headers = False  # a proxy that drops both spellings
        self.api_only = False  # CW_API_ONLY_SERVER: no HTML dashboard under /app
        self.faults: list[tuple[str, str, int, Any]] = []  # (method, path regex, status, body) to answer once
        self.rate_limit_remaining: int | None = None  # answer 429 "Retry later" once it reaches 0
        self.throttle_every: int = 0  # answer 429 to every n-th request (a busy server)
        self.create_then_fail = 0  # the next n contact creates happen, then answer 500 (a lost answer)
        self.delay = 0.0  # seconds added to every answer
        self.count = 0

    # --- test setup -------------------------------------------------------------------------

    def add_account(self, name: str = "Acme", status: str = "active") -> Account:
        with self.lock:
            account = Account(next(self.ids), name, status)
            self.accounts[account.id] = account
            return account

    def add_user(self, roles: dict[int, str], token: str | None = None, is_bot: bool = False) -> str:
        token = token or secrets.token_urlsafe(18)
        with self.lock:
            uid = next(self.ids)
            self.tokens[token] = UserRecord(uid, f"User {uid}", f"user{uid}@example.com", roles, is_bot)
        return token

    def add_remote_contact(self, account: Account, **fields: Any) -> dict:
        """A contact that exists in Chatwoot already (made there by someone else)."""
        with self.lock:
            contact = {
                "id": fields.pop("id", None) or next(self.ids),
                "name": None,
                "email": None,
                "phone_number": None,
                "identifier": None,
                **fields,
            }
            account.contacts[contact["id"]] = contact
            for key in ("email", "phone_number", "identifier"):
                if contact.get(key):
                    account.index[self._key(key, contact[key])] = contact["id"]
            return contact

    def add_conversation(self, account: Account, inbox_id: int, contact_id: int) -> dict:
        """A conversation that exists in Chatwoot already (e.g. a customer who wrote in)."""
        with self.lock:
            display_id = len(account.conversations) + 1
            conversation = {
                "id": display_id,
                "account_id": account.id,
                "inbox_id": inbox_id,
                "status": "open",
                "meta": {"sender": account.contacts[contact_id], "channel": "Channel::Api"},
                "messages": [],
            }
            account.conversations[display_id] = conversation
            return conversation

    def fail_next(self, method: str, path: str, status: int, body: Any = None) -> None:
        self.faults.append((method, path, status, body))

    # --- request handling -------------------------------------------------------------------

    def dispatch(self, h: ChatwootHandler) -> None:
        body = h.read_json()
        with self.lock:
            self.count += 1
            throttled = self.throttle_every and self.count % self.throttle_every == 0
        if self.delay:
            time.sleep(self.delay)
        if throttled:
            return h.send_body(429, b"Retry later\n", "text/plain")
        path = urlsplit(h.path).path.rstrip("/") or "/"
        query = parse_qs(urlsplit(h.path).query)
        for fault in list(self.faults):
            method, pattern, status, payload = fault
            if method == h.command and re.fullmatch(pattern, path):
                self.faults.remove(fault)
                if isinstance(payload, bytes):
                    kind = "text/html; charset=utf-8" if payload.lstrip().startswith(b"<") else "text/plain"
                    return h.send_body(status, payload, kind)
                return h.send_json(status, payload if payload is not None else {"error": "Internal Server Error"})
        if self.rate_limit_remaining is not None:
            if self.rate_limit_remaining <= 0:
                return h.send_body(429, b"Retry later\n", "text/plain")  # rack-attack: no Retry-After
            self.rate_limit_remaining -= 1
        if path == "/__stats":  # for the benchmark: how many requests this server answered
            return h.send_json(
                200, {"count": self.count, "contacts": sum(len(a.contacts) for a in self.accounts.values())}
            )
        if path == "/api" and h.command == "GET":
            return h.send_json(
                200,
                {
                    "version": self.version,
                    "timestamp": "2026-11-25 12:00:00 +0000",
                    "queue_services": "ok",
                    "data_services": "ok",
                },
            )
        if (path == "/app" or path.startswith("/app/")) and not self.api_only:
            if h.command == "GET":
                return h.send_body(200, DASHBOARD_HTML, "text/html; charset=utf-8")
            return h.send_json(404, {"status": 404, "error": "Not Found"})
        if not path.startswith("/api/v1/"):
            return h.send_json(404, {"status": 404, "error": "Not Found"})
        user, error = self.authenticate(h)
        if error:
            return h.send_json(401, error)
        if path == "/api/v1/profile" and h.command == "GET":
            if user.is_bot:
                return h.send_json(401, BOT_TOKEN)
            return h.send_json(200, self.profile(user, h))
        match = re.fullmatch(r"/api/v1/accounts/(\d+)(/.*)?", path)
        if not match:
            return h.send_json(404, {"status": 404, "error": "Not Found"})
        account = self.accounts.get(int(match.group(1)))
        if account is None:
            return h.send_json(404, NOT_FOUND)
        rest = match.group(2) or ""
        if rest == "":
            if account.id not in user.roles:
                return h.send_json(404, NOT_FOUND)
            return h.send_json(200, {"id": account.id, "name": account.name, "status": account.status})
        if account.id not in user.roles:
            return h.send_json(401, NOT_MEMBER)
        if account.status == "suspended":
            return h.send_json(401, SUSPENDED)
        with self.lock:
            return self.account_route(h, account, user, rest, body or {}, query)

    def authenticate(self, h: ChatwootHandler) -> tuple[UserRecord | None, dict | None]:
        token = None
        for name, value in h.headers.items():
            # Rack maps api_access_token and Api-Access-Token to the same key.
            if name.lower().replace("_", "-") == "api-access-token":
                if self.strip_token_headers or ("_" in name and self.strip_underscore_headers):
                    continue
                token = value
        if not token:
            return None, SIGN_IN
        user = self.tokens.get(token)
        if user is None:
            return None, INVALID_TOKEN
        return user, None

    def profile(self, user: UserRecord, h: ChatwootHandler) -> dict:
        accounts = [
            {
                "id": a.id,
                "name": a.name,
                "status": a.status,
                "role": user.roles[a.id],
                "permissions": [user.roles[a.id]],
                "availability": "online",
                "auto_offline": True,
            }
            for a in self.accounts.values()
            if a.id in user.roles
        ]
        first = accounts[0] if accounts else {}
        token = next(t for t, u in self.tokens.items() if u is user)
        return {
            "id": user.id,
            "name": user.name,
            "display_name": user.name,
            "email": user.email,
            "account_id": first.get("id"),
            "role": first.get("role"),
            "accounts": accounts,
            "access_token": token,
            "pubsub_token": secrets.token_hex(8),
            "confirmed": True,
        }

    def account_route(self, h, account: Account, user: UserRecord, rest: str, body: dict, query: dict) -> None:
        admin = user.roles[account.id] == "administrator"
        m = h.command
        if rest == "/inboxes" and m == "GET":
            return h.send_json(200, {"payload": list(account.inboxes.values())})
        if rest == "/inboxes" and m == "POST":
            if not admin:
                return h.send_json(401, NOT_ALLOWED)
            if not body.get("name"):
                return h.send_json(422, {"message": "Name can't be blank", "attributes": ["name"]})
            channel = body.get("channel")
            if not isinstance(channel, dict):
                return h.send_json(500, {"status": 500, "error": "Internal Server Error"})
            inbox_id = next(self.ids)
            inbox = {
                "id": inbox_id,
                "name": body["name"],
                "channel_id": inbox_id,
                "channel_type": "Channel::Api",
                "webhook_url": channel.get("webhook_url", ""),
                "inbox_identifier": secrets.token_hex(12),
                "hmac_token": secrets.token_hex(12),
                "secret": secrets.token_hex(12),
            }
            account.inboxes[inbox_id] = inbox
            return h.send_json(200, inbox)
        bot_match = re.fullmatch(r"/inboxes/(\d+)/(set_agent_bot|agent_bot)", rest)
        if bot_match:
            inbox_id = int(bot_match.group(1))
            if inbox_id not in account.inboxes:
                return h.send_json(404, NOT_FOUND)
            if bot_match.group(2) == "agent_bot" and m == "GET":
                bot_id = account.inbox_bot.get(inbox_id)
                return h.send_json(200, {"agent_bot": account.bots[bot_id] if bot_id else {}})
            if m != "POST":
                return h.send_json(404, {"status": 404, "error": "Not Found"})
            if not admin:
                return h.send_json(401, NOT_ALLOWED)
            bot_id = body.get("agent_bot")
            if bot_id is None:
                account.inbox_bot.pop(inbox_id, None)  # a missing or null id DETACHES the bot
                return h.send_body(200, b"", "text/plain")
            if bot_id not in account.bots:
                return h.send_json(404, NOT_FOUND)
            account.inbox_bot[inbox_id] = bot_id
            return h.send_body(200, b"", "text/plain")  # head :ok, not the spec's 204
        if rest == "/agent_bots" and m == "GET":
            return h.send_json(200, list(account.bots.values()))  # a bare array
        if rest == "/agent_bots" and m == "POST":
            if not admin:
                return h.send_json(401, NOT_ALLOWED)
            bot_id = next(self.ids)
            bot = {
                "id": bot_id,
                "name": body.get("name"),
                "description": body.get("description", ""),
                "outgoing_url": body.get("outgoing_url"),
                "bot_type": "webhook",
                "bot_config": {},
                "account_id": account.id,
                "access_token": secrets.token_hex(12),
                "secret": secrets.token_hex(12),
                "system_bot": False,
            }
            account.bots[bot_id] = bot
            return h.send_json(200, bot)
        bot_update = re.fullmatch(r"/agent_bots/(\d+)", rest)
        if bot_update and m == "PATCH":
            if not admin:
                return h.send_json(401, NOT_ALLOWED)
            bot = account.bots.get(int(bot_update.group(1)))
            if bot is None:
                return h.send_json(404, {"error": "Resource could not be found"})
            bot.update({k: v for k, v in (body or {}).items() if k in ("name", "description", "outgoing_url")})
            return h.send_json(200, bot)
        webhook_answer = self.webhook_route(h, account, admin, rest, body)
        if webhook_answer is not False:
            return webhook_answer
        if rest == "/contacts" and m == "POST":
            return self.save_contact(h, account, None, body)
        contact_match = re.fullmatch(r"/contacts/(\d+)", rest)
        if contact_match and m == "GET":
            contact = account.contacts.get(int(contact_match.group(1)))
            if contact is None:
                return h.send_json(404, NOT_FOUND)
            return h.send_json(200, {"payload": contact})  # show.json.jbuilder
        if contact_match and m in ("PATCH", "PUT"):
            contact = account.contacts.get(int(contact_match.group(1)))
            if contact is None:
                return h.send_json(404, NOT_FOUND)
            return self.save_contact(h, account, contact, body)
        if rest == "/contacts/search" and m == "GET":
            q = (query.get("q") or [""])[0]
            page = int((query.get("page") or ["1"])[0])
            found = [c for c in account.contacts.values() if q and self._contains(c, q)]
            rows = found[(page - 1) * 15 : page * 15]
            return h.send_json(
                200,
                {
                    "meta": {"count": len(rows), "current_page": page, "has_more": len(found) > page * 15},
                    "payload": rows,
                },
            )
        if rest == "/contacts/filter" and m == "POST":
            page = int((query.get("page") or ["1"])[0])
            conditions = body.get("payload") or []
            found = [c for c in account.contacts.values() if self._matches(c, conditions)]
            return h.send_json(
                200,
                {"meta": {"count": len(found), "current_page": page}, "payload": found[(page - 1) * 15 : page * 15]},
            )
        conv_list = re.fullmatch(r"/contacts/(\d+)/conversations", rest)
        if conv_list and m == "GET":
            contact_id = int(conv_list.group(1))
            rows = [c for c in account.conversations.values() if c["meta"]["sender"]["id"] == contact_id]
            return h.send_json(200, {"payload": rows})
        if rest == "/conversations" and m == "POST":
            inbox = account.inboxes.get(body.get("inbox_id"))
            contact = account.contacts.get(body.get("contact_id"))
            if inbox is None or contact is None:
                return h.send_json(404, NOT_FOUND)
            display_id = len(account.conversations) + 1
            conversation = {
                "id": display_id,
                "account_id": account.id,
                "inbox_id": inbox["id"],
                "status": "pending" if inbox["id"] in account.inbox_bot else "open",
                "meta": {"sender": contact, "channel": "Channel::Api"},
                "messages": [],
            }
            account.conversations[display_id] = conversation
            return h.send_json(200, conversation)
        msg_match = re.fullmatch(r"/conversations/(\d+)/messages", rest)
        if msg_match and m == "POST":
            conversation = account.conversations.get(int(msg_match.group(1)))
            if conversation is None:
                return h.send_json(404, NOT_FOUND)
            content = body.get("content")
            if not isinstance(content, str) or len(content) > 150_000:
                return h.send_json(422, {"error": "Validation failed: Content is invalid"})
            message = {
                "id": next(self.ids),
                "content": content,
                "conversation_id": conversation["id"],
                "inbox_id": conversation["inbox_id"],
                "message_type": 0 if body.get("message_type") == "incoming" else 1,
                "content_type": "text",
                "status": "sent",
                "private": bool(body.get("private")),
            }
            account.messages.append(message)
            return h.send_json(200, message)
        return h.send_json(404, {"status": 404, "error": "Not Found"})

    @staticmethod
    def _contains(contact: dict, q: str) -> bool:
        ql = q.lower()
        return any(ql in (contact.get(k) or "").lower() for k in ("name", "email", "phone_number")) or q in (
            contact.get("identifier") or ""
        )

    @staticmethod
    def _matches(contact: dict, conditions: list[dict]) -> bool:
        for condition in conditions:
            key = condition.get("attribute_key")
            values = [str(v).lower() for v in condition.get("values") or []]
            if (str(contact.get(key) or "").lower()) not in values:
                return False
        return bool(conditions)

    @staticmethod
    def _key(name: str, value: str) -> tuple[str, str]:
        return (name, value if name == "identifier" else value.lower())

    def save_contact(self, h, account: Account, contact: dict | None, body: dict) -> None:
        fields = {k: body[k] for k in ("name", "email", "phone_number", "identifier") if k in body}
        if fields.get("email") is not None:
            fields["email"] = fields["email"].strip().lower() or None
        errors: list[tuple[str, str]] = []
        if fields.get("phone_number") and not E164.match(fields["phone_number"]):
            errors.append(("phone_number", "Phone number should be in e164 format"))
        for key, label in (("email", "Email"), ("phone_number", "Phone number"), ("identifier", "Identifier")):
            value = fields.get(key)
            owner = account.index.get(self._key(key, value)) if value else None
            if owner is not None and (contact is None or owner != contact["id"]):
                errors.append((key, f"{label} has already been taken"))
        if errors:
            return h.send_json(422, {"message": ", ".join(m for _, m in errors), "attributes": [k for k, _ in errors]})
        created = contact is None
        if created:
            contact = {
                "id": next(self.ids),
                "name": None,
                "email": None,
                "phone_number": None,
                "identifier": None,
                "blocked": False,
                "additional_attributes": {},
                "custom_attributes": {},
            }
        for key in ("email", "phone_number", "identifier"):
            if key in fields and contact.get(key):
                account.index.pop(self._key(key, contact[key]), None)
        contact.update(fields)
        for key in ("email", "phone_number", "identifier"):
            if contact.get(key):
                account.index[self._key(key, contact[key])] = contact["id"]
        account.contacts[contact["id"]] = contact
        if not created:
            return h.send_json(200, {"payload": contact})
        if self.create_then_fail > 0:
            self.create_then_fail -= 1
            return h.send_json(500, {"status": 500, "error": "Internal Server Error"})
        return h.send_json(200, {"payload": {"contact": contact, "contact_inbox": {"inbox": None, "source_id": None}}})


# --- account webhooks: management API and signed delivery (Chatwoot >= 4.11.2) ---------------------

WEBHOOK_EVENTS = {
    "conversation_created", "conversation_status_changed", "conversation_updated", "contact_created",
    "contact_updated", "message_created", "message_updated", "webwidget_triggered",
    "conversation_typing_on", "conversation_typing_off",
}  # fmt: skip


def _webhook_route(self, h, account: Account, admin: bool, rest: str, body: dict):
    """GET/POST /webhooks, DELETE /webhooks/{id} (administrator only); False when not a webhook path."""
    m = h.command
    if rest == "/webhooks" and m == "GET":
        return h.send_json(200, {"payload": {"webhooks": list(account.webhooks.values())}})
    if rest == "/webhooks" and m == "POST":
        if not admin:
            return h.send_json(401, NOT_ALLOWED)
        url = body.get("url")
        subscriptions = body.get("subscriptions") or []
        if not isinstance(url, str) or not url.startswith(("http://", "https://")):
            return h.send_json(422, {"message": "Url is invalid"})
        if not set(subscriptions) <= WEBHOOK_EVENTS:
            return h.send_json(422, {"message": "Subscriptions Invalid events"})
        if any(w["url"] == url for w in account.webhooks.values()):
            return h.send_json(422, {"message": "Url has already been taken"})
        webhook = {
            "id": next(self.ids),
            "url": url,
            "name": body.get("name"),
            "account_id": account.id,
            "subscriptions": subscriptions,
            "secret": secrets.token_urlsafe(24),
        }
        account.webhooks[webhook["id"]] = webhook
        return h.send_json(200, {"payload": {"webhook": webhook}})  # the jbuilder view's wrapping
    match = re.fullmatch(r"/webhooks/(\d+)", rest)
    if match and m == "DELETE":
        if not admin:
            return h.send_json(401, NOT_ALLOWED)
        if account.webhooks.pop(int(match.group(1)), None) is None:
            return h.send_json(404, NOT_FOUND)
        return h.send_body(200, b"", "text/plain")
    return False


def signed_headers(secret: str, body: bytes, timestamp: int | None = None, delivery: str | None = None) -> dict:
    """Chatwoot's signature: sha256=hex(HMAC-SHA256(secret, "{timestamp}.{body}"))."""
    import hashlib
    import hmac
    import uuid

    stamp = str(int(time.time()) if timestamp is None else timestamp)
    digest = hmac.new(secret.encode(), stamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    return {
        "Content-Type": "application/json",
        "X-Chatwoot-Signature": f"sha256={digest}",
        "X-Chatwoot-Timestamp": stamp,
        "X-Chatwoot-Delivery": delivery or str(uuid.uuid4()),
    }


def _emit(self, account: Account, event: str, data: dict, delivery: str | None = None) -> list[int]:
    """Deliver one event, signed, to every account webhook subscribed to it, over real HTTP, once
    (as Chatwoot does: no retry). Answers the status codes received."""
    import json as json_module

    import requests

    statuses = []
    for webhook in list(account.webhooks.values()):
        if event not in webhook["subscriptions"]:
            continue
        body = json_module.dumps({"event": event, **data}).encode()
        headers = signed_headers(webhook["secret"], body, delivery=delivery)
        statuses.append(requests.post(webhook["url"], data=body, headers=headers, timeout=5).status_code)
    return statuses


FakeChatwoot.webhook_route = _webhook_route
FakeChatwoot.emit = _emit


def main() -> None:
    """Serve a fake Chatwoot on its own (for the benchmark): prints `port token account_id`."""
    import argparse

    parser = argparse.ArgumentParser()
    parser.add_argument("--delay-ms", type=float, default=0.0, help="time each answer takes, like a real server")
    server = FakeChatwoot()
    server.delay = parser.parse_args().delay_ms / 1000
    account = server.add_account("Bench")
    serve_for_benchmark(server, server.add_user({account.id: "administrator"}), account.id)


if __name__ == "__main__":
    main()
