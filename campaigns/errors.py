"""Domain errors.  ``api/errors.py`` maps each to one HTTP status and one error body shape.

FaroError
├── InvalidInput            422  a field or row that cannot be accepted (names the field)
│   └── TooLarge            413  a body, file or row count over its configured limit
├── NotFound                404  no such object in the caller's organization
├── Conflict                409  the object exists already, or its state forbids the change
├── PermissionDenied        403  the caller's role may not do this
│   └── ScopeViolation      403  a write that would touch another organization's row
└── AuthenticationFailed    401  missing, unknown, expired or revoked credentials
"""

from __future__ import annotations

from typing import Any


class FaroError(Exception):
    code = "error"

    def __init__(self, message: str, *, field: str | None = None, details: Any = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field
        self.details = details


class InvalidInput(FaroError):
    code = "invalid_input"


class TooLarge(InvalidInput):
    code = "too_large"


class NotFound(FaroError):
    code = "not_found"


class Conflict(FaroError):
    code = "conflict"


class PermissionDenied(FaroError):
    code = "forbidden"


class ScopeViolation(PermissionDenied):
    code = "forbidden"


class AuthenticationFailed(FaroError):
    code = "unauthorized"
