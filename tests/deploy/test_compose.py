"""docker-compose.yml and .env.example agree with the code they deploy.

Every ``FARO_*`` variable is a field of ``Settings`` (or one the action server reads), every
command a service runs parses in the program that runs it, every health check calls a real route
on the port the server listens on or pings the Celery node the service runs, every service
restarts and reports its health, the bulk worker scales, and no secret is written or defaulted.
"""

from __future__ import annotations

import os
from typing import Any
from urllib.parse import urlsplit

import pytest
from sqlalchemy.engine import make_url
from typer.testing import CliRunner

from api.app import create_app
from api.routes.health import ACTIONS_HEALTH_PATH, RASA_HEALTH_PATH
from campaigns import cli
from campaigns.messaging.models import Purpose
from campaigns.settings import Settings
from tests.deploy.files import (
    BOT,
    HEALTH_URL_RE,
    ROOT,
    SECRET_WORDS,
    VAR_RE,
    Listener,
    action_server_variables,
    answers,
    app_services,
    bot_services,
    check_celery,
    check_command,
    compose,
    compose_references,
    container_port,
    dockerfile_cmd,
    env_example,
    environment,
    healthcheck_argv,
    interpolate,
    listener,
    raw_environment,
    service_argv,
    services,
    setting_names,
)
from workers.celery_app import app as celery_app

WORKERS = ("worker-conversation", "worker-bulk")
REQUIRED_SERVICES = {
    "api",
    "migrate",
    *WORKERS,
    "beat",
    "rasa",
    "rasa-actions",
    "postgres",
    "redis",
}
STARTS_AFTER_MIGRATION = {
    "migrate": "service_completed_successfully",
    "postgres": "service_healthy",
    "redis": "service_healthy",
}
EXPECTED_DEPENDS_ON = {
    "api": STARTS_AFTER_MIGRATION,
    **dict.fromkeys(WORKERS, STARTS_AFTER_MIGRATION),
    "beat": STARTS_AFTER_MIGRATION,
    "migrate": {"postgres": "service_healthy"},
    "rasa": {
        "postgres": "service_healthy",
        "redis": "service_healthy",
        "rasa-actions": "service_healthy",
    },
}


def test_compose_has_the_services() -> None:
    assert "version" not in compose(), "the Compose spec has no version: key"
    assert set(services()) >= REQUIRED_SERVICES, REQUIRED_SERVICES - set(services())
    assert {"api", "migrate", *WORKERS, "beat"} <= set(app_services()), "they run Faro's image"
    assert {"rasa", "rasa-actions"} <= set(bot_services()), "they run the assistant's image"


def test_every_faro_variable_is_a_setting() -> None:
    known = setting_names()
    used: dict[str, set[str]] = {
        ".env.example": set(env_example()),
        "docker-compose.yml ${...}": {m["braced"] or m["bare"] for m in compose_references()},
    }
    for name, service in services().items():
        if name not in bot_services():
            used[f"docker-compose.yml {name}.environment"] = set(environment(service, answers()))
    unknown = {
        where: sorted(bad)
        for where, names in used.items()
        if (bad := {n for n in names if n.startswith("FARO_") and n not in known})
    }
    assert not unknown, f"not fields of Settings: {unknown}; the settings: {sorted(known)}"
    reads = action_server_variables()
    assert reads, "found no FARO_ variable read in bot/actions/"
    for name, service in bot_services().items():
        bad = {n for n in raw_environment(service) if n.startswith("FARO_") and n not in reads}
        assert not bad, f"{name}: the action server reads {sorted(reads)}, not {sorted(bad)}"


def test_compose_variables_and_env_example_match() -> None:
    referenced = {m["braced"] or m["bare"] for m in compose_references()}
    assert referenced - set(env_example()) == set(), "compose reads variables .env.example omits"
    assert set(env_example()) - referenced == set(), ".env.example lists variables compose ignores"


def test_secrets_are_required_and_a_copied_example_does_not_start() -> None:
    for m in compose_references():
        name = m["braced"] or m["bare"]
        if any(word in name for word in SECRET_WORDS):
            assert m["op"] == ":?", f"{name}: a secret must be required (${{{name}:?...}})"
        if m["op"] == ":?":
            assert env_example()[name] == "", f".env.example gives {name} a value compose accepts"
    for name, service in services().items():
        for key, value in raw_environment(service).items():
            if any(word in key for word in SECRET_WORDS):
                assert "${" in value, f"{name}: {key} is written in the compose file"
    for name in ("api", "rasa", "redis"):
        with pytest.raises(ValueError, match="compose would refuse to start"):
            environment(services()[name], env_example())


def test_compose_environment_is_a_valid_production_configuration(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name, service in app_services().items():
        env = environment(service, answers())
        for key in [k for k in os.environ if k.startswith("FARO_")]:
            monkeypatch.delenv(key)
        for key, value in env.items():
            monkeypatch.setenv(key, value)
        settings = Settings()
        settings.check_production()  # raises ConfigurationError naming what production refuses
        assert settings.env == "production", name
        assert not settings.is_embedded and settings.redis_url, f"{name}: embedded services"
        assert not settings.uses_simulator, f"{name}: would use the simulator, not Twilio"
        assert settings.metrics_token is not None, f"{name}: /metrics would be off"
        for key in (
            "FARO_DATABASE_URL",
            "FARO_REDIS_URL",
            "FARO_RASA_URL",
            "FARO_ACTION_SERVER_URL",
            "FARO_RASA_TRACKER_DB_URL",
        ):
            assert key in env, f"{name}: {key} is not set"
            host = urlsplit(env[key]).hostname
            assert host in services(), f"{name}: {key} points at {host}, not a service"


def test_database_urls_match_the_postgres_and_redis_services() -> None:
    env = environment(services()["api"], answers())
    postgres = environment(services()["postgres"], answers())
    for key, database in (
        ("FARO_DATABASE_URL", postgres.get("POSTGRES_DB", postgres["POSTGRES_USER"])),
        ("FARO_RASA_TRACKER_DB_URL", "rasa"),
    ):
        url = make_url(env[key])
        assert url.get_backend_name() == "postgresql", key
        url.get_dialect()  # the driver named in the URL is installed
        assert url.username == postgres["POSTGRES_USER"], key
        assert url.password == postgres["POSTGRES_PASSWORD"], key
        assert url.database == database, key
    # The tracker database is created when PostgreSQL's volume is first initialised.
    mounts = [str(v) for v in services()["postgres"].get("volumes", [])]
    init = [m.split(":")[0] for m in mounts if ":/docker-entrypoint-initdb.d" in m]
    assert init, "postgres mounts no init script: the database `rasa` would not exist"
    sql = " ".join(p.read_text(encoding="utf-8") for p in (ROOT / init[0]).glob("*.sql"))
    assert "CREATE DATABASE rasa" in sql
    redis_argv = service_argv("redis", services()["redis"])
    password = interpolate(redis_argv[redis_argv.index("--requirepass") + 1], answers())
    assert password and urlsplit(env["FARO_REDIS_URL"]).password == password
    rasa = environment(services()["rasa"], answers())
    assert rasa["RASA_LOCK_REDIS_PASSWORD"] == password
    assert rasa["RASA_TRACKER_PASSWORD"] == postgres["POSTGRES_PASSWORD"]
    assert rasa["RASA_TRACKER_DB"] == "rasa" and rasa["RASA_TRACKER_URL"] == "postgres"


def test_every_command_exists() -> None:
    for name in [*app_services(), *bot_services()]:
        listener(name)
    check_command("Dockerfile CMD", dockerfile_cmd())
    assert services()["migrate"].get("command") in (["faro", "db", "upgrade"], "faro db upgrade")


def _faro_runs(
    argv: list[str], monkeypatch: pytest.MonkeyPatch, niced: list[int] | None = None
) -> list[str]:
    """What `faro worker` or `faro beat` hands to Celery, run for real up to that call (the
    worker's ``os.nice`` is recorded in ``niced``, not applied to this test process)."""
    handed: list[str] = []
    monkeypatch.setattr(celery_app, "worker_main", handed.extend)
    monkeypatch.setattr(celery_app, "start", handed.extend)
    monkeypatch.setattr(os, "nice", (niced if niced is not None else []).append)
    monkeypatch.setenv("FARO_VAR_DIR", "/tmp/faro-deploy-test-var")
    result = CliRunner().invoke(cli.app, argv[1:])
    assert result.exit_code == 0, result.output
    return handed


def test_workers_cover_every_queue_and_the_bulk_worker_scales(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    served: dict[str, set[str]] = {}
    niceness: dict[str, list[int]] = {}
    for name in WORKERS:
        service = services()[name]
        niceness[name] = []
        celery_argv = _faro_runs(service_argv(name, service), monkeypatch, niceness[name])
        assert celery_argv[0] == "worker", name
        assert "-n" not in celery_argv and "--hostname" not in celery_argv, (
            f"{name}: the health check pings celery@$HOSTNAME, Celery's default node name"
        )
        served[name] = set(celery_argv[celery_argv.index("-Q") + 1].split(","))
    assert served["worker-conversation"] == {"conversation"}, "replies wait behind bulk sends"
    assert served["worker-bulk"] == {"bulk"}
    # Campaign sends yield the CPU to replies on a shared machine; replies never yield.
    assert niceness == {"worker-conversation": [], "worker-bulk": [cli.BULK_NICENESS]}
    published = {p.queue for p in Purpose} | {str(celery_app.conf.task_default_queue)}
    published |= {e.get("options", {}).get("queue") for e in celery_app.conf.beat_schedule.values()}
    assert published - {None} <= set().union(*served.values()), "a queue no worker reads"
    bulk = services()["worker-bulk"]
    for key in ("container_name", "ports", "hostname"):
        assert key not in bulk, f"worker-bulk sets {key}: `--scale worker-bulk=4` would clash"


def test_beat_runs_once_and_a_second_one_is_harmless(monkeypatch: pytest.MonkeyPatch) -> None:
    celery_argv = _faro_runs(service_argv("beat", services()["beat"]), monkeypatch)
    assert celery_argv[0] == "beat" and "-n" not in celery_argv
    beat = services()["beat"]
    assert "deploy" not in beat or beat["deploy"].get("replicas", 1) == 1
    # The tasks it schedules take a Redis lock (tests/observability/test_periodic_locks.py).
    assert {"messages.reap", "campaigns.tick"} <= {
        e["task"] for e in celery_app.conf.beat_schedule.values()
    }


def test_celery_sends_events_for_flower() -> None:
    assert celery_app.conf.worker_send_task_events is True
    # Not "task-sent" from publishers: one lock per process, it throttled the API's webhooks.
    assert celery_app.conf.task_send_sent_event is False
    assert celery_app.conf.beat_enable_remote_control is True, "beat's health check pings it"


def test_published_ports_match_the_listening_port() -> None:
    for name, service in [*app_services().items(), *bot_services().items()]:
        listens = listener(name)
        ports = service.get("ports", [])
        if listens is None:
            assert not ports, f"{name} publishes {ports} but its command serves nothing"
            continue
        assert listens.host == "0.0.0.0", f"{name}: {listens.host} is unreachable from outside"
        for entry in ports:
            assert container_port(entry) == listens.port, f"{name}: {entry} vs {listens.port}"
            assert str(entry).startswith("127.0.0.1:"), f"{name}: {entry} is public; TLS ends first"
    assert services()["api"].get("ports"), "the API publishes no port"
    for name in bot_services():
        assert not services()[name].get("ports"), f"{name}: Rasa must never be reachable outside"


def _listeners_by_url() -> dict[str, Listener]:
    return {name: listens for name in bot_services() if (listens := listener(name))}


def test_faro_and_rasa_find_each_other() -> None:
    env = environment(services()["api"], answers())
    servers = _listeners_by_url()
    for key, service in (("FARO_RASA_URL", "rasa"), ("FARO_ACTION_SERVER_URL", "rasa-actions")):
        url = urlsplit(env[key])
        assert url.hostname == service and url.port == servers[service].port, (key, url)
    rasa = environment(services()["rasa"], answers())
    action = urlsplit(rasa["ACTION_ENDPOINT_URL"])
    assert action.hostname == "rasa-actions" and action.port == servers["rasa-actions"].port
    assert action.path == "/webhook", "rasa_sdk's action server listens on /webhook"
    faro = urlsplit(environment(services()["rasa-actions"], answers())["FARO_URL"])
    api = listener("api")
    assert api is not None and faro.hostname == "api" and faro.port == api.port
    # Every ${VAR} Rasa expands in its production endpoints must be set (Rasa refuses otherwise).
    endpoints = (BOT / "endpoints.production.yml").read_text(encoding="utf-8")
    needed = {
        m["braced"] or m["bare"]
        for line in endpoints.splitlines()
        if not line.lstrip().startswith("#")
        for m in VAR_RE.finditer(line)
    }
    assert needed and needed <= set(rasa), f"rasa lacks {sorted(needed - set(rasa))}"
    assert rasa["RASA_LOCK_REDIS_DB"] != urlsplit(env["FARO_REDIS_URL"]).path.strip("/"), (
        "Rasa's locks share the Celery broker's Redis database"
    )


def _route_paths() -> dict[str, Any]:
    app = create_app(Settings(env="test", database_url="sqlite://"))
    paths: dict[str, Any] = app.openapi()["paths"]
    app.state.engine.dispose()
    return paths


def test_every_service_restarts_and_reports_its_health() -> None:
    for name, service in services().items():
        if name == "migrate":
            assert service.get("restart") == "no" and service["healthcheck"].get("disable")
            continue
        assert service.get("restart") == "unless-stopped", f"{name}: no restart policy"
        health = service.get("healthcheck") or {}
        assert health.get("test") and not health.get("disable"), f"{name}: no health check"


def test_health_checks_call_routes_of_the_app() -> None:
    paths = _route_paths()
    app_port = listener("api")
    assert app_port is not None
    for name in ("api",):
        argv = healthcheck_argv(services()[name]["healthcheck"]["test"])
        assert argv[0] in ("python", "python3"), f"{name}: {argv[0]} (slim has no curl)"
        found = HEALTH_URL_RE.search(" ".join(argv))
        assert found, f"{name} calls no local URL: {argv}"
        assert found["path"] in paths and "get" in paths[found["path"]], found["path"]
        assert int(found["port"]) == app_port.port
    assert "/healthz" in paths and "/readyz" in paths


def test_health_checks_of_the_assistant_match_what_readyz_calls() -> None:
    # /readyz asks Rasa and the action server for these paths: the containers' checks agree.
    for name, path in (("rasa", RASA_HEALTH_PATH), ("rasa-actions", ACTIONS_HEALTH_PATH)):
        argv = healthcheck_argv(services()[name]["healthcheck"]["test"])
        assert argv[0] in ("python", "python3"), f"{name}: {argv[0]}"
        found = HEALTH_URL_RE.search(" ".join(argv))
        listens = listener(name)
        assert found and listens, name
        assert (found["path"], int(found["port"])) == (path, listens.port), name


def test_worker_and_beat_health_checks_ping_their_own_node() -> None:
    hostname = {"HOSTNAME": "d0c4e1"}
    for name, node in (*((w, "celery@d0c4e1") for w in WORKERS), ("beat", "celerybeat@d0c4e1")):
        test = services()[name]["healthcheck"]["test"]
        assert test[0] == "CMD-SHELL", f"{name}: $HOSTNAME needs a shell"
        call = check_celery(healthcheck_argv(test, hostname))
        assert call.app == "workers.celery_app" and call.command == "inspect", name
        assert call.params["command"] == "ping" and call.params["destination"] == [node], name
        timeout = float(call.params["timeout"])
        assert timeout < _seconds(services()[name]["healthcheck"]["timeout"]), name


def _seconds(value: str) -> float:
    return float(str(value).rstrip("s"))


def test_depends_on_conditions() -> None:
    for name, expected in EXPECTED_DEPENDS_ON.items():
        depends = services()[name].get("depends_on")
        assert isinstance(depends, dict), f"{name}: depends_on needs the long form (conditions)"
        assert {k: v.get("condition") for k, v in depends.items()} == expected, name
    for name, service in services().items():
        for target, spec in (service.get("depends_on") or {}).items():
            condition = spec.get("condition") if isinstance(spec, dict) else None
            if condition == "service_healthy":
                health = services()[target].get("healthcheck") or {}
                assert health.get("test") and not health.get("disable"), (
                    f"{name} waits for {target} to be healthy, but it has no health check"
                )
            if condition == "service_completed_successfully":
                assert services()[target].get("restart") == "no", f"{target} must be one-shot"


def test_stateful_services_keep_their_data() -> None:
    postgres, redis = services()["postgres"], services()["redis"]
    assert str(postgres["image"]).startswith("postgres:16")
    assert str(redis["image"]).startswith("redis:7")
    assert "pg_isready" in healthcheck_argv(postgres["healthcheck"]["test"])
    assert healthcheck_argv(redis["healthcheck"]["test"])[-2:] == ["redis-cli", "ping"]
    # redis-cli reads the password from REDISCLI_AUTH: the health check passes only with it.
    redis_env = raw_environment(redis)
    argv = service_argv("redis", redis)
    assert redis_env.get("REDISCLI_AUTH") == argv[argv.index("--requirepass") + 1]
    assert "--appendonly yes" in " ".join(argv)
    declared = set(compose().get("volumes") or {})
    for name, service in (("postgres", postgres), ("redis", redis)):
        volumes = [str(v).split(":")[0] for v in service.get("volumes", [])]
        named = [v for v in volumes if not v.startswith((".", "/"))]
        assert named and set(named) <= declared, f"{name}: keep its data in a named volume"


def test_api_runs_several_workers_with_shared_metrics() -> None:
    argv = service_argv("api", services()["api"])
    assert int(argv[argv.index("--workers") + 1]) >= 2
    env = raw_environment(services()["api"])
    directory = env.get("PROMETHEUS_MULTIPROC_DIR")
    assert directory, "several uvicorn workers without multiprocess metrics: /metrics lies"
    assert directory in services()["api"].get("tmpfs", []), "the directory must start empty"
    for name in WORKERS:
        assert environment(services()[name], answers()).get("FARO_METRICS_PORT")
