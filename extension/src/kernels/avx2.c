/*
 * avx2.c: kernels for x86-64 CPUs with AVX2, FMA, F16C and POPCNT.
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

/* Add the even- and odd-code 16-bit sums of one block chunk to the 32-bit totals tot[4] (codes 0-7, 8-15, 16-23, 24-31). */
static inline void
fs_flush_avx2(__m256i even, __m256i odd, __m256i *tot)
{
	/* per 128-bit lane: lo = codes 0-7 | 16-23, hi = codes 8-15 | 24-31 */
	__m256i		lo = _mm256_unpacklo_epi16(even, odd);
	__m256i		hi = _mm256_unpackhi_epi16(even, odd);

	tot[0] = _mm256_add_epi32(tot[0], _mm256_cvtepu16_epi32(_mm256_castsi256_si128(lo)));
	tot[1] = _mm256_add_epi32(tot[1], _mm256_cvtepu16_epi32(_mm256_castsi256_si128(hi)));
	tot[2] = _mm256_add_epi32(tot[2], _mm256_cvtepu16_epi32(_mm256_extracti128_si256(lo, 1)));
	tot[3] = _mm256_add_epi32(tot[3], _mm256_cvtepu16_epi32(_mm256_extracti128_si256(hi, 1)));
}

/*
 * Nibble-table sums with VPSHUFB: one register holds byte p of the block's 32 codes; its high and
 * low nibbles index position p's two tables; the byte sums (<= 240) go to 16-bit accumulators of
 * the even and odd codes, flushed to 32 bits every 256 positions (256 * 240 < 65536).
 */
static void
fs_scan_avx2(const uint8_t *blocks, size_t nblocks, size_t nbytes, const uint8_t *tables, uint32_t *out)
{
	const __m256i low4 = _mm256_set1_epi8(0x0F);

	for (size_t b = 0; b < nblocks; b++)
	{
		const uint8_t *blk = blocks + b * SV_FS_LANES * nbytes;
		__m256i		tot[4] = {_mm256_setzero_si256(), _mm256_setzero_si256(), _mm256_setzero_si256(), _mm256_setzero_si256()};

		for (size_t p0 = 0; p0 < nbytes; p0 += 256)
		{
			size_t		pend = nbytes - p0 < 256 ? nbytes : p0 + 256;
			__m256i		even = _mm256_setzero_si256(),
						odd = _mm256_setzero_si256();

			/* nbytes is even: two positions per iteration, sharing one 128-byte table group */
			for (size_t p = p0; p < pend; p += 2)
			{
				const uint8_t *t = tables + (p >> 1) * 128;
				__m256i		c0 = _mm256_loadu_si256((const __m256i *) (blk + p * SV_FS_LANES));
				__m256i		c1 = _mm256_loadu_si256((const __m256i *) (blk + (p + 1) * SV_FS_LANES));
				__m256i		s0 = _mm256_add_epi8(
					_mm256_shuffle_epi8(_mm256_loadu_si256((const __m256i *) t),
										_mm256_and_si256(_mm256_srli_epi16(c0, 4), low4)),
					_mm256_shuffle_epi8(_mm256_loadu_si256((const __m256i *) (t + 64)), _mm256_and_si256(c0, low4)));
				__m256i		s1 = _mm256_add_epi8(
					_mm256_shuffle_epi8(_mm256_loadu_si256((const __m256i *) (t + 32)),
										_mm256_and_si256(_mm256_srli_epi16(c1, 4), low4)),
					_mm256_shuffle_epi8(_mm256_loadu_si256((const __m256i *) (t + 96)), _mm256_and_si256(c1, low4)));

				/* as 16-bit lanes s is even + 256 * odd: even is recovered after the loop */
				even = _mm256_add_epi16(even, _mm256_add_epi16(s0, s1));
				odd = _mm256_add_epi16(odd, _mm256_add_epi16(_mm256_srli_epi16(s0, 8), _mm256_srli_epi16(s1, 8)));
			}
			/* even sums (< 65536) modulo 2^16: subtract the odd ones' 256 multiples */
			even = _mm256_sub_epi16(even, _mm256_slli_epi16(odd, 8));
			fs_flush_avx2(even, odd, tot);
		}
		for (int r = 0; r < 4; r++)
			_mm256_storeu_si256((__m256i *) (out + b * SV_FS_LANES + 8 * r), tot[r]);
	}
}

/* Indices of the codes whose lower bound is <= tau, eight at a time (mul and add, no FMA). */
static size_t
fs_select_avx2(const uint32_t *sums, size_t n, int32_t soff, const float *alpha, const float *r2,
			   float base, float f, float c0, float c1, float tau, uint32_t *idx)
{
	const __m256i voff = _mm256_set1_epi32(soff);
	const __m256 vbase = _mm256_set1_ps(base),
				vf = _mm256_set1_ps(f),
				vc0 = _mm256_set1_ps(c0),
				vc1 = _mm256_set1_ps(c1),
				vtau = _mm256_set1_ps(tau);
	size_t		m = 0,
				i = 0;

	for (; i + 8 <= n; i += 8)
	{
		__m256		s = _mm256_cvtepi32_ps(_mm256_sub_epi32(_mm256_loadu_si256((const __m256i *) (sums + i)), voff));
		__m256		t = _mm256_add_ps(vc0, _mm256_mul_ps(vc1, s));
		__m256		o = _mm256_add_ps(vbase, r2 ? _mm256_loadu_ps(r2 + i) : _mm256_setzero_ps());
		__m256		lb = _mm256_add_ps(o, _mm256_mul_ps(_mm256_mul_ps(vf, _mm256_loadu_ps(alpha + i)), t));
		/* kept unless a finite number above tau (sv_fs_keep): NaN and +Inf bounds are kept */
		__m256		keep = _mm256_or_ps(_mm256_cmp_ps(lb, vtau, _CMP_NGT_UQ),
										_mm256_cmp_ps(lb, _mm256_set1_ps(INFINITY), _CMP_EQ_OQ));
		unsigned	mask = (unsigned) _mm256_movemask_ps(keep);

		while (mask)
		{
			idx[m++] = (uint32_t) (i + __builtin_ctz(mask));
			mask &= mask - 1;
		}
	}
	for (; i < n; i++)
		if (sv_fs_keep(sv_fs_bound(sums[i], soff, alpha[i], r2 ? r2[i] : 0.0f, base, f, c0, c1), tau))
			idx[m++] = (uint32_t) i;
	return m;
}

/* Indices of the sums <= tau, eight at a time. */
static size_t
fs_select_u32_avx2(const uint32_t *sums, size_t n, uint32_t tau, uint32_t *idx)
{
	const __m256i vtau = _mm256_set1_epi32((int32_t) tau);
	size_t		m = 0,
				i = 0;

	for (; i + 8 <= n; i += 8)
	{
		__m256i		s = _mm256_loadu_si256((const __m256i *) (sums + i));
		/* s <= tau (unsigned) exactly when min(s, tau) == s */
		unsigned	mask = (unsigned) _mm256_movemask_ps(_mm256_castsi256_ps(
			_mm256_cmpeq_epi32(_mm256_min_epu32(s, vtau), s)));

		while (mask)
		{
			idx[m++] = (uint32_t) (i + __builtin_ctz(mask));
			mask &= mask - 1;
		}
	}
	for (; i < n; i++)
		if (sums[i] <= tau)
			idx[m++] = (uint32_t) i;
	return m;
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
	k->fs_scan = fs_scan_avx2;
	k->fs_select = fs_select_avx2;
	k->fs_select_u32 = fs_select_u32_avx2;
}

#else

/* Not an x86-64 build: keep the scalar kernels. */
void
sv_kernels_fill_avx2(SvKernels *k)
{
	(void) k;
}

#endif
