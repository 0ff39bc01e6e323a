"""Structured logging: JSON in production, readable in a terminal, never a number or a body.

Events are named ``noun.past_verb``; request and task ids are bound through contextvars.  As a
last line of defence a processor masks anything shaped like a phone number and drops keys that
would carry a message body, whatever a caller passes in.
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import MutableMapping
from typing import Any

import structlog

from campaigns.settings import Settings

# Eight to fifteen digits standing alone (not inside an id or a date-time), optionally with a
# leading + or whatsapp: and single separators between digits.
_PHONE_RE = re.compile(r"(?<![\w:-])(?:whatsapp:)?\+?\d(?:[\s().-]?\d){7,14}(?![\w-])")
_SAFE_KEYS = frozenset({"timestamp", "request_id", "task_id", "level", "logger"})
_FORBIDDEN_KEYS = frozenset(
    {"body", "Body", "phone", "From", "To", "text", "address", "profile_name"}
)


def _scrub_value(value: Any) -> Any:
    if isinstance(value, str):
        return _PHONE_RE.sub("[redacted-number]", value)
    return value


def scrub(
    logger: Any, method: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    for key in list(event_dict):
        if key in _FORBIDDEN_KEYS:
            event_dict[key] = "[redacted]"
        elif key not in _SAFE_KEYS:
            event_dict[key] = _scrub_value(event_dict[key])
    return event_dict


def configure_logging(settings: Settings, *, stream: Any = None) -> None:
    fmt = settings.log_format
    if fmt == "auto":
        fmt = "json" if settings.env == "production" or not sys.stderr.isatty() else "console"
    renderer: Any = (
        structlog.processors.JSONRenderer()
        if fmt == "json"
        else structlog.dev.ConsoleRenderer(colors=False)
    )
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.format_exc_info,
        scrub,
    ]
    structlog.configure(
        processors=[*shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=False,
    )
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=shared,
            processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer],
        )
    )
    root = logging.getLogger()
    for old in list(root.handlers):
        if getattr(old, "_faro", False):
            root.removeHandler(old)
    handler._faro = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    root.setLevel(settings.log_level.upper())
    # Uvicorn's access log prints query strings; Faro logs its own request line instead.
    logging.getLogger("uvicorn.access").disabled = True
    for name in ("uvicorn", "uvicorn.error", "celery"):
        logging.getLogger(name).handlers.clear()
        logging.getLogger(name).propagate = True


def get_logger(name: str) -> Any:
    return structlog.stdlib.get_logger(name)
