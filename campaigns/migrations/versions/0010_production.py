"""production: key rotation, retention, login throttling (issue 7)

Revision ID: 0010_production
Revises: 0009_analytics
Create Date: 2026-11-28 12:15:00
"""

from collections.abc import Sequence

revision: str = "0010_production"
down_revision: str | None = "0009_analytics"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
