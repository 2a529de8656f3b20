"""One codes trigger in the extension (issues 26 and 32): tables made before shrinkvec 0.3.0 keep their codes
with a PL/pgSQL function of their own (`<schema>.shrinkvec_codes_<hash>()`, and `shrinkvec_stale_<hash>` for a
transformed profile) that names the extension's schema as text. This revision replaces each such trigger by the
extension's `shrinkvec.codes_trigger(<arguments>)` and drops the old functions (shrinkvec.ddl.sync_triggers), and
does the same for the shadow trigger of a re-encode in progress (`shrinkvec_next_<hash>`, reencode.sync_shadow_triggers).

It also registers the profile of a table that has the extension's trigger but no catalog row: a table restored
from a one-table dump (`pg_dump -t`) into a database whose catalog is created afterwards by `shrinkvec migrate`.

Tables the migrating role may not alter (it is neither a superuser nor a member of their owner) are left as they
are and named in a warning; run `shrinkvec migrate` as a superuser to cover every table. The extension must be
0.3.0 (ALTER EXTENSION shrinkvec UPDATE). The downgrade changes nothing: the old functions are not re-created.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-07
"""

from __future__ import annotations

import psycopg
from alembic import op
from sqlalchemy import text

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    from shrinkvec.sql import catalog
    bind = op.get_bind()
    if bind.execute(text("SELECT pg_catalog.to_regprocedure('shrinkvec.codes_trigger()')")).scalar() is None:
        raise RuntimeError("the shrinkvec extension is older than 0.3.0 (no shrinkvec.codes_trigger): "
                           "run ALTER EXTENSION shrinkvec UPDATE, then shrinkvec migrate again")
    raw = bind.connection.dbapi_connection
    if not isinstance(raw, psycopg.Connection):
        raise RuntimeError("the shrinkvec catalog migrations need the psycopg 3 driver")
    catalog.sync_codes_triggers(raw)


def downgrade() -> None:
    pass  # the extension's trigger serves every catalog revision
