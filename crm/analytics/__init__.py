"""Analytics: what each integration did (crm.analytics.recorder records, crm.analytics.store writes,
crm.analytics.report reads), the Analytics pages and the operators' /metrics."""

from flask import Blueprint

bp = Blueprint("analytics", __name__)

from crm.analytics import routes  # noqa: E402, F401


@bp.record_once
def _start_recorder(state) -> None:
    from crm.analytics import recorder

    recorder.init_app(state.app)
