"""`faro keys rotate`: numbers and profile names encrypted under key A end up under key B alone,
even when the rotation is killed midway and run again."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography.fernet import Fernet, InvalidToken
from sqlalchemy import insert, select

from campaigns.contacts.models import Contact
from campaigns.crypto import AddressCipher
from campaigns.db import make_engine, make_sessionmaker
from campaigns.keys import rotate_keys
from campaigns.organizations.service import create_organization

ROOT = Path(__file__).resolve().parents[2]
FARO = str(Path(sys.executable).parent / "faro")
KEY_A = Fernet.generate_key().decode()
KEY_B = Fernet.generate_key().decode()
HASH_KEY = "a-hash-key-that-stays-the-same-through-rotation"
CONTACTS = 4000


@pytest.fixture(scope="module")
def people(own_db: str) -> dict[int, tuple[str, str | None]]:
    """Contacts written under key A: id -> (number, profile name or None)."""
    cipher_a = AddressCipher([KEY_A], HASH_KEY)
    engine = make_engine(own_db)
    with make_sessionmaker(engine)() as session, session.begin():
        org = create_organization(session, name="Rotation", country="MX")
        rows = []
        for i in range(CONTACTS):
            phone = f"+52155{i:08d}"
            name = f"Persona {i}" if i % 3 == 0 else None
            rows.append(
                {
                    "organization_id": org.id,
                    "channel": "whatsapp",
                    "address_ciphertext": cipher_a.encrypt(phone),
                    "address_hash": cipher_a.lookup_hash("whatsapp", phone),
                    "profile_name_ciphertext": cipher_a.encrypt(name) if name else None,
                    "country": "MX",
                    "language": "es",
                }
            )
        session.execute(insert(Contact), rows)
    with make_sessionmaker(engine)() as session:
        found = session.execute(
            select(Contact.id, Contact.address_ciphertext, Contact.profile_name_ciphertext)
        ).all()
    engine.dispose()
    return {
        row.id: (
            cipher_a.decrypt(row.address_ciphertext),
            cipher_a.decrypt(row.profile_name_ciphertext) if row.profile_name_ciphertext else None,
        )
        for row in found
    }


def _stored(url: str) -> list[tuple[int, bytes | None, bytes | None, str | None]]:
    engine = make_engine(url)
    with make_sessionmaker(engine)() as session:
        rows = session.execute(
            select(
                Contact.id,
                Contact.address_ciphertext,
                Contact.profile_name_ciphertext,
                Contact.address_hash,
            ).order_by(Contact.id)
        ).all()
    engine.dispose()
    return [(r[0], r[1], r[2], r[3]) for r in rows]


def _under(key: str, token: bytes) -> bool:
    try:
        Fernet(key).decrypt(token)
    except InvalidToken:
        return False
    return True


def _faro(url: str, *args: str) -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FARO_")} | {
        "FARO_ENV": "test",
        "FARO_DATABASE_URL": url,
        "FARO_ENCRYPTION_KEYS": f"{KEY_B},{KEY_A}",
        "FARO_HASH_KEY": HASH_KEY,
        "FARO_LOG_FORMAT": "json",
        "PYTHONUNBUFFERED": "1",
    }
    return subprocess.Popen(
        [FARO, "keys", "rotate", *args],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )


@pytest.mark.slow
def test_rotation_killed_midway_then_rerun_leaves_everything_readable_with_the_new_key_alone(
    own_db: str, people: dict[int, tuple[str, str | None]]
) -> None:
    names = sum(1 for _, name in people.values() if name)

    # 1. Killed in the middle (SIGKILL after a few committed batches).
    proc = _faro(own_db, "--batch-size", "10")
    assert proc.stdout is not None
    seen = 0
    for line in proc.stdout:
        if line.startswith("batch "):
            seen += 1
            if seen == 5:
                os.killpg(proc.pid, signal.SIGKILL)
                break
    proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    rows = _stored(own_db)
    under_b = sum(1 for _, address, _, _ in rows if address and _under(KEY_B, address))
    print(f"killed after {seen} batches: {under_b} of {len(rows)} numbers under the new key")
    assert 0 < under_b < len(rows), "the rotation should have been interrupted midway"
    both = AddressCipher([KEY_B, KEY_A], HASH_KEY)
    for row_id, address, name, _ in rows:  # mid-rotation, everything still reads
        assert address is not None
        assert both.decrypt(address) == people[row_id][0]
        assert (both.decrypt(name) if name else None) == people[row_id][1]

    # 2. A bounded rerun stops early and says so.
    bounded = _faro(own_db, "--batch-size", "10", "--max-batches", "2")
    out, _ = bounded.communicate(timeout=60)
    assert bounded.returncode == 0, out
    assert "stopped after contact" in out

    # 3. The full rerun finishes; the new key alone reads everything.
    rerun = _faro(own_db, "--batch-size", "500")
    out, _ = rerun.communicate(timeout=120)
    assert rerun.returncode == 0, out
    assert "done:" in out
    print(out.strip().splitlines()[-1])
    only_b = AddressCipher([KEY_B], HASH_KEY)
    rows = _stored(own_db)
    assert len(rows) == CONTACTS
    decrypted_names = 0
    for row_id, address, name, address_hash in rows:
        assert address is not None
        phone = only_b.decrypt(address)
        assert phone == people[row_id][0]
        # The keyed hash is untouched: an incoming message still finds the contact.
        assert address_hash == only_b.lookup_hash("whatsapp", phone)
        if name is not None:
            assert only_b.decrypt(name) == people[row_id][1]
            decrypted_names += 1
    assert decrypted_names == names

    # 4. Nothing left to do: a third run re-encrypts nothing.
    engine = make_engine(own_db)
    report = rotate_keys(
        make_sessionmaker(engine), cipher=AddressCipher([KEY_B, KEY_A], HASH_KEY), batch_size=1000
    )
    engine.dispose()
    assert report.finished
    assert report.values_rotated == 0
    assert report.values_current == CONTACTS + names


def test_a_value_changed_during_rotation_is_not_overwritten(own_db: str) -> None:
    """A contact erased (or rewritten) between the read and the write keeps its new value."""
    engine = make_engine(own_db)
    factory = make_sessionmaker(engine)
    cipher_a = AddressCipher([KEY_A], HASH_KEY)
    with factory() as session, session.begin():
        org = create_organization(session, name="Rotation race", country="MX")
        contact = Contact(
            organization_id=org.id,
            channel="whatsapp",
            address_ciphertext=cipher_a.encrypt("+5215599990000"),
            address_hash=cipher_a.lookup_hash("whatsapp", "+5215599990000"),
            country="MX",
            language="es",
        )
        session.add(contact)
        session.flush()
        contact_id = contact.id

    class ErasingCipher(AddressCipher):
        """Erases the contact (as BORRAR would) right after rotation read it."""

        def rotate(self, token: bytes) -> bytes:
            with factory() as other, other.begin():
                row = other.get(Contact, contact_id)
                assert row is not None
                row.address_ciphertext = None
            return super().rotate(token)

    report = rotate_keys(
        factory,
        cipher=ErasingCipher([KEY_B, KEY_A], HASH_KEY),
        start_after=contact_id - 1,
        batch_size=10,
    )
    with factory() as session:
        row = session.get(Contact, contact_id)
        assert row is not None
        assert row.address_ciphertext is None  # the erasure won
    engine.dispose()
    assert report.values_skipped == 1
