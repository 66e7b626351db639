"""The operations pages stay true: every /metrics family is documented (and nothing else), the
alert rules name families that exist, the signature checks of the webhooks page verify real
signatures (the Python one, and the openssl one), the example payloads have the shape of what
is sent, and the retry schedule and `reflector retention` output are as described."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from reflector import __version__
from reflector.meetings.models import Meeting
from reflector.metrics.collector import DatabaseCollector, Snapshot
from reflector.metrics.counters import StoredSeries
from reflector.pipeline.export import EXPORT_FORMATS
from reflector.pipeline.types import ActionItem, Speaker, Topic, TranscriptDocument
from reflector.retention.apply import Deletion, Deletions, summary
from reflector.room_webhooks import payloads
from reflector.room_webhooks.dispatcher import Answer, Outcome, decide
from reflector.room_webhooks.signing import SECRET_PREFIX, new_secret, sign
from tests.conftest import Account
from tests.docs.markdown import DOCS
from tests.room_webhooks.receiver import Receiver

METRICS = DOCS / "metrics.md"
WEBHOOKS = DOCS / "webhooks.md"
RETENTION = DOCS / "retention.md"
HISTOGRAM_SUFFIXES = ("_bucket", "_sum", "_count")


def marked_block(path: Path, mark: str, language: str) -> str:
    """The ```language block right after `<!-- mark -->` in `path`."""
    found = re.search(
        rf"<!-- {re.escape(mark)} -->\s*```{language}\n(.*?)^```$",
        path.read_text(),
        re.MULTILINE | re.DOTALL,
    )
    assert found, f"{path.name} has no ```{language} block after <!-- {mark} -->"
    return found.group(1)


# --- metrics.md ------------------------------------------------------------------------------


def documented_families() -> dict[str, tuple[str, set[str]]]:
    """metrics.md's family table: name -> (type, labels)."""
    rows = re.findall(
        r"^\| `(reflector_\w+)` \| (\w+) \|([^|]*)\|", METRICS.read_text(), re.MULTILINE
    )
    assert rows, "docs/metrics.md has no family table"
    families: dict[str, tuple[str, set[str]]] = {}
    for name, kind, labels in rows:
        assert name not in families, f"{name} is documented twice"
        families[name] = (kind, set(re.findall(r"`(\w+)`", labels)))
    return families


async def scraped_families(client: httpx.AsyncClient) -> dict[str, str]:
    """The families a real app's /metrics exposes: name -> type (from its # TYPE lines)."""
    response = await client.get("/metrics")
    assert response.status_code == 200, response.text
    return dict(re.findall(r"^# TYPE (\S+) (\S+)$", response.text, re.MULTILINE))


def family_labels() -> dict[str, set[str]]:
    """The label names of each family, from the collector over a snapshot with a row of
    everything (histogram bounds, `le`, left out)."""
    collector = DatabaseCollector(version=__version__, platforms=["whereby"], derived_label="x")
    collector.snapshot = Snapshot(
        webhook_events=[("whereby", "room.client.joined", "applied", 1.0)],
        webhook_rejections=[("whereby", "bad_signature", 1.0)],
        meetings=[("whereby", 1.0, 2.0)],
        recordings=[("failed", 1.0)],
        recording_bytes=[("recordings", 5.0)],
        derived_bytes=3.0,
        outgoing_attempts=[("test", "failed", 1.0)],
        stored=[
            StoredSeries("reflector_sqs_messages_total", {"outcome": "received"}, 1.0),
            StoredSeries("reflector_sqs_message_age_seconds_count", {}, 1.0),
            StoredSeries("reflector_pipeline_step_duration_seconds_count", {"step": "audio"}, 1.0),
        ],
    )
    labels: dict[str, set[str]] = {}
    for metric in collector.collect():
        assert metric.samples, f"the test's snapshot gives {metric.name} no sample"
        names = {key for sample in metric.samples for key in sample.labels if key != "le"}
        # prometheus_client names a counter's family without _total.
        name = metric.name + ("_total" if metric.type == "counter" else "")
        labels[name] = names
    return labels


async def test_metrics_md_documents_every_family_and_only_those(
    client: httpx.AsyncClient,
) -> None:
    exposed = await scraped_families(client)
    documented = documented_families()
    assert sorted(set(exposed) - set(documented)) == [], "families missing from docs/metrics.md"
    assert sorted(set(documented) - set(exposed)) == [], "docs/metrics.md names no such family"
    for name, kind in exposed.items():
        assert documented[name][0] == kind, f"{name} is a {kind}"
    labels = family_labels()
    assert set(labels) == set(exposed)
    for name, (_kind, names) in documented.items():
        assert names == labels[name], f"{name}'s labels are {sorted(labels[name])}"


async def test_the_alert_rules_and_scrape_job_name_what_exists(
    client: httpx.AsyncClient,
) -> None:
    exposed = set(await scraped_families(client))
    rules = yaml.safe_load(marked_block(METRICS, "prometheus: rules", "yaml"))
    [group] = rules["groups"]
    assert group["rules"]
    for rule in group["rules"]:
        assert rule["alert"].startswith("Reflector")
        assert rule["annotations"]["summary"]
        for name in re.findall(r"\breflector_\w+", rule["expr"]):
            family = next(
                (name.removesuffix(s) for s in HISTOGRAM_SUFFIXES if name.endswith(s)), name
            )
            assert family in exposed, f"{rule['alert']}: no family {name}"
    scrape = yaml.safe_load(marked_block(METRICS, "prometheus: scrape", "yaml"))
    [job] = scrape["scrape_configs"]
    assert job["metrics_path"] == "/metrics"


# --- webhooks.md -----------------------------------------------------------------------------


def doc_verify() -> Any:
    """The `verify` function of the page's Python block."""
    namespace: dict[str, Any] = {}
    exec(marked_block(WEBHOOKS, "verify: python", "python"), namespace)  # noqa: S102
    return namespace["verify"]


def test_the_python_check_verifies_signatures() -> None:
    verify = doc_verify()
    body = json.dumps(json.loads(marked_block(WEBHOOKS, "payload: test", "json"))).encode()
    secret = new_secret()
    now = int(time.time())
    assert verify(body, sign(body, secret, now), secret)
    # A future scheme next to v1, and several v1 values (one right): accepted.
    v1 = sign(body, secret, now).split("v1=")[1]
    assert verify(body, f"t={now},v2=abc,v1={'0' * 64},v1={v1}", secret)
    # Another secret, a changed body, a stale or future time, garbage: refused.
    assert not verify(body, sign(body, new_secret(), now), secret)
    assert not verify(body + b" ", sign(body, secret, now), secret)
    assert not verify(body, sign(body, secret, now - 301), secret)
    assert not verify(body, sign(body, secret, now + 301), secret)
    assert not verify(body, "v1=" + v1, secret)
    assert not verify(body, "", secret)
    # The page says what a secret looks like.
    assert len(secret) == len(SECRET_PREFIX) + 43
    assert secret.startswith("whsec_")


async def test_the_python_check_verifies_a_real_delivery(
    client: httpx.AsyncClient, alice: Account, receiver: Receiver
) -> None:
    created = await client.post(
        "/v1/rooms",
        json={"name": "standup", "webhook_url": receiver.url},
        headers=alice.headers,
    )
    assert created.status_code == 201, created.text
    secret = created.json()["webhook_secret"]
    sent = await client.post("/v1/rooms/standup/webhook/test", headers=alice.headers)
    assert sent.json()["succeeded"] is True
    [request] = receiver.requests
    verify = doc_verify()
    assert verify(request.body, request.headers["x-reflector-signature"], secret)
    assert not verify(request.body, request.headers["x-reflector-signature"], new_secret())
    # The headers the page lists.
    assert request.headers["x-reflector-event"] == "test"
    assert request.headers["x-reflector-delivery"] == sent.json()["delivery_id"]
    assert request.headers["user-agent"] == f"Reflector/{__version__}"
    assert request.headers["content-type"] == "application/json"


def run_openssl_check(tmp_path: Path, body: bytes, header: str, secret: str) -> str:
    script = marked_block(WEBHOOKS, "verify: openssl", "sh")
    script = re.sub(r"^SECRET=.*$", f"SECRET='{secret}'", script, count=1, flags=re.MULTILINE)
    script = re.sub(r"^HEADER=.*$", f"HEADER='{header}'", script, count=1, flags=re.MULTILINE)
    (tmp_path / "body.json").write_bytes(body)
    done = subprocess.run(
        ["bash", "-eu", "-c", script],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def test_the_openssl_check_verifies_signatures(tmp_path: Path) -> None:
    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed; the page's openssl check was not run")
    body = marked_block(WEBHOOKS, "payload: transcript.completed", "json").encode()
    secret = new_secret()
    header = sign(body, secret, 1795000000)
    assert run_openssl_check(tmp_path, body, header, secret) == "signature ok"
    assert run_openssl_check(tmp_path, body, header, new_secret()) == "signature MISMATCH"
    assert run_openssl_check(tmp_path, body + b"\n", header, secret) == "signature MISMATCH"


def shape(value: Any) -> Any:
    """A JSON value's structure: keys and kinds, not values."""
    if isinstance(value, dict):
        return {key: shape(item) for key, item in value.items()}
    if isinstance(value, list):
        return [shape(value[0])] if value else []
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int | float):
        return "number"
    return "null" if value is None else type(value).__name__


def sent_bodies() -> dict[str, dict[str, Any]]:
    """What Reflector sends for each event, made by the code that makes it."""
    start = datetime(2026, 11, 28, 12, 0, 5, tzinfo=UTC)
    room = payloads.room_data("room_1", "standup")
    doc = TranscriptDocument(
        duration=1834.2,
        language="en",
        title="Weekly stand-up",
        short_summary="Short.",
        long_summary="Long.",
        action_items=[ActionItem(text="Send the notes", owner="Ada", start=612.0)],
        topics=[Topic(title="Release", summary="What shipped.", start=0.0, end=640.5)],
        speakers=[Speaker(id=0, name="Ada"), Speaker(id=1, name="Ben")],
        segments=[],
        words=[],
    )
    ended = start + timedelta(minutes=41)
    meeting = Meeting(
        id="mtg_1",
        start_date=start,
        end_date=start + timedelta(hours=8),
        ended_at=ended,
        end_reason="sessions_ended",
    )
    data = {
        payloads.TRANSCRIPT_COMPLETED: payloads.transcript_completed(
            transcript_id="trn_1",
            doc=doc,
            room=room,
            meeting=payloads.meeting_data("mtg_1", start, start + timedelta(hours=8), ended),
            recording_id="rec_1",
        ),
        payloads.MEETING_ENDED: payloads.meeting_ended(meeting, room, 3),
        payloads.TEST: payloads.for_test(room),
    }
    return {
        event: json.loads(
            payloads.render(
                payloads.body("whd_1", event, ended, values), "https://reflector.example.com/"
            )
        )
        for event, values in data.items()
    }


@pytest.mark.parametrize("event", ["transcript.completed", "meeting.ended", "test"])
def test_the_example_payloads_have_the_shape_of_what_is_sent(event: str) -> None:
    example = json.loads(marked_block(WEBHOOKS, f"payload: {event}", "json"))
    sent = sent_bodies()[event]
    assert shape(example) == shape(sent)
    assert example["event"] == event
    assert example["id"].startswith("whd_")
    assert datetime.fromisoformat(example["created_at"]).utcoffset() == timedelta(0)
    if event == "transcript.completed":
        links = example["data"]["links"]
        transcript_id = example["data"]["transcript"]["id"]
        assert links["api"] == f"https://reflector.example.com/v1/transcripts/{transcript_id}"
        assert list(links["exports"]) == list(EXPORT_FORMATS)
    if event == "test":
        assert example["data"]["message"] == sent["data"]["message"]


def test_the_retry_schedule_is_as_the_page_says() -> None:
    text = " ".join(WEBHOOKS.read_text().split())
    assert "30 s later, then 1, 2, 4, 8, 16, 32 minutes later, then every hour" in text
    created = datetime(2026, 11, 28, 12, tzinfo=UTC)
    window = timedelta(hours=24)  # ROOM_WEBHOOK_RETRY_HOURS's default
    now, attempts, delays = created, 0, []
    while True:
        attempts += 1
        decision = decide(Answer(500, "x", 1), attempts, created, now, window)
        if decision.outcome == Outcome.failed:
            break
        assert decision.next_attempt_at is not None
        delays.append((decision.next_attempt_at - now).total_seconds())
        now = decision.next_attempt_at
    assert delays[:9] == [30, 60, 120, 240, 480, 960, 1920, 3600, 3600]
    assert f"that is {attempts} attempts in all, the last about 23 hours after the" in text
    assert round((now - created).total_seconds() / 3600) == 23


# --- retention.md ----------------------------------------------------------------------------


def test_the_retention_output_is_as_the_page_shows() -> None:
    [output] = re.findall(r"^```text\n(.*?)^```$", RETENTION.read_text(), re.M | re.S)
    *lines, closing = output.rstrip("\n").split("\n")
    deletions = Deletions()
    order = []
    for line in lines:
        kind, subject, target, reason = line.split("\t")
        order.append(kind)
        assert re.fullmatch(
            r"RETENTION_(RECORDING|AUDIO|TRANSCRIPT)_DAYS=\d+ \((room [a-z0-9-]+|setting)\): "
            r"(processed|ended) \d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ",
            reason,
        ), reason
        assert reason.startswith(f"RETENTION_{kind.upper()}_DAYS=")
        deletions.append(Deletion(kind, subject, target, reason))
        assert Deletion(kind, subject, target, reason).line() == line
    # A pass goes through transcripts, then audio, then raw recordings.
    ranks = {"transcript": 0, "audio": 1, "recording": 2}
    assert order == sorted(order, key=ranks.__getitem__)
    assert closing == summary(deletions, dry_run=True)
    text = " ".join(RETENTION.read_text().split())
    assert f"the last line is `{summary(deletions, dry_run=False)}`" in text
    assert f"or `{summary(Deletions(), dry_run=False)}`" in text
