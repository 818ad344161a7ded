"""Chatwoot: customer conversations; the platform's primary CRM."""

from __future__ import annotations

import random
import re
import time
from collections.abc import Mapping, Sequence
from email.utils import parsedate_to_datetime
from typing import Any, ClassVar

from crm.net import GuardedClient, OutboundError, Response, join_url
from crm.providers.base import (
    ConnectionResult,
    CRMError,
    Field,
    Provider,
    account_key,
    network_message,
    raise_for_common_status,
)
from crm.providers.contract import Connection, ContactData, ContactResult, Recorded, waiting
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
            waiting(wait, self.name)
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


# --- operations: contacts, messages, provisioning ------------------------------------------------
# In the user's own account a contact is matched by our identifier, then email, then phone: it is their
# account. In the operator's shared account (`shared`) every user without an integration has contacts,
# so there the identifier is tenant-scoped (see crm.operations.sync) and it is the only key: a user
# never reads, changes or messages a contact they did not create there, and an email or phone that
# another contact holds is left out, with a note naming no other contact.

INBOX_NAME = "LocalBoxs"
BOT_NAME = "LocalBoxs Bot"
API_CHANNEL = "Channel::Api"
# Chatwoot's words in a 422 when another contact holds a unique value ("Email has already been taken").
TAKEN_LABELS = {"email": "Email", "phone_number": "Phone number"}
FIELD_WORDS = {"email": "email", "phone_number": "phone number"}


class SyncConflict(CRMError):
    def __init__(self, message: str):
        super().__init__("account_not_found", message)


def _words(fields: frozenset[str]) -> str:
    return " and ".join(FIELD_WORDS[f] for f in sorted(fields)) or "these details"


def taken_fields(response: Response) -> frozenset[str]:
    """The fields a 422 says another contact already holds."""
    body = response.json() if response.status == 422 else None
    message = str(body.get("message") or "") if isinstance(body, dict) else ""
    return frozenset(f for f, label in TAKEN_LABELS.items() if f"{label} has already been taken" in message)


def left_out_note(fields: frozenset[str]) -> str | None:
    if not fields:
        return None
    words = _words(fields)
    return f"Sent without its {words}: a contact with this {words} already exists in the platform's CRM."


class ChatwootConnection(Connection):
    """Chatwoot's operations for one account. Chatwoot has no batch endpoint, so contacts go one per
    call, `concurrency` calls at a time over keep-alive connections."""

    batch_size = 1

    def __init__(self, api: ChatwootAPI, shared: bool, remote: dict[str, Any], concurrency: int = 8):
        self.api = api
        self.shared = shared
        self.remote = remote  # ids provisioning found or made (inbox, bot); callers persist changes
        self.concurrency = concurrency
        self.issued: dict[str, str | None] = {}  # secrets Chatwoot issued (the bot's signing secret)

    # --- contacts --------------------------------------------------------------------------------

    def upsert_contacts(self, batch: Sequence[ContactData]) -> list[ContactResult]:
        return [self.sync_one(contact) for contact in batch]

    def sync_one(self, contact: ContactData) -> ContactResult:
        try:
            return self.upsert(contact)
        except OutboundError as exc:
            message = network_message(exc.outcome, "Chatwoot", exc.detail)
            return ContactResult.failed(contact.key, message, exc.outcome)
        except CRMError as exc:
            return ContactResult.failed(contact.key, exc.message, exc.outcome)

    def identifiers(self, contact: ContactData) -> tuple[str, ...]:
        return (contact.key, *contact.aliases)

    def owns(self, contact: ContactData, remote: Any) -> bool:
        return isinstance(remote, dict) and remote.get("identifier") in self.identifiers(contact)

    def payload(self, contact: ContactData, leave_out: frozenset[str] = frozenset()) -> dict[str, Any]:
        # Never send "" for a value we do not mean to clear.
        body = {"name": contact.name, "identifier": contact.key}
        if contact.email and "email" not in leave_out:
            body["email"] = contact.email
        if contact.phone and "phone_number" not in leave_out:
            body["phone_number"] = contact.phone
        return body

    def refused(self, response: Response) -> CRMError:
        """Our words for a 422 that no lookup resolved. In the shared account it names no other contact."""
        taken = taken_fields(response)
        if taken and self.shared:
            return SyncConflict(
                f"A contact with this {_words(taken)} already exists in the platform's CRM; change it, "
                "or add your own Chatwoot under Dashboard → Integrations."
            )
        if taken:
            return SyncConflict(
                f"Its {_words(taken)} belongs to another Chatwoot contact; merge or change one of them."
            )
        body = response.json()
        attributes = body.get("attributes") if isinstance(body, dict) else None
        return CRMError("not_a_crm", f"Chatwoot refused it: {', '.join(map(str, attributes or []))} not accepted.")

    def _filter(self, attribute: str, value: str) -> list[dict]:
        condition = {
            "attribute_key": attribute,
            "filter_operator": "equal_to",
            "values": [value],
            "query_operator": None,
        }
        found = self.api.account_call("POST", "contacts", "filter", json={"payload": [condition]}) or {}
        return [c for c in found.get("payload") or [] if isinstance(c, dict)]

    def lookup(self, contact: ContactData) -> dict | None:
        """The Chatwoot contact that is this one. Shared account: by our identifiers only. The user's own
        account: by identifier, then email, then phone (exact match)."""
        if self.shared:
            keys = [("identifier", value) for value in self.identifiers(contact)]
        else:
            keys = [("identifier", contact.key), ("email", contact.email), ("phone_number", contact.phone)]
        for attribute, value in keys:
            if not value:
                continue
            for candidate in self._filter(attribute, value):
                if self.shared:
                    if self.owns(contact, candidate):  # exactly: Chatwoot's identifier filter ignores case
                        return candidate
                    continue
                if str(candidate.get(attribute) or "").lower() == str(value).lower():
                    if candidate.get("identifier") not in (None, "") and not self.owns(contact, candidate):
                        raise SyncConflict(
                            f"Its {attribute.replace('_', ' ')} belongs to another Chatwoot contact "
                            f"(#{candidate.get('id')}); merge or change one of them."
                        )
                    return candidate
        return None

    def still_ours(self, remote_id: str, contact: ContactData) -> bool:
        """Whether a stored remote id still names this contact: in the shared account it may have been
        deleted, merged or edited since, and nothing is changed or messaged there until it is checked."""
        response = self.api.patient_call("GET", self.api.account_path("contacts", remote_id))
        if response.status == 404:
            return False
        body = self.api.expect_json(response)
        return self.owns(contact, body.get("payload") if isinstance(body, dict) else None)

    def confirm(self, contact: ContactData) -> str | None:
        if not self.shared or (contact.remote_id and self.still_ours(contact.remote_id, contact)):
            return contact.remote_id
        return None

    def _update(self, remote_id: str, contact: ContactData, checked: bool = False) -> ContactResult | None:
        """PATCH the contact; None when Chatwoot no longer has it (or, shared, it is no longer ours)."""
        if self.shared and not checked and not self.still_ours(remote_id, contact):
            return None
        path = self.api.account_path("contacts", remote_id)
        response = self.api.patient_call("PATCH", path, json=self.payload(contact))
        left_out = taken_fields(response) if self.shared else frozenset()
        if left_out:
            response = self.api.patient_call("PATCH", path, json=self.payload(contact, left_out))
        if response.status == 404:
            return None  # deleted in Chatwoot: create it again
        if response.status == 422:
            raise self.refused(response)
        self.api.expect_json(response)
        return ContactResult(contact.key, "updated", str(remote_id), note=left_out_note(left_out))

    def upsert(self, contact: ContactData) -> ContactResult:
        if contact.remote_id:
            updated = self._update(contact.remote_id, contact)
            if updated:
                return updated
        left_out: frozenset[str] = frozenset()
        checked_after_500 = False
        while True:
            response = self.api.patient_call(
                "POST", self.api.account_path("contacts"), json=self.payload(contact, left_out)
            )
            if 200 <= response.status < 300:
                body = self.api.expect_json(response)
                remote_id = str(int(body["payload"]["contact"]["id"]))
                return ContactResult(contact.key, "created", remote_id, note=left_out_note(left_out))
            lost_answer = response.status >= 500 and not checked_after_500
            if response.status != 422 and not lost_answer:
                self.api.expect_json(response)  # raises with our words for 401, 402, 404, 429, 5xx ...
                raise CRMError("server_error", network_message("server_error", "Chatwoot"))
            # A duplicate (or, after a 500, perhaps a create that did happen): find it and update it.
            found = self.lookup(contact)
            if found is not None:
                updated = self._update(str(int(found["id"])), contact, checked=True)
                if updated:
                    return updated
            if lost_answer:
                checked_after_500 = True
                continue
            taken = taken_fields(response)
            if self.shared and taken and not left_out:
                left_out = taken  # another user's (or an outside) contact holds it: make ours without it
                continue
            raise self.refused(response)

    # --- messages --------------------------------------------------------------------------------

    def record_message(self, contact: ContactData, text: str) -> Recorded:
        """Post into the contact's open conversation in the platform's inbox (one is made if needed)."""
        inbox_id = self.inbox()
        listing = self.api.account_call("GET", "contacts", contact.remote_id, "conversations") or {}
        open_ones = [
            c for c in listing.get("payload") or [] if c.get("inbox_id") == inbox_id and c.get("status") != "resolved"
        ]
        if open_ones:
            conversation_id = int(open_ones[0]["id"])
        else:
            created = self.api.account_call(
                "POST", "conversations", json={"inbox_id": inbox_id, "contact_id": int(contact.remote_id)}
            )
            conversation_id = int(created["id"])
        message = self.api.account_call(
            "POST",
            "conversations",
            conversation_id,
            "messages",
            json={"content": text, "message_type": "outgoing", "private": False},
        )
        return Recorded("message", str(message["id"]), {"conversationId": conversation_id})

    # --- provisioning: the inbox and agent bot the platform's conversations use -------------------

    def inbox(self) -> int:
        self.remote["inbox_id"] = self.find_or_create_inbox(self.remote.get("inbox_id"))
        return self.remote["inbox_id"]

    def provision(self, features: Mapping[str, Any], inbound_url: str | None = None) -> None:
        """The inbox and (with auto_create_bots) the agent bot, whose events go to `inbound_url`."""
        inboxes, bots = bool(features.get("auto_create_inboxes")), bool(features.get("auto_create_bots"))
        if inboxes or bots:
            self.inbox()
        if bots:
            self.remote["agent_bot_id"] = self.find_or_create_bot(self.remote.get("agent_bot_id"), inbound_url)
            self.attach_bot(self.remote["inbox_id"], self.remote["agent_bot_id"])

    def find_or_create_inbox(self, known_id: int | None) -> int:
        inboxes = (self.api.account_call("GET", "inboxes") or {}).get("payload") or []
        api_inboxes = [i for i in inboxes if isinstance(i, dict) and i.get("channel_type") == API_CHANNEL]
        for inbox in api_inboxes:
            if inbox.get("id") == known_id:
                return known_id
        for inbox in api_inboxes:
            if inbox.get("name") == INBOX_NAME:
                return int(inbox["id"])
        created = self.api.account_call("POST", "inboxes", json={"name": INBOX_NAME, "channel": {"type": "api"}})
        return int(created["id"])

    def find_or_create_bot(self, known_id: int | None, outgoing_url: str | None = None) -> int:
        try:
            bots = self.api.account_call("GET", "agent_bots") or []
        except CRMError as exc:
            if exc.outcome == "account_not_found":
                raise CRMError(
                    "account_not_found",
                    "Chatwoot has no Agent Bots API here: the Account ID is wrong, or Chatwoot is older than 1.17. "
                    "Check the Account ID, upgrade Chatwoot, or turn off Auto-create Agent Bots.",
                ) from None
            raise
        own = [b for b in bots if isinstance(b, dict) and not b.get("system_bot")]
        found = next((b for b in own if b.get("id") == known_id), None) or next(
            (b for b in own if b.get("name") == BOT_NAME), None
        )
        if found is None:
            body = {"name": BOT_NAME, "description": "Replies for LocalBoxs"}
            if outgoing_url:
                body["outgoing_url"] = outgoing_url
            found = self.api.account_call("POST", "agent_bots", json=body)
            self.issued["agent_bot_secret"] = found.get("secret")
        elif outgoing_url and found.get("outgoing_url") != outgoing_url:
            # Its events go to this integration's inbound address (a rotated one included).
            found = self.api.account_call("PATCH", "agent_bots", found["id"], json={"outgoing_url": outgoing_url})
            self.issued["agent_bot_secret"] = found.get("secret")
        return int(found["id"])

    def attach_bot(self, inbox_id: int, bot_id: int) -> None:
        current = (self.api.account_call("GET", "inboxes", inbox_id, "agent_bot") or {}).get("agent_bot") or {}
        if current.get("id") != bot_id:
            # Always send the id: a missing or null agent_bot DETACHES the current bot.
            self.api.account_call("POST", "inboxes", inbox_id, "set_agent_bot", json={"agent_bot": bot_id})


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
    def wants_provisioning(cls, values: Mapping[str, Any]) -> bool:
        return any(values.get(name) for name in ADMIN_FEATURES)

    @classmethod
    def account_key(cls, config: Mapping[str, Any], integration_id: str | None) -> str:
        # The account, not the integration: two integrations of one Chatwoot account share remote ids.
        return account_key(f"{config['base_url']}|{config['account_id']}")

    @classmethod
    def connect(
        cls,
        config: Mapping[str, Any],
        http: GuardedClient,
        deadline: float | None = None,
        *,
        shared: bool = False,
        remote: dict[str, Any] | None = None,
        concurrency: int = 8,
        retry_base: float = 1.0,
        **context: Any,
    ) -> ChatwootConnection:
        api = ChatwootAPI(http, config["base_url"], config["account_id"], config["api_key"], deadline, retry_base)
        return ChatwootConnection(api, shared, dict(remote or {}), concurrency)

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


# --- inbound webhooks (crm/webhooks) ----------------------------------------------------------------

WEBHOOK_WINDOW_SECONDS = 300  # Chatwoot's advice: refuse a timestamp more than ~5 minutes off


def _chatwoot_verify_webhook(
    cls,
    secret: str | None,
    headers: Mapping[str, str],
    body: bytes,
    *,
    now: float | None = None,
    accept_unsigned: bool = False,
) -> tuple[bool, bool, str | None]:
    """(accepted, verified, delivery key) of one delivery. Signed: `X-Chatwoot-Signature: sha256=<hex
    HMAC-SHA256(secret, "{X-Chatwoot-Timestamp}.{raw body}")>` with the timestamp within 300 s either way.
    Unsigned (Chatwoot older than 4.11, or bots and API inboxes before 4.13): only when the user allowed
    it, and then unverified."""
    import hashlib
    import hmac

    signature = (headers.get("X-Chatwoot-Signature") or "").strip()
    timestamp = (headers.get("X-Chatwoot-Timestamp") or "").strip()
    delivery = (headers.get("X-Chatwoot-Delivery") or "").strip()[:128] or None
    if not signature:
        return (True, False, delivery) if accept_unsigned else (False, False, None)
    if not secret or not timestamp.isascii() or not timestamp.isdigit() or len(timestamp) > 12:
        return False, False, None
    now = time.time() if now is None else now
    if abs(now - int(timestamp)) > WEBHOOK_WINDOW_SECONDS:
        return False, False, None
    digest = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    expected = f"sha256={digest}".encode()
    if not hmac.compare_digest(expected, signature.encode("latin-1", "replace")):
        return False, False, None
    return True, True, delivery


Chatwoot.verify_webhook = classmethod(_chatwoot_verify_webhook)
