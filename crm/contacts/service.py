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
from flask import current_app
from sqlalchemy import delete, func, insert, or_, select, update

from crm.extensions import db
from crm.models import Contact, User, find_owned, natural_sort_key, utcnow
from crm.providers.base import unsafe_character_problem

PHONE_SEPARATORS = re.compile(r"[\s().-]")
E164 = re.compile(r"^\+[1-9]\d{1,14}$")
CSV_COLUMNS = ("name", "email", "phone")
SEPARATORS = {",": "commas", ";": "semicolons", "\t": "tabs"}
PER_PAGE = 50
MAX_PER_PAGE = 100


class ContactNotFound(LookupError):
    pass


class ContactLimitReached(ValueError):
    """The owner already keeps the most contacts one user may have."""

    def __init__(self, limit: int):
        super().__init__(f"You have {limit:,} contacts, the most one account can keep: delete some before adding more.")
        self.limit = limit


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
    for key, value in (("name", name), ("email", email), ("phone", phone)):
        problem = unsafe_character_problem(value or "")
        if problem:
            errors[key] = problem
            if key == "email":
                email = None  # no point validating it further
            elif key == "phone":
                phone = None
    if email:
        try:
            email = validate_email(email, check_deliverability=False).normalized.lower()
        except EmailNotValidError:
            errors["email"] = "Enter a valid email address, e.g. ana@example.com."
    if phone and "phone" not in errors:
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
    query = select(Contact).where(Contact.user_id == owner.id).order_by(Contact.sort_key, Contact.id)
    return list(db.session.scalars(query))


def list_contacts_page(
    owner: User, page: int, per_page: int = PER_PAGE, search: str | None = None
) -> tuple[list[Contact], int]:
    """One page (numbered from 1) of the owner's contacts in natural name order, and how many match in all.

    `search` matches anywhere in the name, email or phone, case-insensitively. The order is stable
    (name key, then id), so pages neither repeat nor skip a contact."""
    per_page = max(1, min(int(per_page), MAX_PER_PAGE))
    page = max(1, int(page))
    conditions = [Contact.user_id == owner.id]
    term = (search or "").strip().casefold()
    if term:
        conditions.append(
            or_(
                func.lower(Contact.name).contains(term, autoescape=True),
                Contact.email.contains(term, autoescape=True),
                Contact.phone.contains(PHONE_SEPARATORS.sub("", term) or term, autoescape=True),
            )
        )
    total = db.session.scalar(select(func.count()).select_from(Contact).where(*conditions)) or 0
    query = (
        select(Contact)
        .where(*conditions)
        .order_by(Contact.sort_key, Contact.id)
        .offset((page - 1) * per_page)
        .limit(per_page)
    )
    return list(db.session.scalars(query)), total


def count_contacts(owner: User) -> int:
    return db.session.scalar(select(func.count()).select_from(Contact).where(Contact.user_id == owner.id)) or 0


def contact_limit() -> int:
    return int(current_app.config.get("CONTACTS_MAX_PER_USER", 100_000))


def import_limit_bytes() -> int:
    return int(current_app.config.get("CONTACTS_IMPORT_MAX_BYTES", 5 * 1024 * 1024))


def describe_bytes(size: int) -> str:
    """5242880 -> "5 MiB": the import limit as the pages and the CLI state it."""
    for unit, factor in (("MiB", 1024 * 1024), ("KiB", 1024)):
        if size >= factor:
            return f"{size / factor:g} {unit}"
    return f"{size} bytes"


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
    values = clean_contact(raw)
    if count_contacts(owner) >= contact_limit():
        raise ContactLimitReached(contact_limit())
    contact = Contact(id=str(uuid.uuid4()), user_id=owner.id, **values)
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


def owned_contacts(owner: User, contact_ids: Iterable[object]) -> list[Contact]:
    """The owner's contacts among these ids, in name order; ids of others' contacts or of none are ignored."""
    keys = {key for key in (_uuid_or_none(i) for i in contact_ids) if key}
    if not keys:
        return []
    query = (
        select(Contact)
        .where(Contact.user_id == owner.id, Contact.id.in_(sorted(keys)))
        .order_by(Contact.sort_key, Contact.id)
    )
    return list(db.session.scalars(query))


def delete_contacts(owner: User, contact_ids: Iterable[object]) -> int:
    """Delete the owner's contacts among these ids; answers how many went."""
    keys = [c.id for c in owned_contacts(owner, contact_ids)]
    if keys:
        db.session.execute(delete(Contact).where(Contact.user_id == owner.id, Contact.id.in_(keys)))
        db.session.commit()
    return len(keys)


def _uuid_or_none(value: object) -> str | None:
    try:
        return str(uuid.UUID(str(value)))
    except ValueError:
        return None


@dataclass
class ImportReport:
    imported: int = 0  # new contacts
    updated: int = 0  # rows that matched a contact already there (by email, then phone)
    unchanged: int = 0
    skipped: int = 0  # good rows not added because the per-user limit was reached
    limit: int = 0
    errors: list[tuple[int, str]] = field(default_factory=list)  # (line number, what is wrong)


def detect_separator(first_line: str) -> str | None:
    """The separator whose split of the header names the most of our columns; None when none does."""
    best, best_count = None, 0
    for separator in SEPARATORS:
        names = {part.strip().strip('"').lower() for part in first_line.split(separator)}
        count = len(names & set(CSV_COLUMNS))
        if count > best_count:
            best, best_count = separator, count
    return best


def separator_found(sample: str) -> str | None:
    """For the error message: the separator this file seems to use, whatever it is."""
    try:
        return csv.Sniffer().sniff(sample).delimiter
    except csv.Error:
        return None


def import_csv(owner: User, text: str) -> ImportReport:
    """Import `name,email,phone` rows (separated by commas, semicolons or tabs). A row whose email, else
    phone, matches one of the owner's contacts updates it; others are added up to the per-user limit.
    Bad rows are reported by line number; good rows are kept."""
    report = ImportReport(limit=contact_limit())
    text = text.lstrip("\ufeff")
    first_line = text.split("\n", 1)[0]
    separator = detect_separator(first_line)
    if separator is None:
        found = separator_found(text[:4096])
        hint = f" This file seems to separate them with {found!r}." if found and found not in SEPARATORS else ""
        report.errors.append(
            (
                1,
                "The first line must name the columns name, email and phone, separated by commas, "
                f"semicolons or tabs.{hint}",
            )
        )
        return report
    reader = csv.DictReader(io.StringIO(text), delimiter=separator)
    reader.fieldnames = [h.strip().lower() for h in reader.fieldnames or []]
    rows: list[tuple[int, dict[str, Any], set[str]]] = []
    try:
        for row in reader:
            raw = {k: row.get(k) for k in CSV_COLUMNS}
            try:
                given = {k for k, v in raw.items() if isinstance(v, str) and v.strip()}
                rows.append((reader.line_num, clean_contact(raw), given))
            except ContactInvalid as exc:
                report.errors.append((reader.line_num, "; ".join(f"{k}: {v}" for k, v in exc.fields.items())))
    except csv.Error as exc:
        line = reader.line_num + 1
        if "field larger than field limit" in str(exc):
            problem = f"A field is longer than {csv.field_size_limit():,} characters; the import stopped here."
        else:
            problem = f"This line cannot be read as CSV ({exc}); the import stopped here."
        report.errors.append((line, problem))
    merge_contacts(owner, rows, report)
    return report


def merge_contacts(owner: User, rows: list[tuple[int, dict[str, Any], set[str]]], report: ImportReport) -> None:
    """Update the owner's contacts that rows match (email first, then phone), add the rest up to the limit.

    Plain rows and executemany statements, not ORM objects: an import may touch 100,000 contacts."""
    columns = (Contact.id, Contact.name, Contact.email, Contact.phone)
    existing = [row._asdict() for row in db.session.execute(select(*columns).where(Contact.user_id == owner.id))]
    by_email = {c["email"]: c for c in existing if c["email"]}
    by_phone = {c["phone"]: c for c in existing if c["phone"]}
    room = max(0, report.limit - len(existing))
    new: list[dict[str, Any]] = []
    new_ids: set[str] = set()
    changed: dict[str, dict[str, Any]] = {}
    for _line, values, given in rows:
        match = by_email.get(values["email"]) if values["email"] else None
        if match is None and values["phone"]:
            match = by_phone.get(values["phone"])
        if match is None:
            if room <= 0:
                report.skipped += 1
                continue
            room -= 1
            contact = {"id": str(uuid.uuid4()), **values}
            new.append(contact)
            new_ids.add(contact["id"])
        else:
            contact = match
            # A blank cell keeps what is stored; a given one replaces it.
            changes = {k: v for k, v in values.items() if k in given and contact[k] != v}
            contact.update(changes)
            if contact["id"] in new_ids:
                pass  # the file named this new contact twice: it is added once, with the later values
            elif changes:
                changed[contact["id"]] = contact
            elif contact["id"] not in changed:
                report.unchanged += 1
        if contact["email"]:
            by_email[contact["email"]] = contact
        if contact["phone"]:
            by_phone[contact["phone"]] = contact
    now = utcnow()
    updates = list(changed.values())
    for start in range(0, len(new), 1000):
        batch = new[start : start + 1000]
        db.session.execute(
            insert(Contact),
            [
                {
                    **c,
                    "user_id": owner.id,
                    "sort_key": natural_sort_key(c["name"]),
                    "created_at": now,
                    "updated_at": now,
                }
                for c in batch
            ],
        )
    for start in range(0, len(updates), 1000):
        batch = updates[start : start + 1000]
        db.session.execute(
            update(Contact),  # by primary key; every id here was read for this owner above
            [{**c, "sort_key": natural_sort_key(c["name"]), "updated_at": now} for c in batch],
        )
    db.session.commit()
    report.imported = len(new)
    report.updated = len(updates)


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
