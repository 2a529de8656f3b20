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
 * The arithmetic is in float; when a result is not finite (a vector whose values near float's limit
 * overflowed a sum), the rotation is computed again in double, where a finite input cannot overflow, and
 * each output is rounded to float once.  Butterflies are additions and subtractions, the scale one
 * multiplication: no fused multiply-add can change a bit (built with -ffp-contract=off, and -O3 so the
 * butterflies vectorize).
 */
#include <float.h>
#include <math.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

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
size_t
sv_rotation_steps(size_t n, int rounds)
{
	return (size_t) rounds * (sv_rotation_block(n) == n ? 1 : 2);
}

/*
 * The sign flips of every step, as masks of float sign bits (steps * n of them, 0 or 0x80000000): dim i
 * of step s is flipped when bit i % 64 of the generator's (s * words + i / 64 + 1)-th output is set.
 */
void
sv_rotation_masks(size_t n, uint64_t seed, int rounds, uint32_t *masks)
{
	size_t		words = (n + 63) / 64;
	size_t		steps = sv_rotation_steps(n, rounds);

	for (size_t s = 0; s < steps; s++)
		for (size_t w = 0; w < words; w++)
		{
			uint64_t	z = sv_splitmix64_at(seed, (uint64_t) (s * words + w + 1));
			size_t		end = n - 64 * w < 64 ? n - 64 * w : 64;

			for (size_t b = 0; b < end; b++)
				masks[s * n + 64 * w + b] = (uint32_t) ((z >> b) & 1) << 31;
		}
}

/* Negate the doubles of y whose mask is set. */
static void
sv_rotation_flip(double *y, size_t n, const uint32_t *mask)
{
	for (size_t i = 0; i < n; i++)
		if (mask[i])
			y[i] = -y[i];
}

/* Negate the floats of y whose mask is set: the mask goes into the sign bit (no branch; vectorizes). */
static void
sv_rotation_flip_f(float *y, size_t n, const uint32_t *mask)
{
	uint32_t   *bits = (uint32_t *) y;

	for (size_t i = 0; i < n; i++)
		bits[i] ^= mask[i];
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

/*
 * sv_fwht over floats (the scale rounded to float), the same additions in the same order: the first three
 * stages fused in one pass over blocks of 8, then one pass a stage over two halves that cannot overlap
 * (restrict: the compiler vectorizes them), the scale folded into the last stage.
 */
static void
sv_fwht_f(float *y, size_t m)
{
	float		scale = (float) (1.0 / sqrt((double) m));
	size_t		h = 1;

	if (m < 8)
	{
		for (; h < m; h *= 2)
			for (size_t i = 0; i < m; i += 2 * h)
				for (size_t j = i; j < i + h; j++)
				{
					float		a = y[j];
					float		b = y[j + h];

					y[j] = a + b;
					y[j + h] = a - b;
				}
		for (size_t j = 0; j < m; j++)
			y[j] *= scale;
		return;
	}
	for (size_t i = 0; i < m; i += 8)
	{
		float	   *p = y + i;
		float		a0 = p[0] + p[1],
					a1 = p[0] - p[1],
					a2 = p[2] + p[3],
					a3 = p[2] - p[3],
					a4 = p[4] + p[5],
					a5 = p[4] - p[5],
					a6 = p[6] + p[7],
					a7 = p[6] - p[7];
		float		b0 = a0 + a2,
					b2 = a0 - a2,
					b1 = a1 + a3,
					b3 = a1 - a3,
					b4 = a4 + a6,
					b6 = a4 - a6,
					b5 = a5 + a7,
					b7 = a5 - a7;

		p[0] = b0 + b4;
		p[4] = b0 - b4;
		p[1] = b1 + b5;
		p[5] = b1 - b5;
		p[2] = b2 + b6;
		p[6] = b2 - b6;
		p[3] = b3 + b7;
		p[7] = b3 - b7;
	}
	for (h = 8; h < m; h *= 2)
		for (size_t i = 0; i < m; i += 2 * h)
		{
			float	   *restrict lo = y + i;
			float	   *restrict hi = y + i + h;

			if (2 * h == m)
				for (size_t j = 0; j < h; j++)
				{
					float		a = lo[j];
					float		b = hi[j];

					lo[j] = (a + b) * scale;
					hi[j] = (a - b) * scale;
				}
			else
				for (size_t j = 0; j < h; j++)
				{
					float		a = lo[j];
					float		b = hi[j];

					lo[j] = a + b;
					hi[j] = a - b;
				}
		}
	if (m == 8)
		for (size_t j = 0; j < m; j++)
			y[j] *= scale;
}

/* The forward steps in float, in place; false when a result is not finite (all exponent bits set). */
static bool
sv_rotate_float(float *y, size_t n, const uint32_t *masks, int rounds)
{
	size_t		m = sv_rotation_block(n);
	size_t		s = 0;
	const uint32_t *bits = (const uint32_t *) y;
	uint32_t	bad = 0;

	for (int r = 0; r < rounds; r++)
	{
		sv_rotation_flip_f(y, n, masks + n * s++);
		sv_fwht_f(y, m);
		if (m < n)
		{
			sv_rotation_flip_f(y, n, masks + n * s++);
			sv_fwht_f(y + (n - m), m);
		}
	}
	for (size_t i = 0; i < n; i++)
		bad |= (uint32_t) ((bits[i] & 0x7f800000) == 0x7f800000);
	return bad == 0;
}

/*
 * Rotate the n floats x into out (may be x), with work space of n doubles: in float, or in double when
 * float overflowed.  A vector longer than float's range (|x| above ~3.4e38) can have rotated values float
 * cannot hold: they are clamped to +-FLT_MAX, and the return value is true (the caller treats the vector
 * as of unknown estimate).  False otherwise.
 */
bool
sv_rotate(const float *x, float *out, size_t n, const uint32_t *masks, int rounds, double *work)
{
	size_t		m = sv_rotation_block(n);
	size_t		s = 0;
	float	   *y = (float *) work;
	bool		clamped = false;

	memcpy(y, x, sizeof(float) * n);
	if (sv_rotate_float(y, n, masks, rounds))
	{
		memcpy(out, y, sizeof(float) * n);
		return false;
	}
	for (size_t i = 0; i < n; i++)
		work[i] = x[i];
	for (int r = 0; r < rounds; r++)
	{
		sv_rotation_flip(work, n, masks + n * s++);
		sv_fwht(work, m);
		if (m < n)
		{
			sv_rotation_flip(work, n, masks + n * s++);
			sv_fwht(work + (n - m), m);
		}
	}
	for (size_t i = 0; i < n; i++)
	{
		double		v = work[i] > FLT_MAX ? FLT_MAX : work[i] < -FLT_MAX ? -FLT_MAX : work[i];

		clamped |= v != work[i];
		out[i] = (float) v;
	}
	return clamped;
}

/* The inverse rotation (the steps of sv_rotate transposed, in reverse order) of y into out (may be y), in double. */
void
sv_unrotate(const float *y, float *out, size_t n, const uint32_t *masks, int rounds, double *work)
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
			sv_rotation_flip(work, n, masks + n * --s);
		}
		sv_fwht(work, m);
		sv_rotation_flip(work, n, masks + n * --s);
	}
	for (size_t i = 0; i < n; i++)
		out[i] = (float) work[i];
}
