"""Key rotation: re-encrypt every encrypted column under the newest ``FARO_ENCRYPTION_KEYS`` key.

Procedure (docs/security.md): put the new key first in ``FARO_ENCRYPTION_KEYS`` and keep the old
one after it, restart every process (new writes now use the new key, old rows still decrypt),
run ``faro keys rotate``, then remove the old key and restart again.

The encrypted columns are ``contact.address_ciphertext`` and ``contact.profile_name_ciphertext``
(``ENCRYPTED_COLUMNS``).  Rows are walked in id order in batches; each batch is one transaction,
so a rotation killed at any moment leaves every row readable (either under the old key or the
new one) and a rerun simply starts again: a row already under the newest key is recognised by
decrypting it with that key alone and is left untouched.  Each update is conditional on the
ciphertext not having changed since it was read, so a contact written or erased concurrently is
never overwritten with stale data.

The keyed hash (``FARO_HASH_KEY``) is not rotated: the hash is what finds a contact when a
message comes in, and recomputing it needs the number in clear; see docs/security.md.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import Table, and_, bindparam, or_, select, update
from sqlalchemy.orm import Session, sessionmaker

from campaigns.contacts.models import Contact
from campaigns.crypto import AddressCipher

ENCRYPTED_COLUMNS: dict[str, tuple[str, ...]] = {
    "contact": ("address_ciphertext", "profile_name_ciphertext"),
}


@dataclass
class RotationReport:
    rows_scanned: int = 0
    values_rotated: int = 0
    values_current: int = 0
    values_skipped: int = 0  # changed by someone else between read and write; already current
    batches: int = 0
    last_id: int = 0
    finished: bool = False


def _tables() -> dict[str, Table]:
    return {"contact": Contact.__table__}  # type: ignore[dict-item]


def rotate_keys(
    factory: sessionmaker[Session],
    *,
    cipher: AddressCipher,
    batch_size: int = 500,
    start_after: int = 0,
    max_batches: int | None = None,
    progress: Callable[[RotationReport], None] | None = None,
) -> RotationReport:
    """Re-encrypt every value not yet under the newest key; commits once per batch.

    ``max_batches`` stops early (the report says ``finished=False``); ``progress`` is called
    after each committed batch.
    """
    if batch_size < 1:
        raise ValueError("batch size must be at least 1")
    report = RotationReport(last_id=start_after)
    for name, table in _tables().items():
        columns = ENCRYPTED_COLUMNS[name]
        last_id = start_after
        while True:
            if max_batches is not None and report.batches >= max_batches:
                return report
            with factory() as session, session.begin():
                rows = session.execute(
                    select(table.c.id, *(table.c[c] for c in columns))
                    .where(table.c.id > last_id, or_(*(table.c[c].is_not(None) for c in columns)))
                    .order_by(table.c.id)
                    .limit(batch_size)
                ).all()
                if not rows:
                    break
                for column in columns:
                    changes = []
                    for row in rows:
                        token = getattr(row, column)
                        if token is None:
                            continue
                        if cipher.is_current(token):
                            report.values_current += 1
                            continue
                        changes.append(
                            {"row_id": row.id, "old": token, "new": cipher.rotate(token)}
                        )
                    if changes:
                        result = session.connection().execute(
                            update(table)
                            .where(
                                and_(
                                    table.c.id == bindparam("row_id"),
                                    table.c[column] == bindparam("old"),
                                )
                            )
                            .values({column: bindparam("new")}),
                            changes,
                        )
                        done = max(result.rowcount, 0)
                        report.values_rotated += done
                        report.values_skipped += len(changes) - done
                last_id = rows[-1].id
                report.rows_scanned += len(rows)
                report.batches += 1
                report.last_id = last_id
            if progress is not None:
                progress(report)
    report.finished = True
    return report
