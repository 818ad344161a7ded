"""Salesforce: listed in the picker, not yet connectable."""

from crm.providers.base import Provider
from crm.providers.registry import register


@register
class Salesforce(Provider):
    id = "SALESFORCE"
    name = "Salesforce"
    description = "Enterprise CRM; OAuth 2.0 connected app."
    icon = "salesforce.svg"
    requires_oauth = True
    availability = "coming_soon"
