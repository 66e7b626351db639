"""Production hardening: no start with placeholder secrets, security headers on every response,
and CORS only for the origins an operator named.

The checks on settings are plain functions that the Settings validators call, so a bad
value stops start-up with the usual one-line "Configuration error: ..." and never shows the
secret itself.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from starlette.datastructures import Headers
from starlette.middleware.cors import CORSMiddleware
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from reflector.errors import json_error

if TYPE_CHECKING:
    from fastapi import FastAPI

    from reflector.settings import Settings

# --- Secrets in production --------------------------------------------------------------------

# Whole values (compared lower-cased with everything but letters and digits removed) that are
# stand-ins, not secrets: the sandbox's documented credentials, the values .env.example and
# the set-up guides show, and the usual fillers.
_PLACEHOLDERS = frozenset(
    {
        "reflectorsandboxkey",  # reflector.sandbox.defaults.SANDBOX_API_KEY
        "reflectorsandboxsecret",  # reflector.sandbox.defaults.SANDBOX_WEBHOOK_SECRET
        "secret",
        "secrets",
        "mysecret",
        "supersecret",
        "webhooksecret",
        "password",
        "key",
        "apikey",
        "accesskey",
        "secretkey",
        "token",
        "test",
        "testing",
        "dummy",
        "fake",
        "todo",
        "none",
        "null",
        "unset",
        "default",
        "123456789012",
    }
)
# Words that mark a value as a stand-in wherever they appear in it.
_PLACEHOLDER_WORDS = ("changeme", "replaceme", "placeholder", "example", "sandbox")

# The secrets production needs, and where each comes from.
_REQUIRED_SECRETS = {
    "WHEREBY_API_KEY": "the API key from Whereby's dashboard, Configure > API",
    "WHEREBY_WEBHOOK_SECRET": "the secret Whereby shows when you add the webhook",
    "AWS_WHEREBY_ACCESS_KEY_ID": "the access key Whereby writes recordings into the bucket with",
    "AWS_WHEREBY_ACCESS_KEY_SECRET": "the secret of that access key",
}
MIN_WEBHOOK_SECRET_CHARS = 16


def is_placeholder(value: str) -> bool:
    """Whether a secret's value is a stand-in (change-me, xxx, the sandbox key, ...) rather
    than a real credential."""
    letters = re.sub(r"[^a-z0-9]", "", value.lower())
    if not letters or letters in _PLACEHOLDERS or len(set(letters)) == 1:
        # Empty once punctuation is gone ("<...>"), a filler word, or one repeated character
        # ("xxx", "0000-0000").
        return True
    return letters.startswith("your") or any(word in letters for word in _PLACEHOLDER_WORDS)


def production_problems(settings: Settings) -> list[str]:
    """What stops these settings from being used in production, one phrase per variable, each
    saying what to do; never a secret's value."""
    problems: list[str] = []
    for name, origin in _REQUIRED_SECRETS.items():
        secret = getattr(settings, name)
        value = secret.get_secret_value() if secret is not None else None
        if not value:
            problems.append(f"{name} is not set (set it to {origin})")
        elif is_placeholder(value):
            problems.append(f"{name} is a placeholder value (set it to {origin})")
        elif name == "WHEREBY_WEBHOOK_SECRET" and len(value) < MIN_WEBHOOK_SECRET_CHARS:
            problems.append(
                f"{name} is shorter than {MIN_WEBHOOK_SECRET_CHARS} characters (set it to the "
                f"whole of {origin})"
            )
    if settings.BASE_URL.scheme != "https":
        problems.append(
            f"BASE_URL is {settings.BASE_URL} (set it to the https:// address people reach "
            "this service at, with TLS terminated in front of it)"
        )
    if settings.WHEREBY_SANDBOX:
        problems.append(
            "WHEREBY_SANDBOX is true (the sandbox only simulates meetings; remove the setting)"
        )
    return problems


# --- CORS -------------------------------------------------------------------------------------

_ORIGIN = re.compile(
    r"^(?P<scheme>https?)://(?P<host>[a-z0-9](?:[a-z0-9.-]*[a-z0-9])?|\[[0-9a-f:.]+\])"
    r"(?::(?P<port>[0-9]{1,5}))?$"
)
CORS_METHODS = ("GET", "POST", "PATCH", "DELETE")
CORS_HEADERS = ("Authorization", "Content-Type")


class _CORS(CORSMiddleware):
    """Starlette's CORS, except that a refused preflight says nothing of what is allowed (no
    Access-Control-* headers at all) and answers in the API's error shape."""

    def preflight_response(self, request_headers: Headers) -> Response:
        response = super().preflight_response(request_headers)
        if response.status_code == 200:
            return response
        refused = bytes(response.body).decode().removeprefix("Disallowed CORS ")
        return json_error(
            400,
            "cors_refused",
            f"This cross-origin request is not allowed ({refused}); the origins that may call "
            "the API from a browser are set by CORS_ALLOWED_ORIGINS.",
            {"Vary": "Origin"},
        )


def parse_origins(value: str) -> list[str]:
    """The origins of a comma-separated CORS_ALLOWED_ORIGINS, lower-cased as browsers send
    them; ValueError naming the first entry that is not scheme://host[:port]."""
    origins: list[str] = []
    for entry in value.split(","):
        origin = entry.strip().lower()
        if not origin:
            continue
        match = _ORIGIN.match(origin)
        port = match.group("port") if match else None
        if match is None or (port is not None and not 0 < int(port) <= 65535):
            raise ValueError(
                f"{entry.strip()!r} is not an origin; write each as scheme://host[:port] "
                "(e.g. https://app.example.com), with no path or trailing slash, separated by "
                "commas"
            )
        if origin not in origins:
            origins.append(origin)
    if not origins:
        raise ValueError("names no origin; unset it to allow none")
    return origins


# --- Headers ----------------------------------------------------------------------------------

_CSP = b"content-security-policy"
_API_CSP = b"default-src 'none'; frame-ancestors 'none'"
_HEADERS: tuple[tuple[bytes, bytes], ...] = (
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"strict-origin-when-cross-origin"),
    (b"cross-origin-opener-policy", b"same-origin"),
)
_HSTS = (b"strict-transport-security", b"max-age=31536000; includeSubDomains")


class SecurityHeadersMiddleware:
    """Adds the security headers a response does not set itself. JSON answers also get a
    Content-Security-Policy that allows nothing; HTML keeps its own (the web pages send one,
    and /docs and /redoc load their scripts and styles under none)."""

    def __init__(self, app: ASGIApp, *, hsts: bool) -> None:
        self.app = app
        self.headers = (*_HEADERS, _HSTS) if hsts else _HEADERS

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", ()))
                present = {bytes(name).lower() for name, _ in headers}
                headers.extend(pair for pair in self.headers if pair[0] not in present)
                if _CSP not in present and _is_json(headers):
                    headers.append((_CSP, _API_CSP))
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, send_with_headers)


def security_headers(settings: Settings) -> dict[str, str]:
    """The headers of a JSON answer, for the one answer the middleware never sees: the 500 of
    an unhandled error, which Starlette's outermost error middleware sends itself."""
    production = settings.ENVIRONMENT.value == "production"
    pairs = (*_HEADERS, _HSTS) if production else _HEADERS
    return {name.decode(): value.decode() for name, value in (*pairs, (_CSP, _API_CSP))}


def _is_json(headers: list[tuple[bytes, bytes]]) -> bool:
    for name, value in headers:
        if bytes(name).lower() == b"content-type":
            return bytes(value).split(b";", 1)[0].strip().lower().endswith(b"json")
    return False


def install_security(app: FastAPI, settings: Settings) -> None:
    """CORS when CORS_ALLOWED_ORIGINS is set, and the security headers; call after the other
    middleware, so that these wrap them and reach every answer (a 413 or a preflight too)."""
    if settings.CORS_ALLOWED_ORIGINS:
        app.add_middleware(
            _CORS,
            allow_origins=parse_origins(settings.CORS_ALLOWED_ORIGINS),
            allow_credentials=False,
            allow_methods=list(CORS_METHODS),
            allow_headers=list(CORS_HEADERS),
        )
    app.add_middleware(SecurityHeadersMiddleware, hsts=settings.ENVIRONMENT.value == "production")
