"""The deployment files agree with the code they deploy.

Dockerfile, docker-compose.yml, .env.example and .dockerignore are parsed (no Docker engine is
needed) and checked against the code: every ``FARO_*`` variable is a field of ``Settings``, every
command a service runs exists in the ``faro`` CLI or imports, every health check calls a real
route on the port the server listens on, and no secret is baked in or defaulted.  Renaming a
setting, a CLI command or a route without updating the deployment fails here, not in production.
"""

from __future__ import annotations

import fnmatch
import importlib
import inspect
import json
import os
import re
import secrets
import shlex
import tomllib
from collections.abc import Iterator, Mapping
from configparser import ConfigParser
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import click
import pytest
import typer
import typer.main
import yaml
from cryptography.fernet import Fernet
from sqlalchemy.engine import make_url
from typer.core import TyperGroup
from typer.exceptions import TyperException
from uvicorn.main import main as uvicorn_cli

from api.app import create_app
from campaigns import cli, demo, embedded
from campaigns.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
REQUIRED_SERVICES = {"api", "migrate", "postgres", "redis"}
EXPECTED_DEPENDS_ON = {
    "api": {
        "migrate": "service_completed_successfully",
        "postgres": "service_healthy",
        "redis": "service_healthy",
    },
    "migrate": {"postgres": "service_healthy"},
}
SECRET_WORDS = ("SECRET", "PASSWORD", "TOKEN", "KEY")
# ${NAME}, ${NAME:?message}, ${NAME:-default}, $NAME; "$$" is compose's escaped dollar.
VAR_RE = re.compile(
    r"\$\$|\$\{(?P<braced>[A-Za-z_]\w*)(?:(?P<op>:?[-?+])(?P<arg>[^}]*))?\}|\$(?P<bare>[A-Za-z_]\w*)"
)
HEALTH_URL_RE = re.compile(r"https?://(?:127\.0\.0\.1|localhost):(?P<port>\d+)(?P<path>/[^\s'\"]*)")


# --- parsing ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Instruction:
    stage: int  # index of the FROM this instruction belongs to
    keyword: str
    args: str

    def argv(self) -> list[str]:
        """Exec form (a JSON list) or shell form, as Docker reads them."""
        return json.loads(self.args) if self.args.startswith("[") else shlex.split(self.args)


@cache
def dockerfile() -> tuple[Instruction, ...]:
    lines: list[str] = []
    pending = ""
    for raw in (ROOT / "Dockerfile").read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue  # also inside a continuation, where Docker drops comment lines too
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        lines.append(pending + line)
        pending = ""
    stage = -1
    out = []
    for line in lines:
        keyword, _, args = line.partition(" ")
        if keyword.upper() == "FROM":
            stage += 1
        out.append(Instruction(stage, keyword.upper(), args.strip()))
    return tuple(out)


def final_stage() -> list[Instruction]:
    last = dockerfile()[-1].stage
    return [i for i in dockerfile() if i.stage == last]


def env_pairs(instruction: Instruction) -> dict[str, str]:
    tokens = shlex.split(instruction.args)
    if instruction.keyword == "ARG":  # ARG NAME[=default]
        return {tokens[0].partition("=")[0]: tokens[0].partition("=")[2]}
    if "=" not in tokens[0]:  # legacy "ENV NAME value"
        return {tokens[0]: " ".join(tokens[1:])}
    return {name: value for name, _, value in (t.partition("=") for t in tokens)}


def copy_sources(instruction: Instruction) -> list[str]:
    parts = [p for p in instruction.argv() if not p.startswith("--")]
    return [p.rstrip("/") or "." for p in parts[:-1]]


def dockerfile_cmd() -> list[str]:
    cmds = [i for i in final_stage() if i.keyword == "CMD"]
    assert cmds, "the Dockerfile's final stage has no CMD"
    return cmds[-1].argv()


@cache
def compose() -> dict[str, Any]:
    loaded = yaml.safe_load((ROOT / "docker-compose.yml").read_text(encoding="utf-8"))
    assert isinstance(loaded, dict), "docker-compose.yml is not a mapping"
    return loaded


def services() -> dict[str, dict[str, Any]]:
    found = compose().get("services")
    assert isinstance(found, dict), "docker-compose.yml has no services"
    return found


def app_services() -> dict[str, dict[str, Any]]:
    """The services that run Faro's own image (built from the Dockerfile)."""
    built = {s.get("image") for s in services().values() if "build" in s}
    return {
        name: s
        for name, s in services().items()
        if "build" in s or (s.get("image") is not None and s.get("image") in built)
    }


@cache
def env_example() -> dict[str, str]:
    pairs = {}
    for line in (ROOT / ".env.example").read_text(encoding="utf-8").splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            name, sep, value = line.partition("=")
            assert sep, f".env.example: not NAME=value: {line!r}"
            pairs[name.strip()] = value.strip()
    return pairs


def strings(node: Any) -> Iterator[str]:
    if isinstance(node, str):
        yield node
    elif isinstance(node, Mapping):
        for key, value in node.items():
            yield from strings(key)
            yield from strings(value)
    elif isinstance(node, list):
        for item in node:
            yield from strings(item)


def compose_references() -> list[re.Match[str]]:
    return [m for text in strings(compose()) for m in VAR_RE.finditer(text) if m.group(0) != "$$"]


def interpolate(text: str, env: Mapping[str, str]) -> str:
    """Compose's variable substitution, for the forms this file uses."""

    def substitute(m: re.Match[str]) -> str:
        if m.group(0) == "$$":
            return "$"
        name = m["braced"] or m["bare"]
        op, arg, value = m["op"], m["arg"], env.get(name)
        if op in (":?", "?") and (value is None or (op == ":?" and not value)):
            raise ValueError(f"compose would refuse to start: {name}: {arg}")
        if op in (":-", "-") and (value is None or (op == ":-" and not value)):
            return str(arg)
        return value or ""

    return VAR_RE.sub(substitute, text)


def raw_environment(service: dict[str, Any]) -> dict[str, str]:
    """A service's environment as written, before substitution."""
    raw = service.get("environment") or {}
    if isinstance(raw, list):  # ["NAME=value", ...]
        return {k: v for k, _, v in (str(item).partition("=") for item in raw)}
    return {str(k): str(v) for k, v in raw.items()}


def environment(service: dict[str, Any], env: Mapping[str, str]) -> dict[str, str]:
    return {k: interpolate(v, env) for k, v in raw_environment(service).items()}


def service_argv(name: str, service: dict[str, Any]) -> list[str]:
    assert "entrypoint" not in service, f"{name}: an entrypoint changes what `command` means"
    command = service.get("command")
    if command is None:
        return dockerfile_cmd()
    return list(command) if isinstance(command, list) else shlex.split(command)


def healthcheck_argv(test: str | list[str]) -> list[str]:
    if isinstance(test, str):
        return shlex.split(test)
    if test[0] == "CMD-SHELL":
        return shlex.split(test[1])
    return list(test[1:]) if test[0] == "CMD" else list(test)


@cache
def answers() -> dict[str, str]:
    """What an operator writes into .env: the example's values, with each empty one filled in
    (once per run, so that two services reading one variable see the same value)."""
    filled = {}
    for name, value in env_example().items():
        if value:
            filled[name] = value
        elif name == "FARO_PUBLIC_URL":
            filled[name] = "https://faro.example.org"
        elif name == "FARO_ENCRYPTION_KEYS":
            filled[name] = Fernet.generate_key().decode()
        else:
            filled[name] = secrets.token_urlsafe(32)
    return filled


def packages() -> set[str]:
    """Faro's top-level packages, as pyproject.toml ships them."""
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    return {p.rstrip("*.") for p in pyproject["tool"]["setuptools"]["packages"]["find"]["include"]}


def setting_names() -> set[str]:
    prefix = str(Settings.model_config.get("env_prefix", ""))
    return {f"{prefix}{field}".upper() for field in Settings.model_fields}


# --- what the commands do --------------------------------------------------------------------


@dataclass(frozen=True)
class Listener:
    host: str
    port: int


def check_faro(argv: list[str]) -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    assert project["scripts"].get("faro") == "campaigns.cli:main", "`faro` is not campaigns.cli"
    command = typer.main.get_command(cli.app)
    path, rest = ["faro"], argv[1:]
    while isinstance(command, TyperGroup):
        known = command.list_commands(typer.Context(command))
        assert rest and not rest[0].startswith("-"), (
            f"`{' '.join(path)}` is a group, not a command; its commands: {known}"
        )
        sub = command.get_command(typer.Context(command), rest[0])
        assert sub is not None, f"`{' '.join(path)}` has no command {rest[0]!r}; it has {known}"
        command, path, rest = sub, [*path, rest[0]], rest[1:]
    try:  # parses the options and arguments as the command would, without running it
        command.make_context(" ".join(path), list(rest))
    except TyperException as exc:
        pytest.fail(f"`{' '.join(argv)}`: {exc}")


def check_uvicorn(argv: list[str]) -> Listener:
    try:
        ctx = uvicorn_cli.make_context("uvicorn", argv[1:])
    except click.ClickException as exc:
        pytest.fail(f"`{' '.join(argv)}`: {exc}")
    module, _, attr = str(ctx.params["app"]).partition(":")
    target = getattr(importlib.import_module(module), attr, None)
    assert callable(target), f"{ctx.params['app']} is not a callable"
    if ctx.params["factory"]:
        inspect.signature(target).bind()  # uvicorn calls the factory with no arguments
    return Listener(host=str(ctx.params["host"]), port=int(ctx.params["port"]))


def check_command(where: str, argv: list[str]) -> Listener | None:
    """Assert the command exists; return where it listens if it is a server."""
    if argv[0] == "faro":
        check_faro(argv)
        return None
    if argv[0] == "uvicorn":
        return check_uvicorn(argv)
    pytest.fail(f"{where}: no check for `{argv[0]}`; teach tests/test_deploy_files.py about it")


def listener(name: str) -> Listener | None:
    return check_command(f"compose service {name}", service_argv(name, services()[name]))


def container_port(entry: str | int | dict[str, Any]) -> int:
    if isinstance(entry, dict):
        return int(entry["target"])
    return int(str(entry).rsplit(":", 1)[-1].split("/")[0])


# --- compose ---------------------------------------------------------------------------------


def test_compose_has_the_services() -> None:
    assert "version" not in compose(), "the Compose spec has no version: key"
    assert set(services()) >= REQUIRED_SERVICES, REQUIRED_SERVICES - set(services())
    assert {"api", "migrate"} <= set(app_services()), "api and migrate run Faro's image"


def test_every_faro_variable_is_a_setting() -> None:
    known = setting_names()
    used: dict[str, set[str]] = {
        ".env.example": set(env_example()),
        "docker-compose.yml ${...}": {m["braced"] or m["bare"] for m in compose_references()},
        "Dockerfile ENV/ARG": {
            name for i in dockerfile() if i.keyword in ("ENV", "ARG") for name in env_pairs(i)
        },
    }
    for name, service in services().items():
        used[f"docker-compose.yml {name}.environment"] = set(environment(service, answers()))
    unknown = {
        where: sorted(bad)
        for where, names in used.items()
        if (bad := {n for n in names if n.startswith("FARO_") and n not in known})
    }
    assert not unknown, f"not fields of Settings: {unknown}; the settings: {sorted(known)}"


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
    with pytest.raises(ValueError, match="compose would refuse to start"):
        environment(services()["api"], env_example())


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
        for key in ("FARO_DATABASE_URL", "FARO_REDIS_URL", "FARO_RASA_URL"):
            if key in env:
                host = urlsplit(env[key]).hostname
                assert host in services(), f"{name}: {key} points at {host}, not a service"


def test_database_url_matches_the_postgres_service() -> None:
    url = make_url(environment(services()["api"], answers())["FARO_DATABASE_URL"])
    postgres = environment(services()["postgres"], answers())
    assert url.get_backend_name() == "postgresql"
    url.get_dialect()  # the driver named in the URL is installed
    assert url.username == postgres["POSTGRES_USER"]
    assert url.password == postgres["POSTGRES_PASSWORD"]
    assert url.database == postgres.get("POSTGRES_DB", postgres["POSTGRES_USER"])


def test_every_command_exists() -> None:
    for name in app_services():
        listener(name)
    check_command("Dockerfile CMD", dockerfile_cmd())
    assert services()["migrate"].get("command") in (["faro", "db", "upgrade"], "faro db upgrade")


def test_published_ports_match_the_listening_port() -> None:
    for name, service in app_services().items():
        listens = listener(name)
        ports = service.get("ports", [])
        if listens is None:
            assert not ports, f"{name} publishes {ports} but its command serves nothing"
            continue
        assert listens.host == "0.0.0.0", f"{name}: {listens.host} is unreachable from outside"
        for entry in ports:
            assert container_port(entry) == listens.port, f"{name}: {entry} vs {listens.port}"
    assert services()["api"].get("ports"), "the API publishes no port"
    served = check_command("Dockerfile CMD", dockerfile_cmd())
    assert served is not None
    exposed = {
        int(p.split("/")[0]) for i in final_stage() if i.keyword == "EXPOSE" for p in i.argv()
    }
    assert exposed == {served.port}, f"EXPOSE {exposed}, CMD listens on {served.port}"


def test_health_checks_call_routes_of_the_app() -> None:
    app = create_app(Settings(env="test", database_url="sqlite://"))
    paths = app.openapi()["paths"]
    app.state.engine.dispose()
    image_check = [i for i in final_stage() if i.keyword == "HEALTHCHECK"]
    assert image_check, "the image has no HEALTHCHECK"
    served = check_command("Dockerfile CMD", dockerfile_cmd())
    assert served is not None
    command = image_check[-1].args.split("CMD", 1)[1].strip()
    image_argv = json.loads(command) if command.startswith("[") else shlex.split(command)
    checks = [("Dockerfile HEALTHCHECK", image_argv, served.port)]
    for name, service in app_services().items():
        health = service.get("healthcheck") or {}
        if not health.get("disable"):
            listens = listener(name)
            assert listens is not None, f"{name}: a health check on a service that serves nothing"
            test = health.get("test")
            assert test, f"{name} has no health check"
            checks.append((f"{name}.healthcheck", healthcheck_argv(test), listens.port))
    for where, argv, port in checks:
        assert argv[0] in ("python", "python3"), f"{where}: {argv[0]} (slim has no curl)"
        found = HEALTH_URL_RE.search(" ".join(argv))
        assert found, f"{where} calls no local URL: {argv}"
        assert found["path"] in paths and "get" in paths[found["path"]], (
            f"{where}: GET {found['path']} is not a route; routes: {sorted(paths)}"
        )
        assert int(found["port"]) == port, f"{where}: port {found['port']}, server on {port}"
    assert "/healthz" in paths


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


def test_restart_policies_and_stateful_services() -> None:
    for name in ("api", "postgres", "redis"):
        assert services()[name].get("restart") == "unless-stopped", name
    postgres, redis = services()["postgres"], services()["redis"]
    assert str(postgres["image"]).startswith("postgres:16")
    assert str(redis["image"]).startswith("redis:7")
    assert "pg_isready" in healthcheck_argv(postgres["healthcheck"]["test"])
    assert healthcheck_argv(redis["healthcheck"]["test"])[-2:] == ["redis-cli", "ping"]
    assert "--appendonly yes" in " ".join(service_argv("redis", redis))
    declared = set(compose().get("volumes") or {})
    for name, service in (("postgres", postgres), ("redis", redis)):
        volumes = [str(v).split(":")[0] for v in service.get("volumes", [])]
        assert volumes and set(volumes) <= declared, f"{name}: keep its data in a named volume"


# --- Dockerfile and .dockerignore ------------------------------------------------------------


def test_dockerfile_builds_in_stages_and_runs_as_non_root() -> None:
    assert sum(i.keyword == "FROM" for i in dockerfile()) >= 2, "not a multi-stage build"
    assert any(i.keyword == "COPY" and "--from=" in i.args for i in final_stage())
    users = [i.args for i in final_stage() if i.keyword == "USER"]
    assert users, "the image runs as root: no USER in the final stage"
    assert users[-1].split(":")[0] == "10001", f"USER {users[-1]}"
    assert any(
        i.keyword == "RUN" and re.search(r"useradd\b.*--uid 10001\b.*\bfaro\b", i.args)
        for i in final_stage()
    ), "no user faro with uid 10001"
    env = {k: v for i in final_stage() if i.keyword == "ENV" for k, v in env_pairs(i).items()}
    assert env.get("PYTHONDONTWRITEBYTECODE") == "1" and env.get("PYTHONUNBUFFERED") == "1"
    assert not any(i.keyword == "ENTRYPOINT" for i in dockerfile())


def test_dockerfile_bakes_in_no_secret() -> None:
    for i in dockerfile():
        for name in env_pairs(i) if i.keyword in ("ENV", "ARG") else {}:
            faro_secret = name.startswith("FARO_") and any(w in name for w in SECRET_WORDS)
            # Not KEY alone outside FARO_: base images set harmless names such as GPG_KEY.
            other_secret = any(w in name for w in ("SECRET", "PASSWORD", "TOKEN"))
            assert not (faro_secret or other_secret), (
                f"Dockerfile {i.keyword} {name}: secrets come from the environment at run time"
            )


def test_dependencies_are_installed_before_the_source_is_copied() -> None:
    builder = [i for i in dockerfile() if i.stage == 0]
    position = {
        "lock": next(n for n, i in enumerate(builder) if "requirements.lock" in copy_sources(i)),
        "install": next(
            n
            for n, i in enumerate(builder)
            if i.keyword == "RUN" and "-r requirements.lock" in i.args
        ),
        "source": next(
            n
            for n, i in enumerate(builder)
            if i.keyword == "COPY" and {".", *packages()} & set(copy_sources(i))
        ),
    }
    assert position["lock"] < position["install"] < position["source"], position
    assert any(
        i.keyword == "RUN" and "pip install" in i.args and "--no-deps" in i.args
        for i in builder[position["source"] :]
    ), "the project is not installed with --no-deps after its source"


def test_image_holds_the_code_migrations_and_seed_data() -> None:
    ini = ConfigParser()
    ini.read(ROOT / "alembic.ini")
    needed = {
        str((embedded.ROOT / "alembic.ini").relative_to(ROOT)),
        ini["alembic"]["script_location"],
        str(demo.DATA_DIR.relative_to(ROOT)),
        *packages(),
    }
    copied = {
        src
        for i in final_stage()
        if i.keyword == "COPY" and "--from=" not in i.args
        for src in copy_sources(i)
    }
    for path in needed:
        assert any(path == c or path.startswith(f"{c}/") for c in copied), f"{path} not copied"
    # The code finds alembic.ini and data/ beside its own source, so it must run from there.
    workdir = [i.args for i in final_stage() if i.keyword == "WORKDIR"][-1]
    env = {k: v for i in final_stage() if i.keyword == "ENV" for k, v in env_pairs(i).items()}
    assert env.get("PYTHONPATH") == workdir
    var_dir = Settings.model_fields["var_dir"].default
    assert any(
        i.keyword == "RUN" and "chown" in i.args and f"{workdir}/{var_dir}" in i.args
        for i in final_stage()
    ), "every faro command creates FARO_VAR_DIR: the non-root user must own it"


def dockerignored(path: str, patterns: list[str]) -> bool:
    """Docker's rule: the last pattern matching the path or one of its parents wins."""
    parts = path.split("/")
    candidates = ["/".join(parts[: n + 1]) for n in range(len(parts))]
    ignored = False
    for pattern in patterns:
        bare = pattern.removeprefix("!").strip("/")
        if any(fnmatch.fnmatchcase(c, bare) for c in candidates):
            ignored = not pattern.startswith("!")
    return ignored


def test_dockerignore_keeps_secrets_and_local_state_out() -> None:
    patterns = [
        line.strip()
        for line in (ROOT / ".dockerignore").read_text(encoding="utf-8").splitlines()
        if line.strip() and not line.startswith("#")
    ]
    for path in (".env", ".git", ".venv", "var", "bot/.venv", "bot/models", ".pytest_cache"):
        assert dockerignored(path, patterns), f".dockerignore lets {path} into the build context"
    for i in dockerfile():
        if i.keyword == "COPY" and "--from=" not in i.args:
            for src in copy_sources(i):
                assert (ROOT / src).exists(), f"COPY {src}: no such file"
                assert not dockerignored(src, patterns), f"COPY {src}, but .dockerignore drops it"
