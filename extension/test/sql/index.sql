-- the shrinkvec index: plans, exact order equal to a sequential scan, options, errors, VACUUM
SET client_min_messages = warning;
CREATE TABLE items (id int PRIMARY KEY, v vector(8), b bit(8));
INSERT INTO items
	SELECT i, ARRAY(SELECT sin(i * 7 + j * 3)::real FROM generate_series(1, 8) j)::vector(8),
		binarize(ARRAY(SELECT sin(i * 7 + j * 3)::real FROM generate_series(1, 8) j)::vector(8))::bit(8)
	FROM generate_series(1, 1000) i;
ANALYZE items;

CREATE INDEX items_v ON items USING shrinkvec (v vector_cosine_ops);
CREATE INDEX items_b ON items USING shrinkvec (b);
SELECT distance, element, dims, code_bits, entry_bytes, lists, entries FROM shrinkvec_index_info('items_v');
SELECT distance, element, dims, code_bits, entry_bytes, lists, entries FROM shrinkvec_index_info('items_b');

-- KNN with LIMIT uses the index; with a shortlist covering the table, the rows equal an exact sort
-- (these 8-d points lie on a circle: 8-bit codes cannot rank them finely, see the pytest recall tests)
-- (on a table this small a sort is cheaper than 100 heap fetches: the plans below force the index)
SET enable_seqscan = off;
EXPLAIN (COSTS OFF) SELECT id FROM items ORDER BY v <=> '[1,0,1,0,1,0,1,0]' LIMIT 5;
SET shrinkvec.shortlist = 1000;
CREATE TEMP TABLE idx AS SELECT array_agg(id) AS ids FROM
	(SELECT id FROM items ORDER BY v <=> '[1,0,1,0,1,0,1,0]' LIMIT 5) s;
SET enable_indexscan = off;
SELECT ids = (SELECT array_agg(id) FROM (SELECT id FROM items ORDER BY v <=> '[1,0,1,0,1,0,1,0]' LIMIT 5) s) AS same
	FROM idx;
RESET enable_indexscan;
RESET enable_seqscan;
RESET shrinkvec.shortlist;

-- without LIMIT a full sort is cheaper; with more rows than shrinkvec.shortlist the index still serves:
-- its scan goes on batch by batch while the executor wants rows
EXPLAIN (COSTS OFF) SELECT id FROM items ORDER BY v <=> '[1,0,1,0,1,0,1,0]';
SET shrinkvec.shortlist = 10;
SET enable_seqscan = off;
EXPLAIN (COSTS OFF) SELECT id FROM items ORDER BY v <=> '[1,0,1,0,1,0,1,0]' LIMIT 20;
SELECT count(*) FROM (SELECT id FROM items ORDER BY v <=> '[1,0,1,0,1,0,1,0]' LIMIT 20) s;
RESET enable_seqscan;
RESET shrinkvec.shortlist;

-- bits: exact Hamming distances in order, full and prefix queries
EXPLAIN (COSTS OFF) SELECT id FROM items ORDER BY b <~> '10110011' LIMIT 5;
SELECT b <~> '10110011' AS d FROM items ORDER BY b <~> '10110011' LIMIT 8;
SELECT b <^> '1011' AS d FROM items ORDER BY b <^> '1011' LIMIT 3;

-- errors
SELECT id FROM items ORDER BY v <=> '[1,2]' LIMIT 1;
SELECT id FROM items ORDER BY b <~> '1011' LIMIT 1;
SELECT id FROM items ORDER BY b <^> '101100110' LIMIT 1;
CREATE TABLE nodims (v vector);
CREATE INDEX ON nodims USING shrinkvec (v);
CREATE INDEX ON items USING shrinkvec (v) WITH (bits = 9);
CREATE INDEX ON items USING shrinkvec (v) WITH (lists = -1);
CREATE INDEX ON items USING shrinkvec (b) WITH (bits = 4);

-- VACUUM removes dead entries
DELETE FROM items WHERE id > 500;
SELECT live_rows, index_entries, dangling, ok FROM shrinkvec_index_check('items_v');
VACUUM items;
SELECT live_rows, index_entries, missing, duplicated, dangling, wrong_codes, ok FROM shrinkvec_index_check('items_v');
SELECT live_rows, index_entries, missing, duplicated, dangling, wrong_codes, ok FROM shrinkvec_index_check('items_b');
DROP TABLE items, nodims;
