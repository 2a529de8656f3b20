-- binarize: sign bits, MSB-first, equal to pgvector's binary_quantize by default
SELECT binarize('[1,-2,3,0,5,6,-7,8,9]'::vector);
SELECT binarize('[1,-2,3,0,5,6,-7,8,9]'::vector) = binary_quantize('[1,-2,3,0,5,6,-7,8,9]'::vector) AS same;
SELECT binarize('[1,-2,3,0,5,6,-7,8,9]'::halfvec) = binary_quantize('[1,-2,3,0,5,6,-7,8,9]'::halfvec) AS same;
SELECT binarize('{1,-2,3,0,5,6,-7,8,9}'::real[]);
-- prefix and center
SELECT binarize('[1,-2,3,0,5]'::vector, 3);
SELECT binarize('[1,-2,3,0,5]'::vector, 5, '{2,-3,2,-1,5}');
SELECT binarize('[1,-2,3,0,5]'::vector, 3, '{2,-3,2}');
SELECT binarize('[1,-2,3,0,5]'::halfvec, 4, '{0.5,0.5,0.5,0.5,0.5}');
SELECT binarize('{0.25,-0.25}'::real[], 2, '{0.25,-0.5}');
-- the result length is dims, so it fits bit(n) columns
SELECT length(binarize(array_fill(1::real, ARRAY[16000])::vector)) AS len;
-- errors
SELECT binarize('[1,2]'::vector, 0);
SELECT binarize('[1,2]'::vector, 3);
SELECT binarize('[1,2]'::vector, 2147483647);
SELECT binarize('[1,2,3]'::vector, 2, '{0,0,0,0}');
SELECT binarize('[1,2,3]'::vector, 2, '{0,NaN,0}');
SELECT binarize('{1,NaN}'::real[]);
SELECT binarize('{1,Infinity}'::real[]);
SELECT binarize('{1,NULL}'::real[]);
SELECT binarize('{}'::real[]);
SELECT binarize('{{1,2},{3,4}}'::real[]);
SELECT binarize(array_fill(1::real, ARRAY[16001]));
-- STRICT: NULL in, NULL out
SELECT binarize(NULL::vector) IS NULL AS is_null;
