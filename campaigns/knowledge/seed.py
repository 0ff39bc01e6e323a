"""Load the knowledge base that ships (``data/knowledge/``) and the demo's information hubs.

Idempotent: what exists already (by entry identity, by hotline country and number, by hub
community and name) is left alone, so a manager's edits survive a second run.

``data/knowledge/<topic>.yml``::

    topic: asylum_protection
    entries:
      - country: null          # or "MX"; null is the regional default
        source_url: https://...
        reviewed_on: 2026-11-28
        review_due: 2027-05-28 # optional: 180 days after reviewed_on
        texts: {es: "...", en: "...", ht: "...", fr: "..."}

``data/knowledge/hotlines.yml``, grouped by country (the shipped file)::

    countries:
      - country: MX
        hotlines:
          - number: "800 5533 000"   # as the official source writes it
            name: {es: "...", en: "...", ht: "...", fr: "..."}
            topics: [human_trafficking]
            source_url: https://...
            reviewed_on: 2026-11-28
            review_due: 2027-05-28

or a flat list (or a ``hotlines:`` key holding one) of the same items each with its own
``country``; ``names`` is accepted for ``name``.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from sqlalchemy import select
from sqlalchemy.orm import Session

from campaigns.communities import Community
from campaigns.errors import InvalidInput
from campaigns.knowledge.entries import create_entry, find_entry
from campaigns.knowledge.hotlines import create_hotline, find_hotline, validate_number
from campaigns.knowledge.hubs import create_hub, find_hub
from campaigns.logging import get_logger
from campaigns.organizations.models import Organization
from campaigns.phones import normalize_country
from campaigns.topics import validate_topic

log = get_logger(__name__)

ROOT = Path(__file__).resolve().parent.parent.parent
KNOWLEDGE_DIR = ROOT / "data" / "knowledge"
DEMO_HUBS = ROOT / "data" / "demo" / "info_hubs.json"
HOTLINES_FILE = "hotlines.yml"


@dataclass
class KnowledgeSeedResult:
    """How many rows this run created (0 and 0 on a second run)."""

    entries: int = 0
    hotlines: int = 0


@contextmanager
def _located(where: str) -> Iterator[None]:
    """Name the file and item in a content error, keeping the field."""
    try:
        yield
    except InvalidInput as exc:
        raise InvalidInput(f"{where}: {exc.message}", field=exc.field) from exc


def _date(value: Any, *, field: str) -> dt.date:
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    if isinstance(value, str):
        try:
            return dt.date.fromisoformat(value.strip())
        except ValueError:
            pass
    raise InvalidInput(f"{field} must be a date (YYYY-MM-DD)", field=field)


def _optional_date(value: Any, *, field: str) -> dt.date | None:
    return None if value is None else _date(value, field=field)


def _mapping(value: Any, *, field: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise InvalidInput(f"{field} must be a mapping", field=field)
    return value


def _list(value: Any, *, field: str) -> list[Any]:
    if not isinstance(value, list):
        raise InvalidInput(f"{field} must be a list", field=field)
    return value


def _load_yaml(path: Path) -> Any:
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise InvalidInput(f"{path.name}: not valid YAML ({exc})", field="file") from exc


def _seed_topic_file(session: Session, *, organization_id: int, path: Path) -> int:
    doc = _mapping(_load_yaml(path), field=path.name)
    created = 0
    with _located(path.name):
        topic = validate_topic(str(doc.get("topic", "")))
    for i, item in enumerate(_list(doc.get("entries"), field="entries"), start=1):
        with _located(f"{path.name}: entry {i}"):
            item = _mapping(item, field="entry")
            raw_country = item.get("country")
            country = None if raw_country is None else normalize_country(str(raw_country))
            texts = _mapping(item.get("texts"), field="texts")
            for language, body in texts.items():
                if find_entry(
                    session,
                    organization_id=organization_id,
                    topic=topic,
                    language=str(language).strip().lower(),
                    country=country,
                ):
                    continue
                create_entry(
                    session,
                    organization_id=organization_id,
                    topic=topic,
                    language=str(language),
                    country=country,
                    body=str(body),
                    source_url=str(item.get("source_url", "")),
                    reviewed_on=_date(item.get("reviewed_on"), field="reviewed_on"),
                    review_due=_optional_date(item.get("review_due"), field="review_due"),
                )
                created += 1
    return created


def _hotline_items(doc: Any) -> Iterator[tuple[str, dict[str, Any]]]:
    """(label, item) for each hotline, in any of the accepted shapes; see the module doc."""
    if isinstance(doc, dict) and "countries" in doc:
        for c, group in enumerate(_list(doc["countries"], field="countries"), start=1):
            group = _mapping(group, field="country")
            for i, item in enumerate(_list(group.get("hotlines") or [], field="hotlines"), 1):
                item = _mapping(item, field="hotline")
                yield (
                    f"country {c} ({group.get('country')}), hotline {i}",
                    {
                        "country": group.get("country"),
                        **item,
                    },
                )
        return
    if isinstance(doc, dict):
        doc = doc.get("hotlines")
    for i, item in enumerate(_list(doc, field="hotlines"), start=1):
        yield f"hotline {i}", _mapping(item, field="hotline")


def _seed_hotlines(session: Session, *, organization_id: int, path: Path) -> int:
    created = 0
    for label, item in _hotline_items(_load_yaml(path)):
        with _located(f"{path.name}: {label}"):
            country = normalize_country(str(item.get("country", "")))
            number = validate_number(str(item.get("number", "")))
            if find_hotline(
                session, organization_id=organization_id, country=country, number=number
            ):
                continue
            create_hotline(
                session,
                organization_id=organization_id,
                country=country,
                number=number,
                names=_mapping(item.get("names", item.get("name")), field="names"),
                topics=_list(item.get("topics"), field="topics"),
                source_url=str(item.get("source_url", "")),
                reviewed_on=_date(item.get("reviewed_on"), field="reviewed_on"),
                review_due=_optional_date(item.get("review_due"), field="review_due"),
            )
            created += 1
    return created


def seed_knowledge(
    session: Session, *, organization_id: int, data_dir: Path = KNOWLEDGE_DIR
) -> KnowledgeSeedResult:
    """Create the entries and hotlines of ``data_dir`` that the organization lacks.

    Raises ``InvalidInput`` naming the file, the item and the field of bad content.
    """
    result = KnowledgeSeedResult()
    if not data_dir.is_dir():
        log.warning("knowledge.seed_skipped", reason="no data directory")
        return result
    for path in sorted(data_dir.glob("*.yml")):
        if path.name == HOTLINES_FILE:
            continue
        result.entries += _seed_topic_file(session, organization_id=organization_id, path=path)
    hotlines = data_dir / HOTLINES_FILE
    if hotlines.is_file():
        result.hotlines = _seed_hotlines(session, organization_id=organization_id, path=hotlines)
    log.info(
        "knowledge.seeded",
        organization_id=organization_id,
        entries=result.entries,
        hotlines=result.hotlines,
    )
    return result


def seed_info_hubs(session: Session, *, organization_id: int, path: Path = DEMO_HUBS) -> int:
    """Create the demo's example hubs of this organization (matched by name); returns how many.

    ``path`` is a JSON list of ``{organization, community, name, address, opening_hours,
    services, is_example}`` naming organizations and communities by name.
    """
    if not path.is_file():
        return 0
    org = session.get(Organization, organization_id)
    if org is None:
        raise InvalidInput(f"organization {organization_id} not found", field="organization_id")
    created = 0
    specs = _list(json.loads(path.read_text(encoding="utf-8")), field="info_hubs")
    for i, spec in enumerate(specs, start=1):
        with _located(f"{path.name}: hub {i}"):
            spec = _mapping(spec, field="hub")
            if spec.get("organization") != org.name:
                continue
            community_id = session.scalar(
                select(Community.id).where(
                    Community.organization_id == organization_id,
                    Community.name == spec.get("community"),
                )
            )
            if community_id is None:
                raise InvalidInput(
                    f"no community {spec.get('community')!r} in {org.name}", field="community"
                )
            if find_hub(session, community_id=community_id, name=str(spec.get("name", "")).strip()):
                continue
            create_hub(
                session,
                organization_id=organization_id,
                community_id=community_id,
                name=str(spec.get("name", "")),
                address=str(spec.get("address", "")),
                opening_hours=str(spec.get("opening_hours", "")),
                services=_list(spec.get("services", []), field="services"),
                is_example=bool(spec.get("is_example", True)),
            )
            created += 1
    return created
