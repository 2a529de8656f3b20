/*
 * index_util.c: pages, the cached meta data, and the encoding of entries of the shrinkvec index.
 */
#include "postgres.h"

#include <math.h>

#include "storage/indexfsm.h"
#include "utils/float.h"
#include "storage/lmgr.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/lsyscache.h"
#include "utils/builtins.h"
#include "utils/varbit.h"

#include "svindex.h"
#include "kernels/kernels.h"
#include "shrinkvec.h"

static void sv_coarse_point(SvIndexCache *cache, char *stream);
static void sv_coarse_norms(SvIndexCache *cache, MemoryContext cxt);

/* Initialise a page of the given kind with an empty contents area counted as used. */
void
sv_page_init(Page page, uint16 flags, uint32 list)
{
	SvPageOpaque *opaque;

	PageInit(page, BLCKSZ, sizeof(SvPageOpaque));
	opaque = SvPageGetOpaque(page);
	opaque->next = InvalidBlockNumber;
	opaque->list = list;
	opaque->count = 0;
	opaque->flags = flags;
	opaque->page_id = SV_PAGE_ID;
	if (flags == SV_PAGE_DATA)
	{
		BlockNumber *rblocks = sv_page_refine_blocks(page);

		for (int i = 0; i < SV_MAX_REFINE_PAGES; i++)
			rblocks[i] = InvalidBlockNumber;
	}
	/* the contents are arrays, not line pointers: all of it is data to GenericXLog */
	((PageHeader) page)->pd_lower = ((PageHeader) page)->pd_upper;
}

/* The codes array of a data page (blocked by meta->lanes). */
uint8 *
sv_page_codes(Page page, const SvMetaData *meta)
{
	return (uint8 *) page + SV_CODES_OFFSET;
}

/* The alpha array of a data page (vector opclasses). */
float *
sv_page_alpha(Page page, const SvMetaData *meta)
{
	return (float *) (sv_page_codes(page, meta) + (Size) meta->capacity * meta->code_bytes);
}

/* The r2 array of a data page (vector opclasses). */
float *
sv_page_r2(Page page, const SvMetaData *meta)
{
	return sv_page_alpha(page, meta) + meta->capacity;
}

/* The TID array of a data page. */
ItemPointerData *
sv_page_tids(Page page, const SvMetaData *meta)
{
	Size		off = (Size) meta->capacity * meta->code_bytes;

	if (meta->has_factors)
		off += (Size) meta->capacity * 2 * sizeof(float);
	return (ItemPointerData *) (sv_page_codes(page, meta) + off);
}

/* Copy entry i's code out of a data page. */
void
sv_page_get_code(Page page, const SvMetaData *meta, int i, uint8 *code)
{
	sv_fs_get(sv_page_codes(page, meta), meta->lanes, meta->code_bytes, i, code);
}

/* Entries per data page: a multiple of 32 in blocks of 32 when one block fits, else row-major. */
void
sv_page_capacity(int code_bytes, bool has_factors, int *capacity, int *lanes)
{
	Size		room = BLCKSZ - MAXALIGN(sizeof(SvPageOpaque)) - SV_CODES_OFFSET;
	Size		entry = code_bytes + sizeof(ItemPointerData) + (has_factors ? 2 * sizeof(float) : 0);
	int			n = (int) (room / entry);

	if (n >= SV_FS_LANES)
	{
		*capacity = n - n % SV_FS_LANES;
		*lanes = SV_FS_LANES;
	}
	else
	{
		*capacity = n;
		*lanes = 1;
	}
}

/*
 * Set meta's refine layout: bytes a code, entries a refine page and refine pages a data page.  A data
 * page's refine pages must fit in SV_MAX_REFINE_PAGES: when they do not, the data page holds fewer
 * entries (whole blocks of lanes).  Errors when one refine entry does not fit in a page.
 */
void
sv_refine_layout(SvMetaData *meta, int refine_bits)
{
	Size		room = BLCKSZ - MAXALIGN(sizeof(SvPageOpaque)) - SV_CODES_OFFSET;
	Size		entry;

	meta->refine_bits = refine_bits;
	if (refine_bits == 0)
	{
		meta->refine_bytes = meta->refine_capacity = meta->refine_pages = 0;
		return;
	}
	meta->refine_bytes = TYPEALIGN(8, ((Size) meta->code_bits * refine_bits + 7) / 8);
	entry = meta->refine_bytes + 3 * sizeof(float) + sizeof(ItemPointerData);
	if (entry > room)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("refine = %d codes of %d dimensions need %zu bytes an entry, more than a page holds (%zu)",
						refine_bits, meta->code_bits, entry, room),
				 errhint("Use fewer refine bits, or code a prefix with WITH (bits = ...).")));
	meta->refine_capacity = (int) (room / entry);
	if (meta->capacity > meta->refine_capacity * SV_MAX_REFINE_PAGES)
	{
		int			most = meta->refine_capacity * SV_MAX_REFINE_PAGES;

		meta->capacity = meta->lanes > 1 ? most - most % meta->lanes : most;
	}
	meta->refine_pages = (meta->capacity + meta->refine_capacity - 1) / meta->refine_capacity;
}

/* The refine page blocks of a data page: the start of its contents, before the codes. */
BlockNumber *
sv_page_refine_blocks(Page page)
{
	StaticAssertStmt(MAXALIGN(SizeOfPageHeaderData) + SV_MAX_REFINE_PAGES * sizeof(BlockNumber) <= SV_CODES_OFFSET,
					 "refine blocks must fit before the codes");
	return (BlockNumber *) PageGetContents(page);
}

/* The codes array of a refine page (row-major, refine_bytes each). */
uint8 *
sv_refine_codes(Page page, const SvMetaData *meta)
{
	return (uint8 *) page + SV_CODES_OFFSET;
}

/* The lo array of a refine page. */
float *
sv_refine_lo(Page page, const SvMetaData *meta)
{
	return (float *) (sv_refine_codes(page, meta) + (Size) meta->refine_capacity * meta->refine_bytes);
}

/* The step array of a refine page. */
float *
sv_refine_step(Page page, const SvMetaData *meta)
{
	return sv_refine_lo(page, meta) + meta->refine_capacity;
}

/* The norm2 array of a refine page. */
float *
sv_refine_norm2(Page page, const SvMetaData *meta)
{
	return sv_refine_step(page, meta) + meta->refine_capacity;
}

/* The TID array of a refine page. */
ItemPointerData *
sv_refine_tids(Page page, const SvMetaData *meta)
{
	return (ItemPointerData *) (sv_refine_norm2(page, meta) + meta->refine_capacity);
}

/*
 * Encode x against centroid c into a refine code.  The residual r = x - c is coded on a uniform grid of
 * 2^B values from lo to hi: the range of r, clipped to mean +- k sd of r (k = 1.5, 2.5, 4 for B = 2, 4,
 * 8: near the step of the best uniform quantizer of a Gaussian, so a few outlying dims do not coarsen
 * the grid of all the others); each dim is rounded to the nearest value (rint: ties to even, as numpy's
 * rint) and clipped, and packed most significant bits first.  The mean and sd are summed in double in
 * dim order, the rest is float arithmetic in the order of the numpy reference (codes.refine_code).
 */
void
sv_refine_encode(const SvMetaData *meta, const float *x, const float *c, SvRefine *out)
{
	int			dim = meta->code_bits;
	int			bits = meta->refine_bits;
	float		top = (float) ((1 << bits) - 1);
	double		k = bits == 2 ? 1.5 : bits == 4 ? 2.5 : 4.0;
	float		rmin = get_float4_infinity(),
				rmax = -get_float4_infinity(),
				lo,
				hi,
				step;
	double		sum = 0,
				sum2 = 0,
				norm2 = 0,
				mean,
				sd;

	for (int i = 0; i < dim; i++)
	{
		float		r = c ? x[i] - c[i] : x[i];

		rmin = Min(rmin, r);
		rmax = Max(rmax, r);
		sum += (double) r;
		norm2 += (double) x[i] * x[i];
	}
	mean = sum / dim;
	for (int i = 0; i < dim; i++)
	{
		double		d = (double) (c ? x[i] - c[i] : x[i]) - mean;

		sum2 += d * d;
	}
	sd = sqrt(sum2 / dim);
	lo = (float) Max((double) rmin, mean - k * sd);
	hi = (float) Min((double) rmax, mean + k * sd);
	step = (hi - lo) / top;
	memset(out->code, 0, meta->refine_bytes);
	if (step > 0)
		for (int i = 0; i < dim; i++)
		{
			float		r = c ? x[i] - c[i] : x[i];
			float		t = rintf((r - lo) / step);
			uint32		u = t <= 0 ? 0 : t >= top ? (uint32) top : (uint32) t;
			int			bit = i * bits;

			out->code[bit / 8] |= (uint8) (u << (8 - bits - bit % 8));
		}
	out->lo = lo;
	out->step = step > 0 ? step : 0;
	out->norm2 = (float) norm2;
}

/* Write a refine entry into slot i of a refine page. */
void
sv_refine_put(Page page, const SvMetaData *meta, int i, const SvRefine *r, ItemPointer tid)
{
	memcpy(sv_refine_codes(page, meta) + (Size) i * meta->refine_bytes, r->code, meta->refine_bytes);
	sv_refine_lo(page, meta)[i] = r->lo;
	sv_refine_step(page, meta)[i] = r->step;
	sv_refine_norm2(page, meta)[i] = r->norm2;
	sv_refine_tids(page, meta)[i] = *tid;
}

/* Copy refine slot src of page from to slot dst of page to. */
void
sv_refine_copy(Page to, int dst, Page from, int src, const SvMetaData *meta)
{
	memmove(sv_refine_codes(to, meta) + (Size) dst * meta->refine_bytes,
			sv_refine_codes(from, meta) + (Size) src * meta->refine_bytes, meta->refine_bytes);
	sv_refine_lo(to, meta)[dst] = sv_refine_lo(from, meta)[src];
	sv_refine_step(to, meta)[dst] = sv_refine_step(from, meta)[src];
	sv_refine_norm2(to, meta)[dst] = sv_refine_norm2(from, meta)[src];
	sv_refine_tids(to, meta)[dst] = sv_refine_tids(from, meta)[src];
}

/* Copy n bytes from a stream of pages starting at block start into dst. */
static void
sv_read_stream(Relation index, BlockNumber start, char *dst, Size n)
{
	BlockNumber blk = start;

	while (n > 0)
	{
		Buffer		buf = ReadBuffer(index, blk);
		Size		chunk = Min(n, SV_PAGE_CONTENT_SIZE);

		LockBuffer(buf, BUFFER_LOCK_SHARE);
		memcpy(dst, PageGetContents(BufferGetPage(buf)), chunk);
		UnlockReleaseBuffer(buf);
		dst += chunk;
		n -= chunk;
		blk++;
	}
}

/* The index's meta page and centroids, read once and cached in rd_amcache. */
SvIndexCache *
sv_index_cache(Relation index)
{
	SvIndexCache *cache;
	Buffer		buf;
	MemoryContext old;

	if (index->rd_amcache != NULL)
		return (SvIndexCache *) index->rd_amcache;

	old = MemoryContextSwitchTo(index->rd_indexcxt);
	cache = palloc0(sizeof(SvIndexCache));
	buf = ReadBuffer(index, SV_META_BLKNO);
	LockBuffer(buf, BUFFER_LOCK_SHARE);
	memcpy(&cache->meta, SvPageGetMeta(BufferGetPage(buf)), sizeof(SvMetaData));
	UnlockReleaseBuffer(buf);

	if (cache->meta.magic != SV_INDEX_MAGIC)
		ereport(ERROR,
				(errcode(ERRCODE_INDEX_CORRUPTED),
				 errmsg("index \"%s\" is not a shrinkvec index", RelationGetRelationName(index)),
				 errhint("REINDEX INDEX %s to rebuild it.",
						 quote_qualified_identifier(get_namespace_name(RelationGetNamespace(index)),
													RelationGetRelationName(index)))));
	if (cache->meta.version != SV_INDEX_VERSION)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("index \"%s\" has shrinkvec index format version %u, this shrinkvec reads version %d",
						RelationGetRelationName(index), cache->meta.version, SV_INDEX_VERSION),
				 errdetail("Version 2 stores codes in blocks of 32 for the SIMD scan."),
				 errhint("REINDEX INDEX %s to rebuild it in the current format.",
						 quote_qualified_identifier(get_namespace_name(RelationGetNamespace(index)),
													RelationGetRelationName(index)))));

	if (cache->meta.centroid_bytes > 0)
	{
		Size		total = (Size) cache->meta.lists * cache->meta.centroid_bytes;

		cache->centroids = MemoryContextAllocHuge(index->rd_indexcxt, total);
		sv_read_stream(index, cache->meta.centroid_start, cache->centroids, total);
		if (cache->meta.elemtype != SV_ELEM_BIT)
		{
			int			dim = cache->meta.code_bits;

			cache->centroid_norm2 = palloc(sizeof(float) * cache->meta.lists);
			for (int i = 0; i < cache->meta.lists; i++)
			{
				const float *c = (const float *) cache->centroids + (Size) i * dim;

				cache->centroid_norm2[i] = sv_kernels.dot(c, c, dim);
			}
		}
	}
	if (cache->meta.coarse_groups > 0)
	{
		char	   *stream = MemoryContextAllocHuge(index->rd_indexcxt, sv_coarse_bytes(&cache->meta));

		sv_read_stream(index, cache->meta.coarse_start, stream, sv_coarse_bytes(&cache->meta));
		sv_coarse_point(cache, stream);
		sv_coarse_norms(cache, index->rd_indexcxt);
	}
	MemoryContextSwitchTo(old);
	index->rd_amcache = cache;
	return cache;
}

/* Read list i's directory entry. */
SvListEntry
sv_read_list(Relation index, const SvMetaData *meta, int list)
{
	int			per_page = SV_PAGE_CONTENT_SIZE / sizeof(SvListEntry);
	Buffer		buf = ReadBuffer(index, meta->directory_start + list / per_page);
	SvListEntry entry;

	LockBuffer(buf, BUFFER_LOCK_SHARE);
	entry = ((SvListEntry *) PageGetContents(BufferGetPage(buf)))[list % per_page];
	UnlockReleaseBuffer(buf);
	return entry;
}

/* A new, exclusively locked buffer at the end of the index (or a recycled free page). */
Buffer
sv_new_buffer(Relation index, ForkNumber fork)
{
	Buffer		buf;

	if (fork == MAIN_FORKNUM)
	{
		for (;;)
		{
			BlockNumber blk = GetFreeIndexPage(index);

			if (blk == InvalidBlockNumber)
				break;
			buf = ReadBuffer(index, blk);
			/* someone may have taken it since the FSM said it was free */
			if (ConditionalLockBuffer(buf))
			{
				if (PageIsNew(BufferGetPage(buf)))
					return buf;
				LockBuffer(buf, BUFFER_LOCK_UNLOCK);
			}
			ReleaseBuffer(buf);
		}
	}
	LockRelationForExtension(index, ExclusiveLock);
	buf = ReadBufferExtended(index, fork, P_NEW, RBM_NORMAL, NULL);
	LockBuffer(buf, BUFFER_LOCK_EXCLUSIVE);
	UnlockRelationForExtension(index, ExclusiveLock);
	return buf;
}

/* The opclass's distance kind, from support function 1. */
int
sv_index_kind(Relation index)
{
	FmgrInfo   *proc = index_getprocinfo(index, 1, SV_KIND_PROC);

	return DatumGetInt32(FunctionCall1(proc, PointerGetDatum(NULL)));
}

/*
 * The indexed element type (bit, vector or halfvec), from support function 2 of the opclass: the
 * opclass says what it indexes, so no type is recognised by its name (a type called vector in another
 * schema is not pgvector's).
 */
int
sv_index_elemtype(Relation index)
{
	const SvTypeInfo *info;

	if (!OidIsValid(index_getprocid(index, 1, SV_TYPE_PROC)))
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("operator class of index \"%s\" has no support function %d (the indexed type)",
						RelationGetRelationName(index), SV_TYPE_PROC),
				 errhint("Run ALTER EXTENSION shrinkvec UPDATE.")));
	info = (const SvTypeInfo *) DatumGetPointer(FunctionCall1(index_getprocinfo(index, 1, SV_TYPE_PROC),
															   PointerGetDatum(NULL)));
	return info->elemtype;
}

/*
 * The coded part of an indexed datum as floats: the first code_bits dims, normalised over all
 * dims for cosine.  Returns false for a zero vector under cosine (x is then zero).  *unknown (when
 * not NULL) is set for a cosine row whose squared norm float cannot hold (below SV_TINY_NORM2 but not
 * zero, or above SV_SAFE_NORM2): pgvector's cosine distance of such a row is not its direction's (its
 * float norm underflows or overflows), so its entry gets an unknown estimate (sv_mark_unknown).
 */
bool
sv_datum_to_floats(Datum value, int elemtype, int kind, int dims, int code_bits, float *x, bool *unknown)
{
	int			n;
	bool		ok = true;

	if (unknown)
		*unknown = false;

	if (elemtype == SV_ELEM_VECTOR)
	{
		SvVector   *v = sv_check_vector((SvVector *) PG_DETOAST_DATUM(value));

		n = v->dim;
		if (n != dims)
			ereport(ERROR,
					(errcode(ERRCODE_DATA_EXCEPTION),
					 errmsg("expected %d dimensions, not %d", dims, n)));
		if (kind == SV_KIND_COSINE)
		{
			float		norm = sqrtf(sv_kernels.dot(v->x, v->x, n));
			double		n2 = 0;

			for (int i = 0; i < n; i++)
				n2 += (double) v->x[i] * v->x[i];
			if (n2 > 0 && (n2 < SV_TINY_NORM2 || n2 > SV_SAFE_NORM2))
			{
				/* the direction, from the norm in double; the estimate is marked unknown */
				double		dn = sqrt(n2);

				for (int i = 0; i < code_bits; i++)
					x[i] = (float) (v->x[i] / dn);
				if (unknown)
					*unknown = true;
			}
			else if (norm > 0 && isfinite(norm))
				for (int i = 0; i < code_bits; i++)
					x[i] = v->x[i] / norm;
			else
			{
				memset(x, 0, sizeof(float) * code_bits);
				ok = false;
			}
		}
		else
			memcpy(x, v->x, sizeof(float) * code_bits);
		if ((Pointer) v != DatumGetPointer(value))
			pfree(v);
	}
	else
	{
		SvHalfVec  *v = sv_check_halfvec((SvHalfVec *) PG_DETOAST_DATUM(value));
		double		norm2 = 0;

		n = v->dim;
		if (n != dims)
			ereport(ERROR,
					(errcode(ERRCODE_DATA_EXCEPTION),
					 errmsg("expected %d dimensions, not %d", dims, n)));
		for (int i = 0; i < code_bits; i++)
			x[i] = sv_half_to_float(v->x[i]);
		if (kind == SV_KIND_COSINE)
		{
			float		norm;

			for (int i = 0; i < n; i++)
			{
				float		f = sv_half_to_float(v->x[i]);

				norm2 += (double) f * f;
			}
			norm = (float) sqrt(norm2);
			if (norm > 0 && isfinite(norm))
				for (int i = 0; i < code_bits; i++)
					x[i] /= norm;
			else
			{
				memset(x, 0, sizeof(float) * code_bits);
				ok = false;
			}
		}
		if ((Pointer) v != DatumGetPointer(value))
			pfree(v);
	}
	return ok;
}

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
 * The nearest of k centroids to each of n points (see index.h).  Every out[i] is written, whatever the
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

/* Encode x against centroid c (NULL = zero): sign bits of x - c, alpha and r2. */
void
sv_encode(const SvMetaData *meta, const float *x, const float *c, uint8 *code, float *alpha, float *r2)
{
	int			dim = meta->code_bits;
	double		abs_sum = 0,
				sq_sum = 0;

	memset(code, 0, meta->code_bytes);
	for (int i = 0; i < dim; i++)
	{
		float		r = c ? x[i] - c[i] : x[i];
		double		rd = r;

		if (r > 0)
			code[i / 8] |= (uint8) (0x80 >> (i % 8));
		/* a difference of finite floats that overflows float is finite in double */
		if (unlikely(isinf(r)))
			rd = (double) x[i] - (double) c[i];
		abs_sum += fabs(rd);
		sq_sum += rd * rd;
	}
	*alpha = (float) (abs_sum / dim);
	*r2 = (float) sq_sum;
}

/* Mark an encoded entry's estimate unknown (index.h): an infinite alpha, and norm2 of its refine code. */
void
sv_mark_unknown(float *alpha, SvRefine *refine)
{
	*alpha = INFINITY;
	if (refine)
		refine->norm2 = INFINITY;
}

/* Encode a bit datum: the first code_bits bits, zero-padded; errors on a wrong length. */
void
sv_encode_bits(const SvMetaData *meta, Datum value, uint8 *code)
{
	VarBit	   *b = sv_check_varbit(DatumGetVarBitP(value));

	if (VARBITLEN(b) != meta->code_bits)
		ereport(ERROR,
				(errcode(ERRCODE_STRING_DATA_LENGTH_MISMATCH),
				 errmsg("expected %d bits, not %d", meta->code_bits, VARBITLEN(b))));
	memset(code, 0, meta->code_bytes);
	memcpy(code, VARBITS(b), VARBITBYTES(b));
	if ((Pointer) b != DatumGetPointer(value))
		pfree(b);
}

/* Write entry slot i of a data page. */
static void
sv_page_put(Page page, const SvMetaData *meta, int i, const uint8 *code, float alpha, float r2, ItemPointer tid)
{
	sv_fs_put(sv_page_codes(page, meta), meta->lanes, meta->code_bytes, i, code);
	if (meta->has_factors)
	{
		sv_page_alpha(page, meta)[i] = alpha;
		sv_page_r2(page, meta)[i] = r2;
	}
	sv_page_tids(page, meta)[i] = *tid;
}

/* Point list's directory entry at a new insert page (WAL-logged; caller holds no directory lock). */
void
sv_set_insert_page(Relation index, const SvMetaData *meta, int list, BlockNumber blk)
{
	int			per_page = SV_PAGE_CONTENT_SIZE / sizeof(SvListEntry);
	Buffer		buf = ReadBuffer(index, meta->directory_start + list / per_page);
	GenericXLogState *state;
	SvListEntry *entry;

	LockBuffer(buf, BUFFER_LOCK_EXCLUSIVE);
	state = GenericXLogStart(index);
	entry = &((SvListEntry *) PageGetContents(GenericXLogRegisterBuffer(state, buf, 0)))[list % per_page];
	entry->insert = blk;
	GenericXLogFinish(state);
	UnlockReleaseBuffer(buf);
}

/*
 * The refine page for slot i of a data page being changed under state, exclusively locked and registered
 * with state: the data page's existing refine page, or a new one it now points to.
 */
static Page
sv_refine_page_for(Relation index, const SvMetaData *meta, GenericXLogState *state, Page data, int i,
				   Buffer *rbuf)
{
	BlockNumber *rblocks = sv_page_refine_blocks(data);
	int			r = i / meta->refine_capacity;
	Page		rpage;

	if (rblocks[r] != InvalidBlockNumber)
	{
		*rbuf = ReadBuffer(index, rblocks[r]);
		LockBuffer(*rbuf, BUFFER_LOCK_EXCLUSIVE);
		return GenericXLogRegisterBuffer(state, *rbuf, 0);
	}
	*rbuf = sv_new_buffer(index, MAIN_FORKNUM);
	rpage = GenericXLogRegisterBuffer(state, *rbuf, GENERIC_XLOG_FULL_IMAGE);
	sv_page_init(rpage, SV_PAGE_REFINE, SvPageGetOpaque(data)->list);
	rblocks[r] = BufferGetBlockNumber(*rbuf);
	return rpage;
}

/* Write entry slot i of a data page being changed under state, and its refine entry if the index has them. */
static void
sv_put_entry(Relation index, const SvMetaData *meta, GenericXLogState *state, Page page, int i,
			 const uint8 *code, float alpha, float r2, const SvRefine *refine, ItemPointer tid, Buffer *rbuf)
{
	sv_page_put(page, meta, i, code, alpha, r2, tid);
	*rbuf = InvalidBuffer;
	if (meta->refine_bits > 0)
	{
		Page		rpage = sv_refine_page_for(index, meta, state, page, i, rbuf);

		sv_refine_put(rpage, meta, i % meta->refine_capacity, refine, tid);
	}
}

/*
 * Add one entry to list's chain.  Starts at the list's insert page and walks the chain to the
 * first page with room; at the end of the chain it links a new page.  Lock order: data pages, then
 * refine pages, then the directory page; nothing holds a directory lock while waiting for a data page.
 * The data page, its refine page and a new page go into one WAL record.
 */
void
sv_insert_entry(Relation index, const SvIndexCache *cache, int list, const uint8 *code,
				float alpha, float r2, const SvRefine *refine, ItemPointer tid)
{
	const SvMetaData *meta = &cache->meta;
	SvListEntry entry = sv_read_list(index, meta, list);
	BlockNumber blk = entry.insert;
	bool		moved = false;

	for (;;)
	{
		Buffer		buf = ReadBuffer(index, blk);
		Buffer		rbuf;
		Page		page;
		SvPageOpaque *opaque;
		GenericXLogState *state;

		LockBuffer(buf, BUFFER_LOCK_EXCLUSIVE);
		page = BufferGetPage(buf);
		opaque = SvPageGetOpaque(page);
		if (opaque->count < meta->capacity)
		{
			state = GenericXLogStart(index);
			page = GenericXLogRegisterBuffer(state, buf, 0);
			opaque = SvPageGetOpaque(page);
			sv_put_entry(index, meta, state, page, opaque->count, code, alpha, r2, refine, tid, &rbuf);
			opaque->count++;
			GenericXLogFinish(state);
			if (BufferIsValid(rbuf))
				UnlockReleaseBuffer(rbuf);
			UnlockReleaseBuffer(buf);
			if (moved)
				sv_set_insert_page(index, meta, list, blk);
			return;
		}
		if (opaque->next != InvalidBlockNumber)
		{
			blk = opaque->next;
			moved = true;
			UnlockReleaseBuffer(buf);
			continue;
		}
		else
		{
			/* the end of a full chain: link a new page holding the entry */
			Buffer		newbuf = sv_new_buffer(index, MAIN_FORKNUM);
			Page		newpage;

			state = GenericXLogStart(index);
			page = GenericXLogRegisterBuffer(state, buf, 0);
			newpage = GenericXLogRegisterBuffer(state, newbuf, GENERIC_XLOG_FULL_IMAGE);
			sv_page_init(newpage, SV_PAGE_DATA, list);
			sv_put_entry(index, meta, state, newpage, 0, code, alpha, r2, refine, tid, &rbuf);
			SvPageGetOpaque(newpage)->count = 1;
			SvPageGetOpaque(page)->next = BufferGetBlockNumber(newbuf);
			blk = BufferGetBlockNumber(newbuf);
			GenericXLogFinish(state);
			if (BufferIsValid(rbuf))
				UnlockReleaseBuffer(rbuf);
			UnlockReleaseBuffer(newbuf);
			UnlockReleaseBuffer(buf);
			sv_set_insert_page(index, meta, list, blk);
			return;
		}
	}
}
