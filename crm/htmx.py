"""The one place that decides how to answer htmx and plain requests: a partial or the page, a
retarget, client events, a redirect, the end of a poll. Views call these and never ask `is_htmx()`."""

from __future__ import annotations

import json
from typing import Any

from flask import flash, make_response, redirect, render_template, request

STOP_POLLING = 286  # htmx stops an `every` poll on this status


def is_htmx() -> bool:
    # A boosted request wants the whole page; history restores arrive without HX-Request.
    return request.headers.get("HX-Request") == "true" and request.headers.get("HX-Boosted") != "true"


def render(
    page: str,
    partial: str,
    status: int = 200,
    triggers: dict[str, Any] | None = None,
    retarget: str | None = None,
    **context,
):
    """Render `partial` for htmx and `page` (which includes it) otherwise. `retarget` swaps the
    partial into that element instead of the requester's target (e.g. the whole modal)."""
    htmx = is_htmx()
    response = make_response(render_template(partial if htmx else page, **context), status)
    response.headers["Vary"] = "HX-Request"
    if htmx:
        if triggers:
            response.headers["HX-Trigger"] = json.dumps(triggers)
        if retarget:
            response.headers["HX-Retarget"] = retarget
            response.headers["HX-Reswap"] = "innerHTML"
    return response


def htmx_event(status: int = 204, **triggers: Any):
    """An empty answer that only fires client events (e.g. close the modal, refresh the list)."""
    response = make_response("", status)
    response.headers["HX-Trigger"] = json.dumps(triggers)
    return response


def toast(message: str, category: str = "success") -> dict[str, str]:
    return {"message": message, "category": category}


def after_change(message: str, redirect_to: str, category: str = "success", events: tuple[str, ...] = ()):
    """After a change: htmx fires `events`, closes the modal and toasts; a page flashes and redirects."""
    if is_htmx():
        triggers: dict[str, Any] = dict.fromkeys(events)
        triggers.update({"modal:close": None, "toast": toast(message, category)})
        return htmx_event(**triggers)
    flash(message, category)
    return redirect(redirect_to)


def swap_or_redirect(
    partial: str, redirect_to: str, message: str, category: str = "success", notify: bool = False, **context
):
    """htmx swaps `partial` in place (toasting `message` when `notify`); a page flashes and redirects."""
    if not is_htmx():
        flash(message, category)
        return redirect(redirect_to)
    return render(partial, partial, 200, {"toast": toast(message, category)} if notify else None, **context)


def poll(page: str, partial: str, finished: bool, **context):
    """One answer to an htmx poll: the partial, with the status that stops polling once `finished`."""
    status = STOP_POLLING if finished and is_htmx() else 200
    return render(page, partial, status, **context)


def leave_site(url: str, page: str, **context):
    """Send the browser to another site (e.g. an OAuth consent page): htmx navigates on HX-Redirect;
    a page without JavaScript renders `page` with a link, as CSP form-action 'self' stops a form
    post redirected to another site."""
    if is_htmx():
        response = make_response("", 200)
        response.headers["HX-Redirect"] = url
        return response
    return make_response(render_template(page, **context), 200)
