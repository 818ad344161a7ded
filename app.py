import click

from crm import create_app
from crm.crypto import KeyConfigError

try:
    app = create_app()
except KeyConfigError as exc:
    if click.get_current_context(silent=True) is None:
        raise  # under a server (gunicorn): a boot error, so it stops instead of respawning workers
    raise SystemExit(f"Error: {exc}") from None  # any `flask ...` command: one clear line, exit status 1
