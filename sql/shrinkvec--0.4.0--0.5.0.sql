-- shrinkvec 0.4.0 -> 0.5.0: an index that grows with its table (issue 34).
-- After this script the extension's objects equal a fresh 0.5.0 install (tests/sql/test_lifecycle.py).
-- The index format is now version 4 (a generation, retired pages): an index of version 3 reads as
-- generation 0 and needs no REINDEX.

\echo Use "ALTER EXTENSION shrinkvec UPDATE TO '0.5.0'" to load this file. \quit

DROP FUNCTION shrinkvec_index_info(regclass);
CREATE FUNCTION shrinkvec_index_info(index regclass,
	OUT distance text, OUT element text, OUT dims integer, OUT code_bits integer,
	OUT entry_bytes integer, OUT lists integer, OUT entries_per_page integer,
	OUT entries bigint, OUT data_pages bigint, OUT pages bigint, OUT size_bytes bigint,
	OUT build_rows bigint, OUT refine_bits integer, OUT refine_pages bigint,
	OUT rotation_rounds integer, OUT rotation_seed bigint,
	OUT target_recall real, OUT probes integer, OUT shortlist integer, OUT build_recall real,
	OUT largest_list bigint, OUT generation integer, OUT last_repartition timestamptz,
	OUT repartition_at bigint, OUT retired_pages bigint, OUT free_pages bigint,
	OUT scan_probes integer, OUT scan_shortlist integer, OUT scan_rerank integer)
	AS 'MODULE_PATHNAME', 'shrinkvec_index_info' LANGUAGE C STRICT VOLATILE PARALLEL SAFE;
COMMENT ON FUNCTION shrinkvec_index_info(regclass) IS
	'layout and size of a shrinkvec index: distance, element type, code bits, bytes per entry, lists, entries and pages, the rows at its last partitioning (build or re-partition), refine bits and pages, the rotation of its coded dims (rounds, 0 = none, and seed), the scan settings chosen for target_recall (probes, shortlist; NULL when none were chosen) with the recall they reached on a sample of the rows; the entries of its largest list, its generation (re-partitions so far), when it last re-partitioned (NULL: never), the entry count at which VACUUM re-partitions it next (NULL: never), its pages retired by re-partitions (kept for running scans) and free for reuse, and the probes, shortlist and rerank a scan in this session uses (the session''s SET, else the index''s WITH (probes, shortlist, rerank), else the build''s choice, else the defaults)';

CREATE FUNCTION shrinkvec_index_repartition(index regclass) RETURNS integer
	AS 'MODULE_PATHNAME', 'shrinkvec_index_repartition' LANGUAGE C STRICT VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION shrinkvec_index_repartition(regclass) IS
	're-partitions a shrinkvec index now (VACUUM and autovacuum do it when the index has outgrown its lists): new centroids and lists for its rows as CREATE INDEX would choose, while inserts and scans go on; for the table''s owner; returns the new number of lists';

