/*
 * hamming.c: distances between sign-bit codes, and from a code to a float query.
 *
 * hamming(a, b) compares the common prefix when the lengths differ, so a long code column can be
 * searched with a shorter (prefix) query.  bit_ip(code, q) is the asymmetric score
 * -(sum_{i < len(code)} q[i] * (2 * bit_i - 1)): the query stays float, the document is bits.
 */
#include "postgres.h"

#include "port/pg_bitutils.h"

#include "kernels/kernels.h"
#include "shrinkvec.h"

/* Hamming distance over the first nbits bits of two bit strings. */
static int32
hamming_prefix(VarBit *a, VarBit *b, int nbits)
{
	int			nbytes = nbits / 8;
	int			rest = nbits % 8;
	uint64		d = sv_kernels.xor_popcount(VARBITS(a), VARBITS(b), nbytes);

	if (rest > 0)
	{
		bits8		mask = (bits8) (0xFF << (8 - rest));

		d += pg_number_of_ones[(VARBITS(a)[nbytes] ^ VARBITS(b)[nbytes]) & mask];
	}
	return (int32) d;
}

PG_FUNCTION_INFO_V1(hamming);
/* SQL: hamming(bit, bit) -> int4 over the common prefix of the two codes. */
Datum
hamming(PG_FUNCTION_ARGS)
{
	VarBit	   *a = PG_GETARG_SVVARBIT_P(0);
	VarBit	   *b = PG_GETARG_SVVARBIT_P(1);

	PG_RETURN_INT32(hamming_prefix(a, b, Min(VARBITLEN(a), VARBITLEN(b))));
}

PG_FUNCTION_INFO_V1(hamming_n);
/* SQL: hamming(bit, bit, nbits) -> int4 over the first nbits bits; both codes must be that long. */
Datum
hamming_n(PG_FUNCTION_ARGS)
{
	VarBit	   *a = PG_GETARG_SVVARBIT_P(0);
	VarBit	   *b = PG_GETARG_SVVARBIT_P(1);
	int32		nbits = PG_GETARG_INT32(2);
	int			shorter = Min(VARBITLEN(a), VARBITLEN(b));

	if (nbits < 0 || nbits > shorter)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("bit count %d is out of range: the codes have %d and %d bits",
						nbits, VARBITLEN(a), VARBITLEN(b))));
	PG_RETURN_INT32(hamming_prefix(a, b, nbits));
}

PG_FUNCTION_INFO_V1(bit_ip);
/* SQL: bit_ip(code bit, q vector) -> float8, the asymmetric inner-product distance of a float query to a code. */
Datum
bit_ip(PG_FUNCTION_ARGS)
{
	VarBit	   *code = PG_GETARG_SVVARBIT_P(0);
	SvVector   *q = PG_GETARG_SVVECTOR_P(1);
	int			nbits = VARBITLEN(code);
	float		set,
				all;

	if (nbits > q->dim)
		ereport(ERROR,
				(errcode(ERRCODE_DATA_EXCEPTION),
				 errmsg("code has %d bits, more than the query's %d dimensions", nbits, q->dim)));
	set = sv_kernels.masked_sum(q->x, VARBITS(code), nbits);
	all = sv_kernels.sum(q->x, nbits);
	PG_RETURN_FLOAT8(-(2.0 * (double) set - (double) all));
}
