"""`flask crm schedule`, `flask crm scheduler` and `flask crm health` (registered on the crm group)."""

from __future__ import annotations

import signal
import threading

import click
from flask import current_app

from crm.auth.service import find_user
from crm.cli import CommandError, crm_cli, echo, find_integration, plural, printable, user_or_fail
from crm.extensions import db
from crm.models import Integration, IntegrationHealth, SyncSchedule, User, utcnow
from crm.schedules import health, service
from crm.schedules.scheduler import instance_name, run_forever, tick


@crm_cli.command("schedule")
@click.option("--integration", "integration_id", required=True, help="Integration id (or 8+ character prefix).")
@click.option("--user", "email", help="Only among this user's integrations.")
@click.argument("when", required=False)
def schedule_command(integration_id: str, email: str | None, when: str | None) -> None:
    """Show or set an integration's contacts-sync schedule.

    WHEN is off, 15m, hourly, "daily 09:00" (the owner's time zone) or a cron expression such as
    "*/30 * * * *". Without WHEN, prints the schedule and its next runs."""
    integration = find_integration(integration_id, user_or_fail(email) if email else None)
    owner = integration.owner
    if when is not None:
        try:
            spec = service.parse_text(when)
            service.save_schedule(owner, integration.id, spec)
        except service.ScheduleInvalid as exc:
            raise CommandError("; ".join(" ".join(messages) for messages in exc.fields.values()), exit_code=2) from None
        except service.NoContactsSync as exc:
            raise CommandError(str(exc)) from None
    spec = service.spec_of(service.schedule_for(integration))
    echo(f"{integration.id} ({integration.name}): {spec.describe()}, time zone {owner.timezone or 'UTC'}")
    for run in service.upcoming(spec, owner, utcnow()):
        echo(f"  next: {service.local(run, owner):%Y-%m-%d %H:%M %Z}  ({run:%Y-%m-%d %H:%M} UTC)")


@crm_cli.command("scheduler")
@click.option("--once", is_flag=True, help="Run one tick and exit (for cron or a test).")
def scheduler_command(once: bool) -> None:
    """Start due contacts syncs and connection checks, every SCHEDULER_TICK_SECONDS (60).

    Run as many as you like (one per host for redundancy): each due slot is claimed by exactly one."""
    instance = instance_name()
    if once:
        click.echo(f"{instance}: {tick(instance=instance)}")
        return
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    click.echo(f"Scheduler {instance} running; Ctrl+C stops it.")
    run_forever(current_app._get_current_object(), stop, instance=instance)


@crm_cli.command("health")
@click.option("--user", "email", help="Only this user's integrations.")
def health_command(email: str | None) -> None:
    """The connection health of each integration: status, since when, last and next check."""
    query = db.select(Integration, User).join(User).order_by(User.email, Integration.created_at)
    if email:
        user = find_user(email)
        if user is None:
            raise CommandError(f"No user with email {email}.")
        query = query.where(User.id == user.id)
    rows = db.session.execute(query).all()
    if not rows:
        click.echo("No integrations.")
        return
    checks = {row.integration_id: row for row in db.session.scalars(db.select(IntegrationHealth))}
    schedules = {row.integration_id: row for row in db.session.scalars(db.select(SyncSchedule))}
    width = max(len(printable(user.email)) for _, user in rows)
    echo(
        f"{'ID':<36}  {'USER':<{width}}  {'HEALTH':<6} {'SINCE':<16} {'CHECKED':<16} "
        f"{'NEXT CHECK':<16} {'SCHEDULE':<22} NAME"
    )
    attention = 0
    for integration, user in rows:
        row = checks.get(integration.id)
        badge = health.badge_of(integration, row)
        attention += badge.status in ("amber", "red") and integration.is_active
        schedule = service.spec_of(schedules.get(integration.id)).describe()
        state = badge.status if integration.is_active else "off"
        echo(
            f"{integration.id}  {printable(user.email):<{width}}  {state:<6} {moment(badge.since):<16} "
            f"{moment(badge.checked_at):<16} {moment(row.next_check_at if row else None):<16} {schedule[:22]:<22} "
            f"{printable(integration.name)}"
        )
        if badge.message and badge.status in ("amber", "red"):
            echo(f"  {badge.message}")
    echo(
        f"{plural(len(rows), 'integration')}; {attention} need{'s' if attention == 1 else ''} attention. Times in UTC."
    )


def moment(value) -> str:
    return value.strftime("%Y-%m-%d %H:%M") if value else "-"
