-- shrinkvec 0.1.0 -> 0.2.0
-- - shrinkvec_index_check is a C function: it runs the index's expressions as the table's owner
--   (SECURITY_RESTRICTED_OPERATION, as amcheck does), follows HOT chains, and refuses where row-level
--   security applies to the caller; the 0.1.0 version ran them as its caller.
-- - shrinkvec.search() runs with search_path = pg_catalog, pg_temp and finds a profile by its relation
--   (catalog revision 0005, `shrinkvec migrate`).
-- - event triggers keep the catalog on its tables: DROP removes their rows, RENAME renames them.

\echo Use "ALTER EXTENSION shrinkvec UPDATE TO '0.2.0'" to load this file. \quit

DROP FUNCTION shrinkvec_index_check(regclass);
CREATE FUNCTION shrinkvec_index_check(index regclass,
	OUT live_rows bigint, OUT index_entries bigint, OUT missing bigint, OUT duplicated bigint,
	OUT dangling bigint, OUT wrong_codes bigint, OUT ok boolean)
	AS 'MODULE_PATHNAME', 'shrinkvec_index_check' LANGUAGE C STRICT VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION shrinkvec_index_check(regclass) IS
	'checks a shrinkvec index against its table: every row visible to the snapshot indexed once (at its HOT chain''s root), no entries for other rows, bit codes equal to the column; index expressions run as the table''s owner; refused where row-level security applies to the caller';

CREATE OR REPLACE FUNCTION shrinkvec.search(
	tbl regclass, query vector, k integer DEFAULT NULL, shortlist integer DEFAULT NULL,
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
	op text;
	order_expr text;
	q text;
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
	k := coalesce(k, p.k);
	shortlist := coalesce(shortlist, p.shortlist);
	IF k < 1 OR shortlist < k THEN
		RAISE EXCEPTION 'need 1 <= k <= shortlist, got k = % and shortlist = %', k, shortlist
			USING ERRCODE = 'invalid_parameter_value';
	END IF;
	SELECT n.nspname INTO vec_schema FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace
	WHERE e.extname = 'vector';
	EXECUTE format('SELECT %I.vector_dims($1)', vec_schema) INTO dims USING query;
	IF dims <> p.dims THEN
		RAISE EXCEPTION 'expected % dimensions, got %', p.dims, dims USING ERRCODE = 'data_exception';
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

	op := CASE p.distance WHEN 'cosine' THEN '<=>' WHEN 'l2' THEN '<->' WHEN 'ip' THEN '<#>' END;
	order_expr := CASE c.kind
		WHEN 'bits' THEN format('s.%I OPERATOR(%I.<^#>) $6', c.column_name, '@extschema@')
		WHEN 'prefix' THEN format('s.%I OPERATOR(%I.<^=>) $6', c.column_name, '@extschema@')
		ELSE format('%I.%I(s.%I, $6, $4, $5)', '@extschema@',
			CASE WHEN p.distance = 'ip' THEN 'int8_ip_distance' ELSE 'int8_cosine_distance' END,
			c.column_name)
	END;
	-- tbl prints schema-qualified here (search_path holds no user schema)
	q := format(
		'SELECT t.%1$I::bigint, t.%2$I OPERATOR(%3$I.%4$s) $1 AS distance '
		'FROM (SELECT s.%1$I, s.%2$I FROM %5$s AS s ORDER BY %6$s LIMIT $3) AS t '
		'ORDER BY 2, 1 LIMIT $2',
		p.id_column, p.vector_column, vec_schema, op, tbl, order_expr);
	-- codes are ranked against the query through the profile's transform ($6); the rerank uses the raw query ($1)
	RETURN QUERY EXECUTE q USING query, k, shortlist, c.lo, c.hi,
		CASE WHEN p.transform IS NULL THEN query ELSE shrinkvec.transform_vector(query, p.transform) END;
END
$search$;
COMMENT ON FUNCTION shrinkvec.search(regclass, vector, integer, integer, text) IS
	'two-stage search of a profiled table: shortlist `shortlist` rows by a compact code (stage: bits, prefix[:N], int8 or a column; default the profile''s first code), rerank them by the full vector with the profile''s distance, return the k nearest (id, distance); SECURITY INVOKER, so row-level security applies';

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
