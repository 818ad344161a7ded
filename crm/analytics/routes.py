"""Dashboard → Analytics (all of a user's integrations, or one) and the operators' /metrics."""

from __future__ import annotations

import hmac

from flask import Response, abort, current_app, render_template, request
from flask_login import current_user, login_required

from crm.analytics import bp, recorder, report
from crm.analytics import metrics as prometheus
from crm.analytics.present import charts
from crm.auth.guards import public
from crm.http import no_store
from crm.integrations import service
from crm.models import Integration

bp.after_request(no_store)


def owned(integration_id: str) -> Integration:
    try:
        return service.get_integration(current_user, integration_id)
    except service.IntegrationNotFound:
        abort(404)


def analytics_page(integration: Integration | None):
    try:
        range_name, range_error = report.parse_range(request.args.get("range")), None
    except report.BadRange as exc:
        range_name, range_error = report.DEFAULT_RANGE, str(exc)
    recorder.flush()  # this process's latest operations count too
    figures = report.figures(current_user, range_name, integration)
    return render_template(
        "analytics/page.html",
        figures=figures,
        charts=charts(figures),
        integration=integration,
        ranges=list(report.RANGES),
        range_error=range_error,
    )


@bp.get("/dashboard/analytics")
@login_required
def user_page():
    return analytics_page(None)


@bp.get("/dashboard/integrations/<integration_id>/analytics")
@login_required
def integration_page(integration_id: str):
    return analytics_page(owned(integration_id))


@bp.get("/metrics")
@public
def metrics():
    """Prometheus text format, for operators holding METRICS_TOKEN; absent (404) while it is unset."""
    token = current_app.config.get("METRICS_TOKEN") or ""
    if not token:
        abort(404)
    offered = request.headers.get("Authorization", "")
    if not hmac.compare_digest(offered.encode(), f"Bearer {token}".encode()):
        return Response("A valid bearer token is required.\n", 401, {"WWW-Authenticate": 'Bearer realm="metrics"'})
    recorder.flush()
    body, content_type = prometheus.exposition()
    return Response(body, 200, {"Content-Type": content_type})
