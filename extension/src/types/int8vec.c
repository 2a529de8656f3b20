/*
 * int8vec.c: the int8vec type (one signed byte per dimension) and its calibrated quantization.
 *
 * With per-dimension ranges lo <= hi and scale = (hi - lo) / 255 (all single precision):
 *   quantize:   q = rint(clip((v - lo) / scale, 0, 255)) - 128, or -128 where scale = 0
 *   dequantize: v' = lo + (q + 128) * scale
 * Values outside [lo, hi] are clipped, never wrapped.  Distances to a float query are computed
 * against the dequantized vector.
 */
#include "postgres.h"

#include <float.h>
#include <math.h>
#include <limits.h>

#include "catalog/pg_type.h"
#include "funcapi.h"
#include "lib/stringinfo.h"
#include "libpq/pqformat.h"
#include "miscadmin.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"

#include "kernels/kernels.h"
#include "shrinkvec.h"

/* Check that an int8vec has the dimension its typmod demands. */
static void
check_typmod(int dim, int32 typmod)
{
	if (typmod != -1 && dim != typmod)
		ereport(ERROR,
				(errcode(ERRCODE_DATA_EXCEPTION),
				 errmsg("expected %d dimensions, not %d", typmod, dim)));
}

/* Check a dimension count read from input. */
static void
check_dim(int dim)
{
	if (dim < 1)
		ereport(ERROR,
				(errcode(ERRCODE_DATA_EXCEPTION),
				 errmsg("int8vec must have at least 1 dimension")));
	if (dim > SV_MAX_DIM)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("int8vec cannot have more than %d dimensions", SV_MAX_DIM)));
}

PG_FUNCTION_INFO_V1(int8vec_in);
/* Text input: '[1,-2,127]'. */
Datum
int8vec_in(PG_FUNCTION_ARGS)
{
	char	   *lit = PG_GETARG_CSTRING(0);
	int32		typmod = PG_GETARG_INT32(2);
	int8		values[SV_MAX_DIM];
	int			dim = 0;
	char	   *p = lit;
	SvInt8Vec  *result;

	while (*p == ' ' || *p == '\t' || *p == '\n')
		p++;
	if (*p != '[')
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_TEXT_REPRESENTATION),
				 errmsg("invalid input syntax for type int8vec: \"%s\"", lit),
				 errdetail("int8vec contents must start with \"[\".")));
	p++;
	while (*p == ' ' || *p == '\t' || *p == '\n')
		p++;
	if (*p == ']')
		check_dim(0);
	for (;;)
	{
		char	   *end;
		long		val;

		if (dim == SV_MAX_DIM)
			check_dim(dim + 1);
		errno = 0;
		val = strtol(p, &end, 10);
		if (end == p)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_TEXT_REPRESENTATION),
					 errmsg("invalid input syntax for type int8vec: \"%s\"", lit)));
		if (errno == ERANGE || val < -128 || val > 127)
			ereport(ERROR,
					(errcode(ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE),
					 errmsg("value \"%.*s\" is out of range for type int8vec (-128 to 127)", (int) (end - p), p)));
		values[dim++] = (int8) val;
		p = end;
		while (*p == ' ' || *p == '\t' || *p == '\n')
			p++;
		if (*p == ',')
		{
			p++;
			continue;
		}
		if (*p == ']')
			break;
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_TEXT_REPRESENTATION),
				 errmsg("invalid input syntax for type int8vec: \"%s\"", lit)));
	}
	p++;
	while (*p == ' ' || *p == '\t' || *p == '\n')
		p++;
	if (*p != '\0')
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_TEXT_REPRESENTATION),
				 errmsg("invalid input syntax for type int8vec: \"%s\"", lit),
				 errdetail("Junk after closing right bracket.")));
	check_typmod(dim, typmod);
	result = sv_new_int8vec(dim);
	memcpy(result->x, values, dim);
	PG_RETURN_POINTER(result);
}

PG_FUNCTION_INFO_V1(int8vec_out);
/* Text output: '[1,-2,127]'. */
Datum
int8vec_out(PG_FUNCTION_ARGS)
{
	SvInt8Vec  *v = PG_GETARG_SVINT8VEC_P(0);
	StringInfoData buf;

	initStringInfo(&buf);
	appendStringInfoChar(&buf, '[');
	for (int i = 0; i < v->dim; i++)
	{
		if (i > 0)
			appendStringInfoChar(&buf, ',');
		appendStringInfo(&buf, "%d", (int) v->x[i]);
	}
	appendStringInfoChar(&buf, ']');
	PG_RETURN_CSTRING(buf.data);
}

PG_FUNCTION_INFO_V1(int8vec_typmod_in);
/* Type modifier input: int8vec(n) with 1 <= n <= 16000. */
Datum
int8vec_typmod_in(PG_FUNCTION_ARGS)
{
	ArrayType  *ta = PG_GETARG_ARRAYTYPE_P(0);
	int32	   *tl;
	int			n;

	tl = ArrayGetIntegerTypmods(ta, &n);
	if (n != 1)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid type modifier")));
	if (*tl < 1)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("dimensions for type int8vec must be at least 1")));
	if (*tl > SV_MAX_DIM)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("dimensions for type int8vec cannot exceed %d", SV_MAX_DIM)));
	PG_RETURN_INT32(*tl);
}

PG_FUNCTION_INFO_V1(int8vec_recv);
/* Binary input: int16 dim, int16 unused, then dim signed bytes. */
Datum
int8vec_recv(PG_FUNCTION_ARGS)
{
	StringInfo	buf = (StringInfo) PG_GETARG_POINTER(0);
	int32		typmod = PG_GETARG_INT32(2);
	int16		dim = pq_getmsgint(buf, sizeof(int16));
	int16		unused = pq_getmsgint(buf, sizeof(int16));
	SvInt8Vec  *result;

	check_dim(dim);
	check_typmod(dim, typmod);
	if (unused != 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_BINARY_REPRESENTATION),
				 errmsg("expected unused to be 0, not %d", unused)));
	result = sv_new_int8vec(dim);
	pq_copymsgbytes(buf, (char *) result->x, dim);
	PG_RETURN_POINTER(result);
}

PG_FUNCTION_INFO_V1(int8vec_send);
/* Binary output: int16 dim, int16 unused, then dim signed bytes. */
Datum
int8vec_send(PG_FUNCTION_ARGS)
{
	SvInt8Vec  *v = PG_GETARG_SVINT8VEC_P(0);
	StringInfoData buf;

	pq_begintypsend(&buf);
	pq_sendint(&buf, v->dim, sizeof(int16));
	pq_sendint(&buf, v->unused, sizeof(int16));
	pq_sendbytes(&buf, (const char *) v->x, v->dim);
	PG_RETURN_BYTEA_P(pq_endtypsend(&buf));
}

PG_FUNCTION_INFO_V1(int8vec_cast);
/* Coerce an int8vec to a typmod (the cast behind int8vec(n) columns). */
Datum
int8vec_cast(PG_FUNCTION_ARGS)
{
	SvInt8Vec  *v = PG_GETARG_SVINT8VEC_P(0);

	check_typmod(v->dim, PG_GETARG_INT32(1));
	PG_RETURN_POINTER(v);
}

PG_FUNCTION_INFO_V1(int8vec_dims);
/* SQL: vector_dims(int8vec) -> int4. */
Datum
int8vec_dims(PG_FUNCTION_ARGS)
{
	PG_RETURN_INT32(PG_GETARG_SVINT8VEC_P(0)->dim);
}

/*
 * Checked per-dimension ranges (lo <= hi, finite width) with their steps, cached per call site in
 * fn_extra: the ranges are constants of a query, so per row only a memcmp confirms them.  work is
 * scratch space of dim floats (dequantized codes, widened halfvecs), so rows allocate nothing.
 */
typedef struct Int8Ranges
{
	int			dim;
	float	   *lo;
	float	   *hi;
	float	   *scale;			/* (hi - lo) / 255 */
	float	   *work;
} Int8Ranges;

/* Does array a hold exactly the dim floats cached in x (same shape, no NULLs, same bits)? */
static bool
same_floats(ArrayType *a, const float *x, int dim)
{
	return ARR_ELEMTYPE(a) == FLOAT4OID && ARR_NDIM(a) == 1 && !ARR_HASNULL(a) &&
		ARR_DIMS(a)[0] == dim && memcmp(ARR_DATA_PTR(a), x, sizeof(float) * dim) == 0;
}

/* Read and check the lo/hi arguments at positions arg and arg + 1 for a dim-long input. */
static const Int8Ranges *
int8_ranges_args(FunctionCallInfo fcinfo, int arg, int dim)
{
	Int8Ranges *r = (Int8Ranges *) fcinfo->flinfo->fn_extra;
	ArrayType  *alo = PG_GETARG_ARRAYTYPE_P(arg);
	ArrayType  *ahi = PG_GETARG_ARRAYTYPE_P(arg + 1);
	const float *lo;
	const float *hi;
	int			nlo,
				nhi;

	if (r != NULL && r->dim == dim && same_floats(alo, r->lo, dim) && same_floats(ahi, r->hi, dim))
		return r;

	lo = sv_float_array(alo, "lo", &nlo);
	hi = sv_float_array(ahi, "hi", &nhi);
	if (nlo != dim || nhi != dim)
		ereport(ERROR,
				(errcode(ERRCODE_DATA_EXCEPTION),
				 errmsg("lo and hi must have %d elements, not %d and %d", dim, nlo, nhi)));
	for (int i = 0; i < dim; i++)
	{
		if (lo[i] > hi[i])
			ereport(ERROR,
					(errcode(ERRCODE_DATA_EXCEPTION),
					 errmsg("lo[%d] = %g is greater than hi[%d] = %g", i + 1, lo[i], i + 1, hi[i])));
		if (isinf(hi[i] - lo[i]))
			ereport(ERROR,
					(errcode(ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE),
					 errmsg("range [%g, %g] of dimension %d is too wide: hi - lo overflows real", lo[i], hi[i], i + 1)));
	}

	if (r == NULL || r->dim != dim)
	{
		/* one allocation holds lo, hi, scale and work */
		if (r != NULL)
			pfree(r);
		r = MemoryContextAlloc(fcinfo->flinfo->fn_mcxt, sizeof(Int8Ranges) + 4 * sizeof(float) * dim);
		r->dim = dim;
		r->lo = (float *) (r + 1);
		r->hi = r->lo + dim;
		r->scale = r->hi + dim;
		r->work = r->scale + dim;
		fcinfo->flinfo->fn_extra = r;
	}
	memcpy(r->lo, lo, sizeof(float) * dim);
	memcpy(r->hi, hi, sizeof(float) * dim);
	for (int i = 0; i < dim; i++)
		r->scale[i] = (hi[i] - lo[i]) / 255.0f;
	return r;
}

/* Quantize dim floats with checked ranges into a new int8vec. */
static SvInt8Vec *
quantize_floats(const float *x, const Int8Ranges *r)
{
	SvInt8Vec  *result = sv_new_int8vec(r->dim);

	for (int i = 0; i < r->dim; i++)
	{
		float		t;

		if (r->scale[i] == 0.0f)
		{
			result->x[i] = -128;
			continue;
		}
		t = (x[i] - r->lo[i]) / r->scale[i];
		if (t < 0.0f)
			t = 0.0f;
		else if (t > 255.0f)
			t = 255.0f;
		result->x[i] = (int8) ((int) rintf(t) - 128);
	}
	return result;
}

/*
 * Dequantize an int8vec with checked ranges into out[dim].  Errors when a value overflows real (lo +
 * 255 steps can round past hi near the largest real): a vector holds no infinities.
 */
static void
dequantize_into(const SvInt8Vec *c, const Int8Ranges *r, float *out)
{
	for (int i = 0; i < c->dim; i++)
	{
		out[i] = r->lo[i] + (float) ((int) c->x[i] + 128) * r->scale[i];
		if (unlikely(isinf(out[i])))
			ereport(ERROR,
					(errcode(ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE),
					 errmsg("dequantized value of dimension %d is out of range for type real", i + 1),
					 errdetail("lo = %g plus %d steps of %g exceeds the largest real, %g.",
							   r->lo[i], (int) c->x[i] + 128, r->scale[i], FLT_MAX)));
	}
}

PG_FUNCTION_INFO_V1(quantize_int8_vector);
/* SQL: quantize_int8(vector, lo real[], hi real[]) -> int8vec. */
Datum
quantize_int8_vector(PG_FUNCTION_ARGS)
{
	SvVector   *v = PG_GETARG_SVVECTOR_P(0);

	PG_RETURN_POINTER(quantize_floats(v->x, int8_ranges_args(fcinfo, 1, v->dim)));
}

PG_FUNCTION_INFO_V1(quantize_int8_halfvec);
/* SQL: quantize_int8(halfvec, lo real[], hi real[]) -> int8vec; elements are widened to float first. */
Datum
quantize_int8_halfvec(PG_FUNCTION_ARGS)
{
	SvHalfVec  *v = PG_GETARG_SVHALFVEC_P(0);
	const Int8Ranges *r = int8_ranges_args(fcinfo, 1, v->dim);

	for (int i = 0; i < v->dim; i++)
		r->work[i] = sv_half_to_float(v->x[i]);
	PG_RETURN_POINTER(quantize_floats(r->work, r));
}

PG_FUNCTION_INFO_V1(quantize_int8_array);
/* SQL: quantize_int8(real[], lo real[], hi real[]) -> int8vec. */
Datum
quantize_int8_array(PG_FUNCTION_ARGS)
{
	int			n;
	const float *x = sv_float_array(PG_GETARG_ARRAYTYPE_P(0), "array", &n);

	PG_RETURN_POINTER(quantize_floats(x, int8_ranges_args(fcinfo, 1, n)));
}

PG_FUNCTION_INFO_V1(dequantize_int8);
/* SQL: dequantize_int8(int8vec, lo real[], hi real[]) -> vector. */
Datum
dequantize_int8(PG_FUNCTION_ARGS)
{
	SvInt8Vec  *c = PG_GETARG_SVINT8VEC_P(0);
	const Int8Ranges *r = int8_ranges_args(fcinfo, 1, c->dim);
	SvVector   *result = sv_new_vector(c->dim);

	dequantize_into(c, r, result->x);
	PG_RETURN_POINTER(result);
}

/* Dequantize argument 0 with ranges at arguments 2-3 and return dot/norms against the query at argument 1. */
static void
int8_query_parts(FunctionCallInfo fcinfo, float *dot, float *normc, float *normq)
{
	SvInt8Vec  *c = PG_GETARG_SVINT8VEC_P(0);
	SvVector   *q = PG_GETARG_SVVECTOR_P(1);
	const Int8Ranges *r;

	if (c->dim != q->dim)
		ereport(ERROR,
				(errcode(ERRCODE_DATA_EXCEPTION),
				 errmsg("different dimensions %d and %d", c->dim, q->dim)));
	r = int8_ranges_args(fcinfo, 2, c->dim);
	dequantize_into(c, r, r->work);
	sv_kernels.dot_norms(r->work, q->x, c->dim, dot, normc, normq);
}

PG_FUNCTION_INFO_V1(int8_ip_distance);
/* SQL: int8_ip_distance(int8vec, vector, lo, hi) -> float8, the negative inner product (as pgvector's <#>). */
Datum
int8_ip_distance(PG_FUNCTION_ARGS)
{
	float		dot,
				normc,
				normq;

	int8_query_parts(fcinfo, &dot, &normc, &normq);
	PG_RETURN_FLOAT8(-(double) dot);
}

PG_FUNCTION_INFO_V1(int8_cosine_distance);
/* SQL: int8_cosine_distance(int8vec, vector, lo, hi) -> float8, cosine distance to the dequantized code. */
Datum
int8_cosine_distance(PG_FUNCTION_ARGS)
{
	float		dot,
				normc,
				normq;

	int8_query_parts(fcinfo, &dot, &normc, &normq);
	PG_RETURN_FLOAT8(sv_cosine_from_parts(dot, normc, normq));
}
