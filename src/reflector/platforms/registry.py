"""The video platforms rooms can use, keyed by the name stored in `rooms.platform`.

Rooms and meetings code looks platforms up here and never imports a platform's package. Adding
a platform = one factory registered below (or by a plugin calling `register`).
"""

from __future__ import annotations

from collections.abc import Callable

import httpx

from reflector.platforms.base import VideoPlatform
from reflector.settings import Settings

DEFAULT_PLATFORM = "whereby"

PlatformFactory = Callable[[Settings, httpx.AsyncClient], VideoPlatform]


def _whereby(settings: Settings, http: httpx.AsyncClient) -> VideoPlatform:
    from reflector.platforms.whereby.platform import WherebyPlatform

    return WherebyPlatform(settings, http)


_FACTORIES: dict[str, PlatformFactory] = {"whereby": _whereby}


def register(name: str, factory: PlatformFactory) -> None:
    _FACTORIES[name] = factory


def platform_names() -> list[str]:
    return sorted(_FACTORIES)


def is_known_platform(name: str) -> bool:
    return name in _FACTORIES


def build_platforms(settings: Settings, http: httpx.AsyncClient) -> dict[str, VideoPlatform]:
    return {name: factory(settings, http) for name, factory in _FACTORIES.items()}
