"""Running job workers: in this process (`reflector worker`), or as a supervised subprocess
beside `reflector serve` in the embedded default (EmbeddedWorker).

Also an entry point for that subprocess::

    python -m reflector.jobs.worker --queues asr,diarize --concurrency 2
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType

from celery.signals import worker_ready  # type: ignore[import-untyped]
from pydantic import SecretStr

from reflector.jobs.celery_app import QUEUES, TASK_MODULES, create_celery_app
from reflector.logs import configure_logging, get_logger
from reflector.settings import ENV_FILE_VARIABLE, ConfigError, Settings, load_settings

_log = get_logger("reflector.jobs.worker")


def _queues(queues: Sequence[str] | None) -> list[str]:
    chosen = list(queues) if queues else list(QUEUES)
    unknown = sorted(set(chosen) - set(QUEUES))
    if unknown:
        raise ValueError(f"unknown queue {', '.join(unknown)}; the queues are {', '.join(QUEUES)}")
    return chosen


def run_worker(
    settings: Settings,
    queues: Sequence[str] | None = None,
    concurrency: int = 1,
    *,
    pool: str | None = None,
    include: Sequence[str] = TASK_MODULES,
) -> int:
    """Run a Celery worker in this process until it is stopped; returns its exit code.

    It consumes `queues` (default: all of celery_app.QUEUES) with `concurrency` jobs at once:
    one process when 1 (the solo pool), else a prefork pool of that many processes. SIGTERM or
    Ctrl-C: finish the running jobs, then exit; a second one: exit now (the jobs are handed out
    again, see celery_app). Works on every broker, the embedded SQLite queue included.

    Example, as `reflector worker --queues asr,diarize --concurrency 2` calls it::

        settings = load_settings(_env_file=".env")
        raise SystemExit(run_worker(settings, ["asr", "diarize"], concurrency=2))
    """
    if concurrency < 1:
        raise ValueError("concurrency must be at least 1")
    chosen = _queues(queues)
    app = create_celery_app(settings, include=include)
    worker = app.Worker(
        queues=chosen,
        concurrency=concurrency,
        pool_cls=pool or ("solo" if concurrency == 1 else "prefork"),
        loglevel=settings.LOG_LEVEL,
        hostname=f"reflector-{os.getpid()}@{socket.gethostname()}",
        # Events and worker-to-worker chatter serve monitoring tools we do not use; mingle
        # alone costs a second at start.
        without_gossip=True,
        without_mingle=True,
        without_heartbeat=True,
        optimization="fair",
    )
    worker.start()
    return int(worker.exitcode or 0)


def settings_environment(settings: Settings) -> dict[str, str]:
    """Environment variables that give another process exactly these settings (secrets too:
    the child runs as the same user, who can read the env file anyway). Unset values are
    absent; the caller removes them from the inherited environment."""
    dumped = settings.model_dump(mode="json")
    env: dict[str, str] = {}
    for name in type(settings).model_fields:
        raw = getattr(settings, name)
        value = raw.get_secret_value() if isinstance(raw, SecretStr) else dumped[name]
        if value is None:
            continue
        env[name] = value if isinstance(value, str) else json.dumps(value)
    return env


def _exit_with_parent(parent: int) -> bool:
    """Stop this worker once `parent` is no longer its parent; False when it already is not.

    Started beside `reflector serve`: a worker orphaned by a killed server would otherwise
    keep running, and a restarted server would start a second one."""
    if os.getppid() != parent:
        return False

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(1)
        _log.warning("parent process gone; stopping the job worker", parent=parent)
        # A warm shutdown: the running job finishes first.
        os.kill(os.getpid(), signal.SIGTERM)

    def start_watching(**_: object) -> None:
        # Only once Celery handles SIGTERM; before, the signal would kill the process outright.
        threading.Thread(target=watch, name="exit-with-parent", daemon=True).start()

    worker_ready.connect(start_watching, weak=False)
    return True


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m reflector.jobs.worker")
    parser.add_argument("--queues", default="", help="comma-separated; default: all")
    parser.add_argument("--concurrency", type=int, default=1)
    parser.add_argument("--pool", default=None, help="solo or prefork (default by concurrency)")
    parser.add_argument("--include", action="append", default=[], help="a task module")
    parser.add_argument("--env-file", default=None, help="settings file ('' for none)")
    parser.add_argument("--exit-with-parent", type=int, default=None, metavar="PID")
    args = parser.parse_args(argv)
    env_file = args.env_file if args.env_file is not None else os.environ.get(ENV_FILE_VARIABLE)
    if env_file is None:
        env_file = ".env"
    try:
        settings = load_settings(
            _env_file=env_file if env_file and Path(env_file).exists() else None
        )
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return 2
    configure_logging(settings.LOG_LEVEL, settings.LOG_FORMAT)
    if args.exit_with_parent is not None and not _exit_with_parent(args.exit_with_parent):
        _log.warning("parent process gone; not starting the job worker")
        return 0
    queues = [name for name in args.queues.split(",") if name]
    return run_worker(
        settings,
        queues,
        args.concurrency,
        pool=args.pool,
        include=[*TASK_MODULES, *args.include],
    )


class EmbeddedWorker:
    """One job worker as a subprocess of this one, restarted when it dies.

    For the embedded default, where `reflector serve` runs the jobs itself::

        with EmbeddedWorker(settings, env_file=Path(".env")):
            uvicorn.run(app, ...)

    The child gets these exact settings through its environment (plus the env file's path);
    it runs `python -m reflector.jobs.worker`. Start it once per machine, in the server's
    main process (not in each `--workers` process). stop() asks it to finish the running job
    (SIGTERM) and kills it after `stop_timeout`; a job cut short that way, or by a crash, is
    handed out again (on the embedded queue as soon as a worker polls)."""

    def __init__(
        self,
        settings: Settings,
        *,
        env_file: Path | None = None,
        queues: Sequence[str] | None = None,
        concurrency: int = 1,
        include: Sequence[str] = (),
        stop_timeout: float = 10.0,
        restart_delay: float = 1.0,
        max_restart_delay: float = 30.0,
        env: Mapping[str, str] | None = None,
    ) -> None:
        self._command = [
            sys.executable,
            "-m",
            "reflector.jobs.worker",
            f"--queues={','.join(_queues(queues))}",
            f"--concurrency={concurrency}",
            f"--env-file={env_file.resolve() if env_file else ''}",
            f"--exit-with-parent={os.getpid()}",
            *(f"--include={module}" for module in include),
        ]
        child_env = dict(os.environ)
        for name in type(settings).model_fields:
            child_env.pop(name, None)
        child_env.update(settings_environment(settings))
        if env_file is not None:
            child_env[ENV_FILE_VARIABLE] = str(env_file.resolve())
        child_env.update(env or {})
        self._env = child_env
        self._stop_timeout = stop_timeout
        self._restart_delay = restart_delay
        self._max_restart_delay = max_restart_delay
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._process: subprocess.Popen[bytes] | None = None
        self._thread: threading.Thread | None = None
        self._restarts = 0

    @property
    def pid(self) -> int | None:
        process = self._process
        return process.pid if process is not None and process.poll() is None else None

    @property
    def restarts(self) -> int:
        """How many times the worker was started again after it died."""
        return self._restarts

    def start(self) -> None:
        if self._thread is not None:
            raise RuntimeError("EmbeddedWorker already started")
        self._stopping.clear()
        self._spawn()
        self._thread = threading.Thread(target=self._supervise, name="job-worker", daemon=True)
        self._thread.start()

    def _spawn(self, *, restart: bool = False) -> subprocess.Popen[bytes] | None:
        with self._lock:
            if self._stopping.is_set():
                return None
            # Its own session: Ctrl-C in the terminal reaches the server, which then stops the
            # worker itself; otherwise the worker would exit first and be restarted.
            process = subprocess.Popen(  # noqa: S603 (our own interpreter and module)
                self._command, env=self._env, start_new_session=True
            )
            self._restarts += restart
            self._process = process
            _log.info("job worker started", pid=process.pid)
            return process

    def _supervise(self) -> None:
        delay = self._restart_delay
        process = self._process
        while process is not None:
            started = time.monotonic()
            code = process.wait()
            if self._stopping.is_set():
                return
            if time.monotonic() - started > 60:
                delay = self._restart_delay
            _log.warning("job worker exited; starting it again", code=code, in_seconds=delay)
            if self._stopping.wait(delay):
                return
            delay = min(delay * 2, self._max_restart_delay)
            process = self._spawn(restart=True)

    def stop(self) -> None:
        with self._lock:
            self._stopping.set()
            process = self._process
        if process is not None and process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(self._stop_timeout)
            except subprocess.TimeoutExpired:
                _log.warning("job worker did not stop in time; killing it", pid=process.pid)
                process.kill()
                process.wait()
        if self._thread is not None:
            self._thread.join()
            self._thread = None

    def __enter__(self) -> EmbeddedWorker:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()


if __name__ == "__main__":
    sys.exit(main())
