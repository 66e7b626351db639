"""`reflector process FILE`: the pipeline in this process, on a local file, no server.

Step outputs go to a work folder (a temporary one unless --workdir names one, which makes a
second run on the same file resume or reuse what the first one finished)."""

from __future__ import annotations

import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import TextIO

from reflector.pipeline.export import export
from reflector.pipeline.runner import STEPS, Backends, Pipeline, PipelineResult, Request
from reflector.pipeline.store import DirectoryStore


class ProgressBar:
    """One line on a terminal, redrawn in place; whole lines elsewhere (a log file, a pipe),
    written when the step changes and every tenth of a step."""

    WIDTH = 24

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self.tty = stream.isatty()
        self._lock = threading.Lock()
        self._last: tuple[str, int] | None = None
        self._drawn = 0.0

    def __call__(self, step: str, fraction: float) -> None:
        percent = int(fraction * 100)
        with self._lock:
            if self.tty:
                now = time.monotonic()
                if (step, percent) == self._last or (
                    self._last is not None
                    and self._last[0] == step
                    and percent < 100
                    and now - self._drawn < 0.1
                ):
                    return
                self._drawn = now
                self.stream.write("\r" + self._line(step, percent) + "\x1b[K")
            else:
                if self._last is not None and self._last[0] == step:
                    if percent // 10 == self._last[1] // 10 and percent < 100:
                        return
                    if percent == self._last[1]:
                        return
                self.stream.write(self._line(step, percent) + "\n")
            self._last = (step, percent)
            self.stream.flush()

    def _line(self, step: str, percent: int) -> str:
        index = STEPS.index(step) + 1 if step in STEPS else 0
        filled = self.WIDTH * percent // 100
        bar = "#" * filled + "-" * (self.WIDTH - filled)
        return f"[{index}/{len(STEPS)}] {step:<10} [{bar}] {percent:3d}%"

    def close(self) -> None:
        if self.tty and self._last is not None:
            self.stream.write("\n")
            self.stream.flush()


async def process_file(
    source: Path,
    backends: Backends,
    *,
    request: Request,
    workdir: Path | None = None,
    progress: ProgressBar | None = None,
) -> PipelineResult:
    """Run every step on `source`; the folder is removed afterwards unless it was given."""
    folder = workdir or Path(tempfile.mkdtemp(prefix="reflector-process-"))

    async def fetch_source(_into: Path) -> Path:
        return source

    pipeline = Pipeline(
        backends,
        DirectoryStore(folder),
        folder,
        on_progress=progress or (lambda _step, _fraction: None),
    )
    try:
        return await pipeline.run(fetch_source, request)
    finally:
        if progress is not None:
            progress.close()
        if workdir is None:
            shutil.rmtree(folder, ignore_errors=True)


def write_output(result: PipelineResult, fmt: str, output: Path | None) -> None:
    text = export(result.document, fmt)
    if output is None:
        sys.stdout.write(text if text.endswith("\n") else text + "\n")
        sys.stdout.flush()
        return
    output.parent.mkdir(parents=True, exist_ok=True)
    partial = output.with_name(output.name + ".partial")
    partial.write_text(text, encoding="utf-8")
    partial.replace(output)
