/*
 * transform.c: shrinkvec.transform_vector(v, name), the stored transforms of the catalog applied
 * to a vector (centring, PCA rotation, Matryoshka-Adaptor), for codes and queries server side.
 *
 * A transform row of shrinkvec.transforms has an optional center (dims_in), an optional matrix
 * (dims_out x dims_in, row-major) and an optional residual MLP (w1: hidden x dims_out, b1, w2:
 * dims_out x hidden, b2).  In single precision, with every sum starting at 0 and adding one
 * rounded product at a time in index order (no FMA: the file is built with -ffp-contract=off):
 *
 *   y = v - center;  z = matrix * y;  h = max(w1 * z + b1, 0);  out = z + (w2 * h + b2)
 *
 * which is the numpy reference Transform.apply in pytools/shrinkvec/transforms.py bit for bit.
 * The loops run over the output index innermost (matrices are kept transposed), so each output's
 * sum keeps its order and the compiler may still vectorize across outputs.
 *
 * Transforms are immutable (the catalog rejects UPDATE, and DELETE while in use) and their names
 * carry a hash of their content, so each backend reads a transform once and keeps it.
 */
#include "postgres.h"

#include <math.h>

#include "catalog/namespace.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"

#include "kernels/kernels.h"
#include "shrinkvec.h"

/* A transform as read from the catalog; matrices transposed (input index outermost). */
typedef struct SvTransform
{
	char	   *name;
	Oid			userid;			/* the role that read it: row-level security decides who may */
	int			dims_in;
	int			dims_out;
	int			hidden;			/* 0: no MLP */
	float	   *center;			/* dims_in, or NULL */
	float	   *matrix_t;		/* dims_in x dims_out, or NULL (then dims_out = dims_in) */
	float	   *w1_t;			/* dims_out x hidden */
	float	   *b1;				/* hidden */
	float	   *w2_t;			/* hidden x dims_out */
	float	   *b2;				/* dims_out */
	struct SvTransform *next;
} SvTransform;

/* Transforms read by this backend, per reading role (immutable, so never invalidated). */
static SvTransform *transform_cache = NULL;

/* The elements of a one-dimensional real[] without NULLs, all finite (matrices exceed SV_MAX_DIM). */
static const float *
float_elements(ArrayType *a, const char *tname, const char *what, int *n)
{
	const float *x;

	if (ARR_ELEMTYPE(a) != FLOAT4OID || ARR_NDIM(a) != 1 || (ARR_HASNULL(a) && array_contains_nulls(a)))
		ereport(ERROR,
				(errcode(ERRCODE_DATA_EXCEPTION),
				 errmsg("transform \"%s\": %s must be a one-dimensional real[] without NULLs", tname, what)));
	*n = ARR_DIMS(a)[0];
	x = (const float *) ARR_DATA_PTR(a);
	for (int i = 0; i < *n; i++)
		if (isnan(x[i]) || isinf(x[i]))
			ereport(ERROR,
					(errcode(ERRCODE_DATA_EXCEPTION),
					 errmsg("transform \"%s\": %s has a NaN or infinite value", tname, what)));
	return x;
}

/* Copy a real[] column of the SPI result into cxt, checking its length; NULL stays NULL. */
static float *
copy_array_column(MemoryContext cxt, HeapTuple tuple, TupleDesc desc, int col, const char *tname,
				  const char *what, int expected)
{
	bool		isnull;
	Datum		d = SPI_getbinval(tuple, desc, col, &isnull);
	int			n;
	const float *x;
	float	   *out;

	if (isnull)
		return NULL;
	x = float_elements(DatumGetArrayTypeP(d), tname, what, &n);
	if (n != expected)
		ereport(ERROR,
				(errcode(ERRCODE_DATA_EXCEPTION),
				 errmsg("transform \"%s\": %s has %d elements, expected %d", tname, what, n, expected)));
	out = MemoryContextAlloc(cxt, sizeof(float) * n);
	memcpy(out, x, sizeof(float) * n);
	return out;
}

/* Transpose a rows x cols row-major array into a fresh copy in cxt; frees the input. */
static float *
transpose(MemoryContext cxt, float *a, int rows, int cols)
{
	float	   *t;

	if (a == NULL)
		return NULL;
	t = MemoryContextAlloc(cxt, sizeof(float) * rows * cols);
	for (int r = 0; r < rows; r++)
		for (int c = 0; c < cols; c++)
			t[(Size) c * rows + r] = a[(Size) r * cols + c];
	pfree(a);
	return t;
}

/* Read an integer column of the SPI result (NULL as 0). */
static int
int_column(HeapTuple tuple, TupleDesc desc, int col)
{
	bool		isnull;
	Datum		d = SPI_getbinval(tuple, desc, col, &isnull);

	return isnull ? 0 : DatumGetInt32(d);
}

/* Read the transform of the current SPI result row into a new entry allocated in cxt. */
static SvTransform *
read_transform(MemoryContext cxt, const char *name)
{
	HeapTuple	tuple = SPI_tuptable->vals[0];
	TupleDesc	desc = SPI_tuptable->tupdesc;
	SvTransform *t = MemoryContextAllocZero(cxt, sizeof(SvTransform));
	float	   *matrix;

	t->dims_in = int_column(tuple, desc, 1);
	t->dims_out = int_column(tuple, desc, 2);
	t->hidden = int_column(tuple, desc, 3);
	if (t->dims_in < 1 || t->dims_in > SV_MAX_DIM || t->dims_out < 1 || t->dims_out > SV_MAX_DIM ||
		t->hidden < 0 || t->hidden > SV_MAX_DIM)
		ereport(ERROR,
				(errcode(ERRCODE_DATA_EXCEPTION),
				 errmsg("transform \"%s\" has invalid dimensions %d -> %d (hidden %d)",
						name, t->dims_in, t->dims_out, t->hidden)));
	t->center = copy_array_column(cxt, tuple, desc, 4, name, "center", t->dims_in);
	matrix = copy_array_column(cxt, tuple, desc, 5, name, "matrix", t->dims_out * t->dims_in);
	if (matrix == NULL && t->dims_out != t->dims_in)
		ereport(ERROR,
				(errcode(ERRCODE_DATA_EXCEPTION),
				 errmsg("transform \"%s\" has no matrix but maps %d to %d dimensions",
						name, t->dims_in, t->dims_out)));
	t->matrix_t = transpose(cxt, matrix, t->dims_out, t->dims_in);
	if (t->hidden > 0)
	{
		float	   *w1 = copy_array_column(cxt, tuple, desc, 6, name, "w1", t->hidden * t->dims_out);
		float	   *w2;

		t->b1 = copy_array_column(cxt, tuple, desc, 7, name, "b1", t->hidden);
		w2 = copy_array_column(cxt, tuple, desc, 8, name, "w2", t->dims_out * t->hidden);
		t->b2 = copy_array_column(cxt, tuple, desc, 9, name, "b2", t->dims_out);
		if (w1 == NULL || t->b1 == NULL || w2 == NULL || t->b2 == NULL)
			ereport(ERROR,
					(errcode(ERRCODE_DATA_EXCEPTION),
					 errmsg("transform \"%s\" has hidden = %d but not all of w1, b1, w2, b2",
							name, t->hidden)));
		t->w1_t = transpose(cxt, w1, t->hidden, t->dims_out);
		t->w2_t = transpose(cxt, w2, t->dims_out, t->hidden);
	}
	t->name = MemoryContextStrdup(cxt, name);
	t->userid = GetUserId();
	return t;
}

/* Read transform `name` from shrinkvec.transforms with SPI into a new cache entry (its own memory context,
 * deleted again when the transform cannot be read). */
static SvTransform *
load_transform(const char *name)
{
	Oid			nsp = get_namespace_oid("shrinkvec", true);
	Oid			argtypes[1] = {TEXTOID};
	Datum		values[1];
	MemoryContext cxt;
	SvTransform *volatile t = NULL;

	if (!OidIsValid(nsp) || !OidIsValid(get_relname_relid("transforms", nsp)))
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_TABLE),
				 errmsg("the shrinkvec catalog does not exist in this database"),
				 errhint("run: shrinkvec migrate --dsn ...")));

	values[0] = CStringGetTextDatum(name);
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	if (SPI_execute_with_args("SELECT dims_in, dims_out, hidden, center, matrix, w1, b1, w2, b2 "
							  "FROM shrinkvec.transforms WHERE name OPERATOR(pg_catalog.=) $1",
							  1, argtypes, values, NULL, true, 1) != SPI_OK_SELECT)
		elog(ERROR, "SPI_execute failed");
	if (SPI_processed == 0)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("transform \"%s\" does not exist", name)));
	cxt = AllocSetContextCreate(TopMemoryContext, "shrinkvec transform", ALLOCSET_DEFAULT_SIZES);
	PG_TRY();
	{
		t = read_transform(cxt, name);
	}
	PG_CATCH();
	{
		MemoryContextDelete(cxt);
		PG_RE_THROW();
	}
	PG_END_TRY();
	SPI_finish();
	return t;
}

/* The cached transform `name`, read from the catalog on first use in this backend. */
static SvTransform *
get_transform(const char *name)
{
	SvTransform *t;

	for (t = transform_cache; t != NULL; t = t->next)
		if (t->userid == GetUserId() && strcmp(t->name, name) == 0)
			return t;
	t = load_transform(name);
	t->next = transform_cache;
	transform_cache = t;
	return t;
}

/* out[0..cols) = sum over r of a_t[r][..] * x[r], rows ascending, float32 with one rounding per step. */
static void
matvec_t(const float *a_t, const float *x, int rows, int cols, float *out)
{
	for (int c = 0; c < cols; c++)
		out[c] = 0.0f;
	for (int r = 0; r < rows; r++)
	{
		const float *row = a_t + (Size) r * cols;
		float		xr = x[r];

		for (int c = 0; c < cols; c++)
		{
			float		p = row[c] * xr;

			out[c] = out[c] + p;
		}
	}
}

/* Apply a transform to x (dims_in floats) into out (dims_out floats). */
static void
apply_transform(const SvTransform *t, const float *x, float *out)
{
	float	   *y = palloc(sizeof(float) * t->dims_in);
	const float *z;

	for (int i = 0; i < t->dims_in; i++)
		y[i] = t->center ? x[i] - t->center[i] : x[i];
	if (t->matrix_t)
	{
		matvec_t(t->matrix_t, y, t->dims_in, t->dims_out, out);
		z = out;
	}
	else
	{
		memcpy(out, y, sizeof(float) * t->dims_in);
		z = out;
	}
	if (t->hidden > 0)
	{
		float	   *h = palloc(sizeof(float) * t->hidden);
		float	   *f = palloc(sizeof(float) * t->dims_out);

		matvec_t(t->w1_t, z, t->dims_out, t->hidden, h);
		for (int k = 0; k < t->hidden; k++)
		{
			float		pre = h[k] + t->b1[k];

			h[k] = pre > 0.0f ? pre : 0.0f;
		}
		matvec_t(t->w2_t, h, t->hidden, t->dims_out, f);
		for (int i = 0; i < t->dims_out; i++)
			out[i] = z[i] + (f[i] + t->b2[i]);
		pfree(h);
		pfree(f);
	}
	pfree(y);
}

/* Raise an error unless a vector of dim dimensions fits the transform's input. */
static void
check_transform_dims(const SvTransform *t, const char *name, int dim)
{
	if (dim != t->dims_in)
		ereport(ERROR,
				(errcode(ERRCODE_DATA_EXCEPTION),
				 errmsg("different vector dimensions %d and %d", dim, t->dims_in),
				 errdetail("transform \"%s\" maps %d dimensions to %d.", name, t->dims_in, t->dims_out)));
}

PG_FUNCTION_INFO_V1(transform_vector);
/* SQL: shrinkvec.transform_vector(vector, transform text) -> vector(dims_out). */
Datum
transform_vector(PG_FUNCTION_ARGS)
{
	SvVector   *v = PG_GETARG_SVVECTOR_P(0);
	char	   *name = text_to_cstring(PG_GETARG_TEXT_PP(1));
	SvTransform *t = get_transform(name);
	SvVector   *result;

	check_transform_dims(t, name, v->dim);
	result = sv_new_vector(t->dims_out);
	apply_transform(t, v->x, result->x);
	for (int i = 0; i < t->dims_out; i++)
		sv_check_finite(result->x[i], "transformed vector");
	PG_RETURN_POINTER(result);
}

PG_FUNCTION_INFO_V1(transform_halfvec);
/* SQL: shrinkvec.transform_vector(halfvec, transform text) -> vector(dims_out); elements widened to float first. */
Datum
transform_halfvec(PG_FUNCTION_ARGS)
{
	SvHalfVec  *v = PG_GETARG_SVHALFVEC_P(0);
	char	   *name = text_to_cstring(PG_GETARG_TEXT_PP(1));
	SvTransform *t = get_transform(name);
	SvVector   *result;
	float	   *x;

	check_transform_dims(t, name, v->dim);
	x = palloc(sizeof(float) * v->dim);
	for (int i = 0; i < v->dim; i++)
		x[i] = sv_half_to_float(v->x[i]);
	result = sv_new_vector(t->dims_out);
	apply_transform(t, x, result->x);
	for (int i = 0; i < t->dims_out; i++)
		sv_check_finite(result->x[i], "transformed vector");
	pfree(x);
	PG_RETURN_POINTER(result);
}
