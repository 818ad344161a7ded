"""Schedules (contacts sync on its own) and health checks (each connection tested on a timer):
what is due, claimed exactly once however many schedulers run, and what the card shows of it."""

from flask import Blueprint

bp = Blueprint("schedules", __name__)

from crm.schedules import routes  # noqa: E402, F401
