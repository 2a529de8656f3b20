-- shrinkvec 0.2.0 -> 0.3.0: security and extreme values (issues 26, 32, 33).
-- After this script the extension's objects equal a fresh 0.3.0 install (tests/test_lifecycle.py).

\echo Use "ALTER EXTENSION shrinkvec UPDATE TO '0.3.0'" to load this file. \quit

-- ==== one codes trigger in the extension (issues 26 and 32) ====
-- Every profiled table's BEFORE INSERT OR UPDATE trigger executes this one C function; its arguments (stored in
-- pg_trigger, dumped with the table) describe the codes, so it reads no catalog and calls no function by name.
CREATE FUNCTION shrinkvec.codes_trigger() RETURNS trigger
	AS 'MODULE_PATHNAME', 'codes_trigger' LANGUAGE C;
COMMENT ON FUNCTION shrinkvec.codes_trigger() IS
	'row trigger of a profiled table: sets every code column from the vector column (NULL codes for a NULL vector), whatever the client wrote; arguments: ''v1'', vector column, id column, distance, transform name or '''', center real[] or '''', then per code: column, kind (bits, prefix, int8, multibit), length, lo, hi (real[] for int8, else '''')';
