"""Cloud recordings: when the recorder joins, and the file it leaves behind (locally or in S3)."""

from __future__ import annotations

import io
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import av
import boto3
import pytest
from moto.server import ThreadedMotoServer

from reflector.sandbox import DEFAULT_AUDIO_FILE
from tests.sandbox.conftest import RunningSandbox, StartSandbox

KEY_TIME = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ"


def audio_seconds(path: Path) -> float:
    with av.open(str(path)) as container:
        stream = container.streams.audio[0]
        assert stream.duration is not None
        return float(stream.duration * stream.time_base)


def check_recording(source: bytes | Path, expected_seconds: float) -> None:
    """A decodable file with h264 video and AAC audio lasting `expected_seconds`."""
    data = source.read_bytes() if isinstance(source, Path) else source
    with av.open(io.BytesIO(data)) as container:
        [audio] = container.streams.audio
        [video] = container.streams.video
        assert audio.codec_context.name == "aac"
        assert video.codec_context.name == "h264"
        assert (video.codec_context.width, video.codec_context.height) == (320, 180)
        assert container.duration is not None
        assert container.duration / 1_000_000 == pytest.approx(expected_seconds, abs=0.15)
        decoded = sum(frame.samples for frame in container.decode(audio=0))
        assert decoded / audio.codec_context.sample_rate == pytest.approx(
            expected_seconds, abs=0.15
        )


def write_silence(path: Path, seconds: float, rate: int = 16_000) -> None:
    with av.open(str(path), "w", format="wav") as output:
        stream = output.add_stream("pcm_s16le", rate=rate, layout="mono")
        frame = av.AudioFrame(format="s16", layout="mono", samples=int(seconds * rate))
        frame.planes[0].update(bytes(frame.planes[0].buffer_size))
        frame.rate = rate
        frame.pts = 0
        output.mux(stream.encode(frame))
        output.mux(stream.encode(None))


def local_files(folder: Path) -> list[Path]:
    return [path for path in folder.rglob("*") if path.is_file()]


def cloud(trigger: str, **destination: Any) -> dict[str, Any]:
    return {"type": "cloud", "startTrigger": trigger, "destination": destination}


async def recorders(sandbox: RunningSandbox, meeting_id: str) -> int:
    state = await sandbox.state(meeting_id)
    return sum(p["roleName"] == "recorder" for p in state["participants"])


async def test_the_recorder_joins_per_start_trigger(sandbox: RunningSandbox) -> None:
    # trigger -> recorders in the room after the first join, after the second join
    expected = {
        "automatic": (1, 1),
        "automatic-2nd-participant": (0, 1),
        "prompt": (0, 0),
        "none": (0, 0),
    }
    for trigger, (after_first, after_second) in expected.items():
        meeting = await sandbox.create_meeting(recording=cloud(trigger))
        meeting_id = meeting["meetingId"]
        await sandbox.join(meeting_id, "Ann")
        assert await recorders(sandbox, meeting_id) == after_first, trigger
        await sandbox.join(meeting_id, "Bob")
        assert await recorders(sandbox, meeting_id) == after_second, trigger
        if not after_second:
            start = await sandbox.http.post(f"/_sandbox/meetings/{meeting_id}/recording/start")
            assert start.status_code == 201
            assert start.json()["status"] == "recording"
            assert await recorders(sandbox, meeting_id) == 1
        again = await sandbox.http.post(f"/_sandbox/meetings/{meeting_id}/recording/start")
        assert again.status_code == 409

    local = await sandbox.create_meeting(recording={"type": "local", "startTrigger": "automatic"})
    await sandbox.join(local["meetingId"], "Ann")
    assert await recorders(sandbox, local["meetingId"]) == 0

    await sandbox.idle()
    assert sandbox.receiver is not None
    recorder_joins = [
        e["data"]
        for e in sandbox.receiver.events
        if e["type"] == "room.client.joined" and e["data"]["roleName"] == "recorder"
    ]
    assert [(d["numClients"], d["numClientsByRoleName"]) for d in recorder_joins] == [
        (2, {"visitor": 1, "recorder": 1}),
        (3, {"visitor": 2, "recorder": 1}),
        (3, {"visitor": 2, "recorder": 1}),
        (3, {"visitor": 2, "recorder": 1}),
    ]
    assert {d["displayName"] for d in recorder_joins} == {"Recorder"}


async def test_recording_is_written_locally_when_the_last_person_leaves(
    start_sandbox: StartSandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    sandbox = await start_sandbox()
    meeting = await sandbox.create_meeting(
        roomNamePrefix="standup-",
        recording=cloud(
            "automatic",
            provider="s3",
            bucket="rec-bucket/sub/folder",
            accessKeyId="AKIA",
            accessKeySecret="secret",
            fileFormat="mp4",
        ),
    )
    meeting_id = meeting["meetingId"]
    ann = await sandbox.join(meeting_id, "Ann")
    await sandbox.leave(meeting_id, ann)
    await sandbox.idle()

    assert sandbox.receiver is not None
    events = sandbox.receiver.events
    assert [(e["type"], e["data"].get("numClients")) for e in events] == [
        ("room.client.joined", 1),
        ("room.client.joined", 2),
        ("room.client.left", 1),
        ("room.client.left", 0),
        ("recording.finished", None),
    ]
    [recording] = (await sandbox.http.get("/_sandbox/recordings")).json()["recordings"]
    room = meeting["roomName"].lstrip("/")
    filename = f"{room}-{recording['startedAt'][:19]}Z.mp4"
    assert re.fullmatch(rf"{re.escape(room)}-{KEY_TIME}\.mp4", filename)
    assert recording["status"] == "completed"
    assert recording["bucket"] == "rec-bucket"
    assert recording["key"] == f"sub/folder/{filename}"
    assert events[-1]["data"] == {
        "recordingId": recording["recordingId"],
        "filename": filename,
        "roomName": meeting["roomName"],
        "status": "completed",
        "meetingId": meeting_id,
    }
    path = sandbox.config.recordings_dir / "rec-bucket" / "sub" / "folder" / filename
    assert recording["location"] == str(path)
    check_recording(path, audio_seconds(DEFAULT_AUDIO_FILE))


async def test_recording_by_hand_with_another_audio_file(
    sandbox: RunningSandbox, tmp_path: Path
) -> None:
    short = tmp_path / "short.wav"
    write_silence(short, 1.5)
    meeting = await sandbox.create_meeting(
        recording=cloud("prompt", provider="whereby", fileFormat="mkv")
    )
    meeting_id = meeting["meetingId"]
    audio = await sandbox.http.put(
        f"/_sandbox/meetings/{meeting_id}/audio", json={"path": str(short)}
    )
    assert audio.status_code == 204
    nobody = await sandbox.http.post(f"/_sandbox/meetings/{meeting_id}/recording/start")
    assert nobody.status_code == 409
    await sandbox.join(meeting_id, "Ann")

    first = (await sandbox.http.post(f"/_sandbox/meetings/{meeting_id}/recording/start")).json()
    stopped = await sandbox.http.post(f"/_sandbox/meetings/{meeting_id}/recording/stop")
    assert stopped.status_code == 200
    assert stopped.json()["recordingId"] == first["recordingId"]
    # The recorder leaving (here: made to leave) stops a recording too.
    second = (await sandbox.http.post(f"/_sandbox/meetings/{meeting_id}/recording/start")).json()
    await sandbox.leave(meeting_id, second["participantId"])
    await sandbox.idle()

    recordings = (await sandbox.http.get("/_sandbox/recordings")).json()["recordings"]
    assert [r["recordingId"] for r in recordings] == [first["recordingId"], second["recordingId"]]
    for recording in recordings:
        assert recording["status"] == "completed"
        assert recording["bucket"] == "whereby"
        assert recording["key"].endswith(".mkv")
        path = Path(recording["location"])
        assert path.parent == sandbox.config.recordings_dir / "whereby"
        check_recording(path, 1.5)
    assert sandbox.receiver is not None
    assert [e["type"] for e in sandbox.receiver.events].count("recording.finished") == 2


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


def s3_client(endpoint: str) -> Any:
    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        aws_access_key_id="test",
        aws_secret_access_key="test",
        region_name="us-east-1",
    )


async def test_recordings_are_uploaded_to_s3(
    start_sandbox: StartSandbox, s3_endpoint: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "from-env")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "from-env")
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    s3 = s3_client(s3_endpoint)
    s3.create_bucket(Bucket="reflector-recordings")

    explicit = await start_sandbox(s3_endpoint_url=s3_endpoint)
    destination = {
        "provider": "s3",
        "bucket": "reflector-recordings/whereby/raw",
        "accessKeyId": "test",
        "accessKeySecret": "test",
    }
    meeting = await explicit.create_meeting(
        recording=cloud("automatic-2nd-participant", **destination)
    )
    ann = await explicit.join(meeting["meetingId"], "Ann")
    bob = await explicit.join(meeting["meetingId"], "Bob")
    await explicit.leave(meeting["meetingId"], ann)
    await explicit.leave(meeting["meetingId"], bob)
    await explicit.idle()

    # A bucket without a sub-folder (the CLI passes AWS_ENDPOINT_URL from Settings).
    from_env = await start_sandbox(s3_endpoint_url=s3_endpoint)
    other = await from_env.create_meeting(
        recording=cloud("automatic", provider="s3", bucket="reflector-recordings")
    )
    cat = await from_env.join(other["meetingId"], "Cat")
    await from_env.leave(other["meetingId"], cat)
    await from_env.idle()

    listed = s3.list_objects_v2(Bucket="reflector-recordings")["Contents"]
    explicit_key, env_key = sorted((o["Key"] for o in listed), key=lambda k: k.count("/"))[::-1]
    room = meeting["roomName"].lstrip("/")
    assert re.fullmatch(rf"whereby/raw/{re.escape(room)}-{KEY_TIME}\.mp4", explicit_key)
    other_room = other["roomName"].lstrip("/")
    assert re.fullmatch(rf"{re.escape(other_room)}-{KEY_TIME}\.mp4", env_key)
    keys = [explicit_key, env_key]
    expected_seconds = audio_seconds(DEFAULT_AUDIO_FILE)
    for key in keys:
        stored = s3.get_object(Bucket="reflector-recordings", Key=key)
        assert stored["ContentType"] == "video/mp4"
        check_recording(stored["Body"].read(), expected_seconds)

    [recording] = (await explicit.http.get("/_sandbox/recordings")).json()["recordings"]
    assert recording["location"] == f"s3://reflector-recordings/{recording['key']}"
    assert explicit.receiver is not None
    finished = explicit.receiver.events[-1]
    assert finished["type"] == "recording.finished"
    assert finished["data"]["filename"] == recording["key"].removeprefix("whereby/raw/")
    assert not local_files(explicit.config.recordings_dir)
