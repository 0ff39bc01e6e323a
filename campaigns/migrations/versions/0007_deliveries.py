"""deliveries

Revision ID: 0006_deliveries
Revises: 0006_polls_links
Create Date: 2026-11-28 10:34:21.106946

One row per (run, contact): what the planner decided and what became of it.  Two unique keys
make a campaign exactly once: per run, and per campaign occurrence across communities.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import campaigns.db

revision: str = "0006_deliveries"
down_revision: str | None = "0006_polls_links"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BIG = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "campaign_delivery",
        sa.Column("id", BIG, nullable=False),
        sa.Column("run_id", BIG, nullable=False),
        sa.Column("campaign_id", BIG, nullable=False),
        sa.Column("community_id", BIG, nullable=False),
        sa.Column("contact_id", BIG, nullable=False),
        sa.Column("occurrence_key", sa.String(length=32), nullable=False),
        sa.Column("message_id", BIG, nullable=True),
        sa.Column(
            "status",
            sa.Enum(
                "planned",
                "queued",
                "sent",
                "skipped",
                "failed",
                name="deliverystatus",
                native_enum=False,
                length=20,
            ),
            nullable=False,
        ),
        sa.Column("reason", sa.String(length=40), nullable=True),
        sa.Column("language", sa.String(length=2), nullable=False),
        sa.Column("step", sa.Integer(), nullable=False),
        sa.Column("send_after", campaigns.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("created_at", campaigns.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", campaigns.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("organization_id", BIG, nullable=False),
        sa.ForeignKeyConstraint(
            ["campaign_id"],
            ["campaign.id"],
            name=op.f("fk_campaign_delivery_campaign_id_campaign"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["community_id"],
            ["community.id"],
            name=op.f("fk_campaign_delivery_community_id_community"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["contact_id"],
            ["contact.id"],
            name=op.f("fk_campaign_delivery_contact_id_contact"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["message_id"],
            ["message.id"],
            name=op.f("fk_campaign_delivery_message_id_message"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["organization_id"],
            ["organization.id"],
            name=op.f("fk_campaign_delivery_organization_id_organization"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["run_id"],
            ["campaign_run.id"],
            name=op.f("fk_campaign_delivery_run_id_campaign_run"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_campaign_delivery")),
        sa.UniqueConstraint(
            "campaign_id",
            "occurrence_key",
            "contact_id",
            name=op.f("uq_campaign_delivery_campaign_id_occurrence_key_contact_id"),
        ),
        sa.UniqueConstraint(
            "run_id", "contact_id", name=op.f("uq_campaign_delivery_run_id_contact_id")
        ),
    )
    op.create_index(
        "ix_campaign_delivery_run_status_send_after",
        "campaign_delivery",
        ["run_id", "status", "send_after"],
    )
    op.create_index(op.f("ix_campaign_delivery_contact_id"), "campaign_delivery", ["contact_id"])
    op.create_index(op.f("ix_campaign_delivery_message_id"), "campaign_delivery", ["message_id"])
    op.create_index(
        op.f("ix_campaign_delivery_organization_id"), "campaign_delivery", ["organization_id"]
    )


def downgrade() -> None:
    op.drop_table("campaign_delivery")
