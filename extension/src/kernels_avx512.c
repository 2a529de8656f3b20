/*
 * kernels_avx512.c: kernels for x86-64 CPUs with AVX-512 F/BW/VL and VPOPCNTDQ.
 * Compiled with those instruction sets enabled; only called after sv_kernels_init checked the CPU.
 * Tails are handled with masked loads, so no scalar loop runs after the vector loop.
 */
#include "kernels.h"

#if defined(__x86_64__) && defined(__AVX512F__) && defined(__AVX512VPOPCNTDQ__)
#include <immintrin.h>

/* Mask of the first n byte lanes (all 64 when n >= 64). */
static inline __mmask64
byte_mask(size_t n)
{
	return n >= 64 ? ~(__mmask64) 0 : (((__mmask64) 1 << n) - 1);
}

/* popcount with VPOPCNTQ, 64 bytes at a time. */
static uint64_t
popcount_avx512(const uint8_t *a, size_t nbytes)
{
	__m512i		acc = _mm512_setzero_si512();
	size_t		i = 0;

	for (; i + 64 <= nbytes; i += 64)
		acc = _mm512_add_epi64(acc, _mm512_popcnt_epi64(_mm512_loadu_si512(a + i)));
	if (i < nbytes)
		acc = _mm512_add_epi64(acc, _mm512_popcnt_epi64(_mm512_maskz_loadu_epi8(byte_mask(nbytes - i), a + i)));
	return (uint64_t) _mm512_reduce_add_epi64(acc);
}

/* Hamming distance with VPOPCNTQ, 64 bytes at a time. */
static uint64_t
xor_popcount_avx512(const uint8_t *a, const uint8_t *b, size_t nbytes)
{
	__m512i		acc = _mm512_setzero_si512();
	size_t		i = 0;

	for (; i + 64 <= nbytes; i += 64)
	{
		__m512i		x = _mm512_xor_si512(_mm512_loadu_si512(a + i), _mm512_loadu_si512(b + i));

		acc = _mm512_add_epi64(acc, _mm512_popcnt_epi64(x));
	}
	if (i < nbytes)
	{
		__mmask64	m = byte_mask(nbytes - i);
		__m512i		x = _mm512_xor_si512(_mm512_maskz_loadu_epi8(m, a + i), _mm512_maskz_loadu_epi8(m, b + i));

		acc = _mm512_add_epi64(acc, _mm512_popcnt_epi64(x));
	}
	return (uint64_t) _mm512_reduce_add_epi64(acc);
}

/* Sum of q[i] over set bits: two code bytes, bit-reversed, are the 16-lane add mask. */
static float
masked_sum_avx512(const float *q, const uint8_t *bits, size_t nbits)
{
	__m512		acc = _mm512_setzero_ps();
	size_t		i = 0;

	for (; i + 16 <= nbits; i += 16)
	{
		__mmask16	m = (__mmask16) (sv_bitrev8[bits[i >> 3]] | (sv_bitrev8[bits[(i >> 3) + 1]] << 8));

		acc = _mm512_mask_add_ps(acc, m, acc, _mm512_loadu_ps(q + i));
	}
	if (i < nbits)
	{
		size_t		rest = nbits - i;
		uint32_t	m = sv_bitrev8[bits[i >> 3]];
		__mmask16	lanes = (__mmask16) ((1u << rest) - 1);

		if (rest > 8)
			m |= (uint32_t) sv_bitrev8[bits[(i >> 3) + 1]] << 8;
		m &= lanes;
		acc = _mm512_mask_add_ps(acc, (__mmask16) m, acc, _mm512_maskz_loadu_ps(lanes, q + i));
	}
	return _mm512_reduce_add_ps(acc);
}

/* Sum of n floats, 16 lanes at a time. */
static float
sum_avx512(const float *q, size_t n)
{
	__m512		acc = _mm512_setzero_ps();
	size_t		i = 0;

	for (; i + 16 <= n; i += 16)
		acc = _mm512_add_ps(acc, _mm512_loadu_ps(q + i));
	if (i < n)
		acc = _mm512_add_ps(acc, _mm512_maskz_loadu_ps((__mmask16) ((1u << (n - i)) - 1), q + i));
	return _mm512_reduce_add_ps(acc);
}

/* Dot product and squared norms with FMA, 16 lanes at a time. */
static void
dot_norms_avx512(const float *a, const float *b, size_t n, float *dot, float *norma, float *normb)
{
	__m512		d = _mm512_setzero_ps(),
				na = _mm512_setzero_ps(),
				nb = _mm512_setzero_ps();
	size_t		i = 0;

	for (; i + 16 <= n; i += 16)
	{
		__m512		x = _mm512_loadu_ps(a + i);
		__m512		y = _mm512_loadu_ps(b + i);

		d = _mm512_fmadd_ps(x, y, d);
		na = _mm512_fmadd_ps(x, x, na);
		nb = _mm512_fmadd_ps(y, y, nb);
	}
	if (i < n)
	{
		__mmask16	m = (__mmask16) ((1u << (n - i)) - 1);
		__m512		x = _mm512_maskz_loadu_ps(m, a + i);
		__m512		y = _mm512_maskz_loadu_ps(m, b + i);

		d = _mm512_fmadd_ps(x, y, d);
		na = _mm512_fmadd_ps(x, x, na);
		nb = _mm512_fmadd_ps(y, y, nb);
	}
	*dot = _mm512_reduce_add_ps(d);
	*norma = _mm512_reduce_add_ps(na);
	*normb = _mm512_reduce_add_ps(nb);
}

/* Dot product, 16 lanes at a time with a masked tail. */
static float
dot_avx512(const float *a, const float *b, size_t n)
{
	__m512		d0 = _mm512_setzero_ps(),
				d1 = _mm512_setzero_ps();
	size_t		i = 0;

	for (; i + 32 <= n; i += 32)
	{
		d0 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i), _mm512_loadu_ps(b + i), d0);
		d1 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i + 16), _mm512_loadu_ps(b + i + 16), d1);
	}
	for (; i + 16 <= n; i += 16)
		d0 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i), _mm512_loadu_ps(b + i), d0);
	if (i < n)
	{
		__mmask16	m = (__mmask16) ((1u << (n - i)) - 1);

		d1 = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m, a + i), _mm512_maskz_loadu_ps(m, b + i), d1);
	}
	return _mm512_reduce_add_ps(_mm512_add_ps(d0, d1));
}

/* Dot products of four vectors with one, 16 lanes at a time, b loaded once per step. */
static void
dot4_avx512(const float *const *a, const float *b, size_t n, float *out)
{
	__m512		d0 = _mm512_setzero_ps(),
				d1 = _mm512_setzero_ps(),
				d2 = _mm512_setzero_ps(),
				d3 = _mm512_setzero_ps();
	size_t		i = 0;

	for (; i + 16 <= n; i += 16)
	{
		__m512		y = _mm512_loadu_ps(b + i);

		d0 = _mm512_fmadd_ps(_mm512_loadu_ps(a[0] + i), y, d0);
		d1 = _mm512_fmadd_ps(_mm512_loadu_ps(a[1] + i), y, d1);
		d2 = _mm512_fmadd_ps(_mm512_loadu_ps(a[2] + i), y, d2);
		d3 = _mm512_fmadd_ps(_mm512_loadu_ps(a[3] + i), y, d3);
	}
	if (i < n)
	{
		__mmask16	m = (__mmask16) ((1u << (n - i)) - 1);
		__m512		y = _mm512_maskz_loadu_ps(m, b + i);

		d0 = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m, a[0] + i), y, d0);
		d1 = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m, a[1] + i), y, d1);
		d2 = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m, a[2] + i), y, d2);
		d3 = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m, a[3] + i), y, d3);
	}
	out[0] = _mm512_reduce_add_ps(d0);
	out[1] = _mm512_reduce_add_ps(d1);
	out[2] = _mm512_reduce_add_ps(d2);
	out[3] = _mm512_reduce_add_ps(d3);
}

/* Half-precision dot product and squared norms, 16 lanes at a time. */
static void
half_dot_norms_avx512(const uint16_t *a, const uint16_t *b, size_t n, float *dot, float *norma, float *normb)
{
	__m512		d = _mm512_setzero_ps(),
				na = _mm512_setzero_ps(),
				nb = _mm512_setzero_ps();
	size_t		i = 0;

	for (; i + 16 <= n; i += 16)
	{
		__m512		x = _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *) (a + i)));
		__m512		y = _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *) (b + i)));

		d = _mm512_fmadd_ps(x, y, d);
		na = _mm512_fmadd_ps(x, x, na);
		nb = _mm512_fmadd_ps(y, y, nb);
	}
	if (i < n)
	{
		__mmask16	m = (__mmask16) ((1u << (n - i)) - 1);
		__m512		x = _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(m, a + i));
		__m512		y = _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(m, b + i));

		d = _mm512_fmadd_ps(x, y, d);
		na = _mm512_fmadd_ps(x, x, na);
		nb = _mm512_fmadd_ps(y, y, nb);
	}
	*dot = _mm512_reduce_add_ps(d);
	*norma = _mm512_reduce_add_ps(na);
	*normb = _mm512_reduce_add_ps(nb);
}

/*
 * Hamming distances of one query to consecutive codes.  The query's 64-byte blocks stay in
 * registers for codes of up to 256 bytes (2048 bits); longer codes use the generic kernel.
 */
static void
hamming_scan_avx512(const uint8_t *codes, size_t ncodes, size_t nbytes, const uint8_t *query, uint32_t *out)
{
	size_t		nblocks = (nbytes + 63) / 64;
	__m512i		q[4];
	__mmask64	last = byte_mask(nbytes - (nblocks - 1) * 64);

	if (nbytes == 0 || nblocks > 4)
	{
		for (size_t i = 0; i < ncodes; i++)
			out[i] = (uint32_t) xor_popcount_avx512(codes + i * nbytes, query, nbytes);
		return;
	}
	for (size_t b = 0; b < nblocks; b++)
		q[b] = _mm512_maskz_loadu_epi8(b + 1 == nblocks ? last : ~(__mmask64) 0, query + b * 64);

	for (size_t i = 0; i < ncodes; i++)
	{
		const uint8_t *c = codes + i * nbytes;
		__m512i		acc = _mm512_setzero_si512();

		for (size_t b = 0; b + 1 < nblocks; b++)
			acc = _mm512_add_epi64(acc, _mm512_popcnt_epi64(_mm512_xor_si512(_mm512_loadu_si512(c + b * 64), q[b])));
		acc = _mm512_add_epi64(acc, _mm512_popcnt_epi64(_mm512_xor_si512(
				_mm512_maskz_loadu_epi8(last, c + (nblocks - 1) * 64), q[nblocks - 1])));
		out[i] = (uint32_t) _mm512_reduce_add_epi64(acc);
	}
}

/* Fill k with the AVX-512 kernels. */
void
sv_kernels_fill_avx512(SvKernels *k)
{
	k->popcount = popcount_avx512;
	k->xor_popcount = xor_popcount_avx512;
	k->masked_sum = masked_sum_avx512;
	k->sum = sum_avx512;
	k->dot_norms = dot_norms_avx512;
	k->dot = dot_avx512;
	k->dot4 = dot4_avx512;
	k->half_dot_norms = half_dot_norms_avx512;
	k->hamming_scan = hamming_scan_avx512;
}

#else

/* Not an x86-64 AVX-512 build: keep the previous kernels. */
void
sv_kernels_fill_avx512(SvKernels *k)
{
	(void) k;
}

#endif
