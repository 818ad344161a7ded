"""Make what the platform needs in a CRM after a save (Chatwoot: an API inbox and an agent bot). What
that is belongs to the provider (`Provider.wants_provisioning`, `Connection.provision`); here is only
when it runs, with what deadline, and what is recorded. Idempotent: ids are kept on the integration and
looked up before anything is created, so saving twice creates nothing new."""

from __future__ import annotations

import time

from flask import Flask

from crm import audit
from crm.analytics import recorder
from crm.extensions import db
from crm.integrations import service
from crm.models import Integration, User
from crm.net import OutboundError
from crm.operations.failures import describe_failure
from crm.operations.resolver import target_for
from crm.providers.base import CRMError
from crm.providers.registry import get_provider
from crm.webhooks import service as webhooks


@service.integration_saved.connect
def provision_after_save(_app: Flask, owner: User, integration: Integration) -> None:
    provision(owner, integration)


def provision(owner: User, integration: Integration) -> str | None:
    """Provision a saved or activated integration; records and answers a problem, if any."""
    provider = get_provider(integration.provider)
    if not integration.is_active or not provider.wants_provisioning(integration.configuration or {}):
        return None
    problem, outcome, started = None, "ok", time.perf_counter()
    try:
        # A save waits for this: one deadline for every call and retry (at most 15 s from a web request).
        target = target_for(owner, integration, "provisioning")
        inbound_url = webhooks.inbound_url(integration)
        target.connection.provision(integration.configuration or {}, inbound_url)
        integration.remote = dict(target.connection.remote)
        issued = getattr(target.connection, "issued", {})
        if issued.get("agent_bot_secret"):
            webhooks.set_bot_secret(integration, issued["agent_bot_secret"])
    except (OutboundError, CRMError) as exc:
        problem, outcome = describe_failure(exc, provider.name), exc.outcome
    recorder.record("provision", integration.id, owner.id, outcome, (time.perf_counter() - started) * 1000,
                    provider=provider.id)  # fmt: skip
    if problem:
        integration.provision_message = f"Setup incomplete: {problem}"
    elif "agent_bots" in provider.features and (integration.configuration or {}).get("auto_create_bots") and (
        why := webhooks.public_base_problem()
    ):
        integration.provision_message = f"The agent bot cannot send its events to the platform: {why}"
    else:
        integration.provision_message = None
    audit.record(owner.id, "provision", integration, "failed" if problem else "ok")
    db.session.commit()
    return problem
