"""Every route of the app, classified (the OWASP authorization-testing matrix, as data).

- public: anyone may call it;
- user: needs a session;
- owner: needs a session and acts on an object of the session's user, named by an id in the URL.

A route missing here fails tests/test_authorization.py, so a new route cannot ship unclassified.
"""

MATRIX = {
    "static": "public",
    "auth.index": "public",
    "auth.login": "public",
    "auth.register": "public",
    "auth.logout": "user",
    "integrations.index": "user",
    "api.openapi": "public",
    "api.providers": "user",
    "api.list_integrations": "user",
    "api.create_integration": "user",
    "api.test_integration": "user",
    "api.get_integration": "owner",
    "api.update_integration": "owner",
    "api.delete_integration": "owner",
}

# A body each state-changing route accepts, so that a refusal proves the check and not bad input.
BODIES = {
    "api.create_integration": {"name": "x", "type": "CRM", "configuration": {"provider": "CHATWOOT"}},
    "api.test_integration": {"type": "CRM", "configuration": {"provider": "CHATWOOT"}},
    "api.update_integration": {"name": "pwned", "isActive": False},
}
