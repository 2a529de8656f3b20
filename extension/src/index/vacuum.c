/*
 * vacuum.c: VACUUM of a shrinkvec index.
 *
 * Bulk delete visits every data page once, removes the entries of dead rows by moving the page's
 * last entry into the hole, and WAL-logs the page.  Cleanup points every list's insert page at the
 * first page of its chain with room, so the freed space is filled by later inserts.
 */
#include "postgres.h"

#include "commands/vacuum.h"
#include "storage/bufmgr.h"

#include "svindex.h"
#include "kernels/kernels.h"

/*
 * Apply a data page's compaction moves (entry src[m] into slot dst[m]) to its refine pages, before the
 * data page itself is compacted: a crash in between leaves each live entry's refine code in place, and
 * only the slots of dead entries (removed again by the next VACUUM) hold another entry's code, which
 * scans recognise by its TID.  The caller holds the data page's exclusive lock; one WAL record per
 * refine page written.
 */
static void
sv_vacuum_refine(Relation index, const SvMetaData *meta, Page data, const int *src, const int *dst, int nmoves,
				 BufferAccessStrategy strategy)
{
	BlockNumber *rblocks = sv_page_refine_blocks(data);

	for (int r = 0; r < meta->refine_pages; r++)
	{
		Buffer		rbuf = InvalidBuffer;
		GenericXLogState *state = NULL;
		Page		rpage = NULL;
		Buffer		from_buf = InvalidBuffer;
		int			from_r = -1;

		for (int m = 0; m < nmoves; m++)
		{
			int			to = dst[m] / meta->refine_capacity,
						fr = src[m] / meta->refine_capacity;
			Page		from_page;

			if (to != r || rblocks[to] == InvalidBlockNumber || rblocks[fr] == InvalidBlockNumber)
				continue;
			if (state == NULL)
			{
				rbuf = ReadBufferExtended(index, MAIN_FORKNUM, rblocks[r], RBM_NORMAL, strategy);
				LockBuffer(rbuf, BUFFER_LOCK_EXCLUSIVE);
				state = GenericXLogStart(index);
				rpage = GenericXLogRegisterBuffer(state, rbuf, 0);
			}
			if (fr == r)
				from_page = rpage;
			else
			{
				/* refine pages of one data page are only locked with it held: no deadlock */
				if (fr != from_r)
				{
					if (BufferIsValid(from_buf))
						UnlockReleaseBuffer(from_buf);
					from_buf = ReadBufferExtended(index, MAIN_FORKNUM, rblocks[fr], RBM_NORMAL, strategy);
					LockBuffer(from_buf, BUFFER_LOCK_SHARE);
					from_r = fr;
				}
				from_page = BufferGetPage(from_buf);
			}
			sv_refine_copy(rpage, dst[m] % meta->refine_capacity, from_page, src[m] % meta->refine_capacity, meta);
		}
		if (BufferIsValid(from_buf))
			UnlockReleaseBuffer(from_buf);
		if (state != NULL)
		{
			GenericXLogFinish(state);
			UnlockReleaseBuffer(rbuf);
		}
	}
}

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
	bool	   *dead = palloc(sizeof(bool) * meta->capacity);
	int		   *move_src = palloc(sizeof(int) * meta->capacity);
	int		   *move_dst = palloc(sizeof(int) * meta->capacity);

	if (stats == NULL)
		stats = palloc0(sizeof(IndexBulkDeleteResult));

	for (BlockNumber blk = 0; blk < nblocks; blk++)
	{
		Buffer		buf;
		Page		page;
		SvPageOpaque *opaque;
		ItemPointerData *tids;
		GenericXLogState *state = NULL;
		int			n,
					ndead;

#if PG_VERSION_NUM >= 180000
		vacuum_delay_point(false);
#else
		vacuum_delay_point();
#endif
		buf = ReadBufferExtended(index, MAIN_FORKNUM, blk, RBM_NORMAL, info->strategy);
		LockBuffer(buf, BUFFER_LOCK_EXCLUSIVE);
		page = BufferGetPage(buf);
		if (PageIsNew(page) || SvPageGetOpaque(page)->flags != SV_PAGE_DATA || sv_page_stale(page, meta))
		{
			/* retired pages (an older generation) keep their entries for the scans still reading them */
			UnlockReleaseBuffer(buf);
			continue;
		}
		n = SvPageGetOpaque(page)->count;
		tids = sv_page_tids(page, meta);
		ndead = 0;
		for (int i = 0; i < n; i++)
			if ((dead[i] = callback(&tids[i], callback_state)))
				ndead++;
		if (ndead > 0)
		{
			/* the moves: the last live entry into each hole, as the compaction below does them */
			int			nmoves = 0,
						last = n;

			for (int i = 0; i < last;)
			{
				if (!dead[i])
				{
					i++;
					continue;
				}
				last--;
				if (i != last)
				{
					move_src[nmoves] = last;
					move_dst[nmoves++] = i;
					dead[i] = dead[last];
				}
			}
			if (meta->refine_bits > 0)
				sv_vacuum_refine(index, meta, page, move_src, move_dst, nmoves, info->strategy);

			state = GenericXLogStart(index);
			page = GenericXLogRegisterBuffer(state, buf, 0);
			tids = sv_page_tids(page, meta);
			for (int m = 0; m < nmoves; m++)
			{
				uint8	   *codes = sv_page_codes(page, meta);
				int			i = move_dst[m],
							from = move_src[m];

				sv_fs_get(codes, meta->lanes, meta->code_bytes, from, code);
				sv_fs_put(codes, meta->lanes, meta->code_bytes, i, code);
				if (meta->has_factors)
				{
					sv_page_alpha(page, meta)[i] = sv_page_alpha(page, meta)[from];
					sv_page_r2(page, meta)[i] = sv_page_r2(page, meta)[from];
				}
				tids[i] = tids[from];
			}
			n = last;
			stats->tuples_removed += ndead;
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
	pfree(dead);
	pfree(move_src);
	pfree(move_dst);
	return stats;
}

/*
 * Point each list's insert page at its first page with room and count the entries; recycle pages retired
 * by past re-partitions; re-partition when the index has outgrown its lists
 * (repartition.c).  ANALYZE in autovacuum does the last two as well, so an insert-only table's index
 * follows its growth at autovacuum's pace.
 */
IndexBulkDeleteResult *
sv_amvacuumcleanup(IndexVacuumInfo *info, IndexBulkDeleteResult *stats)
{
	Relation	index = info->index;
	SvIndexCache *cache;
	SvMetaData	meta;
	int64		entries = 0;

	if (info->analyze_only && !AmAutoVacuumWorkerProcess())
		return stats;
	cache = sv_index_cache(index);
	meta = cache->meta;
	if (stats == NULL)
		stats = palloc0(sizeof(IndexBulkDeleteResult));

	for (int list = 0; list < meta.lists; list++)
	{
		SvListEntry entry = sv_read_list(index, &meta, list);
		BlockNumber blk = entry.first;
		BlockNumber room = InvalidBlockNumber;

		while (blk != InvalidBlockNumber)
		{
			Buffer		buf = ReadBufferExtended(index, MAIN_FORKNUM, blk, RBM_NORMAL, info->strategy);
			SvPageOpaque *opaque;

			LockBuffer(buf, BUFFER_LOCK_SHARE);
			opaque = SvPageGetOpaque(BufferGetPage(buf));
			if (room == InvalidBlockNumber && opaque->count < meta.capacity)
				room = blk;
			entries += opaque->count;
			blk = opaque->next;
			UnlockReleaseBuffer(buf);
		}
		if (room != InvalidBlockNumber && room != entry.insert && !info->analyze_only)
			sv_set_insert_page(index, &meta, list, room);
	}
	/* counted along the chains: the pages of a re-partition a crash interrupted are not the index's */
	stats->num_index_tuples = (double) entries;
	sv_vacuum_growth(info, entries);
	if (!info->analyze_only)
	{
		stats->num_pages = RelationGetNumberOfBlocks(index);
		stats->estimated_count = false;
	}
	return stats;
}
