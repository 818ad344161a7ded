"""Accounts: registration, password checks. No `request` in here."""

from __future__ import annotations

from flask import current_app
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from werkzeug.security import check_password_hash, generate_password_hash

from crm.extensions import db
from crm.models import User

MIN_PASSWORD_LENGTH = 10


class AccountError(ValueError):
    def __init__(self, field: str, message: str):
        super().__init__(message)
        self.field = field
        self.message = message


def normalize_email(email: str) -> str:
    return email.strip().lower()


def hash_password(password: str) -> str:
    return generate_password_hash(password, method=current_app.config["PASSWORD_HASH_METHOD"])


def find_user(email: str) -> User | None:
    return db.session.scalars(select(User).where(User.email == normalize_email(email))).first()


def create_user(email: str, password: str) -> User:
    email = normalize_email(email)
    if len(password) < MIN_PASSWORD_LENGTH:
        raise AccountError("password", f"Use at least {MIN_PASSWORD_LENGTH} characters.")
    if find_user(email) is not None:
        raise AccountError("email", "An account with this email already exists: log in instead.")
    user = User(email=email, password_hash=hash_password(password))
    db.session.add(user)
    try:
        db.session.commit()
    except IntegrityError:  # registered at the same moment by another request
        db.session.rollback()
        raise AccountError("email", "An account with this email already exists: log in instead.") from None
    return user


def authenticate(email: str, password: str) -> User | None:
    """The user whose password this is, or None. Unknown emails cost the same time as wrong passwords."""
    user = find_user(email)
    if user is None:
        check_password_hash(_dummy_hash(), password)
        return None
    if not check_password_hash(user.password_hash, password):
        return None
    if not user.password_hash.startswith(current_app.config["PASSWORD_HASH_METHOD"] + "$"):
        # Stored under older, weaker parameters: upgrade while we hold the password.
        user.password_hash = hash_password(password)
        db.session.commit()
    return user


def _dummy_hash() -> str:
    cache = current_app.extensions.setdefault("crm_dummy_hash", {})
    method = current_app.config["PASSWORD_HASH_METHOD"]
    if method not in cache:
        cache[method] = generate_password_hash("not-a-real-password", method=method)
    return cache[method]
