/*
 * int8_ranges.c: the aggregate int8_ranges(v [, coverage]): per-dimension (lo, hi) ranges for
 * quantize_int8 (types/int8vec.c), from the min and max or from the central `coverage` fraction.
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

/*
 * The int8_ranges aggregate.  Without a coverage it keeps per-dimension min and max; with one it
 * keeps every value (bounded by maintenance_work_mem) and picks order statistics at the end.
 */
typedef struct RangesState
{
	int			dim;
	int64		n;
	double		coverage;		/* 0 for min/max */
	float	   *lo;				/* min/max mode */
	float	   *hi;
	float	   *values;			/* coverage mode: n x dim, row-major */
	int64		capacity;		/* rows allocated in values */
} RangesState;

/* Add one vector to the aggregate state, creating it on the first call. */
static RangesState *
ranges_accumulate(FunctionCallInfo fcinfo, RangesState *state, SvVector *v, double coverage)
{
	MemoryContext aggcontext;
	MemoryContext old;

	if (!AggCheckCallContext(fcinfo, &aggcontext))
		elog(ERROR, "int8_ranges called in non-aggregate context");
	old = MemoryContextSwitchTo(aggcontext);
	if (state == NULL)
	{
		state = palloc0(sizeof(RangesState));
		state->dim = v->dim;
		state->coverage = coverage;
		if (coverage == 0.0)
		{
			state->lo = palloc(sizeof(float) * v->dim);
			state->hi = palloc(sizeof(float) * v->dim);
			memcpy(state->lo, v->x, sizeof(float) * v->dim);
			memcpy(state->hi, v->x, sizeof(float) * v->dim);
		}
	}
	else if (v->dim != state->dim)
		ereport(ERROR,
				(errcode(ERRCODE_DATA_EXCEPTION),
				 errmsg("different vector dimensions %d and %d", state->dim, v->dim)));

	if (state->coverage == 0.0)
	{
		for (int i = 0; i < v->dim; i++)
		{
			if (v->x[i] < state->lo[i])
				state->lo[i] = v->x[i];
			if (v->x[i] > state->hi[i])
				state->hi[i] = v->x[i];
		}
	}
	else
	{
		if (state->n == state->capacity)
		{
			int64		newcap = Max(state->capacity * 2, 1024);
			Size		limit = (Size) maintenance_work_mem * 1024;

			if ((Size) newcap * state->dim * sizeof(float) > limit)
			{
				newcap = limit / (state->dim * sizeof(float));
				if (newcap <= state->n)
					ereport(ERROR,
							(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
							 errmsg("int8_ranges with a coverage needs more than maintenance_work_mem (%d kB) for %lld rows of %d dimensions",
									maintenance_work_mem, (long long) state->n + 1, state->dim),
							 errhint("Compute the ranges on a sample, e.g. FROM t TABLESAMPLE SYSTEM (10), or raise maintenance_work_mem.")));
			}
			state->values = state->values == NULL
				? palloc_extended((Size) newcap * state->dim * sizeof(float), MCXT_ALLOC_HUGE)
				: repalloc_huge(state->values, (Size) newcap * state->dim * sizeof(float));
			state->capacity = newcap;
		}
		memcpy(state->values + state->n * state->dim, v->x, sizeof(float) * v->dim);
	}
	state->n++;
	MemoryContextSwitchTo(old);
	return state;
}

PG_FUNCTION_INFO_V1(int8_ranges_accum);
/* Transition function of int8_ranges(vector): per-dimension min and max. */
Datum
int8_ranges_accum(PG_FUNCTION_ARGS)
{
	RangesState *state = PG_ARGISNULL(0) ? NULL : (RangesState *) PG_GETARG_POINTER(0);

	if (PG_ARGISNULL(1))
	{
		if (state == NULL)
			PG_RETURN_NULL();
		PG_RETURN_POINTER(state);
	}
	PG_RETURN_POINTER(ranges_accumulate(fcinfo, state, PG_GETARG_SVVECTOR_P(1), 0.0));
}

PG_FUNCTION_INFO_V1(int8_ranges_coverage_accum);
/* Transition function of int8_ranges(vector, coverage): collects the values. */
Datum
int8_ranges_coverage_accum(PG_FUNCTION_ARGS)
{
	RangesState *state = PG_ARGISNULL(0) ? NULL : (RangesState *) PG_GETARG_POINTER(0);
	double		coverage;

	if (PG_ARGISNULL(1))
	{
		if (state == NULL)
			PG_RETURN_NULL();
		PG_RETURN_POINTER(state);
	}
	if (PG_ARGISNULL(2))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("coverage must not be NULL")));
	coverage = PG_GETARG_FLOAT8(2);
	if (isnan(coverage) || coverage <= 0.0 || coverage > 1.0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("coverage must be greater than 0 and at most 1, not %g", coverage)));
	if (state != NULL && coverage != state->coverage)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("coverage must be the same for every row, not %g and %g", state->coverage, coverage)));
	PG_RETURN_POINTER(ranges_accumulate(fcinfo, state, PG_GETARG_SVVECTOR_P(1), coverage));
}

/* qsort comparator for floats (no NaN can occur: vectors are finite). */
static int
float_cmp(const void *a, const void *b)
{
	float		x = *(const float *) a;
	float		y = *(const float *) b;

	return (x > y) - (x < y);
}

/* Index of the order statistic for probability p among n values: ceil(n * p) - 1, clamped to [0, n-1]. */
static int64
order_index(int64 n, double p)
{
	double		k = ceil((double) n * p) - 1;

	if (k < 0)
		return 0;
	if (k > n - 1)
		return n - 1;
	return (int64) k;
}

/* Build a real[] from n floats. */
static ArrayType *
float_array(const float *x, int n)
{
	Datum	   *d = palloc(sizeof(Datum) * n);

	for (int i = 0; i < n; i++)
		d[i] = Float4GetDatum(x[i]);
	return construct_array(d, n, FLOAT4OID, sizeof(float4), true, TYPALIGN_INT);
}

PG_FUNCTION_INFO_V1(int8_ranges_final);
/* Final function of int8_ranges: the (lo real[], hi real[]) pair, or NULL for no rows. */
Datum
int8_ranges_final(PG_FUNCTION_ARGS)
{
	RangesState *state;
	TupleDesc	tupdesc;
	Datum		values[2];
	bool		nulls[2] = {false, false};
	float	   *lo;
	float	   *hi;

	if (PG_ARGISNULL(0))
		PG_RETURN_NULL();
	state = (RangesState *) PG_GETARG_POINTER(0);
	if (get_call_result_type(fcinfo, NULL, &tupdesc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "int8_ranges must return a composite type");
	tupdesc = BlessTupleDesc(tupdesc);

	if (state->coverage == 0.0)
	{
		lo = state->lo;
		hi = state->hi;
	}
	else
	{
		double		tail = (1.0 - state->coverage) / 2.0;
		int64		klo = order_index(state->n, tail);
		int64		khi = order_index(state->n, 1.0 - tail);
		float	   *column = palloc_extended(sizeof(float) * state->n, MCXT_ALLOC_HUGE);

		lo = palloc(sizeof(float) * state->dim);
		hi = palloc(sizeof(float) * state->dim);
		for (int j = 0; j < state->dim; j++)
		{
			for (int64 i = 0; i < state->n; i++)
				column[i] = state->values[i * state->dim + j];
			qsort(column, state->n, sizeof(float), float_cmp);
			lo[j] = column[klo];
			hi[j] = column[khi];
			CHECK_FOR_INTERRUPTS();
		}
	}
	values[0] = PointerGetDatum(float_array(lo, state->dim));
	values[1] = PointerGetDatum(float_array(hi, state->dim));
	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(tupdesc, values, nulls)));
}
