"""Chatwoot: customer conversations; the platform's primary CRM."""

from __future__ import annotations

import re
from typing import Any

from crm.providers.base import Field, Provider
from crm.providers.registry import register

# A pasted dashboard address, e.g. https://chat.example.com/app/accounts/3/inbox/1.
DASHBOARD_PATH = re.compile(r"/app(/.*)?$")
ACCOUNT_IN_PATH = re.compile(r"/app/accounts/(\d+)")


@register
class Chatwoot(Provider):
    id = "CHATWOOT"
    name = "Chatwoot"
    description = "Open-source customer engagement: inboxes, agent bots, contacts and conversations."
    icon = "chatwoot.svg"
    features = ("inboxes", "agent_bots", "contacts", "messages")
    docs_url = "https://www.chatwoot.com/developers/api/"
    config_fields = (
        Field(
            "base_url",
            "Chatwoot Base URL",
            type="url",
            required=True,
            placeholder="https://app.chatwoot.com",
            help="Chatwoot Cloud: https://app.chatwoot.com, or your own domain, e.g. https://chat.example.com.",
        ),
        Field(
            "account_id",
            "Account ID",
            type="number",
            required=True,
            placeholder="1",
            help="Chatwoot → Settings → Account; it is also the number after /app/accounts/ in the dashboard address.",
        ),
        Field(
            "api_key",
            "API Access Token",
            type="password",
            sensitive=True,
            required=True,
            max_length=256,
            help="Chatwoot → Profile Settings → Access Token.",
        ),
        Field(
            "auto_create_inboxes",
            "Auto-create Inboxes",
            type="checkbox",
            default=True,
            group="features",
            help="Create an API inbox for the platform's conversations (needs an administrator token).",
        ),
        Field(
            "auto_create_bots",
            "Auto-create Agent Bots",
            type="checkbox",
            default=True,
            group="features",
            help="Create an agent bot and attach it to that inbox (needs an administrator token).",
        ),
        Field(
            "sync_contacts",
            "Sync Contacts",
            type="checkbox",
            default=True,
            group="features",
            help="Keep your contacts in Chatwoot up to date.",
        ),
    )

    @classmethod
    def normalize(cls, values: dict[str, Any]) -> dict[str, Any]:
        base_url = values.get("base_url")
        if base_url:
            path_match = DASHBOARD_PATH.search(base_url)
            if path_match:
                account = ACCOUNT_IN_PATH.search(base_url)
                if account and "account_id" not in values:
                    values["account_id"] = int(account.group(1))
                values["base_url"] = base_url[: path_match.start()]
        return values
