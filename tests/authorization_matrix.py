"""Every route of the app, classified (the OWASP authorization-testing matrix, as data).

- public: anyone may call it;
- user: needs a session;
- owner: needs a session and acts on an integration of the session's user, named by its id in the URL;
- contact, run: the same for a contact, or a sync run.

A route missing here fails tests/test_authorization.py, so a new route cannot ship unclassified.
"""

MATRIX = {
    "static": "public",
    "auth.index": "public",
    "auth.login": "public",
    "auth.register": "public",
    "auth.logout": "user",
    "integrations.index": "user",
    "integrations.new": "user",
    "integrations.choose_provider": "user",
    "integrations.create": "user",
    "integrations.test_new": "user",
    "integrations.edit": "owner",
    "integrations.test_edit": "owner",
    "integrations.retest": "owner",
    "integrations.toggle": "owner",
    "integrations.delete": "owner",
    "integrations.delete_now": "owner",
    "integrations.make_primary": "owner",
    "integrations.history": "owner",
    "contacts.index": "user",
    "contacts.add": "user",
    "contacts.edit": "contact",
    "contacts.delete": "contact",
    "contacts.bulk_delete": "user",
    "contacts.import_csv": "user",
    "contacts.sync": "user",
    "contacts.sync_progress": "run",
    "contacts.message": "contact",
    "api.openapi": "public",
    "api.providers": "user",
    "api.list_integrations": "user",
    "api.list_contacts": "user",
    "api.create_integration": "user",
    "api.test_integration": "user",
    "api.get_integration": "owner",
    "api.update_integration": "owner",
    "api.delete_integration": "owner",
    "api.oauth_start": "user",
    "oauth.start_page": "user",
    "oauth.reconnect": "owner",
    "oauth.callback": "user",
    "webhooks.receive": "public",
    "webhooks.panel": "owner",
    "webhooks.register": "owner",
    "webhooks.unregister": "owner",
    "webhooks.rotate": "owner",
    "webhooks.send_test": "owner",
    "webhooks.settings": "owner",
    "api.get_webhooks": "owner",
    "api.register_webhook": "owner",
    "api.unregister_webhook": "owner",
    "api.rotate_webhook": "owner",
    "api.test_webhook": "owner",
    "api.get_schedule": "owner",
    "api.put_schedule": "owner",
    "schedules.edit_schedule": "owner",
    "schedules.preview": "owner",
    "schedules.settings": "user",
    "api.integration_analytics": "owner",
    "analytics.user_page": "user",
    "analytics.integration_page": "owner",
    "analytics.metrics": "public",  # a bearer token (METRICS_TOKEN), not a session; 404 while unset
    # team: acts on a team the session's user must be a member of (a non-member gets 404);
    # invitation: one addressed to the session's user's email (anyone else gets 404).
    "teams.index": "user",
    "teams.show": "team",
    "teams.invite": "team",
    "teams.accept": "invitation",
    "teams.decline": "invitation",
    "teams.remove_member": "team",
    "teams.share": "team",
    "teams.unshare": "team",
    "teams.designate": "team",
    "api.list_teams": "user",
    "api.create_team": "user",
    "api.get_team": "team",
    "api.invite": "team",
    "api.my_invitations": "user",
    "api.accept_invitation": "invitation",
    "api.decline_invitation": "invitation",
    "api.remove_member": "team",
    "api.set_member_role": "team",
    "api.share_integration": "team",
    "api.unshare_integration": "team",
    "api.designate_integration": "team",
}

# A body each state-changing route accepts, so that a refusal proves the check and not bad input.
BODIES = {
    "api.create_integration": {"name": "x", "type": "CRM", "configuration": {"provider": "CHATWOOT"}},
    "api.test_integration": {"type": "CRM", "configuration": {"provider": "CHATWOOT"}},
    "api.update_integration": {"name": "pwned", "isActive": False},
    "api.oauth_start": {"name": "x", "type": "CRM", "configuration": {"provider": "CHATWOOT"}},
    "api.put_schedule": {"kind": "hourly"},
    "schedules.edit_schedule": {"kind": "hourly"},
    "schedules.settings": {"timezone": "Europe/Berlin"},
    "integrations.edit": {"name": "pwned", "base_url": "https://chat.example.com", "account_id": "7"},
    "integrations.test_edit": {"name": "pwned", "base_url": "https://chat.example.com", "account_id": "7"},
    "api.create_team": {"name": "pwned"},
    "api.invite": {"email": "mallory@example.com"},
    "api.set_member_role": {"role": "owner"},
    "api.share_integration": {"integrationId": "00000000-0000-4000-8000-000000000000"},
    "api.designate_integration": {"integrationId": None},
    "teams.index": {"name": "pwned"},
    "teams.invite": {"email": "mallory@example.com"},
}


def url_for_rule(rule, integration_id="00000000-0000-4000-8000-000000000000"):
    values = {
        "integration_id": integration_id,
        "provider_id": "CHATWOOT",
        "filename": "app.css",
        "contact_id": integration_id,
        "run_id": integration_id,
        "token": "unknown-webhook-token",
        "team_id": integration_id,
        "invitation_id": integration_id,
        "user_id": 999999,
    }
    return rule.build({arg: values[arg] for arg in rule.arguments}, append_unknown=False)[1]


def send(client, rule, method, url, csrf=None, body=None):
    """Call a route as its own clients do: JSON for the API, form fields for pages."""
    headers = {"X-CSRFToken": csrf} if csrf else {}
    body = body if body is not None else BODIES.get(rule.endpoint)
    if rule.endpoint.startswith("api."):
        return client.open(url, method=method, json=body, headers=headers)
    return client.open(url, method=method, data=body or {}, headers=headers)

# State-changing routes without a session, CSRF token or rate limit, and why.
CSRF_EXEMPT = {"webhooks.receive": "called by CRMs; each delivery is verified per provider instead"}
LIMIT_EXEMPT = {"webhooks.receive": "a CRM's burst must not be refused; unverified deliveries run nothing"}
