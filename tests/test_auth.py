"""Accounts: register, log in, log out, CSRF, password hashing, cookie flags, `flask users`."""

import re

import pytest
from werkzeug.security import generate_password_hash

from config import ProductionConfig
from crm import create_app
from crm.auth.service import find_user
from crm.extensions import db
from tests.conftest import PASSWORD, TEST_KEY


def csrf_from(page: str) -> str:
    return re.search(r'name="csrf-token" content="([^"]+)"', page).group(1)


def register(client, email="new@example.com", password=PASSWORD, confirm=None):
    token = csrf_from(client.get("/register").get_data(as_text=True))
    data = {"email": email, "password": password, "confirm": confirm or password, "csrf_token": token}
    return client.post("/register", data=data)


def test_register_logs_in_and_lands_on_integrations(client):
    response = register(client)
    assert response.status_code == 302
    assert response.headers["Location"].endswith("/dashboard/integrations")
    page = client.get("/dashboard/integrations")
    assert page.status_code == 200
    assert "new@example.com" in page.get_data(as_text=True)


@pytest.mark.parametrize(
    ("email", "password", "confirm", "message"),
    [
        ("not-an-email", PASSWORD, None, "Invalid email address"),
        ("x@example.com", "short", None, "at least 10"),
        ("x@example.com", PASSWORD, "something else entirely", "The passwords differ."),
        ("", PASSWORD, None, "This field is required."),
    ],
)
def test_register_shows_errors_beside_fields(client, email, password, confirm, message):
    response = register(client, email, password, confirm)
    assert response.status_code == 422
    assert message in response.get_data(as_text=True)


def test_email_is_unique_case_insensitively(client, alice):
    response = register(client, email="  ALICE@Example.COM ")
    assert response.status_code == 422
    assert "already exists" in response.get_data(as_text=True)


def test_login_is_case_insensitive_and_lands_on_integrations(client, alice):
    token = csrf_from(client.get("/login").get_data(as_text=True))
    response = client.post("/login", data={"email": "Alice@EXAMPLE.com", "password": PASSWORD, "csrf_token": token})
    assert response.status_code == 302
    assert response.headers["Location"].endswith("/dashboard/integrations")


def test_unknown_email_and_wrong_password_answer_identically(client, alice):
    def attempt(email, password):
        token = csrf_from(client.get("/login").get_data(as_text=True))
        response = client.post("/login", data={"email": email, "password": password, "csrf_token": token})
        body = re.sub(r'content="[^"]+"', "", response.get_data(as_text=True))  # the CSRF token differs
        body = re.sub(r'value="[^"]*"', "", body)
        return response.status_code, body

    assert attempt("alice@example.com", "wrong password!") == attempt("nobody@example.com", "wrong password!")


def test_login_requires_csrf_token(client, alice):
    response = client.post("/login", data={"email": "alice@example.com", "password": PASSWORD})
    assert response.status_code == 400


def test_logout_is_post_only_and_ends_the_session(client, auth, alice):
    auth.login()
    assert client.get("/logout").status_code == 405
    assert auth.logout().status_code == 302
    response = client.get("/dashboard/integrations")
    assert response.status_code == 302
    assert "/login" in response.headers["Location"]


def test_every_page_carries_the_csrf_meta_tag(client, auth, alice):
    for path in ("/login", "/register", "/nowhere"):
        assert 'name="csrf-token"' in client.get(path).get_data(as_text=True)
    auth.login()
    assert 'name="csrf-token"' in client.get("/dashboard/integrations").get_data(as_text=True)


def test_passwords_are_hashed_with_owasp_scrypt_parameters(app, alice):
    assert ProductionConfig.PASSWORD_HASH_METHOD == "scrypt:32768:8:3"  # N=2^15, r=8, p=3
    assert find_user("alice@example.com").password_hash.startswith(app.config["PASSWORD_HASH_METHOD"] + "$")
    assert PASSWORD not in find_user("alice@example.com").password_hash


def test_weaker_hashes_are_upgraded_at_login(app, client, auth, alice):
    alice.password_hash = generate_password_hash(PASSWORD, method="pbkdf2:sha256:1000")
    db.session.commit()
    auth.login()
    db.session.refresh(alice)
    assert alice.password_hash.startswith(app.config["PASSWORD_HASH_METHOD"] + "$")


def test_production_session_cookie_flags(database_url):
    app = create_app(
        ProductionConfig,
        {"SQLALCHEMY_DATABASE_URI": database_url, "INTEGRATION_ENCRYPTION_KEY": TEST_KEY, "SECRET_KEY": "prod-test"},
    )
    client = app.test_client()
    response = client.get("/login", base_url="https://localhost")
    cookie = response.headers["Set-Cookie"]
    assert cookie.startswith("__Host-session=")
    for flag in ("Secure", "HttpOnly", "SameSite=Lax", "Path=/"):
        assert flag in cookie
    assert "Domain" not in cookie


def test_users_create_prompts_twice(app, runner):
    result = runner.invoke(args=["users", "create", "Cli@Example.com"], input=f"{PASSWORD}\n{PASSWORD}\n")
    assert result.exit_code == 0, result.output
    assert "Repeat password" in result.output
    assert PASSWORD not in result.output
    assert find_user("cli@example.com") is not None


def test_users_create_password_stdin(app, runner):
    result = runner.invoke(args=["users", "create", "script@example.com", "--password-stdin"], input=f"{PASSWORD}\n")
    assert result.exit_code == 0, result.output
    assert find_user("script@example.com") is not None
    again = runner.invoke(args=["users", "create", "SCRIPT@example.com", "--password-stdin"], input=f"{PASSWORD}\n")
    assert again.exit_code != 0
    assert "already exists" in again.output


def test_users_create_help(runner):
    result = runner.invoke(args=["users", "create", "--help"])
    assert result.exit_code == 0
    assert "--password-stdin" in result.output
