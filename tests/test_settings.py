from __future__ import annotations

import re
from pathlib import Path

import pytest

from reflector.settings import ConfigError, Settings, load_settings


def test_defaults(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    settings = load_settings(_env_file=None)
    assert str(settings.WHEREBY_API_URL) == "https://api.whereby.dev/v1"
    assert settings.SQS_POLLING_TIMEOUT_SECONDS == 60
    assert Path("./data") == settings.DATA_DIR
    expected = tmp_path / "data" / "reflector.sqlite3"
    assert settings.database_url == f"sqlite+aiosqlite:///{expected}"
    assert settings.WHEREBY_API_KEY is None
    assert settings.MAX_REQUEST_BODY_BYTES == 64 * 1024


def test_reads_env_file(tmp_path: Path) -> None:
    env = tmp_path / ".env"
    env.write_text(
        "WHEREBY_API_KEY=key-123\n"
        "WHEREBY_WEBHOOK_SECRET=whsec\n"
        "AWS_WHEREBY_ACCESS_KEY_ID=AKIA\n"
        "AWS_WHEREBY_ACCESS_KEY_SECRET=shh\n"
        "RECORDING_STORAGE_AWS_BUCKET_NAME=recordings/sub\n"
        "WHEREBY_API_URL=http://127.0.0.1:1251/v1\n"
        "AWS_PROCESS_RECORDING_QUEUE_URL=https://sqs.eu-west-1.amazonaws.com/1/q\n"
        "SQS_POLLING_TIMEOUT_SECONDS=15\n"
        "DATABASE_URL=postgres://u@db/reflector\n"
    )
    settings = load_settings(_env_file=env)
    assert settings.WHEREBY_API_KEY is not None
    assert settings.WHEREBY_API_KEY.get_secret_value() == "key-123"
    assert settings.RECORDING_STORAGE_AWS_BUCKET_NAME == "recordings/sub"
    assert str(settings.WHEREBY_API_URL) == "http://127.0.0.1:1251/v1"
    assert settings.SQS_POLLING_TIMEOUT_SECONDS == 15
    assert settings.database_url == "postgresql+asyncpg://u@db/reflector"
    assert settings.whereby_configured


def test_empty_values_mean_unset(tmp_path: Path) -> None:
    env = tmp_path / ".env"
    env.write_text("WHEREBY_API_KEY=\nDATABASE_URL=\n")
    settings = load_settings(_env_file=env)
    assert settings.WHEREBY_API_KEY is None
    assert settings.database_url.startswith("sqlite+aiosqlite:///")


@pytest.mark.parametrize(
    ("variable", "value", "words"),
    [
        ("SQS_POLLING_TIMEOUT_SECONDS", "soon", ["integer", "'soon'"]),
        ("SQS_POLLING_TIMEOUT_SECONDS", "0", ["greater than or equal to 1"]),
        ("WHEREBY_API_URL", "not a url", ["URL"]),
        ("BASE_URL", "ftp:/x", ["URL"]),
        ("DATABASE_URL", "mysql://x/y", ["postgresql+asyncpg://", "sqlite+aiosqlite://"]),
        ("LOG_LEVEL", "LOUD", ["LOUD"]),
        ("ENVIRONMENT", "staging", ["'development'", "'production'"]),
        ("MAX_REQUEST_BODY_BYTES", "10", ["1024"]),
    ],
)
def test_malformed_value_is_one_line_naming_the_variable(
    tmp_path: Path, variable: str, value: str, words: list[str]
) -> None:
    env = tmp_path / ".env"
    env.write_text(f"{variable}={value}\n")
    with pytest.raises(ConfigError) as caught:
        load_settings(_env_file=env)
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith(f"Configuration error: {variable}:")
    for word in words:
        assert word in message


def test_secrets_never_appear_in_errors_or_reprs(tmp_path: Path) -> None:
    env = tmp_path / ".env"
    env.write_text("WHEREBY_API_KEY=super-secret-key\nSQS_POLLING_TIMEOUT_SECONDS=x\n")
    with pytest.raises(ConfigError) as caught:
        load_settings(_env_file=env)
    assert "super-secret-key" not in str(caught.value)
    env.write_text("WHEREBY_API_KEY=super-secret-key\n")
    settings = load_settings(_env_file=env)
    assert "super-secret-key" not in repr(settings)
    assert "super-secret-key" not in str(settings.model_dump())


def _documented(text: str) -> set[str]:
    return set(re.findall(r"\b([A-Z][A-Z0-9_]{3,})\b", text))


def test_every_setting_is_documented(repo_root: Path) -> None:
    names = set(Settings.model_fields)
    example = (repo_root / ".env.example").read_text()
    example_names = set(re.findall(r"^#?\s*([A-Z][A-Z0-9_]+)=", example, re.MULTILINE))
    assert names <= example_names, f".env.example lacks {sorted(names - example_names)}"
    readme = _documented((repo_root / "README.md").read_text())
    assert names <= readme, f"README.md lacks {sorted(names - readme)}"


def test_env_example_values_are_valid(repo_root: Path, tmp_path: Path) -> None:
    """Every example value in .env.example, uncommented, is accepted: copying one is safe."""
    example = (repo_root / ".env.example").read_text()
    values = dict(re.findall(r"^#\s*([A-Z][A-Z0-9_]+)=(.+)$", example, re.MULTILINE))
    assert len(values) > 20
    # The example logo path names a file on the reader's server, not on this one.
    logo = tmp_path / "logo.png"
    logo.write_bytes(b"png")
    values["WHEREBY_BRAND_LOGO_PATH"] = str(logo)
    env = tmp_path / ".env"
    env.write_text("".join(f"{name}={value}\n" for name, value in values.items()))
    settings = load_settings(_env_file=env)
    wait = settings.SQS_POLLING_TIMEOUT_SECONDS
    assert wait == int(values["SQS_POLLING_TIMEOUT_SECONDS"])
    assert settings.database_url.startswith("postgresql+asyncpg://")
