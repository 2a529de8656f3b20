/*
 * maxsim.c: late interaction (ColBERT-style MaxSim) over multi-vector documents.
 *
 * A document or query is an array of token vectors (vector[] or halfvec[]).
 *
 *   maxsim(q, d)         = sum over query tokens t of max over doc tokens u of <t, u>   (exact, float)
 *   binarize(d [, dims [, center]]) -> multibit: every token's sign bits, as binarize(vector ...)
 *   maxsim(q, multibit)  = sum over query tokens t of delta_t * max over doc tokens u of
 *                          sum_{i < dims} v_{t,i} * (2 b_{u,i} - 1)
 *       where v_t = rint(t[:dims] / delta_t) clipped to +-SV_FS_LEVEL and delta_t = max|t[:dims]| /
 *       SV_FS_LEVEL (1 for a zero token): the query token quantized to 31 levels, against the doc
 *       token's signs, exactly as the index's FastScan tables score a sign code.  The inner sums are
 *       integers, so every kernel level gives the same value; the outer sum is in double, in
 *       query-token order (pytools/shrinkvec/codes.py: maxsim_bits is the reference).
 *
 * The multibit type's layout and I/O are in types/multibit.h and types/multibit.c.
 *
 * The scoring kernel transposes a document's codes into blocks of SV_FS_LANES tokens and scores each
 * block against a query token with one sv_kernels.fs_scan call; the query's tables are built once per
 * query and kept in fn_extra while the same query comes back row after row.
 */
#include "postgres.h"

#include "access/tupmacs.h"
#include "catalog/pg_type.h"
#include "lib/stringinfo.h"
#include "nodes/primnodes.h"
#include "libpq/pqformat.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/varbit.h"

#include "kernels/kernels.h"
#include "shrinkvec.h"
#include "types/multibit.h"

/* Token vectors read from an array, as ntokens * dim contiguous floats. */
typedef struct SvTokens
{
	int			ntokens;
	int			dim;
	float	   *x;
} SvTokens;

/* Check the shape of a token array (one dimension, no NULLs, 1..SV_MAX_TOKENS elements); returns the count. */
static int
check_token_array(ArrayType *a, const char *what)
{
	int			n = sv_check_array_shape(a, what);

	sv_check_token_count(n, what);
	return n;
}

/* Error for two token dimensions that differ (pgvector's wording). */
static void
check_same_dim(int a, int b)
{
	if (a != b)
		ereport(ERROR,
				(errcode(ERRCODE_DATA_EXCEPTION),
				 errmsg("different vector dimensions %d and %d", a, b)));
}

/*
 * Read a vector[] (half = false) or halfvec[] (half = true) array into contiguous floats.  Array
 * elements may carry short varlena headers and sit unaligned, so they are copied, not cast.
 */
static void
read_tokens(ArrayType *a, bool half, const char *what, SvTokens *out)
{
	int			n = check_token_array(a, what);
	int16		typlen;
	bool		typbyval;
	char		typalign;
	const char *p = ARR_DATA_PTR(a);
	int			dim = -1;

	get_typlenbyvalalign(ARR_ELEMTYPE(a), &typlen, &typbyval, &typalign);
	if (typlen != -1)
		ereport(ERROR,
				(errcode(ERRCODE_DATATYPE_MISMATCH),
				 errmsg("%s must be an array of %s", what, half ? "halfvec" : "vector")));
	for (int i = 0; i < n; i++)
	{
		const char *data = VARDATA_ANY(p);
		int16		d;
		float	   *dst;

		if (VARSIZE_ANY_EXHDR(p) < 4)
			sv_check_datum_size(half ? "halfvec" : "vector", VARSIZE_ANY_EXHDR(p) + VARHDRSZ, 4 + VARHDRSZ, 0,
								"dimensions");
		memcpy(&d, data, sizeof(d));
		if (d < 0 || VARSIZE_ANY_EXHDR(p) != 4 + (Size) d * (half ? 2 : 4))
			sv_check_datum_size(half ? "halfvec" : "vector", VARSIZE_ANY_EXHDR(p) + VARHDRSZ,
								VARHDRSZ + 4 + (Size) Max(d, 0) * (half ? 2 : 4), d, "dimensions");
		if (dim < 0)
		{
			dim = d;
			out->x = (float *) palloc(sizeof(float) * (Size) n * dim);
		}
		else
			check_same_dim(dim, d);
		dst = out->x + (Size) i * dim;
		if (half)
		{
			const char *src = data + 4;

			for (int j = 0; j < dim; j++)
			{
				uint16		h;

				memcpy(&h, src + 2 * j, sizeof(h));
				dst[j] = sv_half_to_float(h);
			}
		}
		else
			memcpy(dst, data + 4, sizeof(float) * dim);
		p = att_addlength_pointer(p, typlen, p);
		p = (const char *) att_align_nominal(p, typalign);
	}
	out->ntokens = n;
	out->dim = dim;
}

/* Exact MaxSim of two token sets of equal dimension. */
static double
maxsim_exact(const SvTokens *q, const SvTokens *d)
{
	check_same_dim(q->dim, d->dim);
	return sv_maxsim_f32(q->x, (size_t) q->ntokens, d->x, (size_t) d->ntokens, (size_t) q->dim);
}

PG_FUNCTION_INFO_V1(maxsim_vector);
/* SQL: maxsim(vector[], vector[]) -> float8, the exact late-interaction score. */
Datum
maxsim_vector(PG_FUNCTION_ARGS)
{
	SvTokens	q,
				d;

	read_tokens(PG_GETARG_ARRAYTYPE_P(0), false, "query", &q);
	read_tokens(PG_GETARG_ARRAYTYPE_P(1), false, "document", &d);
	PG_RETURN_FLOAT8(maxsim_exact(&q, &d));
}

PG_FUNCTION_INFO_V1(maxsim_halfvec);
/* SQL: maxsim(halfvec[], halfvec[]) -> float8; elements are widened to float first. */
Datum
maxsim_halfvec(PG_FUNCTION_ARGS)
{
	SvTokens	q,
				d;

	read_tokens(PG_GETARG_ARRAYTYPE_P(0), true, "query", &q);
	read_tokens(PG_GETARG_ARRAYTYPE_P(1), true, "document", &d);
	PG_RETURN_FLOAT8(maxsim_exact(&q, &d));
}

/* binarize(tokens [, dims [, center]]) of a vector[] or halfvec[] argument. */
static Datum
binarize_tokens(FunctionCallInfo fcinfo, bool half)
{
	SvTokens	t;
	int			dims;
	const float *center = NULL;
	SvMultiBit *m;
	int			nbytes;

	read_tokens(PG_GETARG_ARRAYTYPE_P(0), half, "document", &t);
	dims = t.dim;
	if (PG_NARGS() >= 2)
	{
		int32		dd = PG_GETARG_INT32(1);

		if (dd < 1 || dd > t.dim)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("dims must be between 1 and %d, not %d", t.dim, dd)));
		dims = dd;
	}
	if (PG_NARGS() >= 3)
	{
		int			n;
		const float *c = sv_float_array(PG_GETARG_ARRAYTYPE_P(2), "center", &n);

		if (n != t.dim && n != dims)
			ereport(ERROR,
					(errcode(ERRCODE_DATA_EXCEPTION),
					 errmsg("center has %d elements, expected %d (the input's dimensions) or %d (dims)",
							n, t.dim, dims)));
		center = c;
	}
	m = sv_multibit_new(t.ntokens, dims);
	nbytes = SV_MULTIBIT_NBYTES(dims);
	for (int k = 0; k < t.ntokens; k++)
	{
		const float *x = t.x + (Size) k * t.dim;
		uint8	   *out = m->data + (Size) k * nbytes;

		for (int i = 0; i < dims; i++)
		{
			float		v = center ? x[i] - center[i] : x[i];

			if (v > 0)
				out[i >> 3] |= (uint8) (0x80 >> (i & 7));
		}
	}
	PG_RETURN_POINTER(m);
}

PG_FUNCTION_INFO_V1(binarize_vector_array);
/* SQL: binarize(vector[] [, dims [, center]]) -> multibit. */
Datum
binarize_vector_array(PG_FUNCTION_ARGS)
{
	return binarize_tokens(fcinfo, false);
}

PG_FUNCTION_INFO_V1(binarize_halfvec_array);
/* SQL: binarize(halfvec[] [, dims [, center]]) -> multibit; elements are widened to float first. */
Datum
binarize_halfvec_array(PG_FUNCTION_ARGS)
{
	return binarize_tokens(fcinfo, true);
}

/* ---- the asymmetric score ---- */

/* A query's FastScan tables for codes of `dims` bits, cached in fn_extra while the query repeats. */
typedef struct MaxsimCache
{
	bool		constant;		/* the query argument is a Const: its value cannot change in this expression */
	Size		qsize;			/* VARSIZE of the query array the tables were built from */
	char	   *qcopy;			/* its bytes */
	bool		half;
	int			dims;			/* code dimensions the tables are for */
	int			nbe;			/* bytes per code, rounded up to even */
	int			ntokens;
	uint8	   *tables;			/* ntokens * SV_FS_TABLE_BYTES(nbe) */
	float	   *delta;
	int32	   *vsum;
} MaxsimCache;

/* Is the query argument (the first) of the call's expression a Const? */
static bool
query_arg_is_const(FmgrInfo *flinfo)
{
	Node	   *expr = flinfo->fn_expr;
	List	   *args;

	if (expr == NULL)
		return false;
	if (IsA(expr, FuncExpr))
		args = ((FuncExpr *) expr)->args;
	else if (IsA(expr, OpExpr))
		args = ((OpExpr *) expr)->args;
	else
		return false;
	return list_length(args) >= 1 && IsA(linitial(args), Const);
}

/* The cached tables of the query argument for codes of dims bits, rebuilt when the query changes. */
static MaxsimCache *
query_tables(FunctionCallInfo fcinfo, ArrayType *qa, bool half, int dims)
{
	MaxsimCache *c = (MaxsimCache *) fcinfo->flinfo->fn_extra;
	Size		qsize = VARSIZE(qa);
	MemoryContext old;
	SvTokens	q;
	size_t		tb;

	/*
	 * The tables are reused only for a query equal to the cached one, byte for byte.  A Const argument
	 * skips the comparison (44 KB for 28 x 384 tokens): its value is fixed for this expression.  A
	 * Param is not (a PL/pgSQL simple expression keeps one state per transaction and passes each call's
	 * variables as Params of the same expression), so its bytes are compared.
	 */
	if (c != NULL && c->qsize == qsize && c->half == half && c->dims == dims &&
		(c->constant || memcmp(c->qcopy, qa, qsize) == 0))
		return c;
	read_tokens(qa, half, "query", &q);
	if (q.dim < dims)
		ereport(ERROR,
				(errcode(ERRCODE_DATA_EXCEPTION),
				 errmsg("code has %d dimensions, more than the query's %d dimensions", dims, q.dim)));
	if (c != NULL)
	{
		pfree(c->qcopy);
		pfree(c->tables);
		pfree(c->delta);
		pfree(c->vsum);
	}
	else
		c = (MaxsimCache *) MemoryContextAllocZero(fcinfo->flinfo->fn_mcxt, sizeof(MaxsimCache));
	old = MemoryContextSwitchTo(fcinfo->flinfo->fn_mcxt);
	c->qsize = 0;
	c->half = half;
	c->dims = dims;
	c->nbe = (SV_MULTIBIT_NBYTES(dims) + 1) & ~1;
	c->ntokens = q.ntokens;
	tb = SV_FS_TABLE_BYTES(c->nbe);
	c->tables = palloc(tb * q.ntokens);
	c->delta = palloc(sizeof(float) * q.ntokens);
	c->vsum = palloc(sizeof(int32) * q.ntokens);
	c->qcopy = palloc(qsize);
	MemoryContextSwitchTo(old);
	for (int t = 0; t < q.ntokens; t++)
	{
		SvFsQuery	fq;

		sv_fs_tables_ip(q.x + (Size) t * q.dim, (size_t) dims, (size_t) c->nbe, c->tables + tb * t, &fq);
		c->delta[t] = fq.delta;
		c->vsum[t] = fq.vsum;
	}
	memcpy(c->qcopy, qa, qsize);
	c->qsize = qsize;
	c->constant = query_arg_is_const(fcinfo->flinfo);
	fcinfo->flinfo->fn_extra = c;
	return c;
}

/*
 * The asymmetric score of the cached query against ntokens row-major codes of nbytes bytes:
 * transpose them into blocks of SV_FS_LANES (bytes padded to nbe), fs_scan each query token.
 */
static double
maxsim_codes(const MaxsimCache *c, const uint8 *codes, int ntokens, int nbytes)
{
	int			nblocks = (ntokens + SV_FS_LANES - 1) / SV_FS_LANES;
	size_t		tb = SV_FS_TABLE_BYTES(c->nbe);
	uint8	   *blocks = palloc0((Size) nblocks * SV_FS_LANES * c->nbe);
	uint32	   *sums = palloc(sizeof(uint32) * (Size) nblocks * SV_FS_LANES);
	uint8		code[SV_MAX_DIM / 8 + 2];
	double		total = 0.0;

	memset(code, 0, sizeof(code));
	for (int k = 0; k < ntokens; k++)
	{
		memcpy(code, codes + (Size) k * nbytes, nbytes);
		sv_fs_put(blocks, SV_FS_LANES, (size_t) c->nbe, (size_t) k, code);
	}
	for (int t = 0; t < c->ntokens; t++)
	{
		uint32		best = 0;
		int64		m;

		sv_kernels.fs_scan(blocks, (size_t) nblocks, (size_t) c->nbe, c->tables + tb * t, sums);
		for (int k = 0; k < ntokens; k++)
			if (sums[k] > best)
				best = sums[k];
		/* sum of v over set bits = S - 2 bias per byte; then sum of v * (2b - 1) */
		m = 2 * ((int64) best - 2 * SV_FS_BIAS * (int64) c->nbe) - c->vsum[t];
		total += (double) c->delta[t] * (double) m;
	}
	pfree(blocks);
	pfree(sums);
	return total;
}

PG_FUNCTION_INFO_V1(maxsim_vector_multibit);
/* SQL: maxsim(vector[], multibit) -> float8, float query tokens against the doc tokens' sign bits. */
Datum
maxsim_vector_multibit(PG_FUNCTION_ARGS)
{
	SvMultiBit *m = PG_GETARG_SVMULTIBIT_P(1);
	MaxsimCache *c = query_tables(fcinfo, PG_GETARG_ARRAYTYPE_P(0), false, m->dims);

	PG_RETURN_FLOAT8(maxsim_codes(c, m->data, m->ntokens, SV_MULTIBIT_NBYTES(m->dims)));
}

PG_FUNCTION_INFO_V1(maxsim_halfvec_multibit);
/* SQL: maxsim(halfvec[], multibit) -> float8, as for vector[] with the query widened to float. */
Datum
maxsim_halfvec_multibit(PG_FUNCTION_ARGS)
{
	SvMultiBit *m = PG_GETARG_SVMULTIBIT_P(1);
	MaxsimCache *c = query_tables(fcinfo, PG_GETARG_ARRAYTYPE_P(0), true, m->dims);

	PG_RETURN_FLOAT8(maxsim_codes(c, m->data, m->ntokens, SV_MULTIBIT_NBYTES(m->dims)));
}

PG_FUNCTION_INFO_V1(maxsim_vector_bits);
/* SQL: maxsim(vector[], bit[]) -> float8, the same score with the doc codes as a bit[] (for comparison). */
Datum
maxsim_vector_bits(PG_FUNCTION_ARGS)
{
	ArrayType  *a = PG_GETARG_ARRAYTYPE_P(1);
	int			n;
	const char *p = ARR_DATA_PTR(a);
	int			dims = -1,
				nbytes = 0;
	uint8	   *codes = NULL;
	MaxsimCache *c;
	double		score;

	if (ARR_ELEMTYPE(a) != BITOID)
		ereport(ERROR,
				(errcode(ERRCODE_DATATYPE_MISMATCH),
				 errmsg("document must be a bit[] array")));
	n = check_token_array(a, "document");
	for (int i = 0; i < n; i++)
	{
		/* bit[] elements are int-aligned with 4-byte headers (typalign 'i') */
		const VarBit *b = (const VarBit *) p;

		if (!VARATT_IS_4B_U(p))
			ereport(ERROR,
					(errcode(ERRCODE_DATA_CORRUPTED),
					 errmsg("document code %d is not an uncompressed bit string", i + 1)));
		(void) sv_check_varbit((VarBit *) b);
		if (dims < 0)
		{
			dims = VARBITLEN(b);
			if (dims < 1)
				ereport(ERROR,
						(errcode(ERRCODE_DATA_EXCEPTION),
						 errmsg("document codes must have at least 1 bit")));
			if (dims > SV_MAX_DIM)
				ereport(ERROR,
						(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
						 errmsg("document codes cannot have more than %d bits", SV_MAX_DIM)));
			nbytes = SV_MULTIBIT_NBYTES(dims);
			codes = palloc((Size) n * nbytes);
		}
		else if (VARBITLEN(b) != dims)
			ereport(ERROR,
					(errcode(ERRCODE_DATA_EXCEPTION),
					 errmsg("different bit lengths %d and %d", dims, VARBITLEN(b))));
		memcpy(codes + (Size) i * nbytes, VARBITS(b), nbytes);
		p = att_addlength_pointer(p, -1, p);
		p = (const char *) att_align_nominal(p, TYPALIGN_INT);
	}
	c = query_tables(fcinfo, PG_GETARG_ARRAYTYPE_P(0), false, dims);
	score = maxsim_codes(c, codes, n, nbytes);
	pfree(codes);
	PG_RETURN_FLOAT8(score);
}
