-- shrinkvec 0.1.0 -> 0.2.0
-- - shrinkvec_index_check is a C function: it runs the index's expressions as the table's owner
--   (SECURITY_RESTRICTED_OPERATION, as amcheck does), follows HOT chains, and refuses where row-level
--   security applies to the caller; the 0.1.0 version ran them as its caller.
-- - shrinkvec.search() runs with search_path = pg_catalog, pg_temp and finds a profile by its relation
--   (catalog revision 0005, `shrinkvec migrate`).
-- - event triggers keep the catalog on its tables: DROP removes their rows, RENAME renames them.
-- - every opclass has support function 2, the indexed type (the C code no longer looks at type names).
-- - refine codes (WITH (refine = B)): shrinkvec_index_info and _entries show them; shrinkvec_index_centroids.

\echo Use "ALTER EXTENSION shrinkvec UPDATE TO '0.2.0'" to load this file. \quit

CREATE FUNCTION shrinkvec_bit_support(internal) RETURNS internal
	AS 'MODULE_PATHNAME', 'shrinkvec_bit_support' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION shrinkvec_vector_support(internal) RETURNS internal
	AS 'MODULE_PATHNAME', 'shrinkvec_vector_support' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION shrinkvec_halfvec_support(internal) RETURNS internal
	AS 'MODULE_PATHNAME', 'shrinkvec_halfvec_support' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION shrinkvec_bit_support(internal) IS 'support function 2 of bit_hamming_ops: the indexed type (bit)';
COMMENT ON FUNCTION shrinkvec_vector_support(internal) IS 'support function 2 of the vector opclasses: the indexed type (pgvector''s vector)';
COMMENT ON FUNCTION shrinkvec_halfvec_support(internal) IS 'support function 2 of the halfvec opclasses: the indexed type (pgvector''s halfvec)';
-- the opclasses say what they index (support function 2); the C code no longer recognises types by name
ALTER OPERATOR FAMILY bit_hamming_ops USING shrinkvec ADD FUNCTION 2 (bit, bit) shrinkvec_bit_support(internal);
ALTER OPERATOR FAMILY vector_l2_ops USING shrinkvec ADD FUNCTION 2 (vector, vector) shrinkvec_vector_support(internal);
ALTER OPERATOR FAMILY vector_ip_ops USING shrinkvec ADD FUNCTION 2 (vector, vector) shrinkvec_vector_support(internal);
ALTER OPERATOR FAMILY vector_cosine_ops USING shrinkvec ADD FUNCTION 2 (vector, vector) shrinkvec_vector_support(internal);
ALTER OPERATOR FAMILY halfvec_l2_ops USING shrinkvec ADD FUNCTION 2 (halfvec, halfvec) shrinkvec_halfvec_support(internal);
ALTER OPERATOR FAMILY halfvec_ip_ops USING shrinkvec ADD FUNCTION 2 (halfvec, halfvec) shrinkvec_halfvec_support(internal);
ALTER OPERATOR FAMILY halfvec_cosine_ops USING shrinkvec ADD FUNCTION 2 (halfvec, halfvec) shrinkvec_halfvec_support(internal);

DROP FUNCTION shrinkvec_index_info(regclass);
CREATE FUNCTION shrinkvec_index_info(index regclass,
	OUT distance text, OUT element text, OUT dims integer, OUT code_bits integer,
	OUT entry_bytes integer, OUT lists integer, OUT entries_per_page integer,
	OUT entries bigint, OUT data_pages bigint, OUT pages bigint, OUT size_bytes bigint,
	OUT build_rows bigint, OUT refine_bits integer, OUT refine_pages bigint)
	AS 'MODULE_PATHNAME', 'shrinkvec_index_info' LANGUAGE C STRICT VOLATILE PARALLEL SAFE;
COMMENT ON FUNCTION shrinkvec_index_info(regclass) IS
	'layout and size of a shrinkvec index: distance, element type, code bits, bytes per entry, lists, entries and pages, refine bits and pages';

DROP FUNCTION shrinkvec_index_entries(regclass);
CREATE FUNCTION shrinkvec_index_entries(index regclass, OUT tid tid, OUT list integer, OUT code bit,
	OUT refine bytea, OUT refine_lo real, OUT refine_step real, OUT refine_norm2 real)
	RETURNS SETOF record
	AS 'MODULE_PATHNAME', 'shrinkvec_index_entries' LANGUAGE C STRICT VOLATILE PARALLEL SAFE;
COMMENT ON FUNCTION shrinkvec_index_entries(regclass) IS
	'every entry of a shrinkvec index: heap TID, list, stored code, and its refine code and factors (NULL without refine codes)';

CREATE FUNCTION shrinkvec_index_centroids(index regclass, OUT list integer, OUT centroid real[])
	RETURNS SETOF record
	AS 'MODULE_PATHNAME', 'shrinkvec_index_centroids' LANGUAGE C STRICT VOLATILE PARALLEL SAFE;
COMMENT ON FUNCTION shrinkvec_index_centroids(regclass) IS
	'the centroid of every list of a shrinkvec index on a vector or halfvec column (the mean, for a flat index)';

DROP FUNCTION shrinkvec_index_check(regclass);
CREATE FUNCTION shrinkvec_index_check(index regclass,
	OUT live_rows bigint, OUT index_entries bigint, OUT missing bigint, OUT duplicated bigint,
	OUT dangling bigint, OUT wrong_codes bigint, OUT ok boolean)
	AS 'MODULE_PATHNAME', 'shrinkvec_index_check' LANGUAGE C STRICT VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION shrinkvec_index_check(regclass) IS
	'checks a shrinkvec index against its table: every row visible to the snapshot indexed once (at its HOT chain''s root), no entries for other rows, bit codes equal to the column; index expressions run as the table''s owner; refused where row-level security applies to the caller';

CREATE OR REPLACE FUNCTION shrinkvec.search(
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
	SELECT pr.* INTO p FROM shrinkvec.profiles pr WHERE pr.relation = tbl ORDER BY pr.name LIMIT 1;
	IF NOT FOUND THEN
		RAISE EXCEPTION 'table % has no shrinkvec profile', tbl USING ERRCODE = 'undefined_object';
	END IF;
	IF p.distance = 'maxsim' THEN
		RAISE EXCEPTION 'table % has a multi-vector profile (distance maxsim): use shrinkvec.search_tokens() with a vector[] query', tbl
			USING ERRCODE = 'datatype_mismatch';
	END IF;
	k := coalesce(k, p.k);
	SELECT n.nspname INTO vec_schema FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace
	WHERE e.extname = 'vector';
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
		PERFORM @extschema@.shrinkvec_kernels();	-- loads the library: its settings exist from here on
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
			WHEN 'bits' THEN format('%I.%I OPERATOR(%I.<^#>) $2', alias, c.column_name, '@extschema@')
			WHEN 'prefix' THEN format('%I.%I OPERATOR(%I.<^=>) $2', alias, c.column_name, '@extschema@')
			ELSE format('%I.%I(%I.%I, $2, %L::pg_catalog.float4[], %L::pg_catalog.float4[])', '@extschema@',
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
BEGIN
	-- search_path is pg_catalog only: every other name below is schema-qualified
	IF to_regclass('shrinkvec.profiles') IS NULL OR to_regclass('shrinkvec.codes') IS NULL THEN
		RAISE EXCEPTION 'the shrinkvec catalog does not exist in this database'
			USING ERRCODE = 'object_not_in_prerequisite_state', HINT = 'run: shrinkvec migrate --dsn ...';
	END IF;
	SELECT pr.* INTO p FROM shrinkvec.profiles pr WHERE pr.relation = tbl ORDER BY pr.name LIMIT 1;
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
	SELECT ns.nspname INTO vec_schema FROM pg_extension e JOIN pg_namespace ns ON ns.oid = e.extnamespace
	WHERE e.extname = 'vector';
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
			'SELECT s.%1$I::bigint, -@extschema@.maxsim($1, s.%2$I) AS distance FROM %3$s AS s ORDER BY 2, 1 LIMIT %4$s',
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
		'SELECT t.%1$I::bigint, -@extschema@.maxsim($1, t.%2$I) AS distance FROM ('
		'SELECT s.%1$I, s.%2$I FROM %3$s AS s ORDER BY -@extschema@.maxsim($1, s.%4$I) LIMIT %5$s) AS t '
		'ORDER BY 2, 1 LIMIT %6$s',
		p.id_column, p.vector_column, tbl, c.column_name, n, k) USING query;
END
$search$;
COMMENT ON FUNCTION shrinkvec.search_tokens(regclass, @extschema:vector@.vector[], integer, integer, text) IS
	'late-interaction search of a profiled multi-vector table (distance maxsim): the code stage (multibit, or the configuration shrinkvec tune --apply chose) shortlists `shortlist` rows by maxsim(query, code), the exact maxsim(query, tokens) reranks them; returns the k best (id, distance = -maxsim); SECURITY INVOKER, so row-level security applies';

-- equality of multibit codes (the profile trigger compares a stored code with the recomputed one)
CREATE FUNCTION multibit_eq(multibit, multibit) RETURNS boolean
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION multibit_eq(multibit, multibit) IS 'whether two multibit codes have the same tokens, dims and bits';
CREATE OPERATOR = (
	LEFTARG = multibit, RIGHTARG = multibit, FUNCTION = multibit_eq, COMMUTATOR = =
);
COMMENT ON OPERATOR = (multibit, multibit) IS 'multibit codes are equal: same token count, dims and bits';
