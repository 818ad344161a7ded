"""What operations may ask of a provider, whatever the CRM.

A provider declares its capabilities and, for the ones that act in the CRM, returns a `Connection`
from `Provider.connect(...)`. Operations (sync, messages) call only this interface, so they never
name a provider and a new CRM is one file under `crm/providers/`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from crm.net import Response
from crm.providers.base import CRMError, network_message, raise_for_common_status

# Everything a provider may declare in `Provider.features`; the card, the API and the CLI show them.
CAPABILITIES = {
    "contacts": "Contacts sync",
    "messages": "Messages",
    "notes": "Notes",
    "inboxes": "Inboxes",
    "agent_bots": "Agent bots",
    "webhooks": "Webhooks",
    "oauth": "OAuth",
    "connection_test": "Connection test",
}
# A provider that can do one of these can serve as the platform's CRM for messages.
MESSAGE_CAPABILITIES = ("messages", "notes")
# Longest a job waits out one CRM's throttling for one call before giving up on it.
JOB_RETRY_BUDGET = 120.0


@dataclass(frozen=True)
class ContactData:
    """One of our contacts as a CRM receives it: plain values, no ORM object."""

    key: str  # our stable identifier for it (tenant-scoped where a CRM account is shared)
    name: str
    email: str | None = None
    phone: str | None = None
    remote_id: str | None = None  # its id in this CRM, when a sync already made or found it
    aliases: tuple[str, ...] = ()  # older identifiers that still mean this contact (e.g. before a key change)


@dataclass
class ContactResult:
    key: str
    kind: str  # created | updated | failed
    remote_id: str | None = None
    error: str | None = None
    note: str | None = None  # sent, but not all of it (shown beside the contact)
    outcome: str | None = None  # for a failure: the outcome code (crm.providers.base.OUTCOMES)

    @classmethod
    def failed(cls, key: str, error: str, outcome: str | None = None) -> ContactResult:
        return cls(key, "failed", None, error, outcome=outcome)


@dataclass
class Recorded:
    """A message (or a note, where the CRM has no chat) written in the CRM."""

    kind: str  # message | note
    remote_id: str
    details: dict[str, Any]


class FatalCRMError(CRMError):
    """A failure that ends the whole run (a daily limit reached, a revoked token): no use going on."""


class Connection:
    """A provider's operations for one configuration, over the guarded client. One per job or request:
    it may keep state between calls (e.g. an index of the CRM's existing contacts)."""

    # How operations should feed `upsert_contacts`: contacts per call and calls in parallel.
    batch_size: int = 1
    concurrency: int = 1

    def upsert_contacts(self, batch: Sequence[ContactData]) -> list[ContactResult]:
        raise NotImplementedError

    def record_message(self, contact: ContactData, text: str) -> Recorded:
        raise NotImplementedError

    def confirm(self, contact: ContactData) -> str | None:
        """The stored remote id if it may be used as it is (None: upsert the contact first)."""
        return contact.remote_id

    def provision(self, features: Mapping[str, Any], inbound_url: str | None = None) -> None:
        """Make what the platform needs in the CRM (e.g. Chatwoot's inbox and bot, whose events go to
        `inbound_url`); ids are kept in `remote`, secrets the CRM issued in `issued`."""


# Called with (seconds, provider name) before every throttling wait: analytics counts them
# (crm.analytics registers itself here, so providers stay free of Flask).
WAIT_OBSERVERS: list[Callable[[float, str], None]] = []


def waiting(seconds: float, provider_name: str) -> None:
    for observer in WAIT_OBSERVERS:
        observer(seconds, provider_name)


def wait_before_retry(seconds: float, deadline: float | None, provider_name: str) -> None:
    """Sleep out a CRM's throttling, unless that would pass the deadline: then give up at once."""
    remaining = (deadline - time.monotonic()) if deadline is not None else JOB_RETRY_BUDGET
    if seconds > remaining:
        raise CRMError("rate_limited", network_message("rate_limited", provider_name))
    waiting(seconds, provider_name)
    time.sleep(max(0.0, seconds))


def split_name(name: str) -> tuple[str, str]:
    """(first, last) for CRMs that store them apart: the last word is the last name."""
    parts = (name or "").strip().rsplit(" ", 1)
    return (parts[0], parts[1]) if len(parts) == 2 else (parts[0], "")


def names_with_last(contact: ContactData) -> tuple[str, str]:
    """(first, last) for CRMs whose last name is mandatory: a one-word name is the last name, and
    without a name the email's local part (or the phone) stands in."""
    first, last = split_name(contact.name)
    if not last:
        first, last = "", first
    if not last:
        last = (contact.email or "").split("@")[0] or contact.phone or "Unknown"
    return first, last


def not_accepted(response: Response, provider_name: str, code: str | None = None) -> CRMError:
    """The error for an answer no provider-specific rule explained: a common status's (throttling,
    server errors), else "not accepted" naming the status and the CRM's error `code`."""
    try:
        raise_for_common_status(response, provider_name)
    except CRMError as exc:
        return exc
    shown = f" ({code})" if code else ""
    return CRMError("not_a_crm", f"{provider_name} answered {response.status}{shown}; the request was not accepted.")
