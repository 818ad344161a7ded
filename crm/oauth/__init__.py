"""Connect with OAuth 2.0: the start (page form and JSON API), the callback, Reconnect."""

from flask import Blueprint

bp = Blueprint("oauth", __name__)

from crm.oauth import routes  # noqa: E402, F401


@bp.app_template_global("oauth_app_configured")
def oauth_app_configured(provider) -> bool:
    """Whether the operator set this provider's OAuth app (client id and secret)."""
    from flask import current_app

    from crm.providers.oauth import app_configured

    return app_configured(provider, current_app.config)


@bp.app_template_global("oauth_redirect_uri")
def oauth_redirect_uri() -> str:
    """The redirect URI a user registers in their own OAuth app (Custom CRM's Authorization code)."""
    from flask import current_app

    from crm.providers.oauth import redirect_uri

    return redirect_uri(current_app.config)
