"""Timestamped HMAC signatures, the scheme both Whereby's webhooks and Reflector's own
outgoing webhooks use, as pure functions: bytes, header, secret and time in; result out.

Header value: `t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>." + raw body>`. The timestamp is
signed too, so a receiver that checks it against its clock refuses replays.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from enum import StrEnum

_MAX_HEADER_LENGTH = 1024


class Verdict(StrEnum):
    ok = "ok"
    missing = "missing"  # no header
    malformed = "malformed"  # header present but not t=<int>,v1=<hex>
    mismatch = "mismatch"  # signature does not match the body and secret
    too_old = "too_old"  # t is further in the past than the tolerance
    too_new = "too_new"  # t is further in the future than the tolerance


@dataclass(frozen=True)
class Verification:
    verdict: Verdict
    timestamp: int | None = None

    @property
    def ok(self) -> bool:
        return self.verdict is Verdict.ok


def compute(body: bytes, secret: str, timestamp: int) -> str:
    message = str(timestamp).encode("ascii") + b"." + body
    return hmac.new(secret.encode("utf-8"), message, hashlib.sha256).hexdigest()


def sign(body: bytes, secret: str, timestamp: int) -> str:
    """The header value for `body` signed at `timestamp`."""
    return f"t={timestamp},v1={compute(body, secret, timestamp)}"


def parse_header(header: str) -> tuple[int, list[str]] | None:
    """(timestamp, v1 signatures) or None when the header is not in this format."""
    if len(header) > _MAX_HEADER_LENGTH:
        return None
    timestamp: int | None = None
    signatures: list[str] = []
    for part in header.split(","):
        key, sep, value = part.strip().partition("=")
        if not sep:
            return None
        if key == "t":
            if not value.isdigit() or timestamp is not None:
                return None
            timestamp = int(value)
        elif key == "v1":
            if len(value) != 64 or any(c not in "0123456789abcdefABCDEF" for c in value):
                return None
            signatures.append(value.lower())
        # Other schemes (v0, a later v2 next to v1) are skipped, as Whereby's libraries do.
    if timestamp is None or not signatures:
        return None
    return timestamp, signatures


def verify(
    body: bytes, header: str | None, secret: str, now: float, tolerance: float = 60
) -> Verification:
    """Check a signature header against the raw body, the secret and the clock (`now` in unix
    seconds; `tolerance` seconds either way)."""
    if header is None or not header.strip():
        return Verification(Verdict.missing)
    parsed = parse_header(header)
    if parsed is None:
        return Verification(Verdict.malformed)
    timestamp, signatures = parsed
    expected = compute(body, secret, timestamp)
    # Compare against every v1 value without stopping early, each in constant time.
    matched = False
    for candidate in signatures:
        matched |= hmac.compare_digest(expected, candidate)
    if not matched:
        return Verification(Verdict.mismatch, timestamp)
    if timestamp < now - tolerance:
        return Verification(Verdict.too_old, timestamp)
    if timestamp > now + tolerance:
        return Verification(Verdict.too_new, timestamp)
    return Verification(Verdict.ok, timestamp)
