"""Teams: users who share CRM integrations without sharing their secrets (issue #16)."""

from flask import Blueprint

bp = Blueprint("teams", __name__)

from crm.teams import routes  # noqa: E402, F401
