-- shrinkvec 0.3.0 -> 0.4.0: codes on any geometry (issue 28).
-- After this script the extension's objects equal a fresh 0.4.0 install (tests/sql/test_lifecycle.py).
-- The index format is now version 3 (a rotation of the coded dims): an index built by 0.3.0 raises the
-- format error with its REINDEX hint until it is rebuilt.

\echo Use "ALTER EXTENSION shrinkvec UPDATE TO '0.4.0'" to load this file. \quit

DROP FUNCTION shrinkvec_index_info(regclass);
CREATE FUNCTION shrinkvec_index_info(index regclass,
	OUT distance text, OUT element text, OUT dims integer, OUT code_bits integer,
	OUT entry_bytes integer, OUT lists integer, OUT entries_per_page integer,
	OUT entries bigint, OUT data_pages bigint, OUT pages bigint, OUT size_bytes bigint,
	OUT build_rows bigint, OUT refine_bits integer, OUT refine_pages bigint,
	OUT rotation_rounds integer, OUT rotation_seed bigint,
	OUT target_recall real, OUT probes integer, OUT shortlist integer, OUT build_recall real)
	AS 'MODULE_PATHNAME', 'shrinkvec_index_info' LANGUAGE C STRICT VOLATILE PARALLEL SAFE;
COMMENT ON FUNCTION shrinkvec_index_info(regclass) IS
	'layout and size of a shrinkvec index: distance, element type, code bits, bytes per entry, lists, entries and pages, refine bits and pages, the rotation of its coded dims (rounds, 0 = none, and seed), and the scan settings chosen at build for target_recall (probes, shortlist; NULL when none were chosen) with the recall they reached on a sample of the rows';

DROP FUNCTION shrinkvec_index_centroids(regclass);
CREATE FUNCTION shrinkvec_index_centroids(index regclass, rotated boolean DEFAULT false,
	OUT list integer, OUT centroid real[])
	RETURNS SETOF record
	AS 'MODULE_PATHNAME', 'shrinkvec_index_centroids' LANGUAGE C STRICT VOLATILE PARALLEL SAFE;
COMMENT ON FUNCTION shrinkvec_index_centroids(regclass, boolean) IS
	'the centroid of every list of a shrinkvec index on a vector or halfvec column (the mean, for a flat index), over its coded dims: in the column''s coordinates, or with rotated => true as stored, in the index''s rotated coordinates';

DROP FUNCTION shrinkvec_index_entries(regclass);
CREATE FUNCTION shrinkvec_index_entries(index regclass, OUT tid tid, OUT list integer, OUT code bit,
	OUT refine bytea, OUT refine_lo real, OUT refine_step real, OUT refine_norm2 real, OUT refine_err2 real)
	RETURNS SETOF record
	AS 'MODULE_PATHNAME', 'shrinkvec_index_entries' LANGUAGE C STRICT VOLATILE PARALLEL SAFE;
COMMENT ON FUNCTION shrinkvec_index_entries(regclass) IS
	'every entry of a shrinkvec index: heap TID, list, stored code (of the rotated residual, for vector indexes), and its refine code and factors, err2 being the refine code''s squared error (NULL without refine codes)';
