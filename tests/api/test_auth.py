"""Bearer tokens: shown once, stored hashed, expired and revoked tokens refused by name."""

from __future__ import annotations

import datetime as dt

from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from campaigns.organizations.models import ApiToken, Role
from tests.factories import auth, make_organization, make_token, make_user


def test_missing_malformed_and_unknown_tokens(client: TestClient) -> None:
    cases = [
        ({}, "missing Authorization header"),
        ({"Authorization": "Basic abc"}, "must be 'Bearer <token>'"),
        ({"Authorization": "Bearer nope"}, "malformed token"),
        ({"Authorization": "Bearer faro_" + "x" * 43}, "unknown token"),
    ]
    for headers, message in cases:
        r = client.get("/v1/communities", headers=headers)
        assert r.status_code == 401
        assert r.json()["error"]["code"] == "unauthorized"
        assert message in r.json()["error"]["message"]
        assert r.headers["www-authenticate"] == "Bearer"


def test_expired_token_is_refused(client: TestClient, db: Session) -> None:
    org = make_organization(db)
    user = make_user(db, org=org)
    long_ago = dt.datetime.now(dt.UTC) - dt.timedelta(days=40)
    token = make_token(db, user=user, days=30, now=long_ago)
    db.commit()
    r = client.get("/v1/communities", headers=auth(token))
    assert r.status_code == 401 and r.json()["error"]["message"] == "token expired"


def test_token_is_shown_once_stored_hashed_and_revocable(client: TestClient, db: Session) -> None:
    org = make_organization(db)
    admin_token = make_token(db, user=make_user(db, org=org))
    db.commit()
    created = client.post(
        "/v1/tokens", json={"name": "laptop", "days": 7}, headers=auth(admin_token)
    )
    assert created.status_code == 201
    secret = created.json()["token"]
    row = db.get(ApiToken, created.json()["id"])
    assert row is not None and secret not in (row.token_hash, row.prefix)
    listed = client.get("/v1/tokens", headers=auth(admin_token))
    assert secret not in listed.text and "token" not in listed.json()[0]

    assert client.get("/v1/users/me", headers=auth(secret)).status_code == 200
    revoked = client.delete(f"/v1/tokens/{created.json()['id']}", headers=auth(admin_token))
    assert revoked.status_code == 200 and revoked.json()["revoked_at"] is not None
    r = client.get("/v1/users/me", headers=auth(secret))
    assert r.status_code == 401 and r.json()["error"]["message"] == "token revoked"


def test_deactivated_user_cannot_use_their_token(client: TestClient, db: Session) -> None:
    org = make_organization(db)
    admin_token = make_token(db, user=make_user(db, org=org))
    viewer = make_user(db, org=org, role=Role.viewer)
    viewer_token = make_token(db, user=viewer)
    db.commit()
    r = client.patch(f"/v1/users/{viewer.id}", json={"is_active": False}, headers=auth(admin_token))
    assert r.status_code == 200
    assert client.get("/v1/users/me", headers=auth(viewer_token)).status_code == 401


def test_roles(client: TestClient, db: Session) -> None:
    org = make_organization(db)
    viewer_token = make_token(db, user=make_user(db, org=org, role=Role.viewer))
    manager = make_user(db, org=org, role=Role.manager)
    manager_token = make_token(db, user=manager)
    db.commit()
    community = {
        "name": "Tapachula",
        "country": "MX",
        "timezone": "America/Mexico_City",
        "default_language": "es",
    }
    assert client.get("/v1/communities", headers=auth(viewer_token)).status_code == 200
    assert (
        client.post("/v1/communities", json=community, headers=auth(viewer_token)).status_code
        == 403
    )
    assert (
        client.post("/v1/communities", json=community, headers=auth(manager_token)).status_code
        == 201
    )
    assert client.get("/v1/users", headers=auth(manager_token)).status_code == 403
    assert client.get("/v1/audit-events", headers=auth(manager_token)).status_code == 403
    # A manager may not mint a token for someone else.
    other = client.post(
        "/v1/tokens", json={"user_id": manager.id + 1000}, headers=auth(manager_token)
    )
    assert other.status_code in (403, 404)


def test_only_operators_create_organizations_and_get_no_access_to_them(
    client: TestClient, db: Session
) -> None:
    org = make_organization(db)
    plain_admin = make_token(db, user=make_user(db, org=org))
    operator = make_token(db, user=make_user(db, org=org, is_operator=True))
    db.commit()
    body = {"name": "Municipio nuevo", "country": "GT", "admin_email": "jefa@muni.example"}
    assert client.post("/v1/organizations", json=body, headers=auth(plain_admin)).status_code == 403
    created = client.post("/v1/organizations", json=body, headers=auth(operator))
    assert created.status_code == 201, created.text
    new_org_id = created.json()["organization"]["id"]
    new_admin = created.json()["admin_token"]
    assert client.get(f"/v1/organizations/{new_org_id}", headers=auth(operator)).status_code == 404
    mine = client.get("/v1/organizations", headers=auth(new_admin)).json()
    assert [o["id"] for o in mine] == [new_org_id]
    dup = client.post("/v1/organizations", json=body, headers=auth(operator))
    assert dup.status_code == 409


def test_an_admin_cannot_demote_themselves(client: TestClient, db: Session) -> None:
    org = make_organization(db)
    admin = make_user(db, org=org)
    token = make_token(db, user=admin)
    db.commit()
    r = client.patch(f"/v1/users/{admin.id}", json={"role": "viewer"}, headers=auth(token))
    assert r.status_code == 409
    assert db.scalar(select(ApiToken.id)) is not None
