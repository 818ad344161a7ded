"""Contacts: add, edit, delete, import; Sync to CRM with live progress; Send message."""

from __future__ import annotations

from flask import Blueprint, abort, flash, redirect, request, url_for
from flask_login import current_user, login_required
from werkzeug.exceptions import RequestEntityTooLarge

from crm import limits
from crm.contacts import service
from crm.contacts.forms import ContactForm, ImportForm, MessageForm
from crm.htmx import poll, render, swap_or_redirect
from crm.http import no_store
from crm.integrations import service as integrations_service
from crm.net import OutboundError
from crm.operations import jobs
from crm.operations.failures import describe_failure
from crm.operations.messages import send_message
from crm.operations.resolver import NoCRMConfigured, source_for
from crm.providers.base import CONTROL_CHARACTERS, CRMError


def owned(contact_id: str):
    try:
        return service.get_contact(current_user, contact_id)
    except service.ContactNotFound:
        abort(404)


def search_term(values=None) -> str:
    """?q= (or the form's q), without control characters: they match no contact, and a NUL breaks a
    PostgreSQL query. The query string by default: the form may be too large to read."""
    values = request.args if values is None else values
    return CONTROL_CHARACTERS.sub("", values.get("q", "")).strip()[:100]


def listing() -> dict:
    """The page of the list the query string asks for (?page=, ?q=), clamped to pages that exist."""
    search = search_term()
    number = request.args.get("page", 1, type=int) or 1
    contacts, total = service.list_contacts_page(current_user, number, service.PER_PAGE, search)
    pages = max(1, -(-total // service.PER_PAGE))
    if number > pages:
        number = pages
        contacts, total = service.list_contacts_page(current_user, number, service.PER_PAGE, search)
    return {
        "contacts": contacts,
        "total": total,
        "page_number": max(1, number),
        "pages": pages,
        "q": search,
        "crm_names": crm_names(current_user),
    }


def crm_names(owner) -> dict[str | None, str]:
    """What each contact's per-CRM state is labelled with: the integration's name (None: the platform's)."""
    return {None: "Platform CRM", **{i.id: i.name for i in integrations_service.list_integrations(owner)}}


def page(form=None, import_form=None, report=None, status: int = 200):
    return render(
        "contacts/index.html",
        "contacts/_list.html",
        status,
        form=form or ContactForm(),
        import_form=import_form or ImportForm(),
        report=report,
        run=jobs.latest_run(current_user),
        source=source_for(current_user),
        **listing(),
    )


bp = Blueprint("contacts", __name__, url_prefix="/contacts")
bp.after_request(no_store)


@bp.get("")
@login_required
def index():
    return page()


@bp.post("")
@login_required
@limits.write
def add():
    form = ContactForm()
    saved = save(form, lambda data: f"{service.create_contact(current_user, data).name} is added.")
    return saved or page(form=form, status=422)


def confirm_delete(contacts, action: str):
    """The confirmation step of every delete: it names what goes, and only its POST deletes."""
    return render(
        "contacts/confirm_delete.html",
        "contacts/confirm_delete.html",
        contacts=contacts,
        action=action,
        q=search_term(request.values),
        page_number=request.values.get("page", 1, type=int) or 1,
    )


def back_to_list():
    return redirect(url_for(".index", q=search_term(request.form) or None, page=request.form.get("page", type=int)))


def save(form, action):
    """Validate, run `action` (which answers the flash message), and go back to the list; None when
    the form has errors, which are then beside their fields."""
    if not form.validate_on_submit():
        return None
    try:
        message = action(form.data)
    except service.ContactInvalid as exc:
        for name, problem in exc.fields.items():
            form[name].errors = [*form[name].errors, problem]
        return None
    except service.ContactLimitReached as exc:
        form.form_errors.append(str(exc))
        return None
    flash(message, "success")
    return redirect(url_for(".index"))


@bp.route("/<contact_id>/edit", methods=["GET", "POST"])
@login_required
@limits.write
def edit(contact_id: str):
    contact = owned(contact_id)
    form = ContactForm(obj=contact)
    saved = save(form, lambda data: f"{service.update_contact(current_user, contact.id, data).name} is updated.")
    if saved:
        return saved
    status = 422 if form.errors or form.form_errors else 200
    return render("contacts/edit.html", "contacts/edit.html", status, contact=contact, form=form)


@bp.route("/<contact_id>/delete", methods=["GET", "POST"])
@login_required
@limits.write
def delete(contact_id: str):
    contact = owned(contact_id)
    if request.method == "GET":
        return confirm_delete([contact], url_for(".delete", contact_id=contact.id))
    service.delete_contact(current_user, contact.id)
    flash(f"{contact.name} is deleted.", "success")
    return back_to_list()


@bp.route("/delete", methods=["GET", "POST"])
@login_required
@limits.write
def bulk_delete():
    """GET: confirm the contacts ticked on the list (?ids=...); POST: delete them."""
    ids = request.values.getlist("ids")
    if request.method == "GET":
        contacts = service.owned_contacts(current_user, ids)
        if not contacts:
            flash("Tick the contacts to delete first.", "info")
            return redirect(url_for(".index", q=search_term() or None))
        return confirm_delete(contacts, url_for(".bulk_delete"))
    deleted = service.delete_contacts(current_user, ids)
    flash(f"{deleted:,} contact{'' if deleted == 1 else 's'} deleted.", "success")
    return back_to_list()


@bp.post("/import")
@login_required
@limits.contacts_import
def import_csv():
    form = ImportForm()
    if not form.validate_on_submit():
        return page(import_form=form, status=422)
    limit = service.import_limit_bytes()
    raw = form.file.data.read(limit + 1)
    if len(raw) > limit:
        return file_too_large(form)
    report = service.import_csv(current_user, raw.decode("utf-8-sig", errors="replace"))
    return page(report=report)


def file_too_large(form=None):
    form = form or ImportForm(formdata=None)
    limit = service.describe_bytes(service.import_limit_bytes())
    form.file.errors = [f"The file is larger than {limit}: split it into smaller files and import each."]
    return page(form=ContactForm(formdata=None), import_form=form, status=413)


@bp.errorhandler(RequestEntityTooLarge)
def request_too_large(error):
    """An upload over the app-wide limit is refused before the view runs: say so beside the file field."""
    if request.endpoint == "contacts.import_csv" and current_user.is_authenticated:
        return file_too_large()
    from crm import error_response  # the app-wide answer for every other case

    return error_response(413, "That request is too large.")


@bp.post("/sync")
@login_required
@limits.contacts_sync
def sync():
    run = jobs.start_sync(current_user)
    return swap_or_redirect(
        "contacts/_sync.html", url_for(".index"), "The sync started.", "info", run=run, source=source_for(current_user)
    )


@bp.get("/sync/<run_id>")
@login_required
def sync_progress(run_id: str):
    try:
        run = jobs.get_run(current_user, run_id)
    except jobs.SyncNotFound:
        abort(404)
    return poll("contacts/index.html", "contacts/_sync.html", run.finished, run=run, source=source_for(current_user))


@bp.route("/<contact_id>/message", methods=["GET", "POST"])
@login_required
@limits.send_message
def message(contact_id: str):
    contact = owned(contact_id)
    form = MessageForm()
    result, error = None, None
    if form.validate_on_submit():
        try:
            result = send_message(current_user, contact.id, form.text.data)
        except (NoCRMConfigured, CRMError, OutboundError, ValueError) as exc:
            error = describe_failure(exc)
    status = 422 if form.errors else 200
    return render(
        "contacts/message.html",
        "contacts/_message_result.html",
        status,
        contact=contact,
        form=form,
        result=result,
        error=error,
    )
