"""The storage seam: recordings and derived files in an S3 bucket, or in a local folder.

Keys are full object keys, exactly as they appear in S3 (and in S3 event notifications),
including a bucket's sub-folder: with `RECORDING_STORAGE_AWS_BUCKET_NAME=my-bucket/recordings`
a recording's key is `recordings/standup-...mp4`. A storage's `prefix` is its sub-folder
(`"recordings/"`, or `""`); `list_keys(p)` yields the full keys of the objects under
`prefix + p`, in S3's order (sorted). To write under the sub-folder, build the key as
`storage.prefix + name`.

boto3 blocks: every S3 call runs in a worker thread. Errors other than the ones named here
(no such bucket, network trouble, credentials refused) propagate as botocore exceptions.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import shutil
from collections.abc import AsyncIterator, Callable
from pathlib import Path, PurePosixPath
from typing import Any, Protocol, TypeVar

import boto3  # type: ignore[import-untyped, unused-ignore]
from botocore.config import Config  # type: ignore[import-untyped, unused-ignore]
from botocore.exceptions import ClientError  # type: ignore[import-untyped, unused-ignore]

from reflector.settings import ConfigError, Settings

# The folder the sandbox writes into when a meeting names no bucket.
DEFAULT_BUCKET = "whereby"
DERIVED_FOLDER = "derived"

T = TypeVar("T")

_MISSING_CODES = frozenset({"404", "NoSuchKey", "NotFound"})
# SigV4 for signed links too (boto3 still signs those with SigV2 unless told).
_CLIENT_CONFIG = Config(
    retries={"mode": "standard", "max_attempts": 4},
    connect_timeout=10,
    signature_version="s3v4",
)


class ListingDenied(Exception):
    """Listing the bucket was refused (S3 AccessDenied on ListBucket)."""


class ObjectMissing(Exception):
    """No object under that key."""


class Storage(Protocol):
    label: str
    """Where this is, for logs and pages: "s3://bucket/prefix/" or "file:///path"."""
    prefix: str
    """The sub-folder keys are listed under: "" or "some/folder/"."""

    async def download(self, key: str, dest: Path) -> None:
        """Stream the object into the file `dest` (replaced whole). ObjectMissing."""
        ...

    async def read(self, key: str) -> bytes:
        """The object's bytes; for small objects only. ObjectMissing."""
        ...

    async def read_range(self, key: str, start: int, end_inclusive: int) -> bytes:
        """Bytes `start` to `end_inclusive` of the object (fewer when it is shorter), for
        serving a large object a piece at a time. ObjectMissing."""
        ...

    async def upload(self, key: str, src: Path, content_type: str) -> None: ...

    async def write(self, key: str, data: bytes, content_type: str) -> None: ...

    async def size(self, key: str) -> int | None:
        """The object's size in bytes, or None when there is none."""
        ...

    async def delete(self, key: str) -> None:
        """Remove the object; a missing one is fine."""
        ...

    async def presigned_url(self, key: str, seconds: int) -> str | None:
        """A link that lets whoever holds it GET the object for `seconds`, or None when this
        storage cannot make one (a local folder: serve the bytes instead)."""
        ...

    def list_keys(self, prefix: str = "") -> AsyncIterator[str]:
        """Full keys under `self.prefix + prefix`, sorted. ListingDenied."""
        ...


def split_bucket(name: str) -> tuple[str, str]:
    """Bucket and sub-folder prefix: `my-bucket/recordings` -> ("my-bucket", "recordings/")."""
    bucket, _, folder = name.strip().removeprefix("s3://").partition("/")
    if not bucket:
        raise ValueError(f"expected a bucket name, optionally followed by /folder (got {name!r})")
    return bucket, _folder_prefix(folder)


def _folder_prefix(folder: str) -> str:
    folder = folder.strip("/")
    return f"{folder}/" if folder else ""


def _error_code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


class S3Storage:
    """One bucket (optionally a sub-folder of it) through one boto3 client.

    `bucket` may carry the sub-folder: "my-bucket/recordings". Without explicit keys boto3's
    standard chain finds credentials; endpoint (AWS_ENDPOINT_URL, AWS_ENDPOINT_URL_S3) and
    region (AWS_DEFAULT_REGION) come from the environment unless given here."""

    def __init__(
        self,
        bucket: str,
        *,
        access_key_id: str | None = None,
        secret_access_key: str | None = None,
        endpoint_url: str | None = None,
        region_name: str | None = None,
        client: Any | None = None,
        list_page_size: int = 1000,
    ) -> None:
        self.bucket, self.prefix = split_bucket(bucket)
        self.list_page_size = list_page_size
        self.label = f"s3://{self.bucket}/{self.prefix}"
        # Says which credentials were chosen, for start-up logs (never the key itself).
        self.credentials = "explicit" if access_key_id else "standard chain"
        # boto3 clients are thread-safe: one serves every worker thread.
        self.client: Any = client or boto3.client(
            "s3",
            endpoint_url=endpoint_url or None,
            region_name=region_name or None,
            aws_access_key_id=access_key_id or None,
            aws_secret_access_key=secret_access_key or None,
            config=_CLIENT_CONFIG,
        )

    def __repr__(self) -> str:
        return f"S3Storage({self.label!r}, credentials={self.credentials!r})"

    async def download(self, key: str, dest: Path) -> None:
        def run() -> None:
            dest.parent.mkdir(parents=True, exist_ok=True)
            # s3transfer downloads into a temporary name beside dest and renames it.
            self.client.download_file(self.bucket, key, str(dest))

        await self._call(key, run)

    async def read(self, key: str) -> bytes:
        def run() -> bytes:
            response = self.client.get_object(Bucket=self.bucket, Key=key)
            data: bytes = response["Body"].read()
            return data

        return await self._call(key, run)

    async def read_range(self, key: str, start: int, end_inclusive: int) -> bytes:
        _check_range(start, end_inclusive)

        def run() -> bytes:
            response = self.client.get_object(
                Bucket=self.bucket, Key=key, Range=f"bytes={start}-{end_inclusive}"
            )
            data: bytes = response["Body"].read()
            return data

        try:
            return await self._call(key, run)
        except ClientError as exc:
            # S3 refuses a range that starts at or past the end; so do we, with no bytes.
            if _error_code(exc) == "InvalidRange":
                return b""
            raise

    async def upload(self, key: str, src: Path, content_type: str) -> None:
        # upload_file switches to multipart for large files (recordings run to gigabytes).
        await asyncio.to_thread(
            self.client.upload_file,
            str(src),
            self.bucket,
            key,
            ExtraArgs={"ContentType": content_type},
        )

    async def write(self, key: str, data: bytes, content_type: str) -> None:
        await asyncio.to_thread(
            self.client.put_object,
            Bucket=self.bucket,
            Key=key,
            Body=data,
            ContentType=content_type,
        )

    async def size(self, key: str) -> int | None:
        def run() -> int:
            response = self.client.head_object(Bucket=self.bucket, Key=key)
            return int(response["ContentLength"])

        try:
            return await self._call(key, run)
        except ObjectMissing:
            return None

    async def delete(self, key: str) -> None:
        await asyncio.to_thread(self.client.delete_object, Bucket=self.bucket, Key=key)

    async def presigned_url(self, key: str, seconds: int) -> str:
        # Signed locally, no request; in a thread, as finding credentials may block.
        url: str = await asyncio.to_thread(
            self.client.generate_presigned_url,
            "get_object",
            Params={"Bucket": self.bucket, "Key": key},
            ExpiresIn=seconds,
        )
        return url

    async def list_keys(self, prefix: str = "") -> AsyncIterator[str]:
        request: dict[str, Any] = {
            "Bucket": self.bucket,
            "Prefix": self.prefix + prefix,
            "MaxKeys": self.list_page_size,
        }
        while True:
            page = await asyncio.to_thread(self._list_page, request)
            for item in page.get("Contents", ()):
                yield str(item["Key"])
            token = page.get("NextContinuationToken")
            if not page.get("IsTruncated") or not token:
                return
            request = {**request, "ContinuationToken": str(token)}

    def _list_page(self, request: dict[str, Any]) -> dict[str, Any]:
        try:
            page: dict[str, Any] = self.client.list_objects_v2(**request)
        except ClientError as exc:
            if _error_code(exc) == "AccessDenied":
                raise ListingDenied(
                    f"Listing {self.label} was refused (AccessDenied): the IAM policy of the "
                    f"credentials Reflector uses lacks s3:ListBucket on "
                    f"arn:aws:s3:::{self.bucket}; add it so that missed recordings are found."
                ) from exc
            raise
        return page

    async def _call(self, key: str, run: Callable[[], T]) -> T:
        try:
            return await asyncio.to_thread(run)
        except ClientError as exc:
            if _error_code(exc) in _MISSING_CODES:
                raise ObjectMissing(f"{self.label} has no object {key!r}") from exc
            raise


class LocalStorage:
    """A folder used as a bucket: key `a/b.mp4` is the file `<root>/a/b.mp4`.

    Writes go to a hidden temporary file beside the target and are renamed into place, so a
    reader never sees half a file; listings skip those temporary files. Content types are
    not kept."""

    def __init__(self, root: Path, prefix: str = "") -> None:
        self.root = root
        self.prefix = _folder_prefix(prefix)
        uri = root.resolve().as_uri()
        self.label = f"{uri}/{self.prefix}" if self.prefix else uri

    def __repr__(self) -> str:
        return f"LocalStorage({self.label!r})"

    def path(self, key: str) -> Path:
        """The file a key maps to; ValueError for keys that would leave the folder."""
        pure = PurePosixPath(key)
        parts = key.split("/")
        if (
            not key
            or "\0" in key
            or pure.is_absolute()
            or any(part in ("", ".", "..") for part in parts)
        ):
            raise ValueError(f"object key {key!r} is not a plain relative path")
        path = self.root.joinpath(*parts)
        # A symlink inside the folder could still point outside it.
        if not path.resolve().is_relative_to(self.root.resolve()):
            raise ValueError(f"object key {key!r} leads outside {self.root}")
        return path

    async def download(self, key: str, dest: Path) -> None:
        source = self.path(key)

        def run() -> None:
            dest.parent.mkdir(parents=True, exist_ok=True)
            try:
                _atomic(dest, lambda partial: shutil.copyfile(source, partial))
            except (FileNotFoundError, IsADirectoryError) as exc:
                raise ObjectMissing(f"{self.label} has no object {key!r}") from exc

        await asyncio.to_thread(run)

    async def read(self, key: str) -> bytes:
        path = self.path(key)
        try:
            return await asyncio.to_thread(path.read_bytes)
        except (FileNotFoundError, IsADirectoryError) as exc:
            raise ObjectMissing(f"{self.label} has no object {key!r}") from exc

    async def read_range(self, key: str, start: int, end_inclusive: int) -> bytes:
        _check_range(start, end_inclusive)
        path = self.path(key)

        def run() -> bytes:
            with path.open("rb") as file:
                file.seek(start)
                return file.read(end_inclusive - start + 1)

        try:
            return await asyncio.to_thread(run)
        except (FileNotFoundError, IsADirectoryError) as exc:
            raise ObjectMissing(f"{self.label} has no object {key!r}") from exc

    async def upload(self, key: str, src: Path, content_type: str) -> None:
        path = self.path(key)

        def run() -> None:
            path.parent.mkdir(parents=True, exist_ok=True)
            _atomic(path, lambda partial: shutil.copyfile(src, partial))

        await asyncio.to_thread(run)

    async def write(self, key: str, data: bytes, content_type: str) -> None:
        path = self.path(key)

        def run() -> None:
            path.parent.mkdir(parents=True, exist_ok=True)
            _atomic(path, lambda partial: partial.write_bytes(data))

        await asyncio.to_thread(run)

    async def size(self, key: str) -> int | None:
        path = self.path(key)

        def run() -> int | None:
            try:
                stat = path.stat()
            except FileNotFoundError:
                return None
            return stat.st_size if path.is_file() else None

        return await asyncio.to_thread(run)

    async def delete(self, key: str) -> None:
        path = self.path(key)
        await asyncio.to_thread(self._delete, path)

    async def presigned_url(self, key: str, seconds: int) -> None:
        # A folder has no links to hand out.
        return None

    def _delete(self, path: Path) -> None:
        path.unlink(missing_ok=True)
        # S3 has no folders: drop the ones emptied, so listings and disk stay tidy.
        root = self.root.resolve()
        parent = path.parent.resolve()
        while parent != root and parent.is_relative_to(root):
            try:
                parent.rmdir()
            except OSError:
                return
            parent = parent.parent

    async def list_keys(self, prefix: str = "") -> AsyncIterator[str]:
        keys = await asyncio.to_thread(self._keys, self.prefix + prefix)
        for key in keys:
            yield key

    def _keys(self, prefix: str) -> list[str]:
        folder, _, _ = prefix.rpartition("/")
        start = self.path(folder) if folder else self.root
        found: list[str] = []
        for directory, _dirs, files in os.walk(start):
            relative = Path(directory).relative_to(self.root).as_posix()
            for name in files:
                if _is_partial(name):
                    continue
                key = name if relative == "." else f"{relative}/{name}"
                if key.startswith(prefix):
                    found.append(key)
        # Code point order is UTF-8 byte order: the order S3 lists in.
        return sorted(found)


def _check_range(start: int, end_inclusive: int) -> None:
    if start < 0 or end_inclusive < start:
        raise ValueError(f"not a byte range: {start}-{end_inclusive}")


def _is_partial(name: str) -> bool:
    return name.startswith(".") and name.endswith(".part")


def _atomic(target: Path, fill: Callable[[Path], object]) -> None:
    # The random part keeps two writers of the same key apart; the later rename wins, as in S3.
    partial = target.with_name(f".{target.name}.{secrets.token_hex(4)}.part")
    try:
        fill(partial)
        partial.replace(target)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise


def standard_credentials_found() -> bool:
    """Whether boto3's standard chain (environment, ~/.aws, container or instance role) finds
    credentials. On a machine without any, this may wait about a second for the instance
    metadata service to not answer."""
    return boto3.Session().get_credentials() is not None


def recording_storage(settings: Settings) -> Storage:
    """Where the recordings are: the S3 bucket Whereby records into, or the local folder.

    S3 when RECORDING_STORAGE_AWS_BUCKET_NAME is set and S3 is configured (AWS_ENDPOINT_URL,
    standard AWS credentials, or AWS_WHEREBY_ACCESS_KEY_ID), read with the standard
    credentials when there are any, else with Whereby's keys. The local sandbox
    (WHEREBY_SANDBOX, or no WHEREBY_API_KEY at all) writes to S3 only when an endpoint is set;
    otherwise to `RECORDINGS_DIR/<bucket>/<key>`, which is then where they are read from too.
    """
    name = settings.RECORDING_STORAGE_AWS_BUCKET_NAME
    if not name:
        return LocalStorage(settings.recordings_dir / DEFAULT_BUCKET)
    bucket, prefix = split_bucket(name)
    local = LocalStorage(settings.recordings_dir / bucket, prefix)
    endpoint = settings.AWS_ENDPOINT_URL
    sandbox = settings.WHEREBY_SANDBOX or not settings.whereby_configured
    if sandbox and endpoint is None:
        return local
    whereby_key = settings.AWS_WHEREBY_ACCESS_KEY_ID
    standard = standard_credentials_found()
    if not (endpoint or standard or whereby_key):
        return local
    if standard or whereby_key is None:
        return S3Storage(name, endpoint_url=endpoint, region_name=settings.AWS_DEFAULT_REGION)
    secret = settings.AWS_WHEREBY_ACCESS_KEY_SECRET
    if secret is None:
        raise ConfigError(
            "Configuration error: AWS_WHEREBY_ACCESS_KEY_SECRET: needed with "
            "AWS_WHEREBY_ACCESS_KEY_ID to read the recording bucket (or provide standard AWS "
            "credentials)."
        )
    return S3Storage(
        name,
        access_key_id=whereby_key.get_secret_value(),
        secret_access_key=secret.get_secret_value(),
        endpoint_url=endpoint,
        region_name=settings.AWS_DEFAULT_REGION,
    )


def derived_storage(settings: Settings) -> Storage:
    """Where derived files go: DERIVED_STORAGE_BUCKET (standard AWS credentials), else the
    folder DATA_DIR/derived."""
    if settings.DERIVED_STORAGE_BUCKET:
        return S3Storage(
            settings.DERIVED_STORAGE_BUCKET,
            endpoint_url=settings.AWS_ENDPOINT_URL,
            region_name=settings.AWS_DEFAULT_REGION,
        )
    return LocalStorage(settings.DATA_DIR / DERIVED_FOLDER)
