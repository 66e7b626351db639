"""Where the pipeline keeps each step's output, so that a re-run skips finished steps and a run
that died resumes at the step it was in.

Two places: a local folder (`reflector process`) and a Storage bucket or folder (room
recordings, so that a job redelivered to another worker finds the work of the first). Outputs
are referred to by key, never by presigned URL.
"""

from __future__ import annotations

import asyncio
import os
import shutil
from pathlib import Path
from typing import Protocol

from reflector.recordings.storage import ObjectMissing, Storage


class StepStore(Protocol):
    def key(self, name: str) -> str:
        """The key `name` is saved under."""

    async def load(self, name: str) -> bytes | None:
        """The bytes saved under `name`, or None when nothing was."""

    async def save(self, name: str, data: bytes, content_type: str) -> str:
        """Store `data` under `name` (atomically: all or nothing); returns its key."""

    async def save_file(self, name: str, path: Path, content_type: str) -> str:
        """Store a file under `name`; returns its key. The file may be moved."""

    async def local_copy(self, key: str, workdir: Path) -> Path:
        """A local path holding the file saved under `key`, fetching it into workdir if the
        store is remote."""


class DirectoryStore:
    """Step outputs as files in one folder: `<name>` under `root`; keys are the names."""

    def __init__(self, root: Path) -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True)

    def key(self, name: str) -> str:
        return name

    def _path(self, name: str) -> Path:
        if Path(name).is_absolute() or ".." in Path(name).parts:
            raise ValueError(f"step output names stay inside the folder: {name!r}")
        return self.root / name

    # Small files and renames: quick, but still off the event loop.
    async def load(self, name: str) -> bytes | None:
        path = self._path(name)
        return await asyncio.to_thread(lambda: path.read_bytes() if path.is_file() else None)

    async def save(self, name: str, data: bytes, content_type: str) -> str:
        path = self._path(name)

        def write() -> None:
            path.parent.mkdir(parents=True, exist_ok=True)
            partial = path.with_name(path.name + ".partial")
            partial.write_bytes(data)
            os.replace(partial, path)

        await asyncio.to_thread(write)
        return name

    async def save_file(self, name: str, path: Path, content_type: str) -> str:
        target = self._path(name)

        def move() -> None:
            if path.resolve() != target.resolve():
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.move(path, target)

        await asyncio.to_thread(move)
        return name

    async def local_copy(self, key: str, workdir: Path) -> Path:
        path = self._path(key)
        if not await asyncio.to_thread(path.is_file):
            raise FileNotFoundError(f"{path} is gone; delete {self.root} to start over")
        return path


class StorageStore:
    """Step outputs as objects under `<prefix>` in a Storage (S3 bucket or local folder)."""

    def __init__(self, storage: Storage, prefix: str) -> None:
        self.storage = storage
        self.prefix = prefix.rstrip("/") + "/"

    def key(self, name: str) -> str:
        return self.prefix + name

    async def load(self, name: str) -> bytes | None:
        try:
            return await self.storage.read(self.key(name))
        except ObjectMissing:
            return None

    async def save(self, name: str, data: bytes, content_type: str) -> str:
        key = self.key(name)
        await self.storage.write(key, data, content_type)
        return key

    async def save_file(self, name: str, path: Path, content_type: str) -> str:
        key = self.key(name)
        await self.storage.upload(key, path, content_type)
        return key

    async def local_copy(self, key: str, workdir: Path) -> Path:
        dest = workdir / key.rsplit("/", 1)[-1]
        if not dest.is_file():
            await self.storage.download(key, dest)
        return dest
