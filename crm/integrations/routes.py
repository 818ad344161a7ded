from flask import render_template
from flask_login import current_user, login_required

from crm.integrations import bp, service
from crm.providers import get_provider


@bp.get("")
@login_required
def index():
    integrations = service.list_integrations(current_user)
    response = render_template("integrations/index.html", integrations=integrations, provider_of=get_provider)
    return response, 200, {"Cache-Control": "no-store"}
