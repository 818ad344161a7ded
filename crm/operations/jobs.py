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


def active_run(owner: User) -> SyncRun | None:
    """The user's queued or running sync; one whose heartbeat stopped is marked interrupted."""
    runs = db.session.scalars(
        select(SyncRun).where(SyncRun.user_id == owner.id, SyncRun.status.in_(("queued", "running")))
    ).all()
    for run in runs:
        if utcnow() - run.heartbeat_at > STALE_AFTER:
            run.status = "interrupted"
            run.message = "The sync was interrupted; the next one continues where it stopped."
            run.finished_at = utcnow()
    db.session.commit()
    return next((r for r in runs if r.status in ("queued", "running")), None)


def start_sync(owner: User) -> SyncRun:
    """Start a contact sync in the background (or answer the one already under way)."""
    current = active_run(owner)
    if current is not None:
        return current
    run = SyncRun(user_id=owner.id, status="queued")
    db.session.add(run)
    db.session.commit()
    if current_app.config.get("REDIS_URL"):
        queue().enqueue("crm.operations.jobs.perform_sync", run.id, job_timeout=3600)
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
