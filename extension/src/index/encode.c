/*
 * encode.c: turning a row or a query into what the index stores or scans: the floats of a vector datum
 * (one conversion for rows and queries), the sign code with its factors, the refine code, a bit datum's code.
 */
#include "postgres.h"

#include <math.h>

#include "utils/float.h"
#include "utils/varbit.h"

#include "svindex.h"
#include "kernels/kernels.h"
#include "shrinkvec.h"

/*
 * The elements of a vector or halfvec datum as floats (a halfvec widened into a copy), its dimension
 * checked against dims: pgvector's "expected %d dimensions, not %d" for a row going into the index, and
 * its operators' "different vector dimensions %d and %d" for a query.  *copy is what to pfree after.
 */
static const float *
sv_datum_elements(Datum value, int elemtype, int dims, SvConvertFor purpose, int *n, void **copy)
{
	const float *x;
	float	   *wide;

	*copy = NULL;
	if (elemtype == SV_ELEM_VECTOR)
	{
		SvVector   *v = sv_check_vector((SvVector *) PG_DETOAST_DATUM(value));

		*n = v->dim;
		x = v->x;
		if ((Pointer) v != DatumGetPointer(value))
			*copy = v;
	}
	else
	{
		SvHalfVec  *v = sv_check_halfvec((SvHalfVec *) PG_DETOAST_DATUM(value));

		*n = v->dim;
		wide = palloc(sizeof(float) * Max(v->dim, 1));
		for (int i = 0; i < v->dim; i++)
			wide[i] = sv_half_to_float(v->x[i]);
		if ((Pointer) v != DatumGetPointer(value))
			pfree(v);
		x = wide;
		*copy = wide;
	}
	if (*n != dims)
	{
		if (purpose == SV_FOR_ROW)
			ereport(ERROR,
					(errcode(ERRCODE_DATA_EXCEPTION),
					 errmsg("expected %d dimensions, not %d", dims, *n)));
		ereport(ERROR,
				(errcode(ERRCODE_DATA_EXCEPTION),
				 errmsg("different vector dimensions %d and %d", dims, *n)));
	}
	return x;
}

/* The squared norm of n floats summed in double (finite for any finite floats). */
static double
sv_norm2_double(const float *x, int n)
{
	double		n2 = 0;

	for (int i = 0; i < n; i++)
		n2 += (double) x[i] * x[i];
	return n2;
}

/*
 * Divide the first code_bits of the n elements v into x by v's norm (cosine).  The norm is float's
 * (the kernels' dot, as pgvector computes it) for a vector and from the sum in double for a halfvec (its
 * squares are exact in double); a nonzero squared norm float cannot hold (below SV_TINY_NORM2 or above
 * SV_SAFE_NORM2, only possible for a vector) divides in double and sets *unknown.  False for a zero norm
 * (x is then zero).
 */
static bool
sv_normalize(const float *v, int n, int code_bits, bool half, float *x, bool *unknown)
{
	double		n2 = sv_norm2_double(v, n);
	float		norm;

	if (n2 > 0 && (n2 < SV_TINY_NORM2 || n2 > SV_SAFE_NORM2))
	{
		/* the direction, from the norm in double; a row's estimate is marked unknown */
		double		dn = sqrt(n2);

		for (int i = 0; i < code_bits; i++)
			x[i] = (float) (v[i] / dn);
		*unknown = true;
		return true;
	}
	norm = half ? (float) sqrt(n2) : sqrtf(sv_kernels.dot(v, v, n));
	if (!(norm > 0 && isfinite(norm)))
	{
		memset(x, 0, sizeof(float) * code_bits);
		return false;
	}
	for (int i = 0; i < code_bits; i++)
		x[i] = v[i] / norm;
	return true;
}

/*
 * The coded part of a vector or halfvec datum as floats, for a row going into the index and for a
 * query alike: the first code_bits dims, normalised over all dims for cosine.  Returns false for a zero
 * vector under cosine (x is then zero).  *unknown (when not NULL) is set for a cosine datum whose
 * squared norm float cannot hold (below SV_TINY_NORM2 but not zero, or above SV_SAFE_NORM2): pgvector's
 * cosine distance of such a row is not its direction's (its float norm underflows or overflows), so its
 * entry gets an unknown estimate (sv_mark_unknown).  A query (SV_FOR_QUERY) must also be finite.
 */
bool
sv_datum_to_floats(Datum value, const SvIndexCache *cache, SvConvertFor purpose, float *x, bool *unknown)
{
	const SvMetaData *meta = &cache->meta;
	int			elemtype = meta->elemtype;
	int			code_bits = meta->code_bits;
	int			n;
	void	   *copy;
	const float *v = sv_datum_elements(value, elemtype, meta->dims, purpose, &n, &copy);
	bool		ok = true;
	bool		dummy;

	if (purpose == SV_FOR_QUERY)
		for (int i = 0; i < n; i++)
			if (isnan(v[i]) || isinf(v[i]))
				ereport(ERROR,
						(errcode(ERRCODE_DATA_EXCEPTION),
						 errmsg("NaN or Infinity not allowed in a query vector")));
	if (unknown == NULL)
		unknown = &dummy;
	*unknown = false;
	if (meta->kind == SV_KIND_COSINE)
		ok = sv_normalize(v, n, code_bits, elemtype == SV_ELEM_HALFVEC, x, unknown);
	else
		memcpy(x, v, sizeof(float) * code_bits);
	if (copy)
		pfree(copy);
	if (sv_rotate_coded(cache, x))
		*unknown = true;		/* so long that its rotation left float's range (clamped): estimate unknown */
	return ok;
}

/* Coded dims whose rotation works in a buffer on the stack (16 kB), not one allocated per row. */
#define SV_ROTATION_STACK_DIMS 2048

/*
 * Apply the index's rotation (svindex.h, "Rotation") or its inverse to the code_bits floats x in place;
 * true when rotated values had to be clamped to float's range (sv_rotate).
 */
static bool
sv_rotation_apply(const SvIndexCache *cache, float *x, bool inverse)
{
	const SvMetaData *meta = &cache->meta;
	double		stack_work[SV_ROTATION_STACK_DIMS];
	double	   *work = stack_work;
	bool		clamped = false;

	if (meta->rotation_rounds <= 0)
		return false;
	Assert(cache->rotation_masks != NULL);
	if (meta->code_bits > SV_ROTATION_STACK_DIMS)
		work = palloc(sizeof(double) * meta->code_bits);	/* rare: codes over 2,048 dims */
	if (inverse)
		sv_unrotate(x, x, meta->code_bits, cache->rotation_masks, meta->rotation_rounds, work);
	else
		clamped = sv_rotate(x, x, meta->code_bits, cache->rotation_masks, meta->rotation_rounds, work);
	if (work != stack_work)
		pfree(work);
	return clamped;
}

/* Rotate the code_bits floats x in place by the index's rotation; true when values were clamped. */
bool
sv_rotate_coded(const SvIndexCache *cache, float *x)
{
	return sv_rotation_apply(cache, x, false);
}

/* Undo the index's rotation of the code_bits floats x in place (its transpose). */
void
sv_unrotate_coded(const SvIndexCache *cache, float *x)
{
	(void) sv_rotation_apply(cache, x, true);
}

/*
 * Encode x against centroid c into a refine code.  The residual r = x - c is coded on a uniform grid of
 * 2^B values from lo to hi: the range of r, clipped to mean +- k sd of r (k = 1.5, 2.5, 4 for B = 2, 4,
 * 8: near the step of the best uniform quantizer of a Gaussian, so a few outlying dims do not coarsen
 * the grid of all the others); each dim is rounded to the nearest value (rint: ties to even, as numpy's
 * rint) and clipped, and packed most significant bits first.  The mean and sd are summed in double in
 * dim order, the rest is float arithmetic in the order of the numpy reference (codes.refine_code).
 */
void
sv_refine_encode(const SvMetaData *meta, const float *x, const float *c, SvRefine *out)
{
	int			dim = meta->code_bits;
	int			bits = meta->refine_bits;
	float		top = (float) ((1 << bits) - 1);
	double		k = bits == 2 ? 1.5 : bits == 4 ? 2.5 : 4.0;
	float		rmin = get_float4_infinity(),
				rmax = -get_float4_infinity(),
				lo,
				hi,
				step;
	double		sum = 0,
				sum2 = 0,
				norm2 = 0,
				err2 = 0,
				mean,
				sd;

	for (int i = 0; i < dim; i++)
	{
		float		r = c ? x[i] - c[i] : x[i];

		rmin = Min(rmin, r);
		rmax = Max(rmax, r);
		sum += (double) r;
		norm2 += (double) x[i] * x[i];
	}
	mean = sum / dim;
	for (int i = 0; i < dim; i++)
	{
		double		d = (double) (c ? x[i] - c[i] : x[i]) - mean;

		sum2 += d * d;
	}
	sd = sqrt(sum2 / dim);
	lo = (float) Max((double) rmin, mean - k * sd);
	hi = (float) Min((double) rmax, mean + k * sd);
	step = (hi - lo) / top;
	memset(out->code, 0, meta->refine_bytes);
	if (!(step > 0))
		step = 0;
	for (int i = 0; i < dim; i++)
	{
		float		r = c ? x[i] - c[i] : x[i];
		uint32		u = 0;
		float		e;

		if (step > 0)
		{
			float		t = rintf((r - lo) / step);
			int			bit = i * bits;

			u = t <= 0 ? 0 : t >= top ? (uint32) top : (uint32) t;
			out->code[bit / 8] |= (uint8) (u << (8 - bits - bit % 8));
		}
		e = r - (lo + step * (float) u);
		err2 += (double) e * e;
	}
	out->lo = lo;
	out->step = step;
	out->norm2 = (float) norm2;
	out->err2 = (float) err2;
}

/* Encode x against centroid c (NULL = zero): sign bits of x - c, alpha and r2. */
void
sv_encode(const SvMetaData *meta, const float *x, const float *c, uint8 *code, float *alpha, float *r2)
{
	int			dim = meta->code_bits;
	double		abs_sum = 0,
				sq_sum = 0;

	memset(code, 0, meta->code_bytes);
	for (int i = 0; i < dim; i++)
	{
		float		r = c ? x[i] - c[i] : x[i];
		double		rd = r;

		code[i / 8] |= (uint8) ((r > 0) << (7 - i % 8));	/* no branch: the signs are random */
		/* a difference of finite floats that overflows float is finite in double */
		if (unlikely(isinf(r)))
			rd = (double) x[i] - (double) c[i];
		abs_sum += fabs(rd);
		sq_sum += rd * rd;
	}
	*alpha = (float) (abs_sum / dim);
	*r2 = (float) sq_sum;
}

/* Mark an encoded entry's estimate unknown (svindex.h): an infinite alpha, and norm2 of its refine code. */
void
sv_mark_unknown(float *alpha, SvRefine *refine)
{
	*alpha = INFINITY;
	if (refine)
		refine->norm2 = INFINITY;
}

/*
 * Encode one row's floats x against its list's centroid c: the sign code with alpha and r2, the refine
 * code when the index has them (into refine->code, refine_bytes), and an unknown estimate when the
 * conversion said so.  The one per-row encoding of the build and of inserts.
 */
void
sv_encode_row(const SvMetaData *meta, const float *x, const float *c, bool unknown, uint8 *code,
			  float *alpha, float *r2, SvRefine *refine)
{
	sv_encode(meta, x, c, code, alpha, r2);
	if (meta->refine_bits > 0)
		sv_refine_encode(meta, x, c, refine);
	if (unknown)
		sv_mark_unknown(alpha, meta->refine_bits > 0 ? refine : NULL);
}

/*
 * The index's one error for a bit string whose length is not the indexed codes' (a row, or a query for
 * the distance operator) or longer than them (a query for <^>): pgvector's wording and PostgreSQL's
 * SQLSTATE for strings of different lengths; hint, when not NULL, says what would work.
 */
void
sv_bit_length_error(int code_bits, int len, const char *hint)
{
	ereport(ERROR,
			(errcode(ERRCODE_STRING_DATA_LENGTH_MISMATCH),
			 errmsg("different bit lengths %d and %d", code_bits, len),
			 hint ? errhint("%s", hint) : 0));
}

/* Encode a bit datum: the first code_bits bits, zero-padded; errors on a wrong length. */
void
sv_encode_bits(const SvMetaData *meta, Datum value, uint8 *code)
{
	VarBit	   *b = sv_check_varbit(DatumGetVarBitP(value));

	if (VARBITLEN(b) != meta->code_bits)
		sv_bit_length_error(meta->code_bits, VARBITLEN(b), NULL);
	memset(code, 0, meta->code_bytes);
	memcpy(code, VARBITS(b), VARBITBYTES(b));
	if ((Pointer) b != DatumGetPointer(value))
		pfree(b);
}
