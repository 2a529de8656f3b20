/*
 * scalar.c: the portable scalar kernels (the fallback of every level, no instruction assumed beyond C),
 * the bit-reversal table and the lower bound that every level's fs_select tests.
 *
 * A leaf: it calls no other kernel file (avx2.c and avx512.c call it; dispatch.c picks among them).
 */
#include "kernels.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

uint8_t		sv_bitrev8[256];

/* Fill sv_bitrev8: entry b holds b with its bit order reversed. */
static void
fill_bitrev8(void)
{
	for (int b = 0; b < 256; b++)
	{
		uint8_t		r = 0;

		for (int j = 0; j < 8; j++)
			if (b & (1 << j))
				r |= (uint8_t) (1 << (7 - j));
		sv_bitrev8[b] = r;
	}
}

/* Read 8 unaligned bytes as a word (byte order does not matter for popcount). */
static inline uint64_t
load64(const uint8_t *p)
{
	uint64_t	v;

	memcpy(&v, p, sizeof(v));
	return v;
}

/* Scalar popcount of nbytes bytes. */
static uint64_t
popcount_scalar(const uint8_t *a, size_t nbytes)
{
	uint64_t	total = 0;
	size_t		i = 0;

	for (; i + 8 <= nbytes; i += 8)
		total += sv_popcount64_portable(load64(a + i));
	for (; i < nbytes; i++)
		total += sv_popcount64_portable(a[i]);
	return total;
}

/* Scalar Hamming distance of two byte strings. */
static uint64_t
xor_popcount_scalar(const uint8_t *a, const uint8_t *b, size_t nbytes)
{
	uint64_t	total = 0;
	size_t		i = 0;

	for (; i + 8 <= nbytes; i += 8)
		total += sv_popcount64_portable(load64(a + i) ^ load64(b + i));
	for (; i < nbytes; i++)
		total += sv_popcount64_portable((uint64_t) (a[i] ^ b[i]));
	return total;
}

/* Scalar sum of the q[i] whose bit is set. */
static float
masked_sum_scalar(const float *q, const uint8_t *bits, size_t nbits)
{
	float		s = 0.0f;

	for (size_t i = 0; i < nbits; i++)
		if ((bits[i >> 3] >> (7 - (i & 7))) & 1)
			s += q[i];
	return s;
}

/* Scalar sum of n floats. */
static float
sum_scalar(const float *q, size_t n)
{
	float		s = 0.0f;

	for (size_t i = 0; i < n; i++)
		s += q[i];
	return s;
}

/* Scalar dot product and squared norms. */
static void
dot_norms_scalar(const float *a, const float *b, size_t n, float *dot, float *norma, float *normb)
{
	float		d = 0.0f,
				na = 0.0f,
				nb = 0.0f;

	for (size_t i = 0; i < n; i++)
	{
		d += a[i] * b[i];
		na += a[i] * a[i];
		nb += b[i] * b[i];
	}
	*dot = d;
	*norma = na;
	*normb = nb;
}

/* Scalar dot product. */
static float
dot_scalar(const float *a, const float *b, size_t n)
{
	float		d = 0.0f;

	for (size_t i = 0; i < n; i++)
		d += a[i] * b[i];
	return d;
}

/* Scalar dot products of four vectors with one. */
static void
dot4_scalar(const float *const *a, const float *b, size_t n, float *out)
{
	for (int r = 0; r < 4; r++)
		out[r] = dot_scalar(a[r], b, n);
}

/* Scalar dot product and squared norms of two half-precision arrays. */
static void
half_dot_norms_scalar(const uint16_t *a, const uint16_t *b, size_t n, float *dot, float *norma, float *normb)
{
	float		d = 0.0f,
				na = 0.0f,
				nb = 0.0f;

	for (size_t i = 0; i < n; i++)
	{
		float		x = sv_half_to_float(a[i]);
		float		y = sv_half_to_float(b[i]);

		d += x * y;
		na += x * x;
		nb += y * y;
	}
	*dot = d;
	*norma = na;
	*normb = nb;
}

/* Scalar Hamming distances of one query to consecutive codes. */
static void
hamming_scan_scalar(const uint8_t *codes, size_t ncodes, size_t nbytes, const uint8_t *query, uint32_t *out)
{
	for (size_t i = 0; i < ncodes; i++)
		out[i] = (uint32_t) xor_popcount_scalar(codes + i * nbytes, query, nbytes);
}

/*
 * The scalar scan's byte tables: for each position, the 256 sums hi[b >> 4] + lo[b & 15], merged once
 * per set of tables and kept with a copy of the tables they came from, so that the page-by-page calls
 * of one index scan (same tables) do one lookup a byte.  A call with other tables (compared in full)
 * merges again.  Backend-local (a backend is single-threaded).
 */
static uint8_t *fs_saved_tables;
static uint16_t *fs_byte_tables;
static size_t fs_saved_nbytes;

/* The merged byte tables of tables (see above), or NULL when memory runs out. */
static const uint16_t *
fs_byte_tables_for(const uint8_t *tables, size_t nbytes)
{
	size_t		tbytes = SV_FS_TABLE_BYTES(nbytes);

	if (fs_byte_tables != NULL && fs_saved_nbytes == nbytes && memcmp(fs_saved_tables, tables, tbytes) == 0)
		return fs_byte_tables;
	free(fs_saved_tables);
	free(fs_byte_tables);
	fs_saved_tables = malloc(tbytes);
	fs_byte_tables = malloc(sizeof(uint16_t) * 256 * nbytes);
	if (fs_saved_tables == NULL || fs_byte_tables == NULL)
	{
		free(fs_saved_tables);
		free(fs_byte_tables);
		fs_saved_tables = NULL;
		fs_byte_tables = NULL;
		return NULL;
	}
	memcpy(fs_saved_tables, tables, tbytes);
	fs_saved_nbytes = nbytes;
	for (size_t p = 0; p < nbytes; p++)
	{
		const uint8_t *hi = tables + (p >> 1) * 128 + (p & 1) * 32;
		const uint8_t *lo = hi + 64;
		uint16_t   *t = fs_byte_tables + p * 256;

		for (int h = 0; h < 16; h++)
			for (int l = 0; l < 16; l++)
				t[h * 16 + l] = (uint16_t) (hi[h] + lo[l]);
	}
	return fs_byte_tables;
}

/* Scalar nibble-table sums of blocks of SV_FS_LANES codes: one byte-table lookup a byte (or two nibble lookups). */
static void
fs_scan_scalar(const uint8_t *blocks, size_t nblocks, size_t nbytes, const uint8_t *tables, uint32_t *out)
{
	const uint16_t *bt = fs_byte_tables_for(tables, nbytes);

	if (bt == NULL)
	{
		sv_fs_scan_lanes(blocks, nblocks * SV_FS_LANES, SV_FS_LANES, nbytes, tables, out);
		return;
	}
	for (size_t b = 0; b < nblocks; b++)
	{
		const uint8_t *blk = blocks + b * SV_FS_LANES * nbytes;
		uint32_t	tot[SV_FS_LANES] = {0};

		for (size_t p = 0; p < nbytes; p++)
		{
			const uint16_t *t = bt + p * 256;
			const uint8_t *c = blk + p * SV_FS_LANES;

			for (int j = 0; j < SV_FS_LANES; j++)
				tot[j] += t[c[j]];
		}
		memcpy(out + b * SV_FS_LANES, tot, sizeof(tot));
	}
}

/* Scalar selection of the codes whose lower bound is <= tau. */
static size_t
fs_select_scalar(const uint32_t *sums, size_t n, int32_t soff, const float *alpha, const float *r2,
				 float base, float f, float c0, float c1, float tau, uint32_t *idx)
{
	size_t		m = 0;

	for (size_t i = 0; i < n; i++)
		if (sv_fs_keep(sv_fs_bound(sums[i], soff, alpha[i], r2 ? r2[i] : 0.0f, base, f, c0, c1), tau))
			idx[m++] = (uint32_t) i;
	return m;
}

/* Scalar selection of the sums <= tau. */
static size_t
fs_select_u32_scalar(const uint32_t *sums, size_t n, uint32_t tau, uint32_t *idx)
{
	size_t		m = 0;

	for (size_t i = 0; i < n; i++)
		if (sums[i] <= tau)
			idx[m++] = (uint32_t) i;
	return m;
}

/* The value of dim i of a code of bits (8, 4 or 2) bits per dim, MSB-first. */
static inline float
code_value(const uint8_t *code, size_t i, int bits)
{
	if (bits == 8)
		return (float) code[i];
	if (bits == 4)
		return (float) ((code[i >> 1] >> (i & 1 ? 0 : 4)) & 0x0F);
	return (float) ((code[i >> 2] >> (6 - 2 * (i & 3))) & 0x03);
}

/* sum of q[i] u_i over the dims of an integer code, four accumulators (see SvKernels.code_dot). */
static float
code_dot_scalar(const float *q, const uint8_t *code, size_t dims, int bits)
{
	float		acc[4] = {0, 0, 0, 0};
	size_t		i = 0;

	for (; i + 4 <= dims; i += 4)
		for (int j = 0; j < 4; j++)
			acc[j] += q[i + j] * code_value(code, i + j, bits);
	for (; i < dims; i++)
		acc[0] += q[i] * code_value(code, i, bits);
	return (acc[0] + acc[1]) + (acc[2] + acc[3]);
}

/* Fill k with the scalar kernels. */
void
sv_kernels_fill_scalar(SvKernels *k)
{
	fill_bitrev8();
	k->popcount = popcount_scalar;
	k->xor_popcount = xor_popcount_scalar;
	k->masked_sum = masked_sum_scalar;
	k->code_dot = code_dot_scalar;
	k->sum = sum_scalar;
	k->dot_norms = dot_norms_scalar;
	k->dot = dot_scalar;
	k->dot4 = dot4_scalar;
	k->half_dot_norms = half_dot_norms_scalar;
	k->hamming_scan = hamming_scan_scalar;
	k->fs_scan = fs_scan_scalar;
	k->fs_select = fs_select_scalar;
	k->fs_select_u32 = fs_select_u32_scalar;
}

/* The lower bound fs_select tests (see kernels.h). */
float
sv_fs_bound(uint32_t sum, int32_t soff, float alpha, float r2, float base, float f, float c0, float c1)
{
	float		t = c0 + c1 * (float) ((int32_t) sum - soff);

	return (base + r2) + (f * alpha) * t;
}
