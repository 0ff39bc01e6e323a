"""Bad input gets a 4xx naming the problem, in one error body shape, and writes nothing."""

from __future__ import annotations

from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from campaigns.communities import Community
from tests.factories import auth, make_organization, make_token, make_user


def _token(db: Session) -> str:
    org = make_organization(db)
    token = make_token(db, user=make_user(db, org=org))
    db.commit()
    return token


def _assert_error_shape(body: dict[str, object]) -> None:
    assert set(body) == {"error", "request_id"}
    error = body["error"]
    assert isinstance(error, dict) and {"code", "message"} <= set(error)


def test_malformed_json(client: TestClient, db: Session) -> None:
    token = _token(db)
    r = client.post(
        "/v1/communities",
        content=b'{"name": "x",',
        headers={**auth(token), "Content-Type": "application/json"},
    )
    assert r.status_code == 422
    _assert_error_shape(r.json())
    assert r.json()["error"]["message"] == "body: malformed JSON"


def test_invalid_utf8_json(client: TestClient, db: Session) -> None:
    token = _token(db)
    r = client.post(
        "/v1/communities",
        content=b'{"name": "\xff\xfe"}',
        headers={**auth(token), "Content-Type": "application/json"},
    )
    assert 400 <= r.status_code < 500
    _assert_error_shape(r.json())


def test_oversized_json_is_413_before_anything_runs(client: TestClient, db: Session) -> None:
    token = _token(db)
    big = b'{"name": "' + b"x" * 1_100_000 + b'"}'
    r = client.post(
        "/v1/communities", content=big, headers={**auth(token), "Content-Type": "application/json"}
    )
    assert r.status_code == 413
    _assert_error_shape(r.json())
    assert "larger than" in r.json()["error"]["message"]


def test_unknown_time_zone_country_and_language(client: TestClient, db: Session) -> None:
    token = _token(db)
    base = {
        "name": "X",
        "country": "MX",
        "timezone": "America/Mexico_City",
        "default_language": "es",
    }
    for field, value in [
        ("timezone", "Mars/Olympus"),
        ("country", "ZZ"),
        ("default_language", "pt"),
    ]:
        r = client.post("/v1/communities", json={**base, field: value}, headers=auth(token))
        assert r.status_code == 422, r.text
        assert r.json()["error"]["field"] == field
    r = client.post("/v1/communities", json={**base, "quiet_start": "21:00"}, headers=auth(token))
    assert r.status_code == 422 and r.json()["error"]["field"] == "quiet_start"
    assert db.scalar(select(func.count()).select_from(Community)) == 0


def test_unknown_ids_and_routes_and_methods(client: TestClient, db: Session) -> None:
    token = _token(db)
    for method, path, status in [
        ("GET", "/v1/communities/987654", 404),
        ("GET", "/v1/communities/not-a-number", 422),
        ("GET", "/v1/nothing-here", 404),
        ("PUT", "/v1/communities", 405),
    ]:
        r = client.request(method, path, headers=auth(token))
        assert r.status_code == status, (path, r.text)
        _assert_error_shape(r.json())


def test_request_id_is_echoed(client: TestClient) -> None:
    r = client.get("/healthz", headers={"X-Request-ID": "abc-123"})
    assert r.headers["x-request-id"] == "abc-123"
    hostile = client.get("/healthz", headers={"X-Request-ID": "x" * 500})
    assert hostile.headers["x-request-id"] != "x" * 500


def test_readyz_reports_each_dependency(client: TestClient) -> None:
    r = client.get("/readyz")
    assert r.status_code == 200
    checks = r.json()["checks"]
    assert (checks["database"], checks["redis"]) == ("ok", "ok")
    # No assistant runs in this test: reported, but the API stays ready.
    assert checks["rasa"].startswith("error") and checks["actions"].startswith("error")
