"""The storage seam against a real S3 API (moto on loopback) and a real folder."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from reflector.recordings.storage import (
    ListingDenied,
    LocalStorage,
    ObjectMissing,
    S3Storage,
    Storage,
    derived_storage,
    recording_storage,
    split_bucket,
)
from reflector.settings import ConfigError
from tests.conftest import make_settings
from tests.recordings.conftest import (
    FAKE_KEY,
    REGION,
    aws_client,
    isolate_from_machine_aws,
    unique_name,
)

KEY_NAME = "standup-0b1fbe30-2346-4681-85a5-f309f11e509f-2023-10-31T13:09:35Z.mp4"


def s3_storage(endpoint: str, name: str, **options: object) -> S3Storage:
    return S3Storage(
        name,
        endpoint_url=endpoint,
        access_key_id=FAKE_KEY,
        secret_access_key=FAKE_KEY,
        region_name=REGION,
        **options,  # type: ignore[arg-type]
    )


async def keys(storage: Storage, prefix: str = "") -> list[str]:
    return [key async for key in storage.list_keys(prefix)]


async def round_trip(storage: Storage, tmp_path: Path) -> None:
    """What every storage does alike; keys are full keys, under the storage's prefix."""
    p = storage.prefix
    first, second = f"{p}{KEY_NAME}", f"{p}team b/2nd talk+notes.mp4"
    await storage.write(first, b"first recording", "video/mp4")
    assert await storage.read(first) == b"first recording"
    assert await storage.size(first) == len(b"first recording")

    source = tmp_path / "source.bin"
    source.write_bytes(os.urandom(200_000))
    await storage.upload(second, source, "video/mp4")
    dest = tmp_path / "out" / "nested" / "copy.bin"
    await storage.download(second, dest)
    assert dest.read_bytes() == source.read_bytes()
    # Downloading again replaces the file whole.
    await storage.write(second, b"shorter", "video/mp4")
    await storage.download(second, dest)
    assert dest.read_bytes() == b"shorter"

    # Overwrite, then objects outside the prefix stay out of its listings.
    await storage.write(first, b"again", "video/mp4")
    assert await storage.read(first) == b"again"
    await storage.write(f"{p}team a/x.json", b"{}", "application/json")
    assert await keys(storage) == sorted([first, second, f"{p}team a/x.json"])
    assert await keys(storage, "team ") == [f"{p}team a/x.json", second]
    assert await keys(storage, "team a/") == [f"{p}team a/x.json"]
    assert await keys(storage, "nothing/") == []

    await storage.delete(first)
    await storage.delete(first)  # missing is fine
    assert await storage.size(first) is None
    with pytest.raises(ObjectMissing):
        await storage.read(first)
    missing_dest = tmp_path / "missing.bin"
    with pytest.raises(ObjectMissing):
        await storage.download(first, missing_dest)
    assert not missing_dest.exists()
    assert await keys(storage) == [f"{p}team a/x.json", second]


# --- S3 ------------------------------------------------------------------------------------


@pytest.mark.parametrize("folder", ["", "recordings", "recordings/raw/"])
async def test_s3_round_trip(moto_server: str, tmp_path: Path, folder: str) -> None:
    bucket = unique_name("store")
    aws_client("s3", moto_server).create_bucket(Bucket=bucket)
    storage = s3_storage(moto_server, f"{bucket}/{folder}" if folder else bucket)
    expected_prefix = folder.strip("/") + "/" if folder else ""
    assert (storage.bucket, storage.prefix) == (bucket, expected_prefix)
    assert storage.label == f"s3://{bucket}/{expected_prefix}"
    if folder:
        # Something beside the sub-folder, which its listings must not show.
        aws_client("s3", moto_server).put_object(Bucket=bucket, Key="zz-outside", Body=b"x")
    await round_trip(storage, tmp_path)
    head = aws_client("s3", moto_server).head_object(
        Bucket=bucket, Key=f"{expected_prefix}team a/x.json"
    )
    assert head["ContentType"] == "application/json"


async def test_s3_listing_pages(moto_server: str) -> None:
    bucket = unique_name("pages")
    s3 = aws_client("s3", moto_server)
    s3.create_bucket(Bucket=bucket)
    names = [f"rec/{index:02d}.mp4" for index in range(7)]
    for name in [*names, "other/x.mp4"]:
        s3.put_object(Bucket=bucket, Key=name, Body=b"x")
    storage = s3_storage(moto_server, f"{bucket}/rec", list_page_size=2)
    assert await keys(storage) == names


async def test_s3_from_the_environment(aws_env: str, tmp_path: Path) -> None:
    # No endpoint, credentials or region given: boto3 takes them from the environment.
    bucket = unique_name("env")
    aws_client("s3", aws_env).create_bucket(Bucket=bucket)
    storage = S3Storage(bucket)
    assert storage.credentials == "standard chain"
    await storage.write("a.txt", b"hello", "text/plain")
    assert await keys(storage) == ["a.txt"]


@contextmanager
def iam_enforced(endpoint: str) -> Iterator[None]:
    """moto evaluates IAM policies (and signatures) for every request, for the duration.
    It is a switch of the whole moto process, hence the restore."""
    answer = httpx.post(f"{endpoint}/moto-api/reset-auth", content=b"0")
    answer.raise_for_status()
    previous = answer.json()["PREVIOUS_INITIAL_NO_AUTH_ACTION_COUNT"]
    try:
        yield
    finally:
        httpx.post(f"{endpoint}/moto-api/reset-auth", content=previous.encode()).raise_for_status()


async def test_listing_refused_says_what_the_policy_lacks(moto_server: str) -> None:
    # moto enforces identity policies (not bucket policies): a user allowed to read and write
    # objects, but not to list the bucket, as with a policy that forgot s3:ListBucket.
    bucket, user = unique_name("locked"), unique_name("reader")
    s3, iam = aws_client("s3", moto_server), aws_client("iam", moto_server)
    s3.create_bucket(Bucket=bucket)
    s3.put_object(Bucket=bucket, Key="recordings/a.mp4", Body=b"x")
    iam.create_user(UserName=user)
    policy = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Action": ["s3:GetObject", "s3:PutObject"],
                "Resource": f"arn:aws:s3:::{bucket}/*",
            }
        ],
    }
    iam.put_user_policy(UserName=user, PolicyName="objects", PolicyDocument=json.dumps(policy))
    access = iam.create_access_key(UserName=user)["AccessKey"]
    storage = S3Storage(
        f"{bucket}/recordings",
        access_key_id=access["AccessKeyId"],
        secret_access_key=access["SecretAccessKey"],
        endpoint_url=moto_server,
        region_name=REGION,
    )
    with iam_enforced(moto_server):
        assert await storage.read("recordings/a.mp4") == b"x"
        with pytest.raises(ListingDenied) as caught:
            await keys(storage)
    message = str(caught.value)
    assert "s3:ListBucket" in message
    assert f"arn:aws:s3:::{bucket}" in message
    assert f"s3://{bucket}/recordings/" in message
    # Enforcement is off again: the default credentials list as before.
    assert await keys(s3_storage(moto_server, bucket)) == ["recordings/a.mp4"]


def test_split_bucket() -> None:
    assert split_bucket("b") == ("b", "")
    assert split_bucket("b/") == ("b", "")
    assert split_bucket("b/x") == ("b", "x/")
    assert split_bucket("s3://b/x/y/") == ("b", "x/y/")
    with pytest.raises(ValueError, match="bucket name"):
        split_bucket("/x")


# --- A folder ------------------------------------------------------------------------------


@pytest.mark.parametrize("prefix", ["", "recordings"])
async def test_local_round_trip(tmp_path: Path, prefix: str) -> None:
    root = tmp_path / "bucket"
    storage = LocalStorage(root, prefix)
    assert storage.prefix == (f"{prefix}/" if prefix else "")
    assert storage.label == root.resolve().as_uri() + (f"/{prefix}/" if prefix else "")
    if prefix:
        root.mkdir()
        (root / "zz-outside").write_bytes(b"x")
    await round_trip(storage, tmp_path)
    # A deleted object's emptied folders go too; the root stays.
    await storage.delete(f"{storage.prefix}team a/x.json")
    assert not (root / storage.prefix / "team a").exists()
    assert root.is_dir()


async def test_local_empty_or_absent_folder_lists_nothing(tmp_path: Path) -> None:
    assert await keys(LocalStorage(tmp_path / "absent")) == []
    assert await keys(LocalStorage(tmp_path / "absent", "sub")) == []
    assert await LocalStorage(tmp_path / "absent").size("a") is None


@pytest.mark.parametrize(
    "key",
    ["", "/etc/passwd", "../x", "a/../../x", "a/..", "./a", "a//b", "a/", "a\0b", "a/./b"],
)
async def test_local_keys_stay_inside(tmp_path: Path, key: str) -> None:
    storage = LocalStorage(tmp_path / "bucket")
    with pytest.raises(ValueError, match="object key"):
        await storage.write(key, b"x", "text/plain")
    with pytest.raises(ValueError, match="object key"):
        await storage.read(key)
    assert not (tmp_path / "bucket").exists()


async def test_local_symlink_out_of_the_folder_is_refused(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_text("secret")
    root = tmp_path / "bucket"
    root.mkdir()
    (root / "link").symlink_to(outside)
    storage = LocalStorage(root)
    with pytest.raises(ValueError, match="outside"):
        await storage.read("link/secret.txt")
    with pytest.raises(ValueError, match="outside"):
        await keys(storage, "link/")


async def test_local_writes_are_atomic(tmp_path: Path) -> None:
    root = tmp_path / "bucket"
    storage = LocalStorage(root)
    await storage.write("a/rec.mp4", b"complete", "video/mp4")
    # A write that fails half-way leaves the old object and no temporary file behind.
    with pytest.raises(FileNotFoundError):
        await storage.upload("a/rec.mp4", tmp_path / "no-such-file", "video/mp4")
    assert await storage.read("a/rec.mp4") == b"complete"
    assert [p.name for p in (root / "a").iterdir()] == ["rec.mp4"]
    # Someone else's write in progress (the sandbox's, or another worker's) is not listed.
    (root / "a" / ".next.mp4.1a2b3c4d.part").write_bytes(b"half")
    (root / ".hidden").write_bytes(b"a real object whose name starts with a dot")
    assert await keys(storage) == [".hidden", "a/rec.mp4"]


# --- Choosing a storage from the settings ---------------------------------------------------


@pytest.fixture
def no_aws(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    isolate_from_machine_aws(monkeypatch, tmp_path)


WHEREBY_KEYS = {"AWS_WHEREBY_ACCESS_KEY_ID": "AKIAWHEREBY", "AWS_WHEREBY_ACCESS_KEY_SECRET": "s"}


@pytest.mark.usefixtures("no_aws")
def test_without_s3_the_sandbox_folder_is_the_bucket(tmp_path: Path) -> None:
    settings = make_settings(tmp_path)
    assert settings.recordings_dir == tmp_path / "data" / "recordings"
    storage = recording_storage(settings)
    assert isinstance(storage, LocalStorage)
    assert storage.root == tmp_path / "data" / "recordings" / "whereby"

    # The sandbox (no WHEREBY_API_KEY) without an endpoint writes <dir>/<bucket>/<key>, even
    # with Whereby's keys set.
    elsewhere = tmp_path / "elsewhere"
    settings = make_settings(
        tmp_path,
        RECORDINGS_DIR=elsewhere,
        RECORDING_STORAGE_AWS_BUCKET_NAME="my-bucket/team",
        **WHEREBY_KEYS,
    )
    storage = recording_storage(settings)
    assert isinstance(storage, LocalStorage)
    assert (storage.root, storage.prefix) == (elsewhere / "my-bucket", "team/")

    # Real Whereby, a bucket, but no S3 configuration at all.
    settings = make_settings(
        tmp_path, WHEREBY_API_KEY="k", RECORDING_STORAGE_AWS_BUCKET_NAME="my-bucket"
    )
    storage = recording_storage(settings)
    assert isinstance(storage, LocalStorage)
    assert storage.root == tmp_path / "data" / "recordings" / "my-bucket"


@pytest.mark.usefixtures("no_aws")
async def test_whereby_keys_read_the_bucket_without_standard_credentials(
    moto_server: str, tmp_path: Path
) -> None:
    bucket = unique_name("whereby")
    aws_client("s3", moto_server).create_bucket(Bucket=bucket)
    settings = make_settings(
        tmp_path,
        WHEREBY_API_KEY="k",
        RECORDING_STORAGE_AWS_BUCKET_NAME=f"{bucket}/raw",
        AWS_ENDPOINT_URL=moto_server,
        AWS_DEFAULT_REGION=REGION,
        **WHEREBY_KEYS,
    )
    storage = recording_storage(settings)
    assert isinstance(storage, S3Storage)
    assert (storage.bucket, storage.prefix, storage.credentials) == (bucket, "raw/", "explicit")
    await storage.write("raw/a.mp4", b"x", "video/mp4")
    assert await keys(storage) == ["raw/a.mp4"]


@pytest.mark.usefixtures("no_aws")
def test_whereby_key_without_its_secret_is_a_config_error(tmp_path: Path) -> None:
    settings = make_settings(
        tmp_path,
        WHEREBY_API_KEY="k",
        RECORDING_STORAGE_AWS_BUCKET_NAME="b",
        AWS_WHEREBY_ACCESS_KEY_ID="AKIAWHEREBY",
    )
    with pytest.raises(ConfigError, match="AWS_WHEREBY_ACCESS_KEY_SECRET"):
        recording_storage(settings)


async def test_standard_credentials_come_first(aws_env: str, tmp_path: Path) -> None:
    bucket = unique_name("standard")
    aws_client("s3", aws_env).create_bucket(Bucket=bucket)
    settings = make_settings(
        tmp_path, WHEREBY_API_KEY="k", RECORDING_STORAGE_AWS_BUCKET_NAME=bucket, **WHEREBY_KEYS
    )
    assert aws_env == settings.AWS_ENDPOINT_URL  # read from the environment
    storage = recording_storage(settings)
    assert isinstance(storage, S3Storage)
    assert storage.credentials == "standard chain"
    await storage.write("b.mp4", b"x", "video/mp4")
    assert await storage.size("b.mp4") == 1


def test_sandbox_with_an_endpoint_records_to_s3(aws_env: str, tmp_path: Path) -> None:
    settings = make_settings(tmp_path, RECORDING_STORAGE_AWS_BUCKET_NAME="b/x")
    storage = recording_storage(settings)
    assert isinstance(storage, S3Storage)
    assert storage.label == "s3://b/x/"


@pytest.mark.usefixtures("no_aws")
async def test_derived_storage(
    moto_server: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    storage = derived_storage(make_settings(tmp_path))
    assert isinstance(storage, LocalStorage)
    assert storage.root == tmp_path / "data" / "derived"

    bucket = unique_name("derived")
    aws_client("s3", moto_server).create_bucket(Bucket=bucket)
    settings = make_settings(
        tmp_path,
        DERIVED_STORAGE_BUCKET=f"{bucket}/out",
        AWS_ENDPOINT_URL=moto_server,
        AWS_DEFAULT_REGION=REGION,
        **WHEREBY_KEYS,  # never used for derived files
    )
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", FAKE_KEY)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", FAKE_KEY)
    storage = derived_storage(settings)
    assert isinstance(storage, S3Storage)
    assert (storage.prefix, storage.credentials) == ("out/", "standard chain")
    await storage.write(storage.prefix + "t1/transcript.json", b"{}", "application/json")
    assert await keys(storage, "t1/") == ["out/t1/transcript.json"]


def test_storage_settings_are_validated(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="AWS_ENDPOINT_URL"):
        make_settings(tmp_path, AWS_ENDPOINT_URL="127.0.0.1:9000")
    settings = make_settings(tmp_path, AWS_ENDPOINT_URL="", DERIVED_STORAGE_BUCKET=" ")
    assert settings.AWS_ENDPOINT_URL is None
    assert settings.DERIVED_STORAGE_BUCKET is None
