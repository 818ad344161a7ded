"""Find or create the Chatwoot inbox and agent bot an integration needs. Idempotent: ids are kept
on the integration and looked up before anything is created, so saving twice creates nothing new."""

from __future__ import annotations

from typing import Any

from flask import current_app

from crm import audit
from crm.extensions import db
from crm.integrations import service
from crm.models import Integration, User
from crm.net import OutboundError
from crm.providers.base import CRMError, network_message
from crm.providers.chatwoot import ChatwootAPI

INBOX_NAME = "LocalBoxs"
BOT_NAME = "LocalBoxs Bot"
API_CHANNEL = "Channel::Api"


def find_or_create_inbox(api: ChatwootAPI, known_id: int | None) -> int:
    inboxes = (api.account_call("GET", "inboxes") or {}).get("payload") or []
    api_inboxes = [i for i in inboxes if isinstance(i, dict) and i.get("channel_type") == API_CHANNEL]
    for inbox in api_inboxes:
        if inbox.get("id") == known_id:
            return known_id
    for inbox in api_inboxes:
        if inbox.get("name") == INBOX_NAME:
            return int(inbox["id"])
    created = api.account_call("POST", "inboxes", json={"name": INBOX_NAME, "channel": {"type": "api"}})
    return int(created["id"])


def find_or_create_bot(api: ChatwootAPI, known_id: int | None) -> int:
    try:
        bots = api.account_call("GET", "agent_bots") or []
    except CRMError as exc:
        if exc.outcome == "account_not_found":
            raise CRMError(
                "account_not_found",
                "Chatwoot has no Agent Bots API here: the Account ID is wrong, or Chatwoot is older than 1.17. "
                "Check the Account ID, upgrade Chatwoot, or turn off Auto-create Agent Bots.",
            ) from None
        raise
    own = [b for b in bots if isinstance(b, dict) and not b.get("system_bot")]
    for bot in own:
        if bot.get("id") == known_id:
            return known_id
    for bot in own:
        if bot.get("name") == BOT_NAME:
            return int(bot["id"])
    created = api.account_call("POST", "agent_bots", json={"name": BOT_NAME, "description": "Replies for LocalBoxs"})
    return int(created["id"])


def attach_bot(api: ChatwootAPI, inbox_id: int, bot_id: int) -> None:
    current = (api.account_call("GET", "inboxes", inbox_id, "agent_bot") or {}).get("agent_bot") or {}
    if current.get("id") != bot_id:
        # Always send the id: a missing or null agent_bot DETACHES the current bot.
        api.account_call("POST", "inboxes", inbox_id, "set_agent_bot", json={"agent_bot": bot_id})


def provision_api(api: ChatwootAPI, remote: dict[str, Any], inboxes: bool, bots: bool) -> dict[str, Any]:
    remote = dict(remote)
    if inboxes or bots:
        remote["inbox_id"] = find_or_create_inbox(api, remote.get("inbox_id"))
    if bots:
        remote["agent_bot_id"] = find_or_create_bot(api, remote.get("agent_bot_id"))
        attach_bot(api, remote["inbox_id"], remote["agent_bot_id"])
    return remote


def provision(owner: User, integration: Integration) -> str | None:
    """Provision a saved or activated Chatwoot integration; records and answers a problem, if any."""
    config = integration.configuration or {}
    inboxes, bots = bool(config.get("auto_create_inboxes")), bool(config.get("auto_create_bots"))
    if integration.provider != "CHATWOOT" or not integration.is_active or not (inboxes or bots):
        return None
    live = service.live_configuration(owner, integration, purpose="provisioning")
    # A save waits for this: one deadline for every call and retry (at most 15 s from a web request).
    api = ChatwootAPI(
        service.outbound_client(),
        live["base_url"],
        live["account_id"],
        live["api_key"],
        deadline=service.web_deadline(),
        retry_base=current_app.config.get("CRM_RETRY_BASE_SECONDS", 1.0),
    )
    problem = None
    try:
        integration.remote = provision_api(api, integration.remote or {}, inboxes, bots)
    except OutboundError as exc:
        problem = network_message(exc.outcome, "Chatwoot", exc.detail)
    except CRMError as exc:
        problem = exc.message
    integration.provision_message = f"Setup incomplete: {problem}" if problem else None
    audit.record(owner.id, "provision", integration, "failed" if problem else "ok")
    db.session.commit()
    return problem
