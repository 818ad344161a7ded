import sys

import click
from werkzeug.datastructures import MultiDict
from wtforms import Form

from crm.auth import bp
from crm.auth.forms import RegisterForm
from crm.auth.service import AccountError, create_user

bp.cli.help = "Manage user accounts."


class EmailOnly(Form):
    """The registration form's own email field, so the command accepts exactly what the page accepts."""

    email = RegisterForm.email


def checked_email(email: str) -> str:
    form = EmailOnly(MultiDict({"email": email}))
    if not form.validate():
        raise click.ClickException(f"email: {' '.join(form.email.errors)}")
    return form.email.data


@bp.cli.command("create")
@click.argument("email")
@click.option("--password-stdin", is_flag=True, help="Read the password from standard input (for scripts).")
def create_user_command(email: str, password_stdin: bool) -> None:
    """Create a user account; asks for the password twice."""
    email = checked_email(email)  # before asking for a password it would then refuse to use
    if password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = click.prompt("Password", hide_input=True, confirmation_prompt="Repeat password")
    try:
        user = create_user(email, password)
    except AccountError as exc:
        raise click.ClickException(f"{exc.field}: {exc.message}") from None
    click.echo(f"Created user {user.email} (id {user.id}).")
