"""The names of the video platforms rooms can use.

Each platform registers under the name stored in `rooms.platform`; rooms and meetings code looks
platforms up here and never imports a platform's package directly.
"""

from __future__ import annotations

DEFAULT_PLATFORM = "whereby"

_PLATFORMS: set[str] = {"whereby"}


def register_platform_name(name: str) -> None:
    _PLATFORMS.add(name)


def platform_names() -> list[str]:
    return sorted(_PLATFORMS)


def is_known_platform(name: str) -> bool:
    return name in _PLATFORMS
