from flask import Blueprint
from markupsafe import Markup, escape

bp = Blueprint("integrations", __name__, url_prefix="/dashboard/integrations")

from crm.integrations import routes  # noqa: E402, F401


@bp.app_template_filter("ago")
def ago(moment) -> str:
    """'just now', '3 min ago', '2 h ago', '5 days ago': when a test last ran."""
    from crm.models import utcnow

    seconds = max(0, int((utcnow() - moment).total_seconds()))
    if seconds < 60:
        return "just now"
    if seconds < 3600:
        return f"{seconds // 60} min ago"
    if seconds < 86400:
        return f"{seconds // 3600} h ago"
    days = seconds // 86400
    return f"{days} day{'s' if days != 1 else ''} ago"


@bp.app_template_filter("breakable")
def breakable(text) -> Markup:
    """A host or URL that may wrap after its dots and slashes, not in the middle of a word."""
    # Escaped first, so the Markup holds only our <wbr> tags (str.replace: Markup.replace is slow).
    return Markup(str(escape(text)).replace(".", ".<wbr>").replace("/", "/<wbr>"))  # noqa: S704
