"""Late interaction (issue 19): a profile's distance may be 'maxsim' (its vector column is vector[], one
vector a token, scored by the extension's maxsim) and a code's kind may be 'multibit' (every token's sign
bits, binarize(vector[])).

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-03
"""

from __future__ import annotations

from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

S = "shrinkvec"


def upgrade() -> None:
    op.drop_constraint("profiles_distance", "profiles", schema=S)
    op.create_check_constraint("profiles_distance", "profiles", "distance IN ('cosine', 'l2', 'ip', 'maxsim')",
                               schema=S)
    op.drop_constraint("codes_kind", "codes", schema=S)
    op.create_check_constraint("codes_kind", "codes", "kind IN ('bits', 'prefix', 'int8', 'multibit')", schema=S)


def downgrade() -> None:
    op.execute("DELETE FROM shrinkvec.profiles WHERE distance = 'maxsim'")
    op.execute("DELETE FROM shrinkvec.codes WHERE kind = 'multibit'")
    op.drop_constraint("codes_kind", "codes", schema=S)
    op.create_check_constraint("codes_kind", "codes", "kind IN ('bits', 'prefix', 'int8')", schema=S)
    op.drop_constraint("profiles_distance", "profiles", schema=S)
    op.create_check_constraint("profiles_distance", "profiles", "distance IN ('cosine', 'l2', 'ip')", schema=S)
