"""Which CRM the platform acts in for a user, and a live connection to it.

For messages (and everything else that needs one CRM): the integration asked for, else the user's
primary integration when its provider can record messages, else their oldest active one that can,
else their team's designated integration (another user's, shared with the team: used on the member's
behalf, one CRM account for several users, so `CRMTarget.shared`), else the operator's CHATWOOT_*
settings (all three; one account shared by many users: `CRMTarget.shared` too), else a typed error.
For contacts sync: every active integration whose provider syncs contacts (and whose "Sync Contacts"
is on), else the team's designated one, else the operator's Chatwoot.

Secrets are opened here, on the outbound path, and nowhere else. Nothing here names a provider: what a
provider can do comes from its declared features.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from flask import current_app

from crm.extensions import db
from crm.integrations import service
from crm.models import Integration, User
from crm.providers import oauth
from crm.providers.base import Provider
from crm.providers.contract import MESSAGE_CAPABILITIES, Connection
from crm.providers.registry import get_provider
from crm.teams import service as teams

NO_CRM_MESSAGE = (
    "No CRM configured: add one under Dashboard → Integrations, "
    "or set CHATWOOT_BASE_URL, CHATWOOT_ACCOUNT_ID and CHATWOOT_API_KEY"
)
ENVIRONMENT_PROVIDER = "CHATWOOT"  # what the operator's CHATWOOT_* settings describe


class NoCRMConfigured(LookupError):
    def __init__(self, message: str = NO_CRM_MESSAGE):
        super().__init__(message)
        self.message = message


@dataclass
class CRMTarget:
    """One CRM account to act in: which provider, through which integration (None: the operator's
    shared Chatwoot), and a live connection to it."""

    source: str  # "integration" (the user's own), "team" (shared with their team) or "environment"
    provider: type[Provider]
    connection: Connection
    key: str  # Provider.account_key: remote ids are kept per key
    integration: Integration | None = None
    remote: dict[str, Any] = field(default_factory=dict)  # provisioned ids as they were when connected

    @property
    def shared(self) -> bool:
        """The operator's account, shared by every user without an integration, or a team's shared
        integration: each user may only touch the contacts they created there (see crm.operations.sync)."""
        return self.source in ("environment", "team")

    @property
    def label(self) -> str:
        if self.source == "team":
            return f"your team's integration “{self.integration.name}”"
        if self.integration is not None:
            return f"your integration “{self.integration.name}”"
        return f"the platform's default {self.provider.name}"

    @property
    def integration_id(self) -> str | None:
        return self.integration.id if self.integration is not None else None


def can(provider: type[Provider], capabilities: tuple[str, ...]) -> bool:
    return any(c in provider.features for c in capabilities)


def syncs_contacts(integration: Integration) -> bool:
    provider = get_provider(integration.provider)
    # Providers with a "Sync Contacts" switch honour it; the others sync whenever they can.
    return (
        integration.is_active
        and "contacts" in provider.features
        and (integration.configuration or {}).get("sync_contacts", True) is not False
    )


def operational_integration(owner: User, capabilities: tuple[str, ...] = MESSAGE_CAPABILITIES) -> Integration | None:
    """The integration the platform acts through: the primary one when it can, else the oldest active one."""
    primary = service.primary_integration(owner)
    if primary is not None and can(get_provider(primary.provider), capabilities):
        return primary
    usable = [
        i for i in service.list_integrations(owner) if i.is_active and can(get_provider(i.provider), capabilities)
    ]
    return usable[0] if usable else None


def environment_settings() -> tuple[str, int, str] | None:
    config = current_app.config
    if not service.environment_chatwoot_configured(config):
        return None
    base_url = get_provider(ENVIRONMENT_PROVIDER).normalize(
        {"base_url": config["CHATWOOT_BASE_URL"].strip().rstrip("/")}
    )
    try:
        account_id = int(str(config["CHATWOOT_ACCOUNT_ID"]).strip())
    except ValueError:
        return None
    return base_url["base_url"], account_id, config["CHATWOOT_API_KEY"].strip()


def source_for(owner: User) -> str:
    """Which source crm_for would use, without opening any secret (for the dashboard)."""
    if operational_integration(owner) is not None:
        return "integration"
    if designated_integration(owner) is not None:
        return "team"
    return "environment" if environment_settings() else "none"


def designated_integration(owner: User, capabilities: tuple[str, ...] = MESSAGE_CAPABILITIES) -> Integration | None:
    """The team's designated integration, when the user has no usable one of their own."""
    found = teams.designated_for(owner)
    if found is None or not can(get_provider(found[0].provider), capabilities):
        return None
    return found[0]


def own_or_shared(owner: User, integration_id: object) -> Integration:
    """The user's integration with this id, or one shared with their team (IntegrationNotFound else)."""
    try:
        return service.get_integration(owner, integration_id)
    except service.IntegrationNotFound:
        shared = teams.usable_shared(owner, integration_id)
        if shared is None:
            raise
        return shared


def _context() -> dict[str, Any]:
    config = current_app.config
    return {
        "retry_base": config.get("CRM_RETRY_BASE_SECONDS", 1.0),
        "concurrency": config.get("CRM_SYNC_CONCURRENCY", 8),
    }


def target_for(owner: User, integration: Integration, purpose: str = "platform operation") -> CRMTarget:
    """A live connection through a saved integration (an OAuth token refreshed first when due; raises
    NeedsReconnect when the provider refused it, so operations stop at once with that advice)."""
    provider = get_provider(integration.provider)
    live = service.fresh_configuration(owner, integration, purpose=purpose)
    on_behalf = integration.user_id != owner.id  # a team member's use of a shared integration
    remote = dict(integration.remote or {})
    context = _context()
    if oauth.is_oauth(provider):
        context["renew"] = renewal(owner, integration, purpose)
    if on_behalf:
        context["shared"] = True  # tenant-scoped identifiers, no adoption by email
    connection = provider.connect(live, service.outbound_client(), service.web_deadline(), remote=remote, **context)
    key = provider.account_key(live, integration.id)
    return CRMTarget("team" if on_behalf else "integration", provider, connection, key, integration, remote)


def renewal(owner: User, integration: Integration, purpose: str) -> Callable[[], dict[str, Any]]:
    """What a connection calls after a 401 saying its token expired: a refresh (one for every caller)
    and the live configuration to retry with. It may run on a sync's worker thread, so it opens its
    own app context and session and never touches the caller's."""
    app = current_app._get_current_object()
    owner_id, integration_id = owner.id, integration.id
    seen = (integration.configuration or {}).get("access_token")

    def renew() -> dict[str, Any]:
        with app.app_context():
            fresh_owner = db.session.get(User, owner_id)
            fresh = db.session.get(Integration, integration_id)
            if fresh is None or fresh_owner is None:
                raise NoCRMConfigured("That integration no longer exists.")
            live = service.live_configuration(fresh_owner, fresh, purpose)  # still theirs or shared?
            if (fresh.configuration or {}).get("access_token") != seen:
                return live  # another caller refreshed
            return oauth.refresh_after_401(fresh.owner, fresh, purpose)

    return renew


def environment_target() -> CRMTarget | None:
    settings = environment_settings()
    if settings is None:
        return None
    base_url, account_id, token = settings
    provider = get_provider(ENVIRONMENT_PROVIDER)
    config = {"base_url": base_url, "account_id": account_id, "api_key": token}
    # A web request's work ends in time (service.web_deadline); a job's calls have their own.
    connection = provider.connect(config, service.outbound_client(), service.web_deadline(), shared=True, **_context())
    return CRMTarget("environment", provider, connection, provider.account_key(config, None))


def crm_for(owner: User, integration_id: object | None = None) -> CRMTarget:
    """The CRM that records messages for `owner` (or the integration asked for)."""
    if integration_id is not None:
        integration = own_or_shared(owner, integration_id)
        provider = get_provider(integration.provider)
        if not integration.is_active or not can(provider, MESSAGE_CAPABILITIES):
            raise NoCRMConfigured(f"“{integration.name}” cannot record messages ({provider.name}, or it is off).")
        return target_for(owner, integration)
    integration = operational_integration(owner) or designated_integration(owner)
    if integration is not None:
        return target_for(owner, integration)
    target = environment_target()
    if target is None:
        raise NoCRMConfigured()
    return target


def sync_plan(owner: User, integration_id: object | None = None) -> list[Integration | None]:
    """Every integration the user's contacts go to (or the one asked for); [None]: the operator's
    Chatwoot. Connected one at a time (`connect`), so one broken integration does not stop the others."""
    if integration_id is not None:
        integration = own_or_shared(owner, integration_id)
        if not syncs_contacts(integration):
            raise NoCRMConfigured(f"“{integration.name}” does not sync contacts (it is off, or cannot).")
        return [integration]
    integrations = [i for i in service.list_integrations(owner) if syncs_contacts(i)]
    if integrations:
        return integrations
    designated = designated_integration(owner, ("contacts",))
    if designated is not None and syncs_contacts(designated):
        return [designated]
    if environment_settings() is None:
        raise NoCRMConfigured()
    return [None]


def connect(owner: User, integration: Integration | None, purpose: str = "platform operation") -> CRMTarget:
    if integration is not None:
        return target_for(owner, integration, purpose)
    target = environment_target()
    if target is None:
        raise NoCRMConfigured()
    return target
