"""Response helpers shared by the pages and the JSON API (nothing htmx-specific here)."""

from __future__ import annotations


def no_store(response):
    """For blueprints whose answers describe stored credentials or contacts: never cached."""
    response.headers["Cache-Control"] = "no-store"
    return response
