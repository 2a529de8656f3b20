"""profiles: the search configuration chosen by `shrinkvec tune --apply`.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-22
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

S = "shrinkvec"


def upgrade() -> None:
    op.add_column("profiles", sa.Column(
        "search_config", sa.Text, nullable=True,
        comment="default search of the profile, as a config spec (bits@100, bits@400>prefix:128@100, "
                "index:lists=L:probes=P@S); NULL: the first code at the profile's shortlist"), schema=S)
    op.add_column("profiles", sa.Column(
        "tuned", postgresql.JSONB, nullable=True,
        comment="the shrinkvec tune report that chose search_config (target, recall on held-out queries, ms)"),
        schema=S)


def downgrade() -> None:
    op.drop_column("profiles", "tuned", schema=S)
    op.drop_column("profiles", "search_config", schema=S)
