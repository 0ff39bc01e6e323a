"""The web dashboard at ``/dashboard``: server-rendered pages behind a cookie session.

- ``web``: templates, security headers, the signed-in user, CSRF helpers, ``/static``;
- ``auth``: sign-in, sign-out, password change;
- ``pages``: the analytics pages (``view``: filters, cells, chart data);
- ``exports``: CSV downloads of every table.
"""

from __future__ import annotations

from fastapi import APIRouter

from api.routes.dashboard import auth, exports, pages
from api.routes.dashboard.web import StaticAssets

router = APIRouter(tags=["dashboard"], include_in_schema=False)
router.include_router(auth.router)
router.include_router(pages.router)
router.include_router(exports.router)


def static_files() -> StaticAssets:
    return StaticAssets()


__all__ = ["router", "static_files"]
