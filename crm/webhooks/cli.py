"""`flask crm webhooks ...`: list, register, unregister, rotate, purge, resume."""

from __future__ import annotations

from datetime import timedelta

import click

from crm.extensions import db
from crm.models import User
from crm.webhooks import jobs, service


@click.group("webhooks", help="Inbound webhooks of integrations.")
def webhooks_cli() -> None:
    pass


def _integration(reference: str):
    from crm.cli import find_integration

    integration = find_integration(reference)
    return db.session.get(User, integration.user_id), integration


def _say_error(exc: Exception) -> None:
    from crm.cli import CommandError

    raise CommandError(str(exc))


@webhooks_cli.command("list")
@click.option("--integration", "reference", required=True, help="Integration id (or 8+ character prefix).")
def list_command(reference: str) -> None:
    from crm.cli import echo

    owner, integration = _integration(reference)
    try:
        _, endpoint = service.panel(owner, integration.id)
    except service.WebhookError as exc:
        _say_error(exc)
    figures = service.status_of(integration)
    echo(f"url: {service.endpoint_url(endpoint)}")
    echo(f"registered: {'yes' if endpoint.remote_id else 'no'}")
    echo(f"events: {', '.join(endpoint.events or [])}")
    echo(f"last 24 h: {figures['received']} received, {figures['duplicate']} duplicate, {figures['rejected']} rejected")
    for delivery in figures["deliveries"]:
        verified = "verified" if delivery.verified else "unverified"
        echo(f"{delivery.received_at:%Y-%m-%d %H:%M:%S}  {delivery.event or '-':<28} {verified:<10} {delivery.status}")


def _manage(action, reference: str, done: str) -> None:
    from crm.cli import echo

    owner, integration = _integration(reference)
    try:
        endpoint = action(owner, integration.id)
    except service.WebhookError as exc:
        _say_error(exc)
    echo(done.format(url=service.endpoint_url(endpoint)))


@webhooks_cli.command("register")
@click.option("--integration", "reference", required=True)
def register_command(reference: str) -> None:
    _manage(service.register, reference, "Registered: the CRM now calls {url}")


@webhooks_cli.command("unregister")
@click.option("--integration", "reference", required=True)
def unregister_command(reference: str) -> None:
    _manage(service.unregister, reference, "Unregistered.")


@webhooks_cli.command("rotate")
@click.option("--integration", "reference", required=True)
def rotate_command(reference: str) -> None:
    _manage(service.rotate, reference, "New URL: {url} (the old one no longer works; register again).")


@webhooks_cli.command("purge")
@click.option("--days", type=int, default=None, help="Keep this many days (default WEBHOOK_RETENTION_DAYS).")
def purge_command(days: int | None) -> None:
    from crm.cli import echo

    echo(f"Deleted {service.purge(days)} deliveries older than {days or service.retention_days()} days.")


@webhooks_cli.command("resume")
@click.option(
    "--stale-after",
    type=float,
    default=60.0,
    show_default=True,
    help="Seconds after which a delivery claimed by a worker that stopped is taken again.",
)
@click.option("--inline", is_flag=True, help="Process them here instead of queueing them.")
def resume_command(stale_after: float, inline: bool) -> None:
    """Queue the deliveries a stopped worker left unprocessed."""
    from crm.cli import echo

    count = jobs.resume_pending(timedelta(seconds=stale_after), inline=inline)
    echo(f"{count} deliveries {'processed' if inline else 'queued'} again.")
