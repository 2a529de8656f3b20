"""transforms: center / MLP columns, versions, immutability trigger, re-encode progress.

- shrinkvec.transforms gains kind 'center', a center, the adaptor's residual MLP (hidden, w1, b1, w2,
  b2), a version per source column, the content checksum and the fit's parameters (jsonb), with
  constraints that the shapes agree.
- A trigger makes stored transforms immutable: UPDATE is rejected; DELETE is rejected while a profile
  or a pending re-encode uses the transform.
- shrinkvec.reencodes records a re-encode in progress (`shrinkvec adapt`): the profile, the transform
  its new codes use, and how many rows are done. The profile switches to the new transform, in one
  transaction, only when every row has its new codes.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

S = "shrinkvec"
REALS = postgresql.ARRAY(sa.REAL)

IMMUTABLE_FN = """
CREATE FUNCTION shrinkvec.transforms_immutable() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $fn$
DECLARE
    user_name text;
BEGIN
    IF TG_OP = 'UPDATE' THEN
        RAISE EXCEPTION 'transform "%" is immutable', OLD.name
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  HINT = 'fit a new version with: shrinkvec adapt --table ... --method ...';
    END IF;
    SELECT name INTO user_name FROM shrinkvec.profiles WHERE transform = OLD.name ORDER BY name LIMIT 1;
    IF user_name IS NULL THEN
        SELECT profile INTO user_name FROM shrinkvec.reencodes WHERE transform = OLD.name ORDER BY profile LIMIT 1;
    END IF;
    IF user_name IS NOT NULL THEN
        RAISE EXCEPTION 'transform "%" is in use by profile "%" and cannot be deleted', OLD.name, user_name
            USING ERRCODE = 'object_in_use';
    END IF;
    RETURN OLD;
END
$fn$
"""


def upgrade() -> None:
    op.drop_constraint("transforms_kind", "transforms", schema=S)
    op.create_check_constraint("transforms_kind", "transforms",
                               "kind IN ('identity', 'center', 'pca', 'adaptor')", schema=S)
    op.add_column("transforms", sa.Column("center", REALS, nullable=True,
                                          comment="subtracted from the input first; NULL = none"), schema=S)
    op.add_column("transforms", sa.Column("hidden", sa.Integer, nullable=True,
                                          comment="hidden units of the residual MLP; NULL = no MLP"), schema=S)
    for col, comment in [("w1", "hidden x dims_out, row-major"), ("b1", "hidden"),
                         ("w2", "dims_out x hidden, row-major"), ("b2", "dims_out")]:
        op.add_column("transforms", sa.Column(col, REALS, nullable=True, comment=f"MLP: {comment}"), schema=S)
    op.add_column("transforms", sa.Column("version", sa.Integer, nullable=False, server_default="1"), schema=S)
    op.add_column("transforms", sa.Column("source", sa.Text, nullable=True,
                                          comment="schema.table.column the transform was fitted on"), schema=S)
    op.add_column("transforms", sa.Column("checksum", sa.Text, nullable=True,
                                          comment="sha256 of kind, shapes and values"), schema=S)
    op.add_column("transforms", sa.Column("fit", postgresql.JSONB, nullable=False,
                                          server_default=sa.text("'{}'::jsonb"),
                                          comment="how it was fitted: method, sample, losses"), schema=S)
    op.create_check_constraint(
        "transforms_shapes", "transforms",
        "dims_in BETWEEN 1 AND 16000 AND dims_out BETWEEN 1 AND 16000"
        " AND (matrix IS NULL AND dims_out = dims_in OR cardinality(matrix) = dims_out * dims_in)"
        " AND (center IS NULL OR cardinality(center) = dims_in)"
        " AND (hidden IS NULL AND w1 IS NULL AND b1 IS NULL AND w2 IS NULL AND b2 IS NULL"
        "      OR hidden >= 1 AND cardinality(w1) = hidden * dims_out AND cardinality(b1) = hidden"
        "         AND cardinality(w2) = dims_out * hidden AND cardinality(b2) = dims_out)",
        schema=S,
    )
    op.create_unique_constraint("transforms_source_version", "transforms", ["source", "version"], schema=S)
    op.create_table(
        "reencodes",
        sa.Column("profile", sa.Text, sa.ForeignKey(f"{S}.profiles.name", ondelete="CASCADE", onupdate="CASCADE"),
                  primary_key=True),
        sa.Column("transform", sa.Text, sa.ForeignKey(f"{S}.transforms.name"), nullable=False),
        sa.Column("int8_ranges", postgresql.JSONB, nullable=True,
                  comment="{column: [lo, hi]} of the new codes' int8 ranges"),
        sa.Column("rows_done", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("started_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        schema=S,
        comment="re-encodes in progress (shrinkvec adapt): new codes are written beside the old, then switched",
    )
    op.execute(IMMUTABLE_FN)
    op.execute("COMMENT ON FUNCTION shrinkvec.transforms_immutable() IS "
               "'rejects UPDATE of a transform, and DELETE while a profile or re-encode uses it'")
    op.execute("CREATE TRIGGER transforms_immutable BEFORE UPDATE OR DELETE ON shrinkvec.transforms "
               "FOR EACH ROW EXECUTE FUNCTION shrinkvec.transforms_immutable()")
    op.execute("ALTER TABLE shrinkvec.transforms ENABLE ALWAYS TRIGGER transforms_immutable")


def downgrade() -> None:
    op.execute("DROP TRIGGER IF EXISTS transforms_immutable ON shrinkvec.transforms")
    op.execute("DROP FUNCTION IF EXISTS shrinkvec.transforms_immutable()")
    op.drop_table("reencodes", schema=S)
    op.drop_constraint("transforms_source_version", "transforms", schema=S)
    op.drop_constraint("transforms_shapes", "transforms", schema=S)
    for col in ("fit", "checksum", "source", "version", "b2", "w2", "b1", "w1", "hidden", "center"):
        op.drop_column("transforms", col, schema=S)
    op.execute("DELETE FROM shrinkvec.transforms WHERE kind = 'center'")
    op.drop_constraint("transforms_kind", "transforms", schema=S)
    op.create_check_constraint("transforms_kind", "transforms", "kind IN ('identity', 'pca', 'adaptor')", schema=S)
