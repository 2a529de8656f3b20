-- shrinkvec.transform_vector(v, name): a stored transform applied to a vector.
-- The catalog table belongs to `shrinkvec migrate`; without it the function says so.
SELECT shrinkvec.transform_vector('[1,2]'::vector, 'none');
-- a stand-in for the catalog table, with the columns the function reads
CREATE TABLE shrinkvec.transforms (name text PRIMARY KEY, kind text, dims_in int, dims_out int, hidden int,
	center real[], matrix real[], w1 real[], b1 real[], w2 real[], b2 real[]);
INSERT INTO shrinkvec.transforms VALUES
	('center', 'center', 3, 3, NULL, '{1,2,3}', NULL, NULL, NULL, NULL, NULL),
	-- rows of a 2x3 matrix: out = [y1 + y2, 2*y3]
	('rotate', 'pca', 3, 2, NULL, '{1,1,1}', '{1,1,0, 0,0,2}', NULL, NULL, NULL, NULL),
	-- out = z + W2 relu(W1 z + b1) + b2 with W1 = [[1,-1]], b1 = [0.5], W2 = [[1],[2]], b2 = [0,-1]
	('mlp', 'adaptor', 2, 2, 1, NULL, NULL, '{1,-1}', '{0.5}', '{1,2}', '{0,-1}'),
	('bad', 'pca', 2, 2, NULL, NULL, '{1,2,3}', NULL, NULL, NULL, NULL),
	('badmlp', 'adaptor', 2, 2, 1, NULL, NULL, '{1,-1}', NULL, '{1,2}', '{0,-1}');
SELECT shrinkvec.transform_vector('[1,2,3]'::vector, 'center');
SELECT shrinkvec.transform_vector('[2,3,4]'::vector, 'rotate');
SELECT shrinkvec.transform_vector('[3,1]'::vector, 'mlp');   -- relu(2.5) = 2.5: [3 + 2.5, 1 + 5 - 1]
SELECT shrinkvec.transform_vector('[1,3]'::vector, 'mlp');   -- relu(-1.5) = 0: [1, 3 - 1]
SELECT shrinkvec.transform_vector('[3,1]'::halfvec, 'mlp') AS from_halfvec;
-- the transform is read once per backend; codes of the transformed vector
SELECT binarize(shrinkvec.transform_vector('[0,5,2]'::vector, 'center')) AS bits;
-- errors
SELECT shrinkvec.transform_vector('[1,2]'::vector, 'center');
SELECT shrinkvec.transform_vector('[1,2]'::vector, 'nope');
SELECT shrinkvec.transform_vector('[1,2]'::vector, 'bad');
SELECT shrinkvec.transform_vector('[1,2]'::vector, 'badmlp');
SELECT shrinkvec.transform_vector(NULL::vector, 'center') IS NULL AS strict;
DROP TABLE shrinkvec.transforms;
