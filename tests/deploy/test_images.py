"""The two images: Faro's (``Dockerfile``, Python 3.11) and the assistant's (``bot/Dockerfile``,
Python 3.10, Rasa pinned, the model trained in the build).  Both are built in stages, run as a
non-root user, bake in no secret, and copy only what exists and their .dockerignore lets in.
"""

from __future__ import annotations

import json
import re
import shlex
from configparser import ConfigParser

import pytest

from api.app import create_app
from campaigns import demo, embedded
from campaigns.settings import Settings
from tests.deploy.files import (
    BOT,
    HEALTH_URL_RE,
    ROOT,
    SECRET_WORDS,
    Instruction,
    check_command,
    copy_destination,
    copy_sources,
    dockerfile,
    dockerfile_cmd,
    dockerignored,
    final_stage,
    ignore_patterns,
    packages,
    stage_env,
    stage_named,
)

IMAGES = {"Dockerfile": ".dockerignore", "bot/Dockerfile": "bot/.dockerignore"}
APP, BOT_IMAGE = "Dockerfile", "bot/Dockerfile"


def _health_argv(path: str) -> list[str]:
    checks = [i for i in final_stage(path) if i.keyword == "HEALTHCHECK"]
    assert checks, f"{path}: the image has no HEALTHCHECK"
    command = checks[-1].args.split("CMD", 1)[1].strip()
    return json.loads(command) if command.startswith("[") else shlex.split(command)


@pytest.mark.parametrize("path", IMAGES)
def test_images_build_in_stages_and_run_as_non_root(path: str) -> None:
    assert sum(i.keyword == "FROM" for i in dockerfile(path)) >= 2, "not a multi-stage build"
    assert any(i.keyword == "COPY" and "--from=" in i.args for i in final_stage(path))
    users = [i.args for i in final_stage(path) if i.keyword == "USER"]
    assert users, f"{path}: the image runs as root: no USER in the final stage"
    uid = users[-1].split(":")[0]
    assert uid.isdigit() and int(uid) >= 1000, f"{path}: USER {users[-1]} (numeric, not root)"
    assert any(
        i.keyword == "RUN" and re.search(rf"useradd\b.*--uid {uid}\b", i.args)
        for i in final_stage(path)
    ), f"{path}: no user with uid {uid}"
    env = stage_env(final_stage(path))
    assert env.get("PYTHONDONTWRITEBYTECODE") == "1" and env.get("PYTHONUNBUFFERED") == "1"
    assert not any(i.keyword == "ENTRYPOINT" for i in dockerfile(path))


@pytest.mark.parametrize("path", IMAGES)
def test_images_bake_in_no_secret(path: str) -> None:
    for i in dockerfile(path):
        for name in stage_env([i]) if i.keyword == "ENV" else {}:
            _no_secret(path, i, name)
        if i.keyword == "ARG":
            _no_secret(path, i, i.args.split("=")[0])


def _no_secret(path: str, i: Instruction, name: str) -> None:
    faro_secret = name.startswith("FARO_") and any(w in name for w in SECRET_WORDS)
    # Not KEY alone outside FARO_: base images set harmless names such as GPG_KEY.
    other_secret = any(w in name for w in ("SECRET", "PASSWORD", "TOKEN"))
    assert not (faro_secret or other_secret), (
        f"{path} {i.keyword} {name}: secrets come from the environment at run time"
    )


@pytest.mark.parametrize("path", IMAGES)
def test_dependencies_are_installed_before_the_source_is_copied(path: str) -> None:
    builder = [i for i in dockerfile(path) if i.stage == 0]
    lock = next(n for n, i in enumerate(builder) if "requirements.lock" in copy_sources(i))
    install = next(
        n for n, i in enumerate(builder) if i.keyword == "RUN" and "-r requirements.lock" in i.args
    )
    assert lock < install, (lock, install)
    sources = {".", *packages(), "actions", "data"}
    copies_source = [
        n for n, i in enumerate(builder) if i.keyword == "COPY" and sources & set(copy_sources(i))
    ]
    assert all(n > install for n in copies_source), "a source edit would reinstall everything"
    if path == APP:
        assert any(
            i.keyword == "RUN" and "pip install" in i.args and "--no-deps" in i.args
            for i in builder[install:]
        ), "the project is not installed with --no-deps after its source"


@pytest.mark.parametrize("path", IMAGES)
def test_every_copy_exists_and_is_in_the_build_context(path: str) -> None:
    context = ROOT / path.rpartition("/")[0] if "/" in path else ROOT
    patterns = ignore_patterns(IMAGES[path])
    for i in dockerfile(path):
        if i.keyword == "COPY" and "--from=" not in i.args:
            for src in copy_sources(i):
                assert (context / src).exists(), f"{path}: COPY {src}: no such file"
                assert not dockerignored(src, patterns), f"{path}: COPY {src}, but it is ignored"


def test_dockerignore_keeps_secrets_and_local_state_out() -> None:
    for path, must_ignore in (
        (".dockerignore", (".env", ".git", ".venv", "var", "bot/.venv", "bot/models")),
        ("bot/.dockerignore", (".env", ".venv", "models", ".rasa")),
    ):
        for ignored in (*must_ignore, ".pytest_cache"):
            assert dockerignored(ignored, ignore_patterns(path)), f"{path} lets {ignored} in"


# --- Faro's image ------------------------------------------------------------------------------


def test_app_image_is_python_311_slim() -> None:
    assert "ARG PYTHON_IMAGE=python:3.11-slim" in {f"ARG {i.args}" for i in dockerfile(APP)}


def test_app_image_health_check_and_port_match_the_server() -> None:
    app = create_app(Settings(env="test", database_url="sqlite://"))
    paths = app.openapi()["paths"]
    app.state.engine.dispose()
    served = check_command("Dockerfile CMD", dockerfile_cmd(APP))
    assert served is not None
    exposed = {
        int(p.split("/")[0]) for i in final_stage(APP) if i.keyword == "EXPOSE" for p in i.argv()
    }
    assert exposed == {served.port}, f"EXPOSE {exposed}, CMD listens on {served.port}"
    argv = _health_argv(APP)
    assert argv[0] in ("python", "python3"), "slim has no curl"
    found = HEALTH_URL_RE.search(" ".join(argv))
    assert found and found["path"] in paths and int(found["port"]) == served.port, argv


def test_app_image_holds_the_code_migrations_and_seed_data() -> None:
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
        for i in final_stage(APP)
        if i.keyword == "COPY" and "--from=" not in i.args
        for src in copy_sources(i)
    }
    for path in needed:
        assert any(path == c or path.startswith(f"{c}/") for c in copied), f"{path} not copied"
    # The code finds alembic.ini and data/ beside its own source, so it must run from there.
    workdir = [i.args for i in final_stage(APP) if i.keyword == "WORKDIR"][-1]
    assert stage_env(final_stage(APP)).get("PYTHONPATH") == workdir
    var_dir = Settings.model_fields["var_dir"].default
    assert any(
        i.keyword == "RUN" and "chown" in i.args and f"{workdir}/{var_dir}" in i.args
        for i in final_stage(APP)
    ), "every faro command creates FARO_VAR_DIR: the non-root user must own it"


# --- the assistant's image ---------------------------------------------------------------------


def test_bot_image_is_python_310_slim_with_rasa_pinned() -> None:
    assert "ARG PYTHON_IMAGE=python:3.10-slim" in {f"ARG {i.args}" for i in dockerfile(BOT_IMAGE)}
    lock = (BOT / "requirements.lock").read_text(encoding="utf-8").splitlines()
    assert "rasa==3.6.21" in lock, "the image installs bot/requirements.lock: Rasa 3.6.21"
    assert any(line.startswith("rasa-sdk==") for line in lock)


def test_bot_image_trains_the_model_it_serves() -> None:
    train = [i for i in stage_named(BOT_IMAGE, "trainer") if i.keyword == "RUN"]
    assert train, "no training step"
    argv = shlex.split(train[-1].args)
    assert argv[:2] == ["rasa", "train"], argv
    opts = dict(zip(argv[2::2], argv[3::2], strict=False))
    # The same inputs as `make bot-train` (bot/scripts/train_cached.sh).
    assert (opts["--config"], opts["--domain"], opts["--data"]) == (
        "config.yml",
        "domain.yml",
        "data",
    )
    trained = f"{opts['--out']}/{opts['--fixed-model-name']}.tar.gz"
    workdir = [i.args for i in final_stage(BOT_IMAGE) if i.keyword == "WORKDIR"][-1]
    copied = {
        copy_sources(i)[0]: copy_destination(i)
        for i in final_stage(BOT_IMAGE)
        if i.keyword == "COPY" and "--from=trainer" in i.args
    }
    assert trained in copied, f"the final stage does not copy {trained}"
    cmd = dockerfile_cmd(BOT_IMAGE)
    served = cmd[cmd.index("--model") + 1]
    assert f"{workdir}/{served}" == f"{workdir}/{copied[trained].removeprefix('./')}", (
        f"CMD serves {served}, the build put the model at {copied[trained]}"
    )
    assert stage_env(final_stage(BOT_IMAGE)).get("RASA_TELEMETRY_ENABLED") == "false"
    assert stage_env(stage_named(BOT_IMAGE, "trainer")).get("RASA_TELEMETRY_ENABLED") == "false"


def test_bot_image_serves_rasa_on_its_exposed_port_with_production_endpoints() -> None:
    cmd = dockerfile_cmd(BOT_IMAGE)
    served = check_command("bot/Dockerfile CMD", cmd)
    assert served is not None
    assert cmd[cmd.index("--endpoints") + 1] == "endpoints.production.yml"
    copied = {src for i in final_stage(BOT_IMAGE) if i.keyword == "COPY" for src in copy_sources(i)}
    assert {"endpoints.production.yml", "credentials.yml", "actions"} <= copied
    exposed = {int(p) for i in final_stage(BOT_IMAGE) if i.keyword == "EXPOSE" for p in i.argv()}
    assert served.port in exposed
    found = HEALTH_URL_RE.search(" ".join(_health_argv(BOT_IMAGE)))
    assert found and int(found["port"]) == served.port
