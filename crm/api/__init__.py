from flask import Blueprint

bp = Blueprint("api", __name__, url_prefix="/api")

from crm.api import routes  # noqa: E402, F401
from crm.schedules import api as schedules_api  # noqa: E402, F401  (its routes join this blueprint)
from crm.teams import api as teams_api  # noqa: E402, F401  (its routes join this blueprint)
