-- prefix cosine distance over the first dims dimensions
SELECT round(prefix_cosine_distance('[1,2,3,4]'::vector, '[1,2]'::vector)::numeric, 6) AS d;
SELECT round(prefix_cosine_distance('[1,0,3,4]'::vector, '[0,1,5,5]'::vector, 2)::numeric, 6) AS d;
SELECT prefix_cosine_distance('[1,2,3]'::vector, '[4,5,6]'::vector, 3) = ('[1,2,3]'::vector <=> '[4,5,6]'::vector) AS same;
SELECT round(prefix_cosine_distance('[1,2,3,4]'::halfvec, '[1,2]'::halfvec)::numeric, 6) AS d;
SELECT round(('[3,4,100]'::vector <^=> '[3,4]'::vector)::numeric, 6) AS op;
SELECT round(('[3,4,100]'::halfvec <^=> '[-3,-4]'::halfvec)::numeric, 6) AS op;
-- zero-norm prefixes give NaN, as pgvector does for zero vectors
SELECT prefix_cosine_distance('[0,0,1]'::vector, '[1,2,3]'::vector, 2) AS zero_prefix, '[0,0]'::vector <=> '[1,2]'::vector AS pgvector;
-- errors
SELECT prefix_cosine_distance('[1,2,3]'::vector, '[1,2]'::vector, 3);
SELECT prefix_cosine_distance('[1,2,3]'::vector, '[1,2]'::vector, 0);
