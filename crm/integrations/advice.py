"""What to do next after a failed Test Connection: each provider words its own advice
(`Provider.advice`), so this stays provider-neutral."""

from __future__ import annotations

from crm.providers.base import ConnectionResult, Provider


def advice_for(provider: type[Provider], result: ConnectionResult | None) -> list[str]:
    if result is None or result.success:
        return []
    return provider.advice(result.outcome)
