"""HubSpot: listed in the picker, not yet connectable."""

from crm.providers.base import Provider
from crm.providers.registry import register


@register
class HubSpot(Provider):
    id = "HUBSPOT"
    name = "HubSpot"
    description = "Marketing, sales and service hub; private-app access tokens or OAuth 2.0."
    icon = "hubspot.svg"
    requires_oauth = True
    availability = "coming_soon"
