from flask import Blueprint

bp = Blueprint("contacts", __name__, url_prefix="/contacts")

from crm.contacts import routes  # noqa: E402, F401
