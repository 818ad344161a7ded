import sys

import click

from crm.auth import bp
from crm.auth.service import AccountError, create_user

bp.cli.help = "Manage user accounts."


@bp.cli.command("create")
@click.argument("email")
@click.option("--password-stdin", is_flag=True, help="Read the password from standard input (for scripts).")
def create_user_command(email: str, password_stdin: bool) -> None:
    """Create a user account; asks for the password twice."""
    if password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = click.prompt("Password", hide_input=True, confirmation_prompt="Repeat password")
    try:
        user = create_user(email, password)
    except AccountError as exc:
        raise click.ClickException(f"{exc.field}: {exc.message}") from None
    click.echo(f"Created user {user.email} (id {user.id}).")
