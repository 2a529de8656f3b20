
-- PostgreSQL 15 build: this script names pgvector's types and operators without a schema, and CREATE
-- EXTENSION resolves them through this extension's schema first, then pgvector's. Refuse when this
-- extension's schema is not pgvector's and holds a type or operator that would take the place of one of
-- pgvector's (a domain `vector` planted there would get bound to the C functions).
DO $guard$
DECLARE
	here oid := (SELECT n.oid FROM pg_catalog.pg_namespace n
		WHERE n.nspname OPERATOR(pg_catalog.=) pg_catalog.current_schema());
	vec oid := (SELECT e.extnamespace FROM pg_catalog.pg_extension e WHERE e.extname OPERATOR(pg_catalog.=) 'vector');
BEGIN
	IF here OPERATOR(pg_catalog.<>) vec AND (
		EXISTS (SELECT 1 FROM pg_catalog.pg_type t WHERE t.typnamespace OPERATOR(pg_catalog.=) here
			AND t.typname OPERATOR(pg_catalog.=) ANY ('{vector,halfvec,sparsevec,_vector,_halfvec}'::pg_catalog.name[]))
		OR EXISTS (SELECT 1 FROM pg_catalog.pg_operator o WHERE o.oprnamespace OPERATOR(pg_catalog.=) here
			AND o.oprname OPERATOR(pg_catalog.=) ANY ('{<->,<#>,<=>,<~>,<+>}'::pg_catalog.name[])))
	THEN
		RAISE EXCEPTION 'schema % holds a type or operator named like one of pgvector''s', pg_catalog.current_schema()
			USING ERRCODE = 'duplicate_object',
			HINT = 'On PostgreSQL 15, install shrinkvec into pgvector''s schema or into a schema without such objects.';
	END IF;
END
$guard$;
