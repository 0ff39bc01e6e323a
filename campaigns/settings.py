"""Faro's settings: one class, environment variables prefixed ``FARO_``.

With no configuration at all Faro runs its embedded default: SQLite and an embedded Redis under
``var/``, the simulator channel instead of Twilio, and development keys.  Production
(``FARO_ENV=production``) refuses to start with any of those development defaults.
"""

from __future__ import annotations

import base64
import hashlib
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

# Development-only key material.  It is public (it is in this file), so production refuses it.
DEV_SECRET_KEY = "faro-development-secret-key-do-not-use-in-production"  # noqa: S105
DEV_ENCRYPTION_KEY = base64.urlsafe_b64encode(
    hashlib.sha256(b"faro-development-encryption-key").digest()
).decode()
DEV_HASH_KEY = "faro-development-hash-key-do-not-use-in-production"
DEV_ACTIONS_TOKEN = "faro-development-actions-token"  # noqa: S105


class ConfigurationError(RuntimeError):
    """The settings cannot be used as they are (for example development secrets in production)."""


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="FARO_", extra="ignore", env_file=None)

    env: Literal["development", "test", "production"] = "development"
    var_dir: Path = Path("var")
    database_url: str | None = None
    redis_url: str | None = None
    # Celery's broker when it is not FARO_REDIS_URL, e.g. amqp://user:pass@rabbitmq:5672// for
    # RabbitMQ.  Redis stays required: rate limits, periodic-task locks, Rasa's lock store.
    broker_url: str | None = None
    public_url: str = "http://127.0.0.1:8000"
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=1, le=65535)
    log_format: Literal["auto", "json", "console"] = "auto"
    log_level: str = "INFO"

    secret_key: SecretStr = SecretStr(DEV_SECRET_KEY)
    # Comma-separated Fernet keys; the first encrypts, all decrypt (MultiFernet rotation).
    encryption_keys: SecretStr = SecretStr(DEV_ENCRYPTION_KEY)
    # Key of the HMAC that makes phone numbers findable without storing them in plain text.
    hash_key: SecretStr = SecretStr(DEV_HASH_KEY)

    twilio_account_sid: str | None = None
    twilio_auth_token: SecretStr | None = None
    twilio_api_url: str = "https://api.twilio.com"
    rasa_url: str = "http://127.0.0.1:5005"
    action_server_url: str = "http://127.0.0.1:5055"
    # Shared secret of Rasa's action server when it calls /internal/assistant/turn.
    actions_token: SecretStr = SecretStr(DEV_ACTIONS_TOKEN)

    # Bearer token Prometheus sends to GET /metrics; unset: /metrics is off in production.
    metrics_token: SecretStr | None = None
    # Workers and beat serve no HTTP: with a port set, a worker exposes its own metrics there.
    metrics_port: int | None = Field(default=None, ge=1, le=65535)

    token_default_days: int = Field(default=90, ge=1, le=3650)
    max_json_bytes: int = Field(default=1_000_000, ge=1_000)
    max_import_bytes: int = Field(default=50_000_000, ge=1_000)
    max_webhook_bytes: int = Field(default=64_000, ge=1_000)
    max_import_rows: int = Field(default=500_000, ge=1)
    page_size_max: int = Field(default=500, ge=1)
    # Campaign messages/s, for the whole deployment, while the assistant is answering someone
    # (a question in the last CHATTING_SECONDS): campaigns yield the machines to conversations.
    # 0: campaigns never yield (each sender's own rate still applies).
    campaign_rate_while_chatting: float = Field(default=50.0, ge=0, le=100_000)
    # Message bodies and conversation text older than this are purged (campaigns/retention.py).
    retention_days: int = Field(default=90, ge=1, le=3650)
    # Rasa's SQL tracker store, so retention and erasure reach its events too (optional).
    rasa_tracker_db_url: SecretStr | None = None

    @field_validator("public_url", "twilio_api_url", "rasa_url", "action_server_url")
    @classmethod
    def _strip_slash(cls, value: str) -> str:
        return value.rstrip("/")

    @model_validator(mode="after")
    def _check_keys(self) -> Settings:
        from cryptography.fernet import Fernet

        for key in self.fernet_keys:
            try:
                Fernet(key)
            except ValueError as exc:
                raise ValueError(
                    "FARO_ENCRYPTION_KEYS must be comma-separated Fernet keys "
                    "(32 url-safe base64-encoded bytes each)"
                ) from exc
        return self

    @property
    def fernet_keys(self) -> list[str]:
        return [k.strip() for k in self.encryption_keys.get_secret_value().split(",") if k.strip()]

    @property
    def effective_database_url(self) -> str:
        return self.database_url or f"sqlite:///{(self.var_dir / 'faro.db').resolve()}"

    @property
    def is_embedded(self) -> bool:
        return self.database_url is None

    @property
    def uses_simulator(self) -> bool:
        return not (self.twilio_account_sid and self.twilio_auth_token)

    def check_production(self) -> None:
        """Refuse development defaults in production; called by every process at start."""
        if self.env != "production":
            return
        problems = []
        if self.secret_key.get_secret_value() == DEV_SECRET_KEY:
            problems.append("FARO_SECRET_KEY is the development default")
        if DEV_ENCRYPTION_KEY in self.fernet_keys:
            problems.append("FARO_ENCRYPTION_KEYS contains the development key")
        if self.hash_key.get_secret_value() == DEV_HASH_KEY:
            problems.append("FARO_HASH_KEY is the development default")
        if not self.public_url.startswith("https://"):
            problems.append("FARO_PUBLIC_URL must be https:// in production")
        if self.database_url is None:
            problems.append("FARO_DATABASE_URL must be set in production")
        if self.redis_url is None:
            problems.append("FARO_REDIS_URL must be set in production")
        if self.uses_simulator:
            problems.append(
                "FARO_TWILIO_ACCOUNT_SID and FARO_TWILIO_AUTH_TOKEN must be set in production"
            )
        if self.actions_token.get_secret_value() == DEV_ACTIONS_TOKEN:
            problems.append("FARO_ACTIONS_TOKEN is the development default")
        for name, value in (
            ("FARO_SECRET_KEY", self.secret_key),
            ("FARO_HASH_KEY", self.hash_key),
            ("FARO_ACTIONS_TOKEN", self.actions_token),
            *([("FARO_METRICS_TOKEN", self.metrics_token)] if self.metrics_token else []),
        ):
            secret = value.get_secret_value()
            if len(secret) < 32 or len(set(secret)) < 10:
                problems.append(f"{name} must be a random value of at least 32 characters")
        if problems:
            raise ConfigurationError("; ".join(problems))


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
