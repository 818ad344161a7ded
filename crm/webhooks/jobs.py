"""Processing deliveries in the background: an RQ job when REDIS_URL is set, else one runner thread
per web process. Each delivery is claimed with a conditional UPDATE, so it is acted on once however
many workers see it; deliveries a dead worker left behind are picked up again by resume_pending()."""

from __future__ import annotations

import logging
import queue as queue_module
import threading
from datetime import timedelta

from flask import Flask, current_app
from sqlalchemy import or_, select, update

from crm.extensions import db
from crm.models import utcnow
from crm.webhooks.models import WebhookDelivery, WebhookEndpoint

log = logging.getLogger(__name__)
STALE_CLAIM = timedelta(seconds=60)  # a claim older than this belongs to a worker that died
_runners: dict[int, queue_module.Queue] = {}
_runners_lock = threading.Lock()


_queues: dict[tuple[str, str], object] = {}


def _queue():
    """The RQ queue, one per process: its Redis connection pool is reused by every delivery."""
    from redis import Redis
    from rq import Queue

    key = (current_app.config["REDIS_URL"], current_app.config.get("CRM_QUEUE_NAME", "crm"))
    if key not in _queues:
        _queues[key] = Queue(key[1], connection=Redis.from_url(key[0]))
    return _queues[key]


def enqueue(delivery_id: int) -> None:
    if current_app.config.get("REDIS_URL"):
        _queue().enqueue("crm.webhooks.jobs.process_delivery", delivery_id, job_timeout=300)
        return
    _runner(current_app._get_current_object()).put(delivery_id)


def _runner(app: Flask) -> queue_module.Queue:
    """This process's runner for `app`: started on first use, after re-queueing what was left pending."""
    with _runners_lock:
        pending = _runners.get(id(app))
        if pending is None:
            pending = _runners[id(app)] = queue_module.Queue()
            threading.Thread(target=_run, args=(app, pending), name="webhook-runner", daemon=True).start()
    return pending


def _run(app: Flask, pending: queue_module.Queue) -> None:
    with app.app_context():
        try:
            for delivery_id in resume_ids(STALE_CLAIM):
                pending.put(delivery_id)
        except Exception:  # e.g. the tables are not migrated yet: new deliveries still run
            log.exception("could not resume pending webhook deliveries")
        finally:
            db.session.remove()
    while True:
        delivery_id = pending.get()
        with app.app_context():
            try:
                process_delivery(delivery_id)
            except Exception:  # one bad delivery must not stop the runner
                log.exception("webhook delivery %s failed", delivery_id)
            finally:
                db.session.remove()


def claim(delivery_id: int, stale_after: timedelta = STALE_CLAIM) -> bool:
    """Take the delivery for processing: true for exactly one caller while it is queued (or its
    previous claim went stale)."""
    now = utcnow()
    result = db.session.execute(
        update(WebhookDelivery)
        .where(
            WebhookDelivery.id == delivery_id,
            or_(
                WebhookDelivery.status == "queued",
                (WebhookDelivery.status == "processing") & (WebhookDelivery.claimed_at < now - stale_after),
            ),
        )
        .values(status="processing", claimed_at=now)
    )
    db.session.commit()
    return result.rowcount == 1


def process_delivery(delivery_id: int, stale_after: timedelta = STALE_CLAIM) -> str | None:
    """The job: act on one delivery once. Answers its final status (None when another worker has it)."""
    from crm.webhooks.actions import act

    if not claim(delivery_id, stale_after):
        return None
    delivery = db.session.get(WebhookDelivery, delivery_id)
    try:
        status, error = act(delivery)
    except Exception as exc:  # recorded, shown on the panel; the reconciliation sync catches up
        db.session.rollback()
        delivery = db.session.get(WebhookDelivery, delivery_id)
        status, error = "failed", f"Processing failed ({type(exc).__name__})."
        log.exception("webhook delivery %s failed", delivery_id)
    delivery.status, delivery.error, delivery.processed_at = status, error, utcnow()
    if status == "failed":
        endpoint = db.session.scalars(
            select(WebhookEndpoint).where(WebhookEndpoint.integration_id == delivery.integration_id)
        ).first()
        if endpoint is not None:
            endpoint.last_error, endpoint.last_error_at = error, utcnow()
    db.session.commit()
    return status


def resume_ids(stale_after: timedelta = STALE_CLAIM) -> list[int]:
    """Deliveries still queued, or claimed by a worker that stopped more than `stale_after` ago."""
    now = utcnow()
    return list(
        db.session.scalars(
            select(WebhookDelivery.id)
            .where(
                or_(
                    WebhookDelivery.status == "queued",
                    (WebhookDelivery.status == "processing") & (WebhookDelivery.claimed_at < now - stale_after),
                )
            )
            .order_by(WebhookDelivery.id)
        )
    )


def resume_pending(stale_after: timedelta = STALE_CLAIM, inline: bool = False) -> int:
    """Queue (or, inline, process here) every delivery left pending; how many."""
    ids = resume_ids(stale_after)
    for delivery_id in ids:
        if inline:
            process_delivery(delivery_id, stale_after)
        elif current_app.config.get("REDIS_URL"):
            _queue().enqueue("crm.webhooks.jobs.process_delivery", delivery_id, stale_after, job_timeout=300)
        else:
            _runner(current_app._get_current_object()).put(delivery_id)
    return len(ids)
