"""Pipedrive: listed in the picker, not yet connectable."""

from crm.providers.base import Provider
from crm.providers.registry import register


@register
class Pipedrive(Provider):
    id = "PIPEDRIVE"
    name = "Pipedrive"
    description = "Sales pipeline CRM; API token or OAuth 2.0."
    icon = "pipedrive.svg"
    requires_oauth = False
    availability = "coming_soon"
