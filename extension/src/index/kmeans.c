/*
 * kmeans.c: the centroids of an IVF shrinkvec index, learned from a sample at build time, and the
 * nearest centroid of each of a batch of points (used by k-means itself, the build and ivf.c).
 * A leaf: it calls only the kernels, never back into the rest of the index.
 *
 * Both versions are plain Lloyd iterations from distinct sample points chosen with a fixed seed,
 * so a build is deterministic.  A cluster that empties is re-seeded with the point farthest from
 * its centroid among a few random tries.
 */
#include "postgres.h"

#include <math.h>

#include "common/pg_prng.h"
#include "miscadmin.h"

#include "svindex.h"
#include "kernels/kernels.h"

#define SV_KMEANS_ITERATIONS 10

/* Choose k distinct indexes of n (k <= n) into out with a partial Fisher-Yates shuffle. */
static void
sv_pick_distinct(pg_prng_state *prng, int n, int k, int *out)
{
	int		   *perm = palloc(sizeof(int) * n);

	for (int i = 0; i < n; i++)
		perm[i] = i;
	for (int i = 0; i < k; i++)
	{
		int			j = i + (int) pg_prng_uint64_range(prng, 0, n - i - 1);
		int			t = perm[i];

		perm[i] = perm[j];
		perm[j] = t;
		out[i] = perm[i];
	}
	pfree(perm);
}

/* k-means over n points of dim floats into k centroids (k <= n); deterministic. */
void
sv_kmeans_float(const float *points, int n, int dim, int k, float *centroids)
{
	pg_prng_state prng;
	int		   *pick = palloc(sizeof(int) * k);
	int		   *assign = palloc(sizeof(int) * n);
	int		   *next = palloc(sizeof(int) * n);
	int		   *count = palloc(sizeof(int) * k);
	float	   *cnorm = palloc(sizeof(float) * k);
	double	   *sum = palloc(sizeof(double) * (Size) k * dim);

	Assert(k <= n);
	pg_prng_seed(&prng, 0x4b4d);
	sv_pick_distinct(&prng, n, k, pick);
	for (int c = 0; c < k; c++)
		memcpy(centroids + (Size) c * dim, points + (Size) pick[c] * dim, sizeof(float) * dim);

	for (int iter = 0; iter < SV_KMEANS_ITERATIONS; iter++)
	{
		int			changed = 0;

		CHECK_FOR_INTERRUPTS();
		for (int c = 0; c < k; c++)
			cnorm[c] = sv_kernels.dot(centroids + (Size) c * dim, centroids + (Size) c * dim, dim);
		sv_nearest_centroids(centroids, cnorm, k, dim, points, n, next);
		for (int i = 0; i < n; i++)
		{
			if (iter == 0 || assign[i] != next[i])
				changed++;
			assign[i] = next[i];
		}
		if (iter > 0 && changed == 0)
			break;

		memset(sum, 0, sizeof(double) * (Size) k * dim);
		memset(count, 0, sizeof(int) * k);
		for (int i = 0; i < n; i++)
		{
			const float *x = points + (Size) i * dim;
			double	   *s = sum + (Size) assign[i] * dim;

			for (int d = 0; d < dim; d++)
				s[d] += x[d];
			count[assign[i]]++;
		}
		for (int c = 0; c < k; c++)
		{
			float	   *cent = centroids + (Size) c * dim;

			if (count[c] == 0)
			{
				/* an empty cluster takes a random point */
				int			i = (int) pg_prng_uint64_range(&prng, 0, n - 1);

				memcpy(cent, points + (Size) i * dim, sizeof(float) * dim);
				continue;
			}
			for (int d = 0; d < dim; d++)
				cent[d] = (float) (sum[(Size) c * dim + d] / count[c]);
		}
	}
	pfree(pick);
	pfree(assign);
	pfree(next);
	pfree(count);
	pfree(cnorm);
	pfree(sum);
}

/* k-majority over n bit codes of nbytes into k binary centroids (k <= n); deterministic. */
void
sv_kmeans_bits(const uint8 *codes, int n, int nbytes, int nbits, int k, uint8 *centroids)
{
	pg_prng_state prng;
	int		   *pick = palloc(sizeof(int) * k);
	int		   *assign = palloc(sizeof(int) * n);
	int		   *count = palloc(sizeof(int) * k);
	int32	   *ones = palloc(sizeof(int32) * (Size) k * nbits);

	Assert(k <= n);
	pg_prng_seed(&prng, 0x4b4d);
	sv_pick_distinct(&prng, n, k, pick);
	for (int c = 0; c < k; c++)
		memcpy(centroids + (Size) c * nbytes, codes + (Size) pick[c] * nbytes, nbytes);

	for (int iter = 0; iter < SV_KMEANS_ITERATIONS; iter++)
	{
		int			changed = 0;

		CHECK_FOR_INTERRUPTS();
		for (int i = 0; i < n; i++)
		{
			const uint8 *x = codes + (Size) i * nbytes;
			uint64		bestd = UINT64_MAX;
			int			best = 0;

			for (int c = 0; c < k; c++)
			{
				uint64		d = sv_kernels.xor_popcount(x, centroids + (Size) c * nbytes, nbytes);

				if (d < bestd)
				{
					bestd = d;
					best = c;
				}
			}
			if (iter == 0 || assign[i] != best)
				changed++;
			assign[i] = best;
		}
		if (iter > 0 && changed == 0)
			break;

		memset(ones, 0, sizeof(int32) * (Size) k * nbits);
		memset(count, 0, sizeof(int) * k);
		for (int i = 0; i < n; i++)
		{
			const uint8 *x = codes + (Size) i * nbytes;
			int32	   *o = ones + (Size) assign[i] * nbits;

			for (int b = 0; b < nbits; b++)
				o[b] += (x[b / 8] >> (7 - b % 8)) & 1;
			count[assign[i]]++;
		}
		for (int c = 0; c < k; c++)
		{
			uint8	   *cent = centroids + (Size) c * nbytes;

			if (count[c] == 0)
			{
				int			i = (int) pg_prng_uint64_range(&prng, 0, n - 1);

				memcpy(cent, codes + (Size) i * nbytes, nbytes);
				continue;
			}
			memset(cent, 0, nbytes);
			for (int b = 0; b < nbits; b++)
				if (2 * ones[(Size) c * nbits + b] > count[c])
					cent[b / 8] |= (uint8) (0x80 >> (b % 8));
		}
	}
	pfree(pick);
	pfree(assign);
	pfree(count);
	pfree(ones);
}

/* |x - c|^2 (|x|^2 when c is NULL) summed in double: finite for any finite floats. */
double
sv_l2sq_double(const float *x, const float *c, int dim)
{
	double		d = 0;

	for (int i = 0; i < dim; i++)
	{
		double		t = c ? (double) x[i] - (double) c[i] : (double) x[i];

		d += t * t;
	}
	return d;
}

/*
 * The nearest of k centroids to each of n points (see svindex.h).  Every out[i] is written, whatever the
 * values.  Points and centroids whose squared norms stay within SV_SAFE_NORM2 are compared by the float
 * form |c|^2 - 2 <x, c> (no term can overflow).  A centroid beyond it (finite floats above ~1e18 overflow
 * their squares) is compared with such a point by the same quantity in double, |x - c|^2 - |x|^2; a
 * point beyond it is compared with every centroid by |x - c|^2 in double.  Only the pairs that involve
 * a large value pay for double arithmetic.
 */
void
sv_nearest_centroids(const float *centroids, const float *cnorm2, int k, int dim,
					 const float *points, int n, int *out)
{
	const int	block = 32;
	double		best[32];
	bool		big[32];

	for (int start = 0; start < n; start += block)
	{
		int			m = Min(block, n - start);
		const float *x = points + (Size) start * dim;

		for (int i = 0; i < m; i++)
		{
			const float *xi = x + (Size) i * dim;

			best[i] = INFINITY;
			out[start + i] = 0;
			big[i] = !sv_norm2_safe(sv_kernels.dot(xi, xi, dim));
		}
		for (int c = 0; c < k; c++)
		{
			const float *cc = centroids + (Size) c * dim;
			int			i = 0;

			if (!sv_norm2_safe(cnorm2[c]))
			{
				/* a large centroid: |x - c|^2 - |x|^2 in double for the points of float size */
				for (; i < m; i++)
				{
					const float *xi = x + (Size) i * dim;
					double		d;

					if (big[i])
						continue;
					d = sv_l2sq_double(xi, cc, dim) - sv_l2sq_double(xi, NULL, dim);
					if (d < best[i])
					{
						best[i] = d;
						out[start + i] = c;
					}
				}
				continue;
			}
			/* four rows at a time share each load of the centroid */
			for (; i + 4 <= m; i += 4)
			{
				const float *rows[4] = {x + (Size) i * dim, x + (Size) (i + 1) * dim,
				x + (Size) (i + 2) * dim, x + (Size) (i + 3) * dim};
				float		dots[4];

				sv_kernels.dot4(rows, cc, dim, dots);
				for (int r = 0; r < 4; r++)
				{
					/* |x - c|^2 = |x|^2 + |c|^2 - 2 <x, c>; |x|^2 is common to all centroids */
					float		d = cnorm2[c] - 2.0f * dots[r];

					if (d < best[i + r])
					{
						best[i + r] = d;
						out[start + i + r] = c;
					}
				}
			}
			for (; i < m; i++)
			{
				float		d = cnorm2[c] - 2.0f * sv_kernels.dot(x + (Size) i * dim, cc, dim);

				if (d < best[i])
				{
					best[i] = d;
					out[start + i] = c;
				}
			}
		}
		/* points too large for the float form: exact distances in double to every centroid */
		for (int i = 0; i < m; i++)
		{
			const float *xi = x + (Size) i * dim;
			double		bestd;

			if (!big[i])
				continue;
			bestd = sv_l2sq_double(xi, centroids, dim);
			out[start + i] = 0;
			for (int c = 1; c < k; c++)
			{
				double		d = sv_l2sq_double(xi, centroids + (Size) c * dim, dim);

				if (d < bestd)
				{
					bestd = d;
					out[start + i] = c;
				}
			}
		}
	}
}
