-- shrinkvec 0.4.0: compact codes beside pgvector columns.
-- Every function here equals the numpy reference in pytools/shrinkvec/codes.py.

\echo Use "CREATE EXTENSION shrinkvec CASCADE" to load this file. \quit

-- ---------------------------------------------------------------------------
-- Kernels
-- ---------------------------------------------------------------------------

CREATE FUNCTION shrinkvec_kernels() RETURNS text
	AS 'MODULE_PATHNAME' LANGUAGE C STABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION shrinkvec_kernels() IS
	'SIMD level of the kernels in use in this backend: avx512, avx2 or scalar (capped by the shrinkvec.kernels setting)';

-- ---------------------------------------------------------------------------
-- Sign-bit codes
-- ---------------------------------------------------------------------------

CREATE FUNCTION binarize(@extschema:vector@.vector) RETURNS bit
	AS 'MODULE_PATHNAME', 'binarize_vector' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION binarize(@extschema:vector@.vector, integer) RETURNS bit
	AS 'MODULE_PATHNAME', 'binarize_vector' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION binarize(@extschema:vector@.vector, integer, real[]) RETURNS bit
	AS 'MODULE_PATHNAME', 'binarize_vector' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION binarize(@extschema:vector@.halfvec) RETURNS bit
	AS 'MODULE_PATHNAME', 'binarize_halfvec' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION binarize(@extschema:vector@.halfvec, integer) RETURNS bit
	AS 'MODULE_PATHNAME', 'binarize_halfvec' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION binarize(@extschema:vector@.halfvec, integer, real[]) RETURNS bit
	AS 'MODULE_PATHNAME', 'binarize_halfvec' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION binarize(real[]) RETURNS bit
	AS 'MODULE_PATHNAME', 'binarize_array' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION binarize(real[], integer) RETURNS bit
	AS 'MODULE_PATHNAME', 'binarize_array' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION binarize(real[], integer, real[]) RETURNS bit
	AS 'MODULE_PATHNAME', 'binarize_array' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;

COMMENT ON FUNCTION binarize(@extschema:vector@.vector) IS
	'sign bits of the vector, MSB-first (bit i is 1 when v[i] > 0); equals binary_quantize(v)';
COMMENT ON FUNCTION binarize(@extschema:vector@.vector, integer) IS
	'sign bits of the first dims dimensions (a Matryoshka prefix code)';
COMMENT ON FUNCTION binarize(@extschema:vector@.vector, integer, real[]) IS
	'sign bits of (v - center) over the first dims dimensions; center has the vector''s or dims elements';
COMMENT ON FUNCTION binarize(@extschema:vector@.halfvec) IS
	'sign bits of the halfvec, MSB-first (bit i is 1 when v[i] > 0)';
COMMENT ON FUNCTION binarize(@extschema:vector@.halfvec, integer) IS
	'sign bits of the first dims dimensions of the halfvec';
COMMENT ON FUNCTION binarize(@extschema:vector@.halfvec, integer, real[]) IS
	'sign bits of (v - center) over the first dims dimensions of the halfvec';
COMMENT ON FUNCTION binarize(real[]) IS
	'sign bits of a real[] (no NULL, NaN or infinite elements)';
COMMENT ON FUNCTION binarize(real[], integer) IS
	'sign bits of the first dims elements of a real[]';
COMMENT ON FUNCTION binarize(real[], integer, real[]) IS
	'sign bits of (v - center) over the first dims elements of a real[]';

-- ---------------------------------------------------------------------------
-- Hamming distance (prefix-aware) and the asymmetric bit score
-- ---------------------------------------------------------------------------

CREATE FUNCTION hamming(bit, bit) RETURNS integer
	AS 'MODULE_PATHNAME', 'hamming' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION hamming(bit, bit, integer) RETURNS integer
	AS 'MODULE_PATHNAME', 'hamming_n' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION hamming(bit, bit) IS
	'Hamming distance over the common prefix: a long code can be compared with a shorter (prefix) query';
COMMENT ON FUNCTION hamming(bit, bit, integer) IS
	'Hamming distance over the first n bits; both codes must have at least n bits';

CREATE OPERATOR <^> (
	LEFTARG = bit, RIGHTARG = bit, FUNCTION = hamming,
	COMMUTATOR = '<^>'
);
COMMENT ON OPERATOR <^> (bit, bit) IS
	'prefix Hamming distance (for ORDER BY code <^> query LIMIT k); unlike <~>, lengths may differ';

CREATE FUNCTION bit_ip(bit, @extschema:vector@.vector) RETURNS double precision
	AS 'MODULE_PATHNAME', 'bit_ip' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION bit_ip(bit, @extschema:vector@.vector) IS
	'asymmetric distance -(sum of q[i] * (2 * bit_i - 1)) over the code''s length: float query, bit document';

CREATE OPERATOR <^#> (
	LEFTARG = bit, RIGHTARG = @extschema:vector@.vector, FUNCTION = bit_ip
);
COMMENT ON OPERATOR <^#> (bit, @extschema:vector@.vector) IS
	'asymmetric bit distance of a code to a float query (for ORDER BY code <^#> query LIMIT k)';

-- ---------------------------------------------------------------------------
-- Matryoshka prefix cosine distance
-- ---------------------------------------------------------------------------

CREATE FUNCTION prefix_cosine_distance(@extschema:vector@.vector, @extschema:vector@.vector) RETURNS double precision
	AS 'MODULE_PATHNAME', 'prefix_cosine_distance' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION prefix_cosine_distance(@extschema:vector@.vector, @extschema:vector@.vector, integer) RETURNS double precision
	AS 'MODULE_PATHNAME', 'prefix_cosine_distance' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION prefix_cosine_distance(@extschema:vector@.halfvec, @extschema:vector@.halfvec) RETURNS double precision
	AS 'MODULE_PATHNAME', 'halfvec_prefix_cosine_distance' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION prefix_cosine_distance(@extschema:vector@.halfvec, @extschema:vector@.halfvec, integer) RETURNS double precision
	AS 'MODULE_PATHNAME', 'halfvec_prefix_cosine_distance' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION prefix_cosine_distance(@extschema:vector@.vector, @extschema:vector@.vector) IS
	'cosine distance over the first min(dim a, dim b) dimensions, without building subvectors';
COMMENT ON FUNCTION prefix_cosine_distance(@extschema:vector@.vector, @extschema:vector@.vector, integer) IS
	'cosine distance over the first dims dimensions, without building subvectors';
COMMENT ON FUNCTION prefix_cosine_distance(@extschema:vector@.halfvec, @extschema:vector@.halfvec) IS
	'cosine distance over the first min(dim a, dim b) dimensions of two halfvecs';
COMMENT ON FUNCTION prefix_cosine_distance(@extschema:vector@.halfvec, @extschema:vector@.halfvec, integer) IS
	'cosine distance over the first dims dimensions of two halfvecs';

CREATE OPERATOR <^=> (
	LEFTARG = @extschema:vector@.vector, RIGHTARG = @extschema:vector@.vector, FUNCTION = prefix_cosine_distance,
	COMMUTATOR = '<^=>'
);
CREATE OPERATOR <^=> (
	LEFTARG = @extschema:vector@.halfvec, RIGHTARG = @extschema:vector@.halfvec, FUNCTION = prefix_cosine_distance,
	COMMUTATOR = '<^=>'
);
COMMENT ON OPERATOR <^=> (@extschema:vector@.vector, @extschema:vector@.vector) IS
	'prefix cosine distance: the shorter operand (the query) gives the prefix length';
COMMENT ON OPERATOR <^=> (@extschema:vector@.halfvec, @extschema:vector@.halfvec) IS
	'prefix cosine distance: the shorter operand (the query) gives the prefix length';

-- ---------------------------------------------------------------------------
-- int8vec: calibrated int8 codes
-- ---------------------------------------------------------------------------

CREATE TYPE int8vec;

CREATE FUNCTION int8vec_in(cstring, oid, integer) RETURNS int8vec
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION int8vec_out(int8vec) RETURNS cstring
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION int8vec_typmod_in(cstring[]) RETURNS integer
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION int8vec_recv(internal, oid, integer) RETURNS int8vec
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION int8vec_send(int8vec) RETURNS bytea
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;

CREATE TYPE int8vec (
	INPUT = int8vec_in,
	OUTPUT = int8vec_out,
	TYPMOD_IN = int8vec_typmod_in,
	RECEIVE = int8vec_recv,
	SEND = int8vec_send,
	STORAGE = main,
	ALIGNMENT = int4
);
COMMENT ON TYPE int8vec IS
	'int8 code: one signed byte per dimension (4 bytes of header + dim bytes), text form [1,-2,127]';

COMMENT ON FUNCTION int8vec_in(cstring, oid, integer) IS 'text input of int8vec';
COMMENT ON FUNCTION int8vec_out(int8vec) IS 'text output of int8vec';
COMMENT ON FUNCTION int8vec_typmod_in(cstring[]) IS 'type modifier input of int8vec (dimensions)';
COMMENT ON FUNCTION int8vec_recv(internal, oid, integer) IS 'binary input of int8vec';
COMMENT ON FUNCTION int8vec_send(int8vec) IS 'binary output of int8vec';

CREATE FUNCTION int8vec(int8vec, integer, boolean) RETURNS int8vec
	AS 'MODULE_PATHNAME', 'int8vec_cast' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION int8vec(int8vec, integer, boolean) IS 'checks an int8vec against a dimension type modifier';
CREATE CAST (int8vec AS int8vec) WITH FUNCTION int8vec(int8vec, integer, boolean) AS IMPLICIT;

CREATE FUNCTION vector_dims(int8vec) RETURNS integer
	AS 'MODULE_PATHNAME', 'int8vec_dims' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION vector_dims(int8vec) IS 'number of dimensions of an int8vec';

CREATE FUNCTION quantize_int8(@extschema:vector@.vector, real[], real[]) RETURNS int8vec
	AS 'MODULE_PATHNAME', 'quantize_int8_vector' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION quantize_int8(@extschema:vector@.halfvec, real[], real[]) RETURNS int8vec
	AS 'MODULE_PATHNAME', 'quantize_int8_halfvec' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION quantize_int8(real[], real[], real[]) RETURNS int8vec
	AS 'MODULE_PATHNAME', 'quantize_int8_array' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION quantize_int8(@extschema:vector@.vector, real[], real[]) IS
	'int8 code with per-dimension ranges lo, hi: rint(clip((v - lo) / ((hi - lo) / 255), 0, 255)) - 128; clipped, never wrapped';
COMMENT ON FUNCTION quantize_int8(@extschema:vector@.halfvec, real[], real[]) IS
	'int8 code of a halfvec with per-dimension ranges lo, hi (clipped)';
COMMENT ON FUNCTION quantize_int8(real[], real[], real[]) IS
	'int8 code of a real[] with per-dimension ranges lo, hi (clipped)';

CREATE FUNCTION dequantize_int8(int8vec, real[], real[]) RETURNS @extschema:vector@.vector
	AS 'MODULE_PATHNAME', 'dequantize_int8' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION dequantize_int8(int8vec, real[], real[]) IS
	'vector reconstructed from an int8 code: lo + (q + 128) * (hi - lo) / 255';

CREATE FUNCTION int8_ip_distance(int8vec, @extschema:vector@.vector, real[], real[]) RETURNS double precision
	AS 'MODULE_PATHNAME', 'int8_ip_distance' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION int8_cosine_distance(int8vec, @extschema:vector@.vector, real[], real[]) RETURNS double precision
	AS 'MODULE_PATHNAME', 'int8_cosine_distance' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION int8_ip_distance(int8vec, @extschema:vector@.vector, real[], real[]) IS
	'negative inner product of a float query and the dequantized code (as pgvector''s <#>)';
COMMENT ON FUNCTION int8_cosine_distance(int8vec, @extschema:vector@.vector, real[], real[]) IS
	'cosine distance of a float query and the dequantized code (NaN for a zero norm, as pgvector)';

CREATE TYPE int8vec_ranges AS (lo real[], hi real[]);
COMMENT ON TYPE int8vec_ranges IS 'per-dimension calibration ranges of an int8 code';

CREATE FUNCTION int8_ranges_accum(internal, @extschema:vector@.vector) RETURNS internal
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE PARALLEL SAFE;
CREATE FUNCTION int8_ranges_coverage_accum(internal, @extschema:vector@.vector, double precision) RETURNS internal
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE PARALLEL SAFE;
CREATE FUNCTION int8_ranges_final(internal) RETURNS int8vec_ranges
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE PARALLEL SAFE;
COMMENT ON FUNCTION int8_ranges_accum(internal, @extschema:vector@.vector) IS 'transition function of int8_ranges(vector)';
COMMENT ON FUNCTION int8_ranges_coverage_accum(internal, @extschema:vector@.vector, double precision) IS
	'transition function of int8_ranges(vector, coverage)';
COMMENT ON FUNCTION int8_ranges_final(internal) IS 'final function of int8_ranges';

CREATE AGGREGATE int8_ranges(@extschema:vector@.vector) (
	SFUNC = int8_ranges_accum, STYPE = internal, FINALFUNC = int8_ranges_final,
	PARALLEL = SAFE
);
CREATE AGGREGATE int8_ranges(@extschema:vector@.vector, double precision) (
	SFUNC = int8_ranges_coverage_accum, STYPE = internal, FINALFUNC = int8_ranges_final,
	PARALLEL = SAFE
);
COMMENT ON AGGREGATE int8_ranges(@extschema:vector@.vector) IS
	'per-dimension (lo, hi) = (min, max) of a vector column, for quantize_int8';
COMMENT ON AGGREGATE int8_ranges(@extschema:vector@.vector, double precision) IS
	'per-dimension (lo, hi) covering the central fraction of values: order statistics ceil(n*p)-1 at p = (1-coverage)/2 and 1-(1-coverage)/2 (memory bounded by maintenance_work_mem)';

-- ---------------------------------------------------------------------------
-- The shrinkvec index access method
-- ---------------------------------------------------------------------------

CREATE FUNCTION shrinkvec_handler(internal) RETURNS index_am_handler
	AS 'MODULE_PATHNAME', 'shrinkvec_handler' LANGUAGE C;
COMMENT ON FUNCTION shrinkvec_handler(internal) IS
	'handler of the shrinkvec index access method';

CREATE ACCESS METHOD shrinkvec TYPE INDEX HANDLER shrinkvec_handler;
COMMENT ON ACCESS METHOD shrinkvec IS
	'packed compact codes scanned by SIMD kernels: exact Hamming order on bit columns, shortlist and exact rerank on vector columns';

CREATE FUNCTION shrinkvec_hamming_kind(internal) RETURNS integer
	AS 'MODULE_PATHNAME', 'shrinkvec_hamming_kind' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION shrinkvec_l2_kind(internal) RETURNS integer
	AS 'MODULE_PATHNAME', 'shrinkvec_l2_kind' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION shrinkvec_ip_kind(internal) RETURNS integer
	AS 'MODULE_PATHNAME', 'shrinkvec_ip_kind' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION shrinkvec_cosine_kind(internal) RETURNS integer
	AS 'MODULE_PATHNAME', 'shrinkvec_cosine_kind' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION shrinkvec_hamming_kind(internal) IS 'support function of bit_hamming_ops: the distance kind';
COMMENT ON FUNCTION shrinkvec_l2_kind(internal) IS 'support function of the shrinkvec L2 opclasses: the distance kind';
COMMENT ON FUNCTION shrinkvec_ip_kind(internal) IS 'support function of the shrinkvec inner-product opclasses: the distance kind';
COMMENT ON FUNCTION shrinkvec_cosine_kind(internal) IS 'support function of the shrinkvec cosine opclasses: the distance kind';
CREATE FUNCTION shrinkvec_bit_support(internal) RETURNS internal
	AS 'MODULE_PATHNAME', 'shrinkvec_bit_support' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION shrinkvec_vector_support(internal) RETURNS internal
	AS 'MODULE_PATHNAME', 'shrinkvec_vector_support' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION shrinkvec_halfvec_support(internal) RETURNS internal
	AS 'MODULE_PATHNAME', 'shrinkvec_halfvec_support' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION shrinkvec_bit_support(internal) IS 'support function 2 of bit_hamming_ops: the indexed type (bit)';
COMMENT ON FUNCTION shrinkvec_vector_support(internal) IS 'support function 2 of the vector opclasses: the indexed type (pgvector''s vector)';
COMMENT ON FUNCTION shrinkvec_halfvec_support(internal) IS 'support function 2 of the halfvec opclasses: the indexed type (pgvector''s halfvec)';

CREATE OPERATOR CLASS bit_hamming_ops DEFAULT FOR TYPE bit USING shrinkvec AS
	OPERATOR 1 @extschema:vector@.<~> (bit, bit) FOR ORDER BY float_ops,
	OPERATOR 2 <^> (bit, bit) FOR ORDER BY integer_ops,
	FUNCTION 1 shrinkvec_hamming_kind(internal),
	FUNCTION 2 shrinkvec_bit_support(internal);

CREATE OPERATOR CLASS vector_l2_ops DEFAULT FOR TYPE @extschema:vector@.vector USING shrinkvec AS
	OPERATOR 1 @extschema:vector@.<-> (@extschema:vector@.vector, @extschema:vector@.vector) FOR ORDER BY float_ops,
	FUNCTION 1 shrinkvec_l2_kind(internal),
	FUNCTION 2 shrinkvec_vector_support(internal);
CREATE OPERATOR CLASS vector_ip_ops FOR TYPE @extschema:vector@.vector USING shrinkvec AS
	OPERATOR 1 @extschema:vector@.<#> (@extschema:vector@.vector, @extschema:vector@.vector) FOR ORDER BY float_ops,
	FUNCTION 1 shrinkvec_ip_kind(internal),
	FUNCTION 2 shrinkvec_vector_support(internal);
CREATE OPERATOR CLASS vector_cosine_ops FOR TYPE @extschema:vector@.vector USING shrinkvec AS
	OPERATOR 1 @extschema:vector@.<=> (@extschema:vector@.vector, @extschema:vector@.vector) FOR ORDER BY float_ops,
	FUNCTION 1 shrinkvec_cosine_kind(internal),
	FUNCTION 2 shrinkvec_vector_support(internal);

CREATE OPERATOR CLASS halfvec_l2_ops DEFAULT FOR TYPE @extschema:vector@.halfvec USING shrinkvec AS
	OPERATOR 1 @extschema:vector@.<-> (@extschema:vector@.halfvec, @extschema:vector@.halfvec) FOR ORDER BY float_ops,
	FUNCTION 1 shrinkvec_l2_kind(internal),
	FUNCTION 2 shrinkvec_halfvec_support(internal);
CREATE OPERATOR CLASS halfvec_ip_ops FOR TYPE @extschema:vector@.halfvec USING shrinkvec AS
	OPERATOR 1 @extschema:vector@.<#> (@extschema:vector@.halfvec, @extschema:vector@.halfvec) FOR ORDER BY float_ops,
	FUNCTION 1 shrinkvec_ip_kind(internal),
	FUNCTION 2 shrinkvec_halfvec_support(internal);
CREATE OPERATOR CLASS halfvec_cosine_ops FOR TYPE @extschema:vector@.halfvec USING shrinkvec AS
	OPERATOR 1 @extschema:vector@.<=> (@extschema:vector@.halfvec, @extschema:vector@.halfvec) FOR ORDER BY float_ops,
	FUNCTION 1 shrinkvec_cosine_kind(internal),
	FUNCTION 2 shrinkvec_halfvec_support(internal);

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

CREATE FUNCTION shrinkvec_index_entries(index regclass, OUT tid tid, OUT list integer, OUT code bit,
	OUT refine bytea, OUT refine_lo real, OUT refine_step real, OUT refine_norm2 real, OUT refine_err2 real)
	RETURNS SETOF record
	AS 'MODULE_PATHNAME', 'shrinkvec_index_entries' LANGUAGE C STRICT VOLATILE PARALLEL SAFE;
COMMENT ON FUNCTION shrinkvec_index_entries(regclass) IS
	'every entry of a shrinkvec index: heap TID, list, stored code (of the rotated residual, for vector indexes), and its refine code and factors, err2 being the refine code''s squared error (NULL without refine codes)';

CREATE FUNCTION shrinkvec_index_centroids(index regclass, rotated boolean DEFAULT false,
	OUT list integer, OUT centroid real[])
	RETURNS SETOF record
	AS 'MODULE_PATHNAME', 'shrinkvec_index_centroids' LANGUAGE C STRICT VOLATILE PARALLEL SAFE;
COMMENT ON FUNCTION shrinkvec_index_centroids(regclass, boolean) IS
	'the centroid of every list of a shrinkvec index on a vector or halfvec column (the mean, for a flat index), over its coded dims: in the column''s coordinates, or with rotated => true as stored, in the index''s rotated coordinates';

CREATE FUNCTION shrinkvec_index_check(index regclass,
	OUT live_rows bigint, OUT index_entries bigint, OUT missing bigint, OUT duplicated bigint,
	OUT dangling bigint, OUT wrong_codes bigint, OUT ok boolean)
	AS 'MODULE_PATHNAME', 'shrinkvec_index_check' LANGUAGE C STRICT VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION shrinkvec_index_check(regclass) IS
	'checks a shrinkvec index against its table: every row visible to the snapshot indexed once (at its HOT chain''s root), no entries for other rows, bit codes equal to the column; index expressions run as the table''s owner; refused where row-level security applies to the caller';

-- ==== catalog and search (issue 4) ====
-- The schema `shrinkvec` belongs to the extension; the catalog tables in it (profiles, codes,
-- transforms, loads) are created and upgraded by alembic (`shrinkvec migrate`, migrations/), which
-- runs CREATE EXTENSION IF NOT EXISTS shrinkvec CASCADE first. search() reads the catalog at run time.

CREATE SCHEMA shrinkvec;
COMMENT ON SCHEMA shrinkvec IS
	'shrinkvec catalog (tables managed by `shrinkvec migrate`) and search()';
-- every role may call search(); the catalog's row-level security decides what it may see and change
GRANT USAGE ON SCHEMA shrinkvec TO PUBLIC;

-- The SQL that search() and search_tokens() run names no schema that the role which installed the
-- (trusted) extension could rename and replace with look-alikes: shrinkvec's functions are called in the
-- superuser-owned schema shrinkvec, pgvector's schema is found at run time from pg_extension. The columns
-- a profile names are checked first (check_search_columns): the catalog rows and the table are written by
-- the table's owner, and a column of a user-defined type would run that role's casts and operators as
-- the caller.
CREATE FUNCTION shrinkvec.check_search_columns(
	tbl regclass, id_column name, vector_column name, multi boolean, code_columns name[], code_kinds text[])
RETURNS void
LANGUAGE plpgsql STABLE SECURITY INVOKER PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
	vec_ext oid;
	sv_ext oid;
	t_vector oid;
	t_halfvec oid;
	t_int8vec oid;
	t_multibit oid;
	col name;
	want text;
	typ oid;
	ok boolean;
BEGIN
	SELECT e.oid INTO vec_ext FROM pg_extension e WHERE e.extname OPERATOR(pg_catalog.=) 'vector';
	SELECT e.oid INTO sv_ext FROM pg_extension e WHERE e.extname OPERATOR(pg_catalog.=) 'shrinkvec';
	-- the types by membership in their extension and its schema, not by name
	SELECT max(t.oid) FILTER (WHERE t.typname OPERATOR(pg_catalog.=) 'vector' AND d.refobjid OPERATOR(pg_catalog.=) vec_ext),
	       max(t.oid) FILTER (WHERE t.typname OPERATOR(pg_catalog.=) 'halfvec' AND d.refobjid OPERATOR(pg_catalog.=) vec_ext),
	       max(t.oid) FILTER (WHERE t.typname OPERATOR(pg_catalog.=) 'int8vec' AND d.refobjid OPERATOR(pg_catalog.=) sv_ext),
	       max(t.oid) FILTER (WHERE t.typname OPERATOR(pg_catalog.=) 'multibit' AND d.refobjid OPERATOR(pg_catalog.=) sv_ext)
	INTO t_vector, t_halfvec, t_int8vec, t_multibit
	FROM pg_depend d JOIN pg_type t ON t.oid OPERATOR(pg_catalog.=) d.objid
	JOIN pg_extension e ON e.oid OPERATOR(pg_catalog.=) d.refobjid
		AND e.extnamespace OPERATOR(pg_catalog.=) t.typnamespace  -- not a type ALTER EXTENSION ADD gave it
	WHERE d.classid OPERATOR(pg_catalog.=) 'pg_catalog.pg_type'::pg_catalog.regclass
	  AND d.refclassid OPERATOR(pg_catalog.=) 'pg_catalog.pg_extension'::pg_catalog.regclass
	  AND d.deptype OPERATOR(pg_catalog.=) 'e';
	FOR i IN 0 .. coalesce(cardinality(code_columns), 0) + 1 LOOP
		IF i = 0 THEN
			col := id_column;
			want := 'id';
		ELSIF i = 1 THEN
			col := vector_column;
			want := CASE WHEN multi THEN 'tokens' ELSE 'vector' END;
		ELSE
			col := code_columns[i - 1];
			want := code_kinds[i - 1];
		END IF;
		SELECT a.atttypid INTO typ FROM pg_attribute a
		WHERE a.attrelid OPERATOR(pg_catalog.=) tbl AND a.attname OPERATOR(pg_catalog.=) col
		  AND a.attnum OPERATOR(pg_catalog.>) 0 AND NOT a.attisdropped;
		IF NOT FOUND THEN
			RAISE EXCEPTION 'table % has no column %', tbl, pg_catalog.quote_ident(col)
				USING ERRCODE = 'undefined_column';
		END IF;
		ok := CASE want
			WHEN 'id' THEN typ OPERATOR(pg_catalog.=) ANY (ARRAY['pg_catalog.int2'::pg_catalog.regtype,
				'pg_catalog.int4'::pg_catalog.regtype, 'pg_catalog.int8'::pg_catalog.regtype]::oid[])
			WHEN 'vector' THEN typ OPERATOR(pg_catalog.=) ANY (ARRAY[t_vector, t_halfvec])
			WHEN 'prefix' THEN typ OPERATOR(pg_catalog.=) ANY (ARRAY[t_vector, t_halfvec])
			WHEN 'tokens' THEN typ OPERATOR(pg_catalog.=) ANY (ARRAY(
				SELECT t.typarray FROM pg_type t WHERE t.oid OPERATOR(pg_catalog.=) ANY (ARRAY[t_vector, t_halfvec])))
			WHEN 'bits' THEN typ OPERATOR(pg_catalog.=) 'pg_catalog.bit'::pg_catalog.regtype
			WHEN 'int8' THEN typ OPERATOR(pg_catalog.=) t_int8vec
			WHEN 'multibit' THEN typ OPERATOR(pg_catalog.=) t_multibit
			ELSE false
		END;
		IF NOT coalesce(ok, false) THEN
			RAISE EXCEPTION 'column % of table % has type %, which a shrinkvec search does not run SQL on', pg_catalog.quote_ident(col), tbl,
				pg_catalog.format_type(typ, NULL)
				USING ERRCODE = 'datatype_mismatch',
				DETAIL = CASE want
					WHEN 'id' THEN 'The id column must be smallint, integer or bigint.'
					WHEN 'vector' THEN 'The vector column must be pgvector''s vector or halfvec.'
					WHEN 'tokens' THEN 'The tokens column must be an array of pgvector''s vector or halfvec.'
					WHEN 'bits' THEN 'A bits code is a column of type bit.'
					WHEN 'prefix' THEN 'A prefix code is a column of pgvector''s vector or halfvec.'
					WHEN 'int8' THEN 'An int8 code is a column of shrinkvec''s int8vec.'
					WHEN 'multibit' THEN 'A multibit code is a column of shrinkvec''s multibit.'
					ELSE pg_catalog.format('Unknown code kind %s.', want) END;
		END IF;
	END LOOP;
END
$fn$;
COMMENT ON FUNCTION shrinkvec.check_search_columns(regclass, name, name, boolean, name[], text[]) IS
	'raises unless every column a search of tbl runs SQL on has the type its role needs (id: int2/int4/int8; vector: pgvector''s vector or halfvec, or an array of them; codes: bit, vector/halfvec, int8vec, multibit), types identified by extension membership: a user-defined type would run its owner''s casts and operators as the caller';

CREATE FUNCTION shrinkvec.search(
	tbl regclass, query @extschema:vector@.vector, k integer DEFAULT NULL, shortlist integer DEFAULT NULL,
	stage text DEFAULT NULL)
RETURNS TABLE (id bigint, distance double precision)
LANGUAGE plpgsql VOLATILE SECURITY INVOKER PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp
AS $search$
DECLARE
	p record;
	c record;
	vec_schema name;
	dims integer;
	op text;
	cfg text;
	m text[];
	specs text[];
	sizes integer[];
	carry text[];
	cols text;
	alias text;
	order_expr text;
	inner_q text;
	old_shortlist text;
	old_probes text;
	old_rerank text;
	code_cols name[];
	code_kinds text[];
BEGIN
	-- search_path is pg_catalog only: every other name below is schema-qualified, every operator too
	IF to_regclass('shrinkvec.profiles') IS NULL OR to_regclass('shrinkvec.codes') IS NULL THEN
		RAISE EXCEPTION 'the shrinkvec catalog does not exist in this database'
			USING ERRCODE = 'object_not_in_prerequisite_state', HINT = 'run: shrinkvec migrate --dsn ...';
	END IF;
	IF to_regprocedure('shrinkvec.prune_catalog()') IS NULL THEN
		RAISE EXCEPTION 'the shrinkvec catalog is older than this extension'
			USING ERRCODE = 'object_not_in_prerequisite_state', HINT = 'run: shrinkvec migrate --dsn ...';
	END IF;
	SELECT pr.* INTO p FROM shrinkvec.profiles pr WHERE pr.relation OPERATOR(pg_catalog.=) tbl ORDER BY pr.name LIMIT 1;
	IF NOT FOUND THEN
		RAISE EXCEPTION 'table % has no shrinkvec profile', tbl USING ERRCODE = 'undefined_object';
	END IF;
	IF p.distance = 'maxsim' THEN
		RAISE EXCEPTION 'table % has a multi-vector profile (distance maxsim): use shrinkvec.search_tokens() with a vector[] query', tbl
			USING ERRCODE = 'datatype_mismatch';
	END IF;
	-- pgvector's schema as it is named now (found by the extension, not by a name); shrinkvec's own
	-- functions are called in the schema shrinkvec, which belongs to the superuser
	SELECT n.nspname INTO vec_schema FROM pg_extension e JOIN pg_namespace n ON n.oid OPERATOR(pg_catalog.=) e.extnamespace
	WHERE e.extname OPERATOR(pg_catalog.=) 'vector';
	-- every column the SQL below touches, with the type its role needs
	SELECT array_agg(cd.column_name::name ORDER BY cd.position), array_agg(cd.kind ORDER BY cd.position)
	INTO code_cols, code_kinds FROM shrinkvec.codes cd WHERE cd.profile OPERATOR(pg_catalog.=) p.name;
	PERFORM shrinkvec.check_search_columns(tbl, p.id_column, p.vector_column, false, code_cols, code_kinds);
	k := coalesce(k, p.k);
	EXECUTE format('SELECT %I.vector_dims($1)', vec_schema) INTO dims USING query;
	IF dims <> p.dims THEN
		RAISE EXCEPTION 'expected % dimensions, got %', p.dims, dims USING ERRCODE = 'data_exception';
	END IF;
	op := CASE p.distance WHEN 'cosine' THEN '<=>' WHEN 'l2' THEN '<->' WHEN 'ip' THEN '<#>' END;
	IF k < 1 THEN
		RAISE EXCEPTION 'k must be at least 1, got %', k USING ERRCODE = 'invalid_parameter_value';
	END IF;

	-- without a stage, the configuration `shrinkvec tune --apply` chose (configs.py specs), else the first code
	IF stage IS NULL THEN
		cfg := p.search_config;
	END IF;
	IF cfg LIKE 'index%' THEN
		-- the shrinkvec index: the unchanged exact query with the index's settings for this transaction
		m := regexp_match(cfg, '^index(?::lists=\d+)?(?::probes=(\d+))?(?::bits=\d+)?(?::refine=\d+:rerank=(\d+))?@(\d+)$');
		IF m IS NULL THEN
			RAISE EXCEPTION 'profile % has an unknown search_config %', p.name, cfg USING ERRCODE = 'data_exception';
		END IF;
		PERFORM shrinkvec.shrinkvec_kernels();	-- loads the library: its settings exist from here on
		old_shortlist := current_setting('shrinkvec.shortlist');
		old_probes := current_setting('shrinkvec.probes');
		old_rerank := current_setting('shrinkvec.rerank');
		PERFORM set_config('shrinkvec.shortlist', coalesce(shortlist, m[3]::integer)::text, true);
		IF m[1] IS NOT NULL THEN
			PERFORM set_config('shrinkvec.probes', m[1], true);
		END IF;
		IF m[2] IS NOT NULL THEN
			PERFORM set_config('shrinkvec.rerank', m[2], true);
		END IF;
		-- k is rendered as a literal (an integer): the planner must see the LIMIT to choose the index
		RETURN QUERY EXECUTE format(
			'SELECT t.%1$I::bigint, t.%2$I OPERATOR(%3$I.%4$s) $1 AS distance FROM %5$s AS t '
			'ORDER BY t.%2$I OPERATOR(%3$I.%4$s) $1 LIMIT %6$s',
			p.id_column, p.vector_column, vec_schema, op, tbl, k) USING query;
		PERFORM set_config('shrinkvec.shortlist', old_shortlist, true);
		PERFORM set_config('shrinkvec.probes', old_probes, true);
		PERFORM set_config('shrinkvec.rerank', old_rerank, true);
		RETURN;
	ELSIF cfg IS NOT NULL AND cfg <> 'exact' THEN
		-- 'STAGE@N' or a funnel 'STAGE@N>STAGE@M...'
		SELECT array_agg(split_part(x, '@', 1) ORDER BY o), array_agg(split_part(x, '@', 2)::integer ORDER BY o)
		INTO specs, sizes FROM unnest(string_to_array(cfg, '>')) WITH ORDINALITY AS u(x, o);
		IF shortlist IS NOT NULL THEN
			sizes[1] := shortlist;
		END IF;
	ELSE
		specs := ARRAY[stage];
		sizes := ARRAY[coalesce(shortlist, p.shortlist)];
	END IF;
	FOR i IN 1 .. cardinality(specs) LOOP
		IF sizes[i] < k OR (i > 1 AND sizes[i] > sizes[i - 1]) THEN
			RAISE EXCEPTION 'need 1 <= k <= shortlist, each stage''s shortlist at most the previous one''s, got k = % and shortlists %',
				k, sizes USING ERRCODE = 'invalid_parameter_value';
		END IF;
	END LOOP;

	-- innermost the table ordered by the first stage, then each later stage over the previous one's rows;
	-- every level carries the id, the vector and the code columns of the stages after it
	FOR i IN 1 .. cardinality(specs) LOOP
		-- the stage: a code kind ('bits', 'prefix', 'int8'), 'kind:length', a column name, or the first code
		SELECT cd.* INTO c FROM shrinkvec.codes cd
		WHERE cd.profile = p.name
		  AND (specs[i] IS NULL OR specs[i] IN (cd.column_name, cd.kind,
			CASE WHEN cd.kind = 'int8' THEN 'int8' ELSE cd.kind || ':' || cd.length END))
		ORDER BY cd.position LIMIT 1;
		IF NOT FOUND THEN
			RAISE EXCEPTION 'profile % has no code %', p.name, coalesce(specs[i], '(any)') USING ERRCODE = 'undefined_object';
		END IF;
		IF i > 1 THEN
			carry := carry || c.column_name;
		END IF;
		specs[i] := c.column_name;
	END LOOP;
	FOR i IN 1 .. cardinality(specs) LOOP
		SELECT cd.* INTO c FROM shrinkvec.codes cd WHERE cd.profile = p.name AND cd.column_name = specs[i];
		alias := CASE WHEN i = 1 THEN 's' ELSE 'c' || i END;
		SELECT string_agg(format('%I.%I', alias, x), ', ' ORDER BY o) INTO cols
		FROM (SELECT x, min(o) AS o FROM unnest(ARRAY[p.id_column, p.vector_column] || carry[i:])
			WITH ORDINALITY AS u(x, o) GROUP BY x) AS d;
		-- codes are ranked against the query through the profile's transform ($2)
		order_expr := CASE c.kind
			WHEN 'bits' THEN format('shrinkvec.bit_ip(%I.%I, $2)', alias, c.column_name)
			WHEN 'prefix' THEN format('shrinkvec.prefix_cosine_distance(%I.%I, $2)', alias, c.column_name)
			ELSE format('shrinkvec.%I(%I.%I, $2, %L::pg_catalog.float4[], %L::pg_catalog.float4[])',
				CASE WHEN p.distance = 'ip' THEN 'int8_ip_distance' ELSE 'int8_cosine_distance' END,
				alias, c.column_name, c.lo, c.hi)
		END;
		-- tbl prints schema-qualified here (search_path holds no user schema)
		inner_q := format('SELECT %s FROM %s AS %I ORDER BY %s LIMIT %s', cols,
			CASE WHEN i = 1 THEN tbl::text ELSE '(' || inner_q || ')' END, alias, order_expr, sizes[i]);
	END LOOP;
	-- the rerank uses the raw query ($1)
	RETURN QUERY EXECUTE format(
		'SELECT t.%1$I::bigint, t.%2$I OPERATOR(%3$I.%4$s) $1 AS distance FROM (%5$s) AS t ORDER BY 2, 1 LIMIT %6$s',
		p.id_column, p.vector_column, vec_schema, op, inner_q, k)
	USING query, CASE WHEN p.transform IS NULL THEN query ELSE shrinkvec.transform_vector(query, p.transform) END;
END
$search$;
COMMENT ON FUNCTION shrinkvec.search(regclass, @extschema:vector@.vector, integer, integer, text) IS
	'search of a profiled table: without a stage, the configuration shrinkvec tune --apply chose (a code stage, a funnel, or the shrinkvec index with its settings for this transaction), else the profile''s first code; a stage (bits, prefix[:N], int8 or a column) shortlists `shortlist` rows, the full vector reranks them with the profile''s distance; returns the k nearest (id, distance); SECURITY INVOKER, so row-level security applies';

CREATE FUNCTION shrinkvec.code_query(tbl regclass, q @extschema:vector@.vector) RETURNS @extschema:vector@.vector
LANGUAGE plpgsql STABLE STRICT PARALLEL SAFE SECURITY INVOKER
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
	tf text;
BEGIN
	IF to_regclass('shrinkvec.profiles') IS NULL OR to_regprocedure('shrinkvec.prune_catalog()') IS NULL THEN
		RETURN q;
	END IF;
	SELECT pr.transform INTO tf FROM shrinkvec.profiles pr WHERE pr.relation = tbl ORDER BY pr.name LIMIT 1;
	IF tf IS NULL THEN
		RETURN q;
	END IF;
	RETURN shrinkvec.transform_vector(q, tf);
END
$fn$;
COMMENT ON FUNCTION shrinkvec.code_query(regclass, @extschema:vector@.vector) IS
	'the query vector q that codes of table tbl are ranked against: transform_vector(q, its profile''s transform) when shrinkvec adapt gave it one, else q itself (also without a catalog); the rerank always uses the raw query';

-- ==== transforms (issue 7) ====
-- A transform (centring, PCA rotation, Matryoshka-Adaptor) is a row of the catalog table
-- shrinkvec.transforms (created by `shrinkvec migrate`, immutable once stored). transform_vector()
-- applies it in C, exactly as the numpy reference (pytools/shrinkvec/transforms.py), so the codes the
-- table's trigger computes and the query the search ranks codes with use the same map. The full
-- vector is never transformed: the rerank stays exact.

CREATE FUNCTION shrinkvec.transform_vector(v @extschema:vector@.vector, transform text) RETURNS @extschema:vector@.vector
	AS 'MODULE_PATHNAME', 'transform_vector' LANGUAGE C STABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION shrinkvec.transform_vector(@extschema:vector@.vector, text) IS
	'the stored transform `transform` (shrinkvec.transforms) applied to v: center, rotate, residual MLP; STABLE because it reads the catalog (each backend reads a transform once; transforms are immutable)';
CREATE FUNCTION shrinkvec.transform_vector(v @extschema:vector@.halfvec, transform text) RETURNS @extschema:vector@.vector
	AS 'MODULE_PATHNAME', 'transform_halfvec' LANGUAGE C STABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION shrinkvec.transform_vector(@extschema:vector@.halfvec, text) IS
	'the stored transform `transform` applied to a halfvec (elements widened to real first); returns a vector';

-- ==== the catalog follows its tables (issues 13 and 17) ====
-- Catalog rows are keyed to their relation (regclass, catalog revision 0005). These event triggers keep
-- them true: a DROP removes the rows of dropped tables and columns, a RENAME or SET SCHEMA renames them.
-- The work is done by functions of the catalog (shrinkvec.prune_catalog, shrinkvec.sync_catalog_names,
-- created by `shrinkvec migrate`); without the catalog the triggers do nothing. A failure never blocks
-- the user's DDL: it becomes a WARNING.

CREATE FUNCTION shrinkvec.on_sql_drop() RETURNS event_trigger
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $fn$
BEGIN
	IF to_regprocedure('shrinkvec.prune_catalog()') IS NOT NULL THEN
		BEGIN
			PERFORM shrinkvec.prune_catalog();
		EXCEPTION WHEN OTHERS THEN
			RAISE WARNING 'shrinkvec: could not remove the catalog rows of dropped tables: %', SQLERRM;
		END;
	END IF;
END
$fn$;
COMMENT ON FUNCTION shrinkvec.on_sql_drop() IS
	'event trigger: removes the shrinkvec catalog rows of dropped tables and vector columns';
CREATE EVENT TRIGGER shrinkvec_sql_drop ON sql_drop EXECUTE FUNCTION shrinkvec.on_sql_drop();

CREATE FUNCTION shrinkvec.on_ddl_end() RETURNS event_trigger
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $fn$
BEGIN
	IF to_regprocedure('shrinkvec.sync_catalog_names()') IS NOT NULL THEN
		BEGIN
			PERFORM shrinkvec.sync_catalog_names();
		EXCEPTION WHEN OTHERS THEN
			RAISE WARNING 'shrinkvec: could not rename the catalog rows of renamed tables: %', SQLERRM;
		END;
	END IF;
END
$fn$;
COMMENT ON FUNCTION shrinkvec.on_ddl_end() IS
	'event trigger: the shrinkvec catalog''s table names follow ALTER TABLE / ALTER SCHEMA renames';
CREATE EVENT TRIGGER shrinkvec_ddl_end ON ddl_command_end
	WHEN TAG IN ('ALTER TABLE', 'ALTER SCHEMA', 'ALTER FOREIGN TABLE', 'ALTER MATERIALIZED VIEW')
	EXECUTE FUNCTION shrinkvec.on_ddl_end();

-- ==== late interaction: multi-vector MaxSim and the multibit code (issue 19) ====
-- A document is an array of token vectors. maxsim(q, d) is the exact ColBERT score; binarize(d) packs
-- every token's sign bits into one multibit; maxsim(q, code) scores float query tokens against them.
-- Arrays hold 1..1024 tokens; no NULL elements; all tokens of the same dimension.

CREATE TYPE multibit;

CREATE FUNCTION multibit_in(cstring) RETURNS multibit
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION multibit_out(multibit) RETURNS cstring
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION multibit_recv(internal) RETURNS multibit
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION multibit_send(multibit) RETURNS bytea
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;

CREATE TYPE multibit (
	INPUT = multibit_in,
	OUTPUT = multibit_out,
	RECEIVE = multibit_recv,
	SEND = multibit_send,
	STORAGE = main,
	ALIGNMENT = int4
);
COMMENT ON TYPE multibit IS
	'sign bits of a document''s tokens: 8 bytes of header (int16 tokens, int16 dims) + tokens * ceil(dims/8) bytes; text form {1011,0110} (one bit string per token)';

COMMENT ON FUNCTION multibit_in(cstring) IS 'text input of multibit: {1011,0110}';
COMMENT ON FUNCTION multibit_out(multibit) IS 'text output of multibit';
COMMENT ON FUNCTION multibit_recv(internal) IS 'binary input of multibit: int16 tokens, int16 dims, packed codes';
COMMENT ON FUNCTION multibit_send(multibit) IS 'binary output of multibit';

CREATE FUNCTION multibit_tokens(multibit) RETURNS integer
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION multibit_tokens(multibit) IS 'number of tokens of a multibit';
CREATE FUNCTION vector_dims(multibit) RETURNS integer
	AS 'MODULE_PATHNAME', 'multibit_dims' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION vector_dims(multibit) IS 'bits per token of a multibit';

CREATE FUNCTION maxsim(@extschema:vector@.vector[], @extschema:vector@.vector[]) RETURNS double precision
	AS 'MODULE_PATHNAME', 'maxsim_vector' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION maxsim(@extschema:vector@.halfvec[], @extschema:vector@.halfvec[]) RETURNS double precision
	AS 'MODULE_PATHNAME', 'maxsim_halfvec' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION maxsim(@extschema:vector@.vector[], @extschema:vector@.vector[]) IS
	'exact late-interaction score: sum over query tokens of the largest dot product with a document token (higher is better)';
COMMENT ON FUNCTION maxsim(@extschema:vector@.halfvec[], @extschema:vector@.halfvec[]) IS
	'exact late-interaction score of halfvec tokens (widened to float): sum over query tokens of the best dot product';

CREATE FUNCTION binarize(@extschema:vector@.vector[]) RETURNS multibit
	AS 'MODULE_PATHNAME', 'binarize_vector_array' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION binarize(@extschema:vector@.vector[], integer) RETURNS multibit
	AS 'MODULE_PATHNAME', 'binarize_vector_array' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION binarize(@extschema:vector@.vector[], integer, real[]) RETURNS multibit
	AS 'MODULE_PATHNAME', 'binarize_vector_array' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION binarize(@extschema:vector@.halfvec[]) RETURNS multibit
	AS 'MODULE_PATHNAME', 'binarize_halfvec_array' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION binarize(@extschema:vector@.halfvec[], integer) RETURNS multibit
	AS 'MODULE_PATHNAME', 'binarize_halfvec_array' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION binarize(@extschema:vector@.halfvec[], integer, real[]) RETURNS multibit
	AS 'MODULE_PATHNAME', 'binarize_halfvec_array' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION binarize(@extschema:vector@.vector[]) IS
	'sign bits of every token (bit i is 1 when t[i] > 0), packed into one multibit';
COMMENT ON FUNCTION binarize(@extschema:vector@.vector[], integer) IS
	'sign bits of the first dims dimensions of every token (a Matryoshka prefix), as a multibit';
COMMENT ON FUNCTION binarize(@extschema:vector@.vector[], integer, real[]) IS
	'sign bits of (t - center) over the first dims dimensions of every token; center has the tokens'' or dims elements';
COMMENT ON FUNCTION binarize(@extschema:vector@.halfvec[]) IS
	'sign bits of every halfvec token, packed into one multibit';
COMMENT ON FUNCTION binarize(@extschema:vector@.halfvec[], integer) IS
	'sign bits of the first dims dimensions of every halfvec token, as a multibit';
COMMENT ON FUNCTION binarize(@extschema:vector@.halfvec[], integer, real[]) IS
	'sign bits of (t - center) over the first dims dimensions of every halfvec token';

CREATE FUNCTION maxsim(@extschema:vector@.vector[], multibit) RETURNS double precision
	AS 'MODULE_PATHNAME', 'maxsim_vector_multibit' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION maxsim(@extschema:vector@.halfvec[], multibit) RETURNS double precision
	AS 'MODULE_PATHNAME', 'maxsim_halfvec_multibit' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION maxsim(@extschema:vector@.vector[], bit[]) RETURNS double precision
	AS 'MODULE_PATHNAME', 'maxsim_vector_bits' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION maxsim(@extschema:vector@.vector[], multibit) IS
	'asymmetric late-interaction score: sum over query tokens t of delta_t * max over doc tokens of sum_{i<dims} v_t[i] * (2 b[i] - 1), v_t = rint(t / delta_t) clipped to +-15, delta_t = max|t[:dims]| / 15 (higher is better)';
COMMENT ON FUNCTION maxsim(@extschema:vector@.halfvec[], multibit) IS
	'asymmetric late-interaction score of halfvec query tokens (widened to float) against a multibit';
COMMENT ON FUNCTION maxsim(@extschema:vector@.vector[], bit[]) IS
	'the asymmetric score of maxsim(vector[], multibit) with the document''s codes as a bit[] (one bit string per token)';

-- The functions search() and search_tokens() call, in the schema `shrinkvec`: the script creates that
-- schema, so it belongs to the (bootstrap) superuser, and no other role can rename it or create in it.
-- The same C functions as the operators and functions of the same name in the extension's own schema,
-- which may belong to the role that installed the extension.
CREATE FUNCTION shrinkvec.shrinkvec_kernels() RETURNS text
	AS 'MODULE_PATHNAME', 'shrinkvec_kernels' LANGUAGE C STABLE STRICT PARALLEL SAFE;
CREATE FUNCTION shrinkvec.bit_ip(bit, @extschema:vector@.vector) RETURNS double precision
	AS 'MODULE_PATHNAME', 'bit_ip' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION shrinkvec.prefix_cosine_distance(@extschema:vector@.vector, @extschema:vector@.vector) RETURNS double precision
	AS 'MODULE_PATHNAME', 'prefix_cosine_distance' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION shrinkvec.prefix_cosine_distance(@extschema:vector@.halfvec, @extschema:vector@.halfvec) RETURNS double precision
	AS 'MODULE_PATHNAME', 'halfvec_prefix_cosine_distance' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION shrinkvec.int8_ip_distance(int8vec, @extschema:vector@.vector, real[], real[]) RETURNS double precision
	AS 'MODULE_PATHNAME', 'int8_ip_distance' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION shrinkvec.int8_cosine_distance(int8vec, @extschema:vector@.vector, real[], real[]) RETURNS double precision
	AS 'MODULE_PATHNAME', 'int8_cosine_distance' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION shrinkvec.maxsim(@extschema:vector@.vector[], @extschema:vector@.vector[]) RETURNS double precision
	AS 'MODULE_PATHNAME', 'maxsim_vector' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION shrinkvec.maxsim(@extschema:vector@.vector[], multibit) RETURNS double precision
	AS 'MODULE_PATHNAME', 'maxsim_vector_multibit' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION shrinkvec.shrinkvec_kernels() IS
	'shrinkvec_kernels() for search(): loads the library, so its settings exist';
COMMENT ON FUNCTION shrinkvec.bit_ip(bit, @extschema:vector@.vector) IS
	'bit_ip (the <^#> operator) for search(), in the superuser-owned schema';
COMMENT ON FUNCTION shrinkvec.prefix_cosine_distance(@extschema:vector@.vector, @extschema:vector@.vector) IS
	'prefix_cosine_distance (the <^=> operator) for search(), in the superuser-owned schema';
COMMENT ON FUNCTION shrinkvec.prefix_cosine_distance(@extschema:vector@.halfvec, @extschema:vector@.halfvec) IS
	'prefix_cosine_distance of halfvecs (the <^=> operator) for search(), in the superuser-owned schema';
COMMENT ON FUNCTION shrinkvec.int8_ip_distance(int8vec, @extschema:vector@.vector, real[], real[]) IS
	'int8_ip_distance for search(), in the superuser-owned schema';
COMMENT ON FUNCTION shrinkvec.int8_cosine_distance(int8vec, @extschema:vector@.vector, real[], real[]) IS
	'int8_cosine_distance for search(), in the superuser-owned schema';
COMMENT ON FUNCTION shrinkvec.maxsim(@extschema:vector@.vector[], @extschema:vector@.vector[]) IS
	'maxsim of float tokens for search_tokens(), in the superuser-owned schema';
COMMENT ON FUNCTION shrinkvec.maxsim(@extschema:vector@.vector[], multibit) IS
	'maxsim of float query tokens against a multibit code for search_tokens(), in the superuser-owned schema';

-- two-stage late-interaction search of a profiled multi-vector table (profile distance maxsim); a name of its
-- own: an overload of search() would make search(tbl, '[1,2,3]') (an untyped literal) ambiguous
CREATE FUNCTION shrinkvec.search_tokens(
	tbl regclass, query @extschema:vector@.vector[], k integer DEFAULT NULL, shortlist integer DEFAULT NULL,
	stage text DEFAULT NULL)
RETURNS TABLE (id bigint, distance double precision)
LANGUAGE plpgsql STABLE SECURITY INVOKER PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $search$
DECLARE
	p record;
	c record;
	vec_schema name;
	dims integer;
	cfg text;
	m text[];
	n integer;
	code_cols name[];
	code_kinds text[];
BEGIN
	-- search_path is pg_catalog only: every other name below is schema-qualified
	IF to_regclass('shrinkvec.profiles') IS NULL OR to_regclass('shrinkvec.codes') IS NULL THEN
		RAISE EXCEPTION 'the shrinkvec catalog does not exist in this database'
			USING ERRCODE = 'object_not_in_prerequisite_state', HINT = 'run: shrinkvec migrate --dsn ...';
	END IF;
	SELECT pr.* INTO p FROM shrinkvec.profiles pr WHERE pr.relation OPERATOR(pg_catalog.=) tbl ORDER BY pr.name LIMIT 1;
	IF NOT FOUND THEN
		RAISE EXCEPTION 'table % has no shrinkvec profile', tbl USING ERRCODE = 'undefined_object';
	END IF;
	IF p.distance <> 'maxsim' THEN
		RAISE EXCEPTION 'table % has a single-vector profile (distance %): pass the query as one vector to shrinkvec.search()', tbl, p.distance
			USING ERRCODE = 'datatype_mismatch';
	END IF;
	k := coalesce(k, p.k);
	IF k < 1 THEN
		RAISE EXCEPTION 'k must be at least 1, got %', k USING ERRCODE = 'invalid_parameter_value';
	END IF;
	-- pgvector's schema as it is named now (found by the extension, not by a name); shrinkvec's own
	-- functions are called in the schema shrinkvec, which belongs to the superuser
	SELECT ns.nspname INTO vec_schema FROM pg_extension e JOIN pg_namespace ns ON ns.oid OPERATOR(pg_catalog.=) e.extnamespace
	WHERE e.extname OPERATOR(pg_catalog.=) 'vector';
	SELECT array_agg(cd.column_name::name ORDER BY cd.position), array_agg(cd.kind ORDER BY cd.position)
	INTO code_cols, code_kinds FROM shrinkvec.codes cd WHERE cd.profile OPERATOR(pg_catalog.=) p.name;
	PERFORM shrinkvec.check_search_columns(tbl, p.id_column, p.vector_column, true, code_cols, code_kinds);
	EXECUTE format('SELECT %I.vector_dims($1[array_lower($1, 1)])', vec_schema) INTO dims USING query;
	IF dims <> p.dims THEN
		RAISE EXCEPTION 'expected query tokens of % dimensions, got %', p.dims, dims USING ERRCODE = 'data_exception';
	END IF;
	-- without a stage, the configuration `shrinkvec tune --apply` chose ('exact' or 'STAGE@N'), else the first code
	IF stage IS NULL THEN
		cfg := p.search_config;
	END IF;
	IF cfg = 'exact' THEN
		RETURN QUERY EXECUTE format(
			'SELECT s.%1$I::bigint, -shrinkvec.maxsim($1, s.%2$I) AS distance FROM %3$s AS s ORDER BY 2, 1 LIMIT %4$s',
			p.id_column, p.vector_column, tbl, k) USING query;
		RETURN;
	END IF;
	m := regexp_match(coalesce(cfg, ''), '^([^@>]+)@(\d+)$');
	IF cfg IS NOT NULL AND m IS NULL THEN
		RAISE EXCEPTION 'profile % has a search_config % that a multi-vector search cannot run', p.name, cfg
			USING ERRCODE = 'data_exception';
	END IF;
	n := coalesce(shortlist, m[2]::integer, p.shortlist);
	IF n < k THEN
		RAISE EXCEPTION 'need 1 <= k <= shortlist, got k = % and shortlist %', k, n USING ERRCODE = 'invalid_parameter_value';
	END IF;
	SELECT cd.* INTO c FROM shrinkvec.codes cd
	WHERE cd.profile = p.name AND (coalesce(stage, m[1]) IS NULL
		OR coalesce(stage, m[1]) IN (cd.column_name, cd.kind, cd.kind || ':' || cd.length))
	ORDER BY cd.position LIMIT 1;
	IF NOT FOUND THEN
		RAISE EXCEPTION 'profile % has no code %', p.name, coalesce(stage, m[1]) USING ERRCODE = 'undefined_object';
	END IF;
	-- shortlist by the asymmetric MaxSim of the code, rerank by the exact MaxSim of the tokens
	RETURN QUERY EXECUTE format(
		'SELECT t.%1$I::bigint, -shrinkvec.maxsim($1, t.%2$I) AS distance FROM ('
		'SELECT s.%1$I, s.%2$I FROM %3$s AS s ORDER BY -shrinkvec.maxsim($1, s.%4$I) LIMIT %5$s) AS t '
		'ORDER BY 2, 1 LIMIT %6$s',
		p.id_column, p.vector_column, tbl, c.column_name, n, k) USING query;
END
$search$;
COMMENT ON FUNCTION shrinkvec.search_tokens(regclass, @extschema:vector@.vector[], integer, integer, text) IS
	'late-interaction search of a profiled multi-vector table (distance maxsim): the code stage (multibit, or the configuration shrinkvec tune --apply chose) shortlists `shortlist` rows by maxsim(query, code), the exact maxsim(query, tokens) reranks them; returns the k best (id, distance = -maxsim); SECURITY INVOKER, so row-level security applies';

-- equality of multibit codes
CREATE FUNCTION multibit_eq(multibit, multibit) RETURNS boolean
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION multibit_eq(multibit, multibit) IS 'whether two multibit codes have the same tokens, dims and bits';
CREATE OPERATOR = (
	LEFTARG = multibit, RIGHTARG = multibit, FUNCTION = multibit_eq, COMMUTATOR = =
);
COMMENT ON OPERATOR = (multibit, multibit) IS 'multibit codes are equal: same token count, dims and bits';

-- ==== one codes trigger in the extension (issues 26 and 32) ====
-- Every profiled table's BEFORE INSERT OR UPDATE trigger executes this one C function; its arguments (stored in
-- pg_trigger, dumped with the table) describe the codes, so it reads no catalog and calls no function by name.
CREATE FUNCTION shrinkvec.codes_trigger() RETURNS trigger
	AS 'MODULE_PATHNAME', 'codes_trigger' LANGUAGE C;
COMMENT ON FUNCTION shrinkvec.codes_trigger() IS
	'row trigger of a profiled table: sets every code column from the vector column (NULL codes for a NULL vector), whatever the client wrote; arguments: ''v1'', vector column, id column, distance, transform name or '''', center real[] or '''', then per code: column, kind (bits, prefix, int8, multibit), length, lo, hi (real[] for int8, else '''')';
