/*
 * kernels_check.c: every SIMD kernel against the scalar one, on random inputs of every length from
 * 0 to 300 (bytes or floats), each input in its own allocation of exactly its length, so that
 * AddressSanitizer or valgrind sees any read past the end of a vector tail.
 *
 * Built and run by `make sanitize` (ASan + UBSan, then valgrind when installed); not part of
 * `make test`.  Usage: kernels_check [max_level], max_level 0 scalar, 1 avx2, 2 avx512 (default).
 * Exits 1 on the first disagreement.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../src/kernels/kernels.h"

#define MAX_LEN 300

static uint64_t rng_state = 0x9E3779B97F4A7C15ULL;
static long checks = 0;

/* Next pseudo-random 64-bit value (xorshift64*). */
static uint64_t
next_u64(void)
{
	rng_state ^= rng_state >> 12;
	rng_state ^= rng_state << 25;
	rng_state ^= rng_state >> 27;
	return rng_state * 0x2545F4914F6CDD1DULL;
}

/* A random float in [-1, 1). */
static float
next_float(void)
{
	return (float) ((double) (next_u64() >> 11) / 9007199254740992.0 * 2.0 - 1.0);
}

/* A fresh allocation of exactly n random bytes (n may be 0). */
static uint8_t *
random_bytes(size_t n)
{
	uint8_t    *p = malloc(n ? n : 1);

	for (size_t i = 0; i < n; i++)
		p[i] = (uint8_t) next_u64();
	return p;
}

/* A fresh allocation of exactly n random floats. */
static float *
random_floats(size_t n)
{
	float	   *p = malloc(n ? n * sizeof(float) : 1);

	for (size_t i = 0; i < n; i++)
		p[i] = next_float();
	return p;
}

/* A fresh allocation of exactly n random half-precision values in [-1, 1]. */
static uint16_t *
random_halves(size_t n)
{
	uint16_t   *p = malloc(n ? n * sizeof(uint16_t) : 1);

	for (size_t i = 0; i < n; i++)
		p[i] = (uint16_t) ((next_u64() & 0x8000) | (next_u64() % 0x3C01));	/* |x| <= 1.0 */
	return p;
}

/* Fail unless two integers are equal. */
static void
same_int(const char *what, size_t n, uint64_t want, uint64_t got)
{
	checks++;
	if (want != got)
	{
		fprintf(stderr, "%s, length %zu: scalar %llu, simd %llu\n", what, n,
				(unsigned long long) want, (unsigned long long) got);
		exit(1);
	}
}

/* Fail unless two floats agree within float rounding of a sum whose terms add up to scale. */
static void
close_float(const char *what, size_t n, float want, float got, float scale)
{
	checks++;
	if (fabsf(want - got) > 1e-5f * (scale + 1.0f) || isnan(got) != isnan(want))
	{
		fprintf(stderr, "%s, length %zu: scalar %.9g, simd %.9g\n", what, n, want, got);
		exit(1);
	}
}

/* Compare one SIMD implementation with the scalar one on inputs of length n. */
static void
check_length(const SvKernels *s, const SvKernels *v, size_t n)
{
	uint8_t    *a = random_bytes(n),
			   *b = random_bytes(n);
	float	   *x = random_floats(n),
			   *y = random_floats(n);
	uint16_t   *ha = random_halves(n),
			   *hb = random_halves(n);
	size_t		nbits = n * 8;
	float	   *w = random_floats(nbits);
	float		d1,
				n1a,
				n1b,
				d2,
				n2a,
				n2b;

	same_int("popcount", n, s->popcount(a, n), v->popcount(a, n));
	same_int("xor_popcount", n, s->xor_popcount(a, b, n), v->xor_popcount(a, b, n));
	close_float("masked_sum", n, s->masked_sum(w, a, nbits), v->masked_sum(w, a, nbits), (float) nbits);
	/* a bit count that is not a multiple of 8 reads only the bits it needs */
	if (nbits > 3)
		close_float("masked_sum (partial byte)", n, s->masked_sum(w, a, nbits - 3), v->masked_sum(w, a, nbits - 3),
					(float) nbits);
	close_float("sum", n, s->sum(x, n), v->sum(x, n), (float) n);
	close_float("dot", n, s->dot(x, y, n), v->dot(x, y, n), (float) n);
	s->dot_norms(x, y, n, &d1, &n1a, &n1b);
	v->dot_norms(x, y, n, &d2, &n2a, &n2b);
	close_float("dot_norms dot", n, d1, d2, (float) n);
	close_float("dot_norms norm a", n, n1a, n2a, (float) n);
	close_float("dot_norms norm b", n, n1b, n2b, (float) n);
	s->half_dot_norms(ha, hb, n, &d1, &n1a, &n1b);
	v->half_dot_norms(ha, hb, n, &d2, &n2a, &n2b);
	close_float("half_dot_norms dot", n, d1, d2, (float) n);
	close_float("half_dot_norms norm a", n, n1a, n2a, (float) n);

	{
		float	   *rows[4];
		const float *crows[4];
		float		o1[4],
					o2[4];

		for (int r = 0; r < 4; r++)
			crows[r] = rows[r] = random_floats(n);
		s->dot4(crows, x, n, o1);
		v->dot4(crows, x, n, o2);
		for (int r = 0; r < 4; r++)
		{
			close_float("dot4", n, o1[r], o2[r], (float) n);
			free(rows[r]);
		}
	}

	/* Hamming scan over a block of codes stored back to back in one exact allocation */
	if (n > 0)
	{
		size_t		ncodes = 1 + next_u64() % 37;
		uint8_t    *codes = random_bytes(ncodes * n);
		uint32_t   *o1 = malloc(ncodes * sizeof(uint32_t)),
				   *o2 = malloc(ncodes * sizeof(uint32_t));

		s->hamming_scan(codes, ncodes, n, a, o1);
		v->hamming_scan(codes, ncodes, n, a, o2);
		for (size_t i = 0; i < ncodes; i++)
			same_int("hamming_scan", n, o1[i], o2[i]);
		free(codes);
		free(o1);
		free(o2);
	}

	free(a);
	free(b);
	free(x);
	free(y);
	free(ha);
	free(hb);
	free(w);
}

/* The dispatch-level functions (top-k, lookup tables) at the current level against brute force. */
static void
check_topk_and_lut(size_t nbytes)
{
	size_t		ncodes = 1 + next_u64() % 500;
	size_t		k = 1 + next_u64() % 20;
	uint8_t    *codes = random_bytes(ncodes * nbytes);
	uint8_t    *q = random_bytes(nbytes);
	uint64_t   *ids = malloc(k * sizeof(uint64_t));
	uint32_t   *dists = malloc(k * sizeof(uint32_t));
	size_t		got = sv_hamming_topk(codes, ncodes, nbytes, q, k, ids, dists);
	size_t		nbits = nbytes * 8 - (nbytes ? next_u64() % 8 : 0);
	float	   *w = random_floats(nbits);
	float	   *lut = malloc(nbytes * 256 * sizeof(float) + 1);
	float	   *scores = malloc(ncodes * sizeof(float));

	same_int("topk count", nbytes, ncodes < k ? ncodes : k, got);
	for (size_t i = 0; i < got; i++)
	{
		uint32_t	d = 0;

		for (size_t j = 0; j < nbytes; j++)
			d += (uint32_t) __builtin_popcount(codes[ids[i] * nbytes + j] ^ q[j]);
		same_int("topk distance", nbytes, d, dists[i]);
		if (i > 0)
			same_int("topk order", nbytes, 1, dists[i - 1] < dists[i] || (dists[i - 1] == dists[i] && ids[i - 1] < ids[i]));
	}

	sv_lut_build(w, nbits, nbytes, lut);
	sv_lut_scan(codes, ncodes, nbytes, nbytes, lut, scores);
	for (size_t i = 0; i < ncodes; i++)
	{
		float		want = 0;

		for (size_t b = 0; b < nbits; b++)
			if ((codes[i * nbytes + b / 8] >> (7 - b % 8)) & 1)
				want += w[b];
		close_float("lut_scan", nbytes, want, scores[i], (float) nbits);
	}
	free(codes);
	free(q);
	free(ids);
	free(dists);
	free(w);
	free(lut);
	free(scores);
}

/* The index scan kernels (blocked nibble tables, selection) at the current level against the portable scan. */
static void
check_fs(size_t n)
{
	size_t		nbytes = 2 * (n % 40 + 1),
				nblocks = n % 3 + 1,
				ncodes = nblocks * SV_FS_LANES - n % 7;
	size_t		nbits = nbytes * 8 - n % 9;
	uint8_t    *blocks = random_bytes(nblocks * SV_FS_LANES * nbytes);
	uint8_t    *tables = malloc(SV_FS_TABLE_BYTES(nbytes));
	uint8_t    *q = random_bytes(nbytes);
	float	   *w = random_floats(nbits);
	float	   *alpha = random_floats(ncodes);
	uint32_t   *sums = malloc(sizeof(uint32_t) * nblocks * SV_FS_LANES);
	uint32_t   *want = malloc(sizeof(uint32_t) * ncodes);
	uint32_t   *idx = malloc(sizeof(uint32_t) * ncodes);
	SvFsQuery	fq;

	for (int kind = 0; kind < 2; kind++)
	{
		size_t		m,
					k = 0;
		uint32_t	tau_u = 0;
		float		tau;

		if (kind == 0)
			sv_fs_tables_ip(w, nbits, nbytes, tables, &fq);
		else
			sv_fs_tables_hamming(q, nbits, nbytes, tables);
		sv_kernels.fs_scan(blocks, nblocks, nbytes, tables, sums);
		sv_fs_scan_lanes(blocks, ncodes, SV_FS_LANES, nbytes, tables, want);
		for (size_t i = 0; i < ncodes; i++)
		{
			same_int("fs_scan", nbytes, want[i], sums[i]);
			tau_u += want[i] / (uint32_t) ncodes;
		}
		m = sv_kernels.fs_select_u32(sums, ncodes, tau_u, idx);
		for (size_t i = 0; i < ncodes; i++)
			if (sums[i] <= tau_u)
			{
				same_int("fs_select_u32", nbytes, (long) i, k < m ? (long) idx[k] : -1);
				k++;
			}
		same_int("fs_select_u32 count", nbytes, (long) k, (long) m);
		tau = sv_fs_bound(sums[0], 100, alpha[0], 0.0f, 0.5f, -1.0f, 0.25f, 0.01f);
		m = sv_kernels.fs_select(sums, ncodes, 100, alpha, n % 2 ? alpha : NULL, 0.5f, -1.0f, 0.25f, 0.01f, tau, idx);
		k = 0;
		for (size_t i = 0; i < ncodes; i++)
			if (sv_fs_bound(sums[i], 100, alpha[i], n % 2 ? alpha[i] : 0.0f, 0.5f, -1.0f, 0.25f, 0.01f) <= tau)
			{
				same_int("fs_select", nbytes, (long) i, k < m ? (long) idx[k] : -1);
				k++;
			}
		same_int("fs_select count", nbytes, (long) k, (long) m);
	}
	free(blocks);
	free(tables);
	free(q);
	free(w);
	free(alpha);
	free(sums);
	free(want);
	free(idx);
}

/* Run every check at each level up to the one asked for. */
int
main(int argc, char **argv)
{
	int			max_level = argc > 1 ? atoi(argv[1]) : SV_KERNELS_AVX512;
	SvKernels	scalar;

	sv_kernels_init(SV_KERNELS_SCALAR);
	sv_kernels_fill_scalar(&scalar);
	for (int level = SV_KERNELS_SCALAR; level <= max_level; level++)
	{
		SvKernelLevel got = sv_kernels_init((SvKernelLevel) level);

		if ((int) got != level)
		{
			printf("level %s: not supported by this CPU, skipped\n", sv_kernels_level_name((SvKernelLevel) level));
			continue;
		}
		for (size_t n = 0; n <= MAX_LEN; n++)
		{
			check_length(&scalar, &sv_kernels, n);
			check_topk_and_lut(n % 80 + 1);
			check_fs(n);
		}
		printf("level %s: every kernel agrees with scalar on lengths 0..%d\n", sv_kernels_level_name(got), MAX_LEN);
	}
	printf("%ld checks passed\n", checks);
	return 0;
}
