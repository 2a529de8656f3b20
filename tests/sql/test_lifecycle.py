"""Lifecycle: the catalog follows its tables (DROP, RENAME, SET SCHEMA), dump/restore works, introspection
is exact on HOT chains and clear on partitioned indexes, and the extension upgrades from 0.1.0, 0.2.0 and 0.3.0.

Each of these broke before (issue 17): a dropped table's stale profile blocked a reload, a renamed table
lost its profile, a restored table lost its code trigger (pg_dump printed `IS DISTINCT FROM` on vectors,
which has no schema, and restores run with an empty search_path), `shrinkvec_index_check` called a
HOT-updated row both missing and dangling.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import psycopg
import pytest
from pgvector.psycopg import register_vector
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

import shrinkvec
from conftest import TESTS, one_row, pg_tool
from shrinkvec import catalog, codes, demo, query
from shrinkvec.load import LoadOptions, load


def load_npy(dsn: str, tmp_path: Path, table: str, x: np.ndarray, profile: str | None = "bits,prefix:32,int8",
             ids: np.ndarray | None = None, schema: str = "public") -> int:
    path = tmp_path / f"{table}-{uuid.uuid4().hex[:6]}.npy"
    np.save(path, x)
    ids_path = None
    if ids is not None:
        ids_path = path.with_suffix(".ids.npy")
        np.save(ids_path, ids)
    return load(dsn, path, LoadOptions(table=table, schema=schema, profile=profile, ids_path=ids_path,
                                       reject_file=tmp_path / f"{table}.rejects.jsonl")).loaded


def top_ids(conn: psycopg.Connection, table: str, q: np.ndarray, schema: str = "public") -> list[int | str]:
    p = catalog.find_profile(conn, table, schema)
    assert p is not None, f"no profile for {schema}.{table}"
    ids, _ = query.search(conn, p, query.stages_for(p, ["bits"], [50]), q, k=5)[0]
    return ids


def test_drop_table_then_load_again(migrated_dsn: str, conn: psycopg.Connection, tmp_path: Path) -> None:
    x = demo.load_data().docs[:200]
    np.save(tmp_path / "d.npy", x)
    opts = LoadOptions(table="again", profile="bits", reject_file=tmp_path / "r.jsonl")
    assert load(migrated_dsn, tmp_path / "d.npy", opts).loaded == 200
    conn.execute("DROP TABLE again")
    assert conn.execute("SELECT count(*) FROM shrinkvec.profiles WHERE table_name = 'again'").fetchone() == (0,)
    assert conn.execute("SELECT count(*) FROM shrinkvec.loads WHERE table_name = 'again'").fetchone() == (0,)
    # the same file again: a new table, loaded in full (not "already loaded")
    assert load(migrated_dsn, tmp_path / "d.npy", opts).loaded == 200
    assert conn.execute("SELECT count(*) FROM again").fetchone() == (200,)
    # dropping the vector column drops the profile (and its codes) too
    conn.execute("ALTER TABLE again DROP COLUMN embedding CASCADE")  # the code trigger depends on it
    assert conn.execute("SELECT count(*) FROM shrinkvec.profiles WHERE table_name = 'again'").fetchone() == (0,)
    assert conn.execute("SELECT count(*) FROM shrinkvec.codes WHERE profile LIKE 'public.again.%'").fetchone() == (0,)


def test_rename_and_set_schema_keep_the_profile(migrated_dsn: str, conn: psycopg.Connection, tmp_path: Path) -> None:
    data = demo.load_data()
    assert load_npy(migrated_dsn, tmp_path, "before", data.docs[:300]) == 300
    q = data.docs[17]
    assert top_ids(conn, "before", q)[0] == 17
    conn.execute("ALTER TABLE before RENAME TO after")
    assert catalog.find_profile(conn, "before") is None
    p = catalog.find_profile(conn, "after")
    assert p is not None and p.name == "public.after.embedding" and [c.kind for c in p.codes] == ["bits", "prefix",
                                                                                                    "int8"]
    assert top_ids(conn, "after", q)[0] == 17
    assert conn.execute("SELECT id FROM shrinkvec.search('after', %s, 1, 50)", (q,)).fetchone() == (17,)
    conn.execute("CREATE SCHEMA elsewhere")
    conn.execute("ALTER TABLE after SET SCHEMA elsewhere")
    assert top_ids(conn, "after", q, "elsewhere")[0] == 17
    # and loading more rows into it resumes its profile: codes from the same definition
    ids = np.arange(1000, 1050)
    assert load_npy(migrated_dsn, tmp_path, "after", data.docs[300:350], profile=None, ids=ids,
                    schema="elsewhere") == 50
    assert top_ids(conn, "after", data.docs[320], "elsewhere")[0] == 1020
    conn.execute("ALTER SCHEMA elsewhere RENAME TO moved")
    assert catalog.find_profile(conn, "after", "moved") is not None


@pytest.fixture
def other_db(dsn: str, conn: psycopg.Connection) -> Iterator[str]:
    name = f"restore_{uuid.uuid4().hex[:8]}"
    conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    params = conninfo_to_dict(dsn)
    params["dbname"] = name
    try:
        yield make_conninfo(**params)  # type: ignore[arg-type]  # conninfo values are str | int
    finally:
        conn.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(name)))


@pytest.mark.parametrize("fmt", ["custom", "plain"])
def test_dump_and_restore(migrated_dsn: str, conn: psycopg.Connection, tmp_path: Path, other_db: str,
                          fmt: str) -> None:
    data = demo.load_data()
    assert load_npy(migrated_dsn, tmp_path, "kept", data.docs[:400]) == 400
    conn.execute("CREATE INDEX kept_v ON kept USING shrinkvec (embedding vector_cosine_ops)")
    queries = data.docs[[3, 50, 222]]
    before = [top_ids(conn, "kept", q) for q in queries]
    dump = tmp_path / f"db.{fmt}"
    subprocess.run([pg_tool("pg_dump"), "--no-owner", f"--format={fmt}", "--file", str(dump), migrated_dsn],
                   check=True)
    if fmt == "custom":
        cmd = [pg_tool("pg_restore"), "--no-owner", "--exit-on-error", "--dbname", other_db, str(dump)]
    else:
        cmd = [pg_tool("psql"), "--no-psqlrc", "-v", "ON_ERROR_STOP=1", "-q", "-f", str(dump), other_db]
    run = subprocess.run(cmd, capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    assert "ERROR" not in run.stderr, run.stderr
    with psycopg.connect(other_db, autocommit=True) as r:
        register_vector(r)
        # the code trigger came back (its WHEN clause restored under an empty search_path)
        assert r.execute("SELECT count(*) FROM pg_trigger WHERE tgrelid = 'kept'::regclass AND NOT tgisinternal"
                         ).fetchone() == (1,)
        assert [top_ids(r, "kept", q) for q in queries] == before
        assert r.execute("SELECT id FROM shrinkvec.search('kept', %s, 1, 50)", (queries[0],)).fetchone() == (3,)
        # new rows get their codes, as numpy computes them
        r.execute("INSERT INTO kept (id, embedding) VALUES (9000, %s)", (data.docs[500],))
        p = catalog.find_profile(r, "kept")
        assert p is not None
        want = p.encode(data.docs[500][None, :])
        bits, prefix = one_row(r.execute("SELECT bits::text, prefix32 FROM kept WHERE id = 9000"))
        assert bits == codes.bits_to_str(want["bits"][0], 384)
        np.testing.assert_array_equal(prefix.to_numpy(), want["prefix32"][0])
        # the catalog still ties rows to the restored table
        assert r.execute("SELECT relation::text FROM shrinkvec.profiles").fetchall() == [("kept",)]
        r.execute("SET enable_seqscan = off")
        assert r.execute("SELECT id FROM kept ORDER BY embedding <=> %s LIMIT 1", (data.docs[500],)
                         ).fetchone() == (9000,)
        assert r.execute("SELECT ok FROM shrinkvec_index_check('kept_v')").fetchone() == (True,)


def test_index_check_follows_hot_chains(conn: psycopg.Connection) -> None:
    conn.execute("CREATE TABLE hot (id int PRIMARY KEY, note text, b bit(16)) WITH (fillfactor = 50)")
    conn.execute("INSERT INTO hot SELECT i, 'x', (i * 7919 % 65536)::bit(16) FROM generate_series(1, 200) i")
    conn.execute("CREATE INDEX hot_b ON hot USING shrinkvec (b bit_hamming_ops)")
    conn.execute("UPDATE hot SET note = 'y' WHERE id <= 20")  # a column no index covers: heap-only tuples
    hot = conn.execute("SELECT n_tup_hot_upd FROM pg_stat_xact_user_tables WHERE relname = 'hot'").fetchone()
    assert hot is not None and hot[0] > 0
    assert conn.execute("SELECT live_rows, index_entries, missing, dangling, ok FROM shrinkvec_index_check('hot_b')"
                        ).fetchone() == (200, 200, 0, 0, True)
    # a non-HOT update: a new entry, and the old one's tuple is dead until VACUUM; the dead entry is not
    # dangling (that is for an entry with no tuple behind it, or a visible one no row reached: issue 33)
    conn.execute("UPDATE hot SET b = ~b WHERE id = 1")
    assert conn.execute("SELECT index_entries, missing, dangling, wrong_codes, ok FROM shrinkvec_index_check('hot_b')"
                        ).fetchone() == (201, 0, 0, 0, True)
    conn.execute("VACUUM (INDEX_CLEANUP ON) hot")
    assert conn.execute("SELECT ok FROM shrinkvec_index_check('hot_b')").fetchone() == (True,)


def test_introspection_of_a_partitioned_index(conn: psycopg.Connection) -> None:
    conn.execute("CREATE TABLE parts (id int, b bit(8)) PARTITION BY RANGE (id)")
    conn.execute("CREATE TABLE parts_1 PARTITION OF parts FOR VALUES FROM (0) TO (100)")
    conn.execute("INSERT INTO parts SELECT i, (i % 256)::bit(8) FROM generate_series(0, 99) i")
    conn.execute("CREATE INDEX parts_b ON parts USING shrinkvec (b bit_hamming_ops)")
    for fn in ("shrinkvec_index_info", "shrinkvec_index_entries", "shrinkvec_index_check", "shrinkvec_index_repartition"):
        with pytest.raises(psycopg.errors.FeatureNotSupported, match=f"{fn} cannot work on partitioned index"):
            conn.execute(sql.SQL("SELECT * FROM {}('parts_b')").format(sql.Identifier(fn)))
    part = one_row(conn.execute("SELECT indexrelid::regclass::text FROM pg_index WHERE indrelid = 'parts_1'::regclass"
                        ))[0]
    assert conn.execute("SELECT live_rows, ok FROM shrinkvec_index_check(%s::regclass)", (part,)).fetchone() == (100, True)


def extension_surface(c: psycopg.Connection) -> list[tuple[str, ...]]:
    """Everything the extension defines, as text: functions (full definitions and comments), operators,
    operator classes, types, casts, event triggers."""
    return [tuple(str(v) for v in r) for r in c.execute(
        """SELECT pg_describe_object(d.classid, d.objid, d.objsubid),
                  CASE WHEN d.classid = 'pg_proc'::regclass AND (SELECT prokind FROM pg_proc WHERE oid = d.objid) <> 'a'
                       THEN pg_get_functiondef(d.objid) ELSE '' END,
                  coalesce(obj_description(d.objid, (SELECT relname FROM pg_class WHERE oid = d.classid)), '')
           FROM pg_depend d JOIN pg_extension e ON e.oid = d.refobjid
           WHERE e.extname = 'shrinkvec' AND d.deptype = 'e' ORDER BY 1""").fetchall()]


OLD_VERSIONS = TESTS / "old_versions"


@pytest.fixture
def old_install_scripts(conn: psycopg.Connection) -> Iterator[Path]:
    """The install scripts of released versions, put beside the current one for the test only: they are not
    shipped (no role may CREATE EXTENSION an old, weaker version), but an old install must still update."""
    sharedir = Path(str(one_row(conn.execute("SELECT setting FROM pg_config WHERE name = 'SHAREDIR'"))[0]))
    ext = sharedir / "extension"
    if not os.access(ext, os.W_OK):
        pytest.skip(f"{ext} is not writable: cannot install the old versions' scripts")
    placed = []
    try:
        for script in sorted(OLD_VERSIONS.glob("shrinkvec--*.sql")):
            assert not (ext / script.name).exists(), f"{script.name} is installed: make install should remove it"
            shutil.copy(script, ext / script.name)
            placed.append(ext / script.name)
        yield ext
    finally:
        for path in placed:
            path.unlink(missing_ok=True)


@pytest.mark.parametrize("version", ["0.1.0", "0.2.0", "0.3.0", "0.4.0"])
def test_an_upgrade_gives_the_same_extension(dsn: str, conn: psycopg.Connection, other_db: str,
                                             old_install_scripts: Path, version: str) -> None:
    with psycopg.connect(other_db, autocommit=True) as old:
        old.execute(sql.SQL("CREATE EXTENSION shrinkvec VERSION {} CASCADE").format(sql.Literal(version)))
        assert old.execute("SELECT extversion FROM pg_extension WHERE extname = 'shrinkvec'").fetchone() == (version,)
        old.execute("ALTER EXTENSION shrinkvec UPDATE")
        version_now = old.execute("SELECT extversion FROM pg_extension WHERE extname = 'shrinkvec'").fetchone()
        assert version_now == (shrinkvec.__version__,)
        upgraded = extension_surface(old)
        # and the upgraded functions work: the C index check, the event triggers
        old.execute("CREATE TABLE t (id int, b bit(8))")
        old.execute("INSERT INTO t SELECT i, (i % 256)::bit(8) FROM generate_series(1, 30) i")
        old.execute("CREATE INDEX t_b ON t USING shrinkvec (b)")
        assert old.execute("SELECT live_rows, ok FROM shrinkvec_index_check('t_b')").fetchone() == (30, True)
    assert conn.execute("SELECT extversion FROM pg_extension WHERE extname = 'shrinkvec'").fetchone() == (shrinkvec.__version__,)
    fresh = extension_surface(conn)
    assert len(upgraded) > 60
    assert [r for r in upgraded if r not in fresh] == [] and [r for r in fresh if r not in upgraded] == []
