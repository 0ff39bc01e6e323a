"""Contact import from CSV: per-row report, merge, strict mode, limits, encodings."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from campaigns.contacts.models import ConsentState, Contact, ContactCommunity
from campaigns.crypto import AddressCipher
from campaigns.organizations.models import Organization
from campaigns.settings import Settings
from tests.factories import (
    auth,
    make_community,
    make_contact,
    make_organization,
    make_token,
    make_user,
    random_mobile,
)


def _setup(db: Session) -> tuple[str, Organization, int]:
    org = make_organization(db)
    token = make_token(db, user=make_user(db, org=org))
    community = make_community(db, org=org, name="Tapachula")
    db.commit()
    return token, org, community.id


def _post(client: TestClient, token: str, csv_text: str | bytes, **params: Any) -> Any:
    return client.post(
        "/v1/contacts/import",
        params=params,
        content=csv_text.encode() if isinstance(csv_text, str) else csv_text,
        headers={**auth(token), "Content-Type": "text/csv"},
    )


def _count(db: Session) -> int:
    return db.scalar(select(func.count()).select_from(Contact)) or 0


def test_valid_rows_imported_rejected_rows_reported(
    client: TestClient, db: Session, cipher: AddressCipher
) -> None:
    token, _, community_id = _setup(db)
    a, b = random_mobile("GT"), random_mobile("HT")
    csv_text = (
        "Phone,Language,Community,Consent,Notes\n"
        f"{a},es,Tapachula,yes,first\n"
        f"{b},,Tapachula,si,second\n"
        "not-a-number,es,,yes,\n"
        f"{random_mobile()},pt,,,\n"
        f"{random_mobile()},,Atlantis,,\n"
        f"{random_mobile()},es,,maybe,\n"
        f"{random_mobile()},es\n"
    )
    r = _post(client, token, csv_text)
    assert r.status_code == 200, r.text
    report = r.json()
    assert (report["rows"], report["created"], report["rejected"]) == (7, 2, 5)
    assert report["ignored_columns"] == ["notes"]
    reasons = {(x["row"], x["column"]) for x in report["rejections"]}
    assert reasons == {(4, "phone"), (5, "language"), (6, "community"), (7, "consent"), (8, None)}
    assert _count(db) == 2
    creole = db.scalar(
        select(Contact).where(Contact.address_hash == cipher.lookup_hash("whatsapp", b))
    )
    # Language not given: the community's default, not the country's.
    assert creole is not None and creole.language == "es"
    assert creole.consent == ConsentState.opted_in
    member = db.scalar(select(ContactCommunity).where(ContactCommunity.contact_id == creole.id))
    assert member is not None and member.community_id == community_id


def test_strict_mode_imports_nothing_when_a_row_is_bad(client: TestClient, db: Session) -> None:
    token, _, _ = _setup(db)
    good = "\n".join(random_mobile() for _ in range(2500))
    r = _post(client, token, f"phone\n{good}\n12\n", strict="true")
    assert r.status_code == 422
    assert r.json()["error"]["details"]["rejections"][0]["row"] == 2502
    assert _count(db) == 0


def test_duplicates_in_file_and_database_are_merged(
    client: TestClient, db: Session, cipher: AddressCipher
) -> None:
    token, org, community_id = _setup(db)
    known = random_mobile()
    make_contact(db, org=org, cipher=cipher, phone=known)
    db.commit()
    fresh = random_mobile()
    # The same number written three ways, and a known number.
    local = fresh.removeprefix("+52")
    csv_text = f"phone,language\n{fresh},es\n+52 {local},fr\n{known},en\n{fresh},\n"
    r = _post(client, token, csv_text, default_country="MX", community_id=community_id)
    report = r.json()
    assert (report["created"], report["merged"], report["rejected"]) == (1, 3, 0), report
    assert _count(db) == 2
    row = db.scalar(
        select(Contact).where(Contact.address_hash == cipher.lookup_hash("whatsapp", fresh))
    )
    assert row is not None and row.language == "fr"


def test_an_import_never_overrides_a_persons_stop(
    client: TestClient, db: Session, cipher: AddressCipher
) -> None:
    token, org, _ = _setup(db)
    phone = random_mobile()
    make_contact(db, org=org, cipher=cipher, phone=phone, consent=False)
    db.commit()
    report = _post(client, token, f"phone,consent\n{phone},yes\n").json()
    assert report["kept_opted_out"] == 1 and report["opted_in"] == 0
    row = db.scalar(select(Contact))
    assert row is not None and row.consent == ConsentState.opted_out


def test_wrong_encoding_missing_column_and_empty_file(client: TestClient, db: Session) -> None:
    token, _, _ = _setup(db)
    latin1 = f"phone,community\n{random_mobile()},Tapachula\n{random_mobile()},Jalapa \xf1\n"
    r = _post(client, token, latin1.encode("latin-1"))
    assert r.status_code == 422 and "line 3 is not valid UTF-8" in r.json()["error"]["message"]
    r = _post(client, token, f"telefono_movil\n{random_mobile()}\n")
    assert r.status_code == 422 and "missing column 'phone'" in r.json()["error"]["message"]
    r = _post(client, token, "")
    assert r.status_code == 422 and "empty" in r.json()["error"]["message"]
    r = client.post(
        "/v1/contacts/import",
        content=b"{}",
        headers={**auth(token), "Content-Type": "application/json"},
    )
    assert r.status_code == 422 and "text/csv" in r.json()["error"]["message"]
    assert _count(db) == 0


def test_byte_order_mark_and_semicolon_free_excel_export(client: TestClient, db: Session) -> None:
    token, _, _ = _setup(db)
    r = _post(client, token, ("\ufeffphone\r\n" + random_mobile() + "\r\n").encode())
    assert r.status_code == 200 and r.json()["created"] == 1


def test_oversized_upload_is_413_and_writes_nothing(
    client: TestClient, db: Session, settings: Settings
) -> None:
    token, _, _ = _setup(db)
    limit = settings.max_import_bytes
    line = (random_mobile() + "\n").encode()
    body = b"phone\n" + line * (limit // len(line) + 10)
    r = _post(client, token, body)
    assert r.status_code == 413
    assert _count(db) == 0


def test_other_organizations_community_cannot_be_targeted(client: TestClient, db: Session) -> None:
    token, _, _ = _setup(db)
    other = make_community(db, org=make_organization(db))
    db.commit()
    r = _post(client, token, f"phone\n{random_mobile()}\n", community_id=other.id)
    assert r.status_code == 422 and r.json()["error"]["field"] == "community_id"
