"""`flask crm ...` and `flask generate-encryption-key`: thin shells over the service functions."""

import threading

import click
from flask import current_app
from flask.cli import AppGroup

from crm import audit, keys
from crm.auth.service import find_user
from crm.contacts import service as contacts_service
from crm.crypto import KEY_ENV, CredentialUnreadable, generate_key
from crm.extensions import db
from crm.integrations import service
from crm.models import SyncRun, User
from crm.net import OutboundError
from crm.operations.failures import describe_failure
from crm.operations.jobs import run_worker
from crm.operations.messages import send_message
from crm.operations.resolver import NoCRMConfigured, environment_settings
from crm.operations.sync import run_sync
from crm.providers import all_providers
from crm.providers.base import CRMError

crm_cli = AppGroup("crm", help="Inspect and operate CRM integrations.")


@click.command("generate-encryption-key")
def generate_encryption_key_command() -> None:
    """Print a fresh INTEGRATION_ENCRYPTION_KEY line for your .env (needs no key itself)."""
    click.echo(f"{KEY_ENV}={generate_key()}")


@crm_cli.command("providers")
def providers_command() -> None:
    """List the CRM providers and whether they can be connected yet."""
    for provider in all_providers():
        availability = "available" if provider.is_available() else "coming soon"
        click.echo(f"{provider.id:<11} {provider.name:<12} {availability}")


@crm_cli.command("list")
@click.option("--user", "email", help="Only this user's integrations.")
def list_command(email: str | None) -> None:
    """List integrations (never a secret)."""
    if email:
        user = find_user(email)
        if user is None:
            raise click.ClickException(f"No user with email {email}.")
        users = [user]
    else:
        users = list(db.session.scalars(db.select(User).order_by(User.id)))
    rows = [(user, integration) for user in users for integration in service.list_integrations(user)]
    if not rows:
        click.echo("No integrations.")
        return
    for user, integration in rows:
        state = "active" if integration.is_active else "inactive"
        tested = integration.last_test_outcome or "not tested"
        click.echo(
            f"{integration.id}  {user.email}  {integration.provider:<9} {state:<8} {tested:<12} {integration.name}"
        )


@crm_cli.command("test")
@click.argument("integration_id")
def test_command(integration_id: str) -> None:
    """Test a saved integration's connection; exit status 0 only when it is ok."""
    try:
        owner = service.owner_of(integration_id)
        result = service.test_connection(owner, None, {}, integration_id)
    except service.IntegrationNotFound:
        raise click.ClickException(f"No integration {integration_id}.") from None
    except CredentialUnreadable as exc:
        raise click.ClickException(str(exc)) from None
    for line in result.verified:
        click.echo(f"  ✓ {line}")
    click.echo(f"{result.outcome}: {result.message}")
    if not result.success:
        raise SystemExit(1)


def user_or_fail(email: str):
    user = find_user(email)
    if user is None:
        raise click.ClickException(f"No user with email {email}.")
    return user


@crm_cli.command("import-env")
@click.option("--user", "email", required=True, help="The user who gets the integration.")
@click.option("--name", default="Chatwoot", show_default=True, help="The integration's name.")
def import_env_command(email: str, name: str) -> None:
    """Turn the CHATWOOT_* environment settings into this user's own integration."""
    user = user_or_fail(email)
    settings = environment_settings()
    if settings is None:
        raise click.ClickException("Set CHATWOOT_BASE_URL, CHATWOOT_ACCOUNT_ID and CHATWOOT_API_KEY first.")
    base_url, account_id, token = settings
    values = {"name": name, "base_url": base_url, "account_id": account_id, "api_key": token}
    try:
        integration = service.create_integration(user, "CHATWOOT", values)
    except service.ValidationFailed as exc:
        problems = "; ".join(f"{k}: {' '.join(v)}" for k, v in exc.fields.items())
        raise click.ClickException(problems) from None
    click.echo(f"Created integration {integration.id} for {user.email} from the environment's Chatwoot.")
    if integration.provision_message:
        click.echo(integration.provision_message)


@crm_cli.command("import-contacts")
@click.option("--user", "email", required=True)
@click.argument("csv_file", type=click.File("r", encoding="utf-8-sig"))
def import_contacts_command(email: str, csv_file) -> None:
    """Import contacts from a CSV file with name,email,phone columns."""
    report = contacts_service.import_csv(user_or_fail(email), csv_file.read())
    click.echo(f"Imported {report.imported} contacts.")
    for line, problem in report.errors:
        click.echo(f"  line {line}: {problem}", err=True)
    if report.errors:
        raise SystemExit(1)


@crm_cli.command("sync-contacts")
@click.option("--user", "email", required=True)
def sync_contacts_command(email: str) -> None:
    """Sync a user's contacts to their CRM now, in the foreground, with a progress bar."""
    user = user_or_fail(email)
    run = SyncRun(user_id=user.id, status="queued")
    db.session.add(run)
    db.session.commit()
    done = threading.Event()
    worker = threading.Thread(target=_sync_in_thread, args=(current_app._get_current_object(), run.id, done))
    worker.start()
    with click.progressbar(length=1, label="Syncing contacts") as bar:
        while not done.wait(0.2):
            progress = _progress(run.id)
            if progress:
                bar.length = max(progress[1], 1)
                bar.update(progress[0] - bar.pos)
    worker.join()
    db.session.expire_all()
    run = db.session.get(SyncRun, run.id)
    click.echo(
        f"{run.status}: {run.created} created, {run.updated} updated, {run.unchanged} unchanged, "
        f"{run.failed} failed{'; ' + run.message if run.message else ''}"
    )
    if run.status != "done" or run.failed:
        raise SystemExit(1)


def _sync_in_thread(app, run_id: str, done: threading.Event) -> None:
    try:
        with app.app_context():
            run_sync(run_id)
    finally:
        done.set()


def _progress(run_id: str) -> tuple[int, int] | None:
    db.session.expire_all()
    run = db.session.get(SyncRun, run_id)
    return (run.done_count, run.total) if run and run.total else None


@crm_cli.command("send-message")
@click.option("--user", "email", required=True)
@click.option("--to", "contact_email", required=True, help="The contact's email address.")
@click.option("--text", required=True)
def send_message_command(email: str, contact_email: str, text: str) -> None:
    """Send a message to one of the user's contacts through their CRM."""
    user = user_or_fail(email)
    try:
        contact = contacts_service.find_contact_by_email(user, contact_email)
        sent = send_message(user, contact.id, text)
    except contacts_service.ContactNotFound:
        raise click.ClickException(f"{user.email} has no contact with email {contact_email}.") from None
    except (NoCRMConfigured, CRMError, OutboundError, ValueError) as exc:
        raise click.ClickException(describe_failure(exc)) from None
    click.echo(f"Sent message {sent.message_id} in conversation {sent.conversation_id} via {sent.target}.")


@crm_cli.command("worker")
@click.option("--burst", is_flag=True, help="Stop when the queue is empty.")
def worker_command(burst: bool) -> None:
    """Run background jobs from Redis (REDIS_URL)."""
    if not current_app.config.get("REDIS_URL"):
        raise click.ClickException("Set REDIS_URL: without it, jobs run in a thread of the web process.")
    run_worker(burst=burst)


@crm_cli.command("key-status")
def key_status_command() -> None:
    """How many stored values each encryption key id still protects."""
    ring = service.keyring()
    counts = keys.key_status()
    for kid in dict.fromkeys([ring.primary_kid, *ring.kids, *counts]):
        role = "current" if kid == ring.primary_kid else ("old, decrypt only" if kid in ring.kids else "not configured")
        click.echo(f"{kid}  {counts.get(kid, 0):>6} values  ({role})")
    leftover = sum(n for kid, n in counts.items() if kid != ring.primary_kid)
    if leftover:
        click.echo(f"{leftover} values still need `flask crm rotate-key` before an old key can go.")
    else:
        click.echo("Every value uses the current key: old keys may be removed.")


@crm_cli.command("rotate-key")
@click.option("--batch-size", default=100, show_default=True, help="Rows re-encrypted per transaction.")
def rotate_key_command(batch_size: int) -> None:
    """Re-encrypt every stored secret under INTEGRATION_ENCRYPTION_KEY (resumable, idempotent)."""
    report = keys.rotate(batch_size=batch_size)
    click.echo(
        f"Re-encrypted {report.values_resealed} values in {report.rows_changed} integrations "
        f"({report.batches} batches)."
    )


@crm_cli.command("audit")
@click.option("--user", "email", help="Only this user's events.")
@click.option("--limit", default=200, show_default=True)
def audit_command(email: str | None, limit: int) -> None:
    """Print the audit log, newest first (never a secret)."""
    events = audit.history(user_or_fail(email), limit=limit) if email else audit.all_events(limit)
    emails = {u.id: u.email for u in db.session.scalars(db.select(User))}
    for event in events:
        click.echo(
            f"{event.created_at:%Y-%m-%d %H:%M:%S}  {emails.get(event.user_id, '-'):<24} {event.action:<13} "
            f"{event.provider or '-':<9} {event.outcome or '-':<24} {event.integration_id or '-':<36} "
            f"{event.client or '-'}{'  ' + event.detail if event.detail else ''}"
        )
