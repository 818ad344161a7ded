"""Rate limits (Flask-Limiter): login per address and per email, registration, Test Connection per
user, API writes per user. Limits come from the config, so operators can tune them."""

from __future__ import annotations

from flask import current_app, request
from flask_limiter.util import get_remote_address
from flask_login import current_user

from crm.extensions import limiter


def _config(name: str):
    return lambda: current_app.config[name]


def submitted_email() -> str:
    return "login-email:" + (request.form.get("email") or "").strip().lower()


def user_key() -> str:
    return f"user:{current_user.get_id()}" if current_user.is_authenticated else get_remote_address()


login_by_address = limiter.shared_limit(_config("LOGIN_LIMIT"), scope="login-address", methods=["POST"])
login_by_email = limiter.shared_limit(
    _config("LOGIN_LIMIT"), scope="login-email", key_func=submitted_email, methods=["POST"]
)
registration = limiter.shared_limit(_config("REGISTER_LIMIT"), scope="register", methods=["POST"])
# One budget for every way of testing a connection: the modal, the card, and the API.
test_connection = limiter.shared_limit(_config("TEST_CONNECTION_LIMIT"), scope="test-connection", key_func=user_key)
api_write = limiter.shared_limit(_config("API_WRITE_LIMIT"), scope="api-write", key_func=user_key)
