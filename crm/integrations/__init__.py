from flask import Blueprint

bp = Blueprint("integrations", __name__, url_prefix="/dashboard/integrations")

from crm.integrations import routes  # noqa: E402, F401
