-- the shrinkvec index on a bit(64) column with bit_hamming_ops: `<~>` (Hamming distance of equal lengths)
-- and `<^>` (a shorter query: the distance over its prefix). Its order is exact: distance, then TID; the
-- rows are inserted in id order, so the sequential scan's `ORDER BY distance, id` is the same order, ties
-- included. Flat and IVF (lists, probes), filters, inserts and VACUUM, errors.
SET client_min_messages = warning;
CREATE TABLE codes (id int PRIMARY KEY, cat int NOT NULL, b bit(64));
INSERT INTO codes
	SELECT i, i % 5,
		binarize(ARRAY(SELECT sin(i * 1.37 + j * j * 0.71)::real FROM generate_series(1, 64) j)::vector(64))::bit(64)
	FROM generate_series(1, 2000) i;
CREATE TABLE qs (qid int PRIMARY KEY, q bit(64));
INSERT INTO qs
	SELECT k, binarize(ARRAY(SELECT cos(k * 2.9 + j * 0.53)::real FROM generate_series(1, 64) j)::vector(64))::bit(64)
	FROM generate_series(1, 5) k;
ANALYZE codes;

-- the exact answers (computed with index scans off): top 20 by <~>, top 20 of cat = 2, top 20 by a 16-bit prefix
CREATE VIEW exact_answers AS
	SELECT qid,
		(SELECT array_agg(id) FROM (SELECT id FROM codes ORDER BY b <~> q, id LIMIT 20) s) AS top20,
		(SELECT array_agg(id) FROM (SELECT id FROM codes WHERE cat = 2 ORDER BY b <~> q, id LIMIT 20) s) AS cat2_top20,
		(SELECT array_agg(id) FROM (SELECT id FROM codes ORDER BY b <^> substring(q FROM 1 FOR 16), id LIMIT 20) s)
			AS prefix_top20
	FROM qs;
CREATE TABLE exact AS SELECT * FROM exact_answers;
CREATE VIEW answers AS
	SELECT qid,
		(SELECT array_agg(id) FROM (SELECT id FROM codes ORDER BY b <~> q LIMIT 20) s) AS top20,
		(SELECT array_agg(id) FROM (SELECT id FROM codes WHERE cat = 2 ORDER BY b <~> q LIMIT 20) s) AS cat2_top20,
		(SELECT array_agg(id) FROM (SELECT id FROM codes ORDER BY b <^> substring(q FROM 1 FOR 16) LIMIT 20) s)
			AS prefix_top20
	FROM qs;
-- the distances of the first query's top 20 (integers: many ties, broken by id)
SELECT id, b <~> q AS hamming FROM codes, qs WHERE qid = 1 ORDER BY b <~> q, id LIMIT 20;

-- flat (bit_hamming_ops is flat unless lists is given)
CREATE INDEX codes_b ON codes USING shrinkvec (b bit_hamming_ops);
SELECT distance, element, dims, code_bits, lists, entries FROM shrinkvec_index_info('codes_b');
SET enable_seqscan = off;
EXPLAIN (COSTS OFF) SELECT id FROM codes ORDER BY b <~> '1011001110110011101100111011001110110011101100111011001110110011' LIMIT 20;
EXPLAIN (COSTS OFF) SELECT id FROM codes WHERE cat = 2 ORDER BY b <^> '1011001110110011' LIMIT 20;
-- with the default shortlist (100) the answers are exact: the scan's batches are exact Hamming order
SELECT a.qid, a.top20 = e.top20 AS same_top20, a.cat2_top20 = e.cat2_top20 AS same_cat2,
		a.prefix_top20 = e.prefix_top20 AS same_prefix
	FROM answers a JOIN exact e USING (qid) ORDER BY qid;
-- a shortlist of 10: the scan reads on batch by batch, still exact
SET shrinkvec.shortlist = 10;
SELECT a.qid, a.top20 = e.top20 AS same_top20, a.cat2_top20 = e.cat2_top20 AS same_cat2,
		a.prefix_top20 = e.prefix_top20 AS same_prefix
	FROM answers a JOIN exact e USING (qid) ORDER BY qid;
-- every row, each once, in exact order
SELECT count(*) AS rows_, count(DISTINCT id) AS distinct_,
		bool_and(d >= prev) AS ascending
	FROM (SELECT id, d, lag(d, 1, 0) OVER () AS prev FROM
		(SELECT id, b <~> (SELECT q FROM qs WHERE qid = 3) AS d FROM codes
			ORDER BY b <~> (SELECT q FROM qs WHERE qid = 3)) s) t;
RESET shrinkvec.shortlist;
RESET enable_seqscan;

-- IVF: 4 lists (centroids by k-majority); all lists probed: exact; one probe: complete answers
DROP INDEX codes_b;
CREATE INDEX codes_b ON codes USING shrinkvec (b bit_hamming_ops) WITH (lists = 4);
SELECT lists, entries FROM shrinkvec_index_info('codes_b');
SET enable_seqscan = off;
SET shrinkvec.probes = 4;
SELECT a.qid, a.top20 = e.top20 AS same_top20, a.cat2_top20 = e.cat2_top20 AS same_cat2,
		a.prefix_top20 = e.prefix_top20 AS same_prefix
	FROM answers a JOIN exact e USING (qid) ORDER BY qid;
SET shrinkvec.probes = 1;
SELECT qid, cardinality(top20) AS n, cardinality(cat2_top20) AS n_cat2, cardinality(prefix_top20) AS n_prefix
	FROM answers ORDER BY qid;
RESET shrinkvec.probes;
RESET enable_seqscan;

-- inserts after the build, deletes and VACUUM
DROP INDEX codes_b;
CREATE INDEX codes_b ON codes USING shrinkvec (b bit_hamming_ops);
INSERT INTO codes
	SELECT i, i % 5,
		binarize(ARRAY(SELECT sin(i * 1.37 + j * j * 0.71)::real FROM generate_series(1, 64) j)::vector(64))::bit(64)
	FROM generate_series(2001, 2300) i;
DELETE FROM codes WHERE id % 9 = 0;
VACUUM codes;
SELECT live_rows, index_entries, missing, duplicated, dangling, wrong_codes, ok FROM shrinkvec_index_check('codes_b');
SET enable_indexscan = off;
CREATE TABLE exact_after AS SELECT * FROM exact_answers;
RESET enable_indexscan;
SET enable_seqscan = off;
-- (the inserts came before the deletes, so TID order is still id order)
SELECT count(*) FILTER (WHERE a.top20 = e.top20 AND a.cat2_top20 = e.cat2_top20 AND a.prefix_top20 = e.prefix_top20)
		AS same, count(*) AS queries
	FROM answers a JOIN exact_after e USING (qid);
RESET enable_seqscan;

-- errors
SET enable_seqscan = off;
SELECT id FROM codes ORDER BY b <~> '1011' LIMIT 1;
SELECT id FROM codes ORDER BY b <^> (B'1' || repeat('0', 64)::bit(64)) LIMIT 1;
RESET enable_seqscan;
CREATE INDEX ON codes USING shrinkvec (b bit_hamming_ops) WITH (bits = 16);
CREATE INDEX ON codes USING shrinkvec (b bit_hamming_ops) WITH (refine = 4);
CREATE TABLE novar (b varbit);
CREATE INDEX ON novar USING shrinkvec (b bit_hamming_ops);
CREATE TABLE vecs (v vector(8));
CREATE INDEX ON vecs USING shrinkvec (v bit_hamming_ops);
DROP TABLE codes, qs, exact, exact_after, novar, vecs CASCADE;
