"""A user's contacts: add, edit, delete, import from CSV. Owner-scoped like every other query."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import re
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from email_validator import EmailNotValidError, validate_email
from sqlalchemy import select

from crm.extensions import db
from crm.models import Contact, User, find_owned

PHONE_SEPARATORS = re.compile(r"[\s().-]")
E164 = re.compile(r"^\+[1-9]\d{1,14}$")
CSV_COLUMNS = ("name", "email", "phone")
MAX_IMPORT_BYTES = 5 * 1024 * 1024


class ContactNotFound(LookupError):
    pass


class ContactInvalid(ValueError):
    def __init__(self, fields: dict[str, str]):
        super().__init__("; ".join(f"{k}: {v}" for k, v in fields.items()))
        self.fields = fields


def clean_contact(raw: Mapping[str, Any]) -> dict[str, Any]:
    """Normalised values (email lower-cased, phone in E.164), or ContactInvalid naming each field."""
    errors: dict[str, str] = {}
    name = str(raw.get("name") or "").strip()
    email = str(raw.get("email") or "").strip().lower() or None
    phone = PHONE_SEPARATORS.sub("", str(raw.get("phone") or "")) or None
    if not name and not email:
        errors["name"] = "Enter a name or an email address."
    if len(name) > 255:
        errors["name"] = "Use at most 255 characters."
    if email:
        try:
            email = validate_email(email, check_deliverability=False).normalized.lower()
        except EmailNotValidError:
            errors["email"] = "Enter a valid email address, e.g. ana@example.com."
    if phone:
        if phone.startswith("00"):
            phone = "+" + phone[2:]
        if not E164.match(phone):
            errors["phone"] = "Use the international format with a +, e.g. +4930123456."
    if errors:
        raise ContactInvalid(errors)
    return {"name": name or (email or "").split("@")[0], "email": email, "phone": phone}


def content_hash(contact: Contact | Mapping[str, Any]) -> str:
    values = contact if isinstance(contact, Mapping) else {k: getattr(contact, k) for k in CSV_COLUMNS}
    raw = json.dumps([values.get("name"), values.get("email"), values.get("phone")], separators=(",", ":"))
    return hashlib.sha256(raw.encode()).hexdigest()


def list_contacts(owner: User) -> list[Contact]:
    query = select(Contact).where(Contact.user_id == owner.id).order_by(Contact.name, Contact.created_at)
    return list(db.session.scalars(query))


def get_contact(owner: User, contact_id: object) -> Contact:
    contact = find_owned(Contact, owner, contact_id)
    if contact is None:
        raise ContactNotFound(contact_id)
    return contact


def find_contact_by_email(owner: User, email: str) -> Contact:
    query = select(Contact).where(Contact.user_id == owner.id, Contact.email == email.strip().lower())
    contact = db.session.scalars(query).first()
    if contact is None:
        raise ContactNotFound(email)
    return contact


def create_contact(owner: User, raw: Mapping[str, Any]) -> Contact:
    contact = Contact(id=str(uuid.uuid4()), user_id=owner.id, **clean_contact(raw))
    db.session.add(contact)
    db.session.commit()
    return contact


def update_contact(owner: User, contact_id: object, raw: Mapping[str, Any]) -> Contact:
    contact = get_contact(owner, contact_id)
    for key, value in clean_contact(raw).items():
        setattr(contact, key, value)
    db.session.commit()
    return contact


def delete_contact(owner: User, contact_id: object) -> None:
    db.session.delete(get_contact(owner, contact_id))
    db.session.commit()


@dataclass
class ImportReport:
    imported: int = 0
    errors: list[tuple[int, str]] = field(default_factory=list)  # (line number, what is wrong)


def import_csv(owner: User, text: str) -> ImportReport:
    """Import `name,email,phone` rows. Bad rows are reported by line number; good rows are kept."""
    report = ImportReport()
    reader = csv.DictReader(io.StringIO(text.lstrip("\ufeff")))
    header = [h.strip().lower() for h in reader.fieldnames or []]
    if not set(header) & set(CSV_COLUMNS):
        report.errors.append((1, "The first line must name the columns: name,email,phone."))
        return report
    reader.fieldnames = header
    rows: list[dict[str, Any]] = []
    for row in reader:
        line = reader.line_num
        try:
            rows.append(clean_contact({k: row.get(k) for k in CSV_COLUMNS}))
        except ContactInvalid as exc:
            report.errors.append((line, "; ".join(f"{k}: {v}" for k, v in exc.fields.items())))
    add_contacts(owner, rows)
    report.imported = len(rows)
    return report


def add_contacts(owner: User, rows: Iterable[Mapping[str, Any]], batch: int = 1000) -> None:
    pending = []
    for row in rows:
        pending.append(Contact(id=str(uuid.uuid4()), user_id=owner.id, **row))
        if len(pending) >= batch:
            db.session.add_all(pending)
            db.session.commit()
            pending = []
    db.session.add_all(pending)
    db.session.commit()
