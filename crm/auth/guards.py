"""Login before anything else: a request for a non-public view without a session is answered
before CSRF or the view runs (401 JSON for the API, a redirect to /login for pages)."""

from __future__ import annotations

from collections.abc import Callable

from flask import current_app, request
from flask_login import current_user

from crm.extensions import login_manager


def public(view: Callable) -> Callable:
    """Mark a view that anyone may call."""
    view.is_public = True
    return view


def login_first():
    if current_user.is_authenticated:
        return None
    view = current_app.view_functions.get(request.endpoint or "")
    if request.endpoint == "static" or getattr(view, "is_public", False):
        return None
    if view is None and not request.path.startswith("/api"):
        return None  # an unknown page: let it be a 404
    return login_manager.unauthorized()
