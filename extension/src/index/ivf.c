/*
 * ivf.c: the lists of an IVF index: the nearest list of a row, and the coarse level (groups of lists, by
 * k-means over the centroids) that lets an insert into a many-list index compare against a few groups.
 */
#include "postgres.h"

#include "utils/memutils.h"

#include "svindex.h"
#include "kernels/kernels.h"

static void sv_coarse_point(SvIndexCache *cache, char *stream);
static void sv_coarse_norms(SvIndexCache *cache, MemoryContext cxt);

/* The list nearest to x (squared L2 to the centroids), or to a bit code (Hamming). */
int
sv_nearest_list(const SvIndexCache *cache, const float *x, const uint8 *code)
{
	const SvMetaData *meta = &cache->meta;
	int			best = 0;

	if (meta->lists <= 1)
		return 0;
	if (meta->elemtype == SV_ELEM_BIT)
	{
		uint64		bestd = UINT64_MAX;

		for (int i = 0; i < meta->lists; i++)
		{
			uint64		d = sv_kernels.xor_popcount(code, (const uint8 *) cache->centroids + (Size) i * meta->code_bytes,
													meta->code_bytes);

			if (d < bestd)
			{
				bestd = d;
				best = i;
			}
		}
	}
	else if (meta->coarse_groups > 0)
		best = sv_coarse_nearest_list(cache, x);
	else
		sv_nearest_centroids((const float *) cache->centroids, cache->centroid_norm2, meta->lists,
							 meta->code_bits, x, 1, &best);
	return best;
}

/* Bytes of the coarse level's stream: group centroids, offsets, grouped lists. */
Size
sv_coarse_bytes(const SvMetaData *meta)
{
	return (Size) meta->coarse_groups * meta->code_bits * sizeof(float) +
		(Size) (meta->coarse_groups + 1) * sizeof(int32) + (Size) meta->lists * sizeof(int32);
}

/* Point a cache's coarse arrays into one stream of sv_coarse_bytes (allocated, or read from the index). */
static void
sv_coarse_point(SvIndexCache *cache, char *stream)
{
	const SvMetaData *meta = &cache->meta;

	cache->coarse = (float *) stream;
	cache->coarse_offsets = (int32 *) (stream + (Size) meta->coarse_groups * meta->code_bits * sizeof(float));
	cache->coarse_lists = cache->coarse_offsets + meta->coarse_groups + 1;
}

/* |g|^2 of every group centroid. */
static void
sv_coarse_norms(SvIndexCache *cache, MemoryContext cxt)
{
	const SvMetaData *meta = &cache->meta;

	cache->coarse_norm2 = MemoryContextAlloc(cxt, sizeof(float) * meta->coarse_groups);
	for (int g = 0; g < meta->coarse_groups; g++)
	{
		const float *c = cache->coarse + (Size) g * meta->code_bits;

		cache->coarse_norm2[g] = sv_kernels.dot(c, c, meta->code_bits);
	}
}

/* Attach a coarse stream read from the index to a cache: point its arrays into it and compute |g|^2. */
void
sv_coarse_attach(SvIndexCache *cache, char *stream, MemoryContext cxt)
{
	sv_coarse_point(cache, stream);
	sv_coarse_norms(cache, cxt);
}

/* Build the coarse level: k-means over the centroids, then the lists grouped by their nearest group. */
void
sv_coarse_build(SvIndexCache *cache)
{
	const SvMetaData *meta = &cache->meta;
	int			lists = meta->lists,
				groups = meta->coarse_groups;
	int		   *group = palloc(sizeof(int) * lists);
	int		   *fill = palloc0(sizeof(int) * (groups + 1));

	sv_coarse_point(cache, palloc0(sv_coarse_bytes(meta)));
	sv_kmeans_float((const float *) cache->centroids, lists, meta->code_bits, groups, cache->coarse);
	sv_coarse_norms(cache, CurrentMemoryContext);
	sv_nearest_centroids(cache->coarse, cache->coarse_norm2, groups, meta->code_bits,
						 (const float *) cache->centroids, lists, group);
	for (int i = 0; i < lists; i++)
		cache->coarse_offsets[group[i] + 1]++;
	for (int g = 0; g < groups; g++)
		cache->coarse_offsets[g + 1] += cache->coarse_offsets[g];
	for (int i = 0; i < lists; i++)
		cache->coarse_lists[cache->coarse_offsets[group[i]] + fill[group[i]]++] = i;
	pfree(group);
	pfree(fill);
}

/*
 * The list nearest to x among the lists of the SV_COARSE_PROBES groups nearest to x.  As in
 * sv_nearest_centroids, a row or centroids beyond SV_SAFE_NORM2 are compared by distances in double.
 */
int
sv_coarse_nearest_list(const SvIndexCache *cache, const float *x)
{
	const SvMetaData *meta = &cache->meta;
	int			dim = meta->code_bits;
	int			probes = Min(SV_COARSE_PROBES, meta->coarse_groups);
	int			nearest[SV_COARSE_PROBES];
	double		nearest_d[SV_COARSE_PROBES];
	int			n = 0,
				best = 0;
	double		bestd = INFINITY;
	bool		exact = !sv_norm2_safe(sv_kernels.dot(x, x, dim));

	for (int g = 0; g < meta->coarse_groups && !exact; g++)
		exact = !sv_norm2_safe(cache->coarse_norm2[g]);
	for (int l = 0; l < meta->lists && !exact; l++)
		exact = !sv_norm2_safe(cache->centroid_norm2[l]);

	/* the nearest groups (|g|^2 - 2 <x, g>: the same order as squared L2), kept sorted by insertion */
	for (int g = 0; g < meta->coarse_groups; g++)
	{
		const float *gc = cache->coarse + (Size) g * dim;
		double		d = exact ? sv_l2sq_double(x, gc, dim) :
			(double) (cache->coarse_norm2[g] - 2.0f * sv_kernels.dot(x, gc, dim));
		int			j;

		if (n == probes && d >= nearest_d[n - 1])
			continue;
		j = n < probes ? n++ : n - 1;
		while (j > 0 && nearest_d[j - 1] > d)
		{
			nearest_d[j] = nearest_d[j - 1];
			nearest[j] = nearest[j - 1];
			j--;
		}
		nearest_d[j] = d;
		nearest[j] = g;
	}
	for (int p = 0; p < n; p++)
		for (int k = cache->coarse_offsets[nearest[p]]; k < cache->coarse_offsets[nearest[p] + 1]; k++)
		{
			int			list = cache->coarse_lists[k];
			const float *c = (const float *) cache->centroids + (Size) list * dim;
			double		d = exact ? sv_l2sq_double(x, c, dim) :
				(double) (cache->centroid_norm2[list] - 2.0f * sv_kernels.dot(x, c, dim));

			if (d < bestd || (d == bestd && list < best))
			{
				bestd = d;
				best = list;
			}
		}
	return best;
}

/* One list's probe score and number, for ordering the lists. */
typedef struct SvProbe
{
	double		score;
	int			list;
} SvProbe;

/* qsort comparator: lower probe score first, then lower list number. */
static int
sv_probe_cmp(const void *a, const void *b)
{
	const SvProbe *x = a,
			   *y = b;

	if (x->score != y->score)
		return x->score < y->score ? -1 : 1;
	return x->list - y->list;
}

/* The lists in probe order into order[lists]: by score[list] ascending, then list number. */
void
sv_order_lists(const double *score, int lists, int *order)
{
	SvProbe    *probes = palloc(sizeof(SvProbe) * lists);

	for (int i = 0; i < lists; i++)
	{
		probes[i].score = score[i];
		probes[i].list = i;
	}
	qsort(probes, lists, sizeof(SvProbe), sv_probe_cmp);
	for (int i = 0; i < lists; i++)
		order[i] = probes[i].list;
	pfree(probes);
}
