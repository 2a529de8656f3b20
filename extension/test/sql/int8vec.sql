-- the int8vec type
SELECT '[1,-2,127,-128]'::int8vec;
SELECT ' [ 1 , 2 ] '::int8vec;
SELECT '[1,2,3]'::int8vec(3);
SELECT vector_dims('[1,2,3]'::int8vec);
CREATE TABLE t8 (c int8vec(2));
INSERT INTO t8 VALUES ('[1,2]');
INSERT INTO t8 VALUES ('[1,2,3]');
DROP TABLE t8;
SELECT '[128]'::int8vec;
SELECT '[-129]'::int8vec;
SELECT '[]'::int8vec;
SELECT '[1,a]'::int8vec;
SELECT '1,2'::int8vec;
SELECT '[1,2] x'::int8vec;
SELECT '[1,2]'::int8vec(0);
SELECT '[1,2]'::int8vec(16001);
-- quantize: rint(clip((v - lo) / ((hi - lo) / 255), 0, 255)) - 128, clipped never wrapped
SELECT quantize_int8('[0,0.5,1,-5,5]'::vector, '{0,0,0,0,0}', '{1,1,1,1,1}');
SELECT quantize_int8('[0.5,0.5]'::halfvec, '{0,0.5}', '{1,0.5}');
SELECT quantize_int8('{0.25,-1}'::real[], '{0,-2}', '{1,2}');
SELECT dequantize_int8(quantize_int8('[0,0.5,1]'::vector, '{0,0,0}', '{1,1,1}'), '{0,0,0}', '{1,1,1}');
SELECT round(int8_ip_distance('[127,-128]'::int8vec, '[2,3]', '{0,0}', '{1,1}')::numeric, 6) AS ip;
SELECT round(int8_cosine_distance('[127,-128]'::int8vec, '[2,3]', '{0,0}', '{1,1}')::numeric, 6) AS cos;
-- errors
SELECT quantize_int8('[1,2]'::vector, '{0,0,0}', '{1,1,1}');
SELECT quantize_int8('[1,2]'::vector, '{0,2}', '{1,1}');
SELECT quantize_int8('[1,2]'::vector, '{0,NaN}', '{1,1}');
SELECT int8_ip_distance('[1,2]'::int8vec, '[1,2,3]', '{0,0}', '{1,1}');
-- ranges: min/max, or the central coverage fraction
CREATE TABLE tr (v vector(2));
INSERT INTO tr SELECT ARRAY[i, -i]::real[]::vector FROM generate_series(1, 100) i;
SELECT (int8_ranges(v)).* FROM tr;
SELECT (int8_ranges(v, 0.9)).* FROM tr;
SELECT (int8_ranges(v, 1)).* FROM tr;
SELECT int8_ranges(v) IS NULL AS no_rows FROM tr WHERE false;
SELECT (int8_ranges(v, 0)).* FROM tr;
DROP TABLE tr;
-- ranges whose width overflows real, and a coverage that changes between rows
SELECT quantize_int8('[1]'::vector, '{-3e38}', '{3e38}');
SELECT int8_ranges(v, c) FROM (VALUES ('[1,2]'::vector, 0.5), ('[3,4]', 0.9)) t(v, c);
