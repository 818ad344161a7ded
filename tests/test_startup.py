"""The app refuses to start without valid secrets; the key generator needs none."""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from config import TestConfig
from crm import create_app
from crm.crypto import KeyConfigError, Keyring

FLASK = Path(sys.executable).with_name("flask")
ROOT = Path(__file__).resolve().parent.parent


def _env_without_keys() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("INTEGRATION_ENCRYPTION", "SECRET_KEY", "FLASK_"))}
    env["APP_ENV"] = "testing"
    return env


@pytest.mark.parametrize(
    ("key", "expected"),
    [
        (None, "INTEGRATION_ENCRYPTION_KEY environment variable is required"),
        ("", "INTEGRATION_ENCRYPTION_KEY environment variable is required"),
        ("ab" * 16, "INTEGRATION_ENCRYPTION_KEY must be 64 hexadecimal characters"),
        ("g" * 64, "INTEGRATION_ENCRYPTION_KEY must be 64 hexadecimal characters"),
    ],
)
def test_app_refuses_to_start_without_a_valid_key(key, expected):
    with pytest.raises(KeyConfigError, match=expected):
        create_app(TestConfig, {"INTEGRATION_ENCRYPTION_KEY": key})


def test_app_refuses_to_start_without_secret_key():
    with pytest.raises(KeyConfigError, match="SECRET_KEY"):
        create_app(TestConfig, {"SECRET_KEY": None, "INTEGRATION_ENCRYPTION_KEY": "00" * 32})


def test_flask_cli_refuses_to_serve_without_a_key(tmp_path):
    # An empty value is "set" for python-dotenv, so a developer's .env cannot fill it in here.
    env = _env_without_keys() | {"FLASK_APP": str(ROOT / "app.py"), "SECRET_KEY": "x", "INTEGRATION_ENCRYPTION_KEY": ""}
    result = subprocess.run(
        [str(FLASK), "routes"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode != 0
    assert "INTEGRATION_ENCRYPTION_KEY environment variable is required" in result.stderr


def test_generate_encryption_key_needs_no_key(tmp_path):
    result = subprocess.run(
        [str(FLASK), "generate-encryption-key"],
        cwd=tmp_path,  # no app.py, no .env here: the command must not need the app
        env=_env_without_keys(),
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    lines = result.stdout.splitlines()
    assert len(lines) == 1
    match = re.fullmatch(r"INTEGRATION_ENCRYPTION_KEY=([0-9a-f]{64})", lines[0])
    assert match
    Keyring.from_settings(match.group(1))  # usable as it is
    help_text = subprocess.run(
        [str(FLASK), "generate-encryption-key", "--help"],
        cwd=tmp_path,
        env=_env_without_keys(),
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout
    assert "INTEGRATION_ENCRYPTION_KEY" in help_text
