from __future__ import annotations

import json

import httpx
import pytest

from reflector.logs import configure_logging, get_logger
from reflector.settings import LogFormat


def test_secrets_are_masked(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("INFO", LogFormat.json)
    get_logger("t").info(
        "calling",
        api_key="k-123",
        webhook_secret="s-456",
        header="Bearer rfl_abcdef",
        count=3,
    )
    line = json.loads(capsys.readouterr().err.strip().splitlines()[-1])
    assert line["api_key"] == "***"
    assert line["webhook_secret"] == "***"
    assert line["header"] == "Bearer ***"
    assert line["count"] == 3
    configure_logging()


async def test_request_lines_carry_the_request_id(
    client: httpx.AsyncClient, capsys: pytest.CaptureFixture[str]
) -> None:
    configure_logging("INFO", LogFormat.json)
    await client.get("/health", headers={"X-Request-ID": "trace-me"})
    lines = [
        json.loads(line) for line in capsys.readouterr().err.splitlines() if line.startswith("{")
    ]
    requests = [line for line in lines if line.get("event") == "request"]
    assert requests
    assert requests[-1]["request_id"] == "trace-me"
    assert requests[-1]["status"] == 200
    configure_logging()
