/*
 * build_load.c: the loading machinery of CREATE INDEX: the sample and the centroids learned from it,
 * the encoding of rows in batches, the in-memory page of each list and its refine page, the pages
 * written to reserved blocks, and the entries parallel workers send to the leader.
 */
#include "postgres.h"

#include "storage/lmgr.h"
#include "utils/wait_event.h"

/* PostgreSQL 17 renamed the wait event a leader waits on for its workers' messages. */
#if PG_VERSION_NUM < 170000
#define WAIT_EVENT_MESSAGE_QUEUE_RECEIVE WAIT_EVENT_MQ_RECEIVE
#endif

#include "build.h"

/* A re-partition notes every block it takes (to free them again if it fails). */
static void
sv_note_allocated(SvBuildState *bs, BlockNumber blk)
{
	SvBlockList *l = bs->allocated;

	if (l == NULL)
		return;
	if (l->n == l->max)
	{
		l->max = Max(256, l->max * 2);
		l->blocks = l->blocks == NULL ? MemoryContextAlloc(GetMemoryChunkContext(l), sizeof(BlockNumber) * l->max) :
			repalloc(l->blocks, sizeof(BlockNumber) * l->max);
	}
	l->blocks[l->n++] = blk;
}

/*
 * Reserve the next block of the index for a page written later.  A recycled page (from the FSM, which
 * can hand one block to two callers) is claimed under its lock with a placeholder first, so no other
 * backend can take it too; a re-partition notes every block it takes.
 */
static BlockNumber
sv_reserve_block(SvBuildState *bs, ForkNumber fork)
{
	Buffer		buf = sv_new_buffer(bs->index, fork);
	BlockNumber blk = BufferGetBlockNumber(buf);

	if (!PageIsNew(BufferGetPage(buf)) || bs->allocated != NULL)
	{
		/* a re-partition claims every page it takes, new or recycled, before unlocking it */
		GenericXLogState *state = GenericXLogStart(bs->index);

		sv_page_init(GenericXLogRegisterBuffer(state, buf, GENERIC_XLOG_FULL_IMAGE), SV_PAGE_RESERVED, 0);
		GenericXLogFinish(state);
	}
	UnlockReleaseBuffer(buf);
	sv_note_allocated(bs, blk);
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

/*
 * Reserve npages contiguous new blocks at the end of the index (never recycled ones: a stream is read as
 * consecutive blocks); returns the first.  The extension lock is held for the whole run, so the pages an
 * insert adds meanwhile come before or after it.
 */
static BlockNumber
sv_reserve_run(SvBuildState *bs, ForkNumber fork, int npages)
{
	BlockNumber first = InvalidBlockNumber;

	LockRelationForExtension(bs->index, ExclusiveLock);
	for (int i = 0; i < npages; i++)
	{
		Buffer		buf = ReadBufferExtended(bs->index, fork, P_NEW, RBM_NORMAL, NULL);
		BlockNumber blk = BufferGetBlockNumber(buf);

		ReleaseBuffer(buf);
		if (first == InvalidBlockNumber)
			first = blk;
		if (blk != first + i)
			elog(ERROR, "shrinkvec index \"%s\": block %u of a stream is not contiguous with block %u",
				 RelationGetRelationName(bs->index), blk, first);
		sv_note_allocated(bs, blk);
	}
	UnlockRelationForExtension(bs->index, ExclusiveLock);
	return first;
}

/* Write n bytes as a stream of consecutive pages of the given kind; returns the first block. */
static BlockNumber
sv_write_stream(SvBuildState *bs, ForkNumber fork, const char *src, Size n, uint16 flags, int *npages)
{
	PGAlignedBlock image;
	int			pages = (int) ((n + SV_PAGE_CONTENT_SIZE - 1) / SV_PAGE_CONTENT_SIZE);
	BlockNumber first = pages > 0 ? sv_reserve_run(bs, fork, pages) : InvalidBlockNumber;

	*npages = pages;
	for (int p = 0; p < pages; p++)
	{
		Size		chunk = Min(n, SV_PAGE_CONTENT_SIZE);

		sv_page_init(image.data, flags, 0);
		memcpy(PageGetContents(image.data), src, chunk);
		sv_write_page(bs->index, fork, first + p, image.data);
		src += chunk;
		n -= chunk;
	}
	return first;
}

/* Fill meta from the index definition and its options; errors on unsupported definitions. */
void
sv_build_meta(Relation index, SvMetaData *meta)
{
	Form_pg_attribute att = TupleDescAttr(RelationGetDescr(index), 0);
	SvOptions  *opts = (SvOptions *) index->rd_options;
	int			lists = opts ? opts->lists : 0;
	int			bits = opts ? opts->bits : 0;
	int			refine = opts ? opts->refine : 0;
	bool		rotate = opts ? opts->rotate : true;
	double		target_recall = opts ? opts->target_recall : SV_DEFAULT_TARGET_RECALL;

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
	if (meta->elemtype != SV_ELEM_BIT && rotate)
	{
		meta->rotation_rounds = SV_ROTATION_ROUNDS;
		meta->rotation_seed = SV_ROTATION_SEED;
	}
	if (meta->elemtype != SV_ELEM_BIT)
		meta->calib_target = (float) target_recall;
	meta->lists = Max(lists, 1);
	if (meta->elemtype == SV_ELEM_BIT)
		meta->centroid_bytes = meta->lists > 1 ? meta->code_bytes : 0;
	else
		meta->centroid_bytes = meta->code_bits * sizeof(float);
}

/* Reservoir-sample one row's coded part. */
void
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
		sv_datum_to_floats(values[0], &bs->cache, SV_FOR_ROW,
						   (float *) (bs->sample + (Size) slot * bs->item_bytes), NULL);
	MemoryContextSwitchTo(old);
	MemoryContextReset(bs->tmpcxt);
}

/* Learn the centroids from the sample (the mean for a flat vector index). */
void
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
		bs->rblocks[list] = sv_reserve_block(bs, fork);
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
		BlockNumber next = sv_reserve_block(bs, fork);

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
 * refine codes) lo, step, norm2, err2 and the refine code.
 */
Size
sv_entry_bytes(const SvMetaData *meta)
{
	Size		n = sizeof(int32) + sizeof(ItemPointerData) + 2 * sizeof(float) + meta->code_bytes;

	if (meta->refine_bits > 0)
		n += 4 * sizeof(float) + meta->refine_bytes;
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
		memcpy(dst + 3 * sizeof(float), &bs->refine.err2, sizeof(float));
		memcpy(dst + 4 * sizeof(float), bs->refine.code, meta->refine_bytes);
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
		memcpy(&bs->refine.err2, src + 3 * sizeof(float), sizeof(float));
		memcpy(bs->refine.code, src + 4 * sizeof(float), meta->refine_bytes);
	}
	if (list < 0 || list >= meta->lists)
		elog(ERROR, "shrinkvec parallel build: entry of list %d, the index has %d", list, meta->lists);
	sv_build_append(bs, MAIN_FORKNUM, list, alpha, r2, &tid);
}

/*
 * The leader of a parallel build: append the entries waiting in the workers' queues; with wait, until
 * every worker has finished.
 */
void
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
void
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

		sv_encode_row(meta, x, c, bs->pending_unknown[i], bs->code, &alpha, &r2, &bs->refine);
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
void
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
		sv_datum_to_floats(values[0], &bs->cache, SV_FOR_ROW, bs->pending_x + (Size) bs->npending * meta->code_bits,
						   &bs->pending_unknown[bs->npending]);
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
void
sv_write_layout(SvBuildState *bs, ForkNumber fork)
{
	SvMetaData *meta = &bs->meta;
	PGAlignedBlock image;
	SvListEntry *dir;

	if (!bs->keep_meta && sv_reserve_block(bs, fork) != SV_META_BLKNO)
		elog(ERROR, "shrinkvec index build must start on an empty relation");
	if (meta->centroid_bytes > 0)
		meta->centroid_start = sv_write_stream(bs, fork, bs->cache.centroids,
											   (Size) meta->lists * meta->centroid_bytes,
											   SV_PAGE_CENTROIDS, &meta->centroid_pages);
	else
		meta->centroid_start = InvalidBlockNumber;
	if (meta->coarse_groups > 0)
	{
		/* the stream's three arrays are contiguous in the cache (sv_coarse_build allocated them so) */
		meta->coarse_start = sv_write_stream(bs, fork, (const char *) bs->cache.coarse,
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
		bs->blocks[i] = bs->first[i] = sv_reserve_block(bs, fork);
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
	meta->directory_start = sv_write_stream(bs, fork, (char *) dir, sizeof(SvListEntry) * meta->lists,
											SV_PAGE_DIRECTORY, &meta->directory_pages);
	pfree(dir);

	if (bs->keep_meta)
		return;
	sv_page_init(image.data, SV_PAGE_META, 0);
	memcpy(SvPageGetMeta(image.data), meta, sizeof(SvMetaData));
	sv_write_page(bs->index, fork, SV_META_BLKNO, image.data);
}

/* Write every list's last in-memory page and the final row count. */
void
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
	if (bs->keep_meta)
		return;
	sv_page_init(image.data, SV_PAGE_META, 0);
	memcpy(SvPageGetMeta(image.data), &bs->meta, sizeof(SvMetaData));
	sv_write_page(bs->index, fork, SV_META_BLKNO, image.data);
}

/* Set up the state shared by a build and an empty build. */
void
sv_build_init(SvBuildState *bs, Relation index)
{
	memset(bs, 0, sizeof(SvBuildState));
	bs->index = index;
	sv_build_meta(index, &bs->meta);
	bs->cache.meta = bs->meta;
	sv_cache_rotation(&bs->cache);
	bs->tmpcxt = AllocSetContextCreate(CurrentMemoryContext, "shrinkvec build row", ALLOCSET_DEFAULT_SIZES);
	bs->code = palloc0(bs->meta.code_bytes);
}
