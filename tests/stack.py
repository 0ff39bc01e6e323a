"""A running Faro for end-to-end tests: its own PostgreSQL database, the API under uvicorn and a
Celery worker as real processes, against real Redis and a fake Twilio over HTTP."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

import httpx
import redis
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

from campaigns.db import make_engine, make_sessionmaker
from campaigns.embedded import upgrade_database
from campaigns.settings import DEV_ACTIONS_TOKEN
from tests.factories import TWILIO_SID, TWILIO_TOKEN
from tests.fakes.twilio import FakeTwilio

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for(check: Callable[[], bool], *, timeout: float = 30.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


class Stack:
    def __init__(
        self,
        *,
        admin_url: str,
        redis_db: int,
        fake: FakeTwilio | None,
        logs: Path,
        port: int = 0,
        redis_url: str | None = None,
        twilio_url: str | None = None,
    ) -> None:
        """``fake``: the in-process fake Twilio; or None and ``twilio_url``, a fake of another
        process's (the benchmarks keep its CPU out of theirs)."""
        if (fake is None) == (twilio_url is None):
            raise ValueError("give the stack either fake or twilio_url")
        self.admin_url = admin_url
        self._fake = fake
        self.twilio_url = fake.base_url if fake is not None else str(twilio_url)
        self.logs = logs
        self.db_name = f"faro_e2e_{uuid.uuid4().hex[:10]}"
        self.database_url = (
            make_url(admin_url).set(database=self.db_name).render_as_string(hide_password=False)
        )
        self.redis_url = redis_url or f"redis://127.0.0.1:6379/{redis_db}"
        self.port = port or free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.processes: dict[str, subprocess.Popen[bytes]] = {}
        self.engine: Any = None
        self.factory: sessionmaker[Session] | None = None

    @property
    def fake(self) -> FakeTwilio:
        if self._fake is None:
            raise RuntimeError("this stack's fake Twilio runs in another process")
        return self._fake

    @property
    def env(self) -> dict[str, str]:
        base = {k: v for k, v in os.environ.items() if not k.startswith("FARO_")}
        return (
            base
            | {
                "FARO_ENV": "test",
                "FARO_DATABASE_URL": self.database_url,
                "FARO_REDIS_URL": self.redis_url,
                "FARO_PUBLIC_URL": self.base_url,
                "FARO_TWILIO_ACCOUNT_SID": TWILIO_SID,
                "FARO_TWILIO_AUTH_TOKEN": TWILIO_TOKEN,
                "FARO_TWILIO_API_URL": self.twilio_url,
                "FARO_LOG_FORMAT": "json",
                "FARO_VAR_DIR": str(self.logs / "var"),
            }
            | (
                {"FARO_RASA_URL": os.environ["FARO_RASA_URL"]}
                if "FARO_RASA_URL" in os.environ
                else {}
            )
        )

    def start(self, *, worker: bool = True) -> None:
        admin = create_engine(self.admin_url, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{self.db_name}"'))
        admin.dispose()
        upgrade_database(self.database_url)
        redis.Redis.from_url(self.redis_url).flushdb()
        engine = make_engine(self.database_url)
        self.engine = engine
        self.factory = make_sessionmaker(engine)
        self.start_api()
        if worker:
            self.start_worker()

    def _spawn(self, name: str, args: list[str]) -> None:
        log = (self.logs / f"{name}.log").open("ab")
        self.processes[name] = subprocess.Popen(
            args,
            cwd=ROOT,
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def start_api(self) -> None:
        self._spawn(
            "api",
            [
                str(BIN / "uvicorn"),
                "api.app:create_app",
                "--factory",
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--log-level",
                "warning",
            ],
        )
        wait_for(self._api_up, timeout=60, what="the API")

    def _api_up(self) -> bool:
        try:
            return httpx.get(f"{self.base_url}/healthz", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    def start_worker(
        self, name: str = "worker", *, queues: str = "conversation,bulk", concurrency: int = 8
    ) -> None:
        self._spawn(
            name,
            [str(BIN / "faro"), "worker", "--queues", queues, "--concurrency", str(concurrency)],
        )
        time.sleep(0.5)

    def kill(self, name: str, sig: int = signal.SIGKILL) -> None:
        proc = self.processes.pop(name)
        os.killpg(proc.pid, sig)
        proc.wait(timeout=30)

    def stop(self) -> None:
        for name in list(self.processes):
            with suppress(subprocess.TimeoutExpired, ProcessLookupError):
                self.kill(name, signal.SIGTERM)
        if self.engine is not None:
            self.engine.dispose()
        admin = create_engine(self.admin_url, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{self.db_name}" WITH (FORCE)'))
        admin.dispose()

    def session(self) -> Session:
        assert self.factory is not None
        return self.factory()

    def log_text(self) -> str:
        return "\n".join(p.read_text(errors="replace") for p in sorted(self.logs.glob("*.log")))


class PrivateRedis:
    """A redis-server of the test's own on a free port: other engineers' and CI's stacks on the
    shared server can never consume this test's tasks, nor this test theirs; and a test may
    kill it and start it again, empty, as a restarted Redis without persistence is."""

    def __init__(self, workdir: Path) -> None:
        self.port = free_port()
        self.workdir = workdir
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.proc = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", str(self.workdir)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            try:
                if redis.Redis.from_url(self.url).ping():
                    return
            except redis.RedisError:
                time.sleep(0.1)
        raise AssertionError("the private redis-server did not start")

    def stop(self) -> None:
        """SIGKILL: whatever it held (queued and unacknowledged tasks) is gone."""
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait(timeout=10)
            self.proc = None


def wait_idle(stack: Stack, quiet_for: float = 5.0, timeout: float = 240) -> None:
    """Until the fake Twilio saw no new message and no callback for ``quiet_for`` seconds."""
    deadline = time.monotonic() + timeout
    last = (len(stack.fake.messages), len(stack.fake.callbacks))
    since = time.monotonic()
    while time.monotonic() < deadline:
        time.sleep(0.5)
        now = (len(stack.fake.messages), len(stack.fake.callbacks))
        if now != last:
            last, since = now, time.monotonic()
        elif time.monotonic() - since >= quiet_for:
            return
    raise AssertionError("the system never went idle")


BOT = ROOT / "bot"
MODEL = BOT / "models" / "current.tar.gz"


class Assistant:
    """Rasa's server and action server as real processes, on free ports.

    ``kill(which)`` SIGKILLs one of them (``"rasa"`` or ``"actions"``) as a crash would, and
    ``restart(which)`` starts it again on the same port and waits until it serves.  Rasa's
    tracker is an SQLite file in ``workdir``, so conversations survive a restart."""

    PARTS = ("actions", "rasa")

    def __init__(self, workdir: Path, faro_url: str) -> None:
        self.workdir = workdir
        self.rasa_port, self.actions_port = free_port(), free_port()
        self.faro_url = faro_url
        self.running: dict[str, subprocess.Popen[bytes]] = {}

    @property
    def rasa_url(self) -> str:
        return f"http://127.0.0.1:{self.rasa_port}"

    @property
    def actions_url(self) -> str:
        return f"http://127.0.0.1:{self.actions_port}"

    @property
    def processes(self) -> list[subprocess.Popen[bytes]]:
        return list(self.running.values())

    def start(self, *, worker: bool = True) -> None:
        if not MODEL.exists():
            raise RuntimeError(f"no trained model at {MODEL}: run `make bot-train` first")
        endpoints = self.workdir / "endpoints.yml"
        endpoints.write_text(
            f"action_endpoint:\n  url: {self.actions_url}/webhook\n"
            "tracker_store:\n  type: SQL\n  dialect: sqlite\n  db: rasa-tracker.db\n"
            "lock_store:\n  type: in_memory\n",
            encoding="utf-8",
        )
        self._spawn("actions")
        self._spawn("rasa")
        self._wait("actions")
        self._wait("rasa")

    def _spawn(self, which: str) -> None:
        rasa = str(BOT / ".venv" / "bin" / "rasa")
        if which == "actions":
            port = str(self.actions_port)
            args = [rasa, "run", "actions", "--actions", "actions", "--port", port]
            cwd = BOT
        else:
            args = [
                rasa, "run", "--enable-api", "-i", "127.0.0.1", "--port", str(self.rasa_port),
                "--model", str(MODEL), "--endpoints", str(self.workdir / "endpoints.yml"),
                "--credentials", str(BOT / "credentials.yml"),
            ]  # fmt: skip
            cwd = self.workdir
        env = os.environ | {
            "FARO_URL": self.faro_url,
            "FARO_ACTIONS_TOKEN": DEV_ACTIONS_TOKEN,
            "RASA_TELEMETRY_ENABLED": "false",
            "SANIC_HOST": "127.0.0.1",
        }
        log = (self.workdir / "rasa.log").open("ab")
        self.running[which] = subprocess.Popen(
            args, cwd=cwd, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )

    def _wait(self, which: str) -> None:
        def up() -> bool:
            try:
                if which == "actions":
                    return httpx.get(f"{self.actions_url}/health", timeout=2).status_code == 200
                status = httpx.get(f"{self.rasa_url}/status", timeout=2).json()
                return bool(status.get("model_file"))
            except (httpx.HTTPError, ValueError):
                return False

        what = "the action server" if which == "actions" else "Rasa to load the model"
        wait_for(up, timeout=240, what=what)

    def kill(self, which: str) -> None:
        """SIGKILL ``"rasa"`` or ``"actions"`` (its whole process group), as a crash would."""
        proc = self.running.pop(which)
        with suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)

    def restart(self, which: str) -> None:
        """Start ``"rasa"`` or ``"actions"`` again on its port; returns once it serves."""
        if which not in self.PARTS:
            raise ValueError(f"unknown part {which!r}")
        if which in self.running:
            self.kill(which)
        self._spawn(which)
        self._wait(which)

    def stop(self) -> None:
        for proc in self.running.values():
            with suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
        for proc in self.running.values():
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                with suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=10)
        self.running.clear()


@contextmanager
def running_stack(
    admin_url: str,
    logs: Path,
    *,
    redis_db: int = 13,
    port: int = 0,
    redis_url: str | None = None,
    worker: bool = True,
    **fake: Any,
) -> Iterator[Stack]:
    logs.mkdir(parents=True, exist_ok=True)
    with FakeTwilio(account_sid=TWILIO_SID, auth_token=TWILIO_TOKEN, **fake) as twilio:
        stack = Stack(
            admin_url=admin_url,
            redis_db=redis_db,
            fake=twilio,
            logs=logs,
            port=port,
            redis_url=redis_url,
        )
        try:
            stack.start(worker=worker)
            yield stack
        finally:
            stack.stop()
