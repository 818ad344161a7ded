"""The LocalBoxs CRM integrations app: create_app() and its named registration steps."""

from __future__ import annotations

import logging
from typing import Any

from flask import Flask, flash, redirect, render_template, request, url_for
from flask import make_response as app_response
from flask_wtf.csrf import CSRFError
from werkzeug.exceptions import HTTPException
from werkzeug.middleware.proxy_fix import ProxyFix

from crm import limits
from crm.api.body import APIError, is_api_request, json_response
from crm.auth.guards import login_first
from crm.crypto import CredentialUnreadable, KeyConfigError, Keyring
from crm.extensions import csrf, db, limiter, login_manager, migrate
from crm.net import client_from_config


def create_app(config_class: type | None = None, overrides: dict[str, Any] | None = None) -> Flask:
    from config import config_from_env  # the top-level module, read from the environment

    app = Flask(__name__, template_folder="../templates", static_folder="../static", instance_relative_config=True)
    app.config.from_object(config_class or config_from_env())
    app.config.update(overrides or {})
    check_config(app)
    register_extensions(app)
    register_security_headers(app)
    register_blueprints(app)
    register_operations(app)
    register_errorhandlers(app)
    register_commands(app)
    register_logging(app)
    register_scheduler(app)
    return app


def check_config(app: Flask) -> None:
    """Refuse to start without the secrets the app cannot run safely without (no defaults, ever)."""
    if not app.config.get("SECRET_KEY"):
        raise KeyConfigError("SECRET_KEY environment variable is required. Run `make run` once to create .env.")
    app.extensions["crm_keyring"] = Keyring.from_settings(
        app.config.get("INTEGRATION_ENCRYPTION_KEY"), app.config.get("INTEGRATION_ENCRYPTION_OLD_KEYS")
    )
    limits.check_storage(app)  # several workers need shared rate-limit counters


def register_extensions(app: Flask) -> None:
    if app.config.get("PROXY_COUNT"):
        count = app.config["PROXY_COUNT"]
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=count, x_proto=count, x_host=count)
    app.extensions["crm_http"] = client_from_config(app.config)
    limiter.init_app(app)
    db.init_app(app)
    migrate.init_app(app, db, render_as_batch=True, compare_type=True)
    # Registered before CSRFProtect: a request without a session hears "log in", not a CSRF error.
    app.before_request(login_first)
    csrf.init_app(app)
    login_manager.init_app(app)
    login_manager.login_view = "auth.login"
    login_manager.login_message = "Please log in to continue."
    login_manager.login_message_category = "info"
    login_manager.unauthorized_handler(unauthorized)

    from crm.models import User

    @login_manager.user_loader
    def load_user(session_token: str):
        return db.session.scalars(db.select(User).where(User.session_token == session_token)).first()


LOGIN_FIRST = "Log in first: this API uses the session cookie of /login."


def unauthorized():
    if is_api_request():
        return json_response({"error": LOGIN_FIRST}, 401)
    flash(login_manager.login_message, login_manager.login_message_category)
    return redirect(url_for(login_manager.login_view))


CONTENT_SECURITY_POLICY = "; ".join(
    (
        "default-src 'self'",
        "script-src 'self'",  # no inline scripts or handlers: htmx is configured by its meta tag
        "style-src 'self'",
        "img-src 'self' data:",  # Pico CSS draws checkboxes and selects with data: SVGs
        "connect-src 'self'",
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    )
)


def register_security_headers(app: Flask) -> None:
    """On every response, errors included."""

    @app.after_request
    def security_headers(response):
        headers = response.headers
        headers.setdefault("Content-Security-Policy", CONTENT_SECURITY_POLICY)
        headers.setdefault("X-Content-Type-Options", "nosniff")
        # Not no-referrer: Flask-WTF's HTTPS CSRF check needs a same-origin Referer.
        headers.setdefault("Referrer-Policy", "strict-origin-when-cross-origin")
        headers.setdefault("X-Frame-Options", "DENY")
        headers.setdefault("Cross-Origin-Opener-Policy", "same-origin")
        if app.config.get("HSTS"):
            headers.setdefault("Strict-Transport-Security", "max-age=31536000; includeSubDomains")
        return response


def register_operations(app: Flask) -> None:
    """What runs after a save (provisioning) listens to the integrations service's signal."""
    import crm.operations.provisioning  # noqa: F401  (connects its receiver)


def register_blueprints(app: Flask) -> None:
    from crm.analytics import bp as analytics_bp
    from crm.api import bp as api_bp
    from crm.auth import bp as auth_bp
    from crm.contacts.routes import bp as contacts_bp
    from crm.integrations.routes import bp as integrations_bp
    from crm.oauth import bp as oauth_bp
    from crm.schedules import bp as schedules_bp
    from crm.teams import bp as teams_bp
    from crm.webhooks.routes import bp as webhooks_bp

    app.register_blueprint(auth_bp)
    app.register_blueprint(integrations_bp)
    app.register_blueprint(api_bp)
    app.register_blueprint(contacts_bp)
    app.register_blueprint(webhooks_bp)
    app.register_blueprint(oauth_bp)
    app.register_blueprint(analytics_bp)
    app.register_blueprint(schedules_bp)
    app.register_blueprint(teams_bp)


ERROR_MESSAGES = {
    400: "The request could not be understood.",
    403: "You are not allowed to do that.",
    404: "There is nothing here.",
    405: "That method is not allowed here.",
    413: "That request is too large.",
    415: "That content type is not accepted here.",
    429: "Too many attempts: wait a minute, then try again.",
    500: "Something went wrong on our side. Please try again.",
}
CSRF_MESSAGE = "Your form expired or was sent from elsewhere. Reload the page and try again."
CSRF_API_MESSAGE = "The CSRF token is missing or invalid: send the page's csrf-token in the X-CSRFToken header."


def error_response(code: int, message: str, headers: dict[str, str] | None = None):
    if is_api_request():
        response = json_response({"error": message}, code)
    else:
        response = app_response(render_template("error.html", code=code, message=message), code)
    response.headers.update(headers or {})
    return response


def register_errorhandlers(app: Flask) -> None:
    def http_error(error: HTTPException):
        if isinstance(error, APIError):
            return error.get_response()
        code = error.code or 500
        allow = getattr(error, "valid_methods", None)
        headers = {"Allow": ", ".join(sorted(allow))} if allow else None
        return error_response(code, ERROR_MESSAGES.get(code, error.name), headers)

    app.register_error_handler(HTTPException, http_error)

    @app.errorhandler(CredentialUnreadable)
    def credential_unreadable(error):
        return error_response(409, str(error))

    @app.errorhandler(CSRFError)
    def csrf_error(error):
        return error_response(400, CSRF_API_MESSAGE if is_api_request() else CSRF_MESSAGE)

    @app.errorhandler(Exception)
    def unexpected(error):
        app.logger.exception("unhandled error on %s %s", request.method, request.path)
        return error_response(500, ERROR_MESSAGES[500])


def register_commands(app: Flask) -> None:
    from crm.cli import crm_cli

    app.cli.add_command(crm_cli)


def register_scheduler(app: Flask) -> None:
    """With SCHEDULER_EMBEDDED (`make run` sets it) this process also runs the scheduler's tick in a
    thread, so schedules work with no extra process. Off by default, and always off in tests."""
    from crm.schedules.scheduler import start_embedded

    start_embedded(app)


def register_logging(app: Flask) -> None:
    # urllib3 prints request lines, query strings included, at DEBUG: keep it above that always.
    logging.getLogger("urllib3").setLevel(logging.INFO)
