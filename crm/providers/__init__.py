"""CRM providers: one class per file, collected in a registry."""

from crm.providers import chatwoot, custom, hubspot, pipedrive, salesforce, zoho  # noqa: F401
from crm.providers.base import Field, Provider
from crm.providers.registry import REGISTRY, UnknownProvider, all_providers, get_provider

__all__ = ["REGISTRY", "Field", "Provider", "UnknownProvider", "all_providers", "get_provider"]
