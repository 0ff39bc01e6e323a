"""``GET /l/{code}``: a tracked link from a campaign message; counts a click and redirects."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse

from api.deps import SessionDep
from campaigns.outreach import links

router = APIRouter(tags=["links"])


@router.get("/l/{code}", response_class=RedirectResponse, status_code=302)
def follow(code: str, request: Request, session: SessionDep) -> RedirectResponse:
    url = links.follow(session, code=code, user_agent=request.headers.get("user-agent"))
    return RedirectResponse(url, status_code=302, headers={"Cache-Control": "no-store"})
