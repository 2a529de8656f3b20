/*
 * insert.c: adding a row to a shrinkvec index after the build: aminsert, and the WAL-logged placement of
 * an entry in its list's chain of pages.
 */
#include "postgres.h"

#include "storage/lmgr.h"
#include "utils/memutils.h"

#include "svindex.h"
#include "shrinkvec.h"

/*
 * Encode one row against a generation of the index (cache) and add it to the list nearest to it; false
 * when a page on the way is retired (a re-partition replaced it or is replacing it: nothing was written).
 * ignore_retired: the caller holds the re-partition lock and saw no newer generation, so retired marks of
 * this generation are left by an attempt that failed before its switch.
 */
static bool
sv_insert_row(Relation index, const SvIndexCache *cache, Datum value, ItemPointer heap_tid, bool ignore_retired)
{
	const SvMetaData *meta = &cache->meta;
	uint8	   *code = palloc0(meta->code_bytes);
	float		alpha = 0,
				r2 = 0;
	int			list;
	SvRefine	refine = {0};

	if (meta->elemtype == SV_ELEM_BIT)
	{
		sv_encode_bits(meta, value, code);
		list = sv_nearest_list(cache, NULL, code);
	}
	else
	{
		float	   *x = palloc(sizeof(float) * meta->code_bits);
		bool		unknown;

		sv_datum_to_floats(value, cache, SV_FOR_ROW, x, &unknown);
		list = sv_nearest_list(cache, x, NULL);
		if (meta->refine_bits > 0)
			refine.code = palloc(meta->refine_bytes);
		sv_encode_row(meta, x, (const float *) cache->centroids + (Size) list * meta->code_bits, unknown,
					  code, &alpha, &r2, &refine);
	}
	return sv_insert_entry(index, cache, list, code, alpha, r2, &refine, heap_tid, ignore_retired);
}

/*
 * Add one new row.  The common path takes no lock beyond the pages it writes.  When a page is retired, a
 * re-partition is switching the index to a new generation (or failed doing so): wait for it on the
 * re-partition lock, then insert into the generation the meta page names.
 */
bool
sv_aminsert(Relation index, Datum *values, bool *isnull, ItemPointer heap_tid,
			Relation heap, IndexUniqueCheck checkUnique, bool indexUnchanged,
			IndexInfo *indexInfo)
{
	MemoryContext cxt,
				old;
	SvIndexCache cache;

	if (isnull[0])
		return false;
	cxt = AllocSetContextCreate(CurrentMemoryContext, "shrinkvec insert", ALLOCSET_SMALL_SIZES);
	old = MemoryContextSwitchTo(cxt);
	/* a copy of this generation's cache: a retry may need the next one */
	cache = *sv_index_cache(index);
	while (!sv_insert_row(index, &cache, values[0], heap_tid, false))
	{
		sv_lock_repartition(index, ShareLock);
		if (sv_index_cache(index)->meta.generation != cache.meta.generation)
		{
			cache = *sv_index_cache(index);
			sv_unlock_repartition(index, ShareLock);
			continue;			/* a new generation: encode against its centroids */
		}
		(void) sv_insert_row(index, &cache, values[0], heap_tid, true);
		sv_unlock_repartition(index, ShareLock);
		break;
	}
	MemoryContextSwitchTo(old);
	MemoryContextDelete(cxt);
	return false;
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
 * The data page, its refine page and a new page go into one WAL record.  Returns false, having written
 * nothing, at a retired page (repartition.c), unless ignore_retired: then it clears the page's mark.
 */
bool
sv_insert_entry(Relation index, const SvIndexCache *cache, int list, const uint8 *code,
				float alpha, float r2, const SvRefine *refine, ItemPointer tid, bool ignore_retired)
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
		if (opaque->retired != 0 && !ignore_retired)
		{
			UnlockReleaseBuffer(buf);
			return false;
		}
		if (opaque->count < meta->capacity)
		{
			state = GenericXLogStart(index);
			page = GenericXLogRegisterBuffer(state, buf, 0);
			opaque = SvPageGetOpaque(page);
			opaque->retired = 0;
			sv_put_entry(index, meta, state, page, opaque->count, code, alpha, r2, refine, tid, &rbuf);
			opaque->count++;
			GenericXLogFinish(state);
			if (BufferIsValid(rbuf))
				UnlockReleaseBuffer(rbuf);
			UnlockReleaseBuffer(buf);
			if (moved)
				sv_set_insert_page(index, meta, list, blk);
			return true;
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
			SvPageGetOpaque(page)->retired = 0;
			blk = BufferGetBlockNumber(newbuf);
			GenericXLogFinish(state);
			if (BufferIsValid(rbuf))
				UnlockReleaseBuffer(rbuf);
			UnlockReleaseBuffer(newbuf);
			UnlockReleaseBuffer(buf);
			sv_set_insert_page(index, meta, list, blk);
			return true;
		}
	}
}
