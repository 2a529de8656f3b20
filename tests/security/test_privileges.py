"""Privileges: shrinkvec needs no superuser, and only a table's owner changes its catalog rows.

An admin (the test's superuser) created the extension and ran `shrinkvec migrate`. Two normal roles,
alice and bob, each own a schema. Row-level security on shrinkvec.profiles, codes and loads lets a
role see a table's rows when it may SELECT the table, and change them only when it owns the table.
(search() running as the caller under RLS on the user's table, and hostile identifiers, are tested
in test_query.py.)
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import psycopg
import pytest
from pgvector.psycopg import register_vector
from psycopg import sql

from conftest import one_row, role_dsn
from shrinkvec import catalog, demo, query
from shrinkvec.load import LoadOptions, load


@pytest.fixture
def roles(migrated_dsn: str, conn: psycopg.Connection) -> Iterator[dict[str, str]]:
    """Two LOGIN roles without superuser, CREATEDB or CREATEROLE, each owning a schema of its name."""
    suffix = uuid.uuid4().hex[:8]
    names = {"alice": f"alice_{suffix}", "bob": f"bob_{suffix}"}
    for role in names.values():
        conn.execute(sql.SQL("CREATE ROLE {} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE").format(sql.Identifier(role)))
        conn.execute(sql.SQL("CREATE SCHEMA {r} AUTHORIZATION {r}").format(r=sql.Identifier(role)))
    try:
        yield {k: v for k, v in names.items()} | {f"{k}_dsn": role_dsn(migrated_dsn, v) for k, v in names.items()}
    finally:
        for role in names.values():
            conn.execute(sql.SQL("DROP OWNED BY {r} CASCADE; DROP ROLE {r}").format(r=sql.Identifier(role)))


def test_a_normal_role_loads_queries_and_indexes_its_own_tables(roles: dict[str, str], tmp_path: Path) -> None:
    alice, dsn = roles["alice"], roles["alice_dsn"]
    data = demo.load_data()
    np.save(tmp_path / "d.npy", data.docs[:500])
    result = load(dsn, tmp_path / "d.npy", LoadOptions(table="docs", schema=alice, profile="bits,prefix:64,int8",
                                                       reject_file=tmp_path / "r.jsonl"))
    assert result.loaded == 500
    with psycopg.connect(dsn, autocommit=True) as c:
        register_vector(c)
        assert c.execute("SELECT rolsuper FROM pg_roles WHERE rolname = current_user").fetchone() == (False,)
        p = catalog.find_profile(c, "docs", alice)
        assert p is not None
        q = data.docs[7]
        for stage in ("bits", "prefix:64", "int8"):
            ids, _ = query.search(c, p, query.stages_for(p, [stage], [100]), q, k=5)[0]
            assert ids[0] == 7, stage
        rel = sql.Identifier(alice, "docs").as_string(c)
        assert c.execute("SELECT id FROM shrinkvec.search(%s::regclass, %s, 5, 100)", (rel, q)).fetchone() == (7,)
        # the index: build, query, inspect
        c.execute(sql.SQL("CREATE INDEX docs_v ON {} USING shrinkvec (embedding vector_cosine_ops)").format(
            sql.Identifier(alice, "docs")))
        c.execute("SET enable_seqscan = off")
        plan = "\n".join(r[0] for r in c.execute(sql.SQL("EXPLAIN SELECT id FROM {} ORDER BY embedding <=> %s LIMIT 5")
                                                 .format(sql.Identifier(alice, "docs")), (q,)))
        assert "docs_v" in plan
        top = c.execute(sql.SQL("SELECT id FROM {} ORDER BY embedding <=> %s LIMIT 5").format(
            sql.Identifier(alice, "docs")), (q,)).fetchone()
        assert top == (7,)
        check = c.execute("SELECT live_rows, ok FROM shrinkvec_index_check(%s::regclass)",
                          (sql.Identifier(alice, "docs_v").as_string(c),)).fetchone()
        assert check == (500, True)
        # and the owner changes its own profile
        assert c.execute("UPDATE shrinkvec.profiles SET shortlist = 300 WHERE name = %s", (p.name,)).rowcount == 1


def test_only_the_owner_changes_a_profile(roles: dict[str, str], tmp_path: Path, conn: psycopg.Connection) -> None:
    alice, bob = roles["alice"], roles["bob"]
    data = demo.load_data()
    np.save(tmp_path / "d.npy", data.docs[:100])
    load(roles["alice_dsn"], tmp_path / "d.npy", LoadOptions(table="docs", schema=alice, profile="bits,int8",
                                                             reject_file=tmp_path / "r.jsonl"))
    name = one_row(conn.execute("SELECT name FROM shrinkvec.profiles WHERE table_schema = %s", (alice,)))[0]
    before = conn.execute("SELECT p::text FROM shrinkvec.profiles p WHERE name = %s", (name,)).fetchone()
    codes_before = conn.execute("SELECT count(*) FROM shrinkvec.codes WHERE profile = %s", (name,)).fetchone()

    with psycopg.connect(roles["bob_dsn"], autocommit=True) as b:
        register_vector(b)
        # bob may not read alice's table, so he does not even see its catalog rows
        assert b.execute("SELECT count(*) FROM shrinkvec.profiles WHERE name = %s", (name,)).fetchone() == (0,)
        assert b.execute("SELECT count(*) FROM shrinkvec.codes WHERE profile = %s", (name,)).fetchone() == (0,)
        # once alice grants SELECT, he sees and searches them, but still cannot change them
        with psycopg.connect(roles["alice_dsn"], autocommit=True) as a:
            a.execute(sql.SQL("GRANT USAGE ON SCHEMA {s} TO {b}; GRANT SELECT ON {t} TO {b}").format(
                s=sql.Identifier(alice), t=sql.Identifier(alice, "docs"), b=sql.Identifier(bob)))
        assert b.execute("SELECT count(*) FROM shrinkvec.profiles WHERE name = %s", (name,)).fetchone() == (1,)
        rel = sql.Identifier(alice, "docs").as_string(b)
        assert b.execute("SELECT id FROM shrinkvec.search(%s::regclass, %s, 3, 100)",
                         (rel, data.docs[5])).fetchone() == (5,)
        assert b.execute("UPDATE shrinkvec.profiles SET shortlist = 999, center = NULL WHERE name = %s",
                         (name,)).rowcount == 0
        assert b.execute("DELETE FROM shrinkvec.profiles WHERE name = %s", (name,)).rowcount == 0
        assert b.execute("UPDATE shrinkvec.codes SET lo = NULL, hi = NULL WHERE profile = %s", (name,)).rowcount == 0
        assert b.execute("DELETE FROM shrinkvec.codes WHERE profile = %s", (name,)).rowcount == 0
        with pytest.raises(psycopg.errors.InsufficientPrivilege, match="row-level security"):
            b.execute("INSERT INTO shrinkvec.codes (profile, column_name, position, kind, length) "
                      "VALUES (%s, 'evil', 9, 'bits', 8)", (name,))
        with pytest.raises(psycopg.errors.InsufficientPrivilege, match="row-level security"):
            b.execute("INSERT INTO shrinkvec.profiles (name, table_schema, table_name, vector_column, dims) "
                      "VALUES ('hijack', %s, 'docs', 'embedding', 384)", (alice,))
        # re-pointing his own profile at alice's table is refused as well
        b.execute(sql.SQL("CREATE TABLE {} (id bigint, embedding vector(384))").format(sql.Identifier(bob, "mine")))
        b.execute("INSERT INTO shrinkvec.profiles (name, table_schema, table_name, vector_column, dims) "
                  "VALUES ('bobs', %s, 'mine', 'embedding', 384)", (bob,))
        with pytest.raises(psycopg.errors.ObjectNotInPrerequisiteState, match="cannot be moved to another table"):
            b.execute("UPDATE shrinkvec.profiles SET table_schema = %s, table_name = 'docs' WHERE table_name = 'mine'",
                      (alice,))
        with pytest.raises(psycopg.errors.ObjectNotInPrerequisiteState, match="relation of a shrinkvec.profiles row"):
            b.execute("UPDATE shrinkvec.profiles SET relation = %s::regclass WHERE table_name = 'mine'",
                      (sql.Identifier(alice, "docs").as_string(b),))
        # and loading into alice's table fails on the table's own privileges
        np.save(tmp_path / "more.npy", data.docs[100:110])
        with pytest.raises(psycopg.errors.InsufficientPrivilege, match="row-level security|permission denied"):
            load(roles["bob_dsn"], tmp_path / "more.npy", LoadOptions(table="docs", schema=alice,
                                                                   reject_file=tmp_path / "r2.jsonl"))
    after = conn.execute("SELECT p::text FROM shrinkvec.profiles p WHERE name = %s", (name,)).fetchone()
    assert after == before
    assert conn.execute("SELECT count(*) FROM shrinkvec.codes WHERE profile = %s", (name,)).fetchone() == codes_before
