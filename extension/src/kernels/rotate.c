/*
 * rotate.c: the index's random orthogonal rotation of the coded dims (the numpy reference is
 * pytools/shrinkvec/codes.py, rotate and unrotate; the two agree bit for bit).
 *
 * With m the largest power of two <= n, each round flips the signs of the dims picked by a seeded
 * generator, then applies a normalised Walsh-Hadamard transform (times 1/sqrt(m)) to x[0, m); when
 * m < n it flips signs again and transforms x[n - m, n).  Every step is orthogonal, so distances and
 * inner products are kept; a Hadamard step spreads each coordinate evenly over its block, so after two
 * rounds a vector whose variance sits in a few dims has it spread over all of them.  O(n log n).
 *
 * The arithmetic is in double (a finite float input cannot overflow there) and each output is rounded
 * to float once.  Butterflies are additions and subtractions, the scale one multiplication: no fused
 * multiply-add can change a bit.
 */
#include <math.h>
#include <stddef.h>
#include <stdint.h>

#include "kernels.h"

/* The splitmix64 output of the k-th step (k >= 1) from seed: the generator is a counter. */
static uint64_t
sv_splitmix64_at(uint64_t seed, uint64_t k)
{
	uint64_t	z = seed + k * UINT64_C(0x9E3779B97F4A7C15);

	z = (z ^ (z >> 30)) * UINT64_C(0xBF58476D1CE4E5B9);
	z = (z ^ (z >> 27)) * UINT64_C(0x94D049BB133111EB);
	return z ^ (z >> 31);
}

/* The Hadamard block of the rotation over n dims: the largest power of two <= n. */
size_t
sv_rotation_block(size_t n)
{
	size_t		m = 1;

	while (m * 2 <= n)
		m *= 2;
	return m;
}

/* Sign-flip steps of a rotation of n dims: one per round for a power of two, else two. */
static size_t
sv_rotation_steps(size_t n, int rounds)
{
	return (size_t) rounds * (sv_rotation_block(n) == n ? 1 : 2);
}

/* Negate the dims of y that step s of the generator picks (bit i % 64 of its (i / 64)-th word). */
static void
sv_rotation_flip(double *y, size_t n, uint64_t seed, size_t s)
{
	size_t		words = (n + 63) / 64;

	for (size_t w = 0; w < words; w++)
	{
		uint64_t	z = sv_splitmix64_at(seed, (uint64_t) (s * words + w + 1));
		size_t		end = n - 64 * w < 64 ? n - 64 * w : 64;

		for (size_t b = 0; b < end; b++)
			if ((z >> b) & 1)
				y[64 * w + b] = -y[64 * w + b];
	}
}

/* The normalised Walsh-Hadamard transform of the m (a power of two) doubles y, in place. */
static void
sv_fwht(double *y, size_t m)
{
	double		scale = 1.0 / sqrt((double) m);

	for (size_t h = 1; h < m; h *= 2)
		for (size_t i = 0; i < m; i += 2 * h)
			for (size_t j = i; j < i + h; j++)
			{
				double		a = y[j];
				double		b = y[j + h];

				y[j] = a + b;
				y[j + h] = a - b;
			}
	for (size_t j = 0; j < m; j++)
		y[j] *= scale;
}

/* Rotate the n floats x into out (may be x), with work space of n doubles. */
void
sv_rotate(const float *x, float *out, size_t n, uint64_t seed, int rounds, double *work)
{
	size_t		m = sv_rotation_block(n);
	size_t		s = 0;

	for (size_t i = 0; i < n; i++)
		work[i] = x[i];
	for (int r = 0; r < rounds; r++)
	{
		sv_rotation_flip(work, n, seed, s++);
		sv_fwht(work, m);
		if (m < n)
		{
			sv_rotation_flip(work, n, seed, s++);
			sv_fwht(work + (n - m), m);
		}
	}
	for (size_t i = 0; i < n; i++)
		out[i] = (float) work[i];
}

/* The inverse rotation (the steps of sv_rotate transposed, in reverse order) of y into out (may be y). */
void
sv_unrotate(const float *y, float *out, size_t n, uint64_t seed, int rounds, double *work)
{
	size_t		m = sv_rotation_block(n);
	size_t		s = sv_rotation_steps(n, rounds);

	for (size_t i = 0; i < n; i++)
		work[i] = y[i];
	for (int r = 0; r < rounds; r++)
	{
		if (m < n)
		{
			sv_fwht(work + (n - m), m);
			sv_rotation_flip(work, n, seed, --s);
		}
		sv_fwht(work, m);
		sv_rotation_flip(work, n, seed, --s);
	}
	for (size_t i = 0; i < n; i++)
		out[i] = (float) work[i];
}
