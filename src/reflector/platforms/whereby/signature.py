"""Whereby webhook signatures: `Whereby-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of
"<t>.<raw body>">`, the scheme in reflector.signatures."""

from __future__ import annotations

from reflector.signatures import Verdict, Verification, compute, parse_header, sign, verify

HEADER = "Whereby-Signature"

__all__ = ["HEADER", "Verdict", "Verification", "compute", "parse_header", "sign", "verify"]
