"""Hardening tests: credentials that pass the production checks, and SQLite only where the
database is not what is tested (headers, CORS)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.conftest import Database
from tests.recordings.conftest import aws_env, moto_server

__all__ = ["aws_env", "moto_server"]

# Real-looking and distinctive: a test that greps logs for them finds nothing by chance.
PRODUCTION_SECRETS = {
    "WHEREBY_API_KEY": "wbk-Q7vR2mX9pL4sT8nW3yZ6",
    "WHEREBY_WEBHOOK_SECRET": "whs-K5jH8dF2gB6cN9mQ4rT1",
    "AWS_WHEREBY_ACCESS_KEY_ID": "AKIA4R7T2Y9U3I6O1P5Q",
    "AWS_WHEREBY_ACCESS_KEY_SECRET": "aws-V3bN6mK9jH2gF5dS8aQ1wE4rT7yU0iO",
}
PRODUCTION = {
    "ENVIRONMENT": "production",
    "BASE_URL": "https://reflector.example.org",
    **PRODUCTION_SECRETS,
}


@pytest.fixture
def sqlite_database(tmp_path: Path, _sqlite_template: Path) -> Database:
    path = tmp_path / "reflector.sqlite3"
    shutil.copyfile(_sqlite_template, path)
    return Database("sqlite", f"sqlite+aiosqlite:///{path}")
