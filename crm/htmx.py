"""The one place that decides between a full page and an htmx partial."""

from __future__ import annotations

import json
from typing import Any

from flask import make_response, render_template, request


def is_htmx() -> bool:
    # A boosted request wants the whole page; history restores arrive without HX-Request.
    return request.headers.get("HX-Request") == "true" and request.headers.get("HX-Boosted") != "true"


def render(page: str, partial: str, status: int = 200, triggers: dict[str, Any] | None = None, **context):
    """Render `partial` for htmx and `page` (which includes it) otherwise."""
    response = make_response(render_template(partial if is_htmx() else page, **context), status)
    response.headers["Vary"] = "HX-Request"
    if triggers:
        response.headers["HX-Trigger"] = json.dumps(triggers)
    return response


def htmx_event(status: int = 204, **triggers: Any):
    """An empty answer that only fires client events (e.g. close the modal, refresh the list)."""
    response = make_response("", status)
    response.headers["HX-Trigger"] = json.dumps(triggers)
    return response


def toast(message: str, category: str = "success") -> dict[str, str]:
    return {"message": message, "category": category}


def no_store(response):
    """For blueprints whose answers describe stored credentials or contacts: never cached."""
    response.headers["Cache-Control"] = "no-store"
    return response
