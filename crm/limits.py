"""Rate limits (Flask-Limiter). Each one reads its value from the config (the README's table lists
them all), and every route that changes state carries one.

- Per-user limits key on the user's id, never on the session: logging in again buys no fresh budget.
- Per-address limits key on the client address; an IPv6 client by its /64, the block one subscriber
  gets, so rotating through one's own addresses buys nothing either.
- Login: every attempt counts per address; only *failed* attempts count per address and email. An
  attacker hammering someone's email exhausts their own addresses' budgets, never the owner's.
- Counters live in REDIS_URL when it is set, shared by every worker; in-process memory otherwise,
  which is refused in production with more than one worker (see check_storage).
"""

from __future__ import annotations

import ipaddress
import os
import sys

from flask import Flask, current_app, g, request
from flask_login import current_user

from crm.extensions import limiter

WRITE_METHODS = ["POST", "PUT", "PATCH", "DELETE"]


class LimitStorageError(RuntimeError):
    """Rate-limit counters would be per process while several processes serve: refuse to start."""


def _config(name: str):
    return lambda: current_app.config[name]


def client_address() -> str:
    address = request.remote_addr or "unknown"
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return address
    if ip.version == 6:
        if ip.ipv4_mapped:
            return str(ip.ipv4_mapped)
        return str(ipaddress.ip_network(f"{ip}/64", strict=False))
    return str(ip)


def user_key() -> str:
    if current_user.is_authenticated:
        return f"user:{current_user.id}"
    return f"address:{client_address()}"


def address_and_email() -> str:
    email = (request.form.get("email") or "").strip().lower()
    return f"{client_address()}|{email}"


def count_failed_login() -> None:
    """Called by the login view when a password was wrong (or the email unknown)."""
    g.login_failed = True


def _login_failed(response) -> bool:
    return bool(g.get("login_failed"))


def _limit(setting: str, scope: str, key_func=user_key, methods=WRITE_METHODS, **options):
    return limiter.shared_limit(_config(setting), scope=scope, key_func=key_func, methods=methods, **options)


login_by_address = _limit("LOGIN_LIMIT", "login-address", key_func=client_address)
failed_logins = _limit("LOGIN_FAILURE_LIMIT", "login-failures", key_func=address_and_email, deduct_when=_login_failed)
registration = _limit("REGISTER_LIMIT", "register", key_func=client_address)
# Its own budget, so no amount of other activity can stop a user from ending a session.
logout = _limit("WRITE_LIMIT", "logout")
# One budget for every way of testing a connection: the modal, the card, and the API.
test_connection = _limit("TEST_CONNECTION_LIMIT", "test-connection")
# One budget for every other change a user makes: integrations and contacts, pages and API alike.
write = _limit("WRITE_LIMIT", "write")
api_write = write
contacts_import = _limit("CONTACTS_IMPORT_LIMIT", "contacts-import")
contacts_sync = _limit("CONTACTS_SYNC_LIMIT", "contacts-sync")
send_message = _limit("SEND_MESSAGE_LIMIT", "send-message")


# --- several processes, one count ----------------------------------------------------------------


def web_workers(app: Flask) -> int:
    """How many processes serve this app: WEB_WORKERS (GUNICORN_WORKERS in the environment); else,
    under gunicorn, the `workers` of the config file it loaded (gunicorn.conf.py: 3) or gunicorn's
    own default, WEB_CONCURRENCY; else 1. A `-w` on gunicorn's command line is not seen: set
    GUNICORN_WORKERS instead."""
    if app.config.get("WEB_WORKERS"):
        return int(app.config["WEB_WORKERS"])
    if not os.environ.get("SERVER_SOFTWARE", "").startswith("gunicorn/"):
        return 1
    loaded_config = sys.modules.get("__config__")  # gunicorn's name for the -c file
    if hasattr(loaded_config, "workers"):
        return int(loaded_config.workers)
    return int(os.environ.get("WEB_CONCURRENCY") or 1)


def check_storage(app: Flask) -> None:
    """Memory counters are per process: with several workers each would allow the full limit."""
    storage = app.config.get("RATELIMIT_STORAGE_URI") or "memory://"
    workers = web_workers(app)
    if not storage.startswith("memory://") or workers <= 1:
        return
    message = (
        f"Rate limits are counted in process memory but {workers} workers serve the app, so each "
        "would allow the full limit: set REDIS_URL (shared counters) or run one worker (GUNICORN_WORKERS=1)."
    )
    if app.config.get("APP_ENV") == "production":
        raise LimitStorageError(message)
    app.logger.warning(message)
