-- the multibit type: a document's token sign codes (one bit string per token, all of one length), as
-- users see it: text form, equality, a table column filled by binarize(vector[]), the two-stage
-- late-interaction query over it, and bad input
SET client_min_messages = warning;

-- text form: '{bits,bits,...}', spaces allowed, printed without them
SELECT '{101, 011}'::multibit;
SELECT '{ 1 , 0 }'::multibit::text;
SELECT '{1011001110110011101100111011001110110011101100111011001110110011101}'::multibit;
SELECT multibit_tokens('{1,0,1,1}'::multibit) AS tokens, vector_dims('{1,0,1,1}'::multibit) AS bits_per_token;
SELECT multibit_tokens(m) AS tokens, vector_dims(m) AS bits_per_token
	FROM (SELECT ('{' || string_agg(repeat('10', 100), ',') || '}')::multibit AS m FROM generate_series(1, 300)) s;
-- binarize of a token array gives the same value as its text
SELECT binarize('{"[1,-2,3]","[-1,1,0]"}'::vector[]) = '{101,010}'::multibit AS same;

-- equality: same tokens in the same order
SELECT '{101,011}'::multibit = '{101,011}'::multibit AS equal,
       '{101,011}'::multibit = '{011,101}'::multibit AS swapped,
       '{101,011}'::multibit = '{101}'::multibit AS fewer_tokens,
       '{101}'::multibit = '{1010}'::multibit AS longer_token,
       NULL::multibit = '{1}'::multibit AS with_null;

-- a column of codes: documents of 2 to 6 tokens of 32 dims, made by binarize(vector[])
CREATE TABLE docs (id int PRIMARY KEY, tokens vector(32)[] NOT NULL, codes multibit);
INSERT INTO docs (id, tokens)
	SELECT d, ARRAY(SELECT ARRAY(SELECT sin(d * 1.37 + t * 2.11 + j * j * 0.71)::real FROM generate_series(1, 32) j)::vector(32)
	                FROM generate_series(1, 2 + d % 5) t)
	FROM generate_series(1, 300) d;
UPDATE docs SET codes = binarize(tokens);
SELECT count(*) AS docs, sum(multibit_tokens(codes)) AS tokens, min(vector_dims(codes)) AS min_bits,
	max(vector_dims(codes)) AS max_bits, bool_and(multibit_tokens(codes) = cardinality(tokens)) AS one_code_per_token
	FROM docs;
SELECT id, codes FROM docs WHERE id IN (1, 2) ORDER BY id;
-- a Matryoshka prefix of every token: binarize(tokens, 8)
SELECT id, binarize(tokens, 8) AS prefix8 FROM docs WHERE id IN (1, 2) ORDER BY id;
SELECT count(*) AS equal_to_themselves FROM docs WHERE codes = binarize(tokens);

-- the two-stage late-interaction search: a shortlist by maxsim(q, codes), reranked by maxsim(q, tokens);
-- with a shortlist of every document it is the exact top 5
CREATE TABLE q AS SELECT ARRAY(SELECT ARRAY(SELECT cos(t * 2.9 + j * 0.53)::real FROM generate_series(1, 32) j)::vector(32)
	FROM generate_series(1, 3) t) AS q;
SELECT count(*) AS ties FROM (SELECT maxsim(q, tokens) FROM docs, q GROUP BY 1 HAVING count(*) > 1) t;
WITH exact AS (SELECT id FROM docs, q ORDER BY maxsim(q, tokens) DESC LIMIT 5),
	shortlist AS (SELECT id, tokens FROM docs, q ORDER BY maxsim(q, codes) DESC, id LIMIT 300),
	reranked AS (SELECT s.id FROM shortlist s, q ORDER BY maxsim(q, s.tokens) DESC LIMIT 5)
SELECT (SELECT array_agg(id) FROM exact) = (SELECT array_agg(id) FROM reranked) AS same_as_exact,
	(SELECT array_agg(id) FROM exact) AS top5;
-- shorter shortlists: how many of the exact top 5 each keeps
SELECT n AS shortlist, (SELECT count(*) FROM
		((SELECT id FROM docs, q ORDER BY maxsim(q, tokens) DESC LIMIT 5)
		 INTERSECT
		 (SELECT id FROM (SELECT id, tokens FROM docs, q ORDER BY maxsim(q, codes) DESC, id LIMIT n) s, q
			ORDER BY maxsim(q, s.tokens) DESC LIMIT 5)) t) AS of_top5
	FROM (VALUES (20), (50), (100), (200)) v(n) ORDER BY n;
-- a code of the first 8 dims of each token scores with the first 8 dims of each query token
SELECT bool_and(maxsim(q, binarize(tokens, 8)) =
		maxsim(ARRAY(SELECT subvector(u, 1, 8) FROM unnest(q) u), binarize(tokens, 8))) AS prefix_scores FROM docs, q;
-- the asymmetric score is a sum over query tokens of their best doc token: at most the float query's own
SELECT bool_and(maxsim(q, codes) <= (SELECT sum(x) FROM unnest(q) u, LATERAL (SELECT sum(abs(e)) AS x
	FROM unnest(u::real[]) e) t) + 1e-3) AS bounded FROM docs, q;

-- errors
SELECT '{101,10}'::multibit;
SELECT '{}'::multibit;
SELECT '{102}'::multibit;
SELECT '{101,}'::multibit;
SELECT '101'::multibit;
SELECT maxsim('{"[1,2]"}'::vector[], '{101}'::multibit);
SELECT binarize('{"[1,2]","[1,2,3]"}'::vector[]);
SELECT binarize('{}'::vector[]);
SELECT binarize(ARRAY['[1,2]'::vector, NULL]);
DROP TABLE docs, q;
