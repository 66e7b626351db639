"""Signing and verifying, table-driven: what a receiver checks, and what it must refuse."""

from __future__ import annotations

import hashlib
import hmac

import pytest

from reflector.room_webhooks.signing import Verdict, new_secret, sign, verify

SECRET = "whsec_test"
BODY = b'{"id":"whd_1","event":"test","created_at":"2026-11-28T12:00:00+00:00","data":{}}'
T = 1_795_000_000


def test_sign_is_hmac_sha256_over_timestamp_dot_body() -> None:
    expected = hmac.new(SECRET.encode(), f"{T}.".encode() + BODY, hashlib.sha256).hexdigest()
    assert sign(BODY, SECRET, T) == f"t={T},v1={expected}"


def test_new_secrets_are_prefixed_and_different() -> None:
    first, second = new_secret(), new_secret()
    assert first.startswith("whsec_")
    assert len(first) > 40
    assert first != second


GOOD = sign(BODY, SECRET, T)
DIGEST = GOOD.split("v1=")[1]


@pytest.mark.parametrize(
    ("body", "header", "secret", "now", "verdict"),
    [
        (BODY, GOOD, SECRET, T, Verdict.ok),
        (BODY, GOOD, SECRET, T + 299, Verdict.ok),
        (BODY, GOOD, SECRET, T - 299, Verdict.ok),
        (BODY, GOOD.upper().replace("T=", "t=").replace("V1=", "v1="), SECRET, T, Verdict.ok),
        (BODY, f"v1={DIGEST},t={T}", SECRET, T, Verdict.ok),  # order does not matter
        (BODY, f"t={T},v0=abc,v1={DIGEST}", SECRET, T, Verdict.ok),  # unknown schemes skipped
        (BODY, f"t={T},v1={'0' * 64},v1={DIGEST}", SECRET, T, Verdict.ok),  # any v1 matches
        (BODY, None, SECRET, T, Verdict.missing),
        (BODY, "  ", SECRET, T, Verdict.missing),
        (BODY, "garbage", SECRET, T, Verdict.malformed),
        (BODY, f"t={T}", SECRET, T, Verdict.malformed),
        (BODY, f"v1={DIGEST}", SECRET, T, Verdict.malformed),
        (BODY, f"t=soon,v1={DIGEST}", SECRET, T, Verdict.malformed),
        (BODY, f"t={T},t={T},v1={DIGEST}", SECRET, T, Verdict.malformed),
        (BODY, f"t={T},v1={DIGEST[:-1]}", SECRET, T, Verdict.malformed),
        (BODY, f"t={T},v1={'z' * 64}", SECRET, T, Verdict.malformed),
        (BODY, f"t={T},v1={DIGEST}" + ",v0=x" * 200, SECRET, T, Verdict.malformed),  # too long
        (BODY + b" ", GOOD, SECRET, T, Verdict.mismatch),  # body changed
        (BODY, GOOD, "whsec_other", T, Verdict.mismatch),  # another secret
        (BODY, f"t={T + 1},v1={DIGEST}", SECRET, T, Verdict.mismatch),  # timestamp changed
        (BODY, GOOD, SECRET, T + 301, Verdict.too_old),  # a replay
        (BODY, GOOD, SECRET, T - 301, Verdict.too_new),
    ],
)
def test_verify(body: bytes, header: str | None, secret: str, now: float, verdict: Verdict) -> None:
    result = verify(body, header, secret, now, tolerance=300)
    assert result.verdict is verdict
    assert result.ok is (verdict is Verdict.ok)


def test_tolerance_is_the_receivers_choice() -> None:
    assert verify(BODY, GOOD, SECRET, T + 3600, tolerance=3600).ok
    assert verify(BODY, GOOD, SECRET, T + 61, tolerance=60).verdict is Verdict.too_old
