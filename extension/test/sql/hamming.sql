-- hamming: equal lengths, prefixes, explicit bit counts
SELECT hamming(B'1011', B'0100');
SELECT hamming(B'10110000111', B'10110000111');
SELECT hamming(B'1011', B'10');
SELECT hamming(B'10', B'1011');
SELECT hamming(B'', B'1011');
SELECT hamming(B'1011', B'0100', 3);
SELECT hamming(B'1011', B'0100', 0);
SELECT B'1011' <^> B'0111' AS op;
SELECT hamming(binarize(v), binarize(q)) = (binarize(v) <~> binarize(q))::integer AS same_as_pgvector
FROM (SELECT '[1,-2,3,4,-5,6,7,-8,9]'::vector AS v, '[-1,-2,3,4,5,-6,7,8,9]'::vector AS q) t;
-- errors
SELECT hamming(B'1011', B'01', 3);
SELECT hamming(B'1011', B'0100', -1);
-- ORDER BY the prefix operator: a 16-bit column searched with a 4-bit query
CREATE TABLE codes (id int, code bit(16));
INSERT INTO codes VALUES (1, B'1111000011110000'), (2, B'0000111100001111'), (3, B'1010101010101010');
SELECT id, code <^> B'1011' AS d FROM codes ORDER BY code <^> B'1011', id;
DROP TABLE codes;
-- bit_ip: -(sum q_i (2 b_i - 1)) over the code's length
SELECT bit_ip(B'101', '[1,2,3,4]');
SELECT bit_ip(B'1', '[0.5]');
SELECT B'0000' <^#> '[1,2,3,4]'::vector AS op;
SELECT bit_ip(B'1111', '[1,2,3]');
