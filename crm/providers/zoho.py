"""Zoho CRM: listed in the picker, not yet connectable."""

from crm.providers.base import Provider
from crm.providers.registry import register


@register
class ZohoCRM(Provider):
    id = "ZOHO"
    name = "Zoho CRM"
    description = "Zoho CRM; OAuth 2.0 with a data-centre-specific domain."
    icon = "zoho.svg"
    requires_oauth = True
    availability = "coming_soon"
