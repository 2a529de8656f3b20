/*
 * index_vacuum.c: VACUUM of a shrinkvec index.
 *
 * Bulk delete visits every data page once, removes the entries of dead rows by moving the page's
 * last entry into the hole, and WAL-logs the page.  Cleanup points every list's insert page at the
 * first page of its chain with room, so the freed space is filled by later inserts.
 */
#include "postgres.h"

#include "commands/vacuum.h"
#include "storage/bufmgr.h"

#include "index.h"
#include "kernels.h"

/* Remove the entries whose heap rows the callback reports dead. */
IndexBulkDeleteResult *
sv_ambulkdelete(IndexVacuumInfo *info, IndexBulkDeleteResult *stats,
				IndexBulkDeleteCallback callback, void *callback_state)
{
	Relation	index = info->index;
	SvIndexCache *cache = sv_index_cache(index);
	const SvMetaData *meta = &cache->meta;
	BlockNumber nblocks = RelationGetNumberOfBlocks(index);
	uint8	   *code = palloc(meta->code_bytes);

	if (stats == NULL)
		stats = palloc0(sizeof(IndexBulkDeleteResult));

	for (BlockNumber blk = 0; blk < nblocks; blk++)
	{
		Buffer		buf;
		Page		page;
		SvPageOpaque *opaque;
		ItemPointerData *tids;
		GenericXLogState *state = NULL;
		int			n;

#if PG_VERSION_NUM >= 180000
		vacuum_delay_point(false);
#else
		vacuum_delay_point();
#endif
		buf = ReadBufferExtended(index, MAIN_FORKNUM, blk, RBM_NORMAL, info->strategy);
		LockBuffer(buf, BUFFER_LOCK_EXCLUSIVE);
		page = BufferGetPage(buf);
		if (PageIsNew(page) || SvPageGetOpaque(page)->flags != SV_PAGE_DATA)
		{
			UnlockReleaseBuffer(buf);
			continue;
		}
		n = SvPageGetOpaque(page)->count;
		tids = sv_page_tids(page, meta);
		for (int i = 0; i < n;)
		{
			if (!callback(&tids[i], callback_state))
			{
				i++;
				continue;
			}
			if (state == NULL)
			{
				/* first dead entry of the page: redo the work on the WAL copy */
				state = GenericXLogStart(index);
				page = GenericXLogRegisterBuffer(state, buf, 0);
				tids = sv_page_tids(page, meta);
			}
			n--;
			if (i != n)
			{
				uint8	   *codes = sv_page_codes(page, meta);

				/* move the last entry into the hole */
				sv_fs_get(codes, meta->lanes, meta->code_bytes, n, code);
				sv_fs_put(codes, meta->lanes, meta->code_bytes, i, code);
				if (meta->has_factors)
				{
					sv_page_alpha(page, meta)[i] = sv_page_alpha(page, meta)[n];
					sv_page_r2(page, meta)[i] = sv_page_r2(page, meta)[n];
				}
				tids[i] = tids[n];
			}
			stats->tuples_removed++;
		}
		stats->num_index_tuples += n;
		if (state != NULL)
		{
			opaque = SvPageGetOpaque(page);
			opaque->count = n;
			GenericXLogFinish(state);
		}
		UnlockReleaseBuffer(buf);
	}
	stats->num_pages = nblocks;
	pfree(code);
	return stats;
}

/* Point each list's insert page at its first page with room; count entries if needed. */
IndexBulkDeleteResult *
sv_amvacuumcleanup(IndexVacuumInfo *info, IndexBulkDeleteResult *stats)
{
	Relation	index = info->index;
	SvIndexCache *cache;
	const SvMetaData *meta;
	bool		count = stats == NULL;

	if (info->analyze_only)
		return stats;
	cache = sv_index_cache(index);
	meta = &cache->meta;
	if (stats == NULL)
		stats = palloc0(sizeof(IndexBulkDeleteResult));

	for (int list = 0; list < meta->lists; list++)
	{
		SvListEntry entry = sv_read_list(index, meta, list);
		BlockNumber blk = entry.first;
		BlockNumber room = InvalidBlockNumber;

		while (blk != InvalidBlockNumber)
		{
			Buffer		buf = ReadBufferExtended(index, MAIN_FORKNUM, blk, RBM_NORMAL, info->strategy);
			SvPageOpaque *opaque;

			LockBuffer(buf, BUFFER_LOCK_SHARE);
			opaque = SvPageGetOpaque(BufferGetPage(buf));
			if (room == InvalidBlockNumber && opaque->count < meta->capacity)
				room = blk;
			if (count)
				stats->num_index_tuples += opaque->count;
			blk = opaque->next;
			UnlockReleaseBuffer(buf);
			if (room != InvalidBlockNumber && !count)
				break;
		}
		if (room != InvalidBlockNumber && room != entry.insert)
			sv_set_insert_page(index, meta, list, room);
	}
	stats->num_pages = RelationGetNumberOfBlocks(index);
	stats->estimated_count = false;
	return stats;
}
