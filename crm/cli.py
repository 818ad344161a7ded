"""`flask crm ...` and `flask generate-encryption-key`: thin shells over the service functions."""

import re
import threading
import unicodedata

import click
from flask import current_app
from flask.cli import AppGroup

from crm import audit, keys
from crm.auth.service import find_user
from crm.contacts import service as contacts_service
from crm.crypto import KEY_ENV, OLD_KEYS_ENV, CredentialUnreadable, generate_key
from crm.extensions import db
from crm.integrations import capability_labels, service
from crm.models import Contact, ContactLink, Integration, SyncRun, User
from crm.net import OutboundError
from crm.operations.failures import describe_failure
from crm.operations.jobs import run_worker
from crm.operations.messages import send_message
from crm.operations.resolver import NoCRMConfigured, environment_settings
from crm.operations.sync import run_sync
from crm.providers import all_providers
from crm.providers.base import CRMError

crm_cli = AppGroup("crm", help="Inspect and operate CRM integrations.")


# --- what every command shares: safe output, plurals, integration ids --------------------------

# Shown as escapes: control (Cc), format (Cf: bidi overrides, zero-width...) and line/paragraph
# separators, so a stored name can neither forge a row nor drive the operator's terminal.
UNPRINTABLE_CATEGORIES = frozenset({"Cc", "Cf", "Zl", "Zp", "Cs"})
MIN_ID_PREFIX = 8
ID_PREFIX = re.compile(r"[0-9a-f-]+")


def printable(value: object) -> str:
    """`value` as text safe for a terminal: ESC becomes `\\x1b`, a newline `\\n`, RLO `\\u202e`."""
    text = str(value)
    if text.isprintable():
        return text
    return "".join(
        char.encode("unicode_escape").decode() if unicodedata.category(char) in UNPRINTABLE_CATEGORIES else char
        for char in text
    )


def echo(line: str, err: bool = False) -> None:
    click.echo(printable(line), err=err)


class CommandError(click.ClickException):
    """One line on stderr (sanitised), exit status 1; 2 for a malformed argument."""

    def __init__(self, message: str, exit_code: int = 1):
        super().__init__(printable(message))
        self.exit_code = exit_code


def plural(count: int, noun: str, many: str | None = None) -> str:
    """ "1 contact", "2 contacts" ("1 batch", "2 batches" with many="batches")."""
    return f"{count} {noun}" if count == 1 else f"{count} {many or noun + 's'}"


def find_integration(reference: str, owner: User | None = None) -> Integration:
    """The integration whose id is `reference` or starts with it (at least 8 characters, unique).
    With an owner, only that user's integrations are searched: another user's id is "not found"."""
    prefix = reference.strip().lower()
    if len(prefix) < MIN_ID_PREFIX:
        raise CommandError(f"Give at least {MIN_ID_PREFIX} characters of the integration id.", exit_code=2)
    query = db.select(Integration).where(Integration.id.startswith(prefix, autoescape=True))
    if owner is not None:
        query = query.where(Integration.user_id == owner.id)
    matches = list(db.session.scalars(query.order_by(Integration.id).limit(2))) if ID_PREFIX.fullmatch(prefix) else []
    if not matches:
        raise CommandError(f"No integration {reference}" + (f" of {owner.email}." if owner else "."))
    if len(matches) > 1:
        raise CommandError(f"{reference} starts more than one integration id: give more characters.", exit_code=2)
    return matches[0]


UNREADABLE_HINT = (
    f"it was sealed under a key that is not configured (add that key to {OLD_KEYS_ENV}) "
    "or altered (enter it again in the dashboard)."
)


def problems(exc: service.ValidationFailed) -> str:
    return "; ".join(f"{field}: {' '.join(messages)}" for field, messages in exc.fields.items())


def unreadable_message(integration: Integration) -> str:
    return f"Integration {integration.id} ({integration.name}): a stored credential can't be read: {UNREADABLE_HINT}"


@click.command("generate-encryption-key")
def generate_encryption_key_command() -> None:
    """Print a fresh INTEGRATION_ENCRYPTION_KEY line for your .env (needs no key itself)."""
    click.echo(f"{KEY_ENV}={generate_key()}")


@crm_cli.command("providers")
def providers_command() -> None:
    """List the CRM providers, whether they can be connected yet, and what each can do."""
    for provider in all_providers():
        availability = "available" if provider.is_available() else "coming soon"
        can_do = ", ".join(capability_labels(provider)) or "-"
        click.echo(f"{provider.id:<11} {provider.name:<12} {availability:<12} {can_do}")


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
    rows, primary_ids = [], set()
    for user in users:
        integrations = service.list_integrations(user)
        rows += [(user, integration) for integration in integrations]
        primary = service.primary_of(integrations)  # the same answer as the banner and the API
        primary_ids |= {primary.id} if primary else set()
    if not rows:
        click.echo("No integrations.")
        return
    width = max(len(printable(user.email)) for user, _ in rows)
    echo(f"  {'ID':<36}  {'USER':<{width}}  {'PROVIDER':<9} {'STATE':<8} {'LAST TEST':<12} NAME")
    for user, integration in rows:
        marker = "*" if integration.id in primary_ids else " "
        state = "active" if integration.is_active else "inactive"
        tested = integration.last_test_outcome or "not tested"
        email, name = printable(user.email), printable(integration.name)
        echo(f"{marker} {integration.id}  {email:<{width}}  {integration.provider:<9} {state:<8} {tested:<12} {name}")
    echo(f"{plural(len(rows), 'integration')}; * marks each user's primary one (the platform acts through it).")


@crm_cli.command("test")
@click.argument("integration_id")
@click.option("--user", "email", help="Only among this user's integrations.")
def test_command(integration_id: str, email: str | None) -> None:
    """Test a saved integration's connection; exit status 0 only when it is ok.

    INTEGRATION_ID may be a unique prefix of at least 8 characters."""
    integration = find_integration(integration_id, user_or_fail(email) if email else None)
    try:
        result = service.test_connection(integration.owner, None, {}, integration.id)
    except CredentialUnreadable:
        raise CommandError(unreadable_message(integration)) from None
    except service.ValidationFailed as exc:  # saved before a rule was tightened
        raise CommandError(f"Integration {integration.id}: fix it in the dashboard first: {problems(exc)}") from None
    for line in result.verified:
        echo(f"  ✓ {line}")
    echo(f"{result.outcome}: {result.message}")
    if not result.success:
        raise SystemExit(1)


def user_or_fail(email: str):
    user = find_user(email)
    if user is None:
        raise CommandError(f"No user with email {email}.")
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
    for existing in service.list_integrations(user):
        stored = existing.configuration or {}
        if existing.provider == "CHATWOOT" and (stored.get("base_url"), str(stored.get("account_id"))) == (
            base_url,
            str(account_id),
        ):
            echo(
                f"Already imported: {user.email}'s integration {existing.id} ({existing.name}) uses this Chatwoot "
                "account. Change its token in the dashboard if needed."
            )
            return
    values = {"name": name, "base_url": base_url, "account_id": account_id, "api_key": token}
    try:
        integration = service.create_integration(user, "CHATWOOT", values)
    except service.ValidationFailed as exc:
        raise CommandError(problems(exc)) from None
    echo(f"Created integration {integration.id} for {user.email} from the environment's Chatwoot.")
    if integration.provision_message:
        echo(integration.provision_message)


@crm_cli.command("import-contacts")
@click.option("--user", "email", required=True)
@click.argument("csv_file", type=click.File("r", encoding="utf-8-sig"))
def import_contacts_command(email: str, csv_file) -> None:
    """Import contacts from a CSV file with name,email,phone columns."""
    report = contacts_service.import_csv(user_or_fail(email), csv_file.read())
    echo(f"Imported {plural(report.imported, 'contact')}.")
    for line, problem in report.errors:
        echo(f"  line {line}: {problem}", err=True)
    if report.errors:
        raise SystemExit(1)


@crm_cli.command("sync-contacts")
@click.option("--user", "email", required=True)
@click.option("--integration", "reference", help="Only this integration (id or a unique prefix); default: every one.")
@click.option("--show-failures", is_flag=True, help="List each contact that failed, with the reason.")
def sync_contacts_command(email: str, reference: str | None, show_failures: bool) -> None:
    """Sync a user's contacts to their CRMs now, in the foreground, with a progress bar."""
    user = user_or_fail(email)
    integration_id = find_integration(reference, user).id if reference else None
    run = SyncRun(user_id=user.id, status="queued", integration_id=integration_id, trigger="cli")
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
    echo(
        f"{run.status}: {run.created} created, {run.updated} updated, {run.unchanged} unchanged, "
        f"{run.failed} failed{'; ' + run.message if run.message else ''}"
    )
    if run.failed and show_failures:
        failed = (
            db.select(Contact, ContactLink)
            .join(ContactLink, ContactLink.contact_id == Contact.id)
            .where(Contact.user_id == user.id, ContactLink.sync_error.is_not(None))
        )
        if integration_id:
            failed = failed.where(ContactLink.integration_id == integration_id)
        for contact, link in db.session.execute(failed.order_by(Contact.sort_key, Contact.id)):
            echo(f"  {contact.name} <{contact.email or contact.phone or '-'}>: {link.sync_error}")
    elif run.failed:
        echo(f"Run again with --show-failures to see why {plural(run.failed, 'contact')} failed.")
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
@click.option("--integration", "reference", help="Send through this integration (id or a unique prefix).")
def send_message_command(email: str, contact_email: str, text: str, reference: str | None) -> None:
    """Send a message to one of the user's contacts through their CRM (a note where it has no chat)."""
    user = user_or_fail(email)
    integration_id = find_integration(reference, user).id if reference else None
    try:
        contact = contacts_service.find_contact_by_email(user, contact_email)
        sent = send_message(user, contact.id, text, integration_id)
    except contacts_service.ContactNotFound:
        raise CommandError(f"{user.email} has no contact with email {contact_email}.") from None
    except CredentialUnreadable:
        raise CommandError(f"{user.email}'s CRM credential can't be read: {UNREADABLE_HINT}") from None
    except (NoCRMConfigured, CRMError, OutboundError, ValueError) as exc:
        raise CommandError(describe_failure(exc)) from None
    echo(sent.summary)


@crm_cli.command("worker")
@click.option("--burst", is_flag=True, help="Stop when the queue is empty.")
def worker_command(burst: bool) -> None:
    """Run background jobs from Redis (REDIS_URL)."""
    if not current_app.config.get("REDIS_URL"):
        raise click.ClickException("Set REDIS_URL: without it, jobs run in a thread of the web process.")
    run_worker(burst=burst)


@crm_cli.command("key-status")
def key_status_command() -> None:
    """How many stored values each encryption key id still protects, and how many none can read."""
    ring = service.keyring()
    counts = keys.key_status()
    unreadable = counts.pop("unreadable", 0)
    for kid in dict.fromkeys([ring.primary_kid, *ring.kids, *counts]):
        role = "current" if kid == ring.primary_kid else ("old, decrypt only" if kid in ring.kids else "not configured")
        count = counts.get(kid, 0)
        click.echo(f"{kid}  {count:>6} {'value ' if count == 1 else 'values'}  ({role})")
    click.echo(
        f"unreadable {unreadable:>6} {'value ' if unreadable == 1 else 'values'}  "
        "(no configured key opens them: `flask crm rotate-key` lists them)"
    )
    leftover = sum(n for kid, n in counts.items() if kid != ring.primary_kid)
    if leftover:
        verb = "needs" if leftover == 1 else "need"
        click.echo(f"{plural(leftover, 'value')} still {verb} `flask crm rotate-key` before an old key can go.")
    else:
        click.echo("Every readable value uses the current key: old keys may be removed.")
    if unreadable:
        click.echo(
            f"{plural(unreadable, 'value')} can't be read by any configured key: their owners must enter them again."
        )


@crm_cli.command("rotate-key")
@click.option("--batch-size", default=100, show_default=True, help="Rows re-encrypted per transaction.")
def rotate_key_command(batch_size: int) -> None:
    """Re-encrypt every stored secret under INTEGRATION_ENCRYPTION_KEY (resumable, idempotent).

    A value no configured key opens is left untouched and listed; the exit status is then 1."""
    report = keys.rotate(batch_size=batch_size)
    click.echo(
        f"Re-encrypted {plural(report.values_resealed, 'value')} in {plural(report.rows_changed, 'integration')} "
        f"({plural(report.batches, 'batch', 'batches')})."
    )
    if report.unreadable:
        click.echo(f"{plural(len(report.unreadable), 'value')} can't be read and stay as they are:", err=True)
        for value in report.unreadable:
            # The field of a JSON credential carries the user's own key name: printed escaped.
            echo(f"  integration {value.integration_id}  field {value.field}  key id {value.kid}", err=True)
        click.echo(
            "Add the key they were sealed under to INTEGRATION_ENCRYPTION_OLD_KEYS and run again, "
            "or ask their owners to enter them again.",
            err=True,
        )
        raise SystemExit(1)


@crm_cli.command("audit")
@click.option("--user", "email", help="Only this user's events.")
@click.option("--integration", "integration_id", help="Only this integration's events (id or 8+ character prefix).")
@click.option("--limit", default=200, show_default=True)
def audit_command(email: str | None, integration_id: str | None, limit: int) -> None:
    """Print the audit log, newest first (never a secret)."""
    owner = user_or_fail(email) if email else None
    if integration_id:
        integration = find_integration(integration_id, owner)
        events = audit.history(integration.owner, integration.id, limit=limit)
    else:
        events = audit.history(owner, limit=limit) if owner else audit.all_events(limit)
    emails = {u.id: u.email for u in db.session.scalars(db.select(User))}
    for event in events:
        echo(
            f"{event.created_at:%Y-%m-%d %H:%M:%S}  {emails.get(event.user_id, '-'):<24} {event.action:<13} "
            f"{event.provider or '-':<9} {event.outcome or '-':<24} {event.integration_id or '-':<36} "
            f"{event.client or '-'}{'  ' + event.detail if event.detail else ''}"
        )


from crm.webhooks.cli import webhooks_cli  # noqa: E402  (its own module; registered here)

crm_cli.add_command(webhooks_cli)


from crm.schedules import cli as schedules_cli  # noqa: E402, F401  (adds schedule, scheduler, health)


@crm_cli.command("oauth-redirect-uri")
def oauth_redirect_uri_command() -> None:
    """Print the redirect URI to register in each provider's OAuth app (from PUBLIC_BASE_URL)."""
    from flask import current_app

    from crm.providers.oauth import redirect_uri

    click.echo(redirect_uri(current_app.config))
