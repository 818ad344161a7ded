"""Background jobs: RQ workers when REDIS_URL is set, else a thread of the web process.

Job state lives in the database (SyncRun), so any web process can show progress, and a run whose
process died is noticed by its stale heartbeat and picked up again by the next sync.
"""

from __future__ import annotations

import threading
from datetime import timedelta

from flask import Flask, current_app
from sqlalchemy import select

from crm.extensions import db
from crm.models import SyncRun, User, find_owned, utcnow
from crm.operations.sync import run_sync

STALE_AFTER = timedelta(seconds=60)


class SyncNotFound(LookupError):
    pass


def queue():
    from redis import Redis
    from rq import Queue

    connection = Redis.from_url(current_app.config["REDIS_URL"])
    return Queue(current_app.config.get("CRM_QUEUE_NAME", "crm"), connection=connection)


def active_run(owner: User, integration_id: str | None = None) -> SyncRun | None:
    """The user's queued or running sync that a new one for `integration_id` (None: every CRM) would
    overlap; one whose heartbeat stopped is marked interrupted. Syncs to different integrations may
    run side by side; two never write to one CRM at once (Pipedrive has no upsert)."""
    runs = db.session.scalars(
        select(SyncRun).where(SyncRun.user_id == owner.id, SyncRun.status.in_(("queued", "running")))
    ).all()
    for run in runs:
        if utcnow() - run.heartbeat_at > STALE_AFTER:
            run.status = "interrupted"
            run.message = "The sync was interrupted; the next one continues where it stopped."
            run.finished_at = utcnow()
    db.session.commit()
    live = [r for r in runs if r.status in ("queued", "running")]
    return next((r for r in live if overlaps(r.integration_id, integration_id)), None)


def overlaps(running: str | None, wanted: str | None) -> bool:
    """A run for every CRM (None) overlaps any other; runs for two integrations do not."""
    return running is None or wanted is None or running == wanted


def start_sync(
    owner: User, integration_id: str | None = None, trigger: str = "manual", job_id: str | None = None
) -> SyncRun:
    """Start a contact sync in the background (or answer the overlapping one already under way): to
    every CRM that syncs the user's contacts, or to one integration. `job_id` makes an RQ job unique
    (the scheduler passes one per due slot, so a slot is never queued twice)."""
    current = active_run(owner, integration_id)
    if current is not None:
        return current
    run = SyncRun(user_id=owner.id, status="queued", integration_id=integration_id, trigger=trigger)
    db.session.add(run)
    db.session.commit()
    if current_app.config.get("REDIS_URL"):
        queue().enqueue("crm.operations.jobs.perform_sync", run.id, job_timeout=3600, job_id=job_id)
    else:
        app = current_app._get_current_object()
        threading.Thread(target=_in_thread, args=(app, run.id), name=f"sync-{run.id}", daemon=True).start()
    return run


def perform_sync(run_id: str) -> None:
    """The RQ job: runs inside `flask crm worker`, which holds the app context."""
    run_sync(run_id)


def _in_thread(app: Flask, run_id: str) -> None:
    with app.app_context():
        run_sync(run_id)


def get_run(owner: User, run_id: object) -> SyncRun:
    run = find_owned(SyncRun, owner, run_id)
    if run is None:
        raise SyncNotFound(run_id)
    return run


def latest_run(owner: User) -> SyncRun | None:
    query = select(SyncRun).where(SyncRun.user_id == owner.id).order_by(SyncRun.created_at.desc())
    return db.session.scalars(query).first()


def run_worker(burst: bool = False) -> None:
    """Process queued jobs in this process (no fork, so the app context stays)."""
    from rq import SimpleWorker

    q = queue()
    SimpleWorker([q], connection=q.connection).work(burst=burst, with_scheduler=False)
