"""What the resilience tests share: a private PostgreSQL cluster, a webhook client that retries
like Twilio, a campaign world, and the one-line verdict every test prints."""

from __future__ import annotations

import datetime as dt
import glob
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

import httpx
from sqlalchemy import insert, text
from twilio.request_validator import RequestValidator

from campaigns.contacts.models import Channel, ConsentState, Contact
from campaigns.crypto import AddressCipher
from campaigns.organizations.models import Role
from campaigns.outreach import lifecycle
from tests.campaigns_engine.factories import make_campaign, make_place
from tests.factories import TWILIO_SID, TWILIO_TOKEN, make_organization, make_sender, make_user
from tests.stack import Stack, free_port

CAMPAIGN_BODY = "Nadie cobra por una cita migratoria. Denuncia al 089."  # the factory's SMS


def pg_bin(name: str) -> str:
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    if not found:
        raise RuntimeError(f"{name} is not installed under /usr/lib/postgresql/*/bin")
    return found[-1]


class PrivatePostgres:
    """A PostgreSQL cluster of the test's own (initdb in a temporary directory, a free port, a
    private socket directory), so restarting it disturbs nobody.  The machine's shared server is
    never touched."""

    def __init__(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="faro-pg-"))
        self.data = self.dir / "data"
        self.port = free_port()
        self._as_postgres = os.geteuid() == 0  # initdb refuses to run as root

    @property
    def admin_url(self) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[bytes]:
        command = list(args)
        if self._as_postgres:
            command = ["runuser", "-u", "postgres", "--", *command]
        return subprocess.run(command, check=check, capture_output=True, timeout=120)

    def init(self) -> None:
        if self._as_postgres:
            shutil.chown(self.dir, "postgres", "postgres")
        self._run(
            pg_bin("initdb"), "-D", str(self.data), "-A", "trust", "-U", "postgres", "--no-sync"
        )

    def start(self) -> None:
        options = (
            f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 -c fsync=off "
            "-c max_connections=200"
        )
        self._run(
            pg_bin("pg_ctl"), "-D", str(self.data), "-o", options, "-l",
            str(self.dir / "server.log"), "-w", "start",
        )  # fmt: skip

    def stop(self, mode: str = "fast") -> None:
        self._run(pg_bin("pg_ctl"), "-D", str(self.data), "-m", mode, "-w", "stop", check=False)

    def destroy(self) -> None:
        self.stop("immediate")
        shutil.rmtree(self.dir, ignore_errors=True)


@dataclass
class Delivery:
    """What a Twilio-like client saw for one webhook: attempts, final status, latencies."""

    sid: str
    attempts: int = 0
    status: int | None = None
    latencies: list[float] = field(default_factory=list)


class TwilioLikeClient:
    """Posts signed inbound webhooks and retries as Twilio does: on a 5xx, a timeout or a
    connection error, again after a pause, until ``give_up_after`` seconds have passed."""

    def __init__(
        self, stack: Stack, *, timeout: float = 15.0, give_up_after: float = 120.0
    ) -> None:
        self.url = f"{stack.base_url}/webhooks/twilio/messages"
        self.client = httpx.Client(timeout=timeout)
        self.give_up_after = give_up_after
        self.validator = RequestValidator(TWILIO_TOKEN)

    def form(self, *, sid: str, phone: str, to: str, body: str) -> dict[str, str]:
        return {
            "MessageSid": sid,
            "AccountSid": TWILIO_SID,
            "From": f"whatsapp:{phone}",
            "To": f"whatsapp:{to}",
            "Body": body,
            "NumMedia": "0",
        }

    def deliver(self, form: dict[str, str]) -> Delivery:
        result = Delivery(sid=form["MessageSid"])
        headers = {
            "X-Twilio-Signature": self.validator.compute_signature(self.url, form),
            "Content-Type": "application/x-www-form-urlencoded",
        }
        content = urlencode(form)
        deadline = time.monotonic() + self.give_up_after
        pause = 0.5
        while True:
            result.attempts += 1
            started = time.perf_counter()
            try:
                response = self.client.post(self.url, content=content, headers=headers)
                result.status = response.status_code
            except httpx.HTTPError:
                result.status = None
            result.latencies.append(time.perf_counter() - started)
            if result.status is not None and result.status < 500:
                return result
            if time.monotonic() > deadline:
                return result
            time.sleep(pause)
            pause = min(pause * 2, 5.0)

    def close(self) -> None:
        self.client.close()


def verdict(
    name: str, *, offered: int, processed: int, lost: int, duplicated: int, **more: object
) -> str:
    extra = "".join(f", {k.replace('_', ' ')} {v}" for k, v in more.items())
    line = (
        f"\n[{name}] offered {offered}, processed {processed}, lost {lost}, "
        f"duplicated {duplicated}{extra}"
    )
    print(line)
    return line


@dataclass
class CampaignWorld:
    campaign_id: int
    sender_id: int
    numbers: list[str]


def campaign_world(
    stack: Stack, cipher: AddressCipher, *, recipients: int, rate: float, prefix: str = "+52962"
) -> CampaignWorld:
    """An organization, an SMS sender at ``rate``/s, ``recipients`` opted-in contacts in one
    community, and a one-off campaign approved hours ago and due now (the tick plans it)."""
    real_now = dt.datetime.now(dt.UTC)
    numbers = [f"{prefix}{i:07d}" for i in range(recipients)]
    with stack.session() as db, db.begin():
        org = make_organization(db)
        author = make_user(db, org=org, role=Role.manager)
        sender = make_sender(db, org=org, channel="sms", address="+15005550006", rate=rate)
        place = make_place(db, org=org, name="Tapachula", timezone="America/Mexico_City")
        db.execute(
            insert(Contact),
            [
                {
                    "organization_id": org.id,
                    "channel": Channel.sms,
                    "address_ciphertext": cipher.encrypt(n),
                    "address_hash": cipher.lookup_hash("sms", n),
                    "country": "MX",
                    "language": "es",
                    "consent": ConsentState.opted_in,
                }
                for n in numbers
            ],
        )
        db.execute(
            text(
                "INSERT INTO contact_community (contact_id, community_id, joined_at) "
                "SELECT id, :c, now() FROM contact WHERE organization_id = :org"
            ),
            {"c": place.id, "org": org.id},
        )
        written = real_now - dt.timedelta(hours=6)
        local = real_now.astimezone(ZoneInfo("America/Mexico_City")) - dt.timedelta(hours=1)
        campaign = make_campaign(
            db,
            org=org,
            author=author,
            communities=[place],
            schedule={"type": "once", "local": local.strftime("%Y-%m-%dT%H:%M")},
            now=written,
        )
        lifecycle.submit_campaign(db, campaign.id, user_id=author.id, now=written)
        approver = make_user(db, org=org, role=Role.manager)
        lifecycle.approve_campaign(db, campaign.id, user_id=approver.id, now=written)
        lifecycle.schedule_campaign(db, campaign.id, now=written)
        return CampaignWorld(campaign_id=campaign.id, sender_id=sender.id, numbers=numbers)


def percentile(values: Sequence[float], q: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]
