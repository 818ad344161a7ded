"""Inbound webhooks: receive, verify and act on CRM events, and manage them from the card.

Importing this package loads its tables but no routes (the operations layer uses its service); the app
factory registers `crm.webhooks.routes.bp`."""

from crm.webhooks import models  # noqa: F401  (its tables belong to the metadata)
