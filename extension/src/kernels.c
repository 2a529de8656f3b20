/*
 * kernels.c: portable scalar kernels and the run-time dispatcher.
 */
#include "kernels.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

SvKernels	sv_kernels;
static SvKernelLevel sv_level = SV_KERNELS_SCALAR;

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

/* Count the set bits of a 64-bit word without relying on a popcnt instruction. */
static inline uint64_t
popcount64_portable(uint64_t x)
{
	x = x - ((x >> 1) & 0x5555555555555555ULL);
	x = (x & 0x3333333333333333ULL) + ((x >> 2) & 0x3333333333333333ULL);
	x = (x + (x >> 4)) & 0x0F0F0F0F0F0F0F0FULL;
	return (x * 0x0101010101010101ULL) >> 56;
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
		total += popcount64_portable(load64(a + i));
	for (; i < nbytes; i++)
		total += popcount64_portable(a[i]);
	return total;
}

/* Scalar Hamming distance of two byte strings. */
static uint64_t
xor_popcount_scalar(const uint8_t *a, const uint8_t *b, size_t nbytes)
{
	uint64_t	total = 0;
	size_t		i = 0;

	for (; i + 8 <= nbytes; i += 8)
		total += popcount64_portable(load64(a + i) ^ load64(b + i));
	for (; i < nbytes; i++)
		total += popcount64_portable((uint64_t) (a[i] ^ b[i]));
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

/* Fill k with the scalar kernels. */
void
sv_kernels_fill_scalar(SvKernels *k)
{
	k->popcount = popcount_scalar;
	k->xor_popcount = xor_popcount_scalar;
	k->masked_sum = masked_sum_scalar;
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

/* Is heap entry a worse (farther, or equally far and later) than entry b? */
static inline int
topk_worse(uint32_t da, uint64_t ia, uint32_t db, uint64_t ib)
{
	return da > db || (da == db && ia > ib);
}

/* Restore the max-heap property downwards from position i. */
static void
topk_sift_down(uint32_t *dist, uint64_t *ids, size_t n, size_t i)
{
	for (;;)
	{
		size_t		l = 2 * i + 1,
					r = l + 1,
					m = i;

		if (l < n && topk_worse(dist[l], ids[l], dist[m], ids[m]))
			m = l;
		if (r < n && topk_worse(dist[r], ids[r], dist[m], ids[m]))
			m = r;
		if (m == i)
			return;
		{
			uint32_t	td = dist[i];
			uint64_t	ti = ids[i];

			dist[i] = dist[m];
			ids[i] = ids[m];
			dist[m] = td;
			ids[m] = ti;
		}
		i = m;
	}
}

#define TOPK_BLOCK 1024

/* The k nearest codes by Hamming distance (see kernels.h). */
size_t
sv_hamming_topk(const uint8_t *codes, size_t ncodes, size_t nbytes, const uint8_t *query,
				size_t k, uint64_t *out_ids, uint32_t *out_dists)
{
	uint32_t	block[TOPK_BLOCK];
	size_t		n = 0;

	if (k == 0)
		return 0;
	for (size_t start = 0; start < ncodes; start += TOPK_BLOCK)
	{
		size_t		len = ncodes - start < TOPK_BLOCK ? ncodes - start : TOPK_BLOCK;

		sv_kernels.hamming_scan(codes + start * nbytes, len, nbytes, query, block);
		for (size_t j = 0; j < len; j++)
		{
			uint64_t	id = start + j;

			if (n < k)
			{
				/* fill, then heapify once full */
				out_dists[n] = block[j];
				out_ids[n] = id;
				if (++n == k)
					for (size_t i = k / 2; i-- > 0;)
						topk_sift_down(out_dists, out_ids, k, i);
			}
			else if (block[j] < out_dists[0])
			{
				out_dists[0] = block[j];
				out_ids[0] = id;
				topk_sift_down(out_dists, out_ids, k, 0);
			}
		}
	}
	if (n < k)
		for (size_t i = n / 2; i-- > 0;)
			topk_sift_down(out_dists, out_ids, n, i);
	/* heap sort: repeatedly move the worst to the end */
	for (size_t end = n; end > 1; end--)
	{
		uint32_t	td = out_dists[0];
		uint64_t	ti = out_ids[0];

		out_dists[0] = out_dists[end - 1];
		out_ids[0] = out_ids[end - 1];
		out_dists[end - 1] = td;
		out_ids[end - 1] = ti;
		topk_sift_down(out_dists, out_ids, end - 1, 0);
	}
	return n;
}

/* Point sv_kernels at the best implementation the CPU supports, capped at max_level. */
SvKernelLevel
sv_kernels_init(SvKernelLevel max_level)
{
	SvKernelLevel level = SV_KERNELS_SCALAR;

	fill_bitrev8();
#if defined(__x86_64__) && defined(__GNUC__)
	__builtin_cpu_init();
	if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") &&
		__builtin_cpu_supports("f16c") && __builtin_cpu_supports("popcnt"))
		level = SV_KERNELS_AVX2;
	if (level == SV_KERNELS_AVX2 && __builtin_cpu_supports("avx512f") &&
		__builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl") &&
		__builtin_cpu_supports("avx512vpopcntdq"))
		level = SV_KERNELS_AVX512;
#endif
	if (level > max_level)
		level = max_level;

	sv_kernels_fill_scalar(&sv_kernels);
	if (level >= SV_KERNELS_AVX2)
		sv_kernels_fill_avx2(&sv_kernels);
	if (level >= SV_KERNELS_AVX512)
		sv_kernels_fill_avx512(&sv_kernels);
	sv_level = level;
	return level;
}

/* The level chosen by the last sv_kernels_init(). */
SvKernelLevel
sv_kernels_level(void)
{
	return sv_level;
}

/* Human-readable name of a level. */
const char *
sv_kernels_level_name(SvKernelLevel level)
{
	switch (level)
	{
		case SV_KERNELS_AVX512:
			return "avx512";
		case SV_KERNELS_AVX2:
			return "avx2";
		default:
			return "scalar";
	}
}

/* Fill the per-byte lookup tables of the weights w (see kernels.h): each entry is a high-nibble sum plus a low-nibble sum. */
void
sv_lut_build(const float *w, size_t nbits, size_t nbytes, float *lut)
{
	for (size_t j = 0; j < nbytes; j++)
	{
		float	   *t = lut + j * 256;
		float		wb[8],
					hi[16],
					lo[16];

		for (int b = 0; b < 8; b++)
			wb[b] = (j * 8 + b < nbits) ? w[j * 8 + b] : 0.0f;
		hi[0] = lo[0] = 0.0f;
		/* each nibble adds its lowest set bit (bit 3 - ctz in MSB-first order) to a smaller nibble */
		for (unsigned v = 1; v < 16; v++)
		{
			hi[v] = hi[v & (v - 1)] + wb[3 - __builtin_ctz(v)];
			lo[v] = lo[v & (v - 1)] + wb[7 - __builtin_ctz(v)];
		}
		for (int h = 0; h < 16; h++)
			for (int l = 0; l < 16; l++)
				t[h * 16 + l] = hi[h] + lo[l];
	}
}

/* The sum of lut[j][c[j * step]] over a code's nbytes bytes, in four accumulators (a fixed order). */
static inline float
lut_sum(const uint8_t *c, size_t step, size_t nbytes, const float *lut)
{
	float		s0 = 0.0f,
				s1 = 0.0f,
				s2 = 0.0f,
				s3 = 0.0f;
	size_t		j = 0;

	for (; j + 4 <= nbytes; j += 4)
	{
		s0 += lut[j * 256 + c[j * step]];
		s1 += lut[(j + 1) * 256 + c[(j + 1) * step]];
		s2 += lut[(j + 2) * 256 + c[(j + 2) * step]];
		s3 += lut[(j + 3) * 256 + c[(j + 3) * step]];
	}
	for (; j < nbytes; j++)
		s0 += lut[j * 256 + c[j * step]];
	return (s0 + s1) + (s2 + s3);
}

/* Sum of the weights over the set bits of each code, four table lookups in flight. */
void
sv_lut_scan(const uint8_t *codes, size_t ncodes, size_t stride, size_t nbytes, const float *lut, float *out)
{
	for (size_t i = 0; i < ncodes; i++)
		out[i] = lut_sum(codes + i * stride, 1, nbytes, lut);
}

/* Byte offset of position p's high-nibble table (the low one is 64 bytes further). */
static inline size_t
fs_table_offset(size_t p)
{
	return (p >> 1) * 128 + (p & 1) * 32;
}

/* Store the 16-entry tables hi and lo of position p, each twice (see kernels.h). */
static void
fs_store_tables(uint8_t *tables, size_t p, const uint8_t *hi, const uint8_t *lo)
{
	uint8_t    *t = tables + fs_table_offset(p);

	memcpy(t, hi, 16);
	memcpy(t + 16, hi, 16);
	memcpy(t + 64, lo, 16);
	memcpy(t + 80, lo, 16);
}

/* Quantize the weights and fill the inner product tables (see kernels.h). */
void
sv_fs_tables_ip(const float *w, size_t nbits, size_t nbytes, uint8_t *tables, SvFsQuery *out)
{
	float		maxabs = 0.0f,
				delta,
				err = 0.0f;
	int32_t		vsum = 0;

	for (size_t i = 0; i < nbits; i++)
		if (fabsf(w[i]) > maxabs)
			maxabs = fabsf(w[i]);
	delta = maxabs > 0.0f ? maxabs / (float) SV_FS_LEVEL : 1.0f;
	for (size_t p = 0; p < nbytes; p++)
	{
		int			v[8];
		uint8_t		hi[16],
					lo[16];

		for (int b = 0; b < 8; b++)
		{
			size_t		i = p * 8 + b;

			v[b] = 0;
			if (i < nbits)
			{
				float		r = rintf(w[i] / delta);

				if (r > SV_FS_LEVEL)
					r = SV_FS_LEVEL;
				if (r < -SV_FS_LEVEL)
					r = -SV_FS_LEVEL;
				v[b] = (int) r;
				vsum += v[b];
				err += fabsf(w[i] - delta * (float) v[b]);
			}
		}
		for (int n = 0; n < 16; n++)
		{
			int			sh = SV_FS_BIAS,
						sl = SV_FS_BIAS;

			/* nibble bit 3 is the first of its four code bits */
			for (int j = 0; j < 4; j++)
				if (n & (8 >> j))
				{
					sh += v[j];
					sl += v[4 + j];
				}
			hi[n] = (uint8_t) sh;
			lo[n] = (uint8_t) sl;
		}
		fs_store_tables(tables, p, hi, lo);
	}
	out->delta = delta;
	out->vsum = vsum;
	out->err_l1 = err;
}

/* Fill the Hamming tables of the query's first qbits bits (see kernels.h). */
void
sv_fs_tables_hamming(const uint8_t *query, size_t qbits, size_t nbytes, uint8_t *tables)
{
	for (size_t p = 0; p < nbytes; p++)
	{
		uint8_t		mask = 0,
					hi[16],
					lo[16];

		for (int b = 0; b < 8; b++)
			if (p * 8 + b < qbits)
				mask |= (uint8_t) (0x80 >> b);
		for (int n = 0; n < 16; n++)
		{
			hi[n] = (uint8_t) popcount64_portable((uint64_t) ((n ^ (query[p] >> 4)) & (mask >> 4)));
			lo[n] = (uint8_t) popcount64_portable((uint64_t) ((n ^ (query[p] & 15)) & (mask & 15)));
		}
		fs_store_tables(tables, p, hi, lo);
	}
}

/* Write a code into its slot of a blocked array. */
void
sv_fs_put(uint8_t *blocks, size_t lanes, size_t nbytes, size_t slot, const uint8_t *code)
{
	uint8_t    *b = blocks + (slot / lanes) * lanes * nbytes + slot % lanes;

	for (size_t p = 0; p < nbytes; p++)
		b[p * lanes] = code[p];
}

/* Read a code from its slot of a blocked array. */
void
sv_fs_get(const uint8_t *blocks, size_t lanes, size_t nbytes, size_t slot, uint8_t *code)
{
	const uint8_t *b = blocks + (slot / lanes) * lanes * nbytes + slot % lanes;

	for (size_t p = 0; p < nbytes; p++)
		code[p] = b[p * lanes];
}

/* Table sums of the first ncodes codes of a blocked array, one code at a time. */
void
sv_fs_scan_lanes(const uint8_t *blocks, size_t ncodes, size_t lanes, size_t nbytes,
				 const uint8_t *tables, uint32_t *out)
{
	for (size_t i = 0; i < ncodes; i++)
	{
		const uint8_t *b = blocks + (i / lanes) * lanes * nbytes + i % lanes;
		uint32_t	s = 0;

		for (size_t p = 0; p < nbytes; p++)
		{
			const uint8_t *t = tables + fs_table_offset(p);
			uint8_t		c = b[p * lanes];

			s += t[c >> 4] + t[64 + (c & 15)];
		}
		out[i] = s;
	}
}

/* The lower bound fs_select tests (see kernels.h). */
float
sv_fs_bound(uint32_t sum, int32_t soff, float alpha, float r2, float base, float f, float c0, float c1)
{
	float		t = c0 + c1 * (float) ((int32_t) sum - soff);

	return (base + r2) + (f * alpha) * t;
}

/* sv_kernels.fs_scan of the current level. */
void
sv_fs_scan(const uint8_t *blocks, size_t nblocks, size_t nbytes, const uint8_t *tables, uint32_t *out)
{
	sv_kernels.fs_scan(blocks, nblocks, nbytes, tables, out);
}

/* sv_kernels.fs_select of the current level. */
size_t
sv_fs_select(const uint32_t *sums, size_t n, int32_t soff, const float *alpha, const float *r2,
			 float base, float f, float c0, float c1, float tau, uint32_t *idx)
{
	return sv_kernels.fs_select(sums, n, soff, alpha, r2, base, f, c0, c1, tau, idx);
}

/* sv_kernels.fs_select_u32 of the current level. */
size_t
sv_fs_select_u32(const uint32_t *sums, size_t n, uint32_t tau, uint32_t *idx)
{
	return sv_kernels.fs_select_u32(sums, n, tau, idx);
}

/* sv_lut_scan's sum for one code of a blocked array, read in place (byte p at stride lanes). */
float
sv_lut_score_blocked(const uint8_t *blocks, size_t lanes, size_t nbytes, size_t slot, const float *lut)
{
	return lut_sum(blocks + (slot / lanes) * lanes * nbytes + slot % lanes, lanes, nbytes, lut);
}

/* ---- late interaction (maxsim.c) ---- */

/*
 * Exact MaxSim: for each of nq query tokens the largest dot product with the nd doc tokens (all
 * row-major, dim floats each), summed in double in query-token order; dots four doc tokens at a time.
 */
double
sv_maxsim_f32(const float *q, size_t nq, const float *d, size_t nd, size_t dim)
{
	double		total = 0.0;

	for (size_t t = 0; t < nq; t++)
	{
		const float *qt = q + t * dim;
		float		best = -INFINITY;
		size_t		u = 0;

		for (; u + 4 <= nd; u += 4)
		{
			const float *rows[4] = {d + u * dim, d + (u + 1) * dim, d + (u + 2) * dim, d + (u + 3) * dim};
			float		out[4];

			sv_kernels.dot4(rows, qt, dim, out);
			for (int r = 0; r < 4; r++)
				if (out[r] > best)
					best = out[r];
		}
		for (; u < nd; u++)
		{
			float		s = sv_kernels.dot(d + u * dim, qt, dim);

			if (s > best)
				best = s;
		}
		total += (double) best;
	}
	return total;
}
