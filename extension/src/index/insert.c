/*
 * insert.c: adding a row to a shrinkvec index after the build: aminsert, and the WAL-logged placement of
 * an entry in its list's chain of pages.
 */
#include "postgres.h"

#include "utils/memutils.h"

#include "svindex.h"
#include "shrinkvec.h"

/* Encode one new row and add it to the list nearest to it. */
bool
sv_aminsert(Relation index, Datum *values, bool *isnull, ItemPointer heap_tid,
			Relation heap, IndexUniqueCheck checkUnique, bool indexUnchanged,
			IndexInfo *indexInfo)
{
	SvIndexCache *cache;
	const SvMetaData *meta;
	MemoryContext cxt,
				old;
	uint8	   *code;
	float		alpha = 0,
				r2 = 0;
	int			list;
	SvRefine	refine = {0};

	if (isnull[0])
		return false;
	cxt = AllocSetContextCreate(CurrentMemoryContext, "shrinkvec insert", ALLOCSET_SMALL_SIZES);
	old = MemoryContextSwitchTo(cxt);
	cache = sv_index_cache(index);
	meta = &cache->meta;
	code = palloc0(meta->code_bytes);
	if (meta->elemtype == SV_ELEM_BIT)
	{
		sv_encode_bits(meta, values[0], code);
		list = sv_nearest_list(cache, NULL, code);
	}
	else
	{
		float	   *x = palloc(sizeof(float) * meta->code_bits);
		bool		unknown;

		sv_datum_to_floats(values[0], cache, SV_FOR_ROW, x, &unknown);
		list = sv_nearest_list(cache, x, NULL);
		if (meta->refine_bits > 0)
			refine.code = palloc(meta->refine_bytes);
		sv_encode_row(meta, x, (const float *) cache->centroids + (Size) list * meta->code_bits, unknown,
					  code, &alpha, &r2, &refine);
	}
	sv_insert_entry(index, cache, list, code, alpha, r2, &refine, heap_tid);
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
