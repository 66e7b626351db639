"""The sandbox's credentials when Reflector starts it for itself (no WHEREBY_API_KEY set).

They are not secrets: the sandbox only listens on loopback and only simulates meetings.
"""

SANDBOX_API_KEY = "reflector-sandbox-key"
SANDBOX_WEBHOOK_SECRET = "reflector-sandbox-secret"  # noqa: S105 (documented, local only)
