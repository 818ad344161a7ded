"""Acting on a verified delivery: CRM contact changes update the user's local contact (our own writes,
recognised by their content hash, are not applied back), and a contact's incoming Chatwoot messages
go to the conversation log on the Contacts page. Each action is idempotent, so a delivery re-run after
a worker died changes nothing twice."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError

from crm.contacts.service import ContactInvalid, clean_contact, content_hash
from crm.extensions import db
from crm.models import Contact, ContactLink, Integration
from crm.webhooks.models import ConversationMessage, WebhookDelivery

Outcome = tuple[str, str | None]  # (status, note): done | ignored | failed
MESSAGE_MAX = 10_000  # characters of a message kept in the log


def act(delivery: WebhookDelivery) -> Outcome:
    integration = db.session.get(Integration, delivery.integration_id)
    payload = delivery.payload
    if integration is None:
        return "ignored", "The integration is gone."
    handler = {"CHATWOOT": _chatwoot, "HUBSPOT": _hubspot, "PIPEDRIVE": _pipedrive, "ZOHO": _zoho}.get(
        integration.provider
    )
    return handler(integration, payload) if handler else ("ignored", "Nothing to do for this CRM.")


# --- finding the local contact ---------------------------------------------------------------------


def _owned_contact(user_id: int, contact_id: Any) -> Contact | None:
    try:
        key = str(uuid.UUID(str(contact_id)))
    except ValueError:
        return None
    return db.session.scalars(select(Contact).where(Contact.id == key, Contact.user_id == user_id)).first()


def _by_link(integration: Integration, remote_id: Any) -> Contact | None:
    if remote_id in (None, ""):
        return None
    return db.session.scalars(
        select(Contact)
        .join(ContactLink, ContactLink.contact_id == Contact.id)
        .where(
            Contact.user_id == integration.user_id,
            ContactLink.integration_id == integration.id,
            ContactLink.remote_id == str(remote_id),
        )
    ).first()


def _by_email(user_id: int, email: Any) -> Contact | None:
    if not isinstance(email, str) or not email.strip():
        return None
    return db.session.scalars(
        select(Contact).where(Contact.user_id == user_id, Contact.email == email.strip().lower())
    ).first()


def find_contact(integration: Integration, remote_id: Any, identifier: Any, email: Any) -> Contact | None:
    """By the CRM's identifier (our contact id), then the CRM id we linked, then email."""
    return (
        _owned_contact(integration.user_id, identifier)
        or _by_link(integration, remote_id)
        or _by_email(integration.user_id, email)
    )


def apply_contact_change(integration: Integration, contact: Contact, remote_id: Any, values: dict[str, Any]) -> Outcome:
    """Update `contact` with the CRM's values, unless they are what we sent ourselves (an echo)."""
    link = next((lk for lk in contact.links if lk.integration_id == integration.id), None)
    merged = {"name": contact.name, "email": contact.email, "phone": contact.phone}
    merged |= {k: v for k, v in values.items() if v is not None}
    try:
        cleaned = clean_contact(merged)
    except ContactInvalid as exc:
        return "ignored", f"The CRM's values were not valid here ({', '.join(exc.fields)})."
    digest = content_hash(cleaned)
    if link is not None and link.synced_hash == digest:
        return "ignored", "Our own change, coming back: nothing to do."
    if digest == content_hash(contact):
        return "ignored", "Already up to date."
    contact.name, contact.email, contact.phone = cleaned["name"], cleaned["email"], cleaned["phone"]
    if link is None:
        target = _target_key(integration)
        if target is not None:
            link = ContactLink(contact_id=contact.id, target=target, integration_id=integration.id)
            db.session.add(link)
    if link is not None:
        # The CRM holds these values already: the next sync must not send them back.
        link.synced_hash = digest
        if remote_id not in (None, ""):
            link.remote_id = str(remote_id)[:64]
    return "done", "Contact updated from the CRM."


def _target_key(integration: Integration) -> str | None:
    from crm.providers import get_provider

    provider = get_provider(integration.provider)
    try:
        return provider.account_key(integration.configuration or {}, integration.id)
    except (KeyError, TypeError, ValueError):
        return None


# --- Chatwoot --------------------------------------------------------------------------------------


def _chatwoot(integration: Integration, payload: Any) -> Outcome:
    if not isinstance(payload, dict):
        return "ignored", "Not a Chatwoot event."
    event = payload.get("event")
    if event in ("contact_created", "contact_updated"):
        return _chatwoot_contact(integration, payload)
    if event == "message_created":
        return _chatwoot_message(integration, payload)
    if event == "conversation_status_changed":
        return _chatwoot_status(integration, payload)
    return "ignored", "An event we do not act on."


def _chatwoot_contact(integration: Integration, payload: dict) -> Outcome:
    contact = find_contact(integration, payload.get("id"), payload.get("identifier"), payload.get("email"))
    if contact is None:
        return "ignored", "No matching contact here."
    values = {"name": payload.get("name"), "email": payload.get("email"), "phone": payload.get("phone_number")}
    outcome = apply_contact_change(integration, contact, payload.get("id"), values)
    db.session.flush()
    return outcome


def _is_incoming(payload: dict) -> bool:
    kind = payload.get("message_type")
    return kind in ("incoming", 0) and not payload.get("private")


def _chatwoot_message(integration: Integration, payload: dict) -> Outcome:
    if not _is_incoming(payload):
        return "ignored", "Not a message from the contact."  # our own and agents' messages never loop back
    sender = payload.get("sender") if isinstance(payload.get("sender"), dict) else {}
    conversation = payload.get("conversation") if isinstance(payload.get("conversation"), dict) else {}
    contact = find_contact(integration, sender.get("id"), sender.get("identifier"), sender.get("email"))
    message_id = payload.get("id")
    if message_id is None:
        return "ignored", "The message has no id."
    row = ConversationMessage(
        user_id=integration.user_id,
        contact_id=contact.id if contact else None,
        integration_id=integration.id,
        remote_message_id=str(message_id)[:64],
        remote_conversation_id=_text(conversation.get("display_id") or conversation.get("id"), 64),
        sender=_text(sender.get("name") or sender.get("email"), 255),
        content=_text(payload.get("content"), MESSAGE_MAX) or "",
        conversation_status=_text(conversation.get("status"), 16),
    )
    try:
        with db.session.begin_nested():
            db.session.add(row)
    except IntegrityError:
        return "ignored", "This message is logged already."
    return "done", "Message logged."


def _chatwoot_status(integration: Integration, payload: dict) -> Outcome:
    conversation_id = _text(payload.get("display_id") or payload.get("id"), 64)
    status = _text(payload.get("status"), 16)
    if not conversation_id or not status:
        return "ignored", "No conversation or status."
    db.session.execute(
        update(ConversationMessage)
        .where(
            ConversationMessage.integration_id == integration.id,
            ConversationMessage.remote_conversation_id == conversation_id,
        )
        .values(conversation_status=status)
    )
    return "done", f"Conversation marked {status}."


def _text(value: Any, limit: int) -> str | None:
    return str(value)[:limit] if value not in (None, "") else None


# --- HubSpot, Pipedrive, Zoho ----------------------------------------------------------------------

HUBSPOT_PROPERTIES = {"email": "email", "phone": "phone", "mobilephone": "phone"}


def _hubspot(integration: Integration, payload: Any) -> Outcome:
    events = payload if isinstance(payload, list) else []
    portal = str(
        (integration.remote or {}).get("portal_id") or (integration.configuration or {}).get("portal_id") or ""
    )
    changed = 0
    for event in events[:100]:
        if not isinstance(event, dict) or event.get("subscriptionType") != "contact.propertyChange":
            continue
        if portal and str(event.get("portalId")) != portal:
            continue  # one HubSpot app calls every portal's URL: only this integration's portal counts
        field = HUBSPOT_PROPERTIES.get(str(event.get("propertyName")))
        contact = _by_link(integration, event.get("objectId"))
        if field is None or contact is None:
            continue
        status, _ = apply_contact_change(
            integration, contact, event.get("objectId"), {field: event.get("propertyValue")}
        )
        changed += status == "done"
    return ("done", f"{changed} contact(s) updated.") if changed else ("ignored", "No matching contact change.")


def _pipedrive(integration: Integration, payload: Any) -> Outcome:
    if not isinstance(payload, dict):
        return "ignored", "Not a Pipedrive event."
    meta = payload.get("meta") if isinstance(payload.get("meta"), dict) else {}
    data = payload.get("data") if isinstance(payload.get("data"), dict) else {}
    if meta.get("entity") != "person" or meta.get("action") not in ("change", "create", "updated", "added"):
        return "ignored", "An event we do not act on."
    email = _first_value(data.get("emails") or data.get("email"))
    contact = _by_link(integration, data.get("id")) or _by_email(integration.user_id, email)
    if contact is None:
        return "ignored", "No matching contact here."
    values = {"name": data.get("name"), "email": email, "phone": _first_value(data.get("phones") or data.get("phone"))}
    return apply_contact_change(integration, contact, data.get("id"), values)


def _first_value(items: Any) -> str | None:
    if isinstance(items, list):
        for item in items:
            value = item.get("value") if isinstance(item, dict) else item
            if isinstance(value, str) and value:
                return value
        return None
    return items if isinstance(items, str) else None


def _zoho(integration: Integration, payload: Any) -> Outcome:
    # Zoho sends record ids only; fetching the records is left to the reconciliation sync for now.
    return "ignored", "Zoho sends record ids only: the scheduled sync fetches the records."
