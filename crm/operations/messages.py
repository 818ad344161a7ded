"""Send a message to a contact through the user's CRM: the contact is sent first if the CRM does not have
it as it is, then the provider records the text: a message in a conversation where the CRM has chat
(Chatwoot), else a note or task on the contact. In the operator's shared account the contact is always
one this user created (the provider confirms a stored id before it is used: see crm.operations.sync),
so a message never lands in another user's or an outside contact's conversation."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from crm.analytics import recorder
from crm.contacts.service import get_contact
from crm.models import User
from crm.net import OutboundError
from crm.operations.resolver import crm_for
from crm.operations.sync import _save_remote, ensure_remote_contact
from crm.providers.base import CRMError

MAX_MESSAGE = 150_000
KIND_WORDS = {"message": "a message", "note": "a note", "task": "a task"}


@dataclass
class SentMessage:
    kind: str  # message | note | task
    remote_id: str
    provider: str
    target: str  # which integration, in words
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def message_id(self) -> int | str:
        return int(self.remote_id) if self.remote_id.isdigit() else self.remote_id

    @property
    def conversation_id(self) -> int | None:
        return self.details.get("conversationId")

    @property
    def summary(self) -> str:
        if self.conversation_id is not None:
            return f"Message {self.message_id} is in conversation {self.conversation_id}, via {self.target}."
        return f"Recorded as {KIND_WORDS.get(self.kind, 'a note')} in {self.provider}, via {self.target}."


def send_message(owner: User, contact_id: object, text: str, integration_id: object | None = None) -> SentMessage:
    """Raises ContactNotFound, IntegrationNotFound, NoCRMConfigured, ValueError (empty text),
    OutboundError or CRMError."""
    text = (text or "").strip()
    if not text or len(text) > MAX_MESSAGE:
        raise ValueError(f"Write a message of 1 to {MAX_MESSAGE} characters.")
    contact = get_contact(owner, contact_id)
    target = crm_for(owner, integration_id)
    started, outcome = time.perf_counter(), "server_error"
    try:
        remote_contact = ensure_remote_contact(target, contact)
        recorded = target.connection.record_message(remote_contact, text)
        outcome = "ok"
    except (OutboundError, CRMError) as exc:
        outcome = exc.outcome
        raise
    finally:
        if target.integration is not None:
            recorder.record("message", target.integration.id, owner.id, outcome,
                            (time.perf_counter() - started) * 1000, provider=target.provider.id)  # fmt: skip
    _save_remote(target)
    return SentMessage(recorded.kind, recorded.remote_id, target.provider.name, target.label, recorded.details)
