"""One sentence for any failure of an operation, in our words."""

from __future__ import annotations

from crm.net import OutboundError
from crm.providers.base import CRMError, network_message


def describe_failure(exc: Exception, provider_name: str = "The CRM") -> str:
    if isinstance(exc, OutboundError):
        return network_message(exc.outcome, provider_name, exc.detail)
    if isinstance(exc, CRMError):
        return exc.message
    return getattr(exc, "message", None) or str(exc)
