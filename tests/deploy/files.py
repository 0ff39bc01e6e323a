"""Parsing the deployment files as Docker and Compose read them, and checking each command
against the program that would run it (no Docker engine needed).

The tests beside this module use it: ``test_compose.py`` (docker-compose.yml, .env.example) and
``test_images.py`` (Dockerfile, bot/Dockerfile, the .dockerignore files).
"""

from __future__ import annotations

import fnmatch
import importlib
import inspect
import json
import re
import secrets
import shlex
import subprocess
import tomllib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import click
import pytest
import typer
import typer.main
import yaml
from celery.app.control import Inspect
from celery.bin.celery import celery as celery_cli
from cryptography.fernet import Fernet
from typer.core import TyperGroup
from typer.exceptions import TyperException
from uvicorn.main import main as uvicorn_cli

from campaigns import cli
from campaigns.settings import Settings

ROOT = Path(__file__).resolve().parent.parent.parent
BOT = ROOT / "bot"
BOT_PYTHON = BOT / ".venv" / "bin" / "python"
SECRET_WORDS = ("SECRET", "PASSWORD", "TOKEN", "KEY")
# ${NAME}, ${NAME:?message}, ${NAME:-default}, $NAME; "$$" is compose's escaped dollar.
VAR_RE = re.compile(
    r"\$\$|\$\{(?P<braced>[A-Za-z_]\w*)(?:(?P<op>:?[-?+])(?P<arg>[^}]*))?\}|\$(?P<bare>[A-Za-z_]\w*)"
)
HEALTH_URL_RE = re.compile(r"https?://(?:127\.0\.0\.1|localhost):(?P<port>\d+)(?P<path>/[^\s'\"]*)")


# --- Dockerfiles -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Instruction:
    stage: int  # index of the FROM this instruction belongs to
    keyword: str
    args: str

    def argv(self) -> list[str]:
        """Exec form (a JSON list) or shell form, as Docker reads them."""
        return json.loads(self.args) if self.args.startswith("[") else shlex.split(self.args)


@cache
def dockerfile(path: str = "Dockerfile") -> tuple[Instruction, ...]:
    """The instructions of ``path`` (relative to the repository), continuation lines joined."""
    lines: list[str] = []
    pending = ""
    for raw in (ROOT / path).read_text(encoding="utf-8").splitlines():
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


def final_stage(path: str = "Dockerfile") -> list[Instruction]:
    last = dockerfile(path)[-1].stage
    return [i for i in dockerfile(path) if i.stage == last]


def stage_named(path: str, name: str) -> list[Instruction]:
    for i in dockerfile(path):
        if i.keyword == "FROM" and i.args.lower().endswith(f" as {name}"):
            return [j for j in dockerfile(path) if j.stage == i.stage]
    pytest.fail(f"{path} has no stage {name!r}")


def env_pairs(instruction: Instruction) -> dict[str, str]:
    tokens = shlex.split(instruction.args)
    if instruction.keyword == "ARG":  # ARG NAME[=default]
        return {tokens[0].partition("=")[0]: tokens[0].partition("=")[2]}
    if "=" not in tokens[0]:  # legacy "ENV NAME value"
        return {tokens[0]: " ".join(tokens[1:])}
    return {name: value for name, _, value in (t.partition("=") for t in tokens)}


def stage_env(instructions: list[Instruction]) -> dict[str, str]:
    return {k: v for i in instructions if i.keyword == "ENV" for k, v in env_pairs(i).items()}


def copy_sources(instruction: Instruction) -> list[str]:
    parts = [p for p in instruction.argv() if not p.startswith("--")]
    return [p.rstrip("/") or "." for p in parts[:-1]]


def copy_destination(instruction: Instruction) -> str:
    return [p for p in instruction.argv() if not p.startswith("--")][-1]


def dockerfile_cmd(path: str = "Dockerfile") -> list[str]:
    cmds = [i for i in final_stage(path) if i.keyword == "CMD"]
    assert cmds, f"{path}: the final stage has no CMD"
    return cmds[-1].argv()


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


def ignore_patterns(path: str) -> list[str]:
    return [
        line.strip()
        for line in (ROOT / path).read_text(encoding="utf-8").splitlines()
        if line.strip() and not line.startswith("#")
    ]


# --- compose -----------------------------------------------------------------------------------


@cache
def compose() -> dict[str, Any]:
    loaded = yaml.safe_load((ROOT / "docker-compose.yml").read_text(encoding="utf-8"))
    assert isinstance(loaded, dict), "docker-compose.yml is not a mapping"
    return loaded


def services() -> dict[str, dict[str, Any]]:
    found = compose().get("services")
    assert isinstance(found, dict), "docker-compose.yml has no services"
    return found


def _built_from(context: str) -> dict[str, dict[str, Any]]:
    """The services that run the image built from ``context`` (or that image by its name)."""

    def context_of(service: dict[str, Any]) -> str | None:
        build = service.get("build")
        if build is None:
            return None
        raw = build if isinstance(build, str) else build.get("context", ".")
        return str(Path(raw)).removeprefix("./") or "."

    built = {s.get("image") for s in services().values() if context_of(s) == context}
    return {
        name: s
        for name, s in services().items()
        if context_of(s) == context or (context_of(s) is None and s.get("image") in built - {None})
    }


def app_services() -> dict[str, dict[str, Any]]:
    """The services that run Faro's own image (built from the Dockerfile)."""
    return _built_from(".")


def bot_services() -> dict[str, dict[str, Any]]:
    """The services that run the assistant's image (built from bot/Dockerfile)."""
    return _built_from("bot")


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
        return dockerfile_cmd("bot/Dockerfile" if name in bot_services() else "Dockerfile")
    return [str(a) for a in command] if isinstance(command, list) else shlex.split(command)


def healthcheck_argv(test: str | list[str], env: Mapping[str, str] | None = None) -> list[str]:
    """The health check's command; a CMD-SHELL one with ``$$NAME`` expanded from ``env``."""
    if isinstance(test, str):
        return shlex.split(test)
    if test[0] == "CMD-SHELL":
        shell = test[1].replace("$$", "$")
        for name, value in (env or {}).items():
            shell = shell.replace(f"${name}", value)
        return shlex.split(shell)
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


def action_server_variables() -> set[str]:
    """The FARO_ variables the assistant's action server reads (bot/actions/)."""
    source = "\n".join(p.read_text(encoding="utf-8") for p in (BOT / "actions").glob("*.py"))
    return set(re.findall(r"environ(?:\.get\(|\[)\"(FARO_\w+)\"", source))


# --- what the commands do ----------------------------------------------------------------------


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


@dataclass(frozen=True)
class CeleryCall:
    app: str
    command: str
    params: dict[str, Any]


def check_celery(argv: list[str]) -> CeleryCall:
    """``celery -A module <command> ...``: parsed by Celery's own command line; the app imports."""
    try:
        ctx = celery_cli.make_context("celery", argv[1:])
        rest = [*ctx._protected_args, *ctx.args]
        sub = celery_cli.get_command(ctx, rest[0])
        assert sub is not None, f"`celery` has no command {rest[0]!r}"
        sub_ctx = sub.make_context(rest[0], rest[1:], parent=ctx)
    except click.ClickException as exc:
        pytest.fail(f"`{' '.join(argv)}`: {exc}")
    module = str(ctx.params["app"])
    assert getattr(importlib.import_module(module), "app", None) is not None, module
    if rest[0] == "inspect":
        method = sub_ctx.params["command"]
        assert callable(getattr(Inspect, method, None)), f"celery inspect has no {method!r}"
    return CeleryCall(app=module, command=rest[0], params=dict(sub_ctx.params))


@cache
def _rasa_parse(argv: tuple[str, ...]) -> dict[str, Any]:
    """Rasa's own argument parser, in the assistant's environment (Python 3.10)."""
    if not BOT_PYTHON.exists():
        pytest.skip("the assistant's environment bot/.venv is missing (`make bot-setup`)")
    script = (
        "import json, sys\n"
        "from rasa.__main__ import create_argument_parser\n"
        "args = create_argument_parser().parse_args(json.loads(sys.argv[1]))\n"
        "print(json.dumps({k: v for k, v in vars(args).items() if k != 'func'}, default=str))\n"
    )
    done = subprocess.run(
        [str(BOT_PYTHON), "-c", script, json.dumps(list(argv))],
        capture_output=True,
        text=True,
        timeout=180,
        env={"RASA_TELEMETRY_ENABLED": "false", "PATH": "/usr/bin:/bin"},
        check=False,
    )
    assert done.returncode == 0, f"`rasa {' '.join(argv)}` does not parse:\n{done.stderr[-2000:]}"
    parsed: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return parsed


def check_rasa(argv: list[str]) -> Listener:
    params = _rasa_parse(tuple(argv[1:]))
    if argv[1:3] == ["run", "actions"]:
        actions = params["actions"].replace(".", "/")
        assert (BOT / actions).is_dir() or (BOT / f"{actions}.py").is_file(), actions
        return Listener(host="0.0.0.0", port=int(params["port"]))  # rasa_sdk binds every address
    for key in ("endpoints", "credentials"):
        assert (BOT / params[key]).is_file(), f"rasa --{key} {params[key]}: no such file in bot/"
    return Listener(host=str(params["interface"]), port=int(params["port"]))


def check_command(where: str, argv: list[str]) -> Listener | None:
    """Assert the command exists; return where it listens if it is a server."""
    if argv[0] == "faro":
        check_faro(argv)
        return None
    if argv[0] == "uvicorn":
        return check_uvicorn(argv)
    if argv[0] == "rasa":
        return check_rasa(argv)
    pytest.fail(f"{where}: no check for `{argv[0]}`; teach tests/deploy/files.py about it")


def listener(name: str) -> Listener | None:
    return check_command(f"compose service {name}", service_argv(name, services()[name]))


def container_port(entry: str | int | dict[str, Any]) -> int:
    if isinstance(entry, dict):
        return int(entry["target"])
    return int(str(entry).rsplit(":", 1)[-1].split("/")[0])
