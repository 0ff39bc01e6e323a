"""Contact import from CSV: streamed, normalized, merged, reported row by row.

The file is read line by line from a spooled upload, so memory stays flat however long it is.
Rows are parsed, normalized to E.164, encrypted and hashed, then written in batches with
set-based SQL: one lookup of existing hashes, one multi-row ``INSERT … RETURNING``, one update
of changed contacts, one ``INSERT … ON CONFLICT DO NOTHING`` of memberships.

Duplicates (the same number twice in the file, or a number already known) merge into one
contact: later rows add communities and may set the language.  An import may opt a contact in
only if they never opted out: a person's own STOP is never overridden by a list.

Everything runs inside the caller's transaction.  In strict mode any rejected row raises
``InvalidInput`` with the report, so the caller's rollback leaves nothing written.
"""

from __future__ import annotations

import csv
import datetime as dt
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import IO, Any

from sqlalchemy import Table, bindparam, insert, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from campaigns import audit
from campaigns.communities import Community
from campaigns.contacts.models import (
    Channel,
    ConsentEvent,
    ConsentSource,
    ConsentState,
    Contact,
    ContactCommunity,
)
from campaigns.crypto import AddressCipher
from campaigns.errors import InvalidInput, TooLarge
from campaigns.languages import LANGUAGES, default_language_for_country
from campaigns.phones import parse_mobile

_CONTACT_TABLE: Table = Contact.__table__  # type: ignore[assignment]
BATCH = 1000
MAX_REPORTED = 1000
MAX_LINE_BYTES = 10_000

PHONE_COLUMNS = ("phone", "phone_number", "number", "msisdn", "telefono", "teléfono", "whatsapp")
KNOWN_COLUMNS = {"channel", "language", "community", "consent", *PHONE_COLUMNS}
_YES = {"yes", "y", "true", "1", "si", "sí", "wi", "oui", "opted_in", "opt-in", "optin"}
_NO = {"no", "n", "false", "0", "non", "opted_out", "opt-out", "optout"}


@dataclass
class RejectedRow:
    row: int  # line number in the file, the header being line 1
    column: str | None
    reason: str


@dataclass
class ImportReport:
    rows: int = 0
    created: int = 0
    merged: int = 0
    rejected: int = 0
    opted_in: int = 0
    opted_out: int = 0
    kept_opted_out: int = 0
    rejections: list[RejectedRow] = field(default_factory=list)
    ignored_columns: list[str] = field(default_factory=list)

    def reject(self, row: int, column: str | None, reason: str) -> None:
        self.rejected += 1
        if len(self.rejections) < MAX_REPORTED:
            self.rejections.append(RejectedRow(row=row, column=column, reason=reason))

    def as_dict(self) -> dict[str, Any]:
        return {
            "rows": self.rows,
            "created": self.created,
            "merged": self.merged,
            "rejected": self.rejected,
            "opted_in": self.opted_in,
            "opted_out": self.opted_out,
            "kept_opted_out": self.kept_opted_out,
            "ignored_columns": self.ignored_columns,
            "rejections": [r.__dict__ for r in self.rejections],
            "rejections_truncated": self.rejected > len(self.rejections),
        }


@dataclass
class _Row:
    line: int
    address_hash: str
    ciphertext: bytes
    country: str
    language: str | None
    community_ids: set[int]
    consent: bool | None


def _decoded_lines(stream: IO[bytes]) -> Iterator[str]:
    for number, raw in enumerate(stream, start=1):
        if len(raw) > MAX_LINE_BYTES:
            raise InvalidInput(f"line {number} is longer than {MAX_LINE_BYTES} bytes", field="file")
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise InvalidInput(
                f"line {number} is not valid UTF-8: save the file as UTF-8 CSV", field="file"
            ) from exc
        if number == 1:
            text = text.removeprefix("\ufeff")
        yield text


def _insert(session: Session) -> Any:
    name = session.get_bind().dialect.name
    return postgresql.insert if name == "postgresql" else sqlite.insert


def import_contacts(
    session: Session,
    *,
    cipher: AddressCipher,
    organization_id: int,
    stream: IO[bytes],
    channel: str = "whatsapp",
    community_id: int | None = None,
    default_country: str | None = None,
    strict: bool = False,
    max_rows: int = 500_000,
    now: dt.datetime | None = None,
) -> ImportReport:
    now = now or dt.datetime.now(dt.UTC)
    try:
        ch = Channel(channel)
    except ValueError as exc:
        raise InvalidInput(f"unknown channel {channel!r}", field="channel") from exc
    communities = {
        c.name.casefold(): c
        for c in session.scalars(
            select(Community).where(Community.organization_id == organization_id)
        )
    }
    by_id = {c.id: c for c in communities.values()}
    if community_id is not None and community_id not in by_id:
        raise InvalidInput(f"unknown community {community_id}", field="community_id")

    reader = csv.reader(_decoded_lines(stream))
    try:
        header = next(reader)
    except StopIteration as exc:
        raise InvalidInput("the file is empty: it needs a header row", field="file") from exc
    except csv.Error as exc:
        raise InvalidInput(f"line 1: {exc}", field="file") from exc
    columns = [h.strip().lower() for h in header]
    phone_col = next((i for i, c in enumerate(columns) if c in PHONE_COLUMNS), None)
    if phone_col is None:
        raise InvalidInput(
            "missing column 'phone' (the header row must name a phone column)", field="file"
        )
    report = ImportReport(ignored_columns=[c for c in columns if c not in KNOWN_COLUMNS])
    index = {c: i for i, c in enumerate(columns)}

    def cell(values: list[str], name: str) -> str:
        i = index.get(name)
        return values[i].strip() if i is not None and i < len(values) else ""

    def parsed_rows() -> Iterator[_Row]:
        line = 1
        while True:
            try:
                values = next(reader)
            except StopIteration:
                return
            except csv.Error as exc:
                raise InvalidInput(f"line {reader.line_num}: {exc}", field="file") from exc
            line = reader.line_num
            if not any(v.strip() for v in values):
                continue
            report.rows += 1
            if report.rows > max_rows:
                raise TooLarge(f"the file has more than {max_rows} rows", field="file")
            if len(values) != len(columns):
                report.reject(line, None, f"expected {len(columns)} fields, found {len(values)}")
                continue
            row_channel = cell(values, "channel").lower() or ch.value
            if row_channel != ch.value:
                report.reject(
                    line,
                    "channel",
                    f"channel {row_channel!r} differs from this import's {ch.value!r}",
                )
                continue
            try:
                phone = parse_mobile(
                    values[phone_col], default_country=default_country, field=columns[phone_col]
                )
            except InvalidInput as exc:
                report.reject(line, columns[phone_col], exc.message)
                continue
            language = cell(values, "language").lower() or None
            if language is not None and language not in LANGUAGES:
                report.reject(
                    line, "language", f"unknown language {language!r}: use es, en, ht or fr"
                )
                continue
            ids: set[int] = set()
            if community_id is not None:
                ids.add(community_id)
            name = cell(values, "community")
            if name:
                found = communities.get(name.casefold())
                if found is None:
                    report.reject(line, "community", f"unknown community {name!r}")
                    continue
                ids.add(found.id)
            consent_text = cell(values, "consent").lower()
            consent: bool | None = None
            if consent_text in _YES:
                consent = True
            elif consent_text in _NO:
                consent = False
            elif consent_text:
                report.reject(line, "consent", f"consent {consent_text!r} is not yes or no")
                continue
            yield _Row(
                line=line,
                address_hash=cipher.lookup_hash(ch.value, phone.e164),
                ciphertext=cipher.encrypt(phone.e164),
                country=phone.country,
                language=language,
                community_ids=ids,
                consent=consent,
            )

    for batch in _batches(parsed_rows(), BATCH):
        _write_batch(
            session,
            batch,
            report,
            organization_id=organization_id,
            channel=ch,
            by_id=by_id,
            now=now,
        )

    if strict and report.rejected:
        raise InvalidInput(
            f"{report.rejected} rows rejected; strict mode imported nothing",
            field="file",
            details=report.as_dict(),
        )
    audit.record(
        session,
        action="contact.import",
        object_type="contact",
        organization_id=organization_id,
        after={k: v for k, v in report.as_dict().items() if k != "rejections"},
    )
    return report


def _batches(rows: Iterable[_Row], size: int) -> Iterator[list[_Row]]:
    batch: list[_Row] = []
    for row in rows:
        batch.append(row)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


def _write_batch(
    session: Session,
    batch: list[_Row],
    report: ImportReport,
    *,
    organization_id: int,
    channel: Channel,
    by_id: dict[int, Community],
    now: dt.datetime,
) -> None:
    # Merge duplicates inside the batch first: one row per number.
    merged: dict[str, _Row] = {}
    for row in batch:
        first = merged.get(row.address_hash)
        if first is None:
            merged[row.address_hash] = row
            continue
        report.merged += 1
        first.community_ids |= row.community_ids
        first.language = row.language or first.language
        first.consent = row.consent if row.consent is not None else first.consent

    existing: dict[str, tuple[int, ConsentState]] = {
        h: (cid, consent)
        for h, cid, consent in session.execute(
            select(Contact.address_hash, Contact.id, Contact.consent).where(
                Contact.organization_id == organization_id,
                Contact.channel == channel,
                Contact.address_hash.in_(list(merged)),
            )
        )
        if h is not None
    }
    new_rows = [r for h, r in merged.items() if h not in existing]
    ids: dict[str, int] = {h: cid for h, (cid, _) in existing.items()}
    if new_rows:
        values = []
        for r in new_rows:
            language = r.language
            if language is None:
                first_community = min(r.community_ids) if r.community_ids else None
                language = (
                    by_id[first_community].default_language
                    if first_community is not None
                    else default_language_for_country(r.country)
                )
            values.append(
                {
                    "organization_id": organization_id,
                    "channel": channel,
                    "address_ciphertext": r.ciphertext,
                    "address_hash": r.address_hash,
                    "country": r.country,
                    "language": language,
                    "consent": ConsentState.unknown,
                    "is_simulated": False,
                    "erased": False,
                    "created_at": now,
                    "updated_at": now,
                }
            )
        returned = session.execute(
            insert(Contact).returning(Contact.address_hash, Contact.id), values
        )
        for h, cid in returned:
            if h is not None:
                ids[h] = cid
        report.created += len(new_rows)
    report.merged += len(existing)

    # Language given for known contacts: one executemany (Core, not ORM bulk-by-primary-key).
    lang_updates = [
        {"b_id": ids[h], "b_language": r.language}
        for h, r in merged.items()
        if h in existing and r.language
    ]
    if lang_updates:
        session.connection().execute(
            update(_CONTACT_TABLE)
            .where(_CONTACT_TABLE.c.id == bindparam("b_id"))
            .values(language=bindparam("b_language"), updated_at=now),
            lang_updates,
        )

    # Consent: an import opts in only contacts who never opted out.
    consent_changes: list[tuple[int, ConsentState]] = []
    for h, r in merged.items():
        if r.consent is None:
            continue
        current = existing[h][1] if h in existing else ConsentState.unknown
        target = ConsentState.opted_in if r.consent else ConsentState.opted_out
        if target == current:
            continue
        if target == ConsentState.opted_in and current == ConsentState.opted_out:
            report.kept_opted_out += 1
            continue
        consent_changes.append((ids[h], target))
    for state in (ConsentState.opted_in, ConsentState.opted_out):
        changed = [cid for cid, s in consent_changes if s == state]
        if not changed:
            continue
        session.execute(
            update(Contact)
            .where(Contact.id.in_(changed))
            .values(consent=state, consent_changed_at=now, updated_at=now)
            .execution_options(synchronize_session=False)
        )
        session.execute(
            insert(ConsentEvent),
            [
                {
                    "organization_id": organization_id,
                    "contact_id": cid,
                    "state": state,
                    "source": ConsentSource.import_,
                    "detail": "",
                    "created_at": now,
                }
                for cid in changed
            ],
        )
        if state == ConsentState.opted_in:
            report.opted_in += len(changed)
        else:
            report.opted_out += len(changed)

    memberships = [
        {"contact_id": ids[h], "community_id": c, "joined_at": now}
        for h, r in merged.items()
        for c in sorted(r.community_ids)
    ]
    if memberships:
        stmt = _insert(session)(ContactCommunity).on_conflict_do_nothing(
            index_elements=["contact_id", "community_id"]
        )
        session.execute(stmt, memberships)
