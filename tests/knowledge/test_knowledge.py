"""The knowledge base: versioned entries, the answer the assistant gives, hotlines, hubs, seeds."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from campaigns.audit import AuditEvent
from campaigns.db import utcnow
from campaigns.errors import InvalidInput, NotFound
from campaigns.knowledge.entries import find_answer, stale_entries, update_entry
from campaigns.knowledge.hotlines import hotlines_for, update_hotline
from campaigns.knowledge.hubs import create_hub, hubs_for
from campaigns.knowledge.models import Hotline, InfoHub, KnowledgeEntry, KnowledgeRevision
from campaigns.knowledge.seed import seed_info_hubs, seed_knowledge
from campaigns.organizations.models import Organization, Role
from tests.factories import auth, make_community, make_organization, make_token, make_user
from tests.knowledge.factories import NAMES, make_entry, make_hotline, make_hub

FIXTURES = Path(__file__).resolve().parent.parent / "data" / "knowledge"
DEMO_HUBS = Path(__file__).resolve().parents[2] / "data" / "demo" / "info_hubs.json"
DEMO_ORGS = Path(__file__).resolve().parents[2] / "data" / "demo" / "organizations.json"
TODAY = utcnow().date()


def _headers(db: Session, org: Organization, role: Role = Role.manager) -> dict[str, str]:
    return auth(make_token(db, user=make_user(db, org=org, role=role)))


def _entry_json(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "topic": "asylum_protection",
        "language": "es",
        "country": "MX",
        "body": "Pide refugio ante la COMAR dentro de 30 días hábiles.",
        "source_url": "https://www.gob.mx/comar",
        "reviewed_on": (TODAY - dt.timedelta(days=10)).isoformat(),
    }
    body.update(overrides)
    return body


def _hotline_json(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "country": "MX",
        "number": "800 553 3000",
        "names": NAMES,
        "topics": ["human_trafficking"],
        "source_url": "https://example.org/line",
        "reviewed_on": TODAY.isoformat(),
    }
    body.update(overrides)
    return body


# --- entries: versions, history, answers ------------------------------------------------------


def test_each_edit_is_a_new_version_with_its_history(client: TestClient, db: Session) -> None:
    org = make_organization(db)
    manager = make_user(db, org=org, role=Role.manager)
    headers = auth(make_token(db, user=manager))
    db.commit()

    created = client.post("/v1/knowledge", json=_entry_json(), headers=headers)
    assert created.status_code == 201, created.text
    entry = created.json()
    assert (entry["version"], entry["stale"], entry["is_active"]) == (1, False, True)
    assert entry["review_due"] == (TODAY + dt.timedelta(days=170)).isoformat()
    eid = entry["id"]

    edited = client.patch(f"/v1/knowledge/{eid}", json={"body": "Texto nuevo."}, headers=headers)
    assert (edited.status_code, edited.json()["version"]) == (200, 2)
    assert edited.json()["updated_by_user_id"] == manager.id
    reviewed = client.patch(
        f"/v1/knowledge/{eid}", json={"reviewed_on": TODAY.isoformat()}, headers=headers
    )
    assert reviewed.json()["version"] == 3
    assert reviewed.json()["review_due"] == (TODAY + dt.timedelta(days=180)).isoformat()
    same = client.patch(f"/v1/knowledge/{eid}", json={"body": "Texto nuevo."}, headers=headers)
    assert same.json()["version"] == 3  # nothing changed, no new version

    deleted = client.delete(f"/v1/knowledge/{eid}", headers=headers)
    assert deleted.status_code == 200
    assert (deleted.json()["version"], deleted.json()["is_active"]) == (4, False)
    assert client.get(f"/v1/knowledge/{eid}", headers=headers).json()["is_active"] is False

    history = client.get(f"/v1/knowledge/{eid}/history", headers=headers).json()
    assert [h["version"] for h in history] == [1, 2, 3, 4]
    assert history[0]["body"].startswith("Pide refugio")
    assert history[1]["body"] == "Texto nuevo."
    assert [h["is_active"] for h in history] == [True, True, True, False]
    assert {h["edited_by_user_id"] for h in history} == {manager.id}

    actions = set(
        db.scalars(
            select(AuditEvent.action).where(
                AuditEvent.object_type == "knowledge_entry", AuditEvent.object_id == str(eid)
            )
        )
    )
    assert {"knowledge_entry.create", "knowledge_entry.update"} <= actions


def test_an_edit_is_answered_at_once(client: TestClient, db: Session) -> None:
    org = make_organization(db)
    headers = _headers(db, org)
    db.commit()
    eid = client.post("/v1/knowledge", json=_entry_json(), headers=headers).json()["id"]

    def answer() -> KnowledgeEntry | None:
        return find_answer(
            db, organization_id=org.id, topic="asylum_protection", language="es", country="MX"
        )

    first = answer()
    assert first is not None
    assert first.body.startswith("Pide refugio")
    client.patch(f"/v1/knowledge/{eid}", json={"body": "Nuevo plazo: 30 días."}, headers=headers)
    again = answer()
    assert again is not None
    assert (again.body, again.version) == ("Nuevo plazo: 30 días.", 2)


def test_the_country_answer_first_then_the_regional_default(db: Session) -> None:
    org = make_organization(db)
    regional = make_entry(db, org=org, country=None, body="Regional")
    mexico = make_entry(db, org=org, country="MX", body="México")

    def answer(country: str | None, language: str = "es") -> KnowledgeEntry | None:
        return find_answer(
            db,
            organization_id=org.id,
            topic="asylum_protection",
            language=language,
            country=country,
        )

    assert answer("MX") is mexico
    assert answer("mx") is mexico
    assert answer("GT") is regional
    assert answer(None) is regional
    assert answer("MX", language="en") is None
    assert (
        find_answer(db, organization_id=org.id, topic="scams_fraud", language="es", country="MX")
        is None
    )
    # Another organization's answers are not ours.
    other = make_organization(db)
    assert (
        find_answer(
            db, organization_id=other.id, topic="asylum_protection", language="es", country="MX"
        )
        is None
    )

    update_entry(db, entry_id=mexico.id, is_active=False)
    assert answer("MX") is regional
    update_entry(db, entry_id=regional.id, is_active=False)
    assert answer("MX") is None
    with pytest.raises(InvalidInput):
        answer("MX", language="de")


def test_inactive_entries_are_never_answers(db: Session) -> None:
    org = make_organization(db)
    make_entry(db, org=org, country="GT", is_active=False)
    assert (
        find_answer(
            db, organization_id=org.id, topic="asylum_protection", language="es", country="GT"
        )
        is None
    )


def test_stale_flag_and_filter(client: TestClient, db: Session) -> None:
    org = make_organization(db)
    headers = _headers(db, org, Role.viewer)
    old = make_entry(
        db,
        org=org,
        country="MX",
        reviewed_on=TODAY - dt.timedelta(days=200),
        review_due=TODAY - dt.timedelta(days=1),
    )
    fresh = make_entry(db, org=org, country="GT", reviewed_on=TODAY)
    retired = make_entry(
        db,
        org=org,
        country="HN",
        reviewed_on=TODAY - dt.timedelta(days=400),
        is_active=False,
    )
    db.commit()

    items = client.get("/v1/knowledge", headers=headers).json()["items"]
    assert {e["id"]: e["stale"] for e in items} == {old.id: True, fresh.id: False, retired.id: True}
    stale = client.get("/v1/knowledge", params={"stale": "true"}, headers=headers).json()
    assert {e["id"] for e in stale["items"]} == {old.id, retired.id}
    current = client.get("/v1/knowledge", params={"stale": "false"}, headers=headers).json()
    assert [e["id"] for e in current["items"]] == [fresh.id]
    # Only active entries need a review.
    assert [e.id for e in stale_entries(db, today=TODAY, organization_id=org.id)] == [old.id]


def test_list_filters_and_pages(client: TestClient, db: Session) -> None:
    org = make_organization(db)
    headers = _headers(db, org, Role.viewer)
    ids = [
        make_entry(db, org=org, country=c, language=lang).id
        for c, lang in [("MX", "es"), ("MX", "en"), ("GT", "es"), (None, "es")]
    ]
    make_entry(db, org=org, topic="scams_fraud")
    db.commit()

    def listed(**params: Any) -> list[int]:
        r = client.get("/v1/knowledge", params=params, headers=headers)
        assert r.status_code == 200, r.text
        return [e["id"] for e in r.json()["items"]]

    assert listed(topic="asylum_protection") == ids
    assert listed(topic="asylum_protection", language="es") == [ids[0], ids[2], ids[3]]
    assert listed(country="mx") == ids[:2]
    page = client.get("/v1/knowledge", params={"limit": 3}, headers=headers).json()
    assert [e["id"] for e in page["items"]] == ids[:3]
    rest = client.get(
        "/v1/knowledge", params={"limit": 3, "cursor": page["next_cursor"]}, headers=headers
    ).json()
    assert len(rest["items"]) == 2
    assert rest["next_cursor"] is None
    bad = client.get("/v1/knowledge", params={"topic": "visas"}, headers=headers)
    assert (bad.status_code, bad.json()["error"]["field"]) == (422, "topic")


# --- roles and bad input ----------------------------------------------------------------------


def test_viewers_read_and_managers_write(client: TestClient, db: Session) -> None:
    org = make_organization(db)
    viewer = _headers(db, org, Role.viewer)
    entry = make_entry(db, org=org)
    hotline = make_hotline(db, org=org)
    hub = make_hub(db, community=make_community(db, org=org))
    db.commit()

    for path in (
        "/v1/knowledge",
        f"/v1/knowledge/{entry.id}",
        f"/v1/knowledge/{entry.id}/history",
        "/v1/hotlines",
        f"/v1/hotlines/{hotline.id}",
        "/v1/info-hubs",
        f"/v1/info-hubs/{hub.id}",
    ):
        assert client.get(path, headers=viewer).status_code == 200, path
    writes: list[tuple[str, str, dict[str, Any] | None]] = [
        ("POST", "/v1/knowledge", _entry_json()),
        ("PATCH", f"/v1/knowledge/{entry.id}", {"body": "x"}),
        ("DELETE", f"/v1/knowledge/{entry.id}", None),
        ("POST", "/v1/hotlines", _hotline_json()),
        ("PATCH", f"/v1/hotlines/{hotline.id}", {"number": "911"}),
        ("DELETE", f"/v1/hotlines/{hotline.id}", None),
        ("POST", "/v1/info-hubs", {"community_id": hub.community_id, "name": "N", "address": "A"}),
        ("PATCH", f"/v1/info-hubs/{hub.id}", {"name": "x"}),
        ("DELETE", f"/v1/info-hubs/{hub.id}", None),
    ]
    for method, path, body in writes:
        r = client.request(method, path, json=body, headers=viewer)
        assert r.status_code == 403, f"{method} {path}: {r.status_code}"
    db.expire_all()
    assert db.get(KnowledgeEntry, entry.id) is not None
    assert db.scalar(select(KnowledgeEntry.version).where(KnowledgeEntry.id == entry.id)) == 1


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"topic": "visas"}, "topic"),
        ({"language": "de"}, "language"),
        ({"country": "XX"}, "country"),
        ({"country": "MEX"}, "country"),
        ({"source_url": "ftp://www.gob.mx/comar"}, "source_url"),
        ({"source_url": "javascript:alert(1)"}, "source_url"),
        ({"source_url": "https://" + "a" * 500}, "source_url"),
        ({"reviewed_on": "2026-13-40"}, "reviewed_on"),
        ({"review_due": "2020-01-01"}, "review_due"),
        ({"body": "x" * 1001}, "body"),
        ({"body": "   "}, "body"),
        ({"body": "Hola <script>alert(1)</script>"}, "body"),
        ({"body": "Hola\x00"}, "body"),
        ({"surprise": 1}, "surprise"),
    ],
)
def test_bad_entries_are_refused_naming_the_field(
    client: TestClient, db: Session, overrides: dict[str, Any], field: str
) -> None:
    org = make_organization(db)
    headers = _headers(db, org)
    db.commit()
    r = client.post("/v1/knowledge", json=_entry_json(**overrides), headers=headers)
    assert r.status_code == 422, r.text
    assert r.json()["error"]["field"] == field
    assert db.scalar(select(func.count()).select_from(KnowledgeEntry)) == 0


def test_duplicates_conflict_and_ids_of_nothing_are_404(client: TestClient, db: Session) -> None:
    org = make_organization(db)
    headers = _headers(db, org)
    db.commit()
    assert client.post("/v1/knowledge", json=_entry_json(), headers=headers).status_code == 201
    dup = client.post("/v1/knowledge", json=_entry_json(body="otra"), headers=headers)
    assert dup.status_code == 409
    regional = _entry_json(country=None)
    assert client.post("/v1/knowledge", json=regional, headers=headers).status_code == 201
    assert client.post("/v1/knowledge", json=regional, headers=headers).status_code == 409
    assert client.post("/v1/hotlines", json=_hotline_json(), headers=headers).status_code == 201
    assert client.post("/v1/hotlines", json=_hotline_json(), headers=headers).status_code == 409
    for path in ("/v1/knowledge/999999", "/v1/hotlines/999999", "/v1/info-hubs/999999"):
        assert client.get(path, headers=headers).status_code == 404


def test_patch_refuses_null_and_unknown_fields(client: TestClient, db: Session) -> None:
    org = make_organization(db)
    headers = _headers(db, org)
    entry = make_entry(db, org=org)
    db.commit()
    r = client.patch(f"/v1/knowledge/{entry.id}", json={"body": None}, headers=headers)
    assert (r.status_code, r.json()["error"]["field"]) == (422, "body")
    r = client.patch(f"/v1/knowledge/{entry.id}", json={"country": "GT"}, headers=headers)
    assert (r.status_code, r.json()["error"]["field"]) == (422, "country")


# --- hotlines ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"names": {k: v for k, v in NAMES.items() if k != "ht"}}, "names"),
        ({"names": {**NAMES, "de": "Testlinie"}}, "names.de"),
        ({"topics": ["asylum_protection"]}, "topics"),
        ({"topics": []}, "topics"),
        ({"number": "call us"}, "number"),
        ({"number": "1" * 41}, "number"),
        ({"country": "ZZ"}, "country"),
        ({"source_url": "ftp://example.org"}, "source_url"),
    ],
)
def test_bad_hotlines_are_refused_naming_the_field(
    client: TestClient, db: Session, overrides: dict[str, Any], field: str
) -> None:
    org = make_organization(db)
    headers = _headers(db, org)
    db.commit()
    r = client.post("/v1/hotlines", json=_hotline_json(**overrides), headers=headers)
    assert r.status_code == 422, r.text
    assert r.json()["error"]["field"].startswith(field.split(".")[0])


def test_hotlines_for_a_country_and_topic(client: TestClient, db: Session) -> None:
    org = make_organization(db)
    headers = _headers(db, org)
    db.commit()
    created = client.post(
        "/v1/hotlines",
        json=_hotline_json(number="*4636", topics=["human_trafficking", "violence_gbv"]),
        headers=headers,
    )
    assert created.status_code == 201, created.text
    assert created.json()["number"] == "*4636"  # kept as written
    other = make_hotline(db, org=org, topics=["children_families"])
    make_hotline(db, org=org, country="GT")
    make_hotline(db, org=org, is_active=False)

    def numbers(country: str | None, topic: str) -> list[str]:
        found = hotlines_for(db, organization_id=org.id, country=country, topic=topic)
        return [h.number for h in found]

    assert numbers("MX", "violence_gbv") == ["*4636"]
    assert numbers("mx", "human_trafficking") == ["*4636"]
    assert numbers("MX", "children_families") == [other.number]
    assert numbers("MX", "asylum_protection") == []
    assert numbers(None, "violence_gbv") == []
    client.delete(f"/v1/hotlines/{created.json()['id']}", headers=headers)
    assert numbers("MX", "violence_gbv") == []
    listed = client.get("/v1/hotlines", params={"topic": "children_families"}, headers=headers)
    assert [h["id"] for h in listed.json()] == [other.id]
    update_hotline(db, hotline_id=other.id, reviewed_on=TODAY - dt.timedelta(days=365))
    assert client.get(f"/v1/hotlines/{other.id}", headers=headers).json()["stale"] is True


# --- information hubs -------------------------------------------------------------------------


def test_hubs_of_a_community(client: TestClient, db: Session) -> None:
    org = make_organization(db)
    headers = _headers(db, org)
    community = make_community(db, org=org)
    elsewhere = make_community(db, org=org)
    db.commit()
    r = client.post(
        "/v1/info-hubs",
        json={
            "community_id": community.id,
            "name": "Oficina de atención",
            "address": "Av. Central 10",
            "opening_hours": "Lunes a viernes 9-15",
            "services": ["Orientación", "Asesoría legal"],
        },
        headers=headers,
    )
    assert r.status_code == 201, r.text
    hub = r.json()
    assert hub["is_example"] is False
    dup = client.post(
        "/v1/info-hubs",
        json={"community_id": community.id, "name": "Oficina de atención", "address": "x"},
        headers=headers,
    )
    assert dup.status_code == 409
    make_hub(db, community=elsewhere)
    retired = make_hub(db, community=community, is_active=False)

    found = hubs_for(db, organization_id=org.id, community_id=community.id)
    assert [h.id for h in found] == [hub["id"]]
    listed = client.get("/v1/info-hubs", params={"community_id": community.id}, headers=headers)
    assert {h["id"] for h in listed.json()} == {hub["id"], retired.id}
    moved = client.patch(
        f"/v1/info-hubs/{hub['id']}", json={"community_id": elsewhere.id}, headers=headers
    )
    assert moved.json()["community_id"] == elsewhere.id
    assert hubs_for(db, organization_id=org.id, community_id=community.id) == []
    gone = client.delete(f"/v1/info-hubs/{hub['id']}", headers=headers)
    assert (gone.status_code, gone.json()["is_active"]) == (200, False)


def test_a_hub_in_another_organizations_community_is_refused(
    client: TestClient, db: Session
) -> None:
    org = make_organization(db)
    headers = _headers(db, org)
    mine = make_community(db, org=org)
    theirs = make_community(db, org=make_organization(db))
    hub = make_hub(db, community=mine)
    db.commit()

    r = client.post(
        "/v1/info-hubs",
        json={"community_id": theirs.id, "name": "Intruso", "address": "x"},
        headers=headers,
    )
    assert (r.status_code, r.json()["error"]["field"]) == (404, "community_id")
    r = client.patch(f"/v1/info-hubs/{hub.id}", json={"community_id": theirs.id}, headers=headers)
    assert r.status_code == 404
    # Also on an unscoped session (seeds, CLI).
    with pytest.raises(NotFound):
        create_hub(db, organization_id=org.id, community_id=theirs.id, name="Intruso", address="x")
    db.expire_all()
    assert db.scalar(select(func.count()).select_from(InfoHub)) == 1


# --- seeds ------------------------------------------------------------------------------------


def _counts(db: Session, org: Organization) -> tuple[int, int, int]:
    return (
        db.scalar(select(func.count()).where(KnowledgeEntry.organization_id == org.id)) or 0,
        db.scalar(select(func.count()).where(KnowledgeRevision.organization_id == org.id)) or 0,
        db.scalar(select(func.count()).where(Hotline.organization_id == org.id)) or 0,
    )


def test_the_seed_is_idempotent(db: Session) -> None:
    org = make_organization(db)
    first = seed_knowledge(db, organization_id=org.id, data_dir=FIXTURES)
    assert (first.entries, first.hotlines) == (10, 2)
    counts = _counts(db, org)
    assert counts == (10, 10, 2)
    second = seed_knowledge(db, organization_id=org.id, data_dir=FIXTURES)
    assert (second.entries, second.hotlines) == (0, 0)
    assert _counts(db, org) == counts

    mx = find_answer(
        db, organization_id=org.id, topic="asylum_protection", language="en", country="MX"
    )
    assert mx is not None
    assert mx.body == "Test: answer about asylum in Mexico."
    assert mx.review_due == mx.reviewed_on + dt.timedelta(days=180)
    ht = find_answer(
        db, organization_id=org.id, topic="asylum_protection", language="ht", country="MX"
    )
    assert ht is not None
    assert ht.country is None  # no Creole text for Mexico: the regional default
    assert [
        h.number
        for h in hotlines_for(db, organization_id=org.id, country="GT", topic="children_families")
    ] == ["1500"]


def test_the_seed_keeps_a_managers_edit(db: Session) -> None:
    org = make_organization(db)
    seed_knowledge(db, organization_id=org.id, data_dir=FIXTURES)
    entry = find_answer(
        db, organization_id=org.id, topic="human_trafficking", language="es", country=None
    )
    assert entry is not None
    assert entry.body == "Prueba: respuesta regional sobre trata.\nSegunda línea."
    update_entry(db, entry_id=entry.id, body="Editado por una gestora.")
    seed_knowledge(db, organization_id=org.id, data_dir=FIXTURES)
    db.refresh(entry)
    assert (entry.body, entry.version) == ("Editado por una gestora.", 2)


def test_the_seed_reads_a_hotlines_key_and_names_bad_content(db: Session, tmp_path: Path) -> None:
    org = make_organization(db)
    (tmp_path / "hotlines.yml").write_text(
        "hotlines:\n"
        "  - {country: HN, number: '114', topics: [violence_gbv], reviewed_on: 2026-11-01,\n"
        "     source_url: 'https://example.org/hn', names: {es: a, en: b, ht: c, fr: d}}\n",
        encoding="utf-8",
    )
    assert seed_knowledge(db, organization_id=org.id, data_dir=tmp_path).hotlines == 1

    (tmp_path / "scams_fraud.yml").write_text(
        "topic: scams_fraud\nentries:\n"
        "  - {country: null, source_url: 'ftp://insecure.example', reviewed_on: 2026-11-01,\n"
        "     texts: {es: hola}}\n",
        encoding="utf-8",
    )
    with pytest.raises(InvalidInput) as err:
        seed_knowledge(db, organization_id=org.id, data_dir=tmp_path)
    assert err.value.field == "source_url"
    assert "scams_fraud.yml: entry 1" in err.value.message


def test_demo_hubs_are_clearly_fictional() -> None:
    hubs = json.loads(DEMO_HUBS.read_text(encoding="utf-8"))
    orgs = {
        o["name"]: {c["name"] for c in o["communities"]}
        for o in json.loads(DEMO_ORGS.read_text(encoding="utf-8"))
    }
    assert hubs
    for hub in hubs:
        assert hub["community"] in orgs[hub["organization"]]
        assert hub["name"].startswith("Ejemplo · ")
        assert hub["address"].startswith("Dirección de ejemplo")
        assert hub["is_example"] is True
        assert not any(ch.isdigit() for ch in hub["address"])


def test_demo_hubs_seed_once(db: Session) -> None:
    hubs = json.loads(DEMO_HUBS.read_text(encoding="utf-8"))
    org = make_organization(db, name=hubs[0]["organization"])
    for name in {h["community"] for h in hubs if h["organization"] == org.name}:
        make_community(db, org=org, name=name)
    created = seed_info_hubs(db, organization_id=org.id, path=DEMO_HUBS)
    assert created == sum(h["organization"] == org.name for h in hubs)
    assert seed_info_hubs(db, organization_id=org.id, path=DEMO_HUBS) == 0
    rows = db.scalars(select(InfoHub).where(InfoHub.organization_id == org.id)).all()
    assert rows
    assert all(h.is_example for h in rows)
