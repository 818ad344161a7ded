"""`crm_for(user)`: the one entry point the platform calls to act in a user's CRM.

Order: the user's primary active Chatwoot integration, else the operator's CHATWOOT_* settings
(all three; one account shared by many users: `CRMTarget.shared`), else a typed error. Secrets are
opened here, on the outbound path, and nowhere else.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from flask import current_app

from crm.integrations import service
from crm.models import Integration, User
from crm.providers.chatwoot import ChatwootAPI
from crm.providers.registry import get_provider

NO_CRM_MESSAGE = (
    "No CRM configured: add one under Dashboard → Integrations, "
    "or set CHATWOOT_BASE_URL, CHATWOOT_ACCOUNT_ID and CHATWOOT_API_KEY"
)


class NoCRMConfigured(LookupError):
    def __init__(self, message: str = NO_CRM_MESSAGE):
        super().__init__(message)
        self.message = message


@dataclass
class CRMTarget:
    source: str  # "integration" or "environment"
    api: ChatwootAPI
    integration: Integration | None = None

    @property
    def key(self) -> str:
        """Identifies the CRM account, so that contacts synced to one are re-sent to another."""
        raw = f"{self.api.base_url}|{self.api.account_id}"
        return hashlib.sha256(raw.encode()).hexdigest()[:32]

    @property
    def shared(self) -> bool:
        """The operator's account, shared by every user without an integration: each user may only
        touch the contacts they created there (see crm.operations.sync)."""
        return self.source == "environment"

    @property
    def label(self) -> str:
        if self.integration is not None:
            return f"your integration “{self.integration.name}”"
        return "the platform's default Chatwoot"


def operational_integration(owner: User) -> Integration | None:
    """The integration the platform acts through (see service.primary_of: active, a provider that can
    operate, the primary one first)."""
    return service.primary_integration(owner)


def environment_settings() -> tuple[str, int, str] | None:
    config = current_app.config
    if not service.environment_chatwoot_configured(config):
        return None
    base_url = get_provider("CHATWOOT").normalize({"base_url": config["CHATWOOT_BASE_URL"].strip().rstrip("/")})
    try:
        account_id = int(str(config["CHATWOOT_ACCOUNT_ID"]).strip())
    except ValueError:
        return None
    return base_url["base_url"], account_id, config["CHATWOOT_API_KEY"].strip()


def source_for(owner: User) -> str:
    """Which source crm_for would use, without opening any secret (for the dashboard)."""
    if operational_integration(owner) is not None:
        return "integration"
    return "environment" if environment_settings() else "none"


def crm_for(owner: User) -> CRMTarget:
    http = service.outbound_client()
    retry_base = current_app.config.get("CRM_RETRY_BASE_SECONDS", 1.0)
    deadline = service.web_deadline()  # a web request's work ends in time; a job's calls have their own
    integration = operational_integration(owner)
    if integration is not None:
        live = service.live_configuration(owner, integration, purpose="platform operation")
        api = ChatwootAPI(http, live["base_url"], live["account_id"], live["api_key"], deadline, retry_base)
        return CRMTarget("integration", api, integration)
    settings = environment_settings()
    if settings is not None:
        base_url, account_id, token = settings
        return CRMTarget("environment", ChatwootAPI(http, base_url, account_id, token, deadline, retry_base))
    raise NoCRMConfigured()
