"""Contacts: the page (routes) and the owner-scoped store (service), which the operations layer uses.
Importing this package loads no routes; the app factory registers `crm.contacts.routes.bp`."""
