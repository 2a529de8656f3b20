/*
 * prefix.c: cosine distance over a Matryoshka prefix, computed in place (no subvector is built).
 *
 * prefix_cosine_distance(a, b [, dims]) uses the first dims dimensions (default: the shorter
 * input's length).  As in pgvector, a zero-norm prefix gives NaN and the similarity is clamped
 * to [-1, 1].
 */
#include "postgres.h"

#include "kernels/kernels.h"
#include "shrinkvec.h"

/* Resolve the prefix length from the optional third argument; la and lb are the input lengths. */
static int
prefix_dims(FunctionCallInfo fcinfo, int la, int lb)
{
	int			shorter = Min(la, lb);
	int32		dims;

	if (PG_NARGS() < 3)
		return shorter;
	dims = PG_GETARG_INT32(2);
	if (dims < 1 || dims > shorter)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("dims must be between 1 and %d, not %d", shorter, dims)));
	return dims;
}

PG_FUNCTION_INFO_V1(prefix_cosine_distance);
/* SQL: prefix_cosine_distance(vector, vector [, dims]) -> float8. */
Datum
prefix_cosine_distance(PG_FUNCTION_ARGS)
{
	SvVector   *a = PG_GETARG_SVVECTOR_P(0);
	SvVector   *b = PG_GETARG_SVVECTOR_P(1);
	int			dims = prefix_dims(fcinfo, a->dim, b->dim);
	float		dot,
				norma,
				normb;

	sv_kernels.dot_norms(a->x, b->x, dims, &dot, &norma, &normb);
	PG_RETURN_FLOAT8(sv_cosine_from_parts(dot, norma, normb));
}

PG_FUNCTION_INFO_V1(halfvec_prefix_cosine_distance);
/* SQL: prefix_cosine_distance(halfvec, halfvec [, dims]) -> float8. */
Datum
halfvec_prefix_cosine_distance(PG_FUNCTION_ARGS)
{
	SvHalfVec  *a = PG_GETARG_SVHALFVEC_P(0);
	SvHalfVec  *b = PG_GETARG_SVHALFVEC_P(1);
	int			dims = prefix_dims(fcinfo, a->dim, b->dim);
	float		dot,
				norma,
				normb;

	sv_kernels.half_dot_norms(a->x, b->x, dims, &dot, &norma, &normb);
	PG_RETURN_FLOAT8(sv_cosine_from_parts(dot, norma, normb));
}
