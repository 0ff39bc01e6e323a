"""What every benchmark needs: a throw-away database, the real server as a child process, an
organization with an admin token, realistic contact CSVs, and a sampler of the server's memory.

Nothing here is faked: the server is ``uvicorn api.app:create_app`` exactly as ``faro run``
starts it (no access log), on a fresh PostgreSQL database migrated with Alembic.
"""

from __future__ import annotations

import csv
import json
import os
import random
import statistics
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import closing, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import httpx
import phonenumbers
import psutil
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

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
    """A new database ``faro_bench_<random>`` migrated to head; dropped when the block ends."""
    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    name = f"faro_bench_{uuid.uuid4().hex[:10]}"
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = make_url(PG_ADMIN_URL).set(database=name).render_as_string(hide_password=False)
    try:
        upgrade_database(url)
        yield url
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


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
