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

#define PG_GETARG_SVVECTOR_P(n) ((SvVector *) PG_DETOAST_DATUM(PG_GETARG_DATUM(n)))
#define PG_GETARG_SVHALFVEC_P(n) ((SvHalfVec *) PG_DETOAST_DATUM(PG_GETARG_DATUM(n)))
#define PG_GETARG_SVINT8VEC_P(n) ((SvInt8Vec *) PG_DETOAST_DATUM(PG_GETARG_DATUM(n)))

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
