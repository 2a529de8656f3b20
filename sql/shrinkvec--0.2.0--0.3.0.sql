-- shrinkvec 0.2.0 -> 0.3.0: security and extreme values (issues 26, 32, 33).
-- After this script the extension's objects equal a fresh 0.3.0 install (tests/test_lifecycle.py).

\echo Use "ALTER EXTENSION shrinkvec UPDATE TO '0.3.0'" to load this file. \quit

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

-- search() and search_tokens() resolve the schemas of shrinkvec and pgvector at run time and check
-- the profile's column types first
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

CREATE OR REPLACE FUNCTION shrinkvec.search_tokens(
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

-- ==== one codes trigger in the extension (issues 26 and 32) ====
-- Every profiled table's BEFORE INSERT OR UPDATE trigger executes this one C function; its arguments (stored in
-- pg_trigger, dumped with the table) describe the codes, so it reads no catalog and calls no function by name.
CREATE FUNCTION shrinkvec.codes_trigger() RETURNS trigger
	AS 'MODULE_PATHNAME', 'codes_trigger' LANGUAGE C;
COMMENT ON FUNCTION shrinkvec.codes_trigger() IS
	'row trigger of a profiled table: sets every code column from the vector column (NULL codes for a NULL vector), whatever the client wrote; arguments: ''v1'', vector column, id column, distance, transform name or '''', center real[] or '''', then per code: column, kind (bits, prefix, int8, multibit), length, lo, hi (real[] for int8, else '''')';
