from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.conftest import Account
from tests.room_webhooks.receiver import Receiver, running_receiver


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with running_receiver() as running:
        yield running


async def webhook_room(
    client: httpx.AsyncClient, account: Account, url: str, name: str = "standup"
) -> dict[str, Any]:
    """A room created through the API with a webhook URL; its answer carries the secret."""
    response = await client.post(
        "/v1/rooms", json={"name": name, "webhook_url": url}, headers=account.headers
    )
    assert response.status_code == 201, response.text
    room: dict[str, Any] = response.json()
    assert room["webhook_secret"].startswith("whsec_")
    return room
