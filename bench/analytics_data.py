"""Analytics benchmark data: millions of events generated inside PostgreSQL, set-based.

``generate(url, ...)`` fills a migrated, empty database with one organization, 50 communities,
contacts, 25 campaigns, their deliveries and outbound messages, Twilio status callbacks (with
duplicates and out-of-order arrivals), inbound messages with assistant turns, feedback,
unanswered questions, handovers, opt-outs, tracked-link clicks and poll answers.  Every bulk
table is written by one ``INSERT … SELECT … FROM generate_series(…)``: no Python loop touches
a row.  Reused by ``bench/analytics.py``; the dashboard benchmark can call it too.
"""

from __future__ import annotations

import datetime as dt
import time
from dataclasses import dataclass, field

from sqlalchemy import Connection, text

from campaigns.communities import create_community
from campaigns.db import make_engine, make_sessionmaker, utcnow
from campaigns.organizations.models import Role
from campaigns.organizations.service import create_organization, create_user, issue_token
from campaigns.outreach.models import CampaignKind
from campaigns.topics import TOPICS
from tests.campaigns_engine.factories import make_campaign

COMMUNITIES = 50
CAMPAIGNS = 25
POLL_EVERY = 5  # every fifth campaign is a poll
DAYS = 90
EVENTS_PER_MESSAGE = 4
_ZONES = (
    "America/Mexico_City",
    "America/Guatemala",
    "America/Tegucigalpa",
    "America/Port-au-Prince",
)
_LANG = ("es", "es", "es", "ht")
QUESTIONS = (
    "¿cuándo abre la oficina de [name] en la calle #?",
    "¿es verdad que abren la frontera el # de diciembre?",
    "mi hermano salió hace # días y no sé nada de él",
    "kote mwen ka jwenn yon avoka gratis",
    "can i work with the card they gave me at the border",
    "¿cuánto cuesta la cita para el permiso?",
)


@dataclass
class Generated:
    organization_id: int
    token: str
    community_ids: list[int]
    campaign_ids: list[int]
    counts: dict[str, int] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)


def generate(
    url: str,
    *,
    status_events: int = 5_000_000,
    turns: int = 500_000,
    contacts: int = 250_000,
    end: dt.datetime | None = None,
) -> Generated:
    """Fill the database at ``url``; events span the ``DAYS`` days up to ``end`` (now)."""
    end = end or utcnow()
    messages = status_events // EVENTS_PER_MESSAGE
    engine = make_engine(url, pool_size=1, max_overflow=0)
    try:
        with make_sessionmaker(engine)() as session, session.begin():
            org = create_organization(session, name="Bench analytics", country="MX")
            user = create_user(
                session, organization_id=org.id, email="admin@bench.example.org", role=Role.admin
            )
            _, token = issue_token(session, user=user, name="bench")
            places = [
                create_community(
                    session,
                    organization_id=org.id,
                    name=f"Comunidad {i + 1:02d}",
                    country="MX",
                    timezone=_ZONES[i % len(_ZONES)],
                    default_language=_LANG[i % len(_LANG)],
                )
                for i in range(COMMUNITIES)
            ]
            campaign_ids = [
                make_campaign(
                    session,
                    org=org,
                    author=user,
                    communities=places,
                    kind=CampaignKind.poll if i % POLL_EVERY == 0 else CampaignKind.announcement,
                    name=f"Campaña {i + 1:02d}",
                ).id
                for i in range(CAMPAIGNS)
            ]
            out = Generated(org.id, token, [p.id for p in places], campaign_ids)
        with engine.connect() as conn:
            _bulk(conn, out, messages=messages, turns=turns, contacts=contacts, end=end)
            conn.commit()
    finally:
        engine.dispose()
    return out


def _step(conn: Connection, out: Generated, name: str, sql: str, **params: object) -> None:
    """One bulk INSERT, committed, then its table analyzed (as autovacuum would), so the
    planner of the next step knows how big it is."""
    table = name if name in _TABLES else _TABLES_OF[name]
    started = time.perf_counter()
    result = conn.execute(text(sql), params)
    conn.commit()
    conn.execute(text(f"ANALYZE {table}"))
    conn.commit()
    out.seconds[name] = round(time.perf_counter() - started, 2)
    out.counts[name] = result.rowcount


_TABLES_OF = {
    "outbound_messages": "message",
    "inbound_messages": "message",
    "poll_messages": "message",
    "contacts": "contact",
}
_TABLES = frozenset(
    {
        "contact_community",
        "campaign_run",
        "campaign_delivery",
        "message_status_event",
        "assistant_turn",
        "assistant_feedback",
        "unanswered_question",
        "handover",
        "consent_event",
        "tracked_link",
        "link_click",
        "poll_response",
    }
)


def _bulk(
    conn: Connection, out: Generated, *, messages: int, turns: int, contacts: int, end: dt.datetime
) -> None:
    org = out.organization_id
    p = {"org": org, "end": end, "days": DAYS}
    conn.execute(text("CREATE TEMP TABLE bench_place (n int PRIMARY KEY, id bigint, lang text)"))
    conn.execute(
        text(
            "INSERT INTO bench_place SELECT row_number() OVER (ORDER BY id) - 1, id, "
            "default_language FROM community WHERE organization_id = :org"
        ),
        p,
    )
    conn.execute(text("CREATE TEMP TABLE bench_campaign (n int PRIMARY KEY, id bigint)"))
    conn.execute(
        text(
            "INSERT INTO bench_campaign SELECT row_number() OVER (ORDER BY id) - 1, id "
            "FROM campaign WHERE organization_id = :org"
        ),
        p,
    )
    conn.execute(text("ANALYZE bench_place"))
    conn.execute(text("ANALYZE bench_campaign"))
    # Contacts: community g % 50, mostly its language; created over the period.
    _step(
        conn,
        out,
        "contacts",
        """
        INSERT INTO contact (organization_id, channel, address_hash, country, language, consent,
            is_simulated, erased, created_at, updated_at)
        SELECT :org, CASE WHEN g % 3 = 0 THEN 'sms' ELSE 'whatsapp' END, md5('c' || g), 'MX',
            CASE WHEN g % 10 = 0 THEN 'en' ELSE pl.lang END, 'opted_in', false, false,
            :end - make_interval(secs => (g * 7919) % (:days * 86400)), :end
        FROM generate_series(1::bigint, :n) g JOIN bench_place pl ON pl.n = g % 50
        """,
        **p,
        n=contacts,
    )
    conn.execute(
        text(
            "CREATE TEMP TABLE bench_contact AS SELECT row_number() OVER (ORDER BY id) - 1 AS n, "
            "id, language FROM contact WHERE organization_id = :org"
        ),
        p,
    )
    conn.execute(text("ALTER TABLE bench_contact ADD PRIMARY KEY (n)"))
    conn.execute(text("CREATE UNIQUE INDEX ON bench_contact (id)"))
    conn.execute(text("ANALYZE bench_contact"))
    _step(
        conn,
        out,
        "contact_community",
        "INSERT INTO contact_community (contact_id, community_id, joined_at) "
        "SELECT c.id, pl.id, :end FROM bench_contact c JOIN bench_place pl ON pl.n = c.n % 50",
        **p,
    )
    # One run per campaign and community; campaign k runs on day 3k+1 of the period.
    _step(
        conn,
        out,
        "campaign_run",
        """
        INSERT INTO campaign_run (organization_id, campaign_id, community_id, scheduled_for,
            due_at, status, campaign_version, created_at, updated_at)
        SELECT :org, ca.id, pl.id, :end - make_interval(days => :days - 3 * ca.n - 1),
            :end - make_interval(days => :days - 3 * ca.n - 1), 'done', 1, :end, :end
        FROM bench_campaign ca CROSS JOIN bench_place pl
        """,
        **p,
    )
    # Outbound campaign messages: block g / (messages / 25) is one campaign, sent over 3 days.
    per_campaign = max(1, messages // len(out.campaign_ids))
    _step(
        conn,
        out,
        "outbound_messages",
        """
        INSERT INTO message (organization_id, contact_id, direction, channel, twilio_sid, status,
            status_rank, purpose, kind, num_media, attempts, then_erase, simulated, campaign_id,
            segments, created_at, updated_at)
        SELECT :org, c.id, 'outbound', 'whatsapp', 'SMb' || g, 'delivered', 5, 'campaign', 'text',
            0, 1, false, false, ca.id, 1,
            :end - make_interval(days => :days - 3 * ca.n - 1)
                + make_interval(secs => (g * 7919) % (3 * 86400)), :end
        FROM generate_series(0::bigint, :n - 1) g
        JOIN bench_campaign ca ON ca.n = (g / :per) % 25
        JOIN bench_contact c ON c.n = g % :contacts
        """,
        **p,
        n=messages,
        per=per_campaign,
        contacts=contacts,
    )
    _step(
        conn,
        out,
        "campaign_delivery",
        """
        INSERT INTO campaign_delivery (organization_id, run_id, campaign_id, community_id,
            contact_id, occurrence_key, message_id, status, language, step, send_after,
            created_at, updated_at)
        SELECT :org, r.id, m.campaign_id, r.community_id, m.contact_id, 'once', m.id, 'sent',
            c.language, 1, m.created_at, m.created_at, m.created_at
        FROM message m
        JOIN bench_contact c ON c.id = m.contact_id
        JOIN bench_place pl ON pl.n = c.n % 50
        JOIN campaign_run r ON r.campaign_id = m.campaign_id AND r.community_id = pl.id
        WHERE m.organization_id = :org AND m.direction = 'outbound'
        ON CONFLICT DO NOTHING
        """,
        **p,
    )
    # Four callbacks per message: sent, delivered (3 % failed 30008), read (60 %) or a
    # duplicated delivered, and a late duplicate 'sent' that arrives last (out of order).
    _step(
        conn,
        out,
        "message_status_event",
        """
        INSERT INTO message_status_event (organization_id, message_id, status, error_code,
            received_at)
        SELECT :org, m.id,
            CASE k WHEN 1 THEN 'sent' WHEN 2 THEN CASE WHEN m.id % 33 = 0 THEN 'undelivered'
                ELSE 'delivered' END
                WHEN 3 THEN CASE WHEN m.id % 33 = 0 THEN 'undelivered' WHEN m.id % 5 < 3
                THEN 'read' ELSE 'delivered' END ELSE 'sent' END,
            CASE WHEN m.id % 33 = 0 AND k IN (2, 3) THEN 30008 END,
            m.created_at + make_interval(mins => k * k * 7)
        FROM message m CROSS JOIN generate_series(1, 4) k
        WHERE m.organization_id = :org AND m.direction = 'outbound'
        """,
        **p,
    )
    # Inbound messages and the assistant's turns: topics skewed (the first ones more often).
    _step(
        conn,
        out,
        "inbound_messages",
        """
        INSERT INTO message (organization_id, contact_id, direction, channel, twilio_sid, status,
            status_rank, kind, body, num_media, attempts, then_erase, simulated, created_at,
            updated_at, handled_at)
        SELECT :org, c.id, 'inbound', 'whatsapp', 'SMi' || g, 'received', 7, 'text', 'hola',
            0, 0, false, false, :end - make_interval(secs => (g * 104729) % (:days * 86400)),
            :end, :end
        FROM generate_series(0::bigint, :n - 1) g JOIN bench_contact c ON c.n = (g * 31) % :contacts
        """,
        **p,
        n=turns,
        contacts=contacts,
    )
    topics = "ARRAY[" + ", ".join(f"'{t}'" for t in TOPICS) + "]"
    _step(
        conn,
        out,
        "assistant_turn",
        f"""
        INSERT INTO assistant_turn (organization_id, message_id, community_id, language, intent,
            confidence, topic, answered, source, created_at)
        SELECT :org, m.id, pl.id, c.language, t.topic, 0.9, t.topic, m.id % 7 <> 0, 'rasa',
            m.created_at
        FROM message m
        JOIN bench_contact c ON c.id = m.contact_id
        JOIN bench_place pl ON pl.n = c.n % 50
        CROSS JOIN LATERAL (SELECT ({topics})[1 + (floor(power((m.id * 2654435761 % 1000)
            / 1000.0, 2) * 20))::int] AS topic) t
        WHERE m.organization_id = :org AND m.direction = 'inbound'
        """,
        **p,
    )
    _step(
        conn,
        out,
        "assistant_feedback",
        """
        INSERT INTO assistant_feedback (organization_id, message_id, community_id, topic,
            language, useful, created_at)
        SELECT organization_id, message_id, community_id, topic, language, id % 4 <> 0,
            created_at + interval '1 minute'
        FROM assistant_turn WHERE organization_id = :org AND id % 10 = 0 AND answered
        """,
        **p,
    )
    questions = "ARRAY[" + ", ".join("'" + q.replace("'", "''") + "'" for q in QUESTIONS) + "]"
    _step(
        conn,
        out,
        "unanswered_question",
        f"""
        INSERT INTO unanswered_question (organization_id, message_id, community_id, language,
            text_redacted, intent, confidence, created_at)
        SELECT organization_id, message_id, community_id, language,
            ({questions})[1 + id % {len(QUESTIONS)}] || ' (' || (id % 97) || ')', 'nlu_fallback',
            0.2, created_at
        FROM assistant_turn WHERE organization_id = :org AND NOT answered
        """,
        **p,
    )
    _step(
        conn,
        out,
        "handover",
        """
        INSERT INTO handover (organization_id, contact_id, community_id, topic, language, status,
            opened_at, first_reply_at, closed_at)
        SELECT t.organization_id, m.contact_id, t.community_id, t.topic, t.language,
            CASE WHEN t.id % 3 = 0 THEN 'open' ELSE 'closed' END, t.created_at, NULL,
            CASE WHEN t.id % 3 = 0 THEN NULL
                ELSE t.created_at + make_interval(mins => 5 + (t.id % 240)::int) END
        FROM assistant_turn t JOIN message m ON m.id = t.message_id
        WHERE t.organization_id = :org AND t.id % 50 = 1
        """,
        **p,
    )
    _step(
        conn,
        out,
        "consent_event",
        """
        INSERT INTO consent_event (organization_id, contact_id, state, source, detail,
            created_at)
        SELECT :org, m.contact_id, 'opted_out', 'keyword', '', m.created_at + interval '3 hours'
        FROM message m
        WHERE m.organization_id = :org AND m.direction = 'outbound' AND m.id % 97 = 0
        """,
        **p,
    )
    _step(
        conn,
        out,
        "tracked_link",
        """
        INSERT INTO tracked_link (organization_id, code, campaign_id, community_id, url,
            created_at)
        SELECT :org, substr(md5(r.id::text), 1, 8), r.campaign_id, r.community_id,
            'https://www.gob.mx/inm', :end
        FROM campaign_run r WHERE r.organization_id = :org
        """,
        **p,
    )
    _step(
        conn,
        out,
        "link_click",
        """
        INSERT INTO link_click (link_id, clicked_at, user_agent_family)
        SELECT l.id, r.scheduled_for + make_interval(secs => (g * 7919) % 86400),
            CASE WHEN g % 9 = 0 THEN 'preview' ELSE 'android' END
        FROM tracked_link l JOIN campaign_run r ON r.campaign_id = l.campaign_id
            AND r.community_id = l.community_id
        CROSS JOIN generate_series(1, 40) g
        WHERE l.organization_id = :org
        """,
        **p,
    )
    # Poll answers: the recipients of the poll campaigns who wrote back with a number.
    _step(
        conn,
        out,
        "poll_messages",
        """
        INSERT INTO message (organization_id, contact_id, direction, channel, twilio_sid, status,
            status_rank, kind, body, num_media, attempts, then_erase, simulated, created_at,
            updated_at, handled_at, campaign_id)
        SELECT :org, m.contact_id, 'inbound', 'whatsapp', 'SMp' || m.id, 'received', 7, 'text',
            '1', 0, 0, false, false, m.created_at + interval '2 hours', :end, :end, m.campaign_id
        FROM message m JOIN bench_campaign ca ON ca.id = m.campaign_id
        WHERE m.organization_id = :org AND m.direction = 'outbound' AND ca.n % 5 = 0
            AND m.id % 4 = 0
        """,
        **p,
    )
    _step(
        conn,
        out,
        "poll_response",
        """
        INSERT INTO poll_response (organization_id, campaign_id, option_number, contact_id,
            community_id, language, message_id, created_at)
        SELECT :org, m.campaign_id, 1 + m.id % 3, m.contact_id, pl.id, c.language, m.id,
            m.created_at
        FROM message m JOIN bench_contact c ON c.id = m.contact_id
        JOIN bench_place pl ON pl.n = c.n % 50
        WHERE m.organization_id = :org AND m.direction = 'inbound' AND m.campaign_id IS NOT NULL
        ON CONFLICT DO NOTHING
        """,
        **p,
    )


def add_status_events(url: str, *, organization_id: int, n: int, at: dt.datetime) -> float:
    """``n`` new callbacks (read receipts, a tenth of them duplicates) for recent messages."""
    engine = make_engine(url, pool_size=1, max_overflow=0)
    try:
        with engine.begin() as conn:
            started = time.perf_counter()
            conn.execute(
                text(
                    """
                    INSERT INTO message_status_event (organization_id, message_id, status,
                        error_code, received_at)
                    SELECT :org, m.id, 'read', NULL, :at
                    FROM (SELECT id FROM message WHERE organization_id = :org
                          AND direction = 'outbound' AND id % 5 >= 3
                          ORDER BY id DESC LIMIT :distinct) m
                    CROSS JOIN generate_series(1, 10) k
                    WHERE k = 1 OR m.id % 9 = 0
                    LIMIT :n
                    """
                ),
                {"org": organization_id, "at": at, "n": n, "distinct": n},
            )
            return time.perf_counter() - started
    finally:
        engine.dispose()
