"""analytics rollup tables (issue 6)

Revision ID: 0009_analytics
Revises: 0008_inbox
Create Date: 2026-11-28 12:15:00
"""

from collections.abc import Sequence

revision: str = "0009_analytics"
down_revision: str | None = "0008_inbox"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
