-- the shrinkvec index on a vector(16) column with vector_l2_ops (<->), as users see it: the plan uses the
-- index, and with a shortlist (and probes) covering the table its answers equal the sequential scan's
-- exact order; filters get complete answers; IVF, refine codes and a coded prefix; inserts and VACUUM;
-- bad options and bad queries. Only ids, counts and booleans are printed (no float distances), so the
-- output is the same with every kernel (scalar, AVX2, AVX-512).
SET client_min_messages = warning;
CREATE TABLE docs (id int PRIMARY KEY, cat int NOT NULL, v vector(16));
INSERT INTO docs
	SELECT i, i % 7, ARRAY(SELECT sin(i * 1.37 + j * j * 0.71)::real FROM generate_series(1, 16) j)::vector(16)
	FROM generate_series(1, 1200) i;
-- the queries: 5 points of the same kind, none of them a row
CREATE TABLE qs (qid int PRIMARY KEY, q vector(16));
INSERT INTO qs
	SELECT k, ARRAY(SELECT cos(k * 2.9 + j * 0.53)::real FROM generate_series(1, 16) j)::vector(16)
	FROM generate_series(1, 5) k;
ANALYZE docs;

-- the exact answers (no index yet): top 10 of every query, all rows with cat = 3 in order, top 10 of cat = 3
CREATE TABLE exact AS
	SELECT qid,
		(SELECT array_agg(id) FROM (SELECT id FROM docs ORDER BY v <-> q, id LIMIT 10) s) AS top10,
		(SELECT array_agg(id) FROM (SELECT id FROM docs WHERE cat = 3 ORDER BY v <-> q, id LIMIT 10) s) AS cat3_top10
	FROM qs;
-- no two rows at the same distance from a query (so one exact order exists and the comparisons below are exact)
SELECT count(*) AS ties FROM qs, LATERAL (SELECT v <-> q AS d FROM docs GROUP BY 1 HAVING count(*) > 1) t;

-- a view that runs the same queries through whatever plan is chosen (below: the index, forced by
-- enable_seqscan = off; each subquery is an Index Scan ordered by v <-> qs.q)
CREATE VIEW answers AS
	SELECT qid,
		(SELECT array_agg(id) FROM (SELECT id FROM docs ORDER BY v <-> q LIMIT 10) s) AS top10,
		(SELECT array_agg(id) FROM (SELECT id FROM docs WHERE cat = 3 ORDER BY v <-> q LIMIT 10) s) AS cat3_top10
	FROM qs;

-- flat index (lists = 1)
CREATE INDEX docs_v ON docs USING shrinkvec (v vector_l2_ops) WITH (lists = 1);
SELECT distance, element, dims, code_bits, lists, entries, refine_bits FROM shrinkvec_index_info('docs_v');
SET enable_seqscan = off;
EXPLAIN (COSTS OFF) SELECT id FROM docs ORDER BY v <-> '[1,0,1,0,1,0,1,0,1,0,1,0,1,0,1,0]' LIMIT 10;
EXPLAIN (COSTS OFF) SELECT id FROM docs WHERE cat = 3 ORDER BY v <-> '[1,0,1,0,1,0,1,0,1,0,1,0,1,0,1,0]' LIMIT 10;
-- a shortlist as large as the table: the index answers are the exact ones (same ids, same order)
SET shrinkvec.shortlist = 1200;
SELECT a.qid, a.top10 = e.top10 AS same_top10, a.cat3_top10 = e.cat3_top10 AS same_cat3, a.top10
	FROM answers a JOIN exact e USING (qid) ORDER BY qid;
-- the default shortlist (100): every answer is complete (10 rows), also under a filter that keeps 1/7
RESET shrinkvec.shortlist;
SELECT qid, cardinality(top10) AS n, cardinality(cat3_top10) AS n_cat3 FROM answers ORDER BY qid;
-- every row, each once: the scan goes on while the executor wants rows
SELECT count(*) AS rows_, count(DISTINCT id) AS distinct_ FROM
	(SELECT id FROM docs ORDER BY v <-> (SELECT q FROM qs WHERE qid = 2)) s;
-- a NULL query returns every row, with a NULL distance
SELECT count(*) AS rows_, count(d) AS non_null FROM
	(SELECT v <-> NULL::vector AS d FROM docs ORDER BY v <-> NULL::vector LIMIT 2000) s;
RESET enable_seqscan;

-- IVF: 8 lists; with every list probed and a covering shortlist the answers are exact
DROP INDEX docs_v;
CREATE INDEX docs_v ON docs USING shrinkvec (v vector_l2_ops) WITH (lists = 8);
SELECT distance, dims, code_bits, lists, entries FROM shrinkvec_index_info('docs_v');
SELECT count(*) AS centroids FROM shrinkvec_index_centroids('docs_v');
SET enable_seqscan = off;
SET shrinkvec.shortlist = 1200;
SET shrinkvec.probes = 8;
SELECT a.qid, a.top10 = e.top10 AS same_top10, a.cat3_top10 = e.cat3_top10 AS same_cat3
	FROM answers a JOIN exact e USING (qid) ORDER BY qid;
-- one probe, default shortlist: still 10 rows, and the filtered query widens to every list
RESET shrinkvec.shortlist;
SET shrinkvec.probes = 1;
SELECT qid, cardinality(top10) AS n, cardinality(cat3_top10) AS n_cat3 FROM answers ORDER BY qid;
RESET shrinkvec.probes;
RESET enable_seqscan;

-- refine codes (4 bits a dimension) and a coded prefix (the first 8 dimensions): exact with covering settings
DROP INDEX docs_v;
CREATE INDEX docs_v ON docs USING shrinkvec (v vector_l2_ops) WITH (lists = 4, refine = 4);
SELECT lists, entries, refine_bits FROM shrinkvec_index_info('docs_v');
SET enable_seqscan = off;
SET shrinkvec.shortlist = 1200;
SET shrinkvec.rerank = 1200;
SET shrinkvec.probes = 4;
SELECT a.qid, a.top10 = e.top10 AS same_top10, a.cat3_top10 = e.cat3_top10 AS same_cat3
	FROM answers a JOIN exact e USING (qid) ORDER BY qid;
RESET shrinkvec.rerank;
RESET shrinkvec.probes;
DROP INDEX docs_v;
CREATE INDEX docs_v ON docs USING shrinkvec (v vector_l2_ops) WITH (lists = 1, bits = 8);
SELECT dims, code_bits FROM shrinkvec_index_info('docs_v');
SELECT a.qid, a.top10 = e.top10 AS same_top10, a.cat3_top10 = e.cat3_top10 AS same_cat3
	FROM answers a JOIN exact e USING (qid) ORDER BY qid;
RESET shrinkvec.shortlist;
RESET enable_seqscan;

-- inserts after the build, deletes, VACUUM: the index stays exact
DROP INDEX docs_v;
CREATE INDEX docs_v ON docs USING shrinkvec (v vector_l2_ops) WITH (lists = 4);
INSERT INTO docs
	SELECT i, i % 7, ARRAY(SELECT sin(i * 1.37 + j * j * 0.71)::real FROM generate_series(1, 16) j)::vector(16)
	FROM generate_series(1201, 1500) i;
DELETE FROM docs WHERE id % 10 = 0;
SELECT live_rows, index_entries, missing, duplicated, dangling, ok FROM shrinkvec_index_check('docs_v');
VACUUM docs;
SELECT live_rows, index_entries, missing, duplicated, dangling, ok FROM shrinkvec_index_check('docs_v');
SET enable_seqscan = off;
SET shrinkvec.shortlist = 1500;
SET shrinkvec.probes = 4;
CREATE TEMP TABLE via_index AS SELECT * FROM answers;
RESET enable_seqscan;
SET enable_indexscan = off;
SELECT count(*) FILTER (WHERE i.top10 = a.top10 AND i.cat3_top10 = a.cat3_top10) AS same, count(*) AS queries
	FROM via_index i JOIN answers a USING (qid);
RESET enable_indexscan;
RESET shrinkvec.shortlist;
RESET shrinkvec.probes;

-- errors: bad options, a column of another type or without dimensions, a query of other dimensions
CREATE INDEX ON docs USING shrinkvec (v vector_l2_ops) WITH (refine = 3);
CREATE INDEX ON docs USING shrinkvec (v vector_l2_ops) WITH (bits = 17);
CREATE INDEX ON docs USING shrinkvec (v vector_l2_ops) WITH (lists = 40000);
CREATE INDEX ON docs USING shrinkvec (v vector_l2_ops) WITH (probes = -1);
CREATE INDEX ON docs USING shrinkvec (id, v vector_l2_ops);
CREATE INDEX ON docs USING shrinkvec (id vector_l2_ops);
CREATE TABLE nodims (v vector);
CREATE INDEX ON nodims USING shrinkvec (v vector_l2_ops);
SET enable_seqscan = off;
SELECT id FROM docs ORDER BY v <-> '[1,2,3]' LIMIT 1;
SET shrinkvec.shortlist = -1;
SET shrinkvec.rerank = -1;
SET shrinkvec.probes = 40000;
RESET enable_seqscan;
DROP TABLE docs, qs, exact, nodims CASCADE;
