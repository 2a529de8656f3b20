/*
 * shrinkvec.h: shared definitions of the SQL-callable functions.
 *
 * pgvector's types are read through their documented on-disk layouts, so the extension builds
 * without pgvector's headers: vector = int32 vl_len, int16 dim, int16 unused, float4 x[];
 * halfvec the same with IEEE binary16 elements.
 */
#ifndef SHRINKVEC_H
#define SHRINKVEC_H

#include "postgres.h"

#include "fmgr.h"
#include "utils/array.h"
#include "utils/varbit.h"

/* noreturn on PostgreSQL 15-18 (18 replaced pg_attribute_noreturn() by pg_noreturn). */
#ifdef pg_noreturn
#define SV_NORETURN pg_noreturn
#else
#define SV_NORETURN pg_attribute_noreturn()
#endif

/* The largest dimension accepted anywhere (pgvector's limit for vector and halfvec). */
#define SV_MAX_DIM 16000

/* pgvector's vector. */
typedef struct SvVector
{
	int32		vl_len_;
	int16		dim;
	int16		unused;
	float		x[FLEXIBLE_ARRAY_MEMBER];
} SvVector;

/* pgvector's halfvec. */
typedef struct SvHalfVec
{
	int32		vl_len_;
	int16		dim;
	int16		unused;
	uint16		x[FLEXIBLE_ARRAY_MEMBER];
} SvHalfVec;

/* shrinkvec's int8vec: one signed byte per dimension. */
typedef struct SvInt8Vec
{
	int32		vl_len_;
	int16		dim;
	int16		unused;
	int8		x[FLEXIBLE_ARRAY_MEMBER];
} SvInt8Vec;

#define SV_VECTOR_SIZE(dim) (offsetof(SvVector, x) + sizeof(float) * (dim))
#define SV_INT8VEC_SIZE(dim) (offsetof(SvInt8Vec, x) + (dim))

#define SV_HALFVEC_SIZE(dim) (offsetof(SvHalfVec, x) + sizeof(uint16) * (dim))

/*
 * Arguments are detoasted and their stored size checked against their header (dimensions, bit
 * length): a datum of another type bound to the same C symbol (a domain over bytea named vector)
 * errors instead of being read out of bounds.  One comparison a call.
 */
#define PG_GETARG_SVVECTOR_P(n) sv_check_vector((SvVector *) PG_DETOAST_DATUM(PG_GETARG_DATUM(n)))
#define PG_GETARG_SVHALFVEC_P(n) sv_check_halfvec((SvHalfVec *) PG_DETOAST_DATUM(PG_GETARG_DATUM(n)))
#define PG_GETARG_SVINT8VEC_P(n) sv_check_int8vec((SvInt8Vec *) PG_DETOAST_DATUM(PG_GETARG_DATUM(n)))
#define PG_GETARG_SVVARBIT_P(n) sv_check_varbit(PG_GETARG_VARBIT_P(n))

/* Error unless a datum of `what` holds `size` bytes, the size its header `count` `unit`s need. */
void		sv_check_datum_size(const char *what, Size size, Size need, int count, const char *unit);

/* Check a vector's stored size against its dimensions (errors when they disagree); returns v. */
static inline SvVector *
sv_check_vector(SvVector *v)
{
	if (unlikely(VARSIZE(v) < offsetof(SvVector, x) || v->dim < 0 || VARSIZE(v) != SV_VECTOR_SIZE(v->dim)))
		sv_check_datum_size("vector", VARSIZE(v), VARSIZE(v) < offsetof(SvVector, x) ? offsetof(SvVector, x) :
							SV_VECTOR_SIZE(Max(v->dim, 0)), VARSIZE(v) < offsetof(SvVector, x) ? 0 : v->dim,
							"dimensions");
	return v;
}

/* Check a halfvec's stored size against its dimensions; returns v. */
static inline SvHalfVec *
sv_check_halfvec(SvHalfVec *v)
{
	if (unlikely(VARSIZE(v) < offsetof(SvHalfVec, x) || v->dim < 0 || VARSIZE(v) != SV_HALFVEC_SIZE(v->dim)))
		sv_check_datum_size("halfvec", VARSIZE(v), VARSIZE(v) < offsetof(SvHalfVec, x) ? offsetof(SvHalfVec, x) :
							SV_HALFVEC_SIZE(Max(v->dim, 0)), VARSIZE(v) < offsetof(SvHalfVec, x) ? 0 : v->dim,
							"dimensions");
	return v;
}

/* Check an int8vec's stored size against its dimensions; returns v. */
static inline SvInt8Vec *
sv_check_int8vec(SvInt8Vec *v)
{
	if (unlikely(VARSIZE(v) < offsetof(SvInt8Vec, x) || v->dim < 0 || VARSIZE(v) != SV_INT8VEC_SIZE(v->dim)))
		sv_check_datum_size("int8vec", VARSIZE(v), VARSIZE(v) < offsetof(SvInt8Vec, x) ? offsetof(SvInt8Vec, x) :
							SV_INT8VEC_SIZE(Max(v->dim, 0)), VARSIZE(v) < offsetof(SvInt8Vec, x) ? 0 : v->dim,
							"dimensions");
	return v;
}

/* Check a bit string's stored size against its bit length; returns b. */
static inline VarBit *
sv_check_varbit(VarBit *b)
{
	if (unlikely(VARSIZE(b) < VARBITHDRSZ + VARHDRSZ || VARBITLEN(b) < 0 ||
				 VARSIZE(b) != VARBITTOTALLEN(VARBITLEN(b))))
		sv_check_datum_size("bit string", VARSIZE(b), VARSIZE(b) < VARBITHDRSZ + VARHDRSZ ? VARBITHDRSZ + VARHDRSZ :
							VARBITTOTALLEN(Max(VARBITLEN(b), 0)), VARSIZE(b) < VARBITHDRSZ + VARHDRSZ ? 0 : VARBITLEN(b),
							"bits");
	return b;
}

/* Allocate a zeroed vector of dim dimensions. */
SvVector   *sv_new_vector(int dim);

/* Allocate a zeroed int8vec of dim dimensions. */
SvInt8Vec  *sv_new_int8vec(int dim);

/* Allocate a zeroed bit string of nbits bits. */
VarBit	   *sv_new_varbit(int nbits);

/* Check that an array argument is one-dimensional, not empty and without NULLs; returns its length. */
int			sv_check_array_shape(ArrayType *a, const char *what);

/*
 * Check a real[] argument (one dimension, no NULLs, finite values, 1..SV_MAX_DIM elements) and
 * return its elements in place; what names the argument in error messages.
 */
const float *sv_float_array(ArrayType *a, const char *what, int *n);

/* Check that a float value is finite; what names it in the error message. */
void		sv_check_finite(float value, const char *what);

/* Cosine distance from a dot product and squared norms; NaN when a norm is zero (as in pgvector). */
double		sv_cosine_from_parts(float dot, float norma, float normb);

#endif
