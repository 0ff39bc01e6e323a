"""The ``faro`` command line.  Every write it makes is audit-logged as done ``via="cli"``."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import typer
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from campaigns.audit import Actor, set_actor
from campaigns.crypto import AddressCipher
from campaigns.db import make_engine, make_sessionmaker
from campaigns.errors import FaroError
from campaigns.logging import configure_logging
from campaigns.organizations.models import Organization, Role, User
from campaigns.settings import Settings, get_settings

app = typer.Typer(help="Faro: migration information over WhatsApp and SMS.", no_args_is_help=True)
db_app = typer.Typer(help="Database schema.", no_args_is_help=True)
admin_app = typer.Typer(help="Organizations and administrators.", no_args_is_help=True)
token_app = typer.Typer(help="API tokens.", no_args_is_help=True)
demo_app = typer.Typer(help="Demo data.", no_args_is_help=True)
sender_app = typer.Typer(help="Twilio numbers (senders).", no_args_is_help=True)
campaign_app = typer.Typer(help="Campaigns: list, pause, resume, cancel.", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(admin_app, name="admin")
app.add_typer(token_app, name="token")
app.add_typer(demo_app, name="demo")
app.add_typer(sender_app, name="sender")
app.add_typer(campaign_app, name="campaign")
keys_app = typer.Typer(help="Encryption keys.", no_args_is_help=True)
retention_app = typer.Typer(help="Retention of message text.", no_args_is_help=True)
app.add_typer(keys_app, name="keys")
app.add_typer(retention_app, name="retention")


def _settings() -> Settings:
    settings = get_settings()
    settings.check_production()
    configure_logging(settings)
    return settings


@contextmanager
def _session(settings: Settings) -> Iterator[Session]:
    settings.var_dir.mkdir(parents=True, exist_ok=True)
    engine = make_engine(settings.effective_database_url)
    session = make_sessionmaker(engine)()
    set_actor(session, Actor(user_id=None, organization_id=None, via="cli"))
    try:
        yield session
        session.commit()
    except FaroError as exc:
        session.rollback()
        typer.secho(f"error: {exc.message}", err=True, fg=typer.colors.RED)
        raise typer.Exit(code=2) from exc
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()
        engine.dispose()


@db_app.command("upgrade")
def db_upgrade(revision: str = "head") -> None:
    """Apply migrations up to REVISION (default: the newest)."""
    from campaigns.embedded import upgrade_database

    settings = _settings()
    settings.var_dir.mkdir(parents=True, exist_ok=True)
    upgrade_database(settings.effective_database_url, revision)
    typer.echo("database is up to date")


@admin_app.command("create")
def admin_create(
    organization: Annotated[str, typer.Option(help="Organization name; created if new")],
    email: Annotated[str, typer.Option(help="The administrator's email")],
    country: Annotated[str, typer.Option(help="ISO country of a new organization")] = "MX",
    kind: Annotated[str, typer.Option(help="migration_authority|municipality|ngo")] = "ngo",
    operator: Annotated[bool, typer.Option(help="May create other organizations")] = False,
    days: Annotated[int, typer.Option(help="Token lifetime in days")] = 90,
    password_prompt: Annotated[
        bool, typer.Option("--password-prompt", help="Ask for a dashboard password (12+ chars)")
    ] = False,
) -> None:
    """Create an administrator (and the organization if new) and print a token, once."""
    password = (
        typer.prompt("Dashboard password", hide_input=True, confirmation_prompt=True)
        if password_prompt
        else None
    )
    from campaigns.organizations.service import create_organization, create_user, issue_token

    settings = _settings()
    with _session(settings) as session:
        org = session.scalar(select(Organization).where(Organization.name == organization))
        if org is None:
            org = create_organization(session, name=organization, country=country, kind=kind)
        user = create_user(
            session,
            organization_id=org.id,
            email=email,
            role=Role.admin,
            is_operator=operator,
            password=password,
        )
        _, secret = issue_token(session, user=user, name="cli", days=days)
    typer.echo(f"organization {org.id} · admin {user.id}")
    typer.echo(f"token (shown once): {secret}")


@token_app.command("create")
def token_create(
    email: Annotated[str, typer.Option(help="The user's email")],
    days: Annotated[int, typer.Option(help="Lifetime in days")] = 90,
    name: Annotated[str, typer.Option(help="A label for the token")] = "cli",
) -> None:
    """Issue a new token for a user and print it, once."""
    from campaigns.organizations.service import issue_token

    settings = _settings()
    with _session(settings) as session:
        user = session.scalar(select(User).where(User.email == email.strip().lower()))
        if user is None:
            typer.secho(f"error: no user with email {email}", err=True, fg=typer.colors.RED)
            raise typer.Exit(code=2)
        _, secret = issue_token(session, user=user, name=name, days=days)
    typer.echo(f"token (shown once): {secret}")


def _seed(settings: Settings) -> str | None:
    from campaigns.demo import seed

    with _session(settings) as session:
        result = seed(session, cipher=AddressCipher.from_settings(settings))
    if result.admin_token:
        path = settings.var_dir / "demo-token.txt"
        path.write_text(result.admin_token + "\n", encoding="utf-8")
        path.chmod(0o600)
    if result.admin_login:
        path = settings.var_dir / "demo-login.txt"
        path.write_text(" ".join(result.admin_login) + "\n", encoding="utf-8")
        path.chmod(0o600)
    typer.echo(
        f"demo: {result.organizations} organizations, {result.communities} communities, "
        f"{result.users} users, {result.contacts} simulated contacts added"
    )
    return result.admin_token


@demo_app.command("seed")
def demo_seed() -> None:
    """Load the demo organizations, communities and simulated contacts from data/demo."""
    settings = _settings()
    if settings.env == "production":
        typer.secho("error: no demo data in production", err=True, fg=typer.colors.RED)
        raise typer.Exit(code=2)
    _seed(settings)
    typer.echo(f"demo admin token written to {settings.var_dir / 'demo-token.txt'}")


# Campaign sends are batch work: a bulk-only worker runs at a lower CPU priority, so that on a
# machine it shares with the API, the conversation worker and Rasa, a reply is not kept waiting
# for CPU behind thousands of sends (docs/benchmarks.md, "replies during a campaign").
BULK_NICENESS = 10


@app.command("worker")
def worker(
    queues: Annotated[str, typer.Option(help="Comma-separated: conversation, bulk")] = (
        "conversation,bulk"
    ),
    concurrency: Annotated[int, typer.Option(help="Threads")] = 16,
    nice: Annotated[
        int | None,
        typer.Option(
            help="CPU priority (0-19, higher yields more). Default: 10 for a worker that only "
            "takes the bulk queue, so on a shared machine conversation replies win the CPU "
            "over campaign sends; 0 otherwise."
        ),
    ] = None,
) -> None:
    """Run a Celery worker (thread pool: each send overlaps many Twilio calls)."""
    _settings()
    from workers.celery_app import app as celery

    names = {q.strip() for q in queues.split(",") if q.strip()}
    niceness = nice if nice is not None else (BULK_NICENESS if names == {"bulk"} else 0)
    if not 0 <= niceness <= 19:
        raise typer.BadParameter("nice must be between 0 and 19", param_hint="--nice")
    if niceness:
        os.nice(niceness)

    celery.worker_main(
        [
            "worker",
            "-Q",
            queues,
            "-P",
            "threads",
            "-c",
            str(concurrency),
            "-l",
            "INFO",
            "--without-gossip",
            "--without-mingle",
        ]
    )


@app.command("beat")
def beat() -> None:
    """Run the scheduler (the reaper and, later, campaign ticks and rollups)."""
    settings = _settings()
    from workers.celery_app import app as celery

    settings.var_dir.mkdir(parents=True, exist_ok=True)
    celery.start(["beat", "-s", str(settings.var_dir / "celerybeat-schedule"), "-l", "INFO"])


@sender_app.command("add")
def sender_add(
    organization: Annotated[str, typer.Option(help="Organization name")],
    channel: Annotated[str, typer.Option(help="whatsapp or sms")],
    number: Annotated[str, typer.Option(help="The Twilio number, E.164")],
    rate: Annotated[float, typer.Option(help="Messages per second")] = 10.0,
    messaging_service_sid: Annotated[str | None, typer.Option(help="MG…")] = None,
) -> None:
    """Register a Twilio number so inbound messages to it reach the organization."""
    from campaigns.messaging.senders import create_sender

    settings = _settings()
    with _session(settings) as session:
        org = session.scalar(select(Organization).where(Organization.name == organization))
        if org is None:
            typer.secho(f"error: no organization {organization!r}", err=True, fg=typer.colors.RED)
            raise typer.Exit(code=2)
        sender = create_sender(
            session,
            organization_id=org.id,
            channel=channel,
            address=number,
            rate_per_second=rate,
            messaging_service_sid=messaging_service_sid,
        )
    typer.echo(
        f"sender {sender.id}: {sender.channel.value} {sender.address} at {sender.rate_per_second}/s"
    )


@campaign_app.command("list")
def campaign_list(
    organization: Annotated[str, typer.Option(help="Organization name")],
) -> None:
    """List an organization's campaigns, newest first."""
    from campaigns.outreach.models import Campaign

    settings = _settings()
    with _session(settings) as session:
        org = session.scalar(select(Organization).where(Organization.name == organization))
        if org is None:
            typer.secho(f"error: no organization {organization!r}", err=True, fg=typer.colors.RED)
            raise typer.Exit(code=2)
        found = session.scalars(
            select(Campaign)
            .where(Campaign.organization_id == org.id)
            .order_by(Campaign.created_at.desc(), Campaign.id.desc())
        ).all()
        for c in found:
            paused = " (paused)" if c.paused else ""
            typer.echo(f"{c.id}\t{c.status.value}{paused}\t{c.kind.value}\tv{c.version}\t{c.name}")
    if not found:
        typer.echo("no campaigns")


def _move(campaign_id: int, verb: str) -> None:
    from campaigns.outreach import lifecycle

    change = {
        "pause": lifecycle.pause_campaign,
        "resume": lifecycle.resume_campaign,
        "cancel": lifecycle.cancel_campaign,
    }[verb]
    settings = _settings()
    with _session(settings) as session:
        campaign = change(session, campaign_id)
    typer.echo(f"campaign {campaign.id}: {campaign.status.value}")


@campaign_app.command("pause")
def campaign_pause(campaign_id: Annotated[int, typer.Argument(metavar="ID")]) -> None:
    """Stop sending now, including messages already queued."""
    _move(campaign_id, "pause")


@campaign_app.command("resume")
def campaign_resume(campaign_id: Annotated[int, typer.Argument(metavar="ID")]) -> None:
    """Resume a paused campaign."""
    _move(campaign_id, "resume")


@campaign_app.command("cancel")
def campaign_cancel(campaign_id: Annotated[int, typer.Argument(metavar="ID")]) -> None:
    """Cancel a campaign for good; its pending runs are cancelled."""
    _move(campaign_id, "cancel")


@keys_app.command("rotate")
def keys_rotate(
    batch_size: Annotated[int, typer.Option(min=1, help="Rows per transaction")] = 500,
    start_after: Annotated[int, typer.Option(min=0, help="Resume after this contact id")] = 0,
    max_batches: Annotated[
        int | None, typer.Option(min=1, help="Stop after this many batches")
    ] = None,
) -> None:
    """Re-encrypt every phone number and profile name under the first FARO_ENCRYPTION_KEYS key.

    Resumable and safe to interrupt: rerun it until it says "done".
    """
    from campaigns.keys import RotationReport, rotate_keys

    settings = _settings()
    engine = make_engine(settings.effective_database_url)

    def progress(r: RotationReport) -> None:
        typer.echo(
            f"batch {r.batches}: up to contact {r.last_id}, {r.rows_scanned} rows scanned, "
            f"{r.values_rotated} values re-encrypted, {r.values_current} already current"
        )

    try:
        report = rotate_keys(
            make_sessionmaker(engine),
            cipher=AddressCipher.from_settings(settings),
            batch_size=batch_size,
            start_after=start_after,
            max_batches=max_batches,
            progress=progress,
        )
    finally:
        engine.dispose()
    if report.finished:
        typer.echo(
            f"done: {report.values_rotated} values re-encrypted, "
            f"{report.values_current} already under the newest key; "
            "the old keys can now be removed from FARO_ENCRYPTION_KEYS"
        )
    else:
        typer.echo(f"stopped after contact {report.last_id}: rerun to continue")


@retention_app.command("run")
def retention_run(
    days: Annotated[
        int | None, typer.Option(min=1, help="Override FARO_RETENTION_DAYS for this run")
    ] = None,
) -> None:
    """Purge message bodies and conversation text older than the retention period."""
    from campaigns.retention import purge

    settings = _settings()
    engine = make_engine(settings.effective_database_url)
    tracker = settings.rasa_tracker_db_url
    try:
        report = purge(
            make_sessionmaker(engine),
            retention_days=days or settings.retention_days,
            tracker_db_url=tracker.get_secret_value() if tracker else None,
        )
    finally:
        engine.dispose()
    typer.echo(
        f"purged before {report.cutoff}: {report.message_bodies} message bodies, "
        f"{report.unanswered_texts} unanswered question texts, "
        f"{report.profile_names} profile names, {report.tracker_events} Rasa tracker events"
        + ("" if tracker else " (FARO_RASA_TRACKER_DB_URL not set)")
    )


def _spawn(*args: str) -> subprocess.Popen[bytes]:
    faro = str(Path(sys.executable).with_name("faro"))
    return subprocess.Popen([faro, *args])


ROOT = Path(__file__).resolve().parent.parent
BOT = ROOT / "bot"


def _spawn_assistant(settings: Settings) -> list[subprocess.Popen[bytes]]:
    """Rasa and its action server, when the bot's environment and a trained model exist."""
    rasa = BOT / ".venv" / "bin" / "rasa"
    model = BOT / "models" / "current.tar.gz"
    if not rasa.exists() or not model.exists():
        typer.secho(
            "The assistant is not set up (run `make bot-setup bot-train`): people who write "
            "get an apology until it is.",
            fg=typer.colors.YELLOW,
        )
        return []
    rasa_port = settings.rasa_url.rsplit(":", 1)[-1].split("/")[0]
    actions_port = settings.action_server_url.rsplit(":", 1)[-1].split("/")[0]
    env = os.environ | {
        "FARO_URL": f"http://127.0.0.1:{settings.port}",
        "FARO_ACTIONS_TOKEN": settings.actions_token.get_secret_value(),
        "RASA_TELEMETRY_ENABLED": "false",
        # Rasa's HTTP API can read whole conversations: never listen beyond this machine.
        "SANIC_HOST": "127.0.0.1",
    }
    actions = subprocess.Popen(
        [str(rasa), "run", "actions", "--actions", "actions", "--port", actions_port],
        cwd=BOT,
        env=env,
    )
    server = subprocess.Popen(
        [
            str(rasa),
            "run",
            "--enable-api",
            "-i",
            "127.0.0.1",
            "--port",
            rasa_port,
            "--model",
            str(model),
            "--endpoints",
            str(BOT / "endpoints.yml"),
            "--credentials",
            str(BOT / "credentials.yml"),
        ],
        cwd=ROOT,
        env=env,
    )
    typer.echo("The assistant (Rasa) is starting; it takes 10 to 20 seconds to load its model.")
    return [actions, server]


@app.command("run")
def run(
    host: Annotated[str | None, typer.Option(help="Listen address (FARO_HOST)")] = None,
    port: Annotated[int | None, typer.Option(help="Port (FARO_PORT)")] = None,
    seed_demo: Annotated[bool, typer.Option("--demo/--no-demo", help="Seed the demo")] = True,
    workers: Annotated[
        bool, typer.Option("--workers/--no-workers", help="Start worker and beat")
    ] = True,
) -> None:
    """Run Faro: the API, a worker and beat.  With no configuration: SQLite and an embedded
    Redis under var/, the simulator channel, the demo."""
    import uvicorn

    from campaigns.embedded import prepare_environment, upgrade_database

    settings = _settings()
    redis = prepare_environment(settings)
    get_settings.cache_clear()  # re-read: the embedded Redis URL is now in the environment
    settings = get_settings()
    children: list[subprocess.Popen[bytes]] = []
    try:
        upgrade_database(settings.effective_database_url)
        if seed_demo and settings.env != "production":
            with _session(settings) as session:
                empty = not session.scalar(select(func.count()).select_from(Organization))
            if empty:
                _seed(settings)
        if workers:
            children = [_spawn("worker", "--concurrency", "8"), _spawn("beat")]
            children += _spawn_assistant(settings)
        listen_host = host or settings.host
        listen_port = port or settings.port
        typer.echo(f"Faro is running on http://{listen_host}:{listen_port}  (API docs: /docs)")
        if (settings.var_dir / "demo-token.txt").exists():
            typer.echo(f"Demo admin token: {settings.var_dir / 'demo-token.txt'}")
        # Uvicorn re-raises the stop signal after its graceful shutdown; end cleanly instead,
        # so the embedded Redis below is always stopped.
        signal.signal(signal.SIGTERM, _exit_cleanly)
        signal.signal(signal.SIGINT, _exit_cleanly)
        uvicorn.run(
            "api.app:create_app",
            factory=True,
            host=listen_host,
            port=listen_port,
            log_config=None,
            access_log=False,
            proxy_headers=True,
            forwarded_allow_ips=os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1"),
        )
    except SystemExit as exc:
        if exc.code not in (0, None):
            raise
    finally:
        for child in children:
            child.terminate()
        for child in children:
            try:
                child.wait(timeout=20)
            except subprocess.TimeoutExpired:
                child.kill()
        if redis is not None:
            redis.close()
        typer.echo("Faro stopped")
        sys.stdout.flush()


def _exit_cleanly(signum: int, frame: object) -> None:
    raise SystemExit(0)


def main() -> None:
    app()
