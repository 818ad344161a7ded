"""Send a message to a contact: find or create the contact, a conversation in the platform's inbox,
then post the message. In the operator's shared account the contact is always one this user created
(checked by its tenant identifier before its stored id is used: see crm.operations.sync), so a message
never lands in another user's or an outside contact's conversation."""

from __future__ import annotations

from dataclasses import dataclass

from crm.contacts.service import get_contact
from crm.extensions import db
from crm.models import User
from crm.operations.provisioning import find_or_create_inbox
from crm.operations.resolver import CRMTarget, crm_for
from crm.operations.sync import ensure_remote_contact

MAX_MESSAGE = 150_000


@dataclass
class SentMessage:
    conversation_id: int
    message_id: int
    target: str


def inbox_for(target: CRMTarget) -> int:
    known = (target.integration.remote or {}).get("inbox_id") if target.integration else None
    inbox_id = find_or_create_inbox(target.api, known)
    if target.integration is not None and inbox_id != known:
        target.integration.remote = {**(target.integration.remote or {}), "inbox_id": inbox_id}
        db.session.commit()
    return inbox_id


def send_message(owner: User, contact_id: object, text: str) -> SentMessage:
    """Raises ContactNotFound, NoCRMConfigured, ValueError (empty text), OutboundError or CRMError."""
    text = (text or "").strip()
    if not text or len(text) > MAX_MESSAGE:
        raise ValueError(f"Write a message of 1 to {MAX_MESSAGE} characters.")
    contact = get_contact(owner, contact_id)
    target = crm_for(owner)
    remote_contact = ensure_remote_contact(target, contact)
    inbox_id = inbox_for(target)
    listing = target.api.account_call("GET", "contacts", remote_contact, "conversations") or {}
    open_ones = [
        c for c in listing.get("payload") or [] if c.get("inbox_id") == inbox_id and c.get("status") != "resolved"
    ]
    if open_ones:
        conversation_id = int(open_ones[0]["id"])
    else:
        created = target.api.account_call(
            "POST", "conversations", json={"inbox_id": inbox_id, "contact_id": remote_contact}
        )
        conversation_id = int(created["id"])
    message = target.api.account_call(
        "POST",
        "conversations",
        conversation_id,
        "messages",
        json={"content": text, "message_type": "outgoing", "private": False},
    )
    return SentMessage(conversation_id, int(message["id"]), target.label)
