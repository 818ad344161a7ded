"""The scheduler tick: what is due, claimed exactly once, then started.

Every instance (`flask crm scheduler`, or the thread `SCHEDULER_EMBEDDED` starts in a web process)
runs the same tick once a minute. A due row is claimed with a compare-and-set,

    UPDATE sync_schedules SET next_run_at = :next WHERE id = :id AND next_run_at = :slot

and only the instance whose UPDATE changed the row starts the sync; the others see 0 rows and move
on. `next` is the first slot after *now*, so slots missed while every scheduler was down run once on
return, not once each. The claimed slot is written to scheduled_slots in the same transaction
(unique per integration and slot), which records what became of it: enqueued, skipped (the previous
run was still going), or failed. The clock is a parameter: tests fast-forward it.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from flask import Flask
from sqlalchemy import or_, select, update
from sqlalchemy.exc import IntegrityError

from crm.extensions import db
from crm.models import Integration, ScheduledSlot, SyncRun, SyncSchedule, User, utcnow
from crm.schedules import health
from crm.schedules.service import next_run, spec_of

log = logging.getLogger(__name__)
BATCH = 500  # due rows read at once
MAX_BATCHES = 40  # per tick (20,000 slots); any rest waits for the next tick
ACTIVE = ("queued", "running")


def instance_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{threading.get_ident() % 100000}"[:64]


@dataclass
class TickReport:
    enqueued: list[tuple[str, datetime]] = field(default_factory=list)
    skipped: list[tuple[str, datetime]] = field(default_factory=list)
    failed: list[tuple[str, datetime]] = field(default_factory=list)
    checked: list[str] = field(default_factory=list)

    def __str__(self) -> str:
        return (
            f"{len(self.enqueued)} sync(s) started, {len(self.skipped)} skipped, {len(self.failed)} failed; "
            f"{len(self.checked)} connection check(s)"
        )


# --- starting a sync ---------------------------------------------------------------------------


def start_scheduled_sync(owner: User, integration: Integration, slot: datetime) -> SyncRun:
    """The default dispatcher: the jobs module's start_sync (an RQ job when REDIS_URL is set, a thread
    of this process otherwise), for this one integration, marked as started by the schedule."""
    from crm.operations import jobs

    job_id = f"sync-{integration.id}-{slot:%Y%m%dT%H%M}"  # one RQ job per due slot, however often asked
    return jobs.start_sync(owner, integration_id=integration.id, trigger="schedule", job_id=job_id)


def previous_run_going(integration: Integration) -> bool:
    """A sync that covers this integration is queued or running, its heartbeat fresh (one to every CRM
    of the owner's, or to this one): two runs never write to one CRM at once, so a new one waits."""
    from crm.operations.jobs import STALE_AFTER

    query = select(SyncRun.id).where(SyncRun.user_id == integration.user_id, SyncRun.status.in_(ACTIVE))
    query = query.where(or_(SyncRun.integration_id.is_(None), SyncRun.integration_id == integration.id))
    query = query.where(SyncRun.heartbeat_at > utcnow() - STALE_AFTER)  # heartbeats are wall-clock
    return db.session.scalars(query.limit(1)).first() is not None


# --- the tick ----------------------------------------------------------------------------------

Dispatch = Callable[[User, Integration, datetime], SyncRun | None]


def claim(schedule_id: int, integration_id: str, slot: datetime, following: datetime | None, instance: str) -> bool:
    """Move the row past `slot` if nobody did yet; True for the one instance that moved it."""
    moved = db.session.execute(
        update(SyncSchedule)
        .where(SyncSchedule.id == schedule_id, SyncSchedule.next_run_at == slot)
        .values(next_run_at=following, last_slot_at=slot)
        .execution_options(synchronize_session=False)
    )
    if moved.rowcount != 1:
        db.session.rollback()
        return False
    try:
        with db.session.begin_nested():
            db.session.add(
                ScheduledSlot(integration_id=integration_id, slot_at=slot, status="claimed", instance=instance)
            )
    except IntegrityError:  # the ledger already holds this slot (clocks apart): it ran; move on
        db.session.commit()
        return False
    db.session.commit()
    return True


def due_rows(now: datetime) -> list:
    rows = db.session.execute(
        select(SyncSchedule.id, SyncSchedule.integration_id, SyncSchedule.next_run_at)
        .where(SyncSchedule.kind != "off", SyncSchedule.next_run_at <= now)
        .order_by(SyncSchedule.next_run_at)
        .limit(BATCH)
    ).all()
    db.session.rollback()  # end the read: each claim is its own short transaction
    return rows


def run_due_syncs(now: datetime, instance: str, dispatch: Dispatch, report: TickReport) -> None:
    """Every due row, a batch at a time: a claimed (or lost) row is no longer due, so this ends."""
    for _ in range(MAX_BATCHES):
        due = due_rows(now)
        for schedule_id, integration_id, slot in due:
            schedule = db.session.get(SyncSchedule, schedule_id)
            integration = db.session.get(Integration, integration_id)
            if schedule is None or integration is None:
                continue
            following = next_run(spec_of(schedule), integration.owner, max(now, slot))
            if claim(schedule_id, integration_id, slot, following, instance):
                start_claimed(integration, slot, dispatch, report)
        if len(due) < BATCH:
            return


def start_claimed(integration: Integration, slot: datetime, dispatch: Dispatch, report: TickReport) -> None:
    ledger = db.session.scalars(
        select(ScheduledSlot).where(ScheduledSlot.integration_id == integration.id, ScheduledSlot.slot_at == slot)
    ).one()
    schedule = db.session.scalars(select(SyncSchedule).where(SyncSchedule.integration_id == integration.id)).one()
    message = None
    if not integration.is_active:
        status, message = "skipped", "The integration is inactive."
    elif previous_run_going(integration):
        status, message = "skipped", "A sync of these contacts was still running."
    else:
        try:
            run = dispatch(integration.owner, integration, slot)
            ledger.sync_run_id = run.id if run is not None else None
            status = "enqueued"
        except Exception as exc:  # one integration's trouble must not stop the others' slots
            db.session.rollback()
            log.exception("scheduled sync of %s could not start", integration.id)
            status, message = "failed", f"The sync could not start ({type(exc).__name__})."
            ledger = db.session.get(ScheduledSlot, ledger.id)
            schedule = db.session.get(SyncSchedule, schedule.id)
    ledger.status = status
    schedule.last_status, schedule.last_message = status, message
    db.session.commit()
    bucket = {"enqueued": report.enqueued, "skipped": report.skipped}.get(status, report.failed)
    bucket.append((integration.id, slot))


def tick(now: datetime | None = None, instance: str | None = None, dispatch: Dispatch | None = None) -> TickReport:
    """One pass: start the due syncs and run the due connection checks. Needs an app context."""
    now = now or utcnow()
    instance = instance or instance_name()
    report = TickReport()
    run_due_syncs(now, instance, dispatch or start_scheduled_sync, report)
    report.checked = health.run_due_checks(now, instance)
    return report


# --- running it --------------------------------------------------------------------------------


class SystemClock:
    def now(self) -> datetime:
        return utcnow()


def run_forever(
    app: Flask,
    stop: threading.Event,
    clock=None,
    tick_seconds: float | None = None,
    instance: str | None = None,
    dispatch: Dispatch | None = None,
) -> None:
    """Tick every `tick_seconds` (SCHEDULER_TICK_SECONDS, 60) until `stop` is set. An error in one
    tick is logged and the next tick runs: the scheduler outlives a database hiccup."""
    clock = clock or SystemClock()
    interval = tick_seconds if tick_seconds is not None else float(app.config.get("SCHEDULER_TICK_SECONDS", 60))
    instance = instance or instance_name()
    while not stop.is_set():
        started = time.monotonic()
        with app.app_context():
            try:
                report = tick(clock.now(), instance, dispatch)
                if report.enqueued or report.skipped or report.failed or report.checked:
                    log.info("scheduler %s: %s", instance, report)
            except Exception:
                log.exception("scheduler tick failed")
            finally:
                db.session.remove()
        stop.wait(max(0.0, interval - (time.monotonic() - started)))


def start_embedded(app: Flask, clock=None, tick_seconds: float | None = None) -> threading.Thread | None:
    """The scheduler as a daemon thread of this process, when SCHEDULER_EMBEDDED is on (`make run`).
    Returns the thread; `app.extensions["crm_scheduler_stop"]` stops it."""
    if not app.config.get("SCHEDULER_EMBEDDED"):
        return None
    stop = threading.Event()
    app.extensions["crm_scheduler_stop"] = stop
    clock = clock or app.config.get("SCHEDULER_CLOCK")
    thread = threading.Thread(
        target=run_forever, args=(app, stop, clock, tick_seconds), name="crm-scheduler", daemon=True
    )
    thread.start()
    return thread
