"""What every benchmark needs: a throw-away database, the real server as a child process, an
organization with an admin token, realistic contact CSVs, and a sampler of the server's memory.

Nothing here is faked: the server is ``uvicorn api.app:create_app`` exactly as ``faro run``
starts it (no access log), on a fresh PostgreSQL database migrated with Alembic.
"""

from __future__ import annotations

import csv
import datetime as dt
import json
import os
import random
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import closing, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, Self
from urllib.parse import urlencode

import httpx
import phonenumbers
import psutil
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.pool import NullPool

from campaigns.communities import create_community
from campaigns.db import make_engine, make_sessionmaker, unit_of_work
from campaigns.embedded import upgrade_database
from campaigns.organizations.models import Role
from campaigns.organizations.service import create_organization, create_user, issue_token

ROOT = Path(__file__).resolve().parent.parent
PG_ADMIN_URL = os.environ.get(
    "FARO_BENCH_DATABASE_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)
REDIS_URL = os.environ.get("FARO_BENCH_REDIS_URL", "redis://127.0.0.1:6379/14")

# Where the contacts of the region come from, with one community each and its language.
COUNTRY_WEIGHTS: dict[str, int] = {"MX": 30, "GT": 20, "HN": 15, "SV": 10, "HT": 15, "DO": 10}
COMMUNITIES: dict[str, tuple[str, str, str]] = {
    "MX": ("Tapachula", "America/Mexico_City", "es"),
    "GT": ("Tecún Umán", "America/Guatemala", "es"),
    "HN": ("San Pedro Sula", "America/Tegucigalpa", "es"),
    "SV": ("San Salvador", "America/El_Salvador", "es"),
    "HT": ("Ouanaminthe", "America/Port-au-Prince", "ht"),
    "DO": ("Dajabón", "America/Santo_Domingo", "es"),
}
CSV_HEADER = ("phone", "language", "community", "consent")
_MOBILE_TYPES = (
    phonenumbers.PhoneNumberType.MOBILE,
    phonenumbers.PhoneNumberType.FIXED_LINE_OR_MOBILE,
)


# --- database ---------------------------------------------------------------------------------


@contextmanager
def bench_database() -> Iterator[str]:
    """A new database ``faro_bench_<random>`` migrated to head; dropped when the block ends.
    While it lives, its statistics are kept fresh as autovacuum would (``autoanalyze``)."""
    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    name = f"faro_bench_{uuid.uuid4().hex[:10]}"
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = make_url(PG_ADMIN_URL).set(database=name).render_as_string(hide_password=False)
    try:
        upgrade_database(url)
        with autoanalyze(url):
            yield url
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


AUTOANALYZE_EVERY = 15.0


@contextmanager
def autoanalyze(database_url: str, every: float = AUTOANALYZE_EVERY) -> Iterator[None]:
    """``ANALYZE`` the database every ``every`` seconds while the block runs, if the server's
    autovacuum is off; nothing if it is on.

    Autovacuum (on by default, and on in docs/deploy.md) re-analyzes a table soon after it has
    changed by 10 %, and a new plan follows.  This machine's PostgreSQL runs with ``autovacuum =
    off``: a benchmark's tables, empty when its server connected, then kept the plans made for
    empty tables, and PostgreSQL spent 3.7 ms on a status callback's one-row UPDATE instead of
    0.13 ms (docs/benchmarks.md, "Fourth session").  Benchmarks measure Faro on a database run
    as production runs it.
    """
    engine = create_engine(database_url, isolation_level="AUTOCOMMIT", poolclass=NullPool)
    with engine.connect() as conn:
        on = conn.execute(text("SHOW autovacuum")).scalar() == "on"
    stop = threading.Event()

    def loop() -> None:
        while not stop.wait(every):
            try:
                analyze(database_url)
            except Exception as exc:  # the database is being dropped, or restarting
                print(f"autoanalyze: {type(exc).__name__}, next round", file=sys.stderr)

    thread = None if on else threading.Thread(target=loop, name="autoanalyze", daemon=True)
    if thread is not None:
        thread.start()
    try:
        yield
    finally:
        stop.set()
        if thread is not None:
            thread.join(timeout=60)
        engine.dispose()


def analyze(database_url: str) -> None:
    """Refresh planner statistics, as autovacuum does within a minute of a bulk load."""
    engine = create_engine(database_url, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            conn.execute(text("ANALYZE"))
    finally:
        engine.dispose()


@dataclass(frozen=True)
class Tenant:
    """An organization with an admin token and one community per country (by country code)."""

    organization_id: int
    token: str
    community_ids: dict[str, int]

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


def make_tenant(database_url: str) -> Tenant:
    """Create an organization, its admin, a token and the communities, through the services."""
    engine = make_engine(database_url, pool_size=1, max_overflow=0)
    suffix = uuid.uuid4().hex[:8]
    try:
        with unit_of_work(make_sessionmaker(engine)) as session:
            org = create_organization(session, name=f"Bench {suffix}", country="MX")
            user = create_user(
                session,
                organization_id=org.id,
                email=f"admin-{suffix}@bench.example.org",
                role=Role.admin,
            )
            _, secret = issue_token(session, user=user, name="bench")
            community_ids = {
                country: create_community(
                    session,
                    organization_id=org.id,
                    name=name,
                    country=country,
                    timezone=tz,
                    default_language=language,
                ).id
                for country, (name, tz, language) in COMMUNITIES.items()
            }
            return Tenant(organization_id=org.id, token=secret, community_ids=community_ids)
    finally:
        engine.dispose()


# --- the server ---------------------------------------------------------------------------------


@dataclass
class Server:
    base_url: str
    process: subprocess.Popen[bytes]
    log_path: Path

    @property
    def pid(self) -> int:
        return self.process.pid

    def rss(self) -> int:
        return psutil.Process(self.pid).memory_info().rss

    def cpu_seconds(self) -> float:
        """User plus system CPU time the server has used so far (all its threads)."""
        times = psutil.Process(self.pid).cpu_times()
        return times.user + times.system


def _free_port() -> int:
    import socket

    with closing(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextmanager
def running_server(database_url: str, *, log_dir: Path) -> Iterator[Server]:
    """``uvicorn api.app:create_app --factory`` on a free port, up once /healthz answers."""
    port = _free_port()
    env = {
        **os.environ,
        "FARO_DATABASE_URL": database_url,
        "FARO_REDIS_URL": REDIS_URL,
        "FARO_LOG_LEVEL": "WARNING",
        "FARO_ENV": "development",
    }
    uvicorn = Path(sys.executable).with_name("uvicorn")
    cmd = [str(uvicorn), "api.app:create_app", "--factory", "--host", "127.0.0.1"]
    cmd += ["--port", str(port), "--no-access-log", "--log-level", "warning"]
    log_path = log_dir / f"server-{port}.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    server = Server(base_url=f"http://127.0.0.1:{port}", process=process, log_path=log_path)
    try:
        _wait_healthy(server)
        yield server
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _wait_healthy(server: Server, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    with httpx.Client(base_url=server.base_url, timeout=2.0) as client:
        while time.monotonic() < deadline:
            if server.process.poll() is not None:
                break
            try:
                if client.get("/healthz").status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.1)
    tail = server.log_path.read_text(errors="replace")[-2000:]
    raise RuntimeError(f"the server did not become healthy; its log ends with:\n{tail}")


class RssSampler:
    """Samples a process's resident set size in a background thread; ``peak`` is the maximum."""

    def __init__(self, pid: int, interval: float = 0.01) -> None:
        self._process = psutil.Process(pid)
        self._interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rss-sampler", daemon=True)
        self.peak = 0
        self.samples = 0

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                rss = self._process.memory_info().rss
            except psutil.Error:
                return
            self.peak = max(self.peak, rss)
            self.samples += 1
            self._stop.wait(self._interval)

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._stop.set()
        self._thread.join()


# --- contact CSVs -------------------------------------------------------------------------------


@dataclass
class _NumberSource:
    """Distinct valid mobile numbers: each country's example mobile with a random tail."""

    rng: random.Random
    seen: set[str] = field(default_factory=set)

    def next(self, country: str) -> phonenumbers.PhoneNumber:
        example = phonenumbers.example_number_for_type(country, phonenumbers.PhoneNumberType.MOBILE)
        if example is None:
            raise ValueError(f"phonenumbers has no example mobile for {country}")
        base = str(example.national_number)
        while True:
            tail = f"{self.rng.randrange(10**6):06d}"
            candidate = phonenumbers.parse(f"+{example.country_code}{base[:-6]}{tail}")
            if not phonenumbers.is_valid_number(candidate):
                continue
            if phonenumbers.number_type(candidate) not in _MOBILE_TYPES:
                continue
            e164 = phonenumbers.format_number(candidate, phonenumbers.PhoneNumberFormat.E164)
            if e164 in self.seen:
                continue
            self.seen.add(e164)
            return candidate


def _written(number: phonenumbers.PhoneNumber, rng: random.Random) -> str:
    """The number as people type it: E.164, spaced international, or Mexico's old ``+521``."""
    pick = rng.random()
    if number.country_code == 52 and pick < 0.2:
        return f"+521{number.national_number}"
    if pick < 0.5:
        return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.INTERNATIONAL)


# Rows the importer must reject, one per reason it gives.
_INVALID_ROWS: tuple[tuple[str, str, str, str], ...] = (
    ("call me", "", "", "yes"),
    ("+52 55", "es", "", ""),
    ("+502 2245 6789", "es", "Tecún Umán", "yes"),  # a Guatemalan landline
    ("+50251234567", "de", "", ""),
    ("+50370123456", "", "Atlantis", ""),
    ("+50934101234", "ht", "Ouanaminthe", "maybe"),
)


def contact_rows(
    count: int, *, seed: int, invalid_share: float = 0.02, duplicate_share: float = 0.02
) -> list[tuple[str, str, str, str]]:
    """``count`` CSV rows (phone, language, community, consent), deterministic for ``seed``.

    About ``invalid_share`` of them are rejected by the importer for varied reasons and about
    ``duplicate_share`` repeat an earlier number (written differently); every other row is a
    new valid mobile of MX, GT, HN, SV, HT or DO.  A prefix of the list keeps these shares.
    """
    rng = random.Random(seed)
    numbers = _NumberSource(rng)
    countries = list(COUNTRY_WEIGHTS)
    weights = list(COUNTRY_WEIGHTS.values())
    earlier: list[phonenumbers.PhoneNumber] = []
    rows: list[tuple[str, str, str, str]] = []
    for i in range(count):
        pick = rng.random()
        if pick < invalid_share:
            rows.append(_INVALID_ROWS[i % len(_INVALID_ROWS)])
            continue
        if pick < invalid_share + duplicate_share and earlier:
            number = rng.choice(earlier)
        else:
            number = numbers.next(rng.choices(countries, weights)[0])
            earlier.append(number)
        country = phonenumbers.region_code_for_number(number) or ""
        name, _, community_language = COMMUNITIES[country]
        language = ""
        if rng.random() < 0.4:
            language = rng.choice((community_language, community_language, "en", "fr"))
        community = name if rng.random() < 0.8 else ""
        consent = rng.choices(("yes", "sí", "no", ""), (45, 5, 10, 40))[0]
        rows.append((_written(number, rng), language, community, consent))
    return rows


def write_csv(path: Path, rows: Sequence[tuple[str, str, str, str]]) -> int:
    """Write the header and ``rows`` as UTF-8 CSV; returns the file's size in bytes."""
    with path.open("w", encoding="utf-8", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(CSV_HEADER)
        writer.writerows(rows)
    return path.stat().st_size


def file_chunks(path: Path, size: int = 64 * 1024) -> Iterator[bytes]:
    """The file in chunks, so the upload streams from disk (chunked transfer encoding)."""
    with path.open("rb") as f:
        while chunk := f.read(size):
            yield chunk


def import_csv(client: httpx.Client, tenant: Tenant, path: Path) -> tuple[float, dict[str, Any]]:
    """POST the file to /v1/contacts/import; returns (wall seconds, the import report)."""
    start = time.perf_counter()
    response = client.post(
        "/v1/contacts/import",
        content=file_chunks(path),
        headers={**tenant.headers, "Content-Type": "text/csv"},
        timeout=httpx.Timeout(900.0),
    )
    elapsed = time.perf_counter() - start
    if response.status_code != 200:
        raise RuntimeError(f"import failed: {response.status_code} {response.text[:500]}")
    report: dict[str, Any] = response.json()
    return elapsed, report


# --- figures ------------------------------------------------------------------------------------


def load_average() -> float:
    """The one-minute load average: above ~0.5 before a run, something else shares the CPUs."""
    return round(os.getloadavg()[0], 2)


def mib(n_bytes: float) -> float:
    return round(n_bytes / 2**20, 1)


def latency_summary(seconds: Sequence[float]) -> dict[str, float]:
    """p50, p95, p99 and max in milliseconds."""
    cuts = statistics.quantiles(seconds, n=100, method="inclusive")
    return {
        "p50_ms": round(cuts[49] * 1000, 2),
        "p95_ms": round(cuts[94] * 1000, 2),
        "p99_ms": round(cuts[98] * 1000, 2),
        "max_ms": round(max(seconds) * 1000, 2),
    }


def print_table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> None:
    cells = [[str(h) for h in headers], *[[str(c) for c in row] for row in rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    for n, row in enumerate(cells):
        print("  ".join(c.rjust(w) for c, w in zip(row, widths, strict=True)))
        if n == 0:
            print("  ".join("-" * w for w in widths))


def write_json(path: str | None, results: dict[str, Any]) -> None:
    if path:
        Path(path).write_text(json.dumps(results, indent=2), encoding="utf-8")


# --- the gateway (issue 3) ----------------------------------------------------------------------

# The gateway benchmarks use their own Redis database (Celery's queue and the rate limiter's
# buckets) and flush it when they end.
GATEWAY_REDIS_URL = os.environ.get("FARO_BENCH_GATEWAY_REDIS_URL", "redis://127.0.0.1:6379/11")
TWILIO_ACCOUNT_SID = "AC" + "b" * 32
TWILIO_AUTH_TOKEN = "bench-twilio-auth-token-not-a-secret"
WHATSAPP_SENDER = "+14155238886"
SMS_SENDER = "+15005550006"


def flush_redis(url: str = GATEWAY_REDIS_URL) -> None:
    """Empty the Redis database the gateway benchmarks use (queued tasks, rate buckets)."""
    import redis

    client = redis.Redis.from_url(url)
    try:
        client.flushdb()
    finally:
        client.close()


def sign(url: str, form: dict[str, str], token: str = TWILIO_AUTH_TOKEN) -> str:
    """``X-Twilio-Signature`` for ``form`` posted to ``url``, as Twilio computes it."""
    from twilio.request_validator import RequestValidator

    signature: str = RequestValidator(token).compute_signature(url, form)
    return signature


def tree_cpu_seconds(pid: int) -> float:
    """CPU time of a process and all its descendants (uvicorn ``--workers`` runs children)."""
    try:
        root = psutil.Process(pid)
        processes = [root, *root.children(recursive=True)]
    except psutil.Error:
        return 0.0
    total = 0.0
    for process in processes:
        try:
            times = process.cpu_times()
        except psutil.Error:
            continue
        total += times.user + times.system
    return total


@contextmanager
def running_gateway_server(
    database_url: str, *, log_dir: Path, workers: int = 1, twilio_api_url: str | None = None
) -> Iterator[Server]:
    """The real server with Twilio configured: ``FARO_PUBLIC_URL`` is its own address, so
    signatures computed over ``base_url + path`` are the ones it checks.  ``--workers`` as given;
    Redis is :data:`GATEWAY_REDIS_URL`, so tasks published after commit really go to a broker."""
    port = _free_port()
    base_url = f"http://127.0.0.1:{port}"
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("FARO_")},
        "FARO_DATABASE_URL": database_url,
        "FARO_REDIS_URL": GATEWAY_REDIS_URL,
        "FARO_LOG_LEVEL": "WARNING",
        "FARO_ENV": "development",
        "FARO_PUBLIC_URL": base_url,
        "FARO_TWILIO_ACCOUNT_SID": TWILIO_ACCOUNT_SID,
        "FARO_TWILIO_AUTH_TOKEN": TWILIO_AUTH_TOKEN,
    }
    for name in ("FARO_ENCRYPTION_KEYS", "FARO_HASH_KEY"):
        if name in os.environ:
            env[name] = os.environ[name]
    if twilio_api_url:
        env["FARO_TWILIO_API_URL"] = twilio_api_url
    uvicorn = Path(sys.executable).with_name("uvicorn")
    cmd = [str(uvicorn), "api.app:create_app", "--factory", "--host", "127.0.0.1"]
    cmd += ["--port", str(port), "--no-access-log", "--log-level", "warning"]
    cmd += ["--workers", str(workers)]
    log_path = log_dir / f"server-{port}.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    server = Server(base_url=base_url, process=process, log_path=log_path)
    try:
        _wait_healthy(server, timeout=60.0)
        if workers > 1:
            _wait_children(process.pid, workers)
        yield server
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _wait_children(pid: int, count: int, timeout: float = 30.0) -> None:
    """uvicorn answers as soon as one worker is up; wait for all of them to be listening."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        children = psutil.Process(pid).children()
        if len(children) >= count:
            time.sleep(2.0)  # each child imports the app before it accepts
            return
        time.sleep(0.1)


@dataclass
class FakeTwilioProcess:
    """``python -m tests.fakes.twilio`` as a separate process, and its HTTP controls."""

    base_url: str
    process: subprocess.Popen[bytes]
    # One kept-alive connection: the reply benchmark calls the fake once or twice per question.
    client: httpx.Client = field(default_factory=lambda: httpx.Client(timeout=120.0))

    def control(self, method: str, path: str, body: object = None) -> Any:
        response = self.client.request(method, f"{self.base_url}/_fake/{path}", json=body)
        response.raise_for_status()
        return response.json()

    def cpu_seconds(self) -> float:
        return tree_cpu_seconds(self.process.pid)

    def set_latency(self, seconds: float) -> None:
        self.control("POST", "config", {"latency": seconds})

    def stats(self) -> dict[str, int]:
        """The fake's counters, and ``lifecycles``: messages whose statuses are still to come."""
        return dict(self.control("GET", "stats"))

    def messages_since(self, cursor: int) -> list[RemoteMessage]:
        """Accepted messages from offset ``cursor`` on, in the order the fake accepted them."""
        return [RemoteMessage.parse(m) for m in self.control("GET", f"messages?since={cursor}")]

    def wait_for_messages(
        self, cursor: int, *, to_prefix: str, timeout: float
    ) -> tuple[int, list[RemoteMessage]]:
        """The next accepted messages to ``to_prefix…`` from offset ``cursor`` on, waiting up
        to ``timeout`` s for one (a long poll: the fake answers when one is there); and the
        offset to go on from."""
        query = urlencode({"since": cursor, "to_prefix": to_prefix, "timeout": timeout})
        answer = self.control("GET", f"wait?{query}")
        return answer["next"], [RemoteMessage.parse(m) for m in answer["messages"]]


@dataclass(frozen=True)
class RemoteMessage:
    """What the benchmarks read of a message the fake Twilio in another process accepted
    (epoch seconds): ``arrived_at`` when the fake began handling the call, ``received_at`` when
    it accepted it, its added latency later."""

    sid: str
    to: str
    received_at: float
    arrived_at: float

    @classmethod
    def parse(cls, listed: dict[str, Any]) -> RemoteMessage:
        return cls(
            sid=listed["sid"],
            to=listed["params"].get("To", ""),
            received_at=dt.datetime.fromisoformat(listed["received_at"]).timestamp(),
            arrived_at=dt.datetime.fromisoformat(listed["arrived_at"]).timestamp(),
        )


@contextmanager
def running_fake_twilio(
    *,
    log_dir: Path,
    latency: float = 0.0,
    callbacks: dict[str, Any] | None = None,
    account_sid: str = TWILIO_ACCOUNT_SID,
    auth_token: str = TWILIO_AUTH_TOKEN,
) -> Iterator[FakeTwilioProcess]:
    """The fake Twilio on a free port.  ``callbacks``: `CallbackOptions` fields; by default
    status callbacks are off, as the sender benchmarks measure sending and nothing listens at
    their callback URL."""
    cmd = [sys.executable, "-m", "tests.fakes.twilio", "--port", "0"]
    cmd += ["--account-sid", account_sid, "--auth-token", auth_token, "--latency", str(latency)]
    err_path = log_dir / f"fake-twilio-{uuid.uuid4().hex[:6]}.log"
    with err_path.open("wb") as err:
        process = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=err)
    fake: FakeTwilioProcess | None = None
    try:
        assert process.stdout is not None
        line = process.stdout.readline().decode().strip()
        if "listening on" not in line:
            tail = err_path.read_text(errors="replace")[-2000:]
            raise RuntimeError(f"the fake Twilio did not start: {line!r}\n{tail}")
        fake = FakeTwilioProcess(base_url=line.rsplit(" ", 1)[-1], process=process)
        fake.control("POST", "config", {"callbacks": callbacks or {"enabled": False}})
        yield fake
    finally:
        if fake is not None:
            fake.client.close()
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def distinct_mobiles(count: int, *, seed: int) -> list[str]:
    """``count`` distinct valid mobiles in E.164 from the region's countries (same weights as
    the contact CSVs), deterministic for ``seed``."""
    rng = random.Random(seed)
    numbers = _NumberSource(rng)
    countries = list(COUNTRY_WEIGHTS)
    weights = list(COUNTRY_WEIGHTS.values())
    return [
        phonenumbers.format_number(
            numbers.next(rng.choices(countries, weights)[0]), phonenumbers.PhoneNumberFormat.E164
        )
        for _ in range(count)
    ]


def make_senders(
    database_url: str, organization_id: int, *, rate_per_second: float = 10.0
) -> dict[str, int]:
    """A WhatsApp sender and an SMS sender for the organization (by channel), via the service."""
    from campaigns.messaging.senders import create_sender

    engine = make_engine(database_url, pool_size=1, max_overflow=0)
    try:
        with unit_of_work(make_sessionmaker(engine)) as session:
            return {
                channel: create_sender(
                    session,
                    organization_id=organization_id,
                    channel=channel,
                    address=address,
                    rate_per_second=rate_per_second,
                ).id
                for channel, address in (("whatsapp", WHATSAPP_SENDER), ("sms", SMS_SENDER))
            }
    finally:
        engine.dispose()


# --- profiling the server -----------------------------------------------------------------------


def profile_path(name: str) -> Path:
    """Where a py-spy recording is kept after the run (the system's temporary directory)."""
    folder = Path(tempfile.gettempdir()) / "faro-bench-profiles"
    folder.mkdir(exist_ok=True)
    return folder / f"{name}-{time.strftime('%Y%m%dT%H%M%S')}.collapsed"


@contextmanager
def py_spy_recording(
    py_spy: str | None, pid: int, out: Path, *, seconds: float, rate: int = 200
) -> Iterator[None]:
    """Sample the server (and its ``--workers`` children, all threads) with py-spy while the
    block runs; ``py_spy`` is the path to a ``py-spy`` binary, or None to do nothing.  py-spy
    sees the threadpool where the routes' database work runs, which cProfile does not.  Only
    samples holding the GIL count (``--gil``): this is where the server's CPU goes, not where
    its requests wait."""
    if py_spy is None:
        yield
        return
    cmd = [py_spy, "record", "--pid", str(pid), "--subprocesses", "--nonblocking", "--gil"]
    cmd += ["--rate", str(rate), "--duration", str(int(seconds)), "--format", "raw"]
    cmd += ["--output", str(out)]
    recorder = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        time.sleep(1.0)  # py-spy attaches before the load starts
        yield
    finally:
        try:
            recorder.wait(timeout=seconds + 30)
        except subprocess.TimeoutExpired:
            recorder.terminate()
            recorder.wait()


def hot_spots(collapsed: Path, *, top: int = 30) -> list[tuple[float, float, str]]:
    """From py-spy's collapsed stacks: (inclusive %, self %, function) for the ``top``
    functions by inclusive share of all samples, counting a function once per stack (all its
    lines together)."""
    inclusive: dict[str, int] = {}
    own: dict[str, int] = {}
    total = 0
    for line in collapsed.read_text(encoding="utf-8", errors="replace").splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        total += count
        # One entry per function, whatever line of it was running: "receive (campaigns/…py)".
        frames = [re.sub(r":\d+\)$", ")", f.strip()) for f in stack.split(";")]
        for frame in set(frames):
            inclusive[frame] = inclusive.get(frame, 0) + count
        own[frames[-1]] = own.get(frames[-1], 0) + count
    if total == 0:
        return []
    ranked = sorted(inclusive.items(), key=lambda kv: kv[1], reverse=True)[:top]
    return [
        (round(100 * n / total, 1), round(100 * own.get(frame, 0) / total, 1), frame)
        for frame, n in ranked
    ]


def self_time_by_package(collapsed: Path) -> list[tuple[float, str]]:
    """From py-spy's collapsed stacks: the share of samples whose innermost Python frame is in
    each top-level package (``sqlalchemy``, ``psycopg``, ``fastapi`` …; ``stdlib``; ``faro``
    for this repository's code)."""
    counts: dict[str, int] = {}
    total = 0
    for line in collapsed.read_text(encoding="utf-8", errors="replace").splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        frame = stack.split(";")[-1]
        location = frame.rpartition(" (")[2].rstrip(")")
        first = location.rpartition(":")[0].split("/")[0].removesuffix(".py")
        if frame.startswith("process "):
            package = "native (no Python frame)"
        elif "<sqlalchemy generated" in frame:
            package = "sqlalchemy"
        elif first.startswith("<frozen"):
            package = "stdlib"
        elif first in ("api", "campaigns", "workers", "bench", "tests"):
            package = "faro"
        elif first in sys.stdlib_module_names:
            package = "stdlib"
        else:
            package = first or "other"
        counts[package] = counts.get(package, 0) + int(count_text)
        total += int(count_text)
    return sorted(((round(100 * n / total, 1), p) for p, n in counts.items()), reverse=True)


def database_sessions(database_url: str) -> int:
    """PostgreSQL sessions ever opened on the benchmark's database (``pg_stat_database``): the
    difference over a run counts the connections the server's pool opened during it."""
    engine = create_engine(database_url, poolclass=NullPool)
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT pg_stat_force_next_flush()"))
            value = conn.execute(
                text("SELECT sessions FROM pg_stat_database WHERE datname = current_database()")
            ).scalar_one()
    finally:
        engine.dispose()
    return int(value)


class PostgresCpu:
    """CPU time the PostgreSQL backends of one database use while the block runs.

    A thread reads every backend's CPU time (found by process title) every 100 ms and keeps the
    last reading of each, so backends that the server's pool opens and closes during the run are
    counted too, short of at most their last 100 ms."""

    def __init__(self, database_url: str, interval: float = 0.1) -> None:
        self._name = f" {make_url(database_url).database} "
        self._interval = interval
        self._start: dict[int, float] = {}
        self._last: dict[int, float] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="pg-cpu", daemon=True)

    def _read(self) -> dict[int, float]:
        readings: dict[int, float] = {}
        for process in psutil.process_iter(["username", "cmdline"]):
            try:
                title = " ".join(process.info["cmdline"] or [])
                if process.info["username"] != "postgres" or self._name not in f" {title} ":
                    continue
                times = process.cpu_times()
            except psutil.Error:
                continue
            readings[process.pid] = times.user + times.system
        return readings

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            self._last.update(self._read())

    @property
    def seconds(self) -> float:
        return sum(v - self._start.get(pid, 0.0) for pid, v in self._last.items())

    def __enter__(self) -> Self:
        self._start = self._read()
        self._last = dict(self._start)
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._stop.set()
        self._thread.join()
        self._last.update(self._read())


def code_version() -> str:
    """The commit measured, with ``+dirty`` when the application's code has uncommitted
    changes (read-only git commands; other sessions may be changing the tree)."""
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--", "api", "campaigns", "workers"],
            cwd=ROOT,
            capture_output=True,
            text=True,
        ).stdout.strip()
    except OSError:
        return "unknown"
    return f"{head}{'+dirty' if dirty else ''}" if head else "unknown"
