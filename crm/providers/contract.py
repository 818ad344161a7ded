"""What operations may ask of a provider, whatever the CRM.

A provider declares its capabilities and, for the ones that act in the CRM, returns a `Connection`
from `Provider.connect(...)`. Operations (sync, messages) call only this interface, so they never
name a provider and a new CRM is one file under `crm/providers/`.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from crm.providers.base import CRMError, network_message

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


@dataclass
class ContactResult:
    key: str
    kind: str  # created | updated | failed
    remote_id: str | None = None
    error: str | None = None

    @classmethod
    def failed(cls, key: str, error: str) -> ContactResult:
        return cls(key, "failed", None, error)


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


def wait_before_retry(seconds: float, deadline: float | None, provider_name: str) -> None:
    """Sleep out a CRM's throttling, unless that would pass the deadline: then give up at once."""
    remaining = (deadline - time.monotonic()) if deadline is not None else JOB_RETRY_BUDGET
    if seconds > remaining:
        raise CRMError("rate_limited", network_message("rate_limited", provider_name))
    time.sleep(max(0.0, seconds))


def split_name(name: str) -> tuple[str, str]:
    """(first, last) for CRMs that store them apart: the last word is the last name."""
    parts = (name or "").strip().rsplit(" ", 1)
    return (parts[0], parts[1]) if len(parts) == 2 else (parts[0], "")
