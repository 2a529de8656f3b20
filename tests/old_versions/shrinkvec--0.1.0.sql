-- shrinkvec 0.1.0: compact codes beside pgvector columns.
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

CREATE FUNCTION binarize(vector) RETURNS bit
	AS 'MODULE_PATHNAME', 'binarize_vector' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION binarize(vector, integer) RETURNS bit
	AS 'MODULE_PATHNAME', 'binarize_vector' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION binarize(vector, integer, real[]) RETURNS bit
	AS 'MODULE_PATHNAME', 'binarize_vector' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION binarize(halfvec) RETURNS bit
	AS 'MODULE_PATHNAME', 'binarize_halfvec' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION binarize(halfvec, integer) RETURNS bit
	AS 'MODULE_PATHNAME', 'binarize_halfvec' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION binarize(halfvec, integer, real[]) RETURNS bit
	AS 'MODULE_PATHNAME', 'binarize_halfvec' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION binarize(real[]) RETURNS bit
	AS 'MODULE_PATHNAME', 'binarize_array' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION binarize(real[], integer) RETURNS bit
	AS 'MODULE_PATHNAME', 'binarize_array' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION binarize(real[], integer, real[]) RETURNS bit
	AS 'MODULE_PATHNAME', 'binarize_array' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;

COMMENT ON FUNCTION binarize(vector) IS
	'sign bits of the vector, MSB-first (bit i is 1 when v[i] > 0); equals binary_quantize(v)';
COMMENT ON FUNCTION binarize(vector, integer) IS
	'sign bits of the first dims dimensions (a Matryoshka prefix code)';
COMMENT ON FUNCTION binarize(vector, integer, real[]) IS
	'sign bits of (v - center) over the first dims dimensions; center has the vector''s or dims elements';
COMMENT ON FUNCTION binarize(halfvec) IS
	'sign bits of the halfvec, MSB-first (bit i is 1 when v[i] > 0)';
COMMENT ON FUNCTION binarize(halfvec, integer) IS
	'sign bits of the first dims dimensions of the halfvec';
COMMENT ON FUNCTION binarize(halfvec, integer, real[]) IS
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

CREATE FUNCTION bit_ip(bit, vector) RETURNS double precision
	AS 'MODULE_PATHNAME', 'bit_ip' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION bit_ip(bit, vector) IS
	'asymmetric distance -(sum of q[i] * (2 * bit_i - 1)) over the code''s length: float query, bit document';

CREATE OPERATOR <^#> (
	LEFTARG = bit, RIGHTARG = vector, FUNCTION = bit_ip
);
COMMENT ON OPERATOR <^#> (bit, vector) IS
	'asymmetric bit distance of a code to a float query (for ORDER BY code <^#> query LIMIT k)';

-- ---------------------------------------------------------------------------
-- Matryoshka prefix cosine distance
-- ---------------------------------------------------------------------------

CREATE FUNCTION prefix_cosine_distance(vector, vector) RETURNS double precision
	AS 'MODULE_PATHNAME', 'prefix_cosine_distance' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION prefix_cosine_distance(vector, vector, integer) RETURNS double precision
	AS 'MODULE_PATHNAME', 'prefix_cosine_distance' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION prefix_cosine_distance(halfvec, halfvec) RETURNS double precision
	AS 'MODULE_PATHNAME', 'halfvec_prefix_cosine_distance' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION prefix_cosine_distance(halfvec, halfvec, integer) RETURNS double precision
	AS 'MODULE_PATHNAME', 'halfvec_prefix_cosine_distance' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION prefix_cosine_distance(vector, vector) IS
	'cosine distance over the first min(dim a, dim b) dimensions, without building subvectors';
COMMENT ON FUNCTION prefix_cosine_distance(vector, vector, integer) IS
	'cosine distance over the first dims dimensions, without building subvectors';
COMMENT ON FUNCTION prefix_cosine_distance(halfvec, halfvec) IS
	'cosine distance over the first min(dim a, dim b) dimensions of two halfvecs';
COMMENT ON FUNCTION prefix_cosine_distance(halfvec, halfvec, integer) IS
	'cosine distance over the first dims dimensions of two halfvecs';

CREATE OPERATOR <^=> (
	LEFTARG = vector, RIGHTARG = vector, FUNCTION = prefix_cosine_distance,
	COMMUTATOR = '<^=>'
);
CREATE OPERATOR <^=> (
	LEFTARG = halfvec, RIGHTARG = halfvec, FUNCTION = prefix_cosine_distance,
	COMMUTATOR = '<^=>'
);
COMMENT ON OPERATOR <^=> (vector, vector) IS
	'prefix cosine distance: the shorter operand (the query) gives the prefix length';
COMMENT ON OPERATOR <^=> (halfvec, halfvec) IS
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

CREATE FUNCTION quantize_int8(vector, real[], real[]) RETURNS int8vec
	AS 'MODULE_PATHNAME', 'quantize_int8_vector' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION quantize_int8(halfvec, real[], real[]) RETURNS int8vec
	AS 'MODULE_PATHNAME', 'quantize_int8_halfvec' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION quantize_int8(real[], real[], real[]) RETURNS int8vec
	AS 'MODULE_PATHNAME', 'quantize_int8_array' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION quantize_int8(vector, real[], real[]) IS
	'int8 code with per-dimension ranges lo, hi: rint(clip((v - lo) / ((hi - lo) / 255), 0, 255)) - 128; clipped, never wrapped';
COMMENT ON FUNCTION quantize_int8(halfvec, real[], real[]) IS
	'int8 code of a halfvec with per-dimension ranges lo, hi (clipped)';
COMMENT ON FUNCTION quantize_int8(real[], real[], real[]) IS
	'int8 code of a real[] with per-dimension ranges lo, hi (clipped)';

CREATE FUNCTION dequantize_int8(int8vec, real[], real[]) RETURNS vector
	AS 'MODULE_PATHNAME', 'dequantize_int8' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION dequantize_int8(int8vec, real[], real[]) IS
	'vector reconstructed from an int8 code: lo + (q + 128) * (hi - lo) / 255';

CREATE FUNCTION int8_ip_distance(int8vec, vector, real[], real[]) RETURNS double precision
	AS 'MODULE_PATHNAME', 'int8_ip_distance' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION int8_cosine_distance(int8vec, vector, real[], real[]) RETURNS double precision
	AS 'MODULE_PATHNAME', 'int8_cosine_distance' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION int8_ip_distance(int8vec, vector, real[], real[]) IS
	'negative inner product of a float query and the dequantized code (as pgvector''s <#>)';
COMMENT ON FUNCTION int8_cosine_distance(int8vec, vector, real[], real[]) IS
	'cosine distance of a float query and the dequantized code (NaN for a zero norm, as pgvector)';

CREATE TYPE int8vec_ranges AS (lo real[], hi real[]);
COMMENT ON TYPE int8vec_ranges IS 'per-dimension calibration ranges of an int8 code';

CREATE FUNCTION int8_ranges_accum(internal, vector) RETURNS internal
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE PARALLEL SAFE;
CREATE FUNCTION int8_ranges_coverage_accum(internal, vector, double precision) RETURNS internal
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE PARALLEL SAFE;
CREATE FUNCTION int8_ranges_final(internal) RETURNS int8vec_ranges
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE PARALLEL SAFE;
COMMENT ON FUNCTION int8_ranges_accum(internal, vector) IS 'transition function of int8_ranges(vector)';
COMMENT ON FUNCTION int8_ranges_coverage_accum(internal, vector, double precision) IS
	'transition function of int8_ranges(vector, coverage)';
COMMENT ON FUNCTION int8_ranges_final(internal) IS 'final function of int8_ranges';

CREATE AGGREGATE int8_ranges(vector) (
	SFUNC = int8_ranges_accum, STYPE = internal, FINALFUNC = int8_ranges_final,
	PARALLEL = SAFE
);
CREATE AGGREGATE int8_ranges(vector, double precision) (
	SFUNC = int8_ranges_coverage_accum, STYPE = internal, FINALFUNC = int8_ranges_final,
	PARALLEL = SAFE
);
COMMENT ON AGGREGATE int8_ranges(vector) IS
	'per-dimension (lo, hi) = (min, max) of a vector column, for quantize_int8';
COMMENT ON AGGREGATE int8_ranges(vector, double precision) IS
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

CREATE OPERATOR CLASS bit_hamming_ops DEFAULT FOR TYPE bit USING shrinkvec AS
	OPERATOR 1 <~> (bit, bit) FOR ORDER BY float_ops,
	OPERATOR 2 <^> (bit, bit) FOR ORDER BY integer_ops,
	FUNCTION 1 shrinkvec_hamming_kind(internal);

CREATE OPERATOR CLASS vector_l2_ops DEFAULT FOR TYPE vector USING shrinkvec AS
	OPERATOR 1 <-> (vector, vector) FOR ORDER BY float_ops,
	FUNCTION 1 shrinkvec_l2_kind(internal);
CREATE OPERATOR CLASS vector_ip_ops FOR TYPE vector USING shrinkvec AS
	OPERATOR 1 <#> (vector, vector) FOR ORDER BY float_ops,
	FUNCTION 1 shrinkvec_ip_kind(internal);
CREATE OPERATOR CLASS vector_cosine_ops FOR TYPE vector USING shrinkvec AS
	OPERATOR 1 <=> (vector, vector) FOR ORDER BY float_ops,
	FUNCTION 1 shrinkvec_cosine_kind(internal);

CREATE OPERATOR CLASS halfvec_l2_ops DEFAULT FOR TYPE halfvec USING shrinkvec AS
	OPERATOR 1 <-> (halfvec, halfvec) FOR ORDER BY float_ops,
	FUNCTION 1 shrinkvec_l2_kind(internal);
CREATE OPERATOR CLASS halfvec_ip_ops FOR TYPE halfvec USING shrinkvec AS
	OPERATOR 1 <#> (halfvec, halfvec) FOR ORDER BY float_ops,
	FUNCTION 1 shrinkvec_ip_kind(internal);
CREATE OPERATOR CLASS halfvec_cosine_ops FOR TYPE halfvec USING shrinkvec AS
	OPERATOR 1 <=> (halfvec, halfvec) FOR ORDER BY float_ops,
	FUNCTION 1 shrinkvec_cosine_kind(internal);

CREATE FUNCTION shrinkvec_index_info(index regclass,
	OUT distance text, OUT element text, OUT dims integer, OUT code_bits integer,
	OUT entry_bytes integer, OUT lists integer, OUT entries_per_page integer,
	OUT entries bigint, OUT data_pages bigint, OUT pages bigint, OUT size_bytes bigint,
	OUT build_rows bigint)
	AS 'MODULE_PATHNAME', 'shrinkvec_index_info' LANGUAGE C STRICT VOLATILE PARALLEL SAFE;
COMMENT ON FUNCTION shrinkvec_index_info(regclass) IS
	'layout and size of a shrinkvec index: distance, element type, code bits, bytes per entry, lists, entries and pages';

CREATE FUNCTION shrinkvec_index_entries(index regclass, OUT tid tid, OUT list integer, OUT code bit)
	RETURNS SETOF record
	AS 'MODULE_PATHNAME', 'shrinkvec_index_entries' LANGUAGE C STRICT VOLATILE PARALLEL SAFE;
COMMENT ON FUNCTION shrinkvec_index_entries(regclass) IS
	'every entry of a shrinkvec index: heap TID, list and stored code';

CREATE FUNCTION shrinkvec_index_check(index regclass,
	OUT live_rows bigint, OUT index_entries bigint, OUT missing bigint, OUT duplicated bigint,
	OUT dangling bigint, OUT wrong_codes bigint, OUT ok boolean)
	LANGUAGE plpgsql STRICT VOLATILE
	SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	heap regclass;
	expr text;
	pred text;
	is_bit boolean;
BEGIN
	SELECT i.indrelid::regclass, pg_get_indexdef(i.indexrelid, 1, true),
		coalesce(pg_get_expr(i.indpred, i.indrelid), 'true')
	INTO heap, expr, pred
	FROM pg_index i WHERE i.indexrelid = index;
	is_bit := (SELECT element = 'bit' FROM @extschema@.shrinkvec_index_info(index));
	EXECUTE format($q$
		WITH h AS (SELECT ctid AS tid, (%1$s) AS val FROM %2$s WHERE (%1$s) IS NOT NULL AND (%3$s)),
		     e AS (SELECT tid, code FROM @extschema@.shrinkvec_index_entries($1)),
		     counts AS (SELECT tid, count(*) AS n FROM e GROUP BY tid)
		SELECT (SELECT count(*) FROM h),
		       (SELECT count(*) FROM e),
		       (SELECT count(*) FROM h WHERE NOT EXISTS (SELECT 1 FROM counts c WHERE c.tid = h.tid)),
		       (SELECT coalesce(sum(n - 1), 0) FROM counts WHERE n > 1),
		       (SELECT count(*) FROM counts c WHERE NOT EXISTS (SELECT 1 FROM h WHERE h.tid = c.tid)),
		       CASE WHEN $2 THEN (SELECT count(*) FROM h JOIN e USING (tid) WHERE e.code::text <> h.val::text) END
	$q$, expr, heap, pred)
	INTO live_rows, index_entries, missing, duplicated, dangling, wrong_codes
	USING index, is_bit;
	ok := missing = 0 AND duplicated = 0 AND dangling = 0 AND coalesce(wrong_codes, 0) = 0;
END
$$;
COMMENT ON FUNCTION shrinkvec_index_check(regclass) IS
	'checks a shrinkvec index against its table: every live row indexed once, no entries for missing rows, bit codes equal to the column';

-- ==== catalog and search (issue 4) ====
-- The schema `shrinkvec` belongs to the extension; the catalog tables in it (profiles, codes,
-- transforms, loads) are created and upgraded by alembic (`shrinkvec migrate`, migrations/), which
-- runs CREATE EXTENSION IF NOT EXISTS shrinkvec CASCADE first. search() reads the catalog at run time.

CREATE SCHEMA shrinkvec;
COMMENT ON SCHEMA shrinkvec IS
	'shrinkvec catalog (tables managed by `shrinkvec migrate`) and search()';
-- every role may call search(); the catalog's row-level security decides what it may see and change
GRANT USAGE ON SCHEMA shrinkvec TO PUBLIC;

CREATE FUNCTION shrinkvec.search(
	tbl regclass, query vector, k integer DEFAULT NULL, shortlist integer DEFAULT NULL,
	stage text DEFAULT NULL)
RETURNS TABLE (id bigint, distance double precision)
LANGUAGE plpgsql STABLE SECURITY INVOKER PARALLEL SAFE
AS $search$
DECLARE
	p record;
	c record;
	vec_schema name;
	op text;
	order_expr text;
	q text;
BEGIN
	IF to_regclass('shrinkvec.profiles') IS NULL OR to_regclass('shrinkvec.codes') IS NULL THEN
		RAISE EXCEPTION 'the shrinkvec catalog does not exist in this database'
			USING ERRCODE = 'object_not_in_prerequisite_state', HINT = 'run: shrinkvec migrate --dsn ...';
	END IF;
	SELECT pr.* INTO p FROM shrinkvec.profiles pr
	WHERE to_regclass(format('%I.%I', pr.table_schema, pr.table_name)) = tbl
	ORDER BY pr.name LIMIT 1;
	IF NOT FOUND THEN
		RAISE EXCEPTION 'table % has no shrinkvec profile', tbl USING ERRCODE = 'undefined_object';
	END IF;
	k := coalesce(k, p.k);
	shortlist := coalesce(shortlist, p.shortlist);
	IF k < 1 OR shortlist < k THEN
		RAISE EXCEPTION 'need 1 <= k <= shortlist, got k = % and shortlist = %', k, shortlist
			USING ERRCODE = 'invalid_parameter_value';
	END IF;
	IF vector_dims(query) <> p.dims THEN
		RAISE EXCEPTION 'expected % dimensions, got %', p.dims, vector_dims(query) USING ERRCODE = 'data_exception';
	END IF;
	-- the stage: a code kind ('bits', 'prefix', 'int8'), 'kind:length', a column name, or the first code
	SELECT cd.* INTO c FROM shrinkvec.codes cd
	WHERE cd.profile = p.name
	  AND (stage IS NULL OR stage IN (cd.column_name, cd.kind,
		CASE WHEN cd.kind = 'int8' THEN 'int8' ELSE cd.kind || ':' || cd.length END))
	ORDER BY cd.position LIMIT 1;
	IF NOT FOUND THEN
		RAISE EXCEPTION 'profile % has no code %', p.name, coalesce(stage, '(any)') USING ERRCODE = 'undefined_object';
	END IF;

	SELECT n.nspname INTO vec_schema FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace
	WHERE e.extname = 'vector';
	op := CASE p.distance WHEN 'cosine' THEN '<=>' WHEN 'l2' THEN '<->' WHEN 'ip' THEN '<#>' END;
	order_expr := CASE c.kind
		WHEN 'bits' THEN format('s.%I OPERATOR(%I.<^#>) $6', c.column_name, '@extschema@')
		WHEN 'prefix' THEN format('s.%I OPERATOR(%I.<^=>) $6', c.column_name, '@extschema@')
		ELSE format('%I.%s(s.%I, $6, $4, $5)', '@extschema@',
			CASE WHEN p.distance = 'ip' THEN 'int8_ip_distance' ELSE 'int8_cosine_distance' END,
			c.column_name)
	END;
	q := format(
		'SELECT t.%1$I::bigint, t.%2$I OPERATOR(%3$I.%4$s) $1 AS distance '
		'FROM (SELECT s.%1$I, s.%2$I FROM %5$I.%6$I AS s ORDER BY %7$s LIMIT $3) AS t '
		'ORDER BY 2, 1 LIMIT $2',
		p.id_column, p.vector_column, vec_schema, op, p.table_schema, p.table_name, order_expr);
	-- codes are ranked against the query through the profile's transform ($6); the rerank uses the raw query ($1)
	RETURN QUERY EXECUTE q USING query, k, shortlist, c.lo, c.hi,
		CASE WHEN p.transform IS NULL THEN query ELSE shrinkvec.transform_vector(query, p.transform) END;
END
$search$;
COMMENT ON FUNCTION shrinkvec.search(regclass, vector, integer, integer, text) IS
	'two-stage search of a profiled table: shortlist `shortlist` rows by a compact code (stage: bits, prefix[:N], int8 or a column; default the profile''s first code), rerank them by the full vector with the profile''s distance, return the k nearest (id, distance); SECURITY INVOKER, so row-level security applies';

-- ==== transforms (issue 7) ====
-- A transform (centring, PCA rotation, Matryoshka-Adaptor) is a row of the catalog table
-- shrinkvec.transforms (created by `shrinkvec migrate`, immutable once stored). transform_vector()
-- applies it in C, exactly as the numpy reference (pytools/shrinkvec/transforms.py), so the codes the
-- table's trigger computes and the query the search ranks codes with use the same map. The full
-- vector is never transformed: the rerank stays exact.

CREATE FUNCTION shrinkvec.transform_vector(v vector, transform text) RETURNS vector
	AS 'MODULE_PATHNAME', 'transform_vector' LANGUAGE C STABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION shrinkvec.transform_vector(vector, text) IS
	'the stored transform `transform` (shrinkvec.transforms) applied to v: center, rotate, residual MLP; STABLE because it reads the catalog (each backend reads a transform once; transforms are immutable)';
CREATE FUNCTION shrinkvec.transform_vector(v halfvec, transform text) RETURNS vector
	AS 'MODULE_PATHNAME', 'transform_halfvec' LANGUAGE C STABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION shrinkvec.transform_vector(halfvec, text) IS
	'the stored transform `transform` applied to a halfvec (elements widened to real first); returns a vector';
