"""Contact sync: send each contact to every CRM that syncs the user's contacts, by a stable key.

- Nothing here knows a provider: each CRM is a `Connection` (crm.providers.contract) fed batches of
  `ContactData` of the size it asks for, `concurrency` batches at a time over keep-alive connections.
- State is kept per contact and per CRM account (`ContactLink`: remote id, hash of what was sent), so an
  unchanged contact costs no request, a new CRM gets every contact once without touching the others,
  and a sync that was interrupted continues where it stopped without creating duplicates.
- Our key for a contact is its id. In the operator's shared account (`CRMTarget.shared`) it is a keyed
  hash of user and contact id instead, which shows neither: there a user may only ever touch contacts
  they created (the provider matches by nothing else there).
- Only this thread writes to the database, in batches.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Sequence
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from contextlib import nullcontext
from contextvars import copy_context
from dataclasses import dataclass, replace
from functools import lru_cache
from typing import Any

from flask import current_app
from sqlalchemy import and_, insert, select, update
from sqlalchemy.exc import IntegrityError

from crm.analytics import recorder
from crm.contacts.service import content_hash
from crm.crypto import CredentialUnreadable
from crm.extensions import db
from crm.models import Contact, ContactLink, SyncRun, User, utcnow
from crm.net import OutboundError
from crm.operations.failures import describe_failure
from crm.operations.resolver import CRMTarget, NoCRMConfigured, connect, sync_plan
from crm.providers.base import CRMError
from crm.providers.contract import ContactData, ContactResult, FatalCRMError

COMMIT_EVERY = 500
IDENTIFIER_PREFIX = "lbx-"
IDENTIFIER_CONTEXT = b"localboxs: chatwoot contact identifier v1"
# A failure that no other batch can avoid either: the token or its rights are gone.
STOPPING_OUTCOMES = ("auth_failed", "insufficient_permissions")


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


def contact_data(contact: Any, target: CRMTarget, user_id: int, remote_id: str | None) -> ContactData:
    """What a CRM receives of a contact (a row or a Contact): plain values, no ORM object."""
    key, *aliases = identifiers_for(target.shared, user_id, contact.id)
    return ContactData(key, contact.name, contact.email, contact.phone, remote_id, tuple(aliases))


@dataclass
class Pending:
    contact_id: str
    data: ContactData
    digest: str
    link_id: int | None  # the contact's existing link to this CRM account, if any


# --- a run ----------------------------------------------------------------------------------------


def run_sync(run_id: str) -> SyncRun:
    """Run one sync to its end, recording progress on its SyncRun row as it goes."""
    run = db.session.get(SyncRun, run_id)
    owner = db.session.get(User, run.user_id)
    run.status = "running"
    run.heartbeat_at = utcnow()
    db.session.commit()
    try:
        plan = sync_plan(owner, run.integration_id)
    except NoCRMConfigured as exc:
        return _finish(run, "failed", exc.message)
    except LookupError:
        return _finish(run, "failed", "That integration no longer exists.")
    problems: list[str] = []
    for integration in plan:
        try:
            target = connect(owner, integration, "contacts sync")
            with recorder.attributed_to(integration) if integration is not None else nullcontext():
                sync_to(run, owner, target)
        except (OutboundError, CRMError, CredentialUnreadable) as exc:
            db.session.rollback()
            name = integration.name if integration is not None else "the platform's CRM"
            problems.append(f"{name}: {describe_failure(exc)}")
        except Exception:
            db.session.rollback()
            _finish(run, "failed", "The sync stopped unexpectedly; start it again to continue where it stopped.")
            raise
    if problems and len(problems) == len(plan):
        return _finish(run, "failed", " ".join(problems))
    return _finish(run, "done", " ".join(problems) or None)


def _finish(run: SyncRun, status: str, message: str | None) -> SyncRun:
    run.status = status
    run.message = message[:2000] if message else None
    run.finished_at = run.heartbeat_at = utcnow()
    db.session.commit()
    recorder.flush()  # an RQ work horse exits without exit handlers: its figures are written now
    return run


def due_contacts(owner: User, target: CRMTarget) -> tuple[int, list[Pending]]:
    """(how many contacts the user has, those this CRM account does not have as they are)."""
    rows = db.session.execute(
        select(
            Contact.id,
            Contact.name,
            Contact.email,
            Contact.phone,
            ContactLink.id.label("link_id"),
            ContactLink.remote_id,
            ContactLink.synced_hash,
        )
        .outerjoin(ContactLink, and_(ContactLink.contact_id == Contact.id, ContactLink.target == target.key))
        .where(Contact.user_id == owner.id)
    ).all()
    pending = []
    for row in rows:
        digest = content_hash({"name": row.name, "email": row.email, "phone": row.phone})
        if row.remote_id and row.synced_hash == digest:
            continue
        pending.append(Pending(row.id, contact_data(row, target, owner.id, row.remote_id), digest, row.link_id))
    return len(rows), pending


def sync_to(run: SyncRun, owner: User, target: CRMTarget) -> None:
    total, pending = due_contacts(owner, target)
    run.total += total
    run.unchanged += total - len(pending)
    db.session.commit()
    connection = target.connection
    size = max(1, connection.batch_size)
    batches = [pending[i : i + size] for i in range(0, len(pending), size)]
    workers = max(1, min(connection.concurrency, current_app.config.get("CRM_SYNC_CONCURRENCY", 8)))
    writer = LinkWriter(run, target)
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="crm-sync") as pool:
        # Each batch runs in a copy of this context: waits it notes count for this integration.
        futures = {pool.submit(copy_context().run, send_batch, connection, batch): batch for batch in batches}
        try:
            while futures:
                done, _ = wait(futures, timeout=0.5, return_when=FIRST_EXCEPTION)
                for future in done:
                    batch = futures.pop(future)
                    writer.add(batch, future.result())
                writer.flush_if_due()
        finally:
            for future in futures:
                future.cancel()  # a run-ending failure: what was not sent yet stays due
            writer.flush()
    _save_remote(target)


@dataclass
class BatchOutcome:
    results: list[ContactResult]
    outcome: str  # ok, or the code of the first failure (for analytics)
    duration_ms: float


def send_batch(connection, batch: Sequence[Pending]) -> BatchOutcome:
    """One batch through the provider; a failure of the whole call fails each of its contacts, unless
    it ends the run (a daily limit, a revoked token), which is raised."""
    started = time.perf_counter()
    try:
        results = connection.upsert_contacts([p.data for p in batch])
    except FatalCRMError:
        raise
    except (OutboundError, CRMError) as exc:
        if getattr(exc, "outcome", None) in STOPPING_OUTCOMES:
            raise
        results = [ContactResult.failed(p.data.key, describe_failure(exc), exc.outcome) for p in batch]
    failures = [r.outcome or "server_error" for r in results if r.kind == "failed"]
    return BatchOutcome(results, failures[0] if failures else "ok", (time.perf_counter() - started) * 1000)


class LinkWriter:
    """Collects results and writes them in batches: one transaction for the links and the run's counts
    and heartbeat together, so a crash loses at most the batch in flight (which the next run redoes
    without duplicates)."""

    def __init__(self, run: SyncRun, target: CRMTarget):
        self.run = run
        self.target = target
        self.inserts: list[dict[str, Any]] = []
        self.updates: list[dict[str, Any]] = []
        self.last_flush = time.monotonic()

    def add(self, batch: Sequence[Pending], sent: BatchOutcome) -> None:
        by_key = {r.key: r for r in sent.results}
        if self.target.integration is not None:
            kinds = [r.kind for r in sent.results]
            counts = {name: kinds.count(name) for name in ("created", "updated", "failed")}
            integration = self.target.integration
            recorder.record("sync_batch", integration.id, integration.user_id, sent.outcome, sent.duration_ms,
                            counts, provider=integration.provider)  # fmt: skip
        for pending in batch:
            result = by_key.get(pending.data.key) or ContactResult.failed(
                pending.data.key, "The CRM did not answer for this contact."
            )
            self._count(result)
            row = self._state(pending, result)
            if pending.link_id is None:
                self.inserts.append(row)
            else:
                self.updates.append({"id": pending.link_id, **row})

    def _count(self, result: ContactResult) -> None:
        if result.kind == "failed":
            self.run.failed += 1
        elif result.kind == "created":
            self.run.created += 1
        else:
            self.run.updated += 1

    def _state(self, pending: Pending, result: ContactResult) -> dict[str, Any]:
        state = {
            "contact_id": pending.contact_id,
            "target": self.target.key,
            "integration_id": self.target.integration_id,
            "updated_at": utcnow(),
        }
        if result.kind == "failed":
            # Keep what the CRM has (its id, the hash of what it got); only note the problem.
            return {**state, "sync_error": (result.error or "Failed.")[:2000]}
        return {**state, "remote_id": result.remote_id, "synced_hash": pending.digest, "sync_error": result.note}

    def flush_if_due(self) -> None:
        if len(self.inserts) + len(self.updates) >= COMMIT_EVERY or time.monotonic() - self.last_flush > 0.5:
            self.flush()

    def flush(self) -> None:
        write_links(self.inserts, self.updates)
        self.inserts, self.updates = [], []
        self.run.heartbeat_at = utcnow()
        db.session.commit()
        self.last_flush = time.monotonic()


def write_links(inserts: list[dict[str, Any]], updates: list[dict[str, Any]]) -> None:
    for rows in _same_shapes(updates):
        db.session.execute(update(ContactLink), rows)
    for rows in _same_shapes(inserts):
        try:
            with db.session.begin_nested():
                db.session.execute(insert(ContactLink), rows)
        except IntegrityError:
            # A link made meanwhile (a message sent to a new contact during the sync): one at a time.
            for row in rows:
                save_link(row)


def _same_shapes(rows: list[dict[str, Any]]) -> list[list[dict[str, Any]]]:
    shapes: dict[tuple[str, ...], list[dict[str, Any]]] = {}
    for row in rows:
        shapes.setdefault(tuple(sorted(row)), []).append(row)
    return list(shapes.values())


def save_link(row: dict[str, Any]) -> ContactLink:
    link = db.session.scalars(
        select(ContactLink).where(ContactLink.contact_id == row["contact_id"], ContactLink.target == row["target"])
    ).first()
    if link is None:
        link = ContactLink(contact_id=row["contact_id"], target=row["target"])
        db.session.add(link)
    for name, value in row.items():
        setattr(link, name, value)
    return link


def _save_remote(target: CRMTarget) -> None:
    """Ids the provider found or made on the way (e.g. Chatwoot's inbox) are kept on the integration."""
    remote = getattr(target.connection, "remote", None)
    if target.integration is not None and remote is not None and remote != (target.integration.remote or {}):
        target.integration.remote = dict(remote)
        db.session.commit()


# --- one contact, now (for a message) -----------------------------------------------------------


def link_of(contact: Contact, target_key: str) -> ContactLink | None:
    return next((link for link in contact.links if link.target == target_key), None)


class ContactNotSent(CRMError):
    """The CRM did not take the contact, so nothing can be recorded on it."""


def ensure_remote_contact(target: CRMTarget, contact: Contact) -> ContactData:
    """The contact as this CRM knows it (with its remote id), sending it first when it is new or changed.
    A stored id is used only once the provider confirms it (in the shared account: still this user's)."""
    digest = content_hash(contact)
    link = link_of(contact, target.key)
    data = contact_data(contact, target, contact.user_id, link.remote_id if link else None)
    if link is not None and link.remote_id and link.synced_hash == digest:
        confirmed = target.connection.confirm(data)
        if confirmed:
            return replace(data, remote_id=confirmed)
        data = replace(data, remote_id=None)  # not (or no longer) ours: find ours by identifier
    [result] = target.connection.upsert_contacts([data])
    if result.kind == "failed":
        raise ContactNotSent(result.outcome or "server_error", result.error or "The CRM did not take this contact.")
    save_link(
        {
            "contact_id": contact.id,
            "target": target.key,
            "integration_id": target.integration_id,
            "remote_id": result.remote_id,
            "synced_hash": digest,
            "sync_error": result.note,
        }
    )
    db.session.commit()
    db.session.refresh(contact)
    return replace(data, remote_id=result.remote_id)
