-- late interaction: maxsim, binarize of token arrays, the multibit type

-- exact MaxSim: per query token the best dot product, summed
SELECT maxsim('{"[1,2,3]","[0,1,0]"}'::vector[], '{"[1,0,0]","[0,0,1]"}'::vector[]);
SELECT maxsim('{"[1,2,3]","[0,1,0]"}'::halfvec[], '{"[1,0,0]","[0,0,1]"}'::halfvec[]);
SELECT maxsim('{"[-1,-1]"}'::vector[], '{"[1,1]","[2,2]"}'::vector[]);

-- binarize every token: sign bits, optional dims and center
SELECT binarize('{"[1,-2,3]","[-1,1,0]"}'::vector[]);
SELECT binarize('{"[1,-2,3]","[-1,1,0]"}'::vector[], 2);
SELECT binarize('{"[1,-2,3]","[-1,1,0]"}'::vector[], 2, '{0.5,-3,0}');
SELECT binarize('{"[1,-2,3]","[-1,1,0]"}'::halfvec[]);
SELECT binarize('{"[1,-2,3,4,5,-6,7,8,9]"}'::vector[]);
SELECT multibit_tokens(binarize('{"[1,-2,3]","[-1,1,0]"}'::vector[])),
       vector_dims(binarize('{"[1,-2,3]","[-1,1,0]"}'::vector[], 2));

-- the asymmetric score: query tokens quantized to +-15 steps against the doc tokens' signs
SELECT maxsim('{"[1,2,3]","[0,1,0]"}'::vector[], binarize('{"[1,0,0]","[0,0,1]"}'::vector[]));
SELECT maxsim('{"[1,2,3]","[0,1,0]"}'::halfvec[], binarize('{"[1,0,0]","[0,0,1]"}'::halfvec[]));
SELECT maxsim('{"[1,2,3]","[0,1,0]"}'::vector[], '{101,001}'::varbit[]);
SELECT maxsim('{"[1,2,3]","[0,1,0]"}'::vector[], '{101,001}'::multibit);
-- a Matryoshka prefix: the first dims of each query token
SELECT maxsim('{"[1,2,3]"}'::vector[], binarize('{"[1,-1,-1]"}'::vector[], 1));

-- text form
SELECT '{101, 011}'::multibit;
SELECT '{1}'::multibit::text;

-- errors
SELECT maxsim('{}'::vector[], '{"[1]"}'::vector[]);
SELECT maxsim('{"[1]",NULL}'::vector[], '{"[1]"}'::vector[]);
SELECT maxsim('{{"[1]"},{"[2]"}}'::vector[], '{"[1]"}'::vector[]);
SELECT maxsim('{"[1,2,3]"}'::vector[], '{"[1,2,3]","[1,2,3,4]"}'::vector[]);
SELECT maxsim(ARRAY['[1,2,3]'::vector], array_fill('[1,2,3]'::vector, ARRAY[1025]));
SELECT binarize('{"[1,2]"}'::vector[], 3);
SELECT binarize('{"[1,2]"}'::vector[], 2, '{1,NaN}');
SELECT maxsim('{"[1,2]"}'::vector[], '{101}'::multibit);
SELECT '{101,10}'::multibit;
SELECT '{}'::multibit;
SELECT '{102}'::multibit;
