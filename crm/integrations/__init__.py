"""Integrations: the dashboard and the modal (routes), the owner-scoped store (service), forms.

Importing this package (e.g. `crm.integrations.service` from the operations layer) loads no routes;
the app factory registers `crm.integrations.routes.bp`. The template filters below are registered there.
"""

from markupsafe import Markup, escape

from crm.providers.contract import CAPABILITIES


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


def breakable(text) -> Markup:
    """A host or URL that may wrap after its dots and slashes, not in the middle of a word."""
    # Escaped first, so the Markup holds only our <wbr> tags (str.replace: Markup.replace is slow).
    return Markup(str(escape(text)).replace(".", ".<wbr>").replace("/", "/<wbr>"))  # noqa: S704  # nosec B704  # escaped first


def capability_labels(provider) -> list[str]:
    """What a provider can do, in the words of `crm.providers.contract.CAPABILITIES` (card, CLI, API)."""
    return [CAPABILITIES[name] for name in provider.features if name in CAPABILITIES]
