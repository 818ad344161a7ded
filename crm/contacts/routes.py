"""Contacts: add, edit, delete, import; Sync to CRM with live progress; Send message."""

from __future__ import annotations

from flask import abort, flash, redirect, url_for
from flask_login import current_user, login_required

from crm.contacts import bp, service
from crm.contacts.forms import ContactForm, ImportForm, MessageForm
from crm.htmx import is_htmx, no_store, render
from crm.net import OutboundError
from crm.operations import jobs
from crm.operations.failures import describe_failure
from crm.operations.messages import send_message
from crm.operations.resolver import NoCRMConfigured, source_for
from crm.providers.base import CRMError

DONE = 286  # htmx stops polling on this status


def owned(contact_id: str):
    try:
        return service.get_contact(current_user, contact_id)
    except service.ContactNotFound:
        abort(404)


def page(form=None, import_form=None, report=None, status: int = 200):
    return render(
        "contacts/index.html",
        "contacts/index.html",
        status,
        contacts=service.list_contacts(current_user),
        form=form or ContactForm(),
        import_form=import_form or ImportForm(),
        report=report,
        run=jobs.latest_run(current_user),
        source=source_for(current_user),
    )


bp.after_request(no_store)


@bp.get("")
@login_required
def index():
    return page()


@bp.post("")
@login_required
def add():
    form = ContactForm()
    saved = save(form, lambda data: f"{service.create_contact(current_user, data).name} is added.")
    return saved or page(form=form, status=422)


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
    flash(message, "success")
    return redirect(url_for(".index"))


@bp.route("/<contact_id>/edit", methods=["GET", "POST"])
@login_required
def edit(contact_id: str):
    contact = owned(contact_id)
    form = ContactForm(obj=contact)
    saved = save(form, lambda data: f"{service.update_contact(current_user, contact.id, data).name} is updated.")
    if saved:
        return saved
    status = 422 if form.errors else 200
    return render("contacts/edit.html", "contacts/edit.html", status, contact=contact, form=form)


@bp.post("/<contact_id>/delete")
@login_required
def delete(contact_id: str):
    contact = owned(contact_id)
    service.delete_contact(current_user, contact.id)
    flash(f"{contact.name} is deleted.", "success")
    return redirect(url_for(".index"))


@bp.post("/import")
@login_required
def import_csv():
    form = ImportForm()
    if not form.validate_on_submit():
        return page(import_form=form, status=422)
    raw = form.file.data.read(service.MAX_IMPORT_BYTES + 1)
    if len(raw) > service.MAX_IMPORT_BYTES:
        form.file.errors = ["The file is larger than 5 MiB: split it."]
        return page(import_form=form, status=422)
    report = service.import_csv(current_user, raw.decode("utf-8-sig", errors="replace"))
    return page(report=report)


@bp.post("/sync")
@login_required
def sync():
    run = jobs.start_sync(current_user)
    if is_htmx():
        return render("contacts/index.html", "contacts/_sync.html", run=run, source=source_for(current_user))
    flash("The sync started.", "info")
    return redirect(url_for(".index"))


@bp.get("/sync/<run_id>")
@login_required
def sync_progress(run_id: str):
    try:
        run = jobs.get_run(current_user, run_id)
    except jobs.SyncNotFound:
        abort(404)
    status = DONE if run.finished and is_htmx() else 200
    return render("contacts/index.html", "contacts/_sync.html", status, run=run, source=source_for(current_user))


@bp.route("/<contact_id>/message", methods=["GET", "POST"])
@login_required
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
