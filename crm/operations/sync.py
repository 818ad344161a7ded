"""Contact sync: create or update each contact in the user's Chatwoot, by a stable key.

- The key is our contact id as Chatwoot's `identifier`, then email, then phone.
- Per-contact state (target, remote id, content hash) means an unchanged contact is not sent again,
  and a sync that was interrupted continues where it stopped without creating duplicates: a
  contact created just before a crash answers 422 on the next create and is looked up instead.
- HTTP runs in a bounded pool of threads over keep-alive connections; only this thread writes
  to the database, in batches.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from typing import Any

from flask import current_app
from sqlalchemy import select, update

from crm.contacts.service import content_hash
from crm.extensions import db
from crm.models import Contact, SyncRun, User, utcnow
from crm.net import OutboundError
from crm.operations.resolver import CRMTarget, crm_for
from crm.providers.base import CRMError, network_message
from crm.providers.chatwoot import ChatwootAPI

LOOKUP_KEYS = (("identifier", "id"), ("email", "email"), ("phone_number", "phone"))
COMMIT_EVERY = 500


@dataclass(frozen=True)
class Snapshot:
    """What one worker thread needs of a contact: plain values, no ORM object."""

    id: str
    name: str
    email: str | None
    phone: str | None
    remote_id: int | None

    def payload(self) -> dict[str, Any]:
        # Never send "" for a value we do not mean to clear.
        body = {"name": self.name, "identifier": self.id}
        if self.email:
            body["email"] = self.email
        if self.phone:
            body["phone_number"] = self.phone
        return body


@dataclass
class Outcome:
    contact_id: str
    kind: str  # created | updated | failed
    remote_id: int | None = None
    error: str | None = None


class SyncConflict(CRMError):
    def __init__(self, message: str):
        super().__init__("account_not_found", message)


def lookup(api: ChatwootAPI, snapshot: Snapshot) -> dict | None:
    """The Chatwoot contact that is this one: by identifier, then email, then phone (exact match)."""
    for attribute, field_name in LOOKUP_KEYS:
        value = getattr(snapshot, field_name)
        if not value:
            continue
        condition = {
            "attribute_key": attribute,
            "filter_operator": "equal_to",
            "values": [value],
            "query_operator": None,
        }
        found = api.account_call("POST", "contacts", "filter", json={"payload": [condition]}) or {}
        for candidate in found.get("payload") or []:
            if str(candidate.get(attribute) or "").lower() == str(value).lower():
                if candidate.get("identifier") not in (None, "", snapshot.id):
                    raise SyncConflict(
                        f"Its {attribute.replace('_', ' ')} belongs to another Chatwoot contact "
                        f"(#{candidate.get('id')}); merge or change one of them."
                    )
                return candidate
    return None


def _update(api: ChatwootAPI, remote_id: int, snapshot: Snapshot) -> Outcome | None:
    response = api.patient_call("PATCH", api.account_path("contacts", remote_id), json=snapshot.payload())
    if response.status == 404:
        return None  # deleted in Chatwoot: create it again
    api.expect_json(response)
    return Outcome(snapshot.id, "updated", remote_id)


def upsert(api: ChatwootAPI, snapshot: Snapshot) -> Outcome:
    if snapshot.remote_id:
        updated = _update(api, snapshot.remote_id, snapshot)
        if updated:
            return updated
    for attempt in range(2):
        response = api.patient_call("POST", api.account_path("contacts"), json=snapshot.payload())
        if 200 <= response.status < 300:
            body = api.expect_json(response)
            return Outcome(snapshot.id, "created", int(body["payload"]["contact"]["id"]))
        if response.status == 422 or (response.status >= 500 and attempt == 0):
            # A duplicate (or, after a 500, perhaps a create that did happen): find it and update it.
            found = lookup(api, snapshot)
            if found is not None:
                updated = _update(api, int(found["id"]), snapshot)
                if updated:
                    return updated
            if response.status == 422:
                body = response.json() or {}
                raise CRMError(
                    "not_a_crm", f"Chatwoot refused it: {', '.join(body.get('attributes') or [])} not accepted."
                )
            continue
        api.expect_json(response)  # raises with our words for 401, 402, 404, 429, 5xx ...
    raise CRMError("server_error", network_message("server_error", "Chatwoot"))


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
        snapshot = snapshot_if_due(row, digest, target.key)
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
        "sync_error": None,
    }


def _write(batch: list[dict[str, Any]], run: SyncRun) -> None:
    """One transaction per batch: the contacts' states and the run's counts and heartbeat together,
    so that a crash loses at most the batch in flight (which the next run redoes without duplicates)."""
    for keys in {tuple(sorted(row)) for row in batch}:
        same_shape = [row for row in batch if tuple(sorted(row)) == keys]
        db.session.execute(update(Contact), same_shape)
    run.heartbeat_at = utcnow()
    db.session.commit()


def snapshot_if_due(contact: Any, digest: str, target_key: str) -> Snapshot | None:
    """What to send for a contact (a row or a Contact), or None when the target already has it as it
    is. A remote id counts only for the target it was made in."""
    same_target = contact.sync_target == target_key
    if same_target and contact.synced_hash == digest and contact.remote_id:
        return None
    remote_id = contact.remote_id if same_target else None
    return Snapshot(contact.id, contact.name, contact.email, contact.phone, remote_id)


def ensure_remote_contact(target: CRMTarget, contact: Contact) -> int:
    """The contact's id in Chatwoot, syncing it first when it is new or changed."""
    digest = content_hash(contact)
    snapshot = snapshot_if_due(contact, digest, target.key)
    if snapshot is None:
        return contact.remote_id
    outcome = upsert(target.api, snapshot)
    contact.sync_target, contact.remote_id = target.key, outcome.remote_id
    contact.synced_hash, contact.sync_error = digest, None
    db.session.commit()
    return outcome.remote_id
