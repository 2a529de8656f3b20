/*
 * index_build.c: CREATE INDEX for the shrinkvec access method.
 *
 * One heap pass samples rows (reservoir, fixed seed) for the centroids, then a second pass encodes
 * every row and appends it to its list.  Each list fills one page in memory at a time; a full page
 * is written to a block reserved for it when the previous page of the list was written, so every
 * chain is linked first to last without rewriting pages.
 */
#include "postgres.h"

#include <math.h>

#include "access/parallel.h"
#include "access/table.h"
#include "access/tableam.h"
#include "access/xact.h"
#include "catalog/index.h"
#include "common/pg_prng.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "storage/shm_mq.h"
#include "storage/shm_toc.h"
#include "storage/spin.h"
#include "utils/snapmgr.h"
#include "optimizer/plancat.h"
#include "utils/lsyscache.h"
#include "utils/builtins.h"
#include "utils/memutils.h"
#include "utils/rel.h"

#include "svindex.h"
#include "kernels/kernels.h"
#include "shrinkvec.h"

#define SV_BUILD_BATCH 256

/* State of a build. */
typedef struct SvBuildState
{
	Relation	index;
	SvMetaData	meta;
	SvIndexCache cache;			/* meta and centroids, as scans will see them */
	MemoryContext tmpcxt;		/* reset for every row */
	uint8	   *code;			/* code_bytes */

	/* sampling pass */
	int			sample_target;
	int			nsample;
	int64		seen;
	char	   *sample;			/* sample_target items of item_bytes */
	int			item_bytes;
	pg_prng_state prng;

	/* loading pass */
	Page	   *pages;			/* one in-memory page per list */
	BlockNumber *blocks;		/* the block reserved for each list's in-memory page */
	BlockNumber *first;			/* first block of each list */
	int64		indexed;

	/* refine codes: one in-memory refine page per list, for its in-memory data page */
	Page	   *rpages;
	BlockNumber *rblocks;		/* the block reserved for each list's in-memory refine page */
	SvRefine	refine;

	/* vector rows waiting for their lists, assigned a block at a time */
	shm_mq_handle *out;			/* a parallel worker: entries go to the leader instead of pages */
	shm_mq_handle **in;			/* the leader of a parallel build: the workers' queues */
	bool	   *in_done;
	int			nin;
	int			nin_active;
	char	   *msg;			/* a worker's message: SV_BUILD_BATCH encoded entries */
	float	   *pending_x;		/* SV_BUILD_BATCH * code_bits */
	ItemPointerData pending_tid[SV_BUILD_BATCH];
	int			pending_list[SV_BUILD_BATCH];
	bool		pending_unknown[SV_BUILD_BATCH];	/* sv_datum_to_floats: the estimate is unknown */
	int			npending;
} SvBuildState;

/* Reserve the next block of the index for a page written later. */
static BlockNumber
sv_reserve_block(Relation index, ForkNumber fork)
{
	Buffer		buf = sv_new_buffer(index, fork);
	BlockNumber blk = BufferGetBlockNumber(buf);

	UnlockReleaseBuffer(buf);
	return blk;
}

/* Write a page image to block blk of fork (WAL-logged as a full image). */
static void
sv_write_page(Relation index, ForkNumber fork, BlockNumber blk, Page image)
{
	Buffer		buf = ReadBufferExtended(index, fork, blk, RBM_NORMAL, NULL);
	GenericXLogState *state;
	Page		page;

	LockBuffer(buf, BUFFER_LOCK_EXCLUSIVE);
	state = GenericXLogStart(index);
	page = GenericXLogRegisterBuffer(state, buf, GENERIC_XLOG_FULL_IMAGE);
	memcpy(page, image, BLCKSZ);
	GenericXLogFinish(state);
	UnlockReleaseBuffer(buf);
}

/* Write n bytes as a stream of pages of the given kind; returns the first block. */
static BlockNumber
sv_write_stream(Relation index, ForkNumber fork, const char *src, Size n, uint16 flags, int *npages)
{
	PGAlignedBlock image;
	BlockNumber first = InvalidBlockNumber;

	*npages = 0;
	while (n > 0)
	{
		Size		chunk = Min(n, SV_PAGE_CONTENT_SIZE);
		BlockNumber blk = sv_reserve_block(index, fork);

		if (first == InvalidBlockNumber)
			first = blk;
		sv_page_init(image.data, flags, 0);
		memcpy(PageGetContents(image.data), src, chunk);
		sv_write_page(index, fork, blk, image.data);
		src += chunk;
		n -= chunk;
		(*npages)++;
	}
	return first;
}

/* Fill meta from the index definition and its options; errors on unsupported definitions. */
static void
sv_build_meta(Relation index, SvMetaData *meta)
{
	Form_pg_attribute att = TupleDescAttr(RelationGetDescr(index), 0);
	SvOptions  *opts = (SvOptions *) index->rd_options;
	int			lists = opts ? opts->lists : 0;
	int			bits = opts ? opts->bits : 0;
	int			refine = opts ? opts->refine : 0;

	memset(meta, 0, sizeof(SvMetaData));
	meta->magic = SV_INDEX_MAGIC;
	meta->version = SV_INDEX_VERSION;
	meta->kind = sv_index_kind(index);
	meta->elemtype = sv_index_elemtype(index);
	meta->dims = att->atttypmod;
	if (meta->dims <= 0)
	{
		/* a domain carries the length of its base type: bit(16), vector(384) */
		int32		typmod = -1;

		(void) getBaseTypeAndTypmod(att->atttypid, &typmod);
		meta->dims = typmod;
	}
	if (meta->dims <= 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("column does not have dimensions"),
				 errhint("Declare the column (or cast the expression) with a length, e.g. vector(384) or bit(384).")));
	if (meta->elemtype == SV_ELEM_BIT)
	{
		if (bits != 0)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("option bits applies to vector and halfvec columns, not bit"),
					 errhint("Index a shorter cast of the column, e.g. (substring(bits from 1 for 256)::bit(256)).")));
		meta->code_bits = meta->dims;
	}
	else
	{
		if (bits > meta->dims)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("bits = %d exceeds the column's %d dimensions", bits, meta->dims)));
		meta->code_bits = bits > 0 ? bits : meta->dims;
	}
	if (meta->code_bits > SV_INDEX_MAX_BITS)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("column cannot have more than %d %s for a shrinkvec index, it has %d",
						SV_INDEX_MAX_BITS, meta->elemtype == SV_ELEM_BIT ? "bits" : "coded dimensions",
						meta->code_bits),
				 meta->elemtype == SV_ELEM_BIT ? 0 : errhint("Code a prefix with WITH (bits = ...).")));
	meta->code_bytes = TYPEALIGN(8, (meta->code_bits + 7) / 8);
	meta->has_factors = meta->elemtype != SV_ELEM_BIT;
	sv_page_capacity(meta->code_bytes, meta->has_factors, &meta->capacity, &meta->lanes);
	if (refine != 0 && refine != 2 && refine != 4 && refine != 8)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("refine must be 0, 2, 4 or 8 bits per dimension, not %d", refine)));
	if (refine != 0 && meta->elemtype == SV_ELEM_BIT)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("option refine applies to vector and halfvec columns, not bit")));
	sv_refine_layout(meta, refine);
	meta->lists = Max(lists, 1);
	if (meta->elemtype == SV_ELEM_BIT)
		meta->centroid_bytes = meta->lists > 1 ? meta->code_bytes : 0;
	else
		meta->centroid_bytes = meta->code_bits * sizeof(float);
}

/* Reservoir-sample one row's coded part. */
static void
sv_sample_callback(Relation index, ItemPointer tid, Datum *values, bool *isnull, bool alive, void *arg)
{
	SvBuildState *bs = (SvBuildState *) arg;
	MemoryContext old;
	int			slot;

	if (isnull[0])
		return;
	bs->seen++;
	if (bs->nsample < bs->sample_target)
		slot = bs->nsample++;
	else
	{
		uint64		r = pg_prng_uint64_range(&bs->prng, 0, bs->seen - 1);

		if (r >= (uint64) bs->sample_target)
			return;
		slot = (int) r;
	}
	old = MemoryContextSwitchTo(bs->tmpcxt);
	if (bs->meta.elemtype == SV_ELEM_BIT)
		sv_encode_bits(&bs->meta, values[0], (uint8 *) bs->sample + (Size) slot * bs->item_bytes);
	else
		sv_datum_to_floats(values[0], bs->meta.elemtype, bs->meta.kind, bs->meta.dims, bs->meta.code_bits,
						   (float *) (bs->sample + (Size) slot * bs->item_bytes), NULL);
	MemoryContextSwitchTo(old);
	MemoryContextReset(bs->tmpcxt);
}

/* Learn the centroids from the sample (the mean for a flat vector index). */
static void
sv_learn_centroids(SvBuildState *bs)
{
	SvMetaData *meta = &bs->meta;
	Size		total = (Size) meta->lists * meta->centroid_bytes;

	if (total == 0)
		return;
	bs->cache.centroids = MemoryContextAllocHuge(CurrentMemoryContext, total);
	memset(bs->cache.centroids, 0, total);
	if (bs->nsample == 0)
		return;					/* an empty table: zero centroids */
	if (meta->elemtype == SV_ELEM_BIT)
		sv_kmeans_bits((uint8 *) bs->sample, bs->nsample, meta->code_bytes, meta->code_bits, meta->lists,
					   (uint8 *) bs->cache.centroids);
	else if (meta->lists == 1)
	{
		float	   *c = (float *) bs->cache.centroids;
		double	   *sum = palloc0(sizeof(double) * meta->code_bits);
		int			used = 0;

		/*
		 * The mean of the rows whose squared norm stays within SV_SAFE_NORM2 (all of them, unless some
		 * hold values above ~1e18): one row at 3e38 would otherwise move the mean of every other row
		 * so far that their residuals overflow float.  If every row is that large, the mean of all.
		 */
		for (int pass = 0; pass < 2 && used == 0; pass++)
			for (int i = 0; i < bs->nsample; i++)
			{
				const float *x = (const float *) (bs->sample + (Size) i * bs->item_bytes);

				if (pass == 0 && !(sv_kernels.dot(x, x, meta->code_bits) <= SV_SAFE_NORM2))
					continue;
				for (int d = 0; d < meta->code_bits; d++)
					sum[d] += x[d];
				used++;
			}
		for (int d = 0; d < meta->code_bits; d++)
			c[d] = (float) (sum[d] / used);
		pfree(sum);
	}
	else
		sv_kmeans_float((const float *) bs->sample, bs->nsample, meta->code_bits, meta->lists,
						(float *) bs->cache.centroids);
	if (meta->elemtype != SV_ELEM_BIT)
	{
		bs->cache.centroid_norm2 = palloc(sizeof(float) * meta->lists);
		for (int i = 0; i < meta->lists; i++)
		{
			const float *c = (const float *) bs->cache.centroids + (Size) i * meta->code_bits;

			bs->cache.centroid_norm2[i] = sv_kernels.dot(c, c, meta->code_bits);
		}
		if (meta->lists >= SV_COARSE_MIN_LISTS)
		{
			meta->coarse_groups = (int) ceil(sqrt((double) meta->lists));
			bs->cache.meta = *meta;
			sv_coarse_build(&bs->cache);
		}
	}
}

/* Write list's in-memory refine page out, if it holds entries. */
static void
sv_build_flush_refine(SvBuildState *bs, ForkNumber fork, int list)
{
	if (bs->rblocks[list] != InvalidBlockNumber)
		sv_write_page(bs->index, fork, bs->rblocks[list], bs->rpages[list]);
	bs->rblocks[list] = InvalidBlockNumber;
}

/* Put bs->refine into the refine slot of entry i of list's in-memory data page (a new refine page as needed). */
static void
sv_build_put_refine(SvBuildState *bs, ForkNumber fork, int list, int i, ItemPointer tid)
{
	SvMetaData *meta = &bs->meta;

	if (i % meta->refine_capacity == 0)
	{
		sv_build_flush_refine(bs, fork, list);
		bs->rblocks[list] = sv_reserve_block(bs->index, fork);
		sv_page_refine_blocks(bs->pages[list])[i / meta->refine_capacity] = bs->rblocks[list];
		sv_page_init(bs->rpages[list], SV_PAGE_REFINE, list);
	}
	sv_refine_put(bs->rpages[list], meta, i % meta->refine_capacity, &bs->refine, tid);
}

/* Append an encoded entry to list's in-memory page, writing the page out when it is full. */
static void
sv_build_append(SvBuildState *bs, ForkNumber fork, int list, float alpha, float r2, ItemPointer tid)
{
	SvMetaData *meta = &bs->meta;
	Page		page = bs->pages[list];
	SvPageOpaque *opaque = SvPageGetOpaque(page);
	int			i = opaque->count;

	if (i == meta->capacity)
	{
		BlockNumber next = sv_reserve_block(bs->index, fork);

		if (meta->refine_bits > 0)
			sv_build_flush_refine(bs, fork, list);
		opaque->next = next;
		sv_write_page(bs->index, fork, bs->blocks[list], page);
		sv_page_init(page, SV_PAGE_DATA, list);
		bs->blocks[list] = next;
		opaque = SvPageGetOpaque(page);
		i = 0;
	}
	if (meta->refine_bits > 0)
		sv_build_put_refine(bs, fork, list, i, tid);
	sv_fs_put(sv_page_codes(page, meta), meta->lanes, meta->code_bytes, i, bs->code);
	if (meta->has_factors)
	{
		sv_page_alpha(page, meta)[i] = alpha;
		sv_page_r2(page, meta)[i] = r2;
	}
	sv_page_tids(page, meta)[i] = *tid;
	opaque->count = i + 1;
	bs->indexed++;
}

/*
 * An encoded entry as a parallel worker sends it to the leader: list, TID, alpha, r2, code, then (with
 * refine codes) lo, step, norm2 and the refine code.
 */
static Size
sv_entry_bytes(const SvMetaData *meta)
{
	Size		n = sizeof(int32) + sizeof(ItemPointerData) + 2 * sizeof(float) + meta->code_bytes;

	if (meta->refine_bits > 0)
		n += 3 * sizeof(float) + meta->refine_bytes;
	return MAXALIGN(n);
}

/* Write the entry just encoded (bs->code, bs->refine) at dst. */
static void
sv_entry_pack(SvBuildState *bs, char *dst, int list, float alpha, float r2, ItemPointer tid)
{
	const SvMetaData *meta = &bs->meta;
	int32		l = list;

	memcpy(dst, &l, sizeof(int32));
	dst += sizeof(int32);
	memcpy(dst, tid, sizeof(ItemPointerData));
	dst += sizeof(ItemPointerData);
	memcpy(dst, &alpha, sizeof(float));
	memcpy(dst + sizeof(float), &r2, sizeof(float));
	dst += 2 * sizeof(float);
	memcpy(dst, bs->code, meta->code_bytes);
	dst += meta->code_bytes;
	if (meta->refine_bits > 0)
	{
		memcpy(dst, &bs->refine.lo, sizeof(float));
		memcpy(dst + sizeof(float), &bs->refine.step, sizeof(float));
		memcpy(dst + 2 * sizeof(float), &bs->refine.norm2, sizeof(float));
		memcpy(dst + 3 * sizeof(float), bs->refine.code, meta->refine_bytes);
	}
}

/* Read an entry a worker sent into bs->code and bs->refine, and append it to its list. */
static void
sv_entry_unpack_append(SvBuildState *bs, const char *src)
{
	const SvMetaData *meta = &bs->meta;
	int32		list;
	ItemPointerData tid;
	float		alpha,
				r2;

	memcpy(&list, src, sizeof(int32));
	src += sizeof(int32);
	memcpy(&tid, src, sizeof(ItemPointerData));
	src += sizeof(ItemPointerData);
	memcpy(&alpha, src, sizeof(float));
	memcpy(&r2, src + sizeof(float), sizeof(float));
	src += 2 * sizeof(float);
	memcpy(bs->code, src, meta->code_bytes);
	src += meta->code_bytes;
	if (meta->refine_bits > 0)
	{
		memcpy(&bs->refine.lo, src, sizeof(float));
		memcpy(&bs->refine.step, src + sizeof(float), sizeof(float));
		memcpy(&bs->refine.norm2, src + 2 * sizeof(float), sizeof(float));
		memcpy(bs->refine.code, src + 3 * sizeof(float), meta->refine_bytes);
	}
	if (list < 0 || list >= meta->lists)
		elog(ERROR, "shrinkvec parallel build: entry of list %d, the index has %d", list, meta->lists);
	sv_build_append(bs, MAIN_FORKNUM, list, alpha, r2, &tid);
}

/*
 * The leader of a parallel build: append the entries waiting in the workers' queues; with wait, until
 * every worker has finished.
 */
static void
sv_drain_queues(SvBuildState *bs, bool wait)
{
	Size		entry = sv_entry_bytes(&bs->meta);

	while (bs->nin_active > 0)
	{
		bool		progress = false;

		for (int i = 0; i < bs->nin; i++)
		{
			Size		nbytes;
			void	   *data;
			shm_mq_result r;

			if (bs->in_done[i])
				continue;
			r = shm_mq_receive(bs->in[i], &nbytes, &data, true);
			if (r == SHM_MQ_SUCCESS)
			{
				for (Size off = 0; off + entry <= nbytes; off += entry)
					sv_entry_unpack_append(bs, (const char *) data + off);
				progress = true;
			}
			else if (r == SHM_MQ_DETACHED)
			{
				bs->in_done[i] = true;
				bs->nin_active--;
				progress = true;
			}
		}
		if (!wait)
			return;
		if (!progress)
		{
			(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_EXIT_ON_PM_DEATH, -1, WAIT_EVENT_MESSAGE_QUEUE_RECEIVE);
			ResetLatch(MyLatch);
		}
		CHECK_FOR_INTERRUPTS();
	}
}

/* Assign the pending vector rows to their lists together, then encode and append each. */
static void
sv_flush_pending(SvBuildState *bs)
{
	SvMetaData *meta = &bs->meta;

	if (meta->lists > 1)
		sv_nearest_centroids((const float *) bs->cache.centroids, bs->cache.centroid_norm2, meta->lists,
							 meta->code_bits, bs->pending_x, bs->npending, bs->pending_list);
	else
		memset(bs->pending_list, 0, sizeof(int) * bs->npending);
	for (int i = 0; i < bs->npending; i++)
	{
		int			list = bs->pending_list[i];
		float		alpha,
					r2;

		const float *x = bs->pending_x + (Size) i * meta->code_bits;
		const float *c = (const float *) bs->cache.centroids + (Size) list * meta->code_bits;

		sv_encode(meta, x, c, bs->code, &alpha, &r2);
		if (meta->refine_bits > 0)
			sv_refine_encode(meta, x, c, &bs->refine);
		if (bs->pending_unknown[i])
			sv_mark_unknown(&alpha, meta->refine_bits > 0 ? &bs->refine : NULL);
		if (bs->out != NULL)
		{
			sv_entry_pack(bs, bs->msg + (Size) i * sv_entry_bytes(meta), list, alpha, r2, &bs->pending_tid[i]);
			continue;
		}
		sv_build_append(bs, MAIN_FORKNUM, list, alpha, r2, &bs->pending_tid[i]);
	}
	if (bs->nin_active > 0)
		sv_drain_queues(bs, false);	/* the leader scans too: keep the workers' queues moving */
	if (bs->out != NULL && bs->npending > 0 &&
		shm_mq_send(bs->out, (Size) bs->npending * sv_entry_bytes(meta), bs->msg, false, true) != SHM_MQ_SUCCESS)
		ereport(ERROR,
				(errcode(ERRCODE_INTERNAL_ERROR),
				 errmsg("shrinkvec parallel build: the leader stopped receiving entries")));
	bs->npending = 0;
}

/* Encode one row and append it to its list (vector rows wait for a batch). */
static void
sv_load_callback(Relation index, ItemPointer tid, Datum *values, bool *isnull, bool alive, void *arg)
{
	SvBuildState *bs = (SvBuildState *) arg;
	SvMetaData *meta = &bs->meta;
	MemoryContext old;
	int			list;
	float		alpha = 0,
				r2 = 0;

	if (isnull[0])
		return;
	old = MemoryContextSwitchTo(bs->tmpcxt);
	if (meta->elemtype == SV_ELEM_BIT)
	{
		sv_encode_bits(meta, values[0], bs->code);
		list = sv_nearest_list(&bs->cache, NULL, bs->code);
	}
	else
	{
		sv_datum_to_floats(values[0], meta->elemtype, meta->kind, meta->dims, meta->code_bits,
						   bs->pending_x + (Size) bs->npending * meta->code_bits, &bs->pending_unknown[bs->npending]);
		bs->pending_tid[bs->npending++] = *tid;
		MemoryContextSwitchTo(old);
		MemoryContextReset(bs->tmpcxt);
		if (bs->npending == SV_BUILD_BATCH)
			sv_flush_pending(bs);
		return;
	}
	MemoryContextSwitchTo(old);
	MemoryContextReset(bs->tmpcxt);
	sv_build_append(bs, MAIN_FORKNUM, list, alpha, r2, tid);
}

/* Write meta, centroids, directory and empty first pages; the lists' first blocks are reserved. */
static void
sv_write_layout(SvBuildState *bs, ForkNumber fork)
{
	SvMetaData *meta = &bs->meta;
	PGAlignedBlock image;
	SvListEntry *dir;

	if (sv_reserve_block(bs->index, fork) != SV_META_BLKNO)
		elog(ERROR, "shrinkvec index build must start on an empty relation");
	if (meta->centroid_bytes > 0)
		meta->centroid_start = sv_write_stream(bs->index, fork, bs->cache.centroids,
											   (Size) meta->lists * meta->centroid_bytes,
											   SV_PAGE_CENTROIDS, &meta->centroid_pages);
	else
		meta->centroid_start = InvalidBlockNumber;
	if (meta->coarse_groups > 0)
	{
		/* the stream's three arrays are contiguous in the cache (sv_coarse_build allocated them so) */
		meta->coarse_start = sv_write_stream(bs->index, fork, (const char *) bs->cache.coarse,
											 sv_coarse_bytes(meta), SV_PAGE_COARSE, &meta->coarse_pages);
	}
	else
		meta->coarse_start = InvalidBlockNumber;

	/* the directory comes after one reserved first page per list */
	bs->pages = palloc(sizeof(Page) * meta->lists);
	bs->blocks = palloc(sizeof(BlockNumber) * meta->lists);
	bs->first = palloc(sizeof(BlockNumber) * meta->lists);
	for (int i = 0; i < meta->lists; i++)
	{
		bs->pages[i] = palloc(BLCKSZ);
		sv_page_init(bs->pages[i], SV_PAGE_DATA, i);
		bs->blocks[i] = bs->first[i] = sv_reserve_block(bs->index, fork);
	}
	if (meta->refine_bits > 0)
	{
		bs->rpages = palloc(sizeof(Page) * meta->lists);
		bs->rblocks = palloc(sizeof(BlockNumber) * meta->lists);
		for (int i = 0; i < meta->lists; i++)
		{
			bs->rpages[i] = palloc(BLCKSZ);
			bs->rblocks[i] = InvalidBlockNumber;
		}
		bs->refine.code = palloc0(meta->refine_bytes);
	}
	dir = palloc(sizeof(SvListEntry) * meta->lists);
	for (int i = 0; i < meta->lists; i++)
		dir[i].first = dir[i].insert = bs->first[i];
	meta->directory_start = sv_write_stream(bs->index, fork, (char *) dir, sizeof(SvListEntry) * meta->lists,
											SV_PAGE_DIRECTORY, &meta->directory_pages);
	pfree(dir);

	sv_page_init(image.data, SV_PAGE_META, 0);
	memcpy(SvPageGetMeta(image.data), meta, sizeof(SvMetaData));
	sv_write_page(bs->index, fork, SV_META_BLKNO, image.data);
}

/* Write every list's last in-memory page and the final row count. */
static void
sv_finish_layout(SvBuildState *bs, ForkNumber fork)
{
	PGAlignedBlock image;

	for (int i = 0; i < bs->meta.lists; i++)
	{
		if (bs->meta.refine_bits > 0)
			sv_build_flush_refine(bs, fork, i);
		sv_write_page(bs->index, fork, bs->blocks[i], bs->pages[i]);
	}
	/* the insert page of each list is its last page */
	{
		int			per_page = SV_PAGE_CONTENT_SIZE / sizeof(SvListEntry);

		for (int p = 0; p < bs->meta.directory_pages; p++)
		{
			Buffer		buf = ReadBufferExtended(bs->index, fork, bs->meta.directory_start + p, RBM_NORMAL, NULL);
			GenericXLogState *state;
			SvListEntry *dir;

			LockBuffer(buf, BUFFER_LOCK_EXCLUSIVE);
			state = GenericXLogStart(bs->index);
			dir = (SvListEntry *) PageGetContents(GenericXLogRegisterBuffer(state, buf, 0));
			for (int i = p * per_page; i < Min((p + 1) * per_page, bs->meta.lists); i++)
				dir[i - p * per_page].insert = bs->blocks[i];
			GenericXLogFinish(state);
			UnlockReleaseBuffer(buf);
		}
	}
	bs->meta.build_rows = bs->indexed;
	sv_page_init(image.data, SV_PAGE_META, 0);
	memcpy(SvPageGetMeta(image.data), &bs->meta, sizeof(SvMetaData));
	sv_write_page(bs->index, fork, SV_META_BLKNO, image.data);
}

/* Set up the state shared by a build and an empty build. */
static void
sv_build_init(SvBuildState *bs, Relation index)
{
	memset(bs, 0, sizeof(SvBuildState));
	bs->index = index;
	sv_build_meta(index, &bs->meta);
	bs->cache.meta = bs->meta;
	bs->tmpcxt = AllocSetContextCreate(CurrentMemoryContext, "shrinkvec build row", ALLOCSET_DEFAULT_SIZES);
	bs->code = palloc0(bs->meta.code_bytes);
}

/*
 * Refuse a build whose centroids and per-list pages (held in memory until the last row is written)
 * exceed maintenance_work_mem; the k-means sample is bounded separately (it shrinks to fit).
 */
static void
sv_check_build_memory(Relation index, const SvMetaData *meta)
{
	Size		per_list = (Size) meta->centroid_bytes + BLCKSZ + sizeof(SvListEntry) + 2 * sizeof(BlockNumber) +
		sizeof(Page) + sizeof(float);
	Size		need;
	Size		have = (Size) maintenance_work_mem * 1024;

	if (meta->refine_bits > 0)
		per_list += BLCKSZ + sizeof(Page) + sizeof(BlockNumber);	/* its in-memory refine page */
	need = (Size) meta->lists * per_list;

	if (need > have)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("shrinkvec index \"%s\" with %d lists needs %zu kB for its centroids and list pages, "
						"more than maintenance_work_mem (%d kB)",
						RelationGetRelationName(index), meta->lists, need / 1024, maintenance_work_mem),
				 errhint("Raise maintenance_work_mem to at least %zu kB, or build with fewer lists.",
						 need / 1024 + 1)));
}

/* Does the index take its lists from the row count (a vector opclass without WITH (lists = ...))? */
static bool
sv_auto_lists(Relation index, const SvMetaData *meta)
{
	SvOptions  *opts = (SvOptions *) index->rd_options;

	return meta->elemtype != SV_ELEM_BIT && (opts == NULL || opts->lists == 0);
}

/*
 * Parallel build (PostgreSQL 17+, vector opclasses): after the leader has sampled the table and learnt
 * the centroids, max_parallel_maintenance_workers workers split the second heap pass (a parallel
 * table scan) with the leader.  Each assigns its rows to lists and encodes them (the costly part: a
 * distance to every centroid), and sends the entries to the leader through a message queue; the leader
 * encodes its own share and writes every list's pages as in a serial build, taking the workers' entries
 * between its own batches.  Sampling and k-means run in the leader alone.
 */
#define SV_KEY_SHARED UINT64CONST(0x5356424C44000001)
#define SV_KEY_CENTROIDS UINT64CONST(0x5356424C44000002)
#define SV_KEY_SCAN UINT64CONST(0x5356424C44000003)
#define SV_KEY_QUEUES UINT64CONST(0x5356424C44000004)
#define SV_QUEUE_BYTES ((Size) 4 * 1024 * 1024)

/* What the leader shares with the workers of a parallel build. */
typedef struct SvParallelShared
{
	Oid			heaprelid;
	Oid			indexrelid;
	bool		isconcurrent;
	SvMetaData	meta;			/* the final layout: lists, code and refine sizes */
	slock_t		mutex;
	double		reltuples;		/* rows the workers' scans saw, summed under mutex */
} SvParallelShared;

PGDLLEXPORT void sv_parallel_build_main(dsm_segment *seg, shm_toc *toc);

#if PG_VERSION_NUM >= 170000
/* The leader's side: receive every worker's entries and append them; false when no worker started. */
static bool
sv_build_parallel(SvBuildState *bs, Relation heap, Relation index, IndexInfo *indexInfo, double *reltuples)
{
	int			nworkers = indexInfo->ii_ParallelWorkers;
	Size		centroid_total = (Size) bs->meta.lists * bs->meta.centroid_bytes;
	ParallelContext *pcxt;
	Snapshot	snapshot;
	Size		scan_bytes;
	SvParallelShared *shared;
	char	   *queues;
	ParallelTableScanDesc pscan;
	double		leader_tuples;

	ereport(DEBUG1, (errmsg("shrinkvec index build: %d parallel workers planned", nworkers)));
	if (nworkers <= 0 || bs->meta.elemtype == SV_ELEM_BIT || centroid_total == 0)
		return false;
	EnterParallelMode();
	pcxt = CreateParallelContext("shrinkvec", "sv_parallel_build_main", nworkers);
	snapshot = indexInfo->ii_Concurrent ? RegisterSnapshot(GetTransactionSnapshot()) : SnapshotAny;
	scan_bytes = table_parallelscan_estimate(heap, snapshot);
	shm_toc_estimate_chunk(&pcxt->estimator, sizeof(SvParallelShared));
	shm_toc_estimate_chunk(&pcxt->estimator, centroid_total);
	shm_toc_estimate_chunk(&pcxt->estimator, scan_bytes);
	shm_toc_estimate_chunk(&pcxt->estimator, (Size) nworkers * SV_QUEUE_BYTES);
	shm_toc_estimate_keys(&pcxt->estimator, 4);
	InitializeParallelDSM(pcxt);
	if (pcxt->seg == NULL)
	{
		/* no dynamic shared memory: build serially */
		if (IsMVCCSnapshot(snapshot))
			UnregisterSnapshot(snapshot);
		DestroyParallelContext(pcxt);
		ExitParallelMode();
		return false;
	}
	shared = shm_toc_allocate(pcxt->toc, sizeof(SvParallelShared));
	shared->heaprelid = RelationGetRelid(heap);
	shared->indexrelid = RelationGetRelid(index);
	shared->isconcurrent = indexInfo->ii_Concurrent;
	shared->meta = bs->meta;
	SpinLockInit(&shared->mutex);
	shared->reltuples = 0;
	shm_toc_insert(pcxt->toc, SV_KEY_SHARED, shared);
	{
		char	   *c = shm_toc_allocate(pcxt->toc, centroid_total);

		memcpy(c, bs->cache.centroids, centroid_total);
		shm_toc_insert(pcxt->toc, SV_KEY_CENTROIDS, c);
	}
	pscan = shm_toc_allocate(pcxt->toc, scan_bytes);
	table_parallelscan_initialize(heap, pscan, snapshot);
	shm_toc_insert(pcxt->toc, SV_KEY_SCAN, pscan);
	queues = shm_toc_allocate(pcxt->toc, (Size) nworkers * SV_QUEUE_BYTES);
	for (int i = 0; i < nworkers; i++)
		shm_mq_set_receiver(shm_mq_create(queues + (Size) i * SV_QUEUE_BYTES, SV_QUEUE_BYTES), MyProc);
	shm_toc_insert(pcxt->toc, SV_KEY_QUEUES, queues);

	LaunchParallelWorkers(pcxt);
	ereport(DEBUG1,
			(errmsg("shrinkvec index build: %d of %d parallel workers launched", pcxt->nworkers_launched, nworkers)));
	if (pcxt->nworkers_launched == 0)
	{
		if (IsMVCCSnapshot(snapshot))
			UnregisterSnapshot(snapshot);
		DestroyParallelContext(pcxt);
		ExitParallelMode();
		return false;
	}
	bs->nin = pcxt->nworkers_launched;
	bs->in = palloc(sizeof(shm_mq_handle *) * bs->nin);
	bs->in_done = palloc0(sizeof(bool) * bs->nin);
	for (int i = 0; i < bs->nin; i++)
		bs->in[i] = shm_mq_attach((shm_mq *) (queues + (Size) i * SV_QUEUE_BYTES), pcxt->seg,
								  pcxt->worker[i].bgwhandle);
	bs->nin_active = bs->nin;

	/* the leader scans its share of the table too, appending the workers' entries as they come */
	leader_tuples = table_index_build_scan(heap, index, indexInfo, true, true, sv_load_callback, bs,
										   table_beginscan_parallel(heap, pscan));
	if (bs->npending > 0)
		sv_flush_pending(bs);
	sv_drain_queues(bs, true);
	WaitForParallelWorkersToFinish(pcxt);
	*reltuples = shared->reltuples + leader_tuples;
	for (int i = 0; i < bs->nin; i++)
		shm_mq_detach(bs->in[i]);
	bs->nin = 0;
	if (IsMVCCSnapshot(snapshot))
		UnregisterSnapshot(snapshot);
	DestroyParallelContext(pcxt);
	ExitParallelMode();
	return true;
}
#endif

/* A worker of a parallel build: scan its part of the table, encode each row, send the entries. */
void
sv_parallel_build_main(dsm_segment *seg, shm_toc *toc)
{
	SvParallelShared *shared = shm_toc_lookup(toc, SV_KEY_SHARED, false);
	char	   *queues = shm_toc_lookup(toc, SV_KEY_QUEUES, false);
	LOCKMODE	heap_lock = shared->isconcurrent ? ShareUpdateExclusiveLock : ShareLock;
	LOCKMODE	index_lock = shared->isconcurrent ? RowExclusiveLock : AccessExclusiveLock;
	Relation	heap = table_open(shared->heaprelid, heap_lock);
	Relation	index = index_open(shared->indexrelid, index_lock);
	IndexInfo  *indexInfo = BuildIndexInfo(index);
	shm_mq	   *mq = (shm_mq *) (queues + (Size) ParallelWorkerNumber * SV_QUEUE_BYTES);
	SvBuildState bs;
	double		reltuples;

	indexInfo->ii_Concurrent = shared->isconcurrent;
	memset(&bs, 0, sizeof(bs));
	bs.index = index;
	bs.meta = shared->meta;
	bs.cache.meta = bs.meta;
	bs.cache.centroids = shm_toc_lookup(toc, SV_KEY_CENTROIDS, false);
	bs.cache.centroid_norm2 = palloc(sizeof(float) * bs.meta.lists);
	for (int i = 0; i < bs.meta.lists; i++)
	{
		const float *c = (const float *) bs.cache.centroids + (Size) i * bs.meta.code_bits;

		bs.cache.centroid_norm2[i] = sv_kernels.dot(c, c, bs.meta.code_bits);
	}
	bs.tmpcxt = AllocSetContextCreate(CurrentMemoryContext, "shrinkvec build row", ALLOCSET_DEFAULT_SIZES);
	bs.code = palloc0(bs.meta.code_bytes);
	if (bs.meta.refine_bits > 0)
		bs.refine.code = palloc0(bs.meta.refine_bytes);
	bs.pending_x = palloc(sizeof(float) * SV_BUILD_BATCH * bs.meta.code_bits);
	bs.msg = palloc(SV_BUILD_BATCH * sv_entry_bytes(&bs.meta));
	shm_mq_set_sender(mq, MyProc);
	bs.out = shm_mq_attach(mq, seg, NULL);
	reltuples = table_index_build_scan(heap, index, indexInfo, true, false, sv_load_callback, &bs,
									   table_beginscan_parallel(heap, shm_toc_lookup(toc, SV_KEY_SCAN, false)));
	if (bs.npending > 0)
		sv_flush_pending(&bs);
	SpinLockAcquire(&shared->mutex);
	shared->reltuples += reltuples;
	SpinLockRelease(&shared->mutex);
	shm_mq_detach(bs.out);
	index_close(index, index_lock);
	table_close(heap, heap_lock);
}

/* Build the index: sample, learn centroids, then encode every row. */
IndexBuildResult *
sv_ambuild(Relation heap, Relation index, IndexInfo *indexInfo)
{
	SvBuildState bs;
	IndexBuildResult *result;
	double		reltuples;
	Size		budget;

	if (RelationGetNumberOfBlocks(index) != 0)
		elog(ERROR, "index \"%s\" already contains data", RelationGetRelationName(index));
	sv_build_init(&bs, index);

	if (!sv_auto_lists(index, &bs.meta))
		sv_check_build_memory(index, &bs.meta);	/* WITH (lists = N): before reading the table */
	if (bs.meta.centroid_bytes > 0)
	{
		int			per_list = bs.meta.elemtype == SV_ELEM_BIT ? 64 : 32;

		bs.item_bytes = bs.meta.elemtype == SV_ELEM_BIT ? bs.meta.code_bytes : bs.meta.centroid_bytes;
		/* at least 10000 rows (32 a list for vectors), within maintenance_work_mem */
		budget = (Size) maintenance_work_mem * 1024 / bs.item_bytes;
		bs.sample_target = Max(10000, per_list * bs.meta.lists);
		if (sv_auto_lists(index, &bs.meta))
		{
			/* lists follow the row count: sample for the square root of the estimated rows */
			BlockNumber pages;
			double		tuples,
						allvisfrac;

			estimate_rel_size(heap, NULL, &pages, &tuples, &allvisfrac);
			if (tuples > SV_AUTO_FLAT_ROWS)
				bs.sample_target = Max(bs.sample_target,
									   (int) Min((double) per_list * sqrt(tuples * 1.5), (double) INT_MAX / 2));
		}
		if ((Size) bs.sample_target > budget)
			bs.sample_target = Max((int) budget, bs.meta.lists);
		bs.sample = MemoryContextAllocHuge(CurrentMemoryContext, (Size) bs.sample_target * bs.item_bytes);
		pg_prng_seed(&bs.prng, 0x5356);
		table_index_build_scan(heap, index, indexInfo, false, true, sv_sample_callback, &bs, NULL);
		if (sv_auto_lists(index, &bs.meta))
			bs.meta.lists = bs.seen <= SV_AUTO_FLAT_ROWS ? 1 :
				(int) Min((double) SV_INDEX_MAX_LISTS, rint(sqrt((double) bs.seen)));
		if (bs.nsample < bs.meta.lists)
		{
			int			lists = Max(bs.nsample, 1);

			if (bs.meta.lists > 1 && bs.nsample == 0)
				ereport(WARNING,
						(errmsg("shrinkvec index \"%s\" was built on an empty table: it has 1 list instead of %d",
								RelationGetRelationName(index), bs.meta.lists),
						 errdetail("TRUNCATE and CREATE INDEX on an empty table build the index without rows to "
								   "learn centroids from. Scans stay correct but read every entry."),
						 errhint("Run REINDEX INDEX %s after loading rows.",
								 quote_qualified_identifier(get_namespace_name(RelationGetNamespace(index)),
															RelationGetRelationName(index)))));
			else if (bs.meta.lists > 1)
				ereport(NOTICE,
						(errmsg("shrinkvec index has %d lists instead of %d: the table has only %d rows",
								lists, bs.meta.lists, bs.nsample),
						 errhint("Create the index after loading the data.")));
			bs.meta.lists = lists;
			if (bs.meta.elemtype == SV_ELEM_BIT && lists == 1)
				bs.meta.centroid_bytes = 0;
		}
		sv_check_build_memory(index, &bs.meta);
		bs.cache.meta = bs.meta;
		sv_learn_centroids(&bs);
		pfree(bs.sample);
		bs.sample = NULL;
	}

	ereport(DEBUG1, (errmsg("shrinkvec index build: centroids of %d lists learnt from %d sampled rows",
							bs.meta.lists, bs.nsample)));
	sv_write_layout(&bs, MAIN_FORKNUM);
	bs.cache.meta = bs.meta;
	if (bs.meta.elemtype != SV_ELEM_BIT)
		bs.pending_x = palloc(sizeof(float) * SV_BUILD_BATCH * bs.meta.code_bits);
#if PG_VERSION_NUM >= 170000
	if (!sv_build_parallel(&bs, heap, index, indexInfo, &reltuples))
#endif
	{
		reltuples = table_index_build_scan(heap, index, indexInfo, true, true, sv_load_callback, &bs, NULL);
		if (bs.npending > 0)
			sv_flush_pending(&bs);
	}
	sv_finish_layout(&bs, MAIN_FORKNUM);

	result = palloc(sizeof(IndexBuildResult));
	result->heap_tuples = reltuples;
	result->index_tuples = (double) bs.indexed;
	MemoryContextDelete(bs.tmpcxt);
	return result;
}

/* Build an empty index in the init fork (unlogged tables): one list, zero centroid. */
void
sv_ambuildempty(Relation index)
{
	SvBuildState bs;

	sv_build_init(&bs, index);
	bs.meta.lists = 1;
	if (bs.meta.elemtype == SV_ELEM_BIT)
		bs.meta.centroid_bytes = 0;
	bs.cache.meta = bs.meta;
	sv_learn_centroids(&bs);
	sv_write_layout(&bs, INIT_FORKNUM);
	sv_finish_layout(&bs, INIT_FORKNUM);
	MemoryContextDelete(bs.tmpcxt);
}
