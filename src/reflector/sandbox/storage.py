"""Where a finished recording goes: the meeting's S3 bucket (through boto3) or, without an S3
endpoint, a local folder laid out as `<recordings_dir>/<bucket>/<key>`.

Blocking (network and file I/O): call `store_recording` from a worker thread."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import boto3  # type: ignore[import-untyped, unused-ignore]

from reflector.platforms.whereby.recordings import object_key
from reflector.sandbox.config import SandboxConfig
from reflector.sandbox.media import CONTENT_TYPES
from reflector.sandbox.meeting_request import Destination

# The folder name used when a meeting gave no bucket (e.g. provider `whereby`).
DEFAULT_BUCKET = "whereby"


@dataclass(frozen=True)
class StoredRecording:
    bucket: str
    key: str
    filename: str
    location: str


def uses_s3(config: SandboxConfig, destination: Destination | None) -> bool:
    """S3 when an endpoint is configured (the CLI passes AWS_ENDPOINT_URL from Settings) and
    the meeting asked for an S3 destination; the local folder otherwise."""
    provider = destination.provider if destination is not None else None
    return bool(config.s3_endpoint_url) and provider in (None, "s3")


def store_recording(
    config: SandboxConfig,
    destination: Destination | None,
    room_name: str,
    started_at: datetime,
    data: bytes,
) -> StoredRecording:
    extension = destination.extension if destination is not None else "mp4"
    # Named by the same module Reflector parses names with: one definition of Whereby's naming.
    folder = destination.folder if destination is not None else ""
    key = object_key(room_name, started_at, extension, folder)
    filename = key.rsplit("/", 1)[-1]
    bucket = (destination.bucket_name if destination is not None else None) or DEFAULT_BUCKET
    if uses_s3(config, destination):
        _put_s3(config, destination, bucket, key, data, CONTENT_TYPES[extension])
        return StoredRecording(bucket, key, filename, f"s3://{bucket}/{key}")
    path = _write_local(config.recordings_dir, bucket, key, data)
    return StoredRecording(bucket, key, filename, str(path))


def _put_s3(
    config: SandboxConfig,
    destination: Destination | None,
    bucket: str,
    key: str,
    data: bytes,
    content_type: str,
) -> None:
    # With role-based authentication (no keys given) boto3 finds credentials on its own.
    access_key = destination.access_key_id if destination is not None else None
    secret_key = destination.access_key_secret if destination is not None else None
    client = boto3.client(
        "s3",
        endpoint_url=config.s3_endpoint_url or None,
        aws_access_key_id=access_key or None,
        aws_secret_access_key=secret_key or None,
    )
    client.put_object(Bucket=bucket, Key=key, Body=data, ContentType=content_type)


def _write_local(root: Path, bucket: str, key: str, data: bytes) -> Path:
    path = root / bucket / key
    # Bucket and folder come from API callers: stay inside the recordings folder.
    if not path.resolve().is_relative_to(root.resolve()):
        raise ValueError(f"recording path {path} is outside {root}")
    path.parent.mkdir(parents=True, exist_ok=True)
    # Written beside and renamed, so a folder watcher never sees half a file. The partial name
    # is unique: two recordings started in the same second share a key (as on Whereby, the
    # later one wins) and may be written at the same time.
    partial = path.with_name(f".{path.name}.{secrets.token_hex(4)}.part")
    try:
        partial.write_bytes(data)
        partial.replace(path)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    return path
