"""The LocalBoxs CRM integrations app: create_app() and its named registration steps."""

from __future__ import annotations

import logging
from typing import Any

from flask import Flask, render_template
from flask_wtf.csrf import CSRFError

from crm.crypto import CredentialUnreadable, KeyConfigError, Keyring
from crm.extensions import csrf, db, login_manager, migrate
from crm.net import client_from_config


def create_app(config_class: type | None = None, overrides: dict[str, Any] | None = None) -> Flask:
    from config import config_from_env  # the top-level module, read from the environment

    app = Flask(__name__, template_folder="../templates", static_folder="../static", instance_relative_config=True)
    app.config.from_object(config_class or config_from_env())
    app.config.update(overrides or {})
    check_config(app)
    register_extensions(app)
    register_blueprints(app)
    register_errorhandlers(app)
    register_commands(app)
    register_logging(app)
    return app


def check_config(app: Flask) -> None:
    """Refuse to start without the secrets the app cannot run safely without (no defaults, ever)."""
    if not app.config.get("SECRET_KEY"):
        raise KeyConfigError("SECRET_KEY environment variable is required. Run `make run` once to create .env.")
    app.extensions["crm_keyring"] = Keyring.from_settings(
        app.config.get("INTEGRATION_ENCRYPTION_KEY"), app.config.get("INTEGRATION_ENCRYPTION_OLD_KEYS")
    )


def register_extensions(app: Flask) -> None:
    app.extensions["crm_http"] = client_from_config(app.config)
    db.init_app(app)
    migrate.init_app(app, db, render_as_batch=True, compare_type=True)
    csrf.init_app(app)
    login_manager.init_app(app)
    login_manager.login_view = "auth.login"
    login_manager.login_message = "Please log in to continue."
    login_manager.login_message_category = "info"

    from crm.models import User

    @login_manager.user_loader
    def load_user(user_id: str):
        return db.session.get(User, int(user_id)) if user_id.isdigit() else None


def register_blueprints(app: Flask) -> None:
    from crm.auth import bp as auth_bp
    from crm.integrations import bp as integrations_bp

    app.register_blueprint(auth_bp)
    app.register_blueprint(integrations_bp)


def register_errorhandlers(app: Flask) -> None:
    messages = {
        400: "The request could not be understood.",
        403: "You are not allowed to do that.",
        404: "There is nothing here.",
        405: "That action is not allowed here.",
        413: "That upload is too large.",
        500: "Something went wrong on our side. Please try again.",
    }

    def render_error(error):
        code = getattr(error, "code", 500) or 500
        return render_template("error.html", code=code, message=messages.get(code, "Request failed.")), code

    for code in messages:
        app.register_error_handler(code, render_error)

    @app.errorhandler(CredentialUnreadable)
    def credential_unreadable(error):
        return render_template("error.html", code=409, message=str(error)), 409

    @app.errorhandler(CSRFError)
    def csrf_error(error):
        message = "Your form expired or was sent from elsewhere. Reload the page and try again."
        return render_template("error.html", code=400, message=message), 400


def register_commands(app: Flask) -> None:
    from crm.cli import crm_cli

    app.cli.add_command(crm_cli)


def register_logging(app: Flask) -> None:
    # urllib3 prints request lines, query strings included, at DEBUG: keep it above that always.
    logging.getLogger("urllib3").setLevel(logging.INFO)
