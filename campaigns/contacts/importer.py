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

from sqlalchemy import Table, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from campaigns import audit
from campaigns.communities import Community
from campaigns.contacts import import_sql
from campaigns.contacts.models import (
    Channel,
    ConsentState,
    Contact,
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


def _merge_in_batch(batch: list[_Row], report: ImportReport) -> dict[str, _Row]:
    """One row per number: later rows add communities and may set language and consent."""
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
    return merged


def _state_of(row: _Row) -> ConsentState:
    if row.consent is None:
        return ConsentState.unknown
    return ConsentState.opted_in if row.consent else ConsentState.opted_out


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
    """Insert new numbers (consent set in the insert), then merge into the known ones.

    The SQL lives in ``import_sql``: array parameters on PostgreSQL (one statement per step,
    one index probe per number), plain multi-row statements elsewhere.
    """
    sql = import_sql.for_session(session)
    merged = _merge_in_batch(batch, report)

    def language_of(r: _Row) -> str:
        if r.language is not None:
            return r.language
        if r.community_ids:
            return by_id[min(r.community_ids)].default_language
        return default_language_for_country(r.country)

    rows = list(merged.values())
    ids = sql.insert_new(
        session,
        organization_id=organization_id,
        channel=channel,
        now=now,
        rows=[
            import_sql.NewContact(
                ciphertext=r.ciphertext,
                address_hash=r.address_hash,
                country=r.country,
                language=language_of(r),
                consent=_state_of(r),
            )
            for r in rows
        ],
    )
    report.created += len(ids)
    events: list[tuple[int, ConsentState]] = []
    for h, cid in ids.items():
        state = _state_of(merged[h])
        if state != ConsentState.unknown:
            events.append((cid, state))
            if state == ConsentState.opted_in:
                report.opted_in += 1
            else:
                report.opted_out += 1

    rest = [h for h in merged if h not in ids]
    existing = (
        sql.lookup(session, organization_id=organization_id, channel=channel, hashes=rest)
        if rest
        else {}
    )
    for h, (cid, _) in existing.items():
        ids[h] = cid
    report.merged += len(existing)

    languages = [
        (cid, merged[h].language) for h, (cid, _) in existing.items() if merged[h].language
    ]
    if languages:
        sql.update_languages(session, pairs=languages, now=now)  # type: ignore[arg-type]

    # An import opts in only contacts who never opted out: a person's STOP wins over a list.
    changes: dict[ConsentState, list[int]] = {ConsentState.opted_in: [], ConsentState.opted_out: []}
    for h, (cid, current) in existing.items():
        target = _state_of(merged[h])
        if target in (ConsentState.unknown, current):
            continue
        if target == ConsentState.opted_in and current == ConsentState.opted_out:
            report.kept_opted_out += 1
            continue
        changes[target].append(cid)
    for state, changed in changes.items():
        if not changed:
            continue
        sql.update_consent(session, ids=changed, state=state, now=now)
        events.extend((cid, state) for cid in changed)
        if state == ConsentState.opted_in:
            report.opted_in += len(changed)
        else:
            report.opted_out += len(changed)
    if events:
        sql.insert_events(session, organization_id=organization_id, events=events, now=now)
    memberships = [(ids[h], c) for h, r in merged.items() for c in sorted(r.community_ids)]
    if memberships:
        sql.insert_memberships(session, pairs=memberships, now=now)
