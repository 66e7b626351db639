from __future__ import annotations

import pytest

from reflector.platforms.whereby.signature import Verdict, compute, parse_header, sign, verify

SECRET = "whsec_test"
BODY = b'{"id":"e1","type":"room.client.joined"}'
NOW = 1_700_000_000


def header(body: bytes = BODY, secret: str = SECRET, t: int = NOW) -> str:
    return sign(body, secret, t)


@pytest.mark.parametrize(
    ("body", "given", "secret", "now", "expected"),
    [
        (BODY, header(), SECRET, NOW, Verdict.ok),
        (BODY, header(t=NOW - 60), SECRET, NOW, Verdict.ok),
        (BODY, header(t=NOW + 60), SECRET, NOW, Verdict.ok),
        (BODY, header(t=NOW - 61), SECRET, NOW, Verdict.too_old),
        (BODY, header(t=NOW + 61), SECRET, NOW, Verdict.too_new),
        (BODY, header(t=NOW - 120), SECRET, NOW, Verdict.too_old),
        (BODY, header(t=NOW + 120), SECRET, NOW, Verdict.too_new),
        (BODY + b" ", header(), SECRET, NOW, Verdict.mismatch),
        (BODY.replace(b"e1", b"e2"), header(), SECRET, NOW, Verdict.mismatch),
        (BODY, header(secret="other"), SECRET, NOW, Verdict.mismatch),
        (BODY, header().replace(f"t={NOW}", f"t={NOW + 1}"), SECRET, NOW, Verdict.mismatch),
        (BODY, header().upper().replace("T=", "t=").replace("V1=", "v1="), SECRET, NOW, Verdict.ok),
        (BODY, f"t={NOW},v1={'0' * 64},v1={compute(BODY, SECRET, NOW)}", SECRET, NOW, Verdict.ok),
        (BODY, f"t={NOW},v0=abc,v1={compute(BODY, SECRET, NOW)}", SECRET, NOW, Verdict.ok),
        (BODY, f" t={NOW} , v1={compute(BODY, SECRET, NOW)} ", SECRET, NOW, Verdict.ok),
        (BODY, None, SECRET, NOW, Verdict.missing),
        (BODY, "", SECRET, NOW, Verdict.missing),
        (BODY, "   ", SECRET, NOW, Verdict.missing),
        (BODY, "garbage", SECRET, NOW, Verdict.malformed),
        (BODY, f"t={NOW}", SECRET, NOW, Verdict.malformed),
        (BODY, f"v1={compute(BODY, SECRET, NOW)}", SECRET, NOW, Verdict.malformed),
        (BODY, f"t=abc,v1={compute(BODY, SECRET, NOW)}", SECRET, NOW, Verdict.malformed),
        (BODY, f"t=-5,v1={compute(BODY, SECRET, NOW)}", SECRET, NOW, Verdict.malformed),
        (BODY, f"t={NOW},v1=xyz", SECRET, NOW, Verdict.malformed),
        (BODY, f"t={NOW},v1={'g' * 64}", SECRET, NOW, Verdict.malformed),
        (BODY, f"t={NOW},t={NOW},v1={compute(BODY, SECRET, NOW)}", SECRET, NOW, Verdict.malformed),
        (BODY, "t=1," + "v1=" + "a" * 64 + ",x" * 600, SECRET, NOW, Verdict.malformed),
        (b"", header(b""), SECRET, NOW, Verdict.ok),
    ],
)
def test_verify(body: bytes, given: str | None, secret: str, now: int, expected: Verdict) -> None:
    assert verify(body, given, secret, now).verdict is expected


def test_tolerance_is_a_parameter() -> None:
    assert verify(BODY, header(t=NOW - 200), SECRET, NOW, tolerance=300).ok
    assert verify(BODY, header(t=NOW - 2), SECRET, NOW, tolerance=1).verdict is Verdict.too_old


def test_a_stale_forgery_is_a_mismatch_not_a_time_problem() -> None:
    # Time is only judged once the signature is known to be genuine.
    forged = f"t={NOW - 1000},v1={'a' * 64}"
    assert verify(BODY, forged, SECRET, NOW).verdict is Verdict.mismatch


def test_matches_openssl_reference() -> None:
    # printf '%s' '1700000000.{"a":1}' | openssl dgst -sha256 -hmac secret
    expected = "49f24e537407743fa4a0242bb63b94b9a47ee99cbbe071ccd8a22550ae411686"
    assert compute(b'{"a":1}', "secret", 1_700_000_000) == expected


def test_parse_header() -> None:
    parsed = parse_header(header())
    assert parsed == (NOW, [compute(BODY, SECRET, NOW)])
    assert parse_header("t=1") is None
