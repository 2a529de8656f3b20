/*
 * binarize.c: sign-bit codes of vector, halfvec and real[] values.
 *
 * binarize(v [, dims [, center]]) sets bit i (MSB-first) when v[i] - center[i] > 0, computed in
 * single precision, for i < dims.  Without a center this is pgvector's binary_quantize.
 */
#include "postgres.h"

#include "kernels/kernels.h"
#include "shrinkvec.h"

/* Read the optional dims (argument 1) and center (argument 2) of a binarize call on a dim-long input. */
static void
binarize_args(FunctionCallInfo fcinfo, int dim, int *dims, const float **center)
{
	*dims = dim;
	*center = NULL;
	if (PG_NARGS() >= 2)
	{
		int32		d = PG_GETARG_INT32(1);

		if (d < 1 || d > dim)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("dims must be between 1 and %d, not %d", dim, d)));
		*dims = d;
	}
	if (PG_NARGS() >= 3)
	{
		int			n;
		const float *c = sv_float_array(PG_GETARG_ARRAYTYPE_P(2), "center", &n);

		if (n != dim && n != *dims)
			ereport(ERROR,
					(errcode(ERRCODE_DATA_EXCEPTION),
					 errmsg("center has %d elements, expected %d (the input's dimensions) or %d (dims)",
							n, dim, *dims)));
		*center = c;
	}
}

/* Sign bits of x[i] - center[i] (center may be NULL) for i < dims. */
static VarBit *
binarize_floats(const float *x, int dims, const float *center)
{
	VarBit	   *result = sv_new_varbit(dims);
	bits8	   *out = VARBITS(result);

	for (int i = 0; i < dims; i++)
	{
		float		d = center ? x[i] - center[i] : x[i];

		if (d > 0)
			out[i >> 3] |= (bits8) (0x80 >> (i & 7));
	}
	return result;
}

PG_FUNCTION_INFO_V1(binarize_vector);
/* SQL: binarize(vector [, dims [, center]]) -> bit(dims). */
Datum
binarize_vector(PG_FUNCTION_ARGS)
{
	SvVector   *v = PG_GETARG_SVVECTOR_P(0);
	int			dims;
	const float *center;

	binarize_args(fcinfo, v->dim, &dims, &center);
	PG_RETURN_VARBIT_P(binarize_floats(v->x, dims, center));
}

PG_FUNCTION_INFO_V1(binarize_halfvec);
/* SQL: binarize(halfvec [, dims [, center]]) -> bit(dims); elements are widened to float first. */
Datum
binarize_halfvec(PG_FUNCTION_ARGS)
{
	SvHalfVec  *v = PG_GETARG_SVHALFVEC_P(0);
	int			dims;
	const float *center;
	VarBit	   *result;
	bits8	   *out;

	binarize_args(fcinfo, v->dim, &dims, &center);
	result = sv_new_varbit(dims);
	out = VARBITS(result);
	for (int i = 0; i < dims; i++)
	{
		float		x = sv_half_to_float(v->x[i]);
		float		d = center ? x - center[i] : x;

		if (d > 0)
			out[i >> 3] |= (bits8) (0x80 >> (i & 7));
	}
	PG_RETURN_VARBIT_P(result);
}

PG_FUNCTION_INFO_V1(binarize_array);
/* SQL: binarize(real[] [, dims [, center]]) -> bit(dims); NULL, NaN and infinite elements are errors. */
Datum
binarize_array(PG_FUNCTION_ARGS)
{
	int			n;
	const float *x = sv_float_array(PG_GETARG_ARRAYTYPE_P(0), "array", &n);
	int			dims;
	const float *center;

	binarize_args(fcinfo, n, &dims, &center);
	PG_RETURN_VARBIT_P(binarize_floats(x, dims, center));
}
