"""`flask crm ...` and `flask generate-encryption-key`: thin shells over the service functions."""

import click
from flask.cli import AppGroup

from crm.auth.service import find_user
from crm.crypto import KEY_ENV, CredentialUnreadable, generate_key
from crm.extensions import db
from crm.integrations import service
from crm.models import User
from crm.providers import all_providers

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
