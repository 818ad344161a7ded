"""The provider registry: `register` a class, look it up by id."""

from __future__ import annotations

from crm.providers.base import Provider

REGISTRY: dict[str, type[Provider]] = {}

# The order users see in the provider picker.
DISPLAY_ORDER = ("CHATWOOT", "SALESFORCE", "HUBSPOT", "ZOHO", "PIPEDRIVE", "CUSTOM")


class UnknownProvider(LookupError):
    pass


def register(cls: type[Provider]) -> type[Provider]:
    if cls.id in REGISTRY:
        raise ValueError(f"provider {cls.id} registered twice")
    REGISTRY[cls.id] = cls
    return cls


def get_provider(provider_id: object) -> type[Provider]:
    try:
        return REGISTRY[str(provider_id).upper()]
    except KeyError:
        raise UnknownProvider(provider_id) from None


def all_providers() -> list[type[Provider]]:
    ranked = {pid: i for i, pid in enumerate(DISPLAY_ORDER)}
    return sorted(REGISTRY.values(), key=lambda p: (ranked.get(p.id, len(ranked)), p.name))
