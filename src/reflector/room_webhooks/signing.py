"""Signatures of outgoing webhooks: `X-Reflector-Signature: t=<unix seconds>,v1=<hex
HMAC-SHA256>`, the scheme in reflector.signatures (the one Whereby's webhooks use), keyed by the
room's secret (the whole `whsec_...` string, as UTF-8)."""

from __future__ import annotations

import secrets

from reflector import signatures
from reflector.signatures import Verdict, Verification, compute, sign

SIGNATURE_HEADER = "X-Reflector-Signature"
EVENT_HEADER = "X-Reflector-Event"
DELIVERY_HEADER = "X-Reflector-Delivery"
SECRET_PREFIX = "whsec_"  # noqa: S105 (a label in front of each secret, not a secret)
# What a receiver should accept by default: the same 5 minutes most webhook senders document.
DEFAULT_TOLERANCE_SECONDS = 300


def new_secret() -> str:
    """A fresh signing secret: 32 random bytes, URL-safe, with a prefix that says what it is."""
    return SECRET_PREFIX + secrets.token_urlsafe(32)


def verify(
    body: bytes,
    header: str | None,
    secret: str,
    now: float,
    tolerance: float = DEFAULT_TOLERANCE_SECONDS,
) -> Verification:
    """What a receiver does: check the header against the raw body, the secret and its clock
    (`now` in unix seconds; `tolerance` seconds either way)."""
    return signatures.verify(body, header, secret, now, tolerance)


__all__ = [
    "DEFAULT_TOLERANCE_SECONDS",
    "DELIVERY_HEADER",
    "EVENT_HEADER",
    "SECRET_PREFIX",
    "SIGNATURE_HEADER",
    "Verdict",
    "Verification",
    "compute",
    "new_secret",
    "sign",
    "verify",
]
