/*
 * kernels_avx2.c: kernels for x86-64 CPUs with AVX2, FMA, F16C and POPCNT.
 * Compiled with those instruction sets enabled; only called after sv_kernels_init checked the CPU.
 */
#include "kernels.h"

#include <string.h>

#if defined(__x86_64__) && defined(__AVX2__)
#include <immintrin.h>

/* Read 8 unaligned bytes as a word. */
static inline uint64_t
load64(const uint8_t *p)
{
	uint64_t	v;

	memcpy(&v, p, sizeof(v));
	return v;
}

/* Horizontal sum of 8 floats. */
static inline float
hsum256(__m256 v)
{
	__m128		lo = _mm256_castps256_ps128(v);
	__m128		hi = _mm256_extractf128_ps(v, 1);

	lo = _mm_add_ps(lo, hi);
	lo = _mm_add_ps(lo, _mm_movehl_ps(lo, lo));
	lo = _mm_add_ss(lo, _mm_movehdup_ps(lo));
	return _mm_cvtss_f32(lo);
}

/* popcount with the POPCNT instruction, four words at a time. */
static uint64_t
popcount_avx2(const uint8_t *a, size_t nbytes)
{
	uint64_t	c0 = 0,
				c1 = 0,
				c2 = 0,
				c3 = 0;
	size_t		i = 0;

	for (; i + 32 <= nbytes; i += 32)
	{
		c0 += _mm_popcnt_u64(load64(a + i));
		c1 += _mm_popcnt_u64(load64(a + i + 8));
		c2 += _mm_popcnt_u64(load64(a + i + 16));
		c3 += _mm_popcnt_u64(load64(a + i + 24));
	}
	for (; i + 8 <= nbytes; i += 8)
		c0 += _mm_popcnt_u64(load64(a + i));
	for (; i < nbytes; i++)
		c0 += _mm_popcnt_u32(a[i]);
	return c0 + c1 + c2 + c3;
}

/* Hamming distance with the POPCNT instruction. */
static uint64_t
xor_popcount_avx2(const uint8_t *a, const uint8_t *b, size_t nbytes)
{
	uint64_t	c0 = 0,
				c1 = 0,
				c2 = 0,
				c3 = 0;
	size_t		i = 0;

	for (; i + 32 <= nbytes; i += 32)
	{
		c0 += _mm_popcnt_u64(load64(a + i) ^ load64(b + i));
		c1 += _mm_popcnt_u64(load64(a + i + 8) ^ load64(b + i + 8));
		c2 += _mm_popcnt_u64(load64(a + i + 16) ^ load64(b + i + 16));
		c3 += _mm_popcnt_u64(load64(a + i + 24) ^ load64(b + i + 24));
	}
	for (; i + 8 <= nbytes; i += 8)
		c0 += _mm_popcnt_u64(load64(a + i) ^ load64(b + i));
	for (; i < nbytes; i++)
		c0 += _mm_popcnt_u32((uint32_t) (a[i] ^ b[i]));
	return c0 + c1 + c2 + c3;
}

/* Sum of q[i] over set bits: each byte becomes an 8-lane mask by comparing against the bit weights. */
static float
masked_sum_avx2(const float *q, const uint8_t *bits, size_t nbits)
{
	const __m256i weights = _mm256_setr_epi32(128, 64, 32, 16, 8, 4, 2, 1);
	__m256		acc = _mm256_setzero_ps();
	size_t		nfull = nbits / 8;
	float		s;

	for (size_t j = 0; j < nfull; j++)
	{
		__m256i		b = _mm256_set1_epi32(bits[j]);
		__m256i		m = _mm256_cmpeq_epi32(_mm256_and_si256(b, weights), weights);

		acc = _mm256_add_ps(acc, _mm256_and_ps(_mm256_castsi256_ps(m), _mm256_loadu_ps(q + 8 * j)));
	}
	s = hsum256(acc);
	for (size_t i = nfull * 8; i < nbits; i++)
		if ((bits[i >> 3] >> (7 - (i & 7))) & 1)
			s += q[i];
	return s;
}

/* Sum of n floats, 8 lanes at a time. */
static float
sum_avx2(const float *q, size_t n)
{
	__m256		acc = _mm256_setzero_ps();
	size_t		i = 0;
	float		s;

	for (; i + 8 <= n; i += 8)
		acc = _mm256_add_ps(acc, _mm256_loadu_ps(q + i));
	s = hsum256(acc);
	for (; i < n; i++)
		s += q[i];
	return s;
}

/* Dot product and squared norms with FMA, 8 lanes at a time. */
static void
dot_norms_avx2(const float *a, const float *b, size_t n, float *dot, float *norma, float *normb)
{
	__m256		d = _mm256_setzero_ps(),
				na = _mm256_setzero_ps(),
				nb = _mm256_setzero_ps();
	size_t		i = 0;
	float		sd,
				sa,
				sb;

	for (; i + 8 <= n; i += 8)
	{
		__m256		x = _mm256_loadu_ps(a + i);
		__m256		y = _mm256_loadu_ps(b + i);

		d = _mm256_fmadd_ps(x, y, d);
		na = _mm256_fmadd_ps(x, x, na);
		nb = _mm256_fmadd_ps(y, y, nb);
	}
	sd = hsum256(d);
	sa = hsum256(na);
	sb = hsum256(nb);
	for (; i < n; i++)
	{
		sd += a[i] * b[i];
		sa += a[i] * a[i];
		sb += b[i] * b[i];
	}
	*dot = sd;
	*norma = sa;
	*normb = sb;
}

/* Dot product with FMA, 8 lanes at a time. */
static float
dot_avx2(const float *a, const float *b, size_t n)
{
	__m256		d = _mm256_setzero_ps();
	size_t		i = 0;
	float		sd;

	for (; i + 8 <= n; i += 8)
		d = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), d);
	sd = hsum256(d);
	for (; i < n; i++)
		sd += a[i] * b[i];
	return sd;
}

/* Dot products of four vectors with one, 8 lanes at a time, b loaded once per step. */
static void
dot4_avx2(const float *const *a, const float *b, size_t n, float *out)
{
	__m256		d0 = _mm256_setzero_ps(),
				d1 = _mm256_setzero_ps(),
				d2 = _mm256_setzero_ps(),
				d3 = _mm256_setzero_ps();
	size_t		i = 0;

	for (; i + 8 <= n; i += 8)
	{
		__m256		y = _mm256_loadu_ps(b + i);

		d0 = _mm256_fmadd_ps(_mm256_loadu_ps(a[0] + i), y, d0);
		d1 = _mm256_fmadd_ps(_mm256_loadu_ps(a[1] + i), y, d1);
		d2 = _mm256_fmadd_ps(_mm256_loadu_ps(a[2] + i), y, d2);
		d3 = _mm256_fmadd_ps(_mm256_loadu_ps(a[3] + i), y, d3);
	}
	out[0] = hsum256(d0);
	out[1] = hsum256(d1);
	out[2] = hsum256(d2);
	out[3] = hsum256(d3);
	for (; i < n; i++)
		for (int r = 0; r < 4; r++)
			out[r] += a[r][i] * b[i];
}

/* Half-precision dot product and squared norms, converting with F16C. */
static void
half_dot_norms_avx2(const uint16_t *a, const uint16_t *b, size_t n, float *dot, float *norma, float *normb)
{
	__m256		d = _mm256_setzero_ps(),
				na = _mm256_setzero_ps(),
				nb = _mm256_setzero_ps();
	size_t		i = 0;
	float		sd,
				sa,
				sb;

	for (; i + 8 <= n; i += 8)
	{
		__m256		x = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *) (a + i)));
		__m256		y = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *) (b + i)));

		d = _mm256_fmadd_ps(x, y, d);
		na = _mm256_fmadd_ps(x, x, na);
		nb = _mm256_fmadd_ps(y, y, nb);
	}
	sd = hsum256(d);
	sa = hsum256(na);
	sb = hsum256(nb);
	for (; i < n; i++)
	{
		float		x = sv_half_to_float(a[i]);
		float		y = sv_half_to_float(b[i]);

		sd += x * y;
		sa += x * x;
		sb += y * y;
	}
	*dot = sd;
	*norma = sa;
	*normb = sb;
}

/* Hamming distances of one query to consecutive codes with POPCNT. */
static void
hamming_scan_avx2(const uint8_t *codes, size_t ncodes, size_t nbytes, const uint8_t *query, uint32_t *out)
{
	for (size_t i = 0; i < ncodes; i++)
		out[i] = (uint32_t) xor_popcount_avx2(codes + i * nbytes, query, nbytes);
}

/* Fill k with the AVX2 kernels. */
void
sv_kernels_fill_avx2(SvKernels *k)
{
	k->popcount = popcount_avx2;
	k->xor_popcount = xor_popcount_avx2;
	k->masked_sum = masked_sum_avx2;
	k->sum = sum_avx2;
	k->dot_norms = dot_norms_avx2;
	k->dot = dot_avx2;
	k->dot4 = dot4_avx2;
	k->half_dot_norms = half_dot_norms_avx2;
	k->hamming_scan = hamming_scan_avx2;
}

#else

/* Not an x86-64 build: keep the scalar kernels. */
void
sv_kernels_fill_avx2(SvKernels *k)
{
	(void) k;
}

#endif
