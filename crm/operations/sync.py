"""Contact sync: create or update each contact in the user's Chatwoot, by a stable key.

- The key is the contact's Chatwoot `identifier`. In the user's own account it is our contact id, and a
  contact already there is also matched by email, then phone: it is their account.
- In the operator's shared account (`CRMTarget.shared`) every user without an integration has contacts,
  so there the identifier is tenant-scoped (a keyed hash of user and contact id, which shows neither)
  and it is the only key: a user never reads, changes or messages a contact they did not create there.
  An email or phone that another contact holds there is left out, with a note naming no other contact.
- Per-contact state (target, remote id, content hash) means an unchanged contact is not sent again,
  and a sync that was interrupted continues where it stopped without creating duplicates: a
  contact created just before a crash answers 422 on the next create and is looked up instead.
- HTTP runs in a bounded pool of threads over keep-alive connections; only this thread writes
  to the database, in batches.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, replace
from functools import lru_cache
from typing import Any

from flask import current_app
from sqlalchemy import select, update

from crm.contacts.service import content_hash
from crm.extensions import db
from crm.models import Contact, SyncRun, User, utcnow
from crm.net import OutboundError, Response
from crm.operations.resolver import CRMTarget, crm_for
from crm.providers.base import CRMError, network_message
from crm.providers.chatwoot import ChatwootAPI

COMMIT_EVERY = 500
IDENTIFIER_PREFIX = "lbx-"
IDENTIFIER_CONTEXT = b"localboxs: chatwoot contact identifier v1"
# Chatwoot's words in a 422 when another contact holds a unique value ("Email has already been taken").
TAKEN_LABELS = {"email": "Email", "phone_number": "Phone number"}
FIELD_WORDS = {"email": "email", "phone_number": "phone number"}


@lru_cache(maxsize=8)
def _identifier_key(secret: str | bytes) -> bytes:
    raw = secret.encode() if isinstance(secret, str) else secret
    return hmac.new(raw, IDENTIFIER_CONTEXT, hashlib.sha256).digest()


def tenant_identifier(secret: str | bytes, user_id: int, contact_id: str) -> str:
    """The identifier of one user's contact in the shared account: deterministic, unique to that user
    and contact, and keyed, so the operator's CRM shows neither id and no user can make another's."""
    digest = hmac.new(_identifier_key(secret), f"{user_id}:{contact_id}".encode(), hashlib.sha256)
    return IDENTIFIER_PREFIX + digest.hexdigest()[:40]


def identifiers_for(shared: bool, user_id: int, contact_id: str) -> tuple[str, ...]:
    """Every identifier that means this contact, the one to write first. The others are still
    recognised as it: tenant identifiers made under an older SECRET_KEY (SECRET_KEY_FALLBACKS), and
    the bare contact id (written by own integrations, and in the shared account before tenant ids)."""
    config = current_app.config
    secrets = [config["SECRET_KEY"], *(config.get("SECRET_KEY_FALLBACKS") or [])]
    tenant = tuple(dict.fromkeys(tenant_identifier(secret, user_id, contact_id) for secret in secrets if secret))
    return (*tenant, contact_id) if shared else (contact_id, *tenant)


@dataclass(frozen=True)
class Snapshot:
    """What one worker thread needs of a contact: plain values, no ORM object."""

    id: str
    name: str
    email: str | None
    phone: str | None
    remote_id: int | None
    identifiers: tuple[str, ...]  # every identifier that is this contact; the first is written
    shared: bool = False  # the operator's account: touch only contacts with one of `identifiers`

    @property
    def identifier(self) -> str:
        return self.identifiers[0]

    def owns(self, remote: Any) -> bool:
        return isinstance(remote, dict) and remote.get("identifier") in self.identifiers

    def payload(self, leave_out: frozenset[str] = frozenset()) -> dict[str, Any]:
        # Never send "" for a value we do not mean to clear.
        body = {"name": self.name, "identifier": self.identifier}
        if self.email and "email" not in leave_out:
            body["email"] = self.email
        if self.phone and "phone_number" not in leave_out:
            body["phone_number"] = self.phone
        return body


@dataclass
class Outcome:
    contact_id: str
    kind: str  # created | updated | failed
    remote_id: int | None = None
    error: str | None = None
    note: str | None = None  # sent, but not all of it (kept as the contact's sync_error)


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


def refused(response: Response, snapshot: Snapshot) -> CRMError:
    """Our words for a 422 that no lookup resolved. In the shared account it names no other contact."""
    taken = taken_fields(response)
    if taken and snapshot.shared:
        return SyncConflict(
            f"A contact with this {_words(taken)} already exists in the platform's CRM; change it, "
            "or add your own Chatwoot under Dashboard → Integrations."
        )
    if taken:
        return SyncConflict(f"Its {_words(taken)} belongs to another Chatwoot contact; merge or change one of them.")
    body = response.json()
    attributes = body.get("attributes") if isinstance(body, dict) else None
    return CRMError("not_a_crm", f"Chatwoot refused it: {', '.join(map(str, attributes or []))} not accepted.")


def _filter(api: ChatwootAPI, attribute: str, value: str) -> list[dict]:
    condition = {"attribute_key": attribute, "filter_operator": "equal_to", "values": [value], "query_operator": None}
    found = api.account_call("POST", "contacts", "filter", json={"payload": [condition]}) or {}
    return [c for c in found.get("payload") or [] if isinstance(c, dict)]


def lookup(api: ChatwootAPI, snapshot: Snapshot) -> dict | None:
    """The Chatwoot contact that is this one. Shared account: by our identifiers only. The user's own
    account: by identifier, then email, then phone (exact match)."""
    if snapshot.shared:
        keys = [("identifier", value) for value in snapshot.identifiers]
    else:
        keys = [("identifier", snapshot.identifier), ("email", snapshot.email), ("phone_number", snapshot.phone)]
    for attribute, value in keys:
        if not value:
            continue
        for candidate in _filter(api, attribute, value):
            if snapshot.shared:
                if snapshot.owns(candidate):  # exactly: Chatwoot's identifier filter ignores case
                    return candidate
                continue
            if str(candidate.get(attribute) or "").lower() == str(value).lower():
                if candidate.get("identifier") not in (None, "") and not snapshot.owns(candidate):
                    raise SyncConflict(
                        f"Its {attribute.replace('_', ' ')} belongs to another Chatwoot contact "
                        f"(#{candidate.get('id')}); merge or change one of them."
                    )
                return candidate
    return None


def still_ours(api: ChatwootAPI, remote_id: int, snapshot: Snapshot) -> bool:
    """Whether a stored remote id still names this contact: in the shared account it may have been
    deleted, merged or edited since, and nothing is changed or messaged there until it is checked."""
    response = api.patient_call("GET", api.account_path("contacts", remote_id))
    if response.status == 404:
        return False
    body = api.expect_json(response)
    return snapshot.owns(body.get("payload") if isinstance(body, dict) else None)


def _update(api: ChatwootAPI, remote_id: int, snapshot: Snapshot, checked: bool = False) -> Outcome | None:
    """PATCH the contact; None when Chatwoot no longer has it (or, shared, it is no longer ours): create it."""
    if snapshot.shared and not checked and not still_ours(api, remote_id, snapshot):
        return None
    path = api.account_path("contacts", remote_id)
    response = api.patient_call("PATCH", path, json=snapshot.payload())
    left_out = taken_fields(response) if snapshot.shared else frozenset()
    if left_out:
        response = api.patient_call("PATCH", path, json=snapshot.payload(left_out))
    if response.status == 404:
        return None  # deleted in Chatwoot: create it again
    if response.status == 422:
        raise refused(response, snapshot)
    api.expect_json(response)
    return Outcome(snapshot.id, "updated", remote_id, note=left_out_note(left_out))


def upsert(api: ChatwootAPI, snapshot: Snapshot) -> Outcome:
    if snapshot.remote_id:
        updated = _update(api, snapshot.remote_id, snapshot)
        if updated:
            return updated
    left_out: frozenset[str] = frozenset()
    checked_after_500 = False
    while True:
        response = api.patient_call("POST", api.account_path("contacts"), json=snapshot.payload(left_out))
        if 200 <= response.status < 300:
            body = api.expect_json(response)
            return Outcome(snapshot.id, "created", int(body["payload"]["contact"]["id"]), note=left_out_note(left_out))
        lost_answer = response.status >= 500 and not checked_after_500
        if response.status != 422 and not lost_answer:
            api.expect_json(response)  # raises with our words for 401, 402, 404, 429, 5xx ...
            raise CRMError("server_error", network_message("server_error", "Chatwoot"))
        # A duplicate (or, after a 500, perhaps a create that did happen): find it and update it.
        found = lookup(api, snapshot)
        if found is not None:
            updated = _update(api, int(found["id"]), snapshot, checked=True)
            if updated:
                return updated
        if lost_answer:
            checked_after_500 = True
            continue
        taken = taken_fields(response)
        if snapshot.shared and taken and not left_out:
            left_out = taken  # another user's (or an outside) contact holds it: make ours without it
            continue
        raise refused(response, snapshot)


def sync_one(api: ChatwootAPI, snapshot: Snapshot) -> Outcome:
    try:
        return upsert(api, snapshot)
    except OutboundError as exc:
        return Outcome(snapshot.id, "failed", error=network_message(exc.outcome, "Chatwoot", exc.detail))
    except CRMError as exc:
        return Outcome(snapshot.id, "failed", error=exc.message)


def run_sync(run_id: str) -> SyncRun:
    """Run one sync to its end, recording progress on its SyncRun row as it goes."""
    run = db.session.get(SyncRun, run_id)
    owner = db.session.get(User, run.user_id)
    run.status = "running"
    run.heartbeat_at = utcnow()
    db.session.commit()
    try:
        target = crm_for(owner)
    except Exception as exc:
        return _finish(run, "failed", getattr(exc, "message", None) or str(exc))
    try:
        _sync_all(run, owner, target)
    except Exception:
        db.session.rollback()
        _finish(run, "failed", "The sync stopped unexpectedly; start it again to continue where it stopped.")
        raise
    return _finish(run, "done", None)


def _finish(run: SyncRun, status: str, message: str | None) -> SyncRun:
    run.status = status
    run.message = message
    run.finished_at = run.heartbeat_at = utcnow()
    db.session.commit()
    return run


def _sync_all(run: SyncRun, owner: User, target: CRMTarget) -> None:
    rows = db.session.execute(
        select(
            Contact.id,
            Contact.name,
            Contact.email,
            Contact.phone,
            Contact.remote_id,
            Contact.sync_target,
            Contact.synced_hash,
        ).where(Contact.user_id == owner.id)
    ).all()
    pending: list[Snapshot] = []
    hashes: dict[str, str] = {}
    for row in rows:
        digest = content_hash({"name": row.name, "email": row.email, "phone": row.phone})
        snapshot = snapshot_if_due(row, digest, target, owner.id)
        if snapshot is not None:
            hashes[row.id] = digest
            pending.append(snapshot)
    run.total = len(rows)
    run.unchanged = len(rows) - len(pending)
    db.session.commit()
    workers = current_app.config.get("CRM_SYNC_CONCURRENCY", 8)
    batch: list[dict[str, Any]] = []
    last_commit = time.monotonic()
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="crm-sync") as pool:
        futures = [pool.submit(sync_one, target.api, snapshot) for snapshot in pending]
        for future in as_completed(futures):
            outcome = future.result()
            batch.append(_state(outcome, target.key, hashes[outcome.contact_id], run))
            if len(batch) >= COMMIT_EVERY or time.monotonic() - last_commit > 0.5:
                _write(batch, run)
                batch, last_commit = [], time.monotonic()
    _write(batch, run)


def _state(outcome: Outcome, target_key: str, digest: str, run: SyncRun) -> dict[str, Any]:
    """The contact's new sync state (a row for one bulk UPDATE), counted on the run."""
    if outcome.kind == "failed":
        run.failed += 1
        return {"id": outcome.contact_id, "sync_error": outcome.error}
    if outcome.kind == "created":
        run.created += 1
    else:
        run.updated += 1
    return {
        "id": outcome.contact_id,
        "sync_target": target_key,
        "remote_id": outcome.remote_id,
        "synced_hash": digest,
        "sync_error": outcome.note,
    }


def _write(batch: list[dict[str, Any]], run: SyncRun) -> None:
    """One transaction per batch: the contacts' states and the run's counts and heartbeat together,
    so that a crash loses at most the batch in flight (which the next run redoes without duplicates)."""
    for keys in {tuple(sorted(row)) for row in batch}:
        same_shape = [row for row in batch if tuple(sorted(row)) == keys]
        db.session.execute(update(Contact), same_shape)
    run.heartbeat_at = utcnow()
    db.session.commit()


def snapshot_if_due(contact: Any, digest: str, target: CRMTarget, user_id: int) -> Snapshot | None:
    """What to send for a contact (a row or a Contact), or None when the target already has it as it
    is. A remote id counts only for the target it was made in."""
    same_target = contact.sync_target == target.key
    if same_target and contact.synced_hash == digest and contact.remote_id:
        return None
    return snapshot_of(contact, target, user_id, contact.remote_id if same_target else None)


def snapshot_of(contact: Any, target: CRMTarget, user_id: int, remote_id: int | None) -> Snapshot:
    identifiers = identifiers_for(target.shared, user_id, contact.id)
    return Snapshot(contact.id, contact.name, contact.email, contact.phone, remote_id, identifiers, target.shared)


def ensure_remote_contact(target: CRMTarget, contact: Contact) -> int:
    """The contact's id in Chatwoot, syncing it first when it is new or changed. In the shared account
    a stored id is used only once Chatwoot confirms it is still this user's contact."""
    digest = content_hash(contact)
    snapshot = snapshot_if_due(contact, digest, target, contact.user_id)
    if snapshot is None:
        known = snapshot_of(contact, target, contact.user_id, contact.remote_id)
        if not target.shared or still_ours(target.api, contact.remote_id, known):
            return contact.remote_id
        snapshot = replace(known, remote_id=None)  # not (or no longer) ours: find ours by identifier
    outcome = upsert(target.api, snapshot)
    contact.sync_target, contact.remote_id = target.key, outcome.remote_id
    contact.synced_hash, contact.sync_error = digest, outcome.note
    db.session.commit()
    return outcome.remote_id
