"""analytics rollup tables (issue 6)

Revision ID: 0009_analytics
Revises: 0008_inbox
Create Date: 2026-11-28 12:15:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from campaigns.db import UTCDateTime

revision: str = "0009_analytics"
down_revision: str | None = "0008_inbox"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "analytics_contact_day",
        sa.Column("kind", sa.String(length=12), nullable=False),
        sa.Column(
            "community_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column(
            "contact_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column(
            "source_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column(
            "organization_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.PrimaryKeyConstraint(
            "kind", "community_id", "day", "contact_id", name=op.f("pk_analytics_contact_day")
        ),
    )
    op.create_index(
        op.f("ix_analytics_contact_day_source_id"),
        "analytics_contact_day",
        ["source_id"],
        unique=False,
    )
    op.create_table(
        "analytics_message_status",
        sa.Column(
            "message_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column("stage", sa.String(length=10), nullable=False),
        sa.Column("event_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column(
            "organization_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column(
            "campaign_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column(
            "community_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column("language", sa.String(length=2), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("error_code", sa.Integer(), nullable=True),
        sa.PrimaryKeyConstraint("message_id", "stage", name=op.f("pk_analytics_message_status")),
    )
    op.create_index(
        op.f("ix_analytics_message_status_event_id"),
        "analytics_message_status",
        ["event_id"],
        unique=False,
    )
    op.create_table(
        "analytics_poll_answer",
        sa.Column(
            "campaign_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column(
            "contact_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column(
            "organization_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column(
            "community_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column("language", sa.String(length=2), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("option_number", sa.Integer(), nullable=False),
        sa.Column(
            "message_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.PrimaryKeyConstraint("campaign_id", "contact_id", name=op.f("pk_analytics_poll_answer")),
    )
    op.create_index(
        op.f("ix_analytics_poll_answer_message_id"),
        "analytics_poll_answer",
        ["message_id"],
        unique=False,
    )
    op.create_table(
        "analytics_reply",
        sa.Column(
            "delivery_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column(
            "source_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column(
            "organization_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column(
            "campaign_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column(
            "community_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column("language", sa.String(length=2), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.PrimaryKeyConstraint("delivery_id", name=op.f("pk_analytics_reply")),
    )
    op.create_index(
        op.f("ix_analytics_reply_source_id"), "analytics_reply", ["source_id"], unique=False
    )
    op.create_table(
        "analytics_watermark",
        sa.Column("source", sa.String(length=40), nullable=False),
        sa.Column("last_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("seen_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("seen_at", UTCDateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("source", name=op.f("pk_analytics_watermark")),
    )
    op.create_table(
        "analytics_campaign_day",
        sa.Column(
            "campaign_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column(
            "community_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column("language", sa.String(length=2), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column(
            "targeted",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            server_default="0",
            nullable=False,
        ),
        sa.Column(
            "sent",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            server_default="0",
            nullable=False,
        ),
        sa.Column(
            "delivered",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            server_default="0",
            nullable=False,
        ),
        sa.Column(
            "read",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            server_default="0",
            nullable=False,
        ),
        sa.Column(
            "failed",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            server_default="0",
            nullable=False,
        ),
        sa.Column(
            "replies",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            server_default="0",
            nullable=False,
        ),
        sa.Column(
            "clicks",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            server_default="0",
            nullable=False,
        ),
        sa.Column(
            "opt_outs",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            server_default="0",
            nullable=False,
        ),
        sa.Column(
            "segments",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            server_default="0",
            nullable=False,
        ),
        sa.Column("cost", sa.Numeric(precision=14, scale=5), server_default="0", nullable=False),
        sa.Column(
            "organization_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.ForeignKeyConstraint(
            ["organization_id"],
            ["organization.id"],
            name=op.f("fk_analytics_campaign_day_organization_id_organization"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint(
            "campaign_id", "community_id", "language", "day", name=op.f("pk_analytics_campaign_day")
        ),
    )
    op.create_index(
        "ix_analytics_campaign_day_org_day",
        "analytics_campaign_day",
        ["organization_id", "day"],
        unique=False,
    )
    op.create_index(
        op.f("ix_analytics_campaign_day_organization_id"),
        "analytics_campaign_day",
        ["organization_id"],
        unique=False,
    )
    op.create_table(
        "analytics_campaign_failure",
        sa.Column(
            "campaign_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column(
            "community_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column("language", sa.String(length=2), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("error_code", sa.Integer(), nullable=False),
        sa.Column(
            "failed",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            server_default="0",
            nullable=False,
        ),
        sa.Column(
            "organization_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.ForeignKeyConstraint(
            ["organization_id"],
            ["organization.id"],
            name=op.f("fk_analytics_campaign_failure_organization_id_organization"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint(
            "campaign_id",
            "community_id",
            "language",
            "day",
            "error_code",
            name=op.f("pk_analytics_campaign_failure"),
        ),
    )
    op.create_index(
        op.f("ix_analytics_campaign_failure_organization_id"),
        "analytics_campaign_failure",
        ["organization_id"],
        unique=False,
    )
    op.create_table(
        "analytics_community_day",
        sa.Column(
            "community_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column(
            "active_contacts",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            server_default="0",
            nullable=False,
        ),
        sa.Column(
            "new_contacts",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            server_default="0",
            nullable=False,
        ),
        sa.Column(
            "opted_out",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            server_default="0",
            nullable=False,
        ),
        sa.Column(
            "conversations",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            server_default="0",
            nullable=False,
        ),
        sa.Column(
            "turns",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            server_default="0",
            nullable=False,
        ),
        sa.Column(
            "unanswered",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            server_default="0",
            nullable=False,
        ),
        sa.Column(
            "handovers_opened",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            server_default="0",
            nullable=False,
        ),
        sa.Column(
            "handovers_closed",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            server_default="0",
            nullable=False,
        ),
        sa.Column(
            "organization_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.ForeignKeyConstraint(
            ["organization_id"],
            ["organization.id"],
            name=op.f("fk_analytics_community_day_organization_id_organization"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("community_id", "day", name=op.f("pk_analytics_community_day")),
    )
    op.create_index(
        "ix_analytics_community_day_org_day",
        "analytics_community_day",
        ["organization_id", "day"],
        unique=False,
    )
    op.create_index(
        op.f("ix_analytics_community_day_organization_id"),
        "analytics_community_day",
        ["organization_id"],
        unique=False,
    )
    op.create_table(
        "analytics_handover_close",
        sa.Column(
            "handover_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column(
            "community_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("seconds", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column(
            "organization_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.ForeignKeyConstraint(
            ["organization_id"],
            ["organization.id"],
            name=op.f("fk_analytics_handover_close_organization_id_organization"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("handover_id", name=op.f("pk_analytics_handover_close")),
    )
    op.create_index(
        op.f("ix_analytics_handover_close_community_id"),
        "analytics_handover_close",
        ["community_id"],
        unique=False,
    )
    op.create_index(
        op.f("ix_analytics_handover_close_day"), "analytics_handover_close", ["day"], unique=False
    )
    op.create_index(
        op.f("ix_analytics_handover_close_organization_id"),
        "analytics_handover_close",
        ["organization_id"],
        unique=False,
    )
    op.create_table(
        "analytics_poll_day",
        sa.Column(
            "campaign_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column(
            "community_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column("language", sa.String(length=2), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("option_number", sa.Integer(), nullable=False),
        sa.Column(
            "answers",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            server_default="0",
            nullable=False,
        ),
        sa.Column(
            "organization_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.ForeignKeyConstraint(
            ["organization_id"],
            ["organization.id"],
            name=op.f("fk_analytics_poll_day_organization_id_organization"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint(
            "campaign_id",
            "community_id",
            "language",
            "day",
            "option_number",
            name=op.f("pk_analytics_poll_day"),
        ),
    )
    op.create_index(
        op.f("ix_analytics_poll_day_organization_id"),
        "analytics_poll_day",
        ["organization_id"],
        unique=False,
    )
    op.create_table(
        "analytics_topic_day",
        sa.Column(
            "community_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("topic", sa.String(length=40), nullable=False),
        sa.Column("language", sa.String(length=2), nullable=False),
        sa.Column(
            "questions",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            server_default="0",
            nullable=False,
        ),
        sa.Column(
            "unanswered",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            server_default="0",
            nullable=False,
        ),
        sa.Column(
            "feedback_yes",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            server_default="0",
            nullable=False,
        ),
        sa.Column(
            "feedback_no",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            server_default="0",
            nullable=False,
        ),
        sa.Column(
            "organization_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.ForeignKeyConstraint(
            ["organization_id"],
            ["organization.id"],
            name=op.f("fk_analytics_topic_day_organization_id_organization"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint(
            "community_id", "day", "topic", "language", name=op.f("pk_analytics_topic_day")
        ),
    )
    op.create_index(
        "ix_analytics_topic_day_org_day",
        "analytics_topic_day",
        ["organization_id", "day"],
        unique=False,
    )
    op.create_index(
        op.f("ix_analytics_topic_day_organization_id"),
        "analytics_topic_day",
        ["organization_id"],
        unique=False,
    )
    op.create_table(
        "analytics_topic_total_day",
        sa.Column(
            "community_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("topic", sa.String(length=40), nullable=False),
        sa.Column(
            "questions",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            server_default="0",
            nullable=False,
        ),
        sa.Column(
            "unanswered",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            server_default="0",
            nullable=False,
        ),
        sa.Column(
            "feedback_yes",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            server_default="0",
            nullable=False,
        ),
        sa.Column(
            "feedback_no",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            server_default="0",
            nullable=False,
        ),
        sa.Column(
            "organization_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.ForeignKeyConstraint(
            ["organization_id"],
            ["organization.id"],
            name=op.f("fk_analytics_topic_total_day_organization_id_organization"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint(
            "community_id", "day", "topic", name=op.f("pk_analytics_topic_total_day")
        ),
    )
    op.create_index(
        "ix_analytics_topic_total_day_org_day",
        "analytics_topic_total_day",
        ["organization_id", "day"],
        unique=False,
    )
    op.create_index(
        op.f("ix_analytics_topic_total_day_organization_id"),
        "analytics_topic_total_day",
        ["organization_id"],
        unique=False,
    )


def downgrade() -> None:
    op.drop_index(
        op.f("ix_analytics_topic_total_day_organization_id"), table_name="analytics_topic_total_day"
    )
    op.drop_index("ix_analytics_topic_total_day_org_day", table_name="analytics_topic_total_day")
    op.drop_table("analytics_topic_total_day")
    op.drop_index(op.f("ix_analytics_topic_day_organization_id"), table_name="analytics_topic_day")
    op.drop_index("ix_analytics_topic_day_org_day", table_name="analytics_topic_day")
    op.drop_table("analytics_topic_day")
    op.drop_index(op.f("ix_analytics_poll_day_organization_id"), table_name="analytics_poll_day")
    op.drop_table("analytics_poll_day")
    op.drop_index(
        op.f("ix_analytics_handover_close_organization_id"), table_name="analytics_handover_close"
    )
    op.drop_index(op.f("ix_analytics_handover_close_day"), table_name="analytics_handover_close")
    op.drop_index(
        op.f("ix_analytics_handover_close_community_id"), table_name="analytics_handover_close"
    )
    op.drop_table("analytics_handover_close")
    op.drop_index(
        op.f("ix_analytics_community_day_organization_id"), table_name="analytics_community_day"
    )
    op.drop_index("ix_analytics_community_day_org_day", table_name="analytics_community_day")
    op.drop_table("analytics_community_day")
    op.drop_index(
        op.f("ix_analytics_campaign_failure_organization_id"),
        table_name="analytics_campaign_failure",
    )
    op.drop_table("analytics_campaign_failure")
    op.drop_index(
        op.f("ix_analytics_campaign_day_organization_id"), table_name="analytics_campaign_day"
    )
    op.drop_index("ix_analytics_campaign_day_org_day", table_name="analytics_campaign_day")
    op.drop_table("analytics_campaign_day")
    op.drop_table("analytics_watermark")
    op.drop_index(op.f("ix_analytics_reply_source_id"), table_name="analytics_reply")
    op.drop_table("analytics_reply")
    op.drop_index(op.f("ix_analytics_poll_answer_message_id"), table_name="analytics_poll_answer")
    op.drop_table("analytics_poll_answer")
    op.drop_index(
        op.f("ix_analytics_message_status_event_id"), table_name="analytics_message_status"
    )
    op.drop_table("analytics_message_status")
    op.drop_index(op.f("ix_analytics_contact_day_source_id"), table_name="analytics_contact_day")
    op.drop_table("analytics_contact_day")
