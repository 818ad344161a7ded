"""What to do next, per Test Connection outcome: the setup guide's troubleshooting, in short."""

from __future__ import annotations

ADVICE: dict[str, list[str]] = {
    "invalid_url": ["Enter the full address, starting with https://, e.g. https://app.chatwoot.com."],
    "blocked_destination": [
        "Use the address your CRM is reachable at from the internet.",
        "A CRM on a private network needs the operator to allow it (CRM_ALLOW_PRIVATE_HOSTS).",
    ],
    "dns_error": ["Check the spelling of the host name.", "A brand-new domain can take a while to resolve."],
    "unreachable": [
        "Check that the server is running and the address and port are right.",
        "A firewall may block connections from this platform.",
    ],
    "timeout": ["The server may be overloaded or behind a slow proxy: try again in a few minutes."],
    "tls_error": [
        "The certificate must be valid for this host name and not expired.",
        "A private certificate authority must be trusted by the operator (CRM_CA_BUNDLE).",
    ],
    "redirected": ["Use the address the server redirected to, e.g. https:// instead of http://, or without www."],
    "auth_failed": [
        "Copy the token again: Chatwoot → Profile Settings → Access Token.",
        "A token that was reset in Chatwoot stops working: paste the new one.",
    ],
    "account_not_found": [
        "The Account ID is the number after /app/accounts/ in your Chatwoot address.",
        "The token's user must be a member of that account.",
    ],
    "insufficient_permissions": [
        "Creating inboxes and agent bots needs an administrator's token.",
        "Or turn off Auto-create Inboxes and Auto-create Agent Bots.",
    ],
    "not_a_crm": [
        "Enter the address you open your CRM at, without /app/... or /api/... at the end.",
    ],
    "rate_limited": ["Wait a minute before testing again."],
    "server_error": ["Try again later; if it persists, check the CRM's status page or server logs."],
}


def advice_for(result) -> list[str]:
    if result is None or result.success:
        return []
    return ADVICE.get(result.outcome, [])
