/*
 * shrinkvec.c: module entry point, settings and helpers shared by the SQL-callable functions.
 */
#include "postgres.h"

#include <math.h>

#include "catalog/pg_type.h"
#include "utils/builtins.h"
#include "utils/guc.h"

#include "index/svindex.h"
#include "kernels/kernels.h"
#include "shrinkvec.h"

PG_MODULE_MAGIC;

/* Values of shrinkvec.kernels: the highest kernel level to use. */
static const struct config_enum_entry kernel_level_options[] = {
	{"auto", SV_KERNELS_AVX512, false},
	{"avx512", SV_KERNELS_AVX512, false},
	{"avx2", SV_KERNELS_AVX2, false},
	{"scalar", SV_KERNELS_SCALAR, false},
	{NULL, 0, false}
};

static int	kernel_level_setting = SV_KERNELS_AVX512;

void		_PG_init(void);

/* Re-run the dispatcher when shrinkvec.kernels changes. */
static void
assign_kernel_level(int newval, void *extra)
{
	sv_kernels_init((SvKernelLevel) newval);
}

/* Load-time setup: pick the kernels and define the settings. */
void
_PG_init(void)
{
	sv_kernels_init(SV_KERNELS_AVX512);

	DefineCustomEnumVariable("shrinkvec.kernels",
							 "Highest SIMD level the kernels may use (auto, avx512, avx2, scalar).",
							 "The CPU's own support caps the choice; shrinkvec_kernels() shows the level in use.",
							 &kernel_level_setting,
							 SV_KERNELS_AVX512,
							 kernel_level_options,
							 PGC_USERSET,
							 0,
							 NULL,
							 assign_kernel_level,
							 NULL);
	sv_index_init();
	MarkGUCPrefixReserved("shrinkvec");
}

PG_FUNCTION_INFO_V1(shrinkvec_kernels);
/* SQL: the name of the kernel level in use (avx512, avx2 or scalar). */
Datum
shrinkvec_kernels(PG_FUNCTION_ARGS)
{
	PG_RETURN_TEXT_P(cstring_to_text(sv_kernels_level_name(sv_kernels_level())));
}

/* Allocate a zeroed vector of dim dimensions. */
SvVector *
sv_new_vector(int dim)
{
	Size		size = SV_VECTOR_SIZE(dim);
	SvVector   *v = (SvVector *) palloc0(size);

	SET_VARSIZE(v, size);
	v->dim = (int16) dim;
	return v;
}

/* Allocate a zeroed int8vec of dim dimensions. */
SvInt8Vec *
sv_new_int8vec(int dim)
{
	Size		size = SV_INT8VEC_SIZE(dim);
	SvInt8Vec  *v = (SvInt8Vec *) palloc0(size);

	SET_VARSIZE(v, size);
	v->dim = (int16) dim;
	return v;
}

/* Allocate a zeroed bit string of nbits bits. */
VarBit *
sv_new_varbit(int nbits)
{
	Size		size = VARBITTOTALLEN(nbits);
	VarBit	   *b = (VarBit *) palloc0(size);

	SET_VARSIZE(b, size);
	VARBITLEN(b) = nbits;
	return b;
}

/* Error: a datum of `what` holds `size` bytes where its header (count units) needs `need`. */
void
sv_check_datum_size(const char *what, Size size, Size need, int count, const char *unit)
{
	ereport(ERROR,
			(errcode(ERRCODE_DATA_CORRUPTED),
			 errmsg("%s has %zu bytes, but %d %s need %zu", what, size, count, unit, need),
			 errhint("The value is not a %s: check that the function is bound to the right type.", what)));
}

/* Check that a float value is finite; what names it in the error message. */
void
sv_check_finite(float value, const char *what)
{
	if (isnan(value))
		ereport(ERROR,
				(errcode(ERRCODE_DATA_EXCEPTION),
				 errmsg("NaN not allowed in %s", what)));
	if (isinf(value))
		ereport(ERROR,
				(errcode(ERRCODE_DATA_EXCEPTION),
				 errmsg("infinite value not allowed in %s", what)));
}

/* Check that an array argument is one-dimensional, not empty and without NULLs; returns its length. */
int
sv_check_array_shape(ArrayType *a, const char *what)
{
	if (ARR_NDIM(a) == 0)
		ereport(ERROR,
				(errcode(ERRCODE_DATA_EXCEPTION),
				 errmsg("%s must not be empty", what)));
	if (ARR_NDIM(a) != 1)
		ereport(ERROR,
				(errcode(ERRCODE_ARRAY_SUBSCRIPT_ERROR),
				 errmsg("%s must have one dimension, not %d", what, ARR_NDIM(a))));
	if (ARR_HASNULL(a) && array_contains_nulls(a))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("NULL not allowed in %s", what)));
	return ARR_DIMS(a)[0];
}

/* Check a real[] argument and return its elements in place. */
const float *
sv_float_array(ArrayType *a, const char *what, int *n)
{
	const float *x;
	int			count;

	if (ARR_ELEMTYPE(a) != FLOAT4OID)
		ereport(ERROR,
				(errcode(ERRCODE_DATATYPE_MISMATCH),
				 errmsg("%s must be a real[] array", what)));
	count = sv_check_array_shape(a, what);
	if (count > SV_MAX_DIM)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("%s has %d elements, more than the limit of %d", what, count, SV_MAX_DIM)));
	x = (const float *) ARR_DATA_PTR(a);
	for (int i = 0; i < count; i++)
		sv_check_finite(x[i], what);
	*n = count;
	return x;
}

/* Cosine distance from a dot product and squared norms: 1 - dot / sqrt(norma * normb), clamped as pgvector does. */
double
sv_cosine_from_parts(float dot, float norma, float normb)
{
	double		similarity;

	/* a zero norm (or one that underflowed in float) has no direction */
	if (norma == 0.0f || normb == 0.0f)
		return NAN;
	similarity = (double) dot / sqrt((double) norma * (double) normb);
	if (isnan(similarity))
		return NAN;
	if (similarity > 1)
		similarity = 1.0;
	else if (similarity < -1)
		similarity = -1.0;
	return 1.0 - similarity;
}
