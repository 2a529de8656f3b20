/*
 * composite.c: kernels built on the dispatched ones: the Hamming top-k scan and exact MaxSim.
 */
#include "kernels.h"

#include <math.h>

/* The Hamming top-k heap: distances and ids in two arrays (the caller's output arrays). */
typedef struct TopkArrays
{
	uint32_t   *dist;
	uint64_t   *ids;
} TopkArrays;

/* Is heap entry i worse (farther, or equally far and later) than entry j? */
static inline int
topk_worse(const TopkArrays *h, size_t i, size_t j)
{
	return h->dist[i] > h->dist[j] || (h->dist[i] == h->dist[j] && h->ids[i] > h->ids[j]);
}

/* Exchange heap entries i and j. */
static inline void
topk_swap(const TopkArrays *h, size_t i, size_t j)
{
	uint32_t	td = h->dist[i];
	uint64_t	ti = h->ids[i];

	h->dist[i] = h->dist[j];
	h->ids[i] = h->ids[j];
	h->dist[j] = td;
	h->ids[j] = ti;
}

#define TOPK_PREFIX topk
#define TOPK_HEAP const TopkArrays *
#define TOPK_WORSE(h, i, j) topk_worse(h, i, j)
#define TOPK_SWAP(h, i, j) topk_swap(h, i, j)
#include "topk_heap.h"

#define TOPK_BLOCK 1024

/* The k nearest codes by Hamming distance (see kernels.h). */
size_t
sv_hamming_topk(const uint8_t *codes, size_t ncodes, size_t nbytes, const uint8_t *query,
				size_t k, uint64_t *out_ids, uint32_t *out_dists)
{
	uint32_t	block[TOPK_BLOCK];
	size_t		n = 0;
	TopkArrays	h = {out_dists, out_ids};

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
				/* fill: append and sift up */
				out_dists[n] = block[j];
				out_ids[n] = id;
				topk_sift_up(&h, n++);
			}
			else if (block[j] < out_dists[0])
			{
				out_dists[0] = block[j];
				out_ids[0] = id;
				topk_sift_down(&h, k, 0);
			}
		}
	}
	topk_sort(&h, n);
	return n;
}

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
