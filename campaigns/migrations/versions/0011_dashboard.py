"""dashboard: web sessions and failed-login throttling (issues 6, 7)

Revision ID: 0011_dashboard
Revises: 0010_production
Create Date: 2026-11-28 12:15:00
"""

from collections.abc import Sequence

revision: str = "0011_dashboard"
down_revision: str | None = "0010_production"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
