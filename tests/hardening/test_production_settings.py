"""ENVIRONMENT=production refuses to start on missing or placeholder secrets and on http, in
one line that names each variable and never shows a secret; and it never starts the sandbox."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from reflector.sandbox.defaults import SANDBOX_API_KEY, SANDBOX_WEBHOOK_SECRET
from reflector.security import is_placeholder
from reflector.settings import ConfigError, Settings, load_settings
from tests.hardening.conftest import PRODUCTION, PRODUCTION_SECRETS
from tests.processes import reflector_bin

SECRETS = list(PRODUCTION_SECRETS)


def load(tmp_path: Path, **values: str) -> Settings:
    env = tmp_path / "production.env"
    env.write_text("".join(f"{name}={value}\n" for name, value in values.items()))
    return load_settings(_env_file=env)


def refusal(tmp_path: Path, **values: str) -> str:
    with pytest.raises(ConfigError) as caught:
        load(tmp_path, **values)
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith("Configuration error: ")
    return message


def test_real_looking_secrets_and_https_start(tmp_path: Path) -> None:
    settings = load(tmp_path, **PRODUCTION)
    assert settings.ENVIRONMENT.value == "production"


def test_development_accepts_anything(tmp_path: Path) -> None:
    settings = load(tmp_path, WHEREBY_API_KEY="change-me", WHEREBY_WEBHOOK_SECRET="short")
    assert settings.WHEREBY_API_KEY is not None


def test_nothing_set_names_every_variable_and_what_to_do(tmp_path: Path) -> None:
    message = refusal(tmp_path, ENVIRONMENT="production")
    for name in SECRETS:
        assert f"{name} is not set (set it to " in message, message
    assert "BASE_URL is http://127.0.0.1:1250/ (set it to the https:// address" in message


def _example_secret_values(repo_root: Path) -> set[str]:
    example = (repo_root / ".env.example").read_text()
    pairs = re.findall(r"^#?\s*([A-Z][A-Z0-9_]+)=(.*)$", example, re.MULTILINE)
    return {
        value.strip()
        for name, value in pairs
        if value.strip() and re.search(r"KEY|SECRET|TOKEN|PASSWORD", name)
    }


PLACEHOLDERS = [
    SANDBOX_API_KEY,
    SANDBOX_WEBHOOK_SECRET,
    "change-me",
    "CHANGEME",
    "change_me_please",
    "placeholder",
    "example",
    "my-example-key-0123456789",
    "AKIAIOSFODNN7EXAMPLE",
    "secret",
    "Secret!",
    "xxx",
    "xxxxxxxx-xxxx-xxxx",
    "<your-api-key>",
    "your-whereby-key",
    "0000000000000000",
]


@pytest.mark.parametrize("value", PLACEHOLDERS)
@pytest.mark.parametrize("variable", SECRETS)
def test_placeholders_are_refused(tmp_path: Path, variable: str, value: str) -> None:
    message = refusal(tmp_path, **{**PRODUCTION, variable: value})
    assert f"{variable} is a placeholder value (set it to " in message, message
    # Neither quoted nor echoed back the way other settings' bad values are.
    assert repr(value) not in message
    assert "(got " not in message
    for other in SECRETS:
        if other != variable:
            assert other not in message


def test_every_secret_value_in_env_example_is_a_placeholder(repo_root: Path) -> None:
    # Copying .env.example into production must not pass for configured.
    values = _example_secret_values(repo_root)
    assert values, ".env.example shows no example secret; widen this test's pattern"
    assert [value for value in values if not is_placeholder(value)] == []


@pytest.mark.parametrize(
    "value",
    [
        PRODUCTION_SECRETS["WHEREBY_API_KEY"],
        # A Whereby key is a JWT: long, base64url, letters of every kind.
        "eyJhbGciOiJIUzI1NiJ9.eyJpc3MiOiJodHRwczovL2FjY291bnRzLndoZXJlYnkuY29tIn0.x9Qz",
        "wJalrXUtnFEMI/K7MDENG/bPxRfiCYzzzKEY",
    ],
)
def test_real_values_are_not_placeholders(value: str) -> None:
    assert not is_placeholder(value)


def test_a_short_webhook_secret_is_refused(tmp_path: Path) -> None:
    message = refusal(tmp_path, **{**PRODUCTION, "WHEREBY_WEBHOOK_SECRET": "k5jH8dF2gB6cN9m"})
    assert "WHEREBY_WEBHOOK_SECRET is shorter than 16 characters" in message
    assert "k5jH8dF2gB6cN9m" not in message


def test_http_base_url_and_the_sandbox_are_refused(tmp_path: Path) -> None:
    message = refusal(
        tmp_path,
        **{**PRODUCTION, "BASE_URL": "http://reflector.internal", "WHEREBY_SANDBOX": "true"},
    )
    assert "BASE_URL is http://reflector.internal/ (set it to the https:// address" in message
    assert "WHEREBY_SANDBOX is true" in message
    for name in SECRETS:
        assert name not in message


def test_serve_refuses_to_start_and_says_why(tmp_path: Path) -> None:
    """The real command: exit 2, the one line on stderr, no sandbox, no secret."""
    env_file = tmp_path / "production.env"
    values = {**PRODUCTION, "WHEREBY_API_KEY": "", "DATA_DIR": str(tmp_path / "data")}
    env_file.write_text("".join(f"{name}={value}\n" for name, value in values.items()))
    done = subprocess.run(
        [reflector_bin(), "--env-file", str(env_file), "serve", "--port", "9"],
        cwd=tmp_path,
        env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2, done.stderr
    assert done.stderr.startswith("Configuration error: settings: ENVIRONMENT=production, but ")
    assert "WHEREBY_API_KEY is not set" in done.stderr
    assert "sandbox" not in done.stderr.lower().replace("whereby_sandbox", "")
    for secret in PRODUCTION_SECRETS.values():
        assert secret not in done.stderr + done.stdout
    assert not (tmp_path / "data").exists()
