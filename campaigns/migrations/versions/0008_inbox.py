"""gateway inbox and batched status ingestion (issue 3)

Revision ID: 0008_inbox
Revises: 0006_deliveries
Create Date: 2026-11-28 12:15:00
"""

from collections.abc import Sequence

revision: str = "0008_inbox"
down_revision: str | None = "0006_deliveries"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
