/*
 * avx512.c: kernels for x86-64 CPUs with AVX-512 F/BW/VL and VPOPCNTDQ.
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

/*
 * Nibble-table sums with 512-bit VPSHUFB: one register holds bytes p and p+1 of the block's 32
 * codes, and the 128-byte table group of positions p, p+1 is two registers.  Byte sums (<= 240)
 * go to 16-bit accumulators of the even and odd codes; the halves for p and p+1 are added at the
 * end of every 256-position chunk (each half gains at most 240 a position: no overflow).
 */
static void
fs_scan_avx512(const uint8_t *blocks, size_t nblocks, size_t nbytes, const uint8_t *tables, uint32_t *out)
{
	const __m512i low4 = _mm512_set1_epi8(0x0F);
	const __m512i inter_lo = _mm512_setr_epi32(0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23);
	const __m512i inter_hi = _mm512_setr_epi32(8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30, 15, 31);

	for (size_t b = 0; b < nblocks; b++)
	{
		const uint8_t *blk = blocks + b * SV_FS_LANES * nbytes;
		__m512i		tot_even = _mm512_setzero_si512(),
					tot_odd = _mm512_setzero_si512();

		for (size_t p0 = 0; p0 < nbytes; p0 += 256)
		{
			size_t		pend = nbytes - p0 < 256 ? nbytes : p0 + 256;
			__m512i		even = _mm512_setzero_si512(),
						odd = _mm512_setzero_si512();

			for (size_t p = p0; p < pend; p += 2)
			{
				const uint8_t *t = tables + (p >> 1) * 128;
				__m512i		c = _mm512_loadu_si512(blk + p * SV_FS_LANES);
				__m512i		s = _mm512_add_epi8(
					_mm512_shuffle_epi8(_mm512_loadu_si512(t), _mm512_and_si512(_mm512_srli_epi16(c, 4), low4)),
					_mm512_shuffle_epi8(_mm512_loadu_si512(t + 64), _mm512_and_si512(c, low4)));

				/* as 16-bit lanes s is even + 256 * odd: even is recovered after the loop */
				even = _mm512_add_epi16(even, s);
				odd = _mm512_add_epi16(odd, _mm512_srli_epi16(s, 8));
			}
			/* even sums (< 65536) modulo 2^16: subtract the odd ones' 256 multiples */
			even = _mm512_sub_epi16(even, _mm512_slli_epi16(odd, 8));
			/* widen each half to 32 bits and add positions p and p+1 */
			tot_even = _mm512_add_epi32(tot_even,
										_mm512_add_epi32(_mm512_cvtepu16_epi32(_mm512_castsi512_si256(even)),
														 _mm512_cvtepu16_epi32(_mm512_extracti64x4_epi64(even, 1))));
			tot_odd = _mm512_add_epi32(tot_odd,
									   _mm512_add_epi32(_mm512_cvtepu16_epi32(_mm512_castsi512_si256(odd)),
														_mm512_cvtepu16_epi32(_mm512_extracti64x4_epi64(odd, 1))));
		}
		/* interleave: code 2j is even lane j, code 2j+1 odd lane j */
		_mm512_storeu_si512(out + b * SV_FS_LANES, _mm512_permutex2var_epi32(tot_even, inter_lo, tot_odd));
		_mm512_storeu_si512(out + b * SV_FS_LANES + 16, _mm512_permutex2var_epi32(tot_even, inter_hi, tot_odd));
	}
}

/*
 * Store the kept lanes of iota at idx, in order, and return their count.  The compress goes to a register
 * and a masked store writes the prefix: a compress with a memory destination is microcoded (slow) on AMD Zen 4.
 */
static inline size_t
sv_store_kept(uint32_t *idx, __mmask16 keep, __m512i iota)
{
	int			m = __builtin_popcount(keep);

	_mm512_mask_storeu_epi32(idx, (__mmask16) ((1u << m) - 1), _mm512_maskz_compress_epi32(keep, iota));
	return (size_t) m;
}

/* Indices of the codes whose lower bound is <= tau, sixteen at a time (mul and add, no FMA). */
static size_t
fs_select_avx512(const uint32_t *sums, size_t n, int32_t soff, const float *alpha, const float *r2,
				 float base, float f, float c0, float c1, float tau, uint32_t *idx)
{
	const __m512i voff = _mm512_set1_epi32(soff);
	const __m512i step = _mm512_set1_epi32(16);
	const __m512 vbase = _mm512_set1_ps(base),
				vf = _mm512_set1_ps(f),
				vc0 = _mm512_set1_ps(c0),
				vc1 = _mm512_set1_ps(c1),
				vtau = _mm512_set1_ps(tau);
	__m512i		iota = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
	size_t		m = 0;

	for (size_t i = 0; i < n; i += 16)
	{
		__mmask16	lanes = n - i >= 16 ? (__mmask16) 0xFFFF : (__mmask16) ((1u << (n - i)) - 1);
		__m512		s = _mm512_cvtepi32_ps(_mm512_sub_epi32(_mm512_maskz_loadu_epi32(lanes, sums + i), voff));
		__m512		t = _mm512_add_ps(vc0, _mm512_mul_ps(vc1, s));
		__m512		o = _mm512_add_ps(vbase, r2 ? _mm512_maskz_loadu_ps(lanes, r2 + i) : _mm512_setzero_ps());
		__m512		lb = _mm512_add_ps(o, _mm512_mul_ps(_mm512_mul_ps(vf, _mm512_maskz_loadu_ps(lanes, alpha + i)), t));
		/* kept unless a finite number above tau (sv_fs_keep): NaN and +Inf bounds are kept */
		__mmask16	keep = _mm512_mask_cmp_ps_mask(lanes, lb, vtau, _CMP_NGT_UQ) |
			_mm512_mask_cmp_ps_mask(lanes, lb, _mm512_set1_ps(INFINITY), _CMP_EQ_OQ);

		if (keep)
			m += sv_store_kept(idx + m, keep, iota);
		iota = _mm512_add_epi32(iota, step);
	}
	return m;
}

/* Indices of the sums <= tau, sixteen at a time. */
static size_t
fs_select_u32_avx512(const uint32_t *sums, size_t n, uint32_t tau, uint32_t *idx)
{
	const __m512i vtau = _mm512_set1_epi32((int32_t) tau);
	const __m512i step = _mm512_set1_epi32(16);
	__m512i		iota = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
	size_t		m = 0;

	for (size_t i = 0; i < n; i += 16)
	{
		__mmask16	lanes = n - i >= 16 ? (__mmask16) 0xFFFF : (__mmask16) ((1u << (n - i)) - 1);
		__mmask16	keep = _mm512_mask_cmple_epu32_mask(lanes, _mm512_maskz_loadu_epi32(lanes, sums + i), vtau);

		if (keep)
			m += sv_store_kept(idx + m, keep, iota);
		iota = _mm512_add_epi32(iota, step);
	}
	return m;
}

/*
 * sum of q[i] u_i over the dims of an integer code of 8 or 4 bits per dim, sixteen dims at a time
 * (SvKernels.code_dot); 2-bit codes and the tail go to the scalar form.
 */
static float
code_dot_avx512(const float *q, const uint8_t *code, size_t dims, int bits)
{
	const __m128i low4 = _mm_set1_epi8(0x0F);
	__m512		acc0 = _mm512_setzero_ps(),
				acc1 = _mm512_setzero_ps();
	size_t		i = 0;
	float		tail = 0;

	if (bits == 8)
		for (; i + 16 <= dims; i += 16)
		{
			__m512		u = _mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i *) (code + i))));

			if (i & 16)
				acc1 = _mm512_fmadd_ps(u, _mm512_loadu_ps(q + i), acc1);
			else
				acc0 = _mm512_fmadd_ps(u, _mm512_loadu_ps(q + i), acc0);
		}
	else if (bits == 4)
		for (; i + 16 <= dims; i += 16)
		{
			__m128i		b = _mm_loadl_epi64((const __m128i *) (code + i / 2));
			/* [hi0, lo0, hi1, lo1, ...]: dim 2j is byte j's high nibble */
			__m128i		nib = _mm_unpacklo_epi8(_mm_and_si128(_mm_srli_epi16(b, 4), low4), _mm_and_si128(b, low4));
			__m512		u = _mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(nib));

			if (i & 16)
				acc1 = _mm512_fmadd_ps(u, _mm512_loadu_ps(q + i), acc1);
			else
				acc0 = _mm512_fmadd_ps(u, _mm512_loadu_ps(q + i), acc0);
		}
	for (; i < dims; i++)
	{
		int			v = bits == 8 ? code[i] : bits == 4 ? (code[i >> 1] >> (i & 1 ? 0 : 4)) & 0x0F
			: (code[i >> 2] >> (6 - 2 * (i & 3))) & 0x03;

		tail += q[i] * (float) v;
	}
	return _mm512_reduce_add_ps(_mm512_add_ps(acc0, acc1)) + tail;
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
	k->fs_scan = fs_scan_avx512;
	k->fs_select = fs_select_avx512;
	k->fs_select_u32 = fs_select_u32_avx512;
	k->code_dot = code_dot_avx512;
}

#else

/* Not an x86-64 AVX-512 build: keep the previous kernels. */
void
sv_kernels_fill_avx512(SvKernels *k)
{
	(void) k;
}

#endif
