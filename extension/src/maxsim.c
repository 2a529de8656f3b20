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
 * multibit layout: int32 varlena header, int16 ntokens, int16 dims, then ntokens codes of
 * ceil(dims / 8) bytes each, token after token, bits MSB-first, padding bits zero.
 * Text form: the tokens' bit strings as in bit[]: '{1011,0110}'.
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

#include "kernels.h"
#include "shrinkvec.h"

/* The most tokens a query, document or multibit may have. */
#define SV_MAX_TOKENS 1024

/* shrinkvec's multibit: the sign bits of a document's tokens. */
typedef struct SvMultiBit
{
	int32		vl_len_;
	int16		ntokens;
	int16		dims;
	uint8		data[FLEXIBLE_ARRAY_MEMBER];
} SvMultiBit;

#define SV_MULTIBIT_NBYTES(dims) (((dims) + 7) / 8)
#define SV_MULTIBIT_SIZE(ntokens, dims) (offsetof(SvMultiBit, data) + (size_t) (ntokens) * SV_MULTIBIT_NBYTES(dims))
#define PG_GETARG_SVMULTIBIT_P(n) check_multibit((SvMultiBit *) PG_DETOAST_DATUM(PG_GETARG_DATUM(n)))

/* Check a multibit's stored size against its token count and dims (shrinkvec.h); returns m. */
static inline SvMultiBit *
check_multibit(SvMultiBit *m)
{
	if (unlikely(VARSIZE(m) < offsetof(SvMultiBit, data) || m->ntokens < 0 || m->dims < 0 ||
				 VARSIZE(m) != SV_MULTIBIT_SIZE(m->ntokens, m->dims)))
		sv_check_datum_size("multibit", VARSIZE(m),
							VARSIZE(m) < offsetof(SvMultiBit, data) ? offsetof(SvMultiBit, data) :
							SV_MULTIBIT_SIZE(Max(m->ntokens, 0), Max(m->dims, 0)),
							VARSIZE(m) < offsetof(SvMultiBit, data) ? 0 : m->ntokens, "tokens");
	return m;
}

/* Token vectors read from an array, as ntokens * dim contiguous floats. */
typedef struct SvTokens
{
	int			ntokens;
	int			dim;
	float	   *x;
} SvTokens;

/* Allocate a zeroed multibit of ntokens codes of dims bits. */
static SvMultiBit *
new_multibit(int ntokens, int dims)
{
	Size		size = SV_MULTIBIT_SIZE(ntokens, dims);
	SvMultiBit *m = (SvMultiBit *) palloc0(size);

	SET_VARSIZE(m, size);
	m->ntokens = (int16) ntokens;
	m->dims = (int16) dims;
	return m;
}

/* Check the token count of an input; what names it. */
static void
check_token_count(int n, const char *what)
{
	if (n < 1)
		ereport(ERROR,
				(errcode(ERRCODE_DATA_EXCEPTION),
				 errmsg("%s must not be empty", what)));
	if (n > SV_MAX_TOKENS)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("%s has %d tokens, more than the limit of %d", what, n, SV_MAX_TOKENS)));
}

/* Check the shape of a token array (one dimension, no NULLs, 1..SV_MAX_TOKENS elements); returns the count. */
static int
check_token_array(ArrayType *a, const char *what)
{
	int			n = sv_check_array_shape(a, what);

	check_token_count(n, what);
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
	m = new_multibit(t.ntokens, dims);
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

/* ---- the multibit type ---- */

/* Check a multibit's header values read from input. */
static void
check_multibit_header(int ntokens, int dims)
{
	check_token_count(ntokens, "multibit");
	if (dims < 1)
		ereport(ERROR,
				(errcode(ERRCODE_DATA_EXCEPTION),
				 errmsg("multibit tokens must have at least 1 bit")));
	if (dims > SV_MAX_DIM)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("multibit tokens cannot have more than %d bits", SV_MAX_DIM)));
}

PG_FUNCTION_INFO_V1(multibit_in);
/* Text input: '{1011,0110}', one bit string per token, all of the same length. */
Datum
multibit_in(PG_FUNCTION_ARGS)
{
	const char *lit = PG_GETARG_CSTRING(0);
	const char *p = lit;
	int			ntokens = 0,
				dims = -1;
	StringInfoData bits;
	SvMultiBit *m;

	initStringInfo(&bits);
	while (*p == ' ')
		p++;
	if (*p != '{')
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_TEXT_REPRESENTATION),
				 errmsg("invalid input syntax for type multibit: \"%s\"", lit),
				 errdetail("multibit must start with \"{\".")));
	p++;
	for (;;)
	{
		int			len = 0;

		while (*p == ' ')
			p++;
		while (*p == '0' || *p == '1')
		{
			appendStringInfoChar(&bits, *p);
			len++;
			p++;
		}
		while (*p == ' ')
			p++;
		if (len == 0)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_TEXT_REPRESENTATION),
					 errmsg("invalid input syntax for type multibit: \"%s\"", lit),
					 errdetail("Every token must be a non-empty string of 0 and 1.")));
		if (dims < 0)
			dims = len;
		else if (len != dims)
			ereport(ERROR,
					(errcode(ERRCODE_DATA_EXCEPTION),
					 errmsg("different bit lengths %d and %d", dims, len)));
		ntokens++;
		if (ntokens > SV_MAX_TOKENS)
			check_token_count(ntokens, "multibit");
		if (*p == ',')
		{
			p++;
			continue;
		}
		if (*p == '}')
			break;
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_TEXT_REPRESENTATION),
				 errmsg("invalid input syntax for type multibit: \"%s\"", lit)));
	}
	p++;
	while (*p == ' ')
		p++;
	if (*p != '\0')
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_TEXT_REPRESENTATION),
				 errmsg("invalid input syntax for type multibit: \"%s\"", lit),
				 errdetail("Junk after closing right brace.")));
	check_multibit_header(ntokens, dims);
	m = new_multibit(ntokens, dims);
	for (int k = 0; k < ntokens; k++)
	{
		uint8	   *out = m->data + (Size) k * SV_MULTIBIT_NBYTES(dims);

		for (int i = 0; i < dims; i++)
			if (bits.data[(Size) k * dims + i] == '1')
				out[i >> 3] |= (uint8) (0x80 >> (i & 7));
	}
	pfree(bits.data);
	PG_RETURN_POINTER(m);
}

PG_FUNCTION_INFO_V1(multibit_out);
/* Text output: '{1011,0110}'. */
Datum
multibit_out(PG_FUNCTION_ARGS)
{
	SvMultiBit *m = PG_GETARG_SVMULTIBIT_P(0);
	int			nbytes = SV_MULTIBIT_NBYTES(m->dims);
	StringInfoData s;

	initStringInfo(&s);
	enlargeStringInfo(&s, m->ntokens * (m->dims + 1) + 2);
	appendStringInfoChar(&s, '{');
	for (int k = 0; k < m->ntokens; k++)
	{
		const uint8 *c = m->data + (Size) k * nbytes;

		if (k > 0)
			appendStringInfoChar(&s, ',');
		for (int i = 0; i < m->dims; i++)
			appendStringInfoChar(&s, ((c[i >> 3] >> (7 - (i & 7))) & 1) ? '1' : '0');
	}
	appendStringInfoChar(&s, '}');
	PG_RETURN_CSTRING(s.data);
}

PG_FUNCTION_INFO_V1(multibit_recv);
/* Binary input: int16 ntokens, int16 dims, then the packed codes (padding bits must be zero). */
Datum
multibit_recv(PG_FUNCTION_ARGS)
{
	StringInfo	buf = (StringInfo) PG_GETARG_POINTER(0);
	int			ntokens = pq_getmsgint(buf, 2);
	int			dims = pq_getmsgint(buf, 2);
	int			nbytes;
	SvMultiBit *m;

	check_multibit_header((int16) ntokens, (int16) dims);
	m = new_multibit(ntokens, dims);
	nbytes = SV_MULTIBIT_NBYTES(dims);
	pq_copymsgbytes(buf, (char *) m->data, ntokens * nbytes);
	if (dims % 8 != 0)
	{
		uint8		pad = (uint8) (0xFF >> (dims % 8));

		for (int k = 0; k < ntokens; k++)
			if (m->data[(Size) k * nbytes + nbytes - 1] & pad)
				ereport(ERROR,
						(errcode(ERRCODE_INVALID_BINARY_REPRESENTATION),
						 errmsg("multibit token %d has padding bits set past bit %d", k + 1, dims)));
	}
	PG_RETURN_POINTER(m);
}

PG_FUNCTION_INFO_V1(multibit_send);
/* Binary output: int16 ntokens, int16 dims, then the packed codes. */
Datum
multibit_send(PG_FUNCTION_ARGS)
{
	SvMultiBit *m = PG_GETARG_SVMULTIBIT_P(0);
	StringInfoData buf;

	pq_begintypsend(&buf);
	pq_sendint16(&buf, (uint16) m->ntokens);
	pq_sendint16(&buf, (uint16) m->dims);
	pq_sendbytes(&buf, (const char *) m->data, m->ntokens * SV_MULTIBIT_NBYTES(m->dims));
	PG_RETURN_BYTEA_P(pq_endtypsend(&buf));
}

PG_FUNCTION_INFO_V1(multibit_tokens);
/* SQL: multibit_tokens(multibit) -> integer, the number of tokens. */
Datum
multibit_tokens(PG_FUNCTION_ARGS)
{
	SvMultiBit *m = PG_GETARG_SVMULTIBIT_P(0);

	PG_RETURN_INT32(m->ntokens);
}

PG_FUNCTION_INFO_V1(multibit_dims);
/* SQL: vector_dims(multibit) -> integer, the bits per token. */
Datum
multibit_dims(PG_FUNCTION_ARGS)
{
	SvMultiBit *m = PG_GETARG_SVMULTIBIT_P(0);

	PG_RETURN_INT32(m->dims);
}

PG_FUNCTION_INFO_V1(multibit_eq);
/* SQL: multibit = multibit: the same token count, dims and bits. */
Datum
multibit_eq(PG_FUNCTION_ARGS)
{
	SvMultiBit *a = PG_GETARG_SVMULTIBIT_P(0);
	SvMultiBit *b = PG_GETARG_SVMULTIBIT_P(1);

	PG_RETURN_BOOL(VARSIZE(a) == VARSIZE(b) && a->ntokens == b->ntokens && a->dims == b->dims &&
				   memcmp(a->data, b->data, VARSIZE(a) - offsetof(SvMultiBit, data)) == 0);
}
