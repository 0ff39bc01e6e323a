"""The campaign API: the whole journey a manager takes, role rules, and clear 4xx on bad input."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import update
from sqlalchemy.orm import Session

from campaigns.communities import Community
from campaigns.crypto import AddressCipher
from campaigns.db import utcnow
from campaigns.organizations.models import Organization, Role
from tests.campaigns_engine.factories import SID, make_place
from tests.factories import auth, make_contact, make_organization, make_token, make_user

DAY = (utcnow() + dt.timedelta(days=30)).date()
ONCE = {"type": "once", "local": f"{DAY.isoformat()}T09:00"}


@pytest.fixture
def org(db: Session) -> Organization:
    return make_organization(db)


def headers(db: Session, org: Organization, role: Role = Role.manager) -> dict[str, str]:
    return auth(make_token(db, user=make_user(db, org=org, role=role)))


@pytest.fixture
def places(db: Session, org: Organization) -> list[Community]:
    return [
        make_place(db, org=org, name="Tapachula", timezone="America/Mexico_City"),
        make_place(
            db, org=org, name="Puerto Príncipe", timezone="America/Port-au-Prince", language="ht"
        ),
    ]


def new_poll(
    client: TestClient, h: dict[str, str], places: list[Community], **extra: Any
) -> dict[str, Any]:
    body = {
        "name": "¿Te cobraron por una cita?",
        "objective": "Medir cuántas personas reciben cobros falsos",
        "topic": "scams_fraud",
        "kind": "poll",
        "schedule": ONCE,
        "community_ids": [p.id for p in places],
        **extra,
    }
    r = client.post("/v1/campaigns", json=body, headers=h)
    assert r.status_code == 201, r.text
    campaign: dict[str, Any] = r.json()
    cid = campaign["id"]
    r = client.put(
        f"/v1/campaigns/{cid}/content",
        json=[
            {
                "language": "es",
                "sms_text": "¿Te pidieron dinero por una cita migratoria?",
                "whatsapp_content_sid": SID,
                "whatsapp_variables": {"1": "cita migratoria"},
                "whatsapp_text": "¿Te pidieron dinero por una {{1}}?",
            },
            {"language": "ht", "sms_text": "Eske yo te mande w lajan pou yon randevou?"},
        ],
        headers=h,
    )
    assert r.status_code == 200, r.text
    r = client.put(
        f"/v1/campaigns/{cid}/options",
        json=[
            {"number": 1, "labels": {"es": "Sí", "ht": "Wi"}, "aliases": {"es": ["si", "uno"]}},
            {"number": 2, "labels": {"es": "No", "ht": "Non"}, "aliases": {"ht": ["non"]}},
        ],
        headers=h,
    )
    assert r.status_code == 200, r.text
    return campaign


def test_a_manager_prepares_a_poll_another_approves_it_and_it_is_launched(
    client: TestClient,
    db: Session,
    org: Organization,
    places: list[Community],
    cipher: AddressCipher,
) -> None:
    author, reviewer, viewer = headers(db, org), headers(db, org), headers(db, org, Role.viewer)
    for _ in range(3):
        make_contact(db, org=org, cipher=cipher, channel="sms", communities=[places[0]])
    make_contact(db, org=org, cipher=cipher, communities=[places[1]], language="ht", consent=None)
    cid = new_poll(client, author, places)["id"]

    preview = client.get(
        f"/v1/campaigns/{cid}/preview", params={"price_per_segment": "0.05"}, headers=viewer
    )
    assert preview.status_code == 200, preview.text
    p = preview.json()
    assert p["recipients"] == 3 and p["excluded"]["no_consent"] == 1
    assert p["estimated_cost"] == "0.15"
    tapachula = next(c for c in p["communities"] if c["name"] == "Tapachula")
    assert tapachula["by_language"] == {"es": {"sms": 3}} and tapachula["sms_segments"] == 3
    es = next(m for m in p["messages"] if m["language"] == "es")
    assert es["sms_text"].endswith("\n\n1 Sí\n2 No")

    times = client.get(f"/v1/campaigns/{cid}/schedule-preview", headers=viewer).json()
    local = {c["name"]: c["runs"][0]["local"] for c in times}
    assert local["Tapachula"].startswith(f"{DAY.isoformat()}T09:00")
    assert local["Puerto Príncipe"].startswith(f"{DAY.isoformat()}T09:00")
    utc = {c["name"]: c["runs"][0]["due_at"] for c in times}
    assert utc["Tapachula"] != utc["Puerto Príncipe"]

    assert client.post(f"/v1/campaigns/{cid}/submit", headers=author).json()["status"] == (
        "submitted"
    )
    r = client.post(f"/v1/campaigns/{cid}/approve", headers=author)
    assert r.status_code == 403 and "two-person rule" in r.json()["error"]["message"]
    assert client.post(f"/v1/campaigns/{cid}/approve", headers=viewer).status_code == 403
    r = client.post(f"/v1/campaigns/{cid}/approve", headers=reviewer)
    assert r.status_code == 200 and r.json()["status"] == "approved"

    r = client.post(f"/v1/campaigns/{cid}/schedule", headers=author)
    assert r.status_code == 200 and r.json()["status"] == "scheduled"
    again = client.post(f"/v1/campaigns/{cid}/schedule", headers=reviewer)
    assert again.status_code == 409
    assert again.json()["error"]["details"] == {"status": "scheduled", "wanted": "scheduled"}
    run_list = client.get(f"/v1/campaigns/{cid}/runs", headers=viewer).json()
    assert len(run_list) == 2 and {r["status"] for r in run_list} == {"pending"}

    assert client.post(f"/v1/campaigns/{cid}/pause", headers=viewer).status_code == 403
    paused = client.post(f"/v1/campaigns/{cid}/pause", headers=author).json()
    assert paused["status"] == "paused" and paused["paused"] is True
    assert client.post(f"/v1/campaigns/{cid}/resume", headers=author).json()["status"] == (
        "scheduled"
    )
    cancelled = client.post(f"/v1/campaigns/{cid}/cancel", headers=reviewer)
    assert cancelled.json()["status"] == "cancelled"
    assert {
        r["status"] for r in client.get(f"/v1/campaigns/{cid}/runs", headers=viewer).json()
    } == {"cancelled"}
    listed = client.get("/v1/campaigns", params={"status": "cancelled"}, headers=viewer).json()
    assert [c["id"] for c in listed] == [cid]


def test_an_edit_after_approval_goes_back_to_draft(
    client: TestClient, db: Session, org: Organization, places: list[Community]
) -> None:
    author, reviewer = headers(db, org), headers(db, org)
    cid = new_poll(client, author, places)["id"]
    client.post(f"/v1/campaigns/{cid}/submit", headers=author)
    approved = client.post(f"/v1/campaigns/{cid}/approve", headers=reviewer).json()
    r = client.put(
        f"/v1/campaigns/{cid}/targets", json={"community_ids": [places[0].id]}, headers=author
    )
    assert r.status_code == 200
    after = client.get(f"/v1/campaigns/{cid}", headers=author).json()
    assert after["status"] == "draft" and after["version"] == approved["version"] + 1
    assert after["approved_by_user_id"] is None and after["community_ids"] == [places[0].id]
    r = client.post(f"/v1/campaigns/{cid}/schedule", headers=author)
    assert r.status_code == 409
    assert r.json()["error"]["message"].endswith("it is draft; schedule needs approved")


def test_viewers_read_but_do_not_write(
    client: TestClient, db: Session, org: Organization, places: list[Community]
) -> None:
    viewer = headers(db, org, Role.viewer)
    cid = new_poll(client, headers(db, org), places)["id"]
    assert client.get(f"/v1/campaigns/{cid}", headers=viewer).status_code == 200
    assert client.get(f"/v1/campaigns/{cid}/content", headers=viewer).status_code == 200
    assert (
        client.get(f"/v1/campaigns/{cid}/options", headers=viewer).json()[0]["labels"]["ht"] == "Wi"
    )
    assert client.get(f"/v1/campaigns/{cid}/targets", headers=viewer).status_code == 200
    for method, path in [
        ("POST", "/v1/campaigns"),
        ("PATCH", f"/v1/campaigns/{cid}"),
        ("DELETE", f"/v1/campaigns/{cid}"),
        ("PUT", f"/v1/campaigns/{cid}/content"),
        ("PUT", f"/v1/campaigns/{cid}/options"),
        ("PUT", f"/v1/campaigns/{cid}/targets"),
        ("POST", f"/v1/campaigns/{cid}/submit"),
        ("POST", f"/v1/campaigns/{cid}/cancel"),
    ]:
        assert client.request(method, path, headers=viewer, json={}).status_code in (403, 422)
        assert client.request(method, path, headers=viewer).status_code in (403, 422)


def test_a_draft_can_be_deleted_a_launched_campaign_cannot(
    client: TestClient, db: Session, org: Organization, places: list[Community]
) -> None:
    author, reviewer = headers(db, org), headers(db, org)
    draft = new_poll(client, author, places)["id"]
    assert client.delete(f"/v1/campaigns/{draft}", headers=author).status_code == 204
    assert client.get(f"/v1/campaigns/{draft}", headers=author).status_code == 404
    cid = new_poll(client, author, places)["id"]
    client.post(f"/v1/campaigns/{cid}/submit", headers=author)
    r = client.delete(f"/v1/campaigns/{cid}", headers=author)
    assert r.status_code == 409 and "cancel it instead" in r.json()["error"]["message"]
    assert client.post(f"/v1/campaigns/{cid}/approve", headers=reviewer).status_code == 200


# --- bad input ----------------------------------------------------------------------------------


def _error(r: Any, status: int) -> dict[str, Any]:
    assert r.status_code == status, r.text
    error: dict[str, Any] = r.json()["error"]
    return error


@pytest.mark.parametrize(
    ("change", "field", "words"),
    [
        ({"schedule": {"type": "once", "local": "2020-01-01T09:00"}}, "schedule.local", "past"),
        ({"schedule": {"type": "once", "local": "mañana"}}, "schedule.local", "not a date"),
        (
            {
                "schedule": {
                    "type": "rrule",
                    "rrule": "FREQ=MINUTELY",
                    "local_time": "09:00",
                    "start": "2030-01-01",
                }
            },
            "schedule.rrule",
            "FREQ",
        ),
        ({"topic": "weather"}, "topic", "unknown topic"),
        ({"kind": "survey"}, "kind", "announcement"),
        ({"fallback_language": "pt"}, "fallback_language", "unknown language"),
        ({"filters": {"channels": ["telegram"]}}, "filters.channels", "unknown channel"),
        ({"response_window_hours": 0}, "response_window_hours", "greater than"),
        ({"community_ids": [10**12]}, "community_ids", "unknown community"),
    ],
)
def test_bad_campaign_fields(
    client: TestClient,
    db: Session,
    org: Organization,
    places: list[Community],
    change: dict[str, Any],
    field: str,
    words: str,
) -> None:
    body = {
        "name": "x",
        "topic": "scams_fraud",
        "kind": "poll",
        "schedule": ONCE,
        "community_ids": [p.id for p in places],
        **change,
    }
    error = _error(client.post("/v1/campaigns", json=body, headers=headers(db, org)), 422)
    assert error["field"] == field
    assert words in error["message"]


LONG = "a" * 1601


@pytest.mark.parametrize(
    ("row", "field", "words"),
    [
        ({"whatsapp_content_sid": "HX123"}, "whatsapp_content_sid", "HX and 32 hex digits"),
        (
            {
                "whatsapp_content_sid": SID,
                "whatsapp_text": "Hola {{1}}, ve a {{2}}",
                "whatsapp_variables": {"1": "Ana"},
            },
            "whatsapp_variables",
            "uses {{2}}",
        ),
        (
            {"sms_text": LONG},
            "sms_text",
            "1,601 characters (an emoji counts 2); the limit is 1,600",
        ),
        ({"sms_text": "😀" * 801}, "sms_text", "has 1,602 characters"),
        (
            {"whatsapp_content_sid": SID, "whatsapp_text": "b" * 1025},
            "whatsapp_text",
            "template body",
        ),
        ({"whatsapp_text": "b" * 4097}, "whatsapp_text", "limit is 4,096"),
        ({}, "sms_text", "needs an SMS text"),
        ({"sms_text": "hola", "step": 2}, "step", "only drip campaigns"),
        ({"sms_text": "hola", "whatsapp_variables": {"1": "x"}}, "whatsapp_variables", "template"),
    ],
)
def test_bad_content(
    client: TestClient,
    db: Session,
    org: Organization,
    places: list[Community],
    row: dict[str, Any],
    field: str,
    words: str,
) -> None:
    h = headers(db, org)
    cid = new_poll(client, h, places)["id"]
    before = client.get(f"/v1/campaigns/{cid}", headers=h).json()["version"]
    r = client.put(f"/v1/campaigns/{cid}/content", json=[{"language": "es", **row}], headers=h)
    error = _error(r, 422)
    assert error["field"] == field
    assert words in error["message"]
    # Nothing half-written: the old content and version stay.
    assert client.get(f"/v1/campaigns/{cid}", headers=h).json()["version"] == before
    assert len(client.get(f"/v1/campaigns/{cid}/content", headers=h).json()) == 2


def test_sms_text_over_the_limit_once_the_options_are_appended(
    client: TestClient, db: Session, org: Organization, places: list[Community]
) -> None:
    h = headers(db, org)
    cid = new_poll(client, h, places)["id"]
    r = client.put(
        f"/v1/campaigns/{cid}/content", json=[{"language": "es", "sms_text": "a" * 1595}], headers=h
    )
    assert r.status_code == 200  # fits alone…
    error = _error(client.post(f"/v1/campaigns/{cid}/submit", headers=h), 422)
    assert "with the poll options" in error["message"]  # …but not as sent


@pytest.mark.parametrize(
    ("options", "words"),
    [
        ([{"number": 1, "labels": {"es": "Sí"}}], "at least 2 options"),
        ([], "at least 2 options"),
        (
            [{"number": 1, "labels": {"es": "Sí"}}, {"number": 3, "labels": {"es": "No"}}],
            "without gaps",
        ),
        (
            [{"number": 1, "labels": {"ht": "Wi"}}, {"number": 2, "labels": {"es": "No"}}],
            "fallback language",
        ),
        (
            [
                {"number": 1, "labels": {"es": "Sí"}, "aliases": {"es": ["Claro"]}},
                {"number": 2, "labels": {"es": "No"}, "aliases": {"es": ["claro!"]}},
            ],
            "answers both option 1 and option 2",
        ),
    ],
)
def test_bad_poll_options(
    client: TestClient,
    db: Session,
    org: Organization,
    places: list[Community],
    options: list[dict[str, Any]],
    words: str,
) -> None:
    h = headers(db, org)
    cid = new_poll(client, h, places)["id"]
    error = _error(client.put(f"/v1/campaigns/{cid}/options", json=options, headers=h), 422)
    assert words in error["message"]


def test_incomplete_campaigns_cannot_be_submitted(
    client: TestClient, db: Session, org: Organization, places: list[Community]
) -> None:
    h = headers(db, org)
    poll = client.post(
        "/v1/campaigns",
        json={
            "name": "p",
            "topic": "scams_fraud",
            "kind": "poll",
            "schedule": ONCE,
            "community_ids": [places[0].id],
        },
        headers=h,
    ).json()["id"]
    client.put(
        f"/v1/campaigns/{poll}/content", json=[{"language": "es", "sms_text": "¿?"}], headers=h
    )
    assert (
        "at least 2 options"
        in _error(client.post(f"/v1/campaigns/{poll}/submit", headers=h), 422)["message"]
    )

    drip = client.post(
        "/v1/campaigns",
        json={
            "name": "d",
            "topic": "info_hubs",
            "kind": "drip",
            "schedule": {"type": "drip", "local_time": "10:00"},
            "community_ids": [places[0].id],
        },
        headers=h,
    ).json()["id"]
    assert (
        "at least one step"
        in _error(client.post(f"/v1/campaigns/{drip}/submit", headers=h), 422)["message"]
    )

    nowhere = client.post(
        "/v1/campaigns",
        json={"name": "n", "topic": "info_hubs", "kind": "announcement", "schedule": ONCE},
        headers=h,
    ).json()["id"]
    client.put(
        f"/v1/campaigns/{nowhere}/content", json=[{"language": "es", "sms_text": "Hola"}], headers=h
    )
    assert (
        "no community"
        in _error(client.post(f"/v1/campaigns/{nowhere}/submit", headers=h), 422)["message"]
    )

    unscheduled = new_poll(client, h, places, schedule=None)["id"]
    assert (
        _error(client.post(f"/v1/campaigns/{unscheduled}/submit", headers=h), 422)["field"]
        == "schedule"
    )

    in_french = new_poll(client, h, places)["id"]
    client.patch(f"/v1/campaigns/{in_french}", json={"fallback_language": "fr"}, headers=h)
    assert (
        "fallback language (fr)"
        in _error(client.post(f"/v1/campaigns/{in_french}/submit", headers=h), 422)["message"]
    )


def test_launching_an_unapproved_campaign_is_a_conflict(
    client: TestClient, db: Session, org: Organization, places: list[Community]
) -> None:
    h = headers(db, org)
    cid = new_poll(client, h, places)["id"]
    error = _error(client.post(f"/v1/campaigns/{cid}/schedule", headers=h), 409)
    assert (
        error["message"] == f"cannot schedule campaign {cid}: it is draft; schedule needs approved"
    )
    client.post(f"/v1/campaigns/{cid}/submit", headers=h)
    error = _error(client.post(f"/v1/campaigns/{cid}/schedule", headers=h), 409)
    assert "it is submitted" in error["message"]
    assert client.get(f"/v1/campaigns/{cid}/runs", headers=h).json() == []


def test_unknown_time_zone_is_a_clear_422(
    client: TestClient, db: Session, org: Organization, places: list[Community]
) -> None:
    h = headers(db, org)
    cid = new_poll(client, h, places)["id"]
    db.execute(
        update(Community).where(Community.id == places[0].id).values(timezone="America/Atlantis")
    )
    db.expire_all()
    error = _error(client.get(f"/v1/campaigns/{cid}/schedule-preview", headers=h), 422)
    assert "unknown time zone 'America/Atlantis'" in error["message"]
    client.post(f"/v1/campaigns/{cid}/submit", headers=h)
    client.post(f"/v1/campaigns/{cid}/approve", headers=headers(db, org))
    error = _error(client.post(f"/v1/campaigns/{cid}/schedule", headers=h), 422)
    assert "unknown time zone" in error["message"]
    assert client.get(f"/v1/campaigns/{cid}", headers=h).json()["status"] == "approved"


def test_quiet_hours_show_in_the_schedule_preview(
    client: TestClient, db: Session, org: Organization
) -> None:
    h = headers(db, org)
    night = make_place(
        db, org=org, name="Tijuana", timezone="America/Tijuana", quiet=(dt.time(21), dt.time(8))
    )
    cid = client.post(
        "/v1/campaigns",
        json={
            "name": "semanal",
            "topic": "info_hubs",
            "kind": "announcement",
            "schedule": {
                "type": "rrule",
                "rrule": "FREQ=WEEKLY;BYDAY=MO,TH",
                "local_time": "22:00",
                "start": DAY.isoformat(),
            },
            "community_ids": [night.id],
        },
        headers=h,
    ).json()["id"]
    [tijuana] = client.get(
        f"/v1/campaigns/{cid}/schedule-preview", params={"count": 4}, headers=h
    ).json()
    assert len(tijuana["runs"]) == 4
    for run in tijuana["runs"]:
        assert run["deferred"] is True
        assert run["local"][11:16] == "08:00"
        assert dt.date.fromisoformat(run["local"][:10]).strftime("%a") in ("Tue", "Fri")
