"""shrinkvec catalog: profiles, their code columns, transforms, load progress.

Revision ID: 0001
Revises:
Create Date: 2025-01-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

S = "shrinkvec"
REALS = postgresql.ARRAY(sa.REAL)


def upgrade() -> None:
    op.execute("CREATE SCHEMA IF NOT EXISTS shrinkvec")
    op.create_table(
        "transforms",
        sa.Column("name", sa.Text, primary_key=True),
        sa.Column("kind", sa.Text, nullable=False),
        sa.Column("dims_in", sa.Integer, nullable=False),
        sa.Column("dims_out", sa.Integer, nullable=False),
        sa.Column("matrix", REALS, nullable=True, comment="row-major dims_out x dims_in; NULL for identity"),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.CheckConstraint("kind IN ('identity', 'pca', 'adaptor')", name="transforms_kind"),
        schema=S,
        comment="immutable linear maps applied to vectors before coding (shrinkvec adapt)",
    )
    op.create_table(
        "profiles",
        sa.Column("name", sa.Text, primary_key=True),
        sa.Column("table_schema", sa.Text, nullable=False),
        sa.Column("table_name", sa.Text, nullable=False),
        sa.Column("id_column", sa.Text, nullable=False, server_default="id"),
        sa.Column("vector_column", sa.Text, nullable=False),
        sa.Column("dims", sa.Integer, nullable=False),
        sa.Column("distance", sa.Text, nullable=False, server_default="cosine"),
        sa.Column("center", REALS, nullable=True, comment="subtracted before sign bits; NULL = no centering"),
        sa.Column("transform", sa.Text, sa.ForeignKey(f"{S}.transforms.name"), nullable=True),
        sa.Column("k", sa.Integer, nullable=False, server_default="10"),
        sa.Column("shortlist", sa.Integer, nullable=False, server_default="200"),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.UniqueConstraint("table_schema", "table_name", "vector_column", name="profiles_column_key"),
        sa.CheckConstraint("distance IN ('cosine', 'l2', 'ip')", name="profiles_distance"),
        sa.CheckConstraint("dims BETWEEN 1 AND 16000", name="profiles_dims"),
        sa.CheckConstraint("k >= 1 AND shortlist >= k", name="profiles_shortlist"),
        sa.CheckConstraint("center IS NULL OR cardinality(center) = dims", name="profiles_center_dims"),
        schema=S,
        comment="a table's vector column and how its compact codes are computed and searched",
    )
    op.create_table(
        "codes",
        sa.Column("profile", sa.Text, sa.ForeignKey(f"{S}.profiles.name", ondelete="CASCADE", onupdate="CASCADE"),
                  primary_key=True),
        sa.Column("column_name", sa.Text, primary_key=True),
        sa.Column("position", sa.Integer, nullable=False),
        sa.Column("kind", sa.Text, nullable=False),
        sa.Column("length", sa.Integer, nullable=False, comment="bits: bit length; prefix: dims; int8: dims"),
        sa.Column("lo", REALS, nullable=True),
        sa.Column("hi", REALS, nullable=True),
        sa.CheckConstraint("kind IN ('bits', 'prefix', 'int8')", name="codes_kind"),
        sa.CheckConstraint("length >= 1", name="codes_length"),
        sa.CheckConstraint(
            "(kind = 'int8') = (lo IS NOT NULL AND hi IS NOT NULL) "
            "AND (lo IS NULL OR cardinality(lo) = length AND cardinality(hi) = length)",
            name="codes_int8_ranges",
        ),
        sa.UniqueConstraint("profile", "position", name="codes_position_key"),
        schema=S,
        comment="the code columns of a profile, in stage order",
    )
    op.create_table(
        "loads",
        sa.Column("table_schema", sa.Text, primary_key=True),
        sa.Column("table_name", sa.Text, primary_key=True),
        sa.Column("source", sa.Text, primary_key=True, comment="absolute path of the input file"),
        sa.Column("source_size", sa.BigInteger, nullable=False),
        sa.Column("source_mtime_ns", sa.BigInteger, nullable=False),
        sa.Column("records_done", sa.BigInteger, nullable=False, server_default="0",
                  comment="input records consumed by committed batches"),
        sa.Column("rows_loaded", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("rows_rejected", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("reject_file", sa.Text, nullable=False),
        sa.Column("reject_bytes", sa.BigInteger, nullable=False, server_default="0",
                  comment="length of the reject file when the last batch committed"),
        sa.Column("finished", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("started_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        schema=S,
        comment="progress of shrinkvec load runs, committed with each batch (resume without duplicates)",
    )


def downgrade() -> None:
    op.drop_table("loads", schema=S)
    op.drop_table("codes", schema=S)
    op.drop_table("profiles", schema=S)
    op.drop_table("transforms", schema=S)
