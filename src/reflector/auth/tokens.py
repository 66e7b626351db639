"""Token generation and hashing: random tokens, stored only as hashes."""

from __future__ import annotations

import hashlib
import secrets

TOKEN_PREFIX = "rfl_"  # noqa: S105 (a marker, not a secret)
_DISPLAY_CHARS = 10


def generate_token() -> str:
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def display_prefix(token: str) -> str:
    return token[:_DISPLAY_CHARS]
