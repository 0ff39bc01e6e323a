"""polls links

Revision ID: 0006_polls_links
Revises: 0005
Create Date: 2026-11-28 10:34:13.127711

Poll responses, tracked links and their clicks, and the campaign an outbound message came
from (``message.campaign_id``).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import campaigns.db

revision: str = "0006_polls_links"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "tracked_link",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("code", sa.String(length=8), nullable=False),
        sa.Column(
            "campaign_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column(
            "community_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column("url", sa.Text(), nullable=False),
        sa.Column("created_at", campaigns.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column(
            "organization_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.ForeignKeyConstraint(
            ["campaign_id"],
            ["campaign.id"],
            name=op.f("fk_tracked_link_campaign_id_campaign"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["community_id"],
            ["community.id"],
            name=op.f("fk_tracked_link_community_id_community"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["organization_id"],
            ["organization.id"],
            name=op.f("fk_tracked_link_organization_id_organization"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_tracked_link")),
        sa.UniqueConstraint(
            "campaign_id",
            "community_id",
            "url",
            name=op.f("uq_tracked_link_campaign_id_community_id_url"),
        ),
        sa.UniqueConstraint("code", name=op.f("uq_tracked_link_code")),
    )
    with op.batch_alter_table("tracked_link", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_tracked_link_community_id"), ["community_id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_tracked_link_organization_id"), ["organization_id"], unique=False
        )

    op.create_table(
        "link_click",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("link_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("clicked_at", campaigns.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("user_agent_family", sa.String(length=20), nullable=False),
        sa.ForeignKeyConstraint(
            ["link_id"],
            ["tracked_link.id"],
            name=op.f("fk_link_click_link_id_tracked_link"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_link_click")),
    )
    with op.batch_alter_table("link_click", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_link_click_link_id"), ["link_id"], unique=False)

    op.create_table(
        "poll_response",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column(
            "campaign_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column("option_number", sa.Integer(), nullable=False),
        sa.Column(
            "contact_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column(
            "community_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True
        ),
        sa.Column("language", sa.String(length=2), nullable=False),
        sa.Column(
            "message_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column("created_at", campaigns.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column(
            "organization_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.ForeignKeyConstraint(
            ["campaign_id"],
            ["campaign.id"],
            name=op.f("fk_poll_response_campaign_id_campaign"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["community_id"],
            ["community.id"],
            name=op.f("fk_poll_response_community_id_community"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["contact_id"],
            ["contact.id"],
            name=op.f("fk_poll_response_contact_id_contact"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["message_id"],
            ["message.id"],
            name=op.f("fk_poll_response_message_id_message"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["organization_id"],
            ["organization.id"],
            name=op.f("fk_poll_response_organization_id_organization"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_poll_response")),
        sa.UniqueConstraint(
            "campaign_id", "contact_id", name=op.f("uq_poll_response_campaign_id_contact_id")
        ),
        sa.UniqueConstraint("message_id", name=op.f("uq_poll_response_message_id")),
    )
    with op.batch_alter_table("poll_response", schema=None) as batch_op:
        batch_op.create_index(
            "ix_poll_response_campaign_community", ["campaign_id", "community_id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_poll_response_contact_id"), ["contact_id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_poll_response_organization_id"), ["organization_id"], unique=False
        )

    with op.batch_alter_table("message", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column(
                "campaign_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True
            )
        )
        batch_op.create_index("ix_message_campaign", ["campaign_id"], unique=False)
        batch_op.create_foreign_key(
            batch_op.f("fk_message_campaign_id_campaign"),
            "campaign",
            ["campaign_id"],
            ["id"],
            ondelete="SET NULL",
        )


def downgrade() -> None:
    with op.batch_alter_table("message", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("fk_message_campaign_id_campaign"), type_="foreignkey")
        batch_op.drop_index("ix_message_campaign")
        batch_op.drop_column("campaign_id")

    with op.batch_alter_table("poll_response", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_poll_response_organization_id"))
        batch_op.drop_index(batch_op.f("ix_poll_response_contact_id"))
        batch_op.drop_index("ix_poll_response_campaign_community")

    op.drop_table("poll_response")
    with op.batch_alter_table("link_click", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_link_click_link_id"))

    op.drop_table("link_click")
    with op.batch_alter_table("tracked_link", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_tracked_link_organization_id"))
        batch_op.drop_index(batch_op.f("ix_tracked_link_community_id"))

    op.drop_table("tracked_link")
